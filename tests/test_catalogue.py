"""Offer catalogues from files: hundreds of offers in, the engine ranks with them; bad rows named."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nextbest.catalogue import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, import_catalogue, template_frame
from nextbest.cli import app
from nextbest.config import JOURNEY_STAGES
from nextbest.decisioning.engine import DecisionEngine
from nextbest.decisioning.synthetic import random_features
from nextbest.errors import BadInputError
from nextbest.workspace import Workspace
from tests.decisioning.decisioning_helpers import fitted_scorer

CHANNELS = ("email", "sms", "push", "direct_mail", "outbound_call", "web")
CATEGORIES = ("home", "fashion_women", "fashion_men", "kids", "sports", "garden", "beauty", "books", "health",
              "electronics", "shoes")
RULES = ("age >= 40", "recency_days >= 90", "urbanity != 'urban' and age >= 30", "frequency_365d >= 2", "")


def generated_catalogue(n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` offers with every column, drawn at random (a few hundred is a real catalogue's size)."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 120, n), unit="D")
    value = rng.gamma(2.0, 40.0, n).round(2) + 5
    return pd.DataFrame({
        "id": [f"offer_{i:04d}" for i in range(n)],
        "name": [f"Offer number {i}" for i in range(n)],
        "category": rng.choice(CATEGORIES, n),
        "stage": rng.choice(JOURNEY_STAGES, n),
        "value": value,
        "margin": (value * rng.uniform(0.1, 0.5, n)).round(2),
        "lever": rng.choice([0.8, 1.0, 1.0, 1.2], n),
        "rule": rng.choice(RULES, n),
        "channels": ["|".join(rng.choice(CHANNELS, rng.integers(1, 4), replace=False)) for _ in range(n)],
        "valid_from": start.date,
        "valid_to": (start + pd.to_timedelta(rng.integers(30, 365, n), unit="D")).date,
        "max_contacts": rng.choice([None, 5000, 20000], n),
        "message": "{salutation}, a {category} offer.",
    })


def test_several_hundred_offers_import_and_the_engine_ranks_with_them(workspace: Workspace, tmp_path: Path) -> None:
    catalogue = generated_catalogue(400, seed=1)
    path = tmp_path / "catalogue.csv"
    catalogue.to_csv(path, index=False)
    example = [o.id for o in workspace.config().offers.offers]  # the policy's triggers name some of them
    result = import_catalogue(workspace.config_dir, path)
    assert result.written and len(result.added) == 400 and not result.updated and not result.removed
    config = workspace.config()  # the validated loader reads the file back
    assert [o.id for o in config.offers.offers] == example + list(catalogue["id"])
    first = config.offer("offer_0000")
    row = catalogue.iloc[0]
    assert (first.stage, first.value, first.channels) == (row["stage"], row["value"], tuple(row["channels"].split("|")))
    assert first.valid_from == row["valid_from"] and first.eligibility == (row["rule"] or None)

    at = dt.datetime(2024, 4, 1, 9, 0)
    features = random_features(config, 200, seed=5)
    out = DecisionEngine(config, {"champion": fitted_scorer()}).decide(features, at, seed=3, top_k=3)
    chosen = out.actions.dropna(subset=["offer_id"])
    assert len(chosen) > 100 and chosen["offer_id"].str.startswith("offer_").sum() > len(chosen) / 2
    assert chosen["offer_id"].nunique() >= 10
    valid_today = {o.id for o in config.offers.offers if o.valid_at(at.date())}
    assert set(chosen["offer_id"]) <= valid_today
    assert all(ch in config.offer(o).channels for o, ch in zip(chosen["offer_id"], chosen["channel"], strict=True))


def test_parquet_export_and_import_round_trip(workspace: Workspace, tmp_path: Path) -> None:
    config = workspace.config()
    path = tmp_path / "offers.parquet"
    template_frame(config.offers.offers).to_parquet(path, index=False)
    before = (workspace.config_dir / "offers.yaml").read_text()
    result = import_catalogue(workspace.config_dir, path, mode="update")
    assert result.updated == tuple(o.id for o in config.offers.offers) and not result.added
    assert workspace.config().offers == config.offers
    text = (workspace.config_dir / "offers.yaml").read_text()
    assert text.startswith("# The offer catalogue.") and before.splitlines()[0] == text.splitlines()[0]


def _one_row(**changes: object) -> pd.DataFrame:
    row = {"id": "spring_sale", "category": "home", "stage": "conversion", "value": "80", "margin": "20",
           "channels": "email|web", "rule": "age >= 30", "valid_from": "2024-03-01", "valid_to": "2024-04-30"}
    return pd.DataFrame([row | changes])


BAD_ROWS = [
    ({"stage": "onboarding"},
     "row 2, stage: Input should be 'awareness', 'nurturing', 'experience' or 'conversion' (got 'onboarding')"),
    ({"value": "-5"}, "row 2, value: Input should be greater than or equal to 0 (got '-5')"),
    ({"margin": "lots"}, "row 2, margin: Input should be a valid number, unable to parse string as a number (got 'lots')"),
    ({"channels": "email|fax"},
     "row 2, channels: unknown channel 'fax'; known: email, sms, push, direct_mail, outbound_call, web (channels.yaml)"),
    ({"channels": "emial"}, "row 2, channels: unknown channel 'emial'; did you mean 'email'? known: email, sms, push,"),
    ({"channels": "email|email"}, "row 2, channels: a channel is listed twice (email, email); list each once"),
    ({"channels": ""}, "row 2, channels: missing value; fill it in (required)"),
    ({"rule": "age >= "}, "row 2, rule: expected a feature name or a value, found the end of the rule at position 6\n    age >=\n          ^"),
    ({"rule": "agee >= 30"}, "row 2, rule: unknown feature 'agee'; did you mean 'age'"),
    ({"valid_from": "2024-05-01", "valid_to": "2024-04-01"},
     "row 2, valid_to: offer 'spring_sale': valid_from 2024-05-01 is after valid_to 2024-04-01; "
     "make valid_to the same day as valid_from or later"),
    ({"valid_from": "May 1st"}, "row 2, valid_from: Input should be a valid date or datetime, input is too short (got 'May 1st')"),
    ({"id": "Spring Sale"},
     "row 2, id: String should match pattern '^[a-z][a-z0-9_]*$' (got 'Spring Sale'); use lower-case letters, "
     "digits and _, starting with a letter (e.g. 'spring_sale')"),
    ({"id": "first_offer"}, "row 2, id: 'first_offer' is also row 1; give each offer a unique id"),
    ({"category": ""}, "row 2, category: missing value; fill it in (required)"),
    ({"segment": "vip"}, "row 2, segment: unknown segment 'vip'; define it in policy.yaml segments (defined: "),
    ({"max_contacts": "1.5"}, "row 2, max_contacts: Input should be a valid integer, unable to parse string as an integer (got '1.5')"),
]


@pytest.mark.parametrize(("change", "message"), BAD_ROWS, ids=[m.split(":")[0] + " " + str(c) for c, m in BAD_ROWS])
def test_a_bad_row_is_named_with_its_field_and_nothing_is_written(
    workspace: Workspace, tmp_path: Path, change: dict, message: str
) -> None:
    good = _one_row(id="first_offer")
    path = tmp_path / "catalogue.csv"
    pd.concat([good, _one_row(**change)], ignore_index=True).to_csv(path, index=False)
    offers_yaml = workspace.config_dir / "offers.yaml"
    before = offers_yaml.read_bytes()
    with pytest.raises(BadInputError) as caught:
        import_catalogue(workspace.config_dir, path, mode="replace")
    text = str(caught.value)
    assert text.startswith("catalogue.csv: 1 invalid row(s), nothing was written:\n  row 2"), text
    assert message in text, text
    assert "row 1" not in text.replace("is also row 1", "")
    assert offers_yaml.read_bytes() == before
    assert sorted(p.name for p in workspace.config_dir.iterdir()) == sorted(
        f"{n}.yaml" for n in ("channels", "offers", "policy", "features", "training"))  # no temporary left


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (["id", "category", "value", "margin", "channels"],
         "catalogue.csv: missing required column(s) stage; add them (a catalogue needs id, category, stage, value, "
         "margin, channels)"),
        (["id", "category", "stage", "value", "margin", "channels", "valid_form"],
         "catalogue.csv: unknown column(s) 'valid_form' (did you mean 'valid_from'?); a catalogue has the columns "),
        (["id", "category", "stage", "value", "margin", "channels", "rule", "eligibility"],
         "catalogue.csv: column(s) rule appear more than once (rule and eligibility are one column); keep one of each"),
    ],
)
def test_the_columns_are_checked_first(workspace: Workspace, tmp_path: Path, columns: list[str], message: str) -> None:
    row = _one_row(valid_form="2024-01-01", eligibility="age >= 30").iloc[0]
    path = tmp_path / "catalogue.csv"
    pd.DataFrame([[row[c] for c in columns]], columns=columns).to_csv(path, index=False)
    with pytest.raises(BadInputError, match=re.escape(message)):
        import_catalogue(workspace.config_dir, path)


def test_every_bad_row_is_listed(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "catalogue.csv"
    frame = generated_catalogue(300, seed=2)
    frame.loc[[10, 150, 299], "stage"] = "unknown"
    frame.loc[150, "value"] = -1
    frame.to_csv(path, index=False)
    with pytest.raises(BadInputError) as caught:
        import_catalogue(workspace.config_dir, path, mode="replace")
    lines = str(caught.value).splitlines()
    assert lines[0] == "catalogue.csv: 3 invalid row(s), nothing was written:"
    assert [line.split(",")[0].strip() for line in lines[1:]] == ["row 11", "row 151", "row 151", "row 300"]


def test_merging_adds_refuses_clashes_updates_or_replaces(workspace: Workspace, tmp_path: Path) -> None:
    config = workspace.config()
    existing = [o.id for o in config.offers.offers]
    path = tmp_path / "catalogue.csv"
    new = _one_row()
    new.to_csv(path, index=False)

    added = import_catalogue(workspace.config_dir, path)  # default: add
    assert added.added == ("spring_sale",) and [o.id for o in workspace.config().offers.offers] == [*existing, "spring_sale"]

    changed = pd.concat([_one_row(value="90"), _one_row(id="sports_gear", value="61", channels="web")])
    changed.to_csv(path, index=False)
    with pytest.raises(BadInputError, match=re.escape(
        "catalogue.csv: 2 offer id(s) already in offers.yaml, nothing was written: 'spring_sale' (row 1), "
        "'sports_gear' (row 2); pass --update to overwrite those offers with the file's rows, or --replace"
    )):
        import_catalogue(workspace.config_dir, path)

    updated = import_catalogue(workspace.config_dir, path, mode="update")
    assert updated.updated == ("spring_sale", "sports_gear") and not updated.added
    after = workspace.config()
    assert after.offer("sports_gear").channels == ("web",) and after.offer("spring_sale").value == 90
    assert [o.id for o in after.offers.offers] == [*existing, "spring_sale"]  # updated in place, order kept

    triggered = {o for t in after.policy.triggers for o in t.offers}
    kept = [o for o in after.offers.offers if o.id in triggered or o.id == "spring_sale"]
    template_frame(kept).to_csv(path, index=False)
    replaced = import_catalogue(workspace.config_dir, path, mode="replace")
    assert set(replaced.removed) == set(existing) - triggered and "sports_gear" in replaced.removed
    assert [o.id for o in workspace.config().offers.offers] == [o.id for o in kept]


def test_a_catalogue_that_breaks_the_rest_of_the_config_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    config = workspace.config()
    triggered = {o for t in config.policy.triggers for o in t.offers}
    assert triggered, "the example policy has triggers naming offers"
    path = tmp_path / "catalogue.csv"
    _one_row().to_csv(path, index=False)
    before = (workspace.config_dir / "offers.yaml").read_bytes()
    with pytest.raises(BadInputError, match=r"(?s)catalogue.csv: the catalogue would make the configuration invalid, "
                                            r"nothing was written: trigger '\w+' names unknown offer"):
        import_catalogue(workspace.config_dir, path, mode="replace")
    assert (workspace.config_dir / "offers.yaml").read_bytes() == before


def test_cli_imports_and_exits_2_on_bad_input(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "catalogue.csv"
    _one_row().to_csv(path, index=False)
    runner = CliRunner()
    ws = ["--workspace", str(workspace.root)]
    dry = runner.invoke(app, [*ws, "offers", "import", str(path), "--dry-run"])
    assert dry.exit_code == 0 and "would write" in dry.output and "1 added" in dry.output
    assert "spring_sale" not in (workspace.config_dir / "offers.yaml").read_text()
    done = runner.invoke(app, [*ws, "offers", "import", str(path)])
    assert done.exit_code == 0, done.output
    assert "spring_sale" in (workspace.config_dir / "offers.yaml").read_text()
    both = runner.invoke(app, [*ws, "offers", "import", str(path), "--update", "--replace"])
    # `nextbest` (cli.main) exits with the error's exit code
    assert isinstance(both.exception, BadInputError) and both.exception.exit_code == 2
    assert "--update and --replace exclude each other" in str(both.exception)
    again = runner.invoke(app, [*ws, "offers", "import", str(path)])
    assert isinstance(again.exception, BadInputError) and "already in offers.yaml" in str(again.exception)
    export = tmp_path / "out.csv"
    assert runner.invoke(app, [*ws, "offers", "export", str(export)]).exit_code == 0
    assert list(pd.read_csv(export).columns) == list(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)


def test_a_semicolon_csv_with_a_byte_order_mark_imports(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "catalogue.csv"
    _one_row(channels="email, web", rule="age >= 30 and urbanity != 'urban'").to_csv(
        path, index=False, sep=";", encoding="utf-8-sig")
    result = import_catalogue(workspace.config_dir, path)
    offer = workspace.config().offer("spring_sale")
    assert result.added == ("spring_sale",) and offer.channels == ("email", "web")
    assert offer.eligibility == "age >= 30 and urbanity != 'urban'"


def test_missing_file_and_unknown_type(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such file"):
        import_catalogue(workspace.config_dir, tmp_path / "nope.csv")
    (tmp_path / "c.xlsx").write_text("x")
    with pytest.raises(BadInputError, match=re.escape("c.xlsx: unknown file type; export the catalogue as .csv or .parquet")):
        import_catalogue(workspace.config_dir, tmp_path / "c.xlsx")
