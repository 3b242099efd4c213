"""The live store on SQLite and PostgreSQL: registering, outcomes, erasure, URLs."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from nextbest.errors import BadInputError, NotFoundError
from nextbest.live.register import ERASED_ID, record_outcomes, register_decisions
from nextbest.live.schema import decisions, outcomes
from nextbest.live.store import LiveStore, StoreUnavailableError

T0 = dt.datetime(2024, 6, 1, 10)


def decision(did: str, customer: int, *, ts: dt.datetime = T0, offer: str = "kids_summer", channel: str = "email",
             contacted: bool = True) -> dict[str, object]:
    return {"decision_id": did, "customer_id": customer, "ts": ts, "offer_id": offer, "channel": channel,
            "arm": "champion", "experiment": None, "propensity": 0.9, "model_version": "m/1", "score": 1.5,
            "contacted": contacted}


def frame(*rows: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def outcome(did: str, what: str = "conversion", revenue: float | None = 10.0) -> pd.DataFrame:
    return pd.DataFrame([{"decision_id": did, "ts": T0 + dt.timedelta(hours=1), "outcome": what, "revenue": revenue}])


def test_decisions_and_outcomes_round_trip_once(store: LiveStore) -> None:
    assert register_decisions(store, frame(decision("d1", 1), decision("d2", 2))) == 2
    first = record_outcomes(store, outcome("d1"))
    again = record_outcomes(store, outcome("d1"))
    assert [r.created for r in first] == [True] and [r.created for r in again] == [False]
    assert first[0].customer_id == 1
    with store.reading() as con:
        stored = store.rows_after(con, outcomes, 0)
    assert stored[["decision_id", "outcome", "revenue"]].values.tolist() == [["d1", "conversion", 10.0]]


def test_an_unknown_decision_stores_nothing(store: LiveStore) -> None:
    register_decisions(store, frame(decision("d1", 1)))
    both = pd.concat([outcome("d1"), outcome("nope", "click", None)], ignore_index=True)
    with pytest.raises(NotFoundError, match="decision_id 'nope' is unknown"):
        record_outcomes(store, both)
    with store.reading() as con:
        assert store.rows_after(con, outcomes, 0).empty


def test_negative_outcomes_become_consent_changes(store: LiveStore) -> None:
    register_decisions(store, frame(decision("d1", 7, channel="sms")))
    record_outcomes(store, outcome("d1", "unsubscribe", None))
    with store.reading() as con:
        negatives = store.negatives_after(con, 0)
        from nextbest.live.schema import consent_changes

        changes = store.rows_after(con, consent_changes, 0)
    assert negatives["customer_id"].tolist() == [7]
    assert changes[["customer_id", "channel", "kind"]].values.tolist() == [[7, "sms", "unsubscribe"]]


def test_forget_erases_and_later_decisions_are_anonymous(store: LiveStore) -> None:
    register_decisions(store, frame(decision("d1", 5), decision("d2", 6)))
    record_outcomes(store, outcome("d1"))
    assert store.forget(5) == {"outcomes": 1, "consent_changes": 0, "decisions": 1}
    assert store.forget(5) == {"outcomes": 0, "consent_changes": 0, "decisions": 0}  # idempotent
    register_decisions(store, frame(decision("d3", 5)))
    with store.reading() as con:
        rows = store.rows_after(con, decisions, 0)
        assert store.erased_after(con, 0)[0][1] == 5
    assert sorted(rows["customer_id"].tolist()) == [ERASED_ID, 6]


def test_seq_never_goes_back_after_an_erasure(store: LiveStore) -> None:
    register_decisions(store, frame(decision("d1", 1), decision("d2", 2)))
    with store.reading() as con:
        top = store.last_seq(con, decisions)
    store.forget(2)  # the last row goes
    register_decisions(store, frame(decision("d3", 3)))
    with store.reading() as con:
        assert store.rows_after(con, decisions, top)["decision_id"].tolist() == ["d3"]


def test_two_stores_on_one_url_share_their_id(store_url: str) -> None:
    a, b = LiveStore(store_url), LiveStore(store_url)
    try:
        assert a.store_id == b.store_id
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "is not a database URL; use e.g. sqlite:///"),
        ("mysql://u@h/db", "'mysql' is not supported; use sqlite:///... (one machine) or postgresql://..."),
        ("postgresql+nodriver://u@h/db", "no driver for 'postgresql+nodriver'"),
    ],
)
def test_bad_urls_name_the_setting_and_the_fix(url: str, message: str) -> None:
    with pytest.raises(BadInputError, match="NEXTBEST_LIVE_URL") as err:
        LiveStore(url)
    assert message in str(err.value)


def test_an_unreachable_database_is_unavailable_not_a_crash() -> None:
    with pytest.raises(StoreUnavailableError, match="unavailable"):
        LiveStore("postgresql://nobody@127.0.0.1:9/none", busy_timeout_s=1)
