"""The portable as-of match against DuckDB's ASOF JOIN, ties at snapshot times included."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

from nextbest.training.asof import asof_match


def tied_tables(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Decisions and snapshots on a coarse time grid, so many decisions fall exactly on a snapshot time,
    several decisions share a time, and some customers have no snapshot (or none early enough)."""
    rng = np.random.default_rng(seed)
    days = pd.Timestamp("2024-03-01") + pd.to_timedelta(np.arange(12), unit="D")
    snaps = pd.DataFrame([(c, t) for c in range(1, 9) for t in days[::3] if rng.random() < 0.7],
                         columns=["customer_id", "as_of"])
    n = 400
    decisions = pd.DataFrame({
        "decision_id": [f"d{i:04d}" for i in range(n)],
        "customer_id": rng.integers(1, 11, n),  # 9 and 10 never have a snapshot
        "offer_id": rng.choice(["a", "b"], n),
        # Half exactly at a midnight (a snapshot time), half within a day.
        "ts": days[rng.integers(0, len(days), n)] + pd.to_timedelta(rng.integers(0, 2, n) * rng.integers(0, 86400, n),
                                                                     unit="s"),
    })
    return decisions, snaps


def asof_reference(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(
        "SELECT d.decision_id, s.as_of AS matched_as_of FROM d ASOF LEFT JOIN snaps s "
        "ON d.customer_id = s.customer_id AND d.ts >= s.as_of ORDER BY d.decision_id"
    ).df()


def test_window_form_matches_asof_join_including_ties() -> None:
    decisions, snaps = tied_tables()
    con = duckdb.connect()
    con.register("d", decisions)
    con.register("snaps", snaps)
    got = con.execute(f"SELECT * FROM ({asof_match('d', 'decision_id', 'ts', 'snaps', 'as_of', ('customer_id',))}) "
                      "ORDER BY decision_id").df()
    want = asof_reference(con)
    pd.testing.assert_frame_equal(got, want)
    # The grid does produce ties, decisions without any snapshot, and decisions before the first one.
    on_snapshot = decisions.merge(snaps, left_on=["customer_id", "ts"], right_on=["customer_id", "as_of"])
    assert len(on_snapshot) > 20
    assert got["matched_as_of"].isna().sum() > 20
    assert (got.set_index("decision_id").loc[on_snapshot["decision_id"], "matched_as_of"].to_numpy()
            == on_snapshot["as_of"].to_numpy()).all()


def test_several_keys() -> None:
    decisions, snaps = tied_tables(seed=1)
    hist = snaps.assign(offer_id="a")
    hist = pd.concat([hist, snaps.iloc[::2].assign(offer_id="b")], ignore_index=True)
    con = duckdb.connect()
    con.register("d", decisions)
    con.register("hist", hist)
    got = con.execute(
        f"SELECT * FROM ({asof_match('d', 'decision_id', 'ts', 'hist', 'as_of', ('customer_id', 'offer_id'))}) "
        "ORDER BY decision_id").df()
    want = con.execute(
        "SELECT d.decision_id, h.as_of AS matched_as_of FROM d ASOF LEFT JOIN hist h "
        "ON d.customer_id = h.customer_id AND d.offer_id = h.offer_id AND d.ts >= h.as_of ORDER BY d.decision_id"
    ).df()
    pd.testing.assert_frame_equal(got, want)
