"""Contact history: what the contact policy counts, read from the decision log.

A contact is a ``decisions`` row with ``contacted = true``; complaints and
unsubscribes are ``responses`` joined to their decision's customer. The history
is loaded set-based for a batch (one query per fact), then updated in memory
with the decisions made within a run, so a month of daily decisions never needs
to re-read the warehouse.

Contact caps, cool-downs and response suppressions apply to *personal* channels
only: an on-site banner (``personal: false``) addresses nobody and is not a contact.
Daily capacities and offer volume caps count every contacted decision.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig

_EVENT_COLUMNS = ("customer_id", "ts", "offer_id", "channel")
_NEGATIVE_COLUMNS = ("customer_id", "ts", "outcome")


def _empty(columns: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    frame["customer_id"] = frame["customer_id"].astype("int64")
    frame["ts"] = frame["ts"].astype("datetime64[us]")
    return frame


@dataclass(frozen=True)
class HistoryView:
    """The counts the contact policy needs for a batch of customers at one time.

    Arrays are aligned with the batch's customers (rows), the config's offers and
    channels (columns, in config order).
    """

    contacts: np.ndarray  # (n,) personal contacts in the rolling window
    contacts_by_channel: np.ndarray  # (n, C)
    cooling: np.ndarray  # (n, O) offer exposed within the cool-down
    complaint: np.ndarray  # (n,) complained within the suppression period
    negative: np.ndarray  # (n,) unsubscribed within the suppression period
    offer_remaining: np.ndarray  # (O,) exposures left under offer.max_contacts (inf = no cap)
    channel_remaining: np.ndarray  # (C,) contacts left today under daily_capacity (inf = no cap)


@dataclass
class ContactHistory:
    """Contacts, complaints and unsubscribes known to the decision policy.

    Build with :meth:`load` (from the warehouse) or :meth:`empty`; add a run's
    decisions with :meth:`record`; ask for the counts of a batch with :meth:`view`.

    Parameters
    ----------
    config
        Configuration (windows, caps, channels, offers).
    events
        Contacted decisions: ``customer_id, ts, offer_id, channel``.
    negatives
        Complaint and unsubscribe responses: ``customer_id, ts, outcome``.
    offer_totals
        All-time contacted decisions per offer.
    channel_days
        Contacted decisions per ``(day, channel)``.
    """

    config: NextbestConfig
    events: pd.DataFrame = field(default_factory=lambda: _empty(_EVENT_COLUMNS))
    negatives: pd.DataFrame = field(default_factory=lambda: _empty(_NEGATIVE_COLUMNS))
    offer_totals: Counter[str] = field(default_factory=Counter)
    channel_days: Counter[tuple[dt.date, str]] = field(default_factory=Counter)
    _pending: list[pd.DataFrame] = field(default_factory=list, repr=False)

    @classmethod
    def empty(cls, config: NextbestConfig) -> ContactHistory:
        """A history with no contacts (a new deployment, or a test)."""
        return cls(config)

    @classmethod
    def load(
        cls,
        con: duckdb.DuckDBPyConnection,
        config: NextbestConfig,
        at: dt.datetime,
        customer_ids: np.ndarray | pd.Series | None = None,
    ) -> ContactHistory:
        """Read the history relevant at ``at`` from the warehouse.

        Parameters
        ----------
        con
            Warehouse connection (read-only is enough).
        config
            Configuration: the look-back is the longest policy window.
        at
            Decision time; only rows at or before it are read.
        customer_ids
            Restrict per-customer facts to these customers (``None`` = all).
        """
        policy = config.policy.contact
        lookback = max(policy.window_days, policy.offer_cooldown_days)
        suppress = max(policy.complaint_suppression_days, policy.negative_response_suppression_days)
        at = pd.Timestamp(at).to_pydatetime()
        params: list[object] = [at - dt.timedelta(days=lookback), at]
        restrict = ""
        if customer_ids is not None:
            ids = pd.DataFrame({"customer_id": np.asarray(customer_ids, dtype="int64")})
            con.register("_nb_history_ids", ids)
            restrict = "AND customer_id IN (SELECT customer_id FROM _nb_history_ids)"
        try:
            events = con.execute(
                f"""SELECT customer_id, ts, offer_id, channel FROM decisions
                    WHERE contacted AND offer_id IS NOT NULL AND ts > ? AND ts <= ? {restrict}""",
                params,
            ).df()
            negatives = con.execute(
                f"""SELECT d.customer_id, r.ts, r.outcome FROM responses r JOIN decisions d USING (decision_id)
                    WHERE r.outcome IN ('complaint', 'unsubscribe') AND r.ts > ? AND r.ts <= ?
                    {restrict.replace('customer_id', 'd.customer_id', 1)}""",
                [at - dt.timedelta(days=suppress), at],
            ).df()
        finally:
            if customer_ids is not None:
                con.unregister("_nb_history_ids")
        totals = con.execute(
            "SELECT offer_id, count(*) FROM decisions WHERE contacted AND offer_id IS NOT NULL AND ts <= ? GROUP BY 1",
            [at],
        ).fetchall()
        day_start = dt.datetime.combine(at.date(), dt.time())
        days = con.execute(
            """SELECT CAST(ts AS DATE), channel, count(*) FROM decisions
               WHERE contacted AND channel IS NOT NULL AND ts >= ? GROUP BY 1, 2""",
            [day_start],
        ).fetchall()
        return cls(
            config,
            events=_normalise(events, _EVENT_COLUMNS),
            negatives=_normalise(negatives, _NEGATIVE_COLUMNS),
            offer_totals=Counter({o: int(n) for o, n in totals}),
            channel_days=Counter({(d, c): int(n) for d, c, n in days}),
        )

    def record(self, decisions: pd.DataFrame) -> None:
        """Add decisions made in this run (rows shaped like the ``decisions`` table).

        Only rows with ``contacted`` true and an offer count; the next :meth:`view`
        sees them.
        """
        made = decisions.loc[decisions["contacted"].astype(bool) & decisions["offer_id"].notna(), list(_EVENT_COLUMNS)]
        if made.empty:
            return
        made = _normalise(made, _EVENT_COLUMNS)
        self._pending.append(made)
        self.offer_totals.update(made["offer_id"].value_counts().to_dict())
        per_day = made.groupby([made["ts"].dt.date, made["channel"]]).size()
        self.channel_days.update({key: int(n) for key, n in per_day.items()})

    def record_negative(self, customer_ids: np.ndarray, at: dt.datetime, outcome: str) -> None:
        """Add complaints or unsubscribes observed in this run (``outcome``: complaint | unsubscribe)."""
        ids = np.asarray(customer_ids, dtype="int64")
        frame = pd.DataFrame({"customer_id": ids, "ts": pd.Timestamp(at), "outcome": outcome})
        self.negatives = pd.concat([self.negatives, _normalise(frame, _NEGATIVE_COLUMNS)], ignore_index=True)

    def _all_events(self) -> pd.DataFrame:
        if self._pending:
            self.events = pd.concat([self.events, *self._pending], ignore_index=True)
            self._pending.clear()
        return self.events

    def view(self, customer_ids: np.ndarray, at: dt.datetime) -> HistoryView:
        """Counts for the customers ``customer_ids`` (in that order) at ``at``."""
        cfg = self.config
        policy = cfg.policy.contact
        channels = [c.id for c in cfg.channels.channels]
        personal = np.array([c.personal for c in cfg.channels.channels])
        offers = [o.id for o in cfg.offers.offers]
        n, n_ch, n_of = len(customer_ids), len(channels), len(offers)
        at_ts = pd.Timestamp(at)
        index = pd.Index(np.asarray(customer_ids, dtype="int64"))

        events = self._all_events()
        recent = events[(events["ts"] > at_ts - pd.Timedelta(days=max(policy.window_days, policy.offer_cooldown_days))) & (events["ts"] <= at_ts)]
        pos = index.get_indexer(recent["customer_id"].to_numpy())
        ch = pd.Index(channels).get_indexer(recent["channel"].to_numpy())
        of = pd.Index(offers).get_indexer(recent["offer_id"].to_numpy())
        ts = recent["ts"].to_numpy()
        mine = (pos >= 0) & (ch >= 0)
        is_personal = np.zeros(len(ch), dtype=bool)
        is_personal[mine] = personal[ch[mine]]
        in_window = mine & is_personal & (ts > (at_ts - pd.Timedelta(days=policy.window_days)).to_datetime64())
        contacts = np.bincount(pos[in_window], minlength=n)
        by_channel = np.bincount(pos[in_window] * n_ch + ch[in_window], minlength=n * n_ch).reshape(n, n_ch)
        cool = mine & is_personal & (of >= 0) & (ts > (at_ts - pd.Timedelta(days=policy.offer_cooldown_days)).to_datetime64())
        cooling = np.zeros((n, n_of), dtype=bool)
        cooling[pos[cool], of[cool]] = True

        neg = self.negatives
        npos = index.get_indexer(neg["customer_id"].to_numpy())
        age = (at_ts - neg["ts"]).to_numpy()
        live = (npos >= 0) & (age >= np.timedelta64(0))
        complaint = np.zeros(n, dtype=bool)
        negative = np.zeros(n, dtype=bool)
        is_complaint = (neg["outcome"] == "complaint").to_numpy()
        c_sel = live & is_complaint & (age < np.timedelta64(policy.complaint_suppression_days, "D"))
        n_sel = live & ~is_complaint & (age < np.timedelta64(policy.negative_response_suppression_days, "D"))
        complaint[npos[c_sel]] = True
        negative[npos[n_sel]] = True

        offer_remaining = np.array(
            [np.inf if o.max_contacts is None else max(o.max_contacts - self.offer_totals.get(o.id, 0), 0) for o in cfg.offers.offers],
            dtype=float,
        )
        day = at_ts.date()
        channel_remaining = np.array(
            [
                np.inf if c.daily_capacity is None else max(c.daily_capacity - self.channel_days.get((day, c.id), 0), 0)
                for c in cfg.channels.channels
            ],
            dtype=float,
        )
        return HistoryView(contacts, by_channel, cooling, complaint, negative, offer_remaining, channel_remaining)


def _normalise(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    out = frame.loc[:, list(columns)].copy()
    out["customer_id"] = out["customer_id"].astype("int64")
    out["ts"] = pd.to_datetime(out["ts"]).astype("datetime64[us]")
    for c in columns[2:]:
        out[c] = out[c].astype(object)
    return out.reset_index(drop=True)
