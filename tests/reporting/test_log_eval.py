"""Another tool's decision log: checks, warnings, and OPE recovering known policy values."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from nextbest.cli import app
from nextbest.errors import BadInputError
from nextbest.features.registry import categorical_features, model_features
from nextbest.reporting.log_eval import CHAMPION, LOGGED, UNIFORM, champion_choices, check_log, evaluate_log, read_log
from nextbest.reporting.ope import NO_ACTION
from nextbest.models.registry import load_scorer
from nextbest.training.dataset import build_training_set
from nextbest.training.snapshots import build_missing, missing_dates
from nextbest.training.trainer import run_training
from nextbest.warehouse import hillstrom
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace

MENS, WOMENS = "mens_email/email", "womens_email/email"


# --------------------------------------------------------------------------- a log with a known truth
def truth(customer_id: np.ndarray) -> dict[str, np.ndarray]:
    """The true response probability of every action for each customer (what the log's rewards are drawn from)."""
    cid = np.asarray(customer_id)
    return {
        MENS: 0.04 + 0.20 * (cid % 3 == 0),
        WOMENS: 0.10 + 0.10 * (cid % 2 == 0),
        NO_ACTION: np.full(len(cid), 0.05),
    }


def generated_log(customers: np.ndarray, n: int, seed: int, *, control: bool) -> pd.DataFrame:
    """``n`` decisions of a tool whose propensities depend on the context (customer id modulo 6).

    The tool sends the men's e-mail with probability 0.2 to 0.8 depending on the
    context, else the women's; with a control arm, 20 % of decisions contact nobody first.
    """
    rng = np.random.default_rng(seed)
    cid = rng.choice(customers, n)
    bucket = cid % 6
    p_mens = 0.2 + 0.12 * bucket
    control_share = 0.2 if control else 0.0
    is_control = rng.random(n) < control_share
    is_mens = rng.random(n) < p_mens
    action = np.where(is_control, NO_ACTION, np.where(is_mens, MENS, WOMENS))
    propensity = np.where(is_control, control_share,
                          (1 - control_share) * np.where(is_mens, p_mens, 1 - p_mens))
    q = truth(cid)
    p_reward = np.select([action == MENS, action == WOMENS], [q[MENS], q[WOMENS]], q[NO_ACTION])
    ts = pd.Timestamp(hillstrom.CAMPAIGN_DATE) + pd.Timedelta(hours=9) + pd.to_timedelta(rng.integers(0, 36_000, n), unit="s")
    frame = pd.DataFrame({
        "decision_id": [f"d{i}" for i in range(n)], "customer_id": cid, "ts": ts,
        "offer_id": np.where(action == NO_ACTION, None, pd.Series(action).str.split("/").str[0]),
        "channel": np.where(action == NO_ACTION, None, "email"),
        "reward": (rng.random(n) < p_reward).astype(float), "propensity": propensity,
        "context": [f"bucket{b}" for b in bucket],
    })
    if control:
        frame["arm"] = np.where(is_control, "control", "tool")
    return frame


def true_value(dist: np.ndarray, actions: list[str], customer_id: np.ndarray) -> float:
    q = truth(customer_id)
    return float((dist * np.column_stack([q[a] for a in actions])).sum(axis=1).mean())


@pytest.fixture(scope="module")
def hillstrom_champion(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201 - (workspace, model, customers)
    """A Hillstrom sample warehouse with its snapshot and a small model registered as champion in MLflow."""
    root = tmp_path_factory.mktemp("hs-log")
    frame, _ = hillstrom.read_hillstrom()
    sample = root / "sample.csv"
    frame.head(3_000).to_csv(sample, index=False)
    ws = Workspace.resolve(root / "ws")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        result = CliRunner().invoke(app, ["--workspace", str(ws.root), "data", "import-hillstrom", str(sample)])
        assert result.exit_code == 0, result.output
        config = ws.config()
        con = connect(ws.warehouse_path)
        try:
            build_missing(ws, con, config, missing_dates(con, [hillstrom.CAMPAIGN_DATE]))
            features = model_features(config)
            data = build_training_set(con, config, features=features,
                                      categorical=tuple(c for c in categorical_features(config) if c in features))
            customers = con.execute("SELECT customer_id FROM customers ORDER BY 1").fetchnumpy()["customer_id"]
        finally:
            con.close()
        small = config.model_copy(update={"training": config.training.model_copy(update={"n_estimators": 60})})
        trained = run_training(ws, small, data)
        assert trained.champion
        model = load_scorer(ws.tracking_uri)
    return ws, model, customers


@pytest.mark.parametrize("control", [False, True], ids=["no-control-arm", "control-arm"])
def test_ope_recovers_the_champion_and_uniform_values_within_their_intervals(
    hillstrom_champion, tmp_path: Path, control: bool  # noqa: ANN001
) -> None:
    ws, model, customers = hillstrom_champion
    config = ws.config()
    path = tmp_path / "tool_log.parquet"
    generated_log(customers, 8_000, seed=11 + control, control=control).to_parquet(path, index=False)
    log = read_log(path)
    con = connect(ws.warehouse_path, read_only=True)
    try:
        # Small blocks: the choices must not depend on how the log is cut.
        champion = champion_choices(con, config, model, log, max_candidate_rows=1_000)
        assert np.array_equal(champion.actions, champion_choices(con, config, model, log).actions)
    finally:
        con.close()
    assert len(champion.rounds) == len(log.frame)  # every customer has a snapshot as of the decision's midnight
    result = evaluate_log(log, champion)
    actions = result.meta["actions"]
    assert actions == ([MENS, NO_ACTION, WOMENS] if control else [MENS, WOMENS])
    assert result.meta["control_arm"] is control
    cid = log.frame["customer_id"].to_numpy()
    table = result.table.set_index(["policy", "estimator"])
    for policy in (CHAMPION, UNIFORM):
        value = true_value(result.choices[policy], actions, cid)
        for estimator in ("ipw", "snipw", "dr"):
            row = table.loc[(policy, estimator)]
            assert row["lower"] <= value <= row["upper"], (policy, estimator, value, row.to_dict())
            assert row["upper"] - row["lower"] < 0.05
    # The champion is a real policy of the model: deterministic, over the logged actions only.
    champion = result.choices[CHAMPION]
    assert np.all(champion.sum(axis=1) == 1) and set(np.unique(champion)) <= {0.0, 1.0}
    assert sum(result.meta["champion_action_shares"].values()) == pytest.approx(1.0)
    assert (NO_ACTION in actions) or "champion_note" in result.meta
    logged = table.loc[(LOGGED, "on-policy")]
    assert logged["value"] == pytest.approx(log.frame["reward"].mean())
    assert result.warnings == ()  # correct propensities, consistent per context: nothing to report


def test_decisions_of_unknown_customers_are_left_out_with_a_warning(hillstrom_champion) -> None:  # noqa: ANN001
    ws, model, customers = hillstrom_champion
    frame = generated_log(customers, 300, seed=3, control=False)
    frame.loc[:19, "customer_id"] = 10**9 + np.arange(20)  # not in the warehouse
    frame.loc[20:29, "ts"] = pd.Timestamp(hillstrom.CAMPAIGN_DATE) - pd.Timedelta(days=400)  # before any snapshot
    log = check_log(frame.astype({"ts": str}), "log.csv")
    con = connect(ws.warehouse_path, read_only=True)
    try:
        champion = champion_choices(con, ws.config(), model, log)
    finally:
        con.close()
    assert list(champion.rounds) == list(range(30, 300))
    result = evaluate_log(log, champion)
    assert result.meta["rounds"] == 270
    assert ("30 of 300 decisions have no feature snapshot at or before their ts (customer unknown to the warehouse, "
            "or decided before the first snapshot) and were left out of every estimate") in result.warnings


def test_the_champion_needs_configured_offers(hillstrom_champion, tmp_path: Path) -> None:  # noqa: ANN001
    ws, model, customers = hillstrom_champion
    frame = generated_log(customers, 50, seed=4, control=False).assign(offer_id="spring_sale")
    path = tmp_path / "log.csv"
    frame.to_csv(path, index=False, sep=";")  # a semicolon export reads the same
    log = read_log(path)
    assert len(log.frame) == 50 and set(log.frame["action"]) == {"spring_sale/email"}
    con = connect(ws.warehouse_path, read_only=True)
    try:
        with pytest.raises(BadInputError, match=re.escape(
            "none of the logged actions ['spring_sale/email'] is an offer/channel of the configuration; configure "
            "those offers (`nextbest offers import`) or evaluate the baselines only"
        )):
            champion_choices(con, ws.config(), model, log)
    finally:
        con.close()


def test_intervals_cover_a_known_value_at_about_the_nominal_rate() -> None:
    customers = np.arange(1, 601)
    hits = {"ipw": 0, "snipw": 0, "dr": 0}
    reps = 120
    for seed in range(reps):
        log = check_log(generated_log(customers, 1_000, seed=seed, control=False), "log.csv")
        result = evaluate_log(log)
        dist = result.choices[UNIFORM]
        value = true_value(dist, result.meta["actions"], log.frame["customer_id"].to_numpy())
        for r in result.table[result.table["policy"] == UNIFORM].itertuples():
            hits[r.estimator] += r.lower <= value <= r.upper
    for name, h in hits.items():
        assert 0.88 <= h / reps <= 0.99, (name, h / reps)


# --------------------------------------------------------------------------- warnings
def _log(n: int = 2_000, seed: int = 1) -> pd.DataFrame:
    return generated_log(np.arange(1, 301), n, seed, control=False)


def _missing(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype({"propensity": object})
    frame.loc[[3, 10, 11], "propensity"] = None
    return frame


def _tiny(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[[0, 1], "propensity"] = 0.0005
    return frame


def _understated(frame: pd.DataFrame) -> pd.DataFrame:
    mens = frame["offer_id"] == "mens_email"
    frame.loc[mens, "propensity"] = frame.loc[mens, "propensity"] / 2
    return frame


def _disagreeing(frame: pd.DataFrame) -> pd.DataFrame:
    row = frame.index[(frame["context"] == "bucket3") & (frame["offer_id"] == "mens_email")][0]
    frame.loc[row, "propensity"] = frame.loc[row, "propensity"] * 0.9
    return frame


def _over_summing(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[frame["context"] == "bucket0", "propensity"] = 0.7  # both actions 0.7 in one context
    return frame


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (_missing, "3 of 2,000 rows have no propensity (rows 4, 11, 12 (3 rows)) and were left out: without the "
                   "probability of the logged action a decision cannot be reweighted"),
        (_tiny, "2 of 2,000 rounds have a propensity below 0.01 (smallest 0.0005): each weighs up to 2,000 rounds"),
        (_understated, "action 'mens_email/email': its importance weights 1/propensity average 2.0"),
        (_disagreeing, "1 (context, action) pairs were logged with different propensities for identical contexts "
                       "(e.g. context 'bucket3', action 'mens_email/email': 0.504 and 0.56)"),
        (_over_summing, "1 contexts have propensities of their logged actions summing above 1 (e.g. context "
                        "'bucket0': 1.400): they cannot all be probabilities of one decision"),
    ],
    ids=["missing", "tiny", "understated", "inconsistent", "over-summing"],
)
def test_suspicious_propensities_are_warned_about(spoil, message: str) -> None:  # noqa: ANN001
    clean = evaluate_log(check_log(_log(), "log.csv"))
    assert clean.warnings == ()
    result = evaluate_log(check_log(spoil(_log()), "log.csv"))
    assert any(message in w for w in result.warnings), result.warnings


def test_a_policy_the_log_rarely_agrees_with_is_flagged() -> None:
    frame = _log(3_000)
    frame.loc[frame["offer_id"] == "womens_email", "propensity"] = 0.999  # a near-deterministic tool
    frame = pd.concat([frame[frame["offer_id"] == "womens_email"].head(2_950),
                       frame[frame["offer_id"] == "mens_email"].head(5).assign(propensity=0.001)])
    result = evaluate_log(check_log(frame, "log.csv"))
    assert any("the uniform policy's estimates rest on an effective sample of" in w for w in result.warnings)


# --------------------------------------------------------------------------- invalid logs
def _row(**changes: object) -> pd.DataFrame:
    row = {"customer_id": "7", "ts": "2024-06-01T09:30:00", "action": "spring_sale/email", "reward": "1",
           "propensity": "0.25"}
    return pd.DataFrame([row, row | {"customer_id": "8"} | changes])


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (_row().drop(columns=["propensity"]),
         "log.csv: missing column(s) propensity; a decision log needs customer_id, ts, action (or offer_id and channel), "
         "reward and propensity (see docs/own-data.md)"),
        (_row().drop(columns=["action"]), "log.csv: missing column(s) action (or offer_id and channel)"),
        (_row().assign(offer_id="x", channel="email"),
         "log.csv: give either the column action or the columns offer_id and channel, not both"),
        (_row(customer_id="abc"), "column customer_id: row 2 not an integer; use the warehouse's integer customer ids"),
        (_row(customer_id="7.5"), "column customer_id: row 2 not an integer"),
        (_row(customer_id=""), "column customer_id: row 2 empty; every decision needs the customer's integer id"),
        (_row(ts="yesterday"), "column ts: row 2 not a timestamp; write the decision time as ISO 8601, e.g. 2024-06-01T09:30:00"),
        (_row(reward=""), "column reward: row 2 empty; fill 0 for a decision without response"),
        (_row(reward="yes"), "column reward: row 2 not a number; give a number (1/0 for a conversion, or revenue)"),
        (_row(propensity="1.5"), "column propensity: row 2 outside (0, 1]; a propensity is the probability the logging "
                                 "system gave the logged action; a logged action had one above 0"),
        (_row(propensity="0"), "column propensity: row 2 outside (0, 1]"),
        (_row(propensity="high"), "column propensity: row 2 not a number; give the probability as a number in (0, 1]"),
        (_row(action="spring_sale"), "column action: row 2 not offer_id/channel; write offer_id/channel "
                                     "(e.g. spring_sale/email) or no_action"),
        (_row(action=""), "column action: row 2 empty; write offer_id/channel, or no_action when nobody was contacted"),
        (_row().drop(columns=["action"]).assign(offer_id=["a", "b"], channel=["email", ""]),
         "column channel: row 2 empty where offer_id is set; give the channel of every contact"),
        (_row().assign(decision_id="d1"), "column decision_id: rows 1, 2 (2 rows) repeat a decision id"),
        (_row(propensity="").assign(propensity=""), "log.csv: column propensity is empty in every row"),
        (_row().iloc[:0], "log.csv: the log has no rows"),
    ],
)
def test_an_invalid_log_names_the_column_and_the_fix(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(BadInputError, match=re.escape(message)):
        check_log(frame, "log.csv")


def test_control_rows_contact_nobody_and_offer_columns_make_actions() -> None:
    frame = _row().drop(columns=["action"]).assign(offer_id=["a", ""], channel=["sms", ""], arm=["control", "tool"],
                                                   extra=["x", "y"])
    log = check_log(frame, "log.csv")
    assert list(log.frame["action"]) == [NO_ACTION, NO_ACTION]  # control row's offer is what it would have sent
    assert log.ignored_columns == ("extra",)
    zoned = check_log(_row(ts="2024-06-01T11:30:00+02:00"), "log.csv").frame["ts"]
    assert zoned.iloc[1] == pd.Timestamp("2024-06-01 09:30:00") == zoned.iloc[0]


# --------------------------------------------------------------------------- the command
def test_cli_evaluates_a_log_and_writes_json(workspace: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "tool.csv"
    spoiled = _tiny(_log())
    spoiled.to_csv(path, index=False)
    out = tmp_path / "ope.json"
    runner = CliRunner()
    ws = ["--workspace", str(workspace.root)]
    result = runner.invoke(app, [*ws, "evaluate-policy", "--log", str(path), "--baselines-only", "--json", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert set(doc["policies"]) == {UNIFORM, LOGGED} and set(doc["policies"][UNIFORM]) == {"ipw", "snipw", "dr"}
    assert doc["meta"]["rounds"] == 2_000 and doc["meta"]["control_arm"] is False
    text = " ".join(result.output.split())
    assert "uniform" in text and "without a control arm" in text
    assert "warning: 2 of 2,000 rounds have a propensity below 0.01" in text

    mixed = runner.invoke(app, [*ws, "evaluate-policy", "--log", str(path), "--experiment", "x"])
    assert isinstance(mixed.exception, BadInputError) and "drop them with --log" in str(mixed.exception)
    no_wh = runner.invoke(app, [*ws, "evaluate-policy", "--log", str(path)])
    assert isinstance(no_wh.exception, BadInputError)
    assert "the champion needs the logged customers' features" in str(no_wh.exception)
    (tmp_path / "bad.csv").write_text("customer_id,ts,action,reward\n1,2024-01-01,a/email,1\n")
    bad = runner.invoke(app, [*ws, "evaluate-policy", "--log", str(tmp_path / "bad.csv"), "--baselines-only"])
    assert isinstance(bad.exception, BadInputError) and bad.exception.exit_code == 2
    assert "bad.csv: missing column(s) propensity" in str(bad.exception)


def test_cli_evaluates_the_registered_champion_building_the_missing_snapshot(
    hillstrom_champion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    ws, model, customers = hillstrom_champion
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    frame = generated_log(customers, 2_000, seed=21, control=True)
    frame["ts"] = frame["ts"] + pd.Timedelta(days=1)  # a day with no snapshot yet
    path = tmp_path / "tool.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "ope.json"
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), "evaluate-policy", "--log", str(path),
                                      "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "building 1 missing feature snapshot(s) for the decision dates" in result.output
    doc = json.loads(out.read_text())
    assert doc["meta"]["model_version"] == model.model_version and doc["meta"]["control_arm"] is True
    assert set(doc["policies"]) == {CHAMPION, UNIFORM, LOGGED}
    for estimates in doc["policies"][CHAMPION].values():
        assert estimates["lower"] <= estimates["value"] <= estimates["upper"]
    assert doc["warnings"] == []
    con = connect(ws.warehouse_path, read_only=True)
    try:
        from nextbest.training.snapshots import stored_snapshot_dates

        assert pd.Timestamp(hillstrom.CAMPAIGN_DATE) + pd.Timedelta(days=1) in stored_snapshot_dates(con)
    finally:
        con.close()
