"""Contact reservations: writers that do not know each other's contacts never break a cap together."""

from __future__ import annotations

import datetime as dt
import threading


from nextbest.config import NextbestConfig
from nextbest.live.history import BaseHistory
from nextbest.live.register import ContactGate, decision_dict, write
from nextbest.live.schema import decisions
from nextbest.live.store import LiveStore

T0 = dt.datetime(2024, 6, 1, 10)


def row(did: str, customer: int, offer: str, writer: str, minutes: int = 0) -> dict[str, object]:
    return decision_dict({"decision_id": did, "customer_id": customer, "ts": T0 + dt.timedelta(minutes=minutes),
                          "offer_id": offer, "channel": "email", "arm": "champion", "experiment": None,
                          "propensity": 1.0, "model_version": "m/1", "score": 1.0, "contacted": True}, writer)


def test_two_writers_racing_for_one_contact_get_one(store_url: str, config: NextbestConfig) -> None:
    offers = [o.id for o in config.offers.offers]
    base = BaseHistory.empty(config, T0 - dt.timedelta(days=1))
    stores = [LiveStore(store_url, writer=f"w{i}") for i in range(2)]
    gates = [ContactGate(s, config, base) for s in stores]
    for s, g in zip(stores, gates, strict=True):
        with s.writing() as con:
            g.reset(con)
    barrier = threading.Barrier(2)
    customers = range(1, 41)

    def work(i: int) -> None:
        barrier.wait()
        for cid in customers:
            # Each writer offers a different offer: only the weekly cap of one contact stops the second.
            with stores[i].writing() as con:
                write(con, stores[i], [row(f"{i}-{cid}", cid, offers[i], stores[i].writer, minutes=i)], gate=gates[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    with stores[0].reading() as con:
        stored = stores[0].rows_after(con, decisions, 0)
    for s in stores:
        s.close()
    per_customer = stored.groupby("customer_id").size()
    assert len(per_customer) == len(customers)
    assert (per_customer == 1).all(), per_customer[per_customer > 1]


def test_a_refused_contact_is_not_stored_and_news_reaches_the_other_writer(store_url: str, config: NextbestConfig) -> None:
    offers = [o.id for o in config.offers.offers]
    base = BaseHistory.empty(config, T0 - dt.timedelta(days=1))
    a, b = LiveStore(store_url, writer="a"), LiveStore(store_url, writer="b")
    ga, gb = ContactGate(a, config, base), ContactGate(b, config, base)
    with a.writing() as con:
        ga.reset(con)
    with b.writing() as con:
        gb.reset(con)
    with a.writing() as con:
        first = write(con, a, [row("a1", 9, offers[0], "a")], gate=ga)
    with b.writing() as con:
        second = write(con, b, [row("b1", 9, offers[1], "b", minutes=5)], gate=gb)
    assert not first.rejected and second.rejected == {"b1"}
    assert second.news is not None and second.news.contacts["customer_id"].tolist() == [9]
    with a.reading() as con:
        assert a.rows_after(con, decisions, 0)["decision_id"].tolist() == ["a1"]
    a.close()
    b.close()
