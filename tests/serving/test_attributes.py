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

pytestmark = [pytest.mark.server, pytest.mark.xdist_group("server")]


@pytest.fixture(scope="module")
def attribute_server(attribute_world: AttributeWorld) -> Iterator[tuple[Server, Path]]:
    root = Path(tempfile.mkdtemp(prefix="nextbest-attr-serving-")) / "ws"
    shutil.copytree(attribute_world.root, root, ignore=shutil.ignore_patterns("*.log"))
    srv = Server(root, token=TOKEN).wait_ready()
    yield srv, root
    srv.stop()
    shutil.rmtree(root.parent, ignore_errors=True)


def _rank(srv: Server, customer_id: int, as_of: str, *, explain: bool = False) -> dict[str, object]:
    with srv.client() as api:
        body = {"customer_id": customer_id, "top_k": 10, "seed": 1, "context": {"timestamp": as_of}}
        response = api.post("/rank" + ("?explain=true" if explain else ""), json=body)
    assert response.status_code == 200, response.text
    return response.json()


def _as_of(root: Path) -> str:
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        return con.execute("SELECT max(as_of) FROM features.customer_snapshot").fetchone()[0].isoformat()
    finally:
        con.close()


def test_service_applies_attribute_rules_and_ranks_with_attribute_features(
    attribute_server: tuple[Server, Path], attribute_world: AttributeWorld
) -> None:
    srv, root = attribute_server
    as_of = _as_of(root)
    gold = [c for c, v in attribute_world.values.items() if v["loyalty_tier"] == "gold"]
    others = [c for c, v in attribute_world.values.items() if v["loyalty_tier"] != "gold"]
    # Eligibility over an attribute: outside the tier, the gold offer is suppressed by its rule.
    doc = _rank(srv, others[0], as_of, explain=True)
    reasons = {(s["offer_id"], s["reason"]) for s in doc["suppressed"]}
    assert (GOLD_OFFER, "eligibility") in reasons
    # Every /rank is logged and counts against the contact caps: rank the chosen customer once before.
    for champion in gold:
        before = _rank(srv, champion, as_of, explain=True)
        if before["arm"] == "champion" and before["actions"]:
            break
    assert (GOLD_OFFER, "eligibility") not in {(s["offer_id"], s["reason"]) for s in before["suppressed"]}
    # The same customer, demoted: only the attributes change; the service, refreshed, scores differently.
    row = dict(attribute_world.values[champion], loyalty_tier="bronze", crm_score="300.0")
    run_cli(root, "data", "import", "--table", "customers", "--upsert",
            str(write_csv(root.parent / "demoted.csv", [row])))
    run_cli(root, "features", "build", "--as-of", as_of)
    with srv.client() as api:
        assert api.post("/admin/refresh").status_code == 200
    after = _rank(srv, champion, as_of)
    p_before = {(a["offer_id"], a["channel"]): a["probability"] for a in before["actions"]}
    p_after = {(a["offer_id"], a["channel"]): a["probability"] for a in after["actions"]}
    shared = set(p_before) & set(p_after)
    assert shared and any(abs(p_before[k] - p_after[k]) > 1e-9 for k in shared)
    assert GOLD_OFFER not in {a["offer_id"] for a in after["actions"]}
