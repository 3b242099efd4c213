"""The point-in-time training-set join."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from nextbest.config import load_config
from nextbest.errors import BadInputError, NotFoundError
from nextbest.training.dataset import build_training_set, time_split
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace

T0 = dt.datetime(2024, 3, 1)


def _warehouse(path: str) -> duckdb.DuckDBPyConnection:
    """Two decisions and three snapshots around them, one of them *after* the decisions."""
    con = connect(path)
    con.execute("CREATE SCHEMA features")
    con.execute(
        "CREATE TABLE features.customer_snapshot (as_of TIMESTAMP, customer_id BIGINT, engagement_score DOUBLE, "
        "urbanity VARCHAR, email VARCHAR)"
    )
    con.execute(
        "CREATE TABLE features.offer_history (as_of TIMESTAMP, customer_id BIGINT, offer_id VARCHAR, shown_30d BIGINT)"
    )
    con.executemany(
        "INSERT INTO features.customer_snapshot VALUES (?, ?, ?, ?, ?)",
        [
            (T0 - dt.timedelta(days=14), 1, 1.0, "urban", "a@b.c"),
            (T0, 1, 2.0, "urban", "a@b.c"),  # as of the decision day's midnight: used
            (T0 + dt.timedelta(days=1), 1, 999.0, "rural", "a@b.c"),  # after the decision: never used
            (T0, 2, 5.0, "rural", "x@y.z"),
        ],
    )
    con.executemany(
        "INSERT INTO features.offer_history VALUES (?, ?, ?, ?)",
        [(T0 - dt.timedelta(days=7), 1, "book_club", 1), (T0 + dt.timedelta(days=1), 1, "book_club", 99)],
    )
    decisions = [
        ("d1", 1, T0 + dt.timedelta(hours=10), "book_club", "email", "random", "historical", 0.1, None, None, True),
        ("d2", 2, T0 + dt.timedelta(hours=11), "book_club", "sms", "control", "historical", 0.1, None, None, False),
        ("d3", 1, T0 + dt.timedelta(days=40), "book_club", "sms", "random", "historical", 0.1, None, None, True),
        ("d4", 2, T0 + dt.timedelta(hours=12), None, None, "champion", "nba", None, None, None, False),
    ]
    con.executemany("INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", decisions)
    con.executemany(
        "INSERT INTO responses VALUES (?, ?, ?, ?)",
        [
            ("d1", T0 + dt.timedelta(days=3), "conversion", 42.0),
            ("d1", T0 + dt.timedelta(days=1), "click", None),
            ("d2", T0 + dt.timedelta(days=20), "conversion", 10.0),  # outside the 14-day window
        ],
    )
    return con


def test_join_never_uses_a_snapshot_after_the_decision(tmp_path) -> None:  # type: ignore[no-untyped-def]
    con = _warehouse(str(tmp_path / "w.duckdb"))
    data = build_training_set(
        con, load_config(None), features=("engagement_score", "urbanity"), categorical=("urbanity",),
        offer_history={"shown_30d": 0},
    )
    frame = data.frame.set_index("decision_id")
    # d3's window closes after the last event (d3 itself), so it is not labelled yet; d4 had no action.
    assert list(frame.index) == ["d1", "d2"]
    assert (frame["snapshot_as_of"] <= frame["ts"]).all()
    assert frame.loc["d1", "engagement_score"] == 2.0
    assert frame.loc["d1", "urbanity"] == "urban"
    assert frame.loc["d1", "shown_30d"] == 1
    assert frame.loc["d2", "shown_30d"] == 0  # never shown: the registry default, not null
    assert bool(frame.loc["d1", "label"]) and frame.loc["d1", "revenue"] == 42.0
    assert not bool(frame.loc["d2", "label"])  # conversion after the response window
    assert "email" not in frame.columns
    assert data.feature_columns == ("engagement_score", "urbanity", "shown_30d", "offer_id", "channel")


def test_label_is_configurable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    con = _warehouse(str(tmp_path / "w.duckdb"))
    config = load_config(None)
    clicks = config.model_copy(update={"training": config.training.model_copy(update={"label": "click"})})
    frame = build_training_set(con, clicks, features=("engagement_score",)).frame.set_index("decision_id")
    assert bool(frame.loc["d1", "label"]) and frame.loc["d1", "revenue"] == 42.0


@pytest.mark.parametrize(
    ("features", "error", "message"),
    [
        (("email",), BadInputError, r"personal column\(s\) \['email'\]"),
        (("no_such_feature",), BadInputError, r"customer_snapshot lacks feature column\(s\) \['no_such_feature'\]"),
    ],
)
def test_invalid_feature_requests(tmp_path, features, error, message) -> None:  # type: ignore[no-untyped-def]
    con = _warehouse(str(tmp_path / "w.duckdb"))
    with pytest.raises(error, match=message):
        build_training_set(con, load_config(None), features=features)


def test_missing_snapshots_are_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    con = connect(tmp_path / "w.duckdb")
    with pytest.raises(NotFoundError, match="run `nextbest features build` first"):
        build_training_set(con, load_config(None), features=("age",))


def test_synthetic_log_has_truth_and_both_arms(training_set) -> None:  # type: ignore[no-untyped-def]
    assert training_set.has_truth
    frame = training_set.frame
    assert frame["contacted"].any() and (~frame["contacted"]).any()
    assert (pd.to_datetime(frame["snapshot_as_of"]) <= pd.to_datetime(frame["ts"])).all()


def test_time_split_orders_parts_and_keeps_equal_times_together() -> None:
    ts = pd.Series(pd.to_datetime(["2024-01-01"] * 50 + ["2024-02-01"] * 30 + ["2024-03-01"] * 20))
    split = time_split(ts, 0.2, 0.2)
    assert split.train.sum() == 50 and split.validation.sum() == 30 and split.test.sum() == 20
    assert ts[split.train].max() < ts[split.validation].min() <= ts[split.validation].max() < ts[split.test].min()


def test_time_split_refuses_too_few_times() -> None:
    with pytest.raises(BadInputError, match="the validation part is empty"):
        time_split(pd.Series(pd.to_datetime(["2024-01-01"] * 10 + ["2024-02-01"] * 10)), 0.15, 0.15)


def test_feature_set_is_registered_model_features_only(workspace: Workspace) -> None:
    from nextbest.features.registry import model_features

    assert not set(model_features(workspace.config())) & {"first_name", "email", "phone", "street_address", "postcode"}


def test_contact_pressure_is_counted_at_each_decision_from_the_log_before_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The snapshot's contacts_7d/30d stop at its as-of; the training row counts the contacts before the decision
    itself, with the feature SQL's definition (contacted, with an offer, at most 7 / 30 days old)."""
    con = connect(tmp_path / "w.duckdb")
    con.execute("CREATE SCHEMA features")
    con.execute(
        "CREATE TABLE features.customer_snapshot (as_of TIMESTAMP, customer_id BIGINT, engagement_score DOUBLE, "
        "contacts_7d BIGINT, contacts_30d BIGINT)"
    )
    con.execute("INSERT INTO features.customer_snapshot VALUES (?, 1, 1.0, 0, 0)", [T0 - dt.timedelta(days=40)])
    day = dt.timedelta(days=1)
    rows = [  # (id, time, offer, contacted)
        ("a", T0 - 35 * day, "book_club", True),   # older than 30 days at every decision below
        ("b", T0 - 20 * day, "book_club", True),   # in 30 days of c and d
        ("c", T0 - 6 * day, "book_club", True),    # in 7 days of d (5 days before)
        ("e", T0 - 3 * day, "book_club", False),   # held out: not a contact
        ("f", T0 - 2 * day, None, True),           # no action: not a contact
        ("d", T0 - 1 * day, "book_club", True),
        ("g", T0 + 30 * day, "book_club", True),   # closes the response windows
    ]
    con.executemany(
        "INSERT INTO decisions VALUES (?, 1, ?, ?, 'email', 'random', 'historical', 0.1, NULL, NULL, ?)",
        [(i, ts, o, c) for i, ts, o, c in rows],
    )
    frame = build_training_set(
        con, load_config(None), features=("engagement_score", "contacts_7d", "contacts_30d")
    ).frame.set_index("decision_id")
    pressure = {i: frame.loc[i, ["contacts_7d", "contacts_30d"]].tolist() for i in ("a", "b", "c", "e", "d")}
    assert pressure == {
        "a": [0, 0],
        "b": [0, 1],  # a, 15 days before
        "c": [0, 2],  # a (29 days), b (14)
        "e": [1, 2],  # c (3 days), b (17); a is 32 days before
        "d": [1, 2],  # c (5 days), b (19); e was held out, f had no offer
    }
    assert "f" not in frame.index
