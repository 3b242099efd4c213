"""Reachability: consent and a valid contact per channel, preferred and last responsive channel.

Unknown consent or validity counts as *no*; a non-personal channel (``personal:
false`` in ``channels.yaml``, e.g. ``web``) is always reachable.
"""

from __future__ import annotations

from nextbest.features.query import GroupQuery, literal
from nextbest.features.registry import POSITIVE_OUTCOMES

from nextbest.config import NextbestConfig


def query(config: NextbestConfig) -> GroupQuery:
    """Consent and reachability per configured channel, preferred and last responsive channel."""
    derived: dict[str, str] = {}
    for ch in config.channels.channels:
        if not ch.personal:
            derived[f"consent_{ch.id}"] = derived[f"reachable_{ch.id}"] = "true"
            continue
        consent = f"coalesce(c.{ch.consent_field}, false)"
        valid = f"coalesce(c.{ch.validity_field}, false)" if ch.validity_field else "true"
        derived[f"consent_{ch.id}"] = consent
        derived[f"reachable_{ch.id}"] = f"({consent} AND {valid})"
    derived["preferred_channel"] = "c.preferred_channel"
    positive = ", ".join(literal(o) for o in POSITIVE_OUTCOMES)
    last = (
        "SELECT customer_id, arg_max(channel, ts) AS last_responsive_channel FROM pit_responses "
        f"WHERE outcome IN ({positive}) AND channel IS NOT NULL GROUP BY customer_id"
    )
    return GroupQuery(ctes=[("g_last_response", last)], joined=["g_last_response"], derived=derived)
