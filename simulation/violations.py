"""Contact-policy violations, counted from the decision log alone.

This is an audit, deliberately independent of the decision engine: it reads
``decisions``, ``responses`` and ``customers`` with SQL and checks every
contacted decision of a period against the configuration's contact policy,
consent and capacities. The engine is supposed to make every count zero.

Checks (personal channels only, as in the engine, except the capacities):

=====================  =================================================================
``no_consent``         the channel's consent was not given when the contact was made
``invalid_contact``    the channel's contact detail is not valid
``contact_cap``        more than ``max_contacts`` contacts in ``window_days`` (rolling)
``channel_cap``        more than ``max_contacts_per_channel`` on one channel in the window
``offer_cooldown``     the same offer again within ``offer_cooldown_days``
``complaint``          a contact within ``complaint_suppression_days`` after a complaint
``negative_response``  a contact within ``negative_response_suppression_days`` after an unsubscribe
``channel_capacity``   contacts beyond a channel's ``daily_capacity`` on one day (excess)
``offer_cap``          exposures of an offer beyond its ``max_contacts`` (excess)
=====================  =================================================================
"""

from __future__ import annotations

import datetime as dt

import duckdb

from nextbest.config import NextbestConfig

KINDS: tuple[str, ...] = (
    "no_consent", "invalid_contact", "contact_cap", "channel_cap", "offer_cooldown", "complaint",
    "negative_response", "channel_capacity", "offer_cap",
)


def _values(rows: list[tuple[object, ...]]) -> str:
    """A ``VALUES`` list of SQL literals (ids and field names come from the validated config)."""
    def lit(v: object) -> str:
        if v is None:
            return "NULL"
        if isinstance(v, (int, float)):
            return repr(v)
        return "'" + str(v).replace("'", "''") + "'"

    return ", ".join("(" + ", ".join(lit(v) for v in r) + ")" for r in rows)


def count_violations(
    con: duckdb.DuckDBPyConnection,
    config: NextbestConfig,
    start: dt.datetime,
    end: dt.datetime,
    experiment: str | None = None,
) -> dict[str, int]:
    """Violations by kind among the contacted decisions with ``start <= ts < end``.

    Parameters
    ----------
    con
        Warehouse connection (read access is enough).
    config
        Contact policy, channels and offers to check against.
    start, end
        The audited period; earlier contacts still count towards windows and cool-downs.
    experiment
        Only audit decisions of this experiment (``None`` = all in the period).

    Returns
    -------
    dict
        Every kind of :data:`KINDS` with its count (0 when clean).
    """
    policy = config.policy.contact
    channels = config.channels.channels
    personal = [c.id for c in channels if c.personal]
    per_channel = [(ch, n) for ch, n in policy.max_contacts_per_channel.items()]
    capacity = [(c.id, c.daily_capacity) for c in channels if c.daily_capacity is not None]
    offer_caps = [(o.id, o.max_contacts) for o in config.offers.offers if o.max_contacts is not None]
    consent_case = " ".join(f"WHEN '{c.id}' THEN c.{c.consent_field}" for c in channels if c.personal and c.consent_field)
    valid_case = " ".join(f"WHEN '{c.id}' THEN c.{c.validity_field}" for c in channels if c.personal and c.validity_field)
    params = {"start": start, "end": end, "experiment": experiment}
    personal_list = ", ".join(f"'{p}'" for p in personal) or "NULL"

    # Common table expressions every check starts from (views cannot take parameters).
    ctes = f"""WITH _nb_contacts AS (
            SELECT decision_id, customer_id, ts, offer_id, channel, experiment
            FROM decisions WHERE contacted AND offer_id IS NOT NULL AND channel IN ({personal_list})),
        _nb_audited AS (
            SELECT * FROM _nb_contacts
            WHERE ts >= $start AND ts < $end AND ($experiment IS NULL OR experiment = $experiment)),
        _nb_negatives AS (
            SELECT d.customer_id, d.channel, r.ts, r.outcome FROM responses r JOIN decisions d USING (decision_id)
            WHERE r.outcome IN ('complaint', 'unsubscribe'))
        """

    counts: dict[str, int] = dict.fromkeys(KINDS, 0)

    def scalar(sql: str) -> int:
        query = sql.replace("WITH ", ", ", 1) if sql.lstrip().startswith("WITH") else sql
        return int(con.execute(ctes + query, params).fetchone()[0] or 0)

    if consent_case:
        # Consent given then = consent now, or withdrawn later by an unsubscribe on that channel.
        counts["no_consent"] = scalar(f"""
            SELECT count(*) FROM _nb_audited a JOIN customers c USING (customer_id)
            WHERE NOT coalesce(CASE a.channel {consent_case} END, false)
              AND NOT EXISTS (SELECT 1 FROM _nb_negatives n WHERE n.outcome = 'unsubscribe'
                              AND n.customer_id = a.customer_id AND n.channel = a.channel AND n.ts > a.ts)""")
    if valid_case:
        counts["invalid_contact"] = scalar(f"""
            SELECT count(*) FROM _nb_audited a JOIN customers c USING (customer_id)
            WHERE NOT coalesce(CASE a.channel {valid_case} END, false)""")
    window = f"INTERVAL {policy.window_days} DAY"
    counts["contact_cap"] = scalar(f"""
        SELECT count(*) FROM _nb_audited a WHERE (
            SELECT count(*) FROM _nb_contacts b WHERE b.customer_id = a.customer_id
              AND b.ts > a.ts - {window} AND b.ts <= a.ts) > {policy.max_contacts}""")
    if per_channel:
        counts["channel_cap"] = scalar(f"""
            WITH caps(channel, cap) AS (VALUES {_values(per_channel)})
            SELECT count(*) FROM _nb_audited a JOIN caps USING (channel) WHERE (
                SELECT count(*) FROM _nb_contacts b WHERE b.customer_id = a.customer_id AND b.channel = a.channel
                  AND b.ts > a.ts - {window} AND b.ts <= a.ts) > caps.cap""")
    counts["offer_cooldown"] = scalar(f"""
        SELECT count(*) FROM _nb_audited a WHERE EXISTS (
            SELECT 1 FROM _nb_contacts b WHERE b.customer_id = a.customer_id AND b.offer_id = a.offer_id
              AND b.decision_id <> a.decision_id
              AND b.ts > a.ts - INTERVAL {policy.offer_cooldown_days} DAY AND b.ts <= a.ts)""")
    for kind, outcome, days in (
        ("complaint", "complaint", policy.complaint_suppression_days),
        ("negative_response", "unsubscribe", policy.negative_response_suppression_days),
    ):
        counts[kind] = scalar(f"""
            SELECT count(*) FROM _nb_audited a WHERE EXISTS (
                SELECT 1 FROM _nb_negatives n WHERE n.customer_id = a.customer_id AND n.outcome = '{outcome}'
                  AND n.ts <= a.ts AND n.ts > a.ts - INTERVAL {days} DAY)""")
    if capacity:
        counts["channel_capacity"] = scalar(f"""
            WITH caps(channel, cap) AS (VALUES {_values(capacity)}),
            used AS (SELECT CAST(ts AS DATE) AS day, channel, count(*) AS n FROM decisions
                     WHERE contacted AND offer_id IS NOT NULL AND ts >= $start AND ts < $end
                       AND ($experiment IS NULL OR experiment = $experiment) GROUP BY ALL)
            SELECT sum(greatest(n - cap, 0)) FROM used JOIN caps USING (channel)""")
    if offer_caps:
        counts["offer_cap"] = scalar(f"""
            WITH caps(offer_id, cap) AS (VALUES {_values(offer_caps)}),
            used AS (SELECT offer_id, count(*) AS n FROM decisions WHERE contacted AND ts < $end GROUP BY ALL)
            SELECT sum(greatest(n - cap, 0)) FROM used JOIN caps USING (offer_id)""")
    return counts
