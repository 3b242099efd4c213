"""The service ranks with declared attributes: a real `nextbest serve` on a workspace trained with them."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.attributes_world import GOLD_OFFER, AttributeWorld, run_cli, write_csv
from tests.serving.conftest import TOKEN, Server

# Same xdist group as tests/training/test_attributes.py: one worker builds the shared world once.
pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.xdist_group("attribute_world")]


@pytest.fixture(scope="module")
def attribute_server(attribute_world: AttributeWorld) -> Iterator[tuple[Server, Path]]:
    root = Path(tempfile.mkdtemp(prefix="nextbest-attr-serving-")) / "ws"
    shutil.copytree(attribute_world.root, root, ignore=shutil.ignore_patterns("*.log"))
    # "No action" never wins, so every ranking shows its candidates' probabilities.
    policy = root / "config" / "policy.yaml"
    policy.write_text(policy.read_text().replace("min_expected_value: 0.0", "min_expected_value: -1000000.0"))
    srv = Server(root, token=TOKEN).wait_ready()
    yield srv, root
    srv.stop()
    shutil.rmtree(root.parent, ignore_errors=True)


def _rank(srv: Server, customer_id: int, as_of: str) -> dict[str, object]:
    with srv.client() as api:
        body = {"customer_id": customer_id, "top_k": 30, "seed": 1, "context": {"timestamp": as_of}}
        response = api.post("/rank?explain=true", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _probabilities(doc: dict[str, object]) -> dict[tuple[str, str], float]:
    """Probability per (offer, channel); the offer contacted first is left out (its history changed)."""
    actions = doc["actions"]
    first = actions[0]["offer_id"]
    return {(a["offer_id"], a["channel"]): a["probability"] for a in actions if a["offer_id"] != first}


def _suppressed(doc: dict[str, object]) -> set[tuple[str, str]]:
    return {(s["offer_id"], s["reason"]) for s in doc["suppressed"]}


def test_service_applies_attribute_rules_and_ranks_with_attribute_features(
    attribute_server: tuple[Server, Path], attribute_world: AttributeWorld
) -> None:
    srv, root = attribute_server
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        as_of = con.execute("SELECT max(as_of) FROM features.customer_snapshot").fetchone()[0].isoformat()
    finally:
        con.close()
    gold = [c for c, v in attribute_world.values.items() if v["loyalty_tier"] == "gold"]
    # Each /rank is logged and counts against the contact caps: rank each customer once before, once after.
    before = {}
    for customer in gold:
        doc = _rank(srv, customer, as_of)
        if doc["arm"] == "champion" and doc["actions"][0]["offer_id"]:
            before[customer] = doc
        if len(before) == 2:
            break
    demoted, unchanged = before
    for doc in before.values():
        assert (GOLD_OFFER, "eligibility") not in _suppressed(doc)
    # Demote one customer: only their attributes change; the service, refreshed, must see it.
    row = dict(attribute_world.values[demoted], loyalty_tier="bronze", crm_score="300.0")
    run_cli(root, "data", "import", "--table", "customers", "--upsert",
            str(write_csv(root.parent / "demoted.csv", [row])))
    run_cli(root, "features", "build", "--as-of", as_of)
    with srv.client() as api:
        assert api.post("/admin/refresh").status_code == 200
    after = {c: _rank(srv, c, as_of) for c in before}
    # Eligibility over an attribute: out of the tier, the gold offer is suppressed by its rule.
    assert (GOLD_OFFER, "eligibility") in _suppressed(after[demoted])
    assert (GOLD_OFFER, "eligibility") not in _suppressed(after[unchanged])
    # The model reads the attributes: the demoted customer's probabilities move, the other's do not.
    for customer, moved in ((demoted, True), (unchanged, False)):
        p0, p1 = _probabilities(before[customer]), _probabilities(after[customer])
        shared = sorted(set(p0) & set(p1))
        assert shared, (customer, p0, p1)
        changed = [k for k in shared if abs(p0[k] - p1[k]) > 1e-9]
        assert bool(changed) is moved, (customer, changed)
