"""Policy evaluation: the IPS table on a known design, and end to end on a Hillstrom sample."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nextbest.cli import app
from nextbest.errors import BadInputError
from nextbest.features.registry import categorical_features, model_features
from nextbest.reporting.policy_eval import (
    MODEL_POLICY,
    NOBODY,
    RANDOM,
    action_costs,
    baseline_policies,
    evaluate,
    evaluate_experiment,
    held_out,
    verdict,
)
from nextbest.reporting.ope import NO_ACTION, LoggedBandit
from nextbest.training.dataset import build_training_set, time_split
from nextbest.training.snapshots import build_missing, missing_dates
from nextbest.training.trainer import base_params, fit_model, make_model
from nextbest.warehouse import hillstrom
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace

SAMPLE_ROWS = 3_000


# --------------------------------------------------------------------------- a known design
def _design(n: int, seed: int) -> tuple[LoggedBandit, np.ndarray, np.ndarray]:
    """Three actions drawn uniformly; action k converts with probability ``TRUE[k]``."""
    rng = np.random.default_rng(seed)
    action = rng.integers(0, 3, n)
    reward = (rng.random(n) < TRUE[action]).astype(float)
    return LoggedBandit(action, reward, np.full(n, 1 / 3), 3, ("a/email", NO_ACTION, "b/email")), action, reward


TRUE = np.array([0.20, 0.10, 0.15])


def test_ips_recovers_each_policy_value_within_its_interval() -> None:
    bandit, _, reward = _design(30_000, seed=1)
    policies = baseline_policies(list(bandit.action_names), bandit.n_rounds)
    table = evaluate(bandit, {"conversions": reward}, policies, reference=NOBODY).set_index("policy")
    truth = {NOBODY: 0.10, "everyone a/email": 0.20, "everyone b/email": 0.15, RANDOM: TRUE.mean()}
    for name, value in truth.items():
        row = table.loc[name]
        assert row["lower"] < value < row["upper"], name
        assert row["upper"] - row["lower"] < 0.03
    assert table.loc[NOBODY, "contact_share"] == 0 and table.loc[RANDOM, "contact_share"] == pytest.approx(2 / 3)
    # Paired differences against the reference: a's advantage over nobody is 0.10.
    assert table.loc["everyone a/email", "diff_lower"] < 0.10 < table.loc["everyone a/email", "diff_upper"]
    assert table.loc[NOBODY, "diff"] == 0


def test_intervals_cover_the_truth_at_about_the_nominal_rate() -> None:
    covered = 0
    for seed in range(200):
        bandit, _, reward = _design(1_500, seed)
        dist = baseline_policies(list(bandit.action_names), bandit.n_rounds)
        row = evaluate(bandit, {"r": reward}, {"a": dist["everyone a/email"]}).iloc[0]
        covered += row["lower"] <= 0.20 <= row["upper"]
    assert 0.90 <= covered / 200 <= 0.99


@pytest.mark.parametrize(
    ("actions", "message"),
    [
        (["a/email", "b/fax"], "uses channel 'fax', which channels.yaml lacks"),
        (["a/"], "uses channel ''"),
    ],
)
def test_action_costs_need_configured_channels(workspace: Workspace, actions: list[str], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        action_costs(workspace.config(), actions)


@pytest.mark.parametrize("share", [0.0, 1.0, -0.2, 1.5])
def test_test_share_must_be_a_proper_fraction(share: float) -> None:
    ts = pd.Series(pd.date_range("2024-01-01", periods=100, freq="h"))
    with pytest.raises(BadInputError, match="--test-share must lie strictly between 0 and 1"):
        held_out(ts, share)


def test_held_out_is_the_trainers_test_split() -> None:
    ts = pd.Series(pd.date_range("2024-01-01", periods=1_000, freq="min")).sample(frac=1, random_state=0)
    np.testing.assert_array_equal(held_out(ts, 0.3), time_split(ts, 0.15, 0.3).test)


# --------------------------------------------------------------------------- Hillstrom sample, end to end
@pytest.fixture(scope="module")
def hillstrom_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("hs")
    frame, _ = hillstrom.read_hillstrom()
    sample = root / "sample.csv"
    frame.head(SAMPLE_ROWS).to_csv(sample, index=False)
    ws = Workspace.resolve(root / "ws")
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), "data", "import-hillstrom", str(sample)])
    assert result.exit_code == 0, result.output
    return ws


@pytest.fixture(scope="module")
def trained(hillstrom_ws: Workspace):  # noqa: ANN201 - (connection, config, model)
    ws = hillstrom_ws
    config = ws.config()
    con = connect(ws.warehouse_path)
    build_missing(ws, con, config, missing_dates(con, [hillstrom.CAMPAIGN_DATE]))
    features = model_features(config)
    data = build_training_set(con, config, features=features,
                              categorical=tuple(c for c in categorical_features(config) if c in features))
    tr = config.training
    split = time_split(data.frame["ts"], tr.validation_share, tr.test_share)
    params = base_params(tr) | {"n_estimators": 60}
    model = fit_model(data, split, make_model(config, data.categorical, {}, strategy="global", learner="s", params=params))
    yield con, config, model
    con.close()


def test_policy_table_on_held_out_hillstrom_customers(trained) -> None:  # noqa: ANN001
    con, config, model = trained
    result = evaluate_experiment(con, config, model, hillstrom.EXPERIMENT)
    table = result.table
    assert set(table["policy"]) == {NOBODY, "everyone mens_email/email", "everyone womens_email/email", RANDOM,
                                    MODEL_POLICY}
    assert set(table["metric"]) == {"visits", "conversions", "spend", "profit"}
    assert (table["lower"] <= table["value"]).all() and (table["value"] <= table["upper"]).all()
    assert result.meta["held_out_decisions"] == pytest.approx(0.3 * SAMPLE_ROWS, rel=0.02)
    assert result.meta["action_cost"] == {"mens_email/email": 0.10, "no_action": 0.0, "womens_email/email": 0.10}

    assert result.meta["model_version"] == "unregistered"
    assert sum(result.meta["model_action_shares"].values()) == pytest.approx(1.0)


def test_nobody_is_exactly_the_held_out_control_mean(trained) -> None:  # noqa: ANN001
    con, config, _ = trained
    result = evaluate_experiment(con, config, None, hillstrom.EXPERIMENT)
    # IPS of "nobody" with the arm's share as propensity is exactly the control mean of the held-out part.
    logged = con.execute(
        """SELECT d.ts, d.contacted, coalesce(bool_or(r.outcome = 'visit'), false) AS visit
           FROM decisions d LEFT JOIN responses r USING (decision_id) GROUP BY ALL"""
    ).df()
    test = logged[held_out(logged["ts"], config.training.test_share)]
    table = result.table
    nobody = table[(table["policy"] == NOBODY) & (table["metric"] == "visits")].iloc[0]
    assert nobody["value"] == pytest.approx(test.loc[~test["contacted"], "visit"].mean())
    assert MODEL_POLICY not in set(table["policy"])
    # Profit is spend minus the e-mail cost: $0.10 per customer when everyone is e-mailed (up to the
    # importance weights' mean, which is 1 in expectation), nothing when nobody is.
    wide = result.wide()
    mens = wide.loc["everyone mens_email/email"]
    assert mens["spend"] - mens["profit"] == pytest.approx(0.10, rel=0.15)
    assert wide.loc[NOBODY, "profit"] == wide.loc[NOBODY, "spend"]
    text = verdict(result)
    assert "held-out customers" in text and "everyone" in text


def test_unknown_experiment_is_refused(trained) -> None:  # noqa: ANN001
    con, config, model = trained
    with pytest.raises(BadInputError, match="experiment 'nope' is not in the decisions table; known: hillstrom-2008"):
        evaluate_experiment(con, config, model, "nope")


def test_cli_writes_the_policy_table_as_json(tmp_path: Path) -> None:
    sample = tmp_path / "sample.csv"
    hillstrom.read_hillstrom()[0].head(SAMPLE_ROWS).to_csv(sample, index=False)
    ws = tmp_path / "ws"
    assert CliRunner().invoke(app, ["--workspace", str(ws), "data", "import-hillstrom", str(sample)]).exit_code == 0
    out = tmp_path / "policy.json"
    result = CliRunner().invoke(app, ["--workspace", str(ws), "evaluate-policy", "--baselines-only",
                                      "--test-share", "0.4", "--json", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["meta"]["experiment"] == hillstrom.EXPERIMENT and doc["meta"]["test_share"] == 0.4
    names = [p["policy"] for p in doc["policies"]]
    assert names == [NOBODY, "everyone mens_email/email", "everyone womens_email/email", RANDOM]
    for p in doc["policies"]:
        for metric in ("visits", "conversions", "spend", "profit"):
            assert p[metric]["lower"] <= p[metric]["value"] <= p[metric]["upper"]
    assert "profit per customer" in doc["verdict"]
    assert "everyone mens_email/email" in result.output
