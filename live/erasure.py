"""The live store's part of ``nextbest data forget``.

Registered with :func:`nextbest.warehouse.erasure.register_eraser`, so one
``forget`` erases the customer from the warehouse and the live store together.
The tombstone it leaves is how running services learn of the erasure: they
poll for new tombstones every second and drop the customer's cached profile,
features, plan and history (:class:`nextbest.serving.runtime.Runtime`).
"""

from __future__ import annotations

from nextbest.live.store import LiveStore
from nextbest.warehouse.erasure import register_eraser
from nextbest.workspace import Workspace


def erase_live(ws: Workspace, customer_id: int) -> int:
    """Erase ``customer_id`` from the workspace's live store; returns rows removed (idempotent)."""
    store = LiveStore.for_workspace(ws, writer="forget")
    try:
        return sum(store.forget(customer_id).values())
    finally:
        store.close()


register_eraser("live_store", erase_live)
