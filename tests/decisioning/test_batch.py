"""``nextbest decide`` on the local engine: the file, determinism, the rules, the live store, re-runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from nextbest.cli import app
from nextbest.decisioning.batch import (
    FILE_COLUMNS, FILE_SCHEMA, decide_rows, decision_ids, file_rows, register_batch,
)
from nextbest.decisioning.cli import load_features, load_scorers
from nextbest.decisioning.decide_world import CAPACITY, CAPPED_CHANNEL, CUSTOMERS, DAY, build_world
from nextbest.decisioning.engine import DecisionEngine
from nextbest.errors import BadInputError
from nextbest.live.history import BaseHistory, build_history
from nextbest.live.register import ContactGate, register_decisions
from nextbest.live.schema import decisions as live_decisions
from nextbest.live.store import LiveStore
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace

DATE = DAY.isoformat()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return build_world(tmp_path_factory.mktemp("decide") / "ws")


@pytest.fixture
def ws(world: Workspace, tmp_path: Path) -> Workspace:
    """A copy of the world of this test only (its own live store)."""
    shutil.copytree(world.root, tmp_path / "ws", ignore=shutil.ignore_patterns("*.log"))
    return Workspace.resolve(tmp_path / "ws")


def _invoke(ws: Workspace, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["--workspace", str(ws.root), "decide", *args], catch_exceptions=True)


def _decide(ws: Workspace, output: Path, *args: str) -> dict[str, object]:
    result = _invoke(ws, "--date", DATE, "--output", str(output), *args)
    assert result.exception is None, result.output
    return json.loads(result.stdout)


def _live_decisions(ws: Workspace) -> pd.DataFrame:
    store = LiveStore.for_workspace(ws)
    try:
        with store.reading() as con:
            result = con.execute(select(live_decisions))
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    finally:
        store.close()


def test_file_is_declared_ranked_and_deterministic(ws: Workspace, tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "c.parquet"
    summary = _decide(ws, a, "--top-k", "3", "--dry-run", "--seed", "7")
    _decide(ws, b, "--top-k", "3", "--dry-run", "--seed", "7")
    _decide(ws, c, "--top-k", "3", "--dry-run", "--seed", "8")
    assert pq.read_schema(a).remove_metadata() == FILE_SCHEMA
    first, again, other = (pd.read_parquet(p) for p in (a, b, c))
    pd.testing.assert_frame_equal(first, again)
    assert summary["customers"] == CUSTOMERS and summary["rows"] == len(first) > 0
    assert summary["registered"] == 0 and summary["dry_run"] is True
    # One row per customer and rank; ranks 1..n without gaps; at most --top-k.
    assert not first.duplicated(["customer_id", "rank"]).any()
    per = first.groupby("customer_id")["rank"].agg(["min", "max", "count"])
    assert (per["min"] == 1).all() and (per["max"] == per["count"]).all() and per["count"].max() == 3
    assert first["offer_id"].notna().all() and first["channel"].notna().all()
    # Decision ids: from the date, the seed and the customer; shared by a customer's ranks.
    expected = decision_ids(DAY, 7, first["customer_id"].to_numpy())
    assert (first["decision_id"].to_numpy() == expected).all()
    assert first["decision_id"].str.startswith("decide-20240603-s7-").all()
    assert other["decision_id"].str.startswith("decide-20240603-s8-").all()
    assert summary["contacts"] == first["customer_id"].nunique()
    top = first[first["rank"] == 1]
    assert np.allclose(top.groupby("customer_id")["propensity"].sum(), top["propensity"].to_numpy())
    assert ((top["propensity"] > 0) & (top["propensity"] <= 1)).all()


def test_consent_contact_policy_and_capacity_hold(ws: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "d.csv"
    _decide(ws, out, "--dry-run")
    rows = pd.read_csv(out)
    config = ws.config()
    _, features, _ = load_features(ws, config)
    f = features.set_index("customer_id").loc[rows["customer_id"]]
    personal = {c.id for c in config.channels.channels if c.personal}
    for ch in personal:
        on = (rows["channel"] == ch).to_numpy()
        assert (f[f"consent_{ch}"].to_numpy()[on] == True).all(), ch  # noqa: E712 - nullable booleans
        assert (f[f"reachable_{ch}"].to_numpy()[on] == True).all(), ch  # noqa: E712
    # The capacity binds: exactly the capacity, although more customers preferred the channel.
    assert (rows["channel"] == CAPPED_CHANNEL).sum() == CAPACITY
    uncapped = ws.config().model_copy(deep=True)
    for ch in uncapped.channels.channels:
        if ch.id == CAPPED_CHANNEL:
            object.__setattr__(ch, "daily_capacity", None)
    engine = DecisionEngine(uncapped, load_scorers(ws, uncapped))
    as_of, feats, hist = load_features(ws, uncapped)
    free = decide_rows(engine, feats, hist, pd.Timestamp(DAY).to_pydatetime(), seed=0, top_k=1,
                       history=_history(ws, uncapped))
    assert (file_rows(free)["channel"] == CAPPED_CHANNEL).sum() > CAPACITY
    # Yesterday's contacts: the offer cool-down keeps their offer off personal channels today.
    con = connect(ws.warehouse_path, read_only=True)
    past = con.execute("SELECT customer_id, offer_id FROM decisions WHERE decision_id LIKE 'past-%'").df()
    con.close()
    again = rows.merge(past, on=["customer_id", "offer_id"])
    assert len(past) and not again["channel"].isin(personal).any()


def _history(ws: Workspace, config):  # type: ignore[no-untyped-def]
    store = LiveStore.for_workspace(ws)
    try:
        con = connect(ws.warehouse_path, read_only=True)
        base = BaseHistory.read(con, config, pd.Timestamp(DAY).to_pydatetime(), store.store_id)
        con.close()
        gate = ContactGate(store, config, base)
        with store.reading() as live:
            contacts, negatives = gate.reset(live)
        return build_history(config, base, contacts, negatives)
    finally:
        store.close()


def test_registers_once_and_refuses_a_second_run(ws: Workspace, tmp_path: Path) -> None:
    dry = _decide(ws, tmp_path / "dry.parquet", "--top-k", "2", "--dry-run")
    assert _live_decisions(ws).empty  # --dry-run registers nothing
    summary = _decide(ws, tmp_path / "run.parquet", "--top-k", "2")
    live = _live_decisions(ws)
    assert summary["registered"] == CUSTOMERS == len(live)
    assert int(live["contacted"].sum()) == summary["contacts"]
    # The file is what was registered (the dry run had no competing writer: same file).
    sent = pd.read_parquet(tmp_path / "run.parquet")
    pd.testing.assert_frame_equal(sent, pd.read_parquet(tmp_path / "dry.parquet"))
    assert dry["rows"] == summary["rows"]
    top = sent[sent["rank"] == 1].set_index("decision_id")
    logged = live.set_index("decision_id").loc[top.index]
    assert (logged["offer_id"] == top["offer_id"]).all() and (logged["channel"] == top["channel"]).all()
    assert np.allclose(logged["propensity"], top["propensity"]) and np.allclose(logged["score"], top["expected_value"])
    assert logged["contacted"].all()
    # A second run of the day would contact the same customers twice: refused, nothing written.
    again = _invoke(ws, "--date", DATE, "--output", str(tmp_path / "again.parquet"))
    assert isinstance(again.exception, BadInputError) and again.exception.exit_code == 2
    assert "already registered" in str(again.exception) and "--dry-run" in str(again.exception)
    assert "decide-20240603-s0" in str(again.exception)
    assert not (tmp_path / "again.parquet").exists() and len(_live_decisions(ws)) == CUSTOMERS
    # A dry run after it decides with those contacts known (caps used up), registering nothing.
    after = _decide(ws, tmp_path / "after.parquet", "--dry-run")
    assert after["registered"] == 0 and len(_live_decisions(ws)) == CUSTOMERS
    assert (pd.read_parquet(tmp_path / "after.parquet")["channel"] == CAPPED_CHANNEL).sum() == 0


def test_a_service_beside_the_batch_keeps_the_capacity(ws: Workspace, tmp_path: Path) -> None:
    """Contacts another writer commits after the batch decided are seen by the gate: the
    customers they push over the capacity are decided again, and the day stays within it."""
    config = ws.config()
    at = pd.Timestamp(DAY).to_pydatetime()
    store = LiveStore.for_workspace(ws, writer="decide-test")
    service = LiveStore.for_workspace(ws, writer="service-worker")
    try:
        con = connect(ws.warehouse_path, read_only=True)
        base = BaseHistory.read(con, config, at, store.store_id)
        con.close()
        gate = ContactGate(store, config, base)
        with store.reading() as live:
            contacts, negatives = gate.reset(live)
        history = build_history(config, base, contacts, negatives)
        engine = DecisionEngine(config, load_scorers(ws, config))
        _, features, offers = load_features(ws, config)
        rows = decide_rows(engine, features, offers, at, seed=0, top_k=1, history=history)
        batch_ids = set(file_rows(rows)["customer_id"])
        # Meanwhile the service contacts 10 customers outside the batch on the capped channel.
        others = [c for c in features["customer_id"] if c not in batch_ids][:10]
        register_decisions(service, pd.DataFrame({
            "decision_id": [f"svc-{c}" for c in others], "customer_id": others,
            "ts": pd.Timestamp(at) + pd.Timedelta(hours=1), "offer_id": config.offers.offers[0].id,
            "channel": CAPPED_CHANNEL, "arm": "champion", "experiment": "default", "propensity": 1.0,
            "model_version": "x", "score": 1.0, "contacted": True,
        }))

        def redecide(ids: np.ndarray, known):  # type: ignore[no-untyped-def]
            part = features[features["customer_id"].isin(ids)]
            return decide_rows(engine, part, offers[offers["customer_id"].isin(ids)], at, seed=0, top_k=1, history=known)

        final, registered = register_batch(store, gate, rows, redecide)
    finally:
        store.close()
        service.close()
    assert registered.redecided >= 10
    live = _live_decisions(ws)
    today = live[live["contacted"] & (live["channel"] == CAPPED_CHANNEL)]
    assert len(today) == CAPACITY  # the service's 10 and the batch's 50
    sent = file_rows(final)
    assert (sent["channel"] == CAPPED_CHANNEL).sum() == CAPACITY - 10
    assert set(sent["decision_id"]) <= set(live["decision_id"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--output", "x.txt"], "--output x.txt: use a .parquet or .csv file name"),
        (["--output", "x.parquet", "--engine", "dask"], "--engine 'dask': use local or spark"),
        (["--output", "x.parquet", "--engine", "spark"], "--lake: required with --engine spark"),
        (["--output", "x.parquet", "--lake", "lake"], "--lake/--master: only read by --engine spark"),
        (["--output", "x.parquet", "--engine", "spark", "--lake", "no-such-lake"], "--lake no-such-lake: no such folder"),
    ],
)
def test_invalid_options(world: Workspace, args: list[str], message: str) -> None:
    result = _invoke(world, "--date", DATE, *args)
    assert isinstance(result.exception, BadInputError) and result.exception.exit_code == 2
    assert message in str(result.exception)


def test_an_output_that_cannot_be_written_is_refused_first(ws: Workspace, tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("a file, not a folder")
    result = _invoke(ws, "--date", DATE, "--output", str(tmp_path / "plain" / "x.parquet"))
    assert isinstance(result.exception, BadInputError)
    assert "cannot create its folder" in str(result.exception)
    assert _live_decisions(ws).empty


def test_invalid_date(world: Workspace) -> None:
    result = _invoke(world, "--date", "03/06/2024", "--output", "x.parquet")
    assert isinstance(result.exception, BadInputError)
    assert "--date '03/06/2024': not a date; use YYYY-MM-DD" in str(result.exception)


def test_file_columns_are_the_documents_action_fields() -> None:
    from nextbest.decisioning.documents import Action, RankResponse

    fields = set(Action.model_fields) | set(RankResponse.model_fields)
    assert set(FILE_COLUMNS) <= fields
