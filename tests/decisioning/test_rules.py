"""The rule language: parsing, vectorised three-valued evaluation, and load-time validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from nextbest.config import load_config
from nextbest.decisioning.rules import RuleError, RuleFrame, check_names, parse_rule
from nextbest.errors import ConfigError

FRAME = pd.DataFrame(
    {
        "age": [20.0, 30.0, 45.0, np.nan],
        "urbanity": ["urban", "rural", None, "urban"],
        "engagement_trend": [1.0, -1.0, 2.0, 3.0],
        "basket_cluster": [1, 3, 2, None],
        "owns_product_x": pd.array([True, False, None, False], dtype="boolean"),
    }
)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("age >= 40", [False, False, True, False]),
        ("not (age >= 40)", [True, True, False, False]),  # unknown age is neither
        ("not owns_product_x", [False, True, False, True]),
        ("basket_cluster in [1, 3]", [True, True, False, False]),
        ("basket_cluster not in [1, 3]", [False, False, True, False]),
        ("age between 25 and 40", [False, True, False, False]),
        ("urbanity == 'urban' and engagement_trend > 0", [True, False, False, True]),
        ("urbanity != 'urban'", [False, True, False, False]),
        ("age < 25 or urbanity == \"rural\"", [True, True, False, False]),
        ("(age < 25 or age > 40) and engagement_trend > 1.5", [False, False, True, False]),
        ("age is null", [False, False, False, True]),
        ("age is not null and age > -1", [True, True, True, False]),
        ("urbanity == 'urban' or age > 40", [True, False, True, True]),  # unknown or true = true
    ],
)
def test_rule_evaluates_vectorised_with_null_as_false(rule: str, expected: list[bool]) -> None:
    assert parse_rule(rule).evaluate(FRAME).tolist() == expected


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("age >= ", "expected a feature name or a value, found the end of the rule at position 7"),
        ("age >= 40 and (urbanity == 'x'", "expected ')', found the end of the rule at position 30"),
        ("age => 40", "unexpected character '=' at position 4"),
        ("age >= 40 urbanity", "unexpected 'urbanity'; combine conditions with 'and'/'or' at position 10"),
        ("age between 20 40", "expected 'and' between the bounds of 'between', found '40' at position 15"),
        ("basket_cluster in 1", "expected '[' to start the list, found '1' at position 18"),
        ("__import__('os')", "unexpected '('; combine conditions with 'and'/'or' at position 10"),
        ("age ; 3", "unexpected character ';' at position 4"),
        ("", "empty rule at position 0"),
    ],
)
def test_bad_rule_names_the_position(rule: str, message: str) -> None:
    with pytest.raises(RuleError) as err:
        parse_rule(rule, where="offer 'x' eligibility")
    assert str(err.value).startswith(f"offer 'x' eligibility: {message}")


def test_unknown_feature_suggests_close_names() -> None:
    rule = parse_rule("agee >= 40")
    with pytest.raises(RuleError, match=r"unknown feature 'agee'; did you mean 'age'\? at position 0"):
        check_names(rule, ["age", "urbanity"])


def _write(ws_config: Path, name: str, mutate) -> None:
    path = ws_config / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    mutate(data)
    path.write_text(yaml.safe_dump(data))


@pytest.mark.parametrize(
    ("file", "mutate", "message"),
    [
        (
            "offers",
            lambda d: d["offers"][0].update(eligibility="tenure_days < "),
            "offer 'welcome_tips' eligibility: expected a feature name or a value, found the end of the rule at position 14",
        ),
        (
            "offers",
            lambda d: d["offers"][8].update(eligibility="agge >= 40"),
            "offer 'reading_glasses' eligibility: unknown feature 'agge'; did you mean 'age'",
        ),
        (
            "policy",
            lambda d: d["segments"][1].update(rule="clv_12m >>= 150"),
            "segment 'high_value' rule: expected a feature name or a value, found '>=' at position 9",
        ),
        (
            "policy",
            lambda d: d["triggers"][2].update(condition="clv >= 20"),
            "trigger 'contract_end' condition: unknown feature 'clv'",
        ),
        (
            "policy",
            lambda d: d["triggers"][0].update(event="birthday_soon"),
            "trigger 'birthday': event 'birthday_soon' is not a known feature",
        ),
        (
            "offers",
            lambda d: d["offers"][0].update(segment="nobody"),
            "offer 'welcome_tips' targets unknown segment 'nobody'",
        ),
        (
            "policy",
            lambda d: d["experiment"]["arms"][0].update(share=0.5),
            "arm shares sum to 0.7; make them sum to 1",
        ),
    ],
)
def test_bad_config_fails_at_load(workspace, file: str, mutate, message: str) -> None:
    _write(workspace.config_dir, file, mutate)
    with pytest.raises(ConfigError) as err:
        workspace.config()
    assert message in str(err.value)


def test_default_config_rules_all_compile() -> None:
    from nextbest.decisioning.ruleset import RuleSet

    rules = RuleSet.from_config(load_config())
    assert rules.eligibility["reading_glasses"].features == ("age",)
    assert set(rules.segments) == {"young_urban_rising", "high_value", "lapsing", "rural_families"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("age >= 40", [False, False, True]),
        ("urbanity == 'urban' and not flag", [False, False, False]),
        ("flag or age between 25 and 35", [True, False, False]),
        ("urbanity is null", [False, False, True]),
        ("not flag", [False, False, True]),
    ],
)
def test_rules_share_one_rule_frame(text: str, expected: list[bool]) -> None:
    frame = pd.DataFrame(
        {"age": [30.0, None, 50.0], "urbanity": ["urban", "rural", None], "flag": pd.array([True, None, False], dtype="boolean")}
    )
    prepared = RuleFrame(frame)
    prepared.operand("age")  # a column converted for one rule is reused by the next
    assert parse_rule(text).evaluate(prepared).tolist() == expected
    assert parse_rule(text).evaluate(frame).tolist() == expected
