"""The service's runtime, in process: what its requests are scored on."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from nextbest.decisioning.documents import Context, RankRequest
from nextbest.serving.histories import utc_now
from nextbest.serving.runtime import Runtime
from nextbest.serving.settings import ServeSettings
from nextbest.workspace import Workspace
from tests.serving.conftest import TrainedWorkspace

# The server tests' worker builds the trained workspace once; elsewhere it would be built again.
pytestmark = [pytest.mark.xdist_group("server")]


def test_a_contact_registered_through_the_service_raises_the_next_requests_pressure(
    trained_workspace: TrainedWorkspace, tmp_path: Path
) -> None:
    """A customer contacted by one request is, for the next one, a customer contacted today: the plan it is
    ranked from is scored again at the new pressure, and the full path counts it too."""
    root = tmp_path / "ws"
    shutil.copytree(trained_workspace.root, root)
    runtime = Runtime(ServeSettings(workspace=Workspace.resolve(root)))
    try:
        state = runtime.state
        assert state.plans is not None
        newsletter = Context(channel="email", event="newsletter_signup_recent")
        contacted = None
        for cid in state.customers.ids[:300].tolist():  # the first customer a request contacts
            doc = runtime.rank_requests([RankRequest(customer_id=cid, context=newsletter, top_k=1, explain=False)])[0]
            assert not isinstance(doc, Exception)
            if doc.contacted:
                contacted = (cid, doc.actions[0].channel)
                break
        assert contacted is not None, "no request contacted anyone"
        cid, channel = contacted
        key = (cid, newsletter.channel, newsletter.event)
        plan = state.plans.get(key)
        assert plan is not None
        before = dict(plan.pressure)
        # Requests are "now", years after the generated history: nothing recent before this contact.
        assert before["contacts_7d"] == 0 and before["days_since_contact"] == 30

        rebuilt = state.engine.plans_rebuilt
        second = runtime.rank_requests([RankRequest(customer_id=cid, context=newsletter, top_k=1, explain=False)])[0]
        assert not isinstance(second, Exception)
        assert state.engine.plans_rebuilt == rebuilt + 1
        after = dict(state.plans.get(key).pressure)  # type: ignore[union-attr]
        assert after["contacts_7d"] == after["contacts_30d"] == 1
        assert after[f"contacts_7d_{channel}"] == 1
        assert after["days_since_contact"] == 0
        assert sum(v for k, v in after.items() if k.startswith("contacts_7d_")) == 1

        # The full path (``explain``) counts the same history, the second request's contact included.
        prepared, _ = state.prepared(np.array([cid], dtype=np.int64))
        served = {k: float(v[0]) for k, v in state.engine.pressured(prepared, runtime._histories.live(), utc_now()).pressure.items()}
        more = int(second.contacted)
        assert served["contacts_7d"] == served["contacts_30d"] == 1 + more
        assert sum(v for k, v in served.items() if k.startswith("contacts_7d_")) == 1 + more
        assert served["days_since_contact"] == 0

        # Plans built on loading (a refresh, a restart) are scored at the live store's pressure: the
        # contacted customer's plan already counts the contacts, and no plan is stale on its first request.
        runtime.refresh(announce=False)
        fresh = runtime.state
        assert fresh.plans is not None and fresh is not state
        loaded = fresh.plans.get((cid, None, None))
        assert loaded is not None and dict(loaded.pressure)["contacts_7d"] == 1 + more
        ids = fresh.customers.ids[: fresh.blank].tolist()
        plans = [fresh.plans.get((c, None, None)) for c in ids]
        assert all(p is not None for p in plans)
        assert len(fresh.engine.stale_plans(plans, runtime._histories.live(), utc_now())) == 0  # type: ignore[arg-type]
    finally:
        runtime.close()
