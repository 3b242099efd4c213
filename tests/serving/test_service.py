"""The scoring service over HTTP: a real `nextbest serve` on a trained workspace."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time

import duckdb
import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient

from nextbest.errors import NotFoundError
from nextbest.models.registry import MODEL_NAME, get_version
from nextbest.serving.client import NextbestClient
from nextbest.workspace import Workspace
from tests.serving.conftest import PARITY_CUSTOMERS, PARITY_SEED, TOKEN, Server, TrainedWorkspace

pytestmark = [pytest.mark.server, pytest.mark.xdist_group("server")]

UNKNOWN = 987_654_321
NOW = "2024-05-01T00:00:00Z"


def customers(ws: TrainedWorkspace) -> dict[int, dict[str, object]]:
    con = duckdb.connect(str(ws.root / "warehouse.duckdb"), read_only=True)
    try:
        frame = con.execute("SELECT * FROM customers").df()
    finally:
        con.close()
    return {int(r["customer_id"]): r for r in frame.to_dict("records")}


def truthy(value: object) -> bool:
    """True only for a known true value (null consent is no consent)."""
    return value is not None and not pd.isna(value) and bool(value)


# ---------------------------------------------------------------------------- ranking
def test_rank_matches_the_cli_for_the_same_customer_time_and_seed(
    api: httpx.Client, trained_workspace: TrainedWorkspace
) -> None:
    for cid in PARITY_CUSTOMERS:
        body = {"customer_id": cid, "top_k": 3, "seed": PARITY_SEED, "context": {"timestamp": trained_workspace.as_of}}
        served = api.post("/rank", json=body)
        assert served.status_code == 200, served.text
        got, want = served.json(), trained_workspace.cli_rank[cid]
        for key in ("customer_id", "model_version", "experiment", "arm", "contacted", "cold_start"):
            assert got[key] == want[key], key
        assert len(got["actions"]) == len(want["actions"])
        for a, b in zip(got["actions"], want["actions"], strict=True):
            assert (a["rank"], a["offer_id"], a["channel"]) == (b["rank"], b["offer_id"], b["channel"])
            assert a["expected_value"] == pytest.approx(b["expected_value"])
            assert a["propensity"] == pytest.approx(b["propensity"])
            assert a["reasons"] == b["reasons"]
            assert a["personalisation"] == b["personalisation"]


def test_the_universal_control_group_is_never_contacted(api: httpx.Client, trained_workspace: TrainedWorkspace) -> None:
    """Batch and single requests alike: held-out customers are decided and logged, never contacted."""
    import numpy as np

    from nextbest.decisioning.scoring import in_universal_control

    config = Workspace.resolve(trained_workspace.root).config()
    ids = list(range(1000, 1400))
    held = {int(i) for i in np.array(ids)[in_universal_control(np.array(ids), config)]}
    assert 5 <= len(held) <= 45
    response = api.post("/rank_batch", json={"customer_ids": ids, "context": {"timestamp": NOW}})
    assert response.status_code == 200, response.text
    docs = response.json()["decisions"]
    assert {d["customer_id"] for d in docs if d["arm"] == config.policy.universal_control.name} == held
    assert not any(d["contacted"] for d in docs if d["customer_id"] in held)
    assert any(d["contacted"] for d in docs if d["customer_id"] not in held)
    for cid in sorted(held)[:3]:  # /rank answers from the customer's plan
        single = api.post("/rank", json={"customer_id": cid, "context": {"timestamp": NOW}}).json()
        assert single["arm"] == "universal_control" and single["contacted"] is False


def test_consent_is_never_violated(api: httpx.Client, trained_workspace: TrainedWorkspace) -> None:
    profile = customers(trained_workspace)
    ids = [*sorted(profile)[:600], UNKNOWN, UNKNOWN + 1]
    response = api.post("/rank_batch", json={"customer_ids": ids, "top_k": 5, "context": {"timestamp": NOW}})
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["count"] == len(ids)
    assert result["cold_start"] == 2
    assert [d["customer_id"] for d in result["decisions"]] == ids
    config = Workspace.resolve(trained_workspace.root).config()
    for doc in result["decisions"]:
        for action in doc["actions"]:
            if action["channel"] is None:
                continue
            channel = config.channel(action["channel"])
            if not channel.personal:
                continue
            assert not doc["cold_start"], "a cold-start customer got a personal channel"
            row = profile[doc["customer_id"]]
            assert truthy(row[channel.consent_field]), (doc["customer_id"], channel.id)
            assert truthy(row[channel.validity_field]), (doc["customer_id"], channel.id)


def test_unknown_customer_gets_a_flagged_non_personal_cold_start(api: httpx.Client) -> None:
    doc = api.post("/rank", json={"customer_id": UNKNOWN, "context": {"timestamp": NOW}}).json()
    assert doc["cold_start"] is True
    assert {a["channel"] for a in doc["actions"]} <= {"web", None}


def test_suppressed_only_when_explain_is_asked(api: httpx.Client) -> None:
    plain = api.post("/rank", json={"customer_id": 21}).json()
    explained = api.post("/rank", params={"explain": "true"}, json={"customer_id": 22}).json()
    assert "suppressed" not in plain
    assert explained["suppressed"], "explain=true lists the removed candidates"
    assert set(explained["suppressed"][0]) == {"offer_id", "channel", "reason", "detail"}


BAD_REQUESTS = [
    ("/rank", {}, "body.customer_id: Field required"),
    ("/rank", {"customer_id": "abc"}, "body.customer_id: Input should be a valid integer"),
    ("/rank", {"customer_id": 1, "top_k": 0}, "body.top_k: Input should be greater than or equal to 1"),
    ("/rank", {"customer_id": 1, "top_k": 51}, "body.top_k: Input should be less than or equal to 50"),
    ("/rank", {"customer_id": 1, "colour": "red"}, "body.colour: Extra inputs are not permitted"),
    ("/rank", {"customer_id": 1, "context": {"timestamp": "soon"}}, "body.context.timestamp: Input should be a valid datetime"),
    ("/rank", {"customer_id": 1, "context": {"mood": "happy"}}, "body.context.mood: Extra inputs are not permitted"),
    ("/rank_batch", {"customer_ids": []}, "body.customer_ids: List should have at least 1 item"),
    ("/rank_batch", {"customer_ids": [1, "x"]}, "body.customer_ids.1: Input should be a valid integer"),
    ("/feedback", {"outcome": "click", "timestamp": NOW}, "body.decision_id: Field required"),
    ("/feedback", {"decision_id": "d", "outcome": "purchase", "timestamp": NOW}, "body.outcome: Input should be 'open'"),
    ("/feedback", {"decision_id": "d", "outcome": "conversion", "revenue": -5, "timestamp": NOW},
     "body.revenue: Input should be greater than or equal to 0"),
    ("/feedback", {"decision_id": "d", "outcome": "click"}, "body.timestamp: Field required"),
]


@pytest.mark.parametrize(("path", "payload", "message"), BAD_REQUESTS)
def test_malformed_input_is_422_naming_the_field(api: httpx.Client, path: str, payload: dict, message: str) -> None:
    response = api.post(path, json=payload)
    assert response.status_code == 422
    assert message in response.json()["error"]


# Values the fuzzer (or a careless client) sends that once made a 500, or were stored and broke
# `features build` later: each is 422 naming the field and what to send instead. Bodies are raw
# JSON, so non-finite numbers and integers beyond 64 bits go over the wire as written.
BIG = 2**63  # one past the largest customer id / seed
OUTSIDE = "is outside the accepted window"
RANK_OUT_OF_RANGE = [
    ('{"customer_id": %d}' % BIG, "body.customer_id: Input should be less than or equal to 9223372036854775807"),
    ('{"customer_id": %d}' % (-BIG - 1), "body.customer_id: Input should be greater than or equal to -9223372036854775808"),
    ('{"customer_id": 1, "context": {"timestamp": "0001-01-01T00:00:00+01:00"}}',
     f"body.context.timestamp: 0001-01-01T00:00:00+01:00 {OUTSIDE}"),
    ('{"customer_id": 1, "context": {"timestamp": "9999-12-31T23:59:59-01:00"}}',
     f"body.context.timestamp: 9999-12-31T23:59:59-01:00 {OUTSIDE}"),
    ('{"customer_id": 1, "context": {"timestamp": "0001-01-01T00:00:00"}}', f"body.context.timestamp: 0001-01-01T00:00:00 {OUTSIDE}"),
    ('{"customer_id": 1, "context": {"timestamp": "9999-12-31T00:00:00"}}', f"body.context.timestamp: 9999-12-31T00:00:00 {OUTSIDE}"),
    ('{"customer_id": 1, "context": {"timestamp": "2036-12-01T00:00:00Z"}}', f"body.context.timestamp: 2036-12-01T00:00:00+00:00 {OUTSIDE}"),
    ('{"customer_id": 1, "seed": %d}' % BIG, "body.seed: Input should be less than or equal to 9223372036854775807"),
    ('{"customer_id": 1, "seed": %d}' % (-BIG - 1), "body.seed: Input should be greater than or equal to -9223372036854775808"),
    ('{"customer_id": 1, "seed": 1%s}' % ("0" * 5000), "body: not parseable as JSON (invalid UTF-8, a number of more than 4300 digits"),
    ('{"customer_id": 1, "top_k": 1e3}', "body.top_k: Input should be less than or equal to 50"),
    ('{"customer_id": 1, "context": {"channel": "fax"}}',
     "body.context.channel: 'fax' is not a configured channel; use one of ['email', 'sms', 'push', 'direct_mail', "
     "'outbound_call', 'web'] or leave it out"),
    ('{"customer_id": 1, "context": {"event": "%s"}}' % ("e" * 101), "body.context.event: String should have at most 100 characters"),
]
BATCH_OUT_OF_RANGE = [
    ('{"customer_ids": [1, %d]}' % BIG, "body.customer_ids.1: Input should be less than or equal to 9223372036854775807"),
    ('{"customer_ids": [%d]}' % (-BIG - 1), "body.customer_ids.0: Input should be greater than or equal to -9223372036854775808"),
    ('{"customer_ids": [1], "context": {"timestamp": "0001-01-01T00:00:00+01:00"}}',
     f"body.context.timestamp: 0001-01-01T00:00:00+01:00 {OUTSIDE}"),
    ('{"customer_ids": [1], "context": {"timestamp": "9999-12-31T23:59:59-01:00"}}',
     f"body.context.timestamp: 9999-12-31T23:59:59-01:00 {OUTSIDE}"),
    ('{"customer_ids": [1], "context": {"timestamp": "0001-01-01T00:00:00"}}', f"body.context.timestamp: 0001-01-01T00:00:00 {OUTSIDE}"),
    ('{"customer_ids": [1], "seed": %d}' % BIG, "body.seed: Input should be less than or equal to 9223372036854775807"),
    ('{"customer_ids": [1], "context": {"channel": "fax"}}', "body.context.channel: 'fax' is not a configured channel"),
    ('{"customer_ids": [%s]}' % ", ".join(["1"] * 20_001),
     "body.customer_ids: 20001 entries; send at most 20000 per call (NEXTBEST_RANK_BATCH_MAX)"),
]
FEEDBACK = '{"decision_id": "d-0", "outcome": "conversion", "revenue": %s, "timestamp": %s}'
FEEDBACK_OUT_OF_RANGE = [
    (FEEDBACK % ("1e309", '"2024-05-02T00:00:00Z"'), "body.revenue: Input should be a finite number"),
    (FEEDBACK % ("Infinity", '"2024-05-02T00:00:00Z"'), "body.revenue: Input should be a finite number"),
    (FEEDBACK % ("NaN", '"2024-05-02T00:00:00Z"'), "body.revenue: Input should be a finite number"),
    (FEEDBACK % ("1e10", '"2024-05-02T00:00:00Z"'), "body.revenue: Input should be less than or equal to 1000000000"),
    (FEEDBACK % ("1", '"0001-01-01T00:00:00+01:00"'), f"body.timestamp: 0001-01-01T00:00:00+01:00 {OUTSIDE}"),
    (FEEDBACK % ("1", '"9999-12-31T23:59:59-01:00"'), f"body.timestamp: 9999-12-31T23:59:59-01:00 {OUTSIDE}"),
    (FEEDBACK % ("1", '"0001-01-01T00:00:00"'), f"body.timestamp: 0001-01-01T00:00:00 {OUTSIDE}"),
    ('{"decision_id": "", "outcome": "open", "timestamp": "2024-05-02T00:00:00Z"}',
     "body.decision_id: String should have at least 1 character"),
    ('{"decision_id": "%s", "outcome": "open", "timestamp": "2024-05-02T00:00:00Z"}' % ("d" * 201),
     "body.decision_id: String should have at most 200 characters"),
]
#: /rank both ways: a well-formed body without query goes the direct path (DirectRank), ?explain=true the FastAPI route.
RANK_PATHS = [pytest.param({}, id="direct"), pytest.param({"explain": "true"}, id="routed")]


def post_raw(api: httpx.Client, path: str, raw: str, params: dict[str, str] | None = None) -> httpx.Response:
    return api.post(path, content=raw.encode(), params=params, headers={"Content-Type": "application/json"})


def assert_422(response: httpx.Response, message: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert message in body["error"], body["error"]
    assert body["error"].startswith(body["detail"][0]["field"] + ": ")


@pytest.mark.parametrize("params", RANK_PATHS)
@pytest.mark.parametrize(("raw", "message"), RANK_OUT_OF_RANGE, ids=[m.split(":")[0] for _, m in RANK_OUT_OF_RANGE])
def test_out_of_range_rank_input_is_422_naming_the_field(api: httpx.Client, params: dict, raw: str, message: str) -> None:
    assert_422(post_raw(api, "/rank", raw, params), message)


@pytest.mark.parametrize(("raw", "message"), BATCH_OUT_OF_RANGE, ids=[m.split(":")[0] for _, m in BATCH_OUT_OF_RANGE])
def test_out_of_range_rank_batch_input_is_422_naming_the_field(api: httpx.Client, raw: str, message: str) -> None:
    assert_422(post_raw(api, "/rank_batch", raw), message)


@pytest.mark.parametrize(("raw", "message"), FEEDBACK_OUT_OF_RANGE, ids=[m.split(":")[0] for _, m in FEEDBACK_OUT_OF_RANGE])
def test_out_of_range_feedback_is_422_naming_the_field(api: httpx.Client, raw: str, message: str) -> None:
    assert_422(post_raw(api, "/feedback", raw), message)


def test_a_timestamp_outside_the_window_says_which_window_and_how_to_fix_it(api: httpx.Client) -> None:
    response = api.post("/rank", json={"customer_id": 1, "context": {"timestamp": "9999-12-31T23:59:59-01:00"}})
    error = response.json()["error"]
    assert re.search(r"the accepted window \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \.\. \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", error), error
    assert "at most 3650 days before now, NEXTBEST_MAX_PAST_DAYS, and 1 after, NEXTBEST_MAX_FUTURE_DAYS" in error
    assert "send a time within it (or leave it out to mean now)" in error


@pytest.mark.parametrize("params", RANK_PATHS)
def test_any_64_bit_id_is_a_customer_id_negative_ones_included(api: httpx.Client, params: dict) -> None:
    """-1 is the engine's placeholder id of the cold-start row; asked for, it is one more unknown customer."""
    when = {"timestamp": "2024-05-01T00:00:00Z"}
    for cid in (-(2**63), -1, 2**63 - 1):
        doc = api.post("/rank", params=params, json={"customer_id": cid, "top_k": 5, "context": when}).json()
        assert (doc["customer_id"], doc["cold_start"]) == (cid, True)
        assert doc["actions"] and {a["channel"] for a in doc["actions"]} <= {"web", None}
    batch = api.post("/rank_batch", json={"customer_ids": [-1, 3, -1, -(2**63)], "context": when}).json()
    assert [(d["customer_id"], d["cold_start"]) for d in batch["decisions"]] == [(-1, True), (3, False), (-1, True),
                                                                                  (-(2**63), True)]


def test_times_at_the_edges_of_the_window_are_served(api: httpx.Client) -> None:
    now = dt.datetime.now(dt.timezone.utc)
    for ts in (now - dt.timedelta(days=3649), now + dt.timedelta(hours=12)):
        body = {"customer_id": UNKNOWN + 12, "context": {"timestamp": ts.isoformat()}}
        assert api.post("/rank", json=body).status_code == 200
        assert api.post("/rank", params={"explain": "true"}, json=body).status_code == 200
    assert api.post("/rank_batch", json={"customer_ids": [UNKNOWN + 12], "context": {"timestamp": ts.isoformat()}}).status_code == 200


def test_a_personal_channel_nobody_may_be_contacted_on_is_no_action(api: httpx.Client) -> None:
    """Unknown customers on an inbound e-mail: no consent, so the rules leave no candidate (was a 500)."""
    body = {"customer_id": UNKNOWN + 13, "context": {"channel": "email", "timestamp": NOW}}
    for params in ({}, {"explain": "true"}):
        doc = api.post("/rank", params=params, json=body).json()
        assert [(a["offer_id"], a["channel"]) for a in doc["actions"]] == [(None, None)]
    batch = api.post("/rank_batch", json={"customer_ids": [UNKNOWN + 13, UNKNOWN + 14], "context": body["context"]})
    assert batch.status_code == 200, batch.text


def test_a_wrong_method_answers_in_the_error_format(api: httpx.Client) -> None:
    wrong = api.put("/rank", json={"customer_id": 1})
    assert (wrong.status_code, wrong.json()) == (405, {"error": "Method Not Allowed"})
    assert "POST" in wrong.headers["allow"]


def test_noop_refuses_a_multipart_body_it_cannot_parse(api: httpx.Client) -> None:
    response = api.post("/noop", content=b'{"customer_id": 0}', headers={"Content-Type": "multipart/form-data"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("body: /noop takes a JSON body")


def test_a_body_that_is_not_json_is_422(api: httpx.Client) -> None:
    response = api.post("/rank", content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "body" in response.json()["error"]


# ---------------------------------------------------------------------------- auth
@pytest.mark.parametrize("token", [None, "wrong-token-000000"])
@pytest.mark.parametrize(
    ("method", "path"), [("POST", "/rank"), ("POST", "/rank_batch"), ("POST", "/feedback"), ("POST", "/noop"),
                         ("POST", "/admin/refresh"), ("GET", "/reports/latest"), ("GET", "/metrics")]
)
def test_requests_without_the_token_get_401(server: Server, method: str, path: str, token: str | None) -> None:
    with server.client(token=token or "") as client:
        response = client.request(method, path, json={"customer_id": 1})
    assert response.status_code == 401
    assert "bearer token" in response.json()["error"]


def test_probes_need_no_token(server: Server) -> None:
    with server.client(token="") as client:
        assert client.get("/livez").status_code == 200
        assert client.get("/readyz").status_code == 200


# ---------------------------------------------------------------------------- feedback
def test_feedback_is_idempotent_and_unknown_decisions_are_404(api: httpx.Client) -> None:
    decision = api.post("/rank", json={"customer_id": 31}).json()["decision_id"]
    body = {"decision_id": decision, "outcome": "click", "timestamp": "2024-05-02T10:00:00+02:00"}
    first = api.post("/feedback", json=body)  # the decision may still sit in the writer queue
    again = api.post("/feedback", json=body)
    other = api.post("/feedback", json={**body, "outcome": "conversion", "revenue": 30.0})
    assert (first.status_code, again.status_code, other.status_code) == (202, 202, 202)
    assert (first.json()["duplicate"], again.json()["duplicate"], other.json()["duplicate"]) == (False, True, False)
    missing = api.post("/feedback", json={**body, "decision_id": "no-such-decision"})
    assert missing.status_code == 404
    assert "decision_id 'no-such-decision' is unknown" in missing.json()["error"]


def test_a_complaint_suppresses_personal_channels_at_once(api: httpx.Client, trained_workspace: TrainedWorkspace) -> None:
    when = {"timestamp": "2024-05-02T00:00:00"}
    ids = sorted(customers(trained_workspace))[600:1400]
    batch = api.post("/rank_batch", json={"customer_ids": ids, "top_k": 10, "context": when}).json()["decisions"]
    target = next(d for d in batch if {a["channel"] for a in d["actions"]} - {"web", None})
    sent = api.post("/feedback", json={"decision_id": target["decision_id"], "outcome": "complaint", **when})
    assert sent.status_code == 202
    body = {"customer_id": target["customer_id"], "top_k": 10, "context": when}
    after = api.post("/rank", params={"explain": "true"}, json=body).json()
    assert {a["channel"] for a in after["actions"]} <= {"web", None}
    assert "complaint" in {s["reason"] for s in after["suppressed"]}


def test_ranking_from_plans_applies_cooldowns_and_complaints_at_once(
    api: httpx.Client, trained_workspace: TrainedWorkspace
) -> None:
    """/rank without ``explain`` ranks from the customer's plan, made before any of these contacts:
    the live history still rules, the plan's own contacts included."""
    config = Workspace.resolve(trained_workspace.root).config()
    personal = {c.id for c in config.channels.channels if c.personal}
    # The newsletter event forces welcome_tips; asked on email, it is the decision wherever it is allowed.
    newsletter = {"channel": "email", "event": "newsletter_signup_recent"}
    probe = {**newsletter, "timestamp": "2024-04-01T00:00:00"}  # months before: its contacts count no more
    ids = sorted(customers(trained_workspace))
    batch = api.post("/rank_batch", json={"customer_ids": ids, "context": probe}).json()["decisions"]
    welcomed = [d["customer_id"] for d in batch if d["contacted"] and d["actions"][0]["offer_id"] == "welcome_tips"]
    assert len(welcomed) >= 2, "no two customers welcomed by email"

    when = {"timestamp": "2024-06-20T00:00:00"}  # clear of the other tests' contacts and complaints
    decided = {c: api.post("/rank", json={"customer_id": c, "context": {**newsletter, **when}}).json() for c in welcomed[:2]}
    assert all(d["contacted"] and d["actions"][0]["offer_id"] == "welcome_tips" for d in decided.values())

    # That contact came from the plan path too: the offer is cooling down on every personal channel now.
    again = api.post("/rank", json={"customer_id": welcomed[0], "top_k": 10, "context": {**newsletter, **when}}).json()
    assert not [a for a in again["actions"] if a["offer_id"] == "welcome_tips" and a["channel"] in personal]
    body = {"customer_id": welcomed[0], "context": {**newsletter, **when}}
    explained = api.post("/rank", params={"explain": "true"}, json=body).json()
    # The newsletter trigger no longer forces welcome_tips (sent within its re-fire cool-down), so the
    # request before may have contacted the customer with another offer: the cap can come first.
    reasons = {s["reason"] for s in explained["suppressed"] if s["offer_id"] == "welcome_tips" and s["channel"] in personal}
    assert reasons and reasons <= {"offer_cooldown", "contact_cap", "channel_cap"}
    assert "trigger:newsletter" not in {r for a in explained["actions"] for r in a["reasons"]}

    sent = api.post("/feedback", json={"decision_id": decided[welcomed[1]]["decision_id"], "outcome": "complaint", **when})
    assert sent.status_code == 202
    after = api.post("/rank", json={"customer_id": welcomed[1], "top_k": 10, "context": when}).json()
    assert not {a["channel"] for a in after["actions"]} & personal
    assert "suppressed" not in after


# ---------------------------------------------------------------------------- the rest of the surface
def test_metrics_expose_latency_arms_and_fallbacks(api: httpx.Client) -> None:
    api.post("/rank", json={"customer_id": UNKNOWN + 7})
    # Prometheus multiprocess samples reach /metrics through files the worker writes; once
    # (of three full-suite runs) a scrape right after the request came back empty, so poll briefly.
    deadline = time.monotonic() + 10
    while True:
        response = api.get("/metrics")
        assert response.status_code == 200
        text = response.text
        if 'nextbest_request_latency_seconds_bucket{endpoint="rank"' in text or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert 'nextbest_request_latency_seconds_bucket{endpoint="rank"' in text
    assert "nextbest_decisions_total{arm=" in text
    assert 'nextbest_fallbacks_total{reason="unknown_customer"}' in text


def test_openapi_documents_every_request_field(api: httpx.Client) -> None:
    spec = api.get("/docs.json").json()
    assert {"/rank", "/rank_batch", "/feedback", "/admin/refresh", "/reports/latest"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    for name in ("RankBody", "RankContext", "RankBatchBody", "FeedbackBody", "FeedbackReceipt", "Action"):
        undocumented = [f for f, p in schemas[name]["properties"].items() if not p.get("description")]
        assert not undocumented, f"{name}: {undocumented}"


def test_latest_report_is_served_read_only(server: Server, api: httpx.Client) -> None:
    reports = server.ws / "reports"
    for stale in reports.glob("*.html"):
        stale.unlink()
    missing = api.get("/reports/latest")
    assert missing.status_code == 404
    assert "run `nextbest report`" in missing.json()["error"]
    (reports / "old.html").write_text("<html>old</html>")
    time.sleep(0.05)
    (reports / "new.html").write_text("<html>new</html>")
    latest = api.get("/reports/latest")
    assert latest.status_code == 200
    assert latest.headers["content-type"].startswith("text/html")
    assert latest.text == "<html>new</html>"
    assert api.put("/reports/latest").status_code == 405


def test_python_client_round_trip(server: Server) -> None:
    with NextbestClient(server.url, token=TOKEN) as nb:
        assert nb.ready()
        doc = nb.rank(41, top_k=2, context={"timestamp": dt.datetime(2024, 5, 1)})
        assert doc.customer_id == 41 and len(doc.actions) <= 2
        batch = nb.rank_batch([42, 43, 44], top_k=1, chunk_size=2)
        assert [d.customer_id for d in batch] == [42, 43, 44]
        receipt = nb.feedback(doc.decision_id, "open")
        assert receipt.decision_id == doc.decision_id and not receipt.duplicate
        with pytest.raises(NotFoundError, match="is unknown"):
            nb.feedback("no-such-decision", "open")


def built_plans(api: httpx.Client) -> float:
    """Customer plans the server built so far (``nextbest_plans_total{source="built"}``)."""
    found = re.search(r'^nextbest_plans_total\{[^}]*source="built"[^}]*\} ([\d.e+]+)$', api.get("/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def test_champion_swap_drops_no_request(server: Server, api: httpx.Client, trained_workspace: TrainedWorkspace) -> None:
    """Register a second version, move the champion alias, refresh under load."""
    uri = Workspace.resolve(server.ws).tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    current = get_version(uri)
    assert current is not None
    # A new version of the same artifacts: a real registry change, without a second training run.
    source = client.get_model_version_download_uri(MODEL_NAME, current.version)
    new = client.create_model_version(MODEL_NAME, source, run_id=current.run_id)
    client.set_registered_model_alias(MODEL_NAME, "champion", new.version)

    built_before = built_plans(api)
    statuses: list[int] = []
    stop = threading.Event()

    def load() -> None:
        with server.client() as c:
            i = 0
            while not stop.is_set():
                statuses.append(c.post("/rank", json={"customer_id": 500 + i % 200}).status_code)
                i += 1

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        report = api.post("/admin/refresh").json()
        time.sleep(1.0)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert report["changed"] is True
    assert report["model_versions"]["champion"] == f"{MODEL_NAME}/{new.version}"
    assert statuses and set(statuses) == {200}
    served = api.post("/rank_batch", json={"customer_ids": list(range(1, 60))}).json()["decisions"]
    assert f"{MODEL_NAME}/{new.version}" in {d["model_version"] for d in served if d["arm"] == "champion"}
    # /rank ranks from plans, made per loaded state: the new state built every customer's again.
    assert built_plans(api) >= built_before + len(customers(trained_workspace))
    champions = [d["customer_id"] for d in served if d["arm"] == "champion"]
    planned = {api.post("/rank", json={"customer_id": c}).json()["model_version"] for c in champions[:5]}
    assert planned == {f"{MODEL_NAME}/{new.version}"}


def _refreshes(api: httpx.Client) -> float:
    """Model refreshes the server made so far (``nextbest_model_refreshes_total``, every result)."""
    found = re.findall(r"^nextbest_model_refreshes_total\{[^}]*\} ([\d.e+]+)$", api.get("/metrics").text, re.M)
    return sum(float(v) for v in found)


def test_a_scheduled_retrain_reaches_a_running_service(trained_workspace: TrainedWorkspace, private_tmp) -> None:  # noqa: ANN001
    """`nextbest retrain` beside a running `nextbest serve`: the service reloads by itself, no request dropped."""
    import tempfile
    from pathlib import Path

    from tests.serving.conftest import run_cli

    ws = trained_workspace.copy(Path(tempfile.mkdtemp(dir=private_tmp)) / "ws")
    # LightGBM scores (no lleaves compile of the new model): the reload, not the compiler, is under test.
    server = Server(ws.root, env={"NEXTBEST_COMPILED_TREES": "false"}).wait_ready()
    try:
        with server.client() as api:
            before = _refreshes(api)
            assert api.post("/rank_batch", json={"customer_ids": list(range(1, 40))}).status_code == 200
            today = (pd.Timestamp(trained_workspace.as_of) + pd.Timedelta(days=1)).date()
            line = run_cli(ws.root, "retrain", "--as-of", str(today)).strip()
            assert f"snapshot {today} built" in line and line.endswith(" s)") and "services told to refresh" in line
            # The new state is built (snapshot encoded, plans) before it swaps in: a while on a busy machine.
            deadline = time.monotonic() + 600
            while _refreshes(api) <= before and time.monotonic() < deadline:
                time.sleep(0.5)
            assert _refreshes(api) == before + 1
            champion = get_version(ws.tracking_uri)
            served = api.post("/rank_batch", json={"customer_ids": list(range(1, 40))})
            assert served.status_code == 200, served.text
            versions = {d["model_version"] for d in served.json()["decisions"] if d["arm"] == "champion"}
            assert versions == {champion.label}
    finally:
        server.stop()
