"""A real 2-worker server under load and faults: nothing acknowledged is lost, caps hold across
workers, a batch job runs beside it, an erasure reaches it while it serves."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import select

from nextbest.live.schema import decisions
from nextbest.live.store import LiveStore
from nextbest.serving.histories import utc_now
from nextbest.warehouse.db import connect
from tests.serving.conftest import NEXTBEST, Server, TrainedWorkspace, run_cli

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.xdist_group("server")]


def load(url: str, seconds: float, customers: range, clients: int = 8) -> dict[str, object]:
    """``clients`` threads posting /rank then /feedback for ``seconds``; what was acknowledged, and every status."""
    acked_decisions: list[str] = []
    acked_feedback: list[str] = []
    statuses: list[int] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            i = k
            while time.monotonic() < stop:
                cid = customers[i % len(customers)]
                i += clients
                try:
                    r = http.post("/rank", json={"customer_id": cid, "top_k": 1})
                except httpx.HTTPError:
                    return  # the server went away (the kill -9 test)
                with lock:
                    statuses.append(r.status_code)
                if r.status_code != 200:
                    continue
                did = r.json()["decision_id"]
                with lock:
                    acked_decisions.append(did)
                try:
                    f = http.post("/feedback", json={"decision_id": did, "outcome": "open", "timestamp": "2024-06-01T00:00:00Z"})
                except httpx.HTTPError:
                    return
                with lock:
                    statuses.append(f.status_code)
                    if f.status_code == 202:
                        acked_feedback.append(did)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    return {"decisions": acked_decisions, "feedback": acked_feedback, "statuses": statuses}


def live_rows(url: str) -> tuple[set[str], set[str]]:
    """Decision ids stored in the live store at ``url``, and those with an outcome."""
    store = LiveStore(url)
    try:
        return store.logged_ids()
    finally:
        store.close()


@pytest.fixture(scope="module")
def tight_ws(trained_workspace: TrainedWorkspace, private_tmp: Path) -> Path:
    """A copy of the trained workspace whose policy allows one contact a week."""
    ws = trained_workspace.copy(private_tmp / "durability" / "ws")
    policy = ws.config_dir / "policy.yaml"
    policy.write_text(policy.read_text().replace("max_contacts: 2", "max_contacts: 1"))
    return ws.root


@pytest.fixture(scope="module")
def two_workers(tight_ws: Path) -> Iterator[Server]:
    """A 2-worker server for the module; the kill -9 test, the last to use it, kills it."""
    srv = Server(tight_ws, workers=2).wait_ready()
    yield srv
    srv.stop()  # at once when the kill -9 test has killed it already


def test_caps_hold_across_workers_and_a_batch_job_runs_beside_the_load(two_workers: Server, tight_ws: Path) -> None:
    result: dict[str, object] = {}
    began = utc_now()
    loader = threading.Thread(target=lambda: result.update(load(two_workers.url, 25, range(1, 60))))
    loader.start()
    time.sleep(3)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    build = subprocess.run([*NEXTBEST, "--workspace", str(tight_ws), "features", "build"], capture_output=True,
                           text=True, timeout=600, env=env)
    loader.join(300)
    assert build.returncode == 0, build.stderr[-2000:]
    statuses = result["statuses"]
    assert statuses and all(s < 500 for s in statuses), sorted(set(statuses))  # type: ignore[union-attr]
    assert len(result["decisions"]) > 50  # type: ignore[arg-type]
    # Everything acknowledged is in the live store, then in the warehouse after a sync.
    ds, fs = live_rows(f"sqlite:///{tight_ws / 'live.db'}")
    assert set(result["decisions"]) <= ds and set(result["feedback"]) <= fs  # type: ignore[arg-type]
    run_cli(tight_ws, "data", "sync")
    con = connect(tight_ws / "warehouse.duckdb", read_only=True)
    try:
        from nextbest.simulation.violations import count_violations
        from nextbest.workspace import Workspace

        config = Workspace.resolve(tight_ws).config()
        # Only the service's decisions: the generated history was never held to this tighter policy.
        violations = count_violations(con, config, began, utc_now() + dt.timedelta(seconds=1))
    finally:
        con.close()
    caps = {k: v for k, v in violations.items() if k in ("contact_cap", "channel_cap", "offer_cooldown", "channel_capacity", "offer_cap")}
    assert not any(caps.values()), caps


def test_an_erasure_reaches_the_running_workers(two_workers: Server, tight_ws: Path) -> None:
    con = connect(tight_ws / "warehouse.duckdb", read_only=True)
    try:
        known = int(con.execute("SELECT max(customer_id) FROM features.customer_snapshot").fetchone()[0])
    finally:
        con.close()
    with two_workers.client() as api:
        first = api.post("/rank", json={"customer_id": known}).json()
        assert first["cold_start"] is False, first
        run_cli(tight_ws, "data", "forget", "--customer-id", str(known))
        deadline = time.monotonic() + 20
        answers: list[bool] = []
        while time.monotonic() < deadline:
            # Both workers must have dropped the customer: ask a few times in a row.
            answers = [api.post("/rank", json={"customer_id": known}).json()["cold_start"] for _ in range(6)]
            if all(answers):
                break
            time.sleep(0.5)
        assert all(answers)
    store = LiveStore(f"sqlite:///{tight_ws / 'live.db'}")
    try:
        with store.reading() as con:
            left = con.execute(select(decisions.c.decision_id).where(decisions.c.customer_id == known)).fetchall()
    finally:
        store.close()
    assert left == []


def test_kill_9_of_every_process_loses_nothing_acknowledged(two_workers: Server, tight_ws: Path) -> None:
    # The module's server (a start saved), killed here: its other tests come before this one.
    srv = two_workers
    assert srv.proc.poll() is None, "the module's server is already down"
    workers = psutil.Process(srv.proc.pid).children(recursive=True)
    assert len(workers) >= 2
    result: dict[str, object] = {}
    loader = threading.Thread(target=lambda: result.update(load(srv.url, 30, range(100, 400))))
    loader.start()
    time.sleep(6)
    srv.stop(signal.SIGKILL)  # the group and every worker (they run in their own session): no shutdown hook
    loader.join(120)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
    ds, fs = live_rows(f"sqlite:///{tight_ws / 'live.db'}")
    assert result["decisions"], "the load made no decision before the kill"
    lost_d = set(result["decisions"]) - ds  # type: ignore[arg-type]
    lost_f = set(result["feedback"]) - fs  # type: ignore[arg-type]
    assert not lost_d and not lost_f, (len(lost_d), len(lost_f))

    again = Server(tight_ws).wait_ready()
    try:
        with again.client() as api:
            did = next(iter(result["feedback"]))  # type: ignore[call-overload]
            repeat = api.post("/feedback", json={"decision_id": did, "outcome": "open", "timestamp": "2024-06-01T00:00:00Z"})
            assert repeat.status_code == 202 and repeat.json()["duplicate"] is True
            unknown = api.post("/feedback", json={"decision_id": "never-made", "outcome": "open", "timestamp": "2024-06-01T00:00:00Z"})
            assert unknown.status_code == 404
    finally:
        again.stop()


def test_serve_refuses_to_start_without_a_champion(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    subprocess.run([*NEXTBEST, "--workspace", str(ws), "init"], check=True, capture_output=True, env=env)
    connect(ws / "warehouse.duckdb").close()
    done = subprocess.run([*NEXTBEST, "--workspace", str(ws), "serve", "--port", "9"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 2
    assert "no champion model registered" in done.stderr
    assert "run `nextbest train`" in done.stderr


@pytest.mark.postgres
def test_two_workers_on_postgresql_keep_caps_and_survive_kill_9(
    trained_workspace: TrainedWorkspace, private_tmp: Path, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = trained_workspace.copy(private_tmp / "durability-pg" / "ws")
    policy = ws.config_dir / "policy.yaml"
    policy.write_text(policy.read_text().replace("max_contacts: 2", "max_contacts: 1"))
    monkeypatch.setenv("NEXTBEST_LIVE_URL", postgres_url)
    srv = Server(ws.root, workers=2).wait_ready()
    began = utc_now()
    result: dict[str, object] = {}
    loader = threading.Thread(target=lambda: result.update(load(srv.url, 20, range(1, 40))))
    loader.start()
    time.sleep(12)
    srv.stop(signal.SIGKILL)
    loader.join(120)
    statuses = result["statuses"]
    assert statuses and all(s < 500 for s in statuses), sorted(set(statuses))  # type: ignore[union-attr]
    ds, fs = live_rows(postgres_url)
    assert result["decisions"] and set(result["decisions"]) <= ds  # type: ignore[arg-type]
    assert set(result["feedback"]) <= fs  # type: ignore[arg-type]
    run_cli(ws.root, "data", "sync")
    con = connect(ws.warehouse_path, read_only=True)
    try:
        from nextbest.simulation.violations import count_violations

        violations = count_violations(con, ws.config(), began, utc_now() + dt.timedelta(seconds=1))
    finally:
        con.close()
    caps = {k: violations[k] for k in ("contact_cap", "channel_cap", "offer_cooldown", "channel_capacity", "offer_cap")}
    assert not any(caps.values()), caps
