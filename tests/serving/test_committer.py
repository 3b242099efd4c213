"""The worker's group commit through its commit process: durable answers, refusals, news, a lost process."""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from nextbest.config import NextbestConfig
from nextbest.errors import NotFoundError
from nextbest.live.history import BaseHistory
from nextbest.live.register import ContactGate, News, RecordedFeedback, write
from nextbest.live.store import LiveStore, StoreUnavailableError
from nextbest.serving.committer import Committer

from tests.live.conftest import config  # noqa: F401 - the fixture: the default config, one contact a week
from tests.live.test_reservations import T0, row


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LiveStore]:
    s = LiveStore(f"sqlite:///{tmp_path / 'live.db'}", writer="worker")
    yield s
    s.close()


@pytest.fixture
def news() -> list[News]:
    return []


@pytest.fixture
def committer(store: LiveStore, config: NextbestConfig, news: list[News]) -> Iterator[Committer]:
    c = Committer(store, news.append, retry_s=2.0).start()
    c.reset(config, BaseHistory.empty(config, T0 - dt.timedelta(days=1)))
    yield c
    c.close()


def stored_ids(store: LiveStore) -> set[str]:
    # A fresh store object: what another process would read, not this one's cache.
    fresh = LiveStore(store.url, writer="reader")
    try:
        return fresh.logged_ids()[0]
    finally:
        fresh.close()


def test_rows_are_committed_when_the_answer_comes(committer: Committer, store: LiveStore, config: NextbestConfig) -> None:
    offers = [o.id for o in config.offers.offers]
    futures = []

    def send(t: int) -> None:
        for k in range(10):
            futures.append(committer.submit(decisions=[row(f"{t}-{k}", 100 * t + k, offers[0], "worker")]))

    threads = [threading.Thread(target=send, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    written = [f.result(30) for f in futures]
    assert all(not w.rejected for w in written)
    assert stored_ids(store) == {f"{t}-{k}" for t in range(4) for k in range(10)}
    assert committer.pid != os.getpid() and committer.healthy


def test_outcomes_of_known_and_unknown_decisions_are_answered(committer: Committer, config: NextbestConfig) -> None:
    offers = [o.id for o in config.offers.offers]
    assert not committer.submit(decisions=[row("a", 7, offers[0], "worker")]).result(30).rejected
    outcomes = committer.submit(outcomes=[
        {"decision_id": "a", "ts": T0 + dt.timedelta(hours=2), "outcome": "click", "revenue": None},
        {"decision_id": "nope", "ts": T0 + dt.timedelta(hours=2), "outcome": "click", "revenue": None},
    ]).result(30).outcomes
    assert isinstance(outcomes[0], RecordedFeedback) and outcomes[0].created
    assert isinstance(outcomes[1], NotFoundError) and "decision_id 'nope' is unknown" in str(outcomes[1])


def test_other_writers_news_arrives_before_the_answer(
    committer: Committer, store: LiveStore, config: NextbestConfig, news: list[News]
) -> None:
    offers = [o.id for o in config.offers.offers]
    other = LiveStore(store.url, writer="other")
    gate = ContactGate(other, config, BaseHistory.empty(config, T0 - dt.timedelta(days=1)))
    with other.writing() as con:
        gate.reset(con)
        write(con, other, [row("theirs", 9, offers[0], "other")], gate=gate)
    other.close()
    # This worker's own contact for the same customer: refused, since the other's is now known.
    written = committer.submit(decisions=[row("mine", 9, offers[1], "worker", minutes=5)]).result(30)
    assert written.rejected == {"mine"}
    assert news and list(news[0].contacts["customer_id"]) == [9]


def test_a_lost_commit_process_fails_its_callers_and_a_new_one_takes_over(
    committer: Committer, store: LiveStore, config: NextbestConfig
) -> None:
    offers = [o.id for o in config.offers.offers]
    committer.submit(decisions=[row("before", 1, offers[0], "worker")]).result(30)
    assert committer.pid is not None
    os.kill(committer.pid, signal.SIGKILL)
    with pytest.raises(StoreUnavailableError):
        # Either refused at once (the socket is closed) or failed when the reader sees the end.
        committer.submit(decisions=[row("lost", 2, offers[0], "worker")]).result(30)
    for _ in range(200):  # the process is reaped a moment after its socket closes
        if not committer.alive:
            break
        time.sleep(0.05)
    assert not committer.alive and not committer.healthy
    committer.restart()
    committer.reset(config, BaseHistory.empty(config, T0 - dt.timedelta(days=1)))
    assert not committer.submit(decisions=[row("after", 3, offers[0], "worker")]).result(30).rejected
    assert committer.healthy
    assert {"before", "after"} <= stored_ids(store)
