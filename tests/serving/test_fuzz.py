"""Fuzzing the service's OpenAPI spec with schemathesis against a real `nextbest serve`: no request gets a 5xx.

Schemathesis reads the spec the server publishes at ``/docs.json`` and sends, per
operation, its explicit examples, its coverage cases (boundary values of every
constraint: 64-bit ids and seeds, lengths, missing and wrong-typed fields,
unexpected methods and content types) and then ``MAX_EXAMPLES`` generated
requests, valid and invalid ones, one at a time. The run is deterministic (fixed
seed, derandomized, no example database) and never shrinks, so its length is
bounded: about 3,000 requests, one to two minutes on a 2-core machine.

A random date-time is almost never within the server's window around now, nor a
random string a logged decision_id: left alone, the generated requests would
only fuzz the refusals. So two valid requests in three are given a time inside
the window (and ``/feedback`` a real decision_id) before they are sent
(:func:`accepted`); invalid ones are sent as generated.

It runs schemathesis's engine (what its CLI runs) rather than its pytest
plugin: the plugin's loader for a schema from a fixture (``from_fixture``, the
only way to fuzz a server a fixture starts) sets ``node._nodeid``, which pytest 9
no longer has.

Checks: no server error, documented status codes and content types. Three of
schemathesis's other checks are left out on purpose:

- ``positive_data_acceptance``: a body valid by the spec can still be refused,
  by design, for what no schema can say (a timestamp outside the server's
  window around now, a channel the configuration does not have, an unknown
  decision_id is 404);
- ``response_schema_conformance``: decision documents carry naive UTC
  timestamps (``"at": "2024-06-01T09:00:00"``, the CLI's JSON shape too) where
  the spec says RFC 3339 ``date-time``; and BentoML's own ``/noop`` answers 400
  in a shape other than the one its generated spec documents;
- ``negative_data_rejection``: pydantic's lax mode takes some values the spec
  calls invalid (``false`` or ``"5"`` for an integer) as what they mean.

``/admin/refresh`` is not fuzzed: each call rebuilds the whole serving state
(models, feature snapshot, every customer's plan: seconds each) and takes no
input to fuzz; ``test_service.py`` covers it.
"""

from __future__ import annotations

import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from schemathesis import GenerationMode, engine
from schemathesis.engine import Status, StopReason, events

from tests.serving.conftest import TOKEN, Server, TrainedWorkspace

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.xdist_group("server")]

#: Generated requests per operation, beyond its examples and coverage cases (~N + 100 requests per POST route).
MAX_EXAMPLES = 850
#: ... but for BentoML's ``/noop`` (one optional integer), which needs few.
NOOP_EXAMPLES = 100
#: ``NEXTBEST_RANK_BATCH_MAX`` of the fuzzed server: longer generated batches are 422, not ranked.
BATCH_MAX = 50
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: Times inside the window (the test workspace's world lives in 2024), with and without zone.
ACCEPTED_TIMES = ("2024-05-02T10:00:00Z", "2024-05-03T00:00:00+02:00", "2024-05-04T12:00:00")
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance")


@pytest.fixture(scope="module")
def fuzzed_server(trained_workspace: TrainedWorkspace, private_tmp: Path) -> Iterator[Server]:
    """An authenticated server on its own copy of the workspace (fuzzing writes decisions and feedback)."""
    ws = trained_workspace.copy(Path(tempfile.mkdtemp(dir=private_tmp)) / "ws")
    srv = Server(ws.root, token=TOKEN, env={"NEXTBEST_RANK_BATCH_MAX": str(BATCH_MAX)}).wait_ready()
    yield srv
    srv.stop()


def accepted(case: schemathesis.Case, decisions: list[str]) -> schemathesis.Case:
    """``case``, or for two valid bodies in three (a fixed choice per body) the same with accepted values:
    a timestamp inside the window and, for ``/feedback``, a logged decision_id."""
    body = case.body
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE or not isinstance(body, dict):
        return case
    pick = zlib.crc32(repr(sorted(body.items(), key=str)).encode())
    if pick % 3 == 0:
        return case
    when = ACCEPTED_TIMES[pick % len(ACCEPTED_TIMES)]
    if case.operation.label == "POST /feedback":
        case.body = {**body, "decision_id": decisions[pick % len(decisions)], "timestamp": when}
    elif isinstance(body.get("context"), dict) and body["context"].get("timestamp") is not None:
        case.body = {**body, "context": {**body["context"], "timestamp": when}}
    return case


def served_spec(url: str, decisions: list[str]) -> schemathesis.BaseSchema:
    """The spec ``url`` serves, configured for a bounded, deterministic, sequential run."""
    config = schemathesis.Config.from_dict(
        {
            "seed": 20261206,
            "base-url": url,
            "headers": AUTH,
            "workers": 1,
            "generation": {
                "mode": "all",  # valid and invalid requests
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "no-shrink": True,
                "database": "none",
            },
            "operations": [{"include-path": "/noop", "generation": {"max-examples": NOOP_EXAMPLES}}],
            "phases": {"stateful": {"enabled": False}},
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
        }
    )
    spec = schemathesis.openapi.from_url(f"{url}/docs.json", config=config, headers=AUTH, timeout=60)

    @spec.hook
    def map_case(_: schemathesis.HookContext, case: schemathesis.Case) -> schemathesis.Case:
        return accepted(case, decisions)

    return spec.exclude(path="/admin/refresh")


def test_no_request_gets_a_server_error(fuzzed_server: Server) -> None:
    sent: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    statuses: Counter[tuple[str, int | None]] = Counter()
    failures: list[str] = []
    errors: list[str] = []
    stopped: StopReason | None = None
    with fuzzed_server.client() as client:
        at = {"timestamp": ACCEPTED_TIMES[0]}
        decisions = [client.post("/rank", json={"customer_id": c, "context": at}).json()["decision_id"] for c in range(1, 25)]
    started = time.monotonic()
    for event in engine.from_schema(served_spec(fuzzed_server.url, decisions)).execute():
        if isinstance(event, events.ScenarioFinished):
            label = event.recorder.label
            seconds[label] += event.elapsed_time
            for interaction in event.recorder.interactions.values():
                sent[label] += 1
                statuses[(label, interaction.response.status_code if interaction.response else None)] += 1
            for checks in event.recorder.checks.values():
                failures.extend(
                    f"{label}: {c.name}: {c.failure_info.failure.title}\n  {c.failure_info.code_sample}"
                    for c in checks
                    if c.status == Status.FAILURE and c.failure_info is not None
                )
        elif isinstance(event, events.NonFatalError):
            errors.append(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            errors.append(repr(event.exception))
        elif isinstance(event, events.EngineFinished):
            stopped = event.stop_reason
            failures.extend(f"after run: {f.title}: {f.message}" for f in event.failures)
    elapsed = time.monotonic() - started
    print(f"\nschemathesis: {sum(sent.values())} requests in {elapsed:.0f} s: {dict(sent)}")
    print(f"seconds: { {k: round(v) for k, v in seconds.items()} }")
    print(f"statuses: {dict(sorted(statuses.items(), key=str))}")

    assert not errors, "\n".join(errors)
    assert not failures, "\n".join(dict.fromkeys(failures))
    assert stopped == StopReason.COMPLETED, stopped
    assert not [k for k in statuses if k[1] is None or k[1] >= 500]
    for route, ok in (("POST /rank", 200), ("POST /rank_batch", 200), ("POST /feedback", 202)):
        assert sent[route] >= MAX_EXAMPLES / 2, (route, sent[route])
        assert statuses[(route, 422)] > 0 and statuses[(route, ok)] > 0, route
    # The server is still healthy after all that.
    with fuzzed_server.client() as client:
        assert client.post("/rank", json={"customer_id": 3}).status_code == 200
