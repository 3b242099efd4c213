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
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.features.contacts import PRESSURE_HORIZON_DAYS, PressureFeature, pressure_values

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
    trigger_cooling: np.ndarray  # (n, T) one of the trigger's offers was sent within its re-fire cool-down


class _CustomerLog:
    """Rows keyed by customer id, found by binary search instead of a scan.

    A sorted base holds most rows; rows appended during a run go to an unsorted
    tail with a dict from customer to tail rows, merged into the base once it
    grows past an eighth of it. Recording one decision at a time (the scoring
    service) thus costs amortised O(1) per append, and a look-up of a few
    customers O(log n) plus their own rows, however long the tail.

    Parameters
    ----------
    columns
        Equal-length arrays, one of them ``customer_id`` (int64).
    """

    _MIN_TAIL = 4096

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        self._names = tuple(columns)
        self._base = self._sorted(columns)
        self._tail = {k: v[:0].copy() for k, v in columns.items()}
        self._tail_rows = 0
        self._tail_index: dict[int, list[int]] = {}

    @staticmethod
    def _sorted(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        order = np.argsort(columns["customer_id"], kind="stable")
        return {k: v[order] for k, v in columns.items()}

    def append(self, columns: dict[str, np.ndarray]) -> None:
        """Add rows (same columns as at construction)."""
        m = len(columns["customer_id"])
        if m == 0:
            return
        rows = self._tail_rows
        if rows + m > max(self._MIN_TAIL, len(self._base["customer_id"]) // 8):
            self._merge({k: np.concatenate([self._tail[k][:rows], v]) for k, v in columns.items()})
            return
        if rows + m > len(self._tail["customer_id"]):  # grow by doubling: amortised O(1) per row
            size = max(2 * (rows + m), 64)
            for k, v in self._tail.items():
                grown = np.empty(size, dtype=v.dtype)
                grown[:rows] = v[:rows]
                self._tail[k] = grown
        for k, v in columns.items():
            self._tail[k][rows : rows + m] = v
        index = self._tail_index
        for i, cid in enumerate(columns["customer_id"].tolist(), start=rows):
            index.setdefault(cid, []).append(i)
        self._tail_rows = rows + m

    def _merge(self, rows: dict[str, np.ndarray]) -> None:
        """Move ``rows`` (the tail, and what came with it) into the sorted base; empties the tail."""
        rows = self._sorted(rows)
        keys = self._base["customer_id"]
        # Sorted into sorted: each new row after the base rows of its customer, as a stable sort of base + rows.
        at = np.searchsorted(keys, rows["customer_id"], side="right")
        self._base = {k: np.insert(self._base[k], at, rows[k]) for k in self._names}
        self._tail_rows = 0
        self._tail_index = {}

    def rows_of(self, customer_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Every row of the customers ``customer_ids`` (any order, each row once)."""
        ids = np.unique(customer_ids) if len(customer_ids) > 1 else np.asarray(customer_ids)
        keys = self._base["customer_id"]
        lo = np.searchsorted(keys, ids, side="left")
        hi = np.searchsorted(keys, ids, side="right")
        if len(ids) == 1:
            take: np.ndarray | slice = slice(int(lo[0]), int(hi[0]))
        else:
            lengths = hi - lo
            take = np.repeat(lo - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
        found = {k: v[take] for k, v in self._base.items()}
        if not self._tail_rows:
            return found
        if len(ids) <= _SMALL_RECORD:
            index = self._tail_index
            mine: np.ndarray = np.array([i for c in ids.tolist() for i in index.get(c, ())], dtype=np.int64)
        else:
            mine = np.flatnonzero(np.isin(self._tail["customer_id"][: self._tail_rows], ids))
        if not len(mine):
            return found
        return {k: np.concatenate([found[k], self._tail[k][mine]]) for k in self._names}


def _positions(customer_ids: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Position of each of ``keys`` in ``customer_ids`` (-1 = absent); a sort, not a hash table."""
    if len(customer_ids) == 1:  # a single decision: one comparison
        return np.where(keys == customer_ids[0], 0, -1)
    order = np.argsort(customer_ids, kind="stable")
    ordered = customer_ids[order]
    at = np.minimum(np.searchsorted(ordered, keys), max(len(ordered) - 1, 0))
    if len(ordered) == 0:
        return np.full(len(keys), -1, dtype=np.int64)
    return np.where(ordered[at] == keys, order[at], -1)


@dataclass
class ContactHistory:
    """Contacts, complaints and unsubscribes known to the decision policy.

    Build with :meth:`load` (from the warehouse) or :meth:`empty`; add a run's
    decisions with :meth:`record`; ask for the counts of a batch with :meth:`view`.
    Both are indexed by customer, so a view of a few customers costs the same
    whatever the size of the history.

    Parameters
    ----------
    config
        Configuration (windows, caps, channels, offers).
    events
        Contacted decisions known at construction: ``customer_id, ts, offer_id, channel``
        (decisions recorded later are indexed, not appended here).
    negatives
        Complaint and unsubscribe responses known at construction: ``customer_id, ts, outcome``.
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
    _contacts: _CustomerLog = field(init=False, repr=False)
    _negative_log: _CustomerLog = field(init=False, repr=False)

    def __post_init__(self) -> None:
        cfg = self.config
        self._offer_ids = [o.id for o in cfg.offers.offers]
        self._channel_ids = [c.id for c in cfg.channels.channels]
        self._offer_code = pd.Index(self._offer_ids, dtype=object)
        self._channel_code = pd.Index(self._channel_ids, dtype=object)
        self._offer_where = {o: i for i, o in enumerate(self._offer_ids)}
        self._channel_where = {c: i for i, c in enumerate(self._channel_ids)}
        self._personal = np.array([c.personal for c in cfg.channels.channels], dtype=bool)
        # Only capped offers and channels have anything to count down: the view touches just those.
        self._offer_caps = [(i, o.id, o.max_contacts) for i, o in enumerate(cfg.offers.offers) if o.max_contacts is not None]
        self._channel_caps = [(i, c.id, c.daily_capacity) for i, c in enumerate(cfg.channels.channels) if c.daily_capacity is not None]
        policy = cfg.policy.contact
        # The policy's periods as microsecond timedeltas, for the views.
        self._window = _days(policy.window_days)
        self._cooldown = _days(policy.offer_cooldown_days)
        triggers = cfg.policy.triggers
        # Which offers each trigger sends, and its re-fire cool-down: a trigger whose offer went out
        # (on any channel, the banner too) within it does not fire again.
        self._trigger_offers = np.zeros((len(self._offer_ids), len(triggers)), dtype=bool)
        for t_idx, t in enumerate(triggers):
            for offer_id in t.offers:
                self._trigger_offers[self._offer_where[offer_id], t_idx] = True
        self._refire = [_days(t.refire_cooldown_days) for t in triggers]
        self._lookback = _days(lookback_days(cfg))
        self._complaint_days = _days(policy.complaint_suppression_days)
        self._negative_days = _days(policy.negative_response_suppression_days)
        self._contacts = _CustomerLog(self._contact_columns(
            self.events["customer_id"].to_numpy(), self.events["ts"].to_numpy(),
            self.events["offer_id"].to_numpy(dtype=object), self.events["channel"].to_numpy(dtype=object),
        ))
        self._negative_log = _CustomerLog(self._negative_columns(
            self.negatives["customer_id"].to_numpy(), self.negatives["ts"].to_numpy(),
            self.negatives["outcome"].to_numpy(dtype=object),
        ))

    def _contact_columns(
        self, customer_ids: np.ndarray, ts: np.ndarray, offer_ids: np.ndarray, channels: np.ndarray
    ) -> dict[str, np.ndarray]:
        # Offers and channels as config positions (-1 = not configured): the view then needs no strings.
        return {
            "customer_id": np.asarray(customer_ids, dtype=np.int64),
            "ts": np.asarray(ts, dtype="datetime64[us]"),
            "offer": _positions_of(self._offer_code, self._offer_where, offer_ids),
            "channel": _positions_of(self._channel_code, self._channel_where, channels),
        }

    @staticmethod
    def _negative_columns(customer_ids: np.ndarray, ts: np.ndarray, outcomes: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "customer_id": np.asarray(customer_ids, dtype=np.int64),
            "ts": np.asarray(ts, dtype="datetime64[us]"),
            "complaint": np.asarray(outcomes, dtype=object) == "complaint",
        }

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
        lookback = lookback_days(config)
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
        made = decisions["contacted"].astype(bool).to_numpy() & decisions["offer_id"].notna().to_numpy()
        if not made.any():
            return
        self.record_contacts(
            decisions["customer_id"].to_numpy()[made],
            pd.to_datetime(decisions["ts"]).to_numpy()[made],
            decisions["offer_id"].to_numpy(dtype=object)[made],
            decisions["channel"].to_numpy(dtype=object)[made],
        )

    def record_contacts(
        self, customer_ids: np.ndarray, ts: np.ndarray, offer_ids: np.ndarray, channels: np.ndarray
    ) -> None:
        """Add contacts made in this run, one per element of the equal-length arrays.

        Parameters
        ----------
        customer_ids
            Contacted customers.
        ts
            Contact times (``datetime64``).
        offer_ids, channels
            Offer and channel of each contact.
        """
        columns = self._contact_columns(customer_ids, ts, offer_ids, channels)
        if len(columns["customer_id"]) == 0:
            return
        self._contacts.append(columns)
        days = columns["ts"].astype("datetime64[D]")
        named = np.asarray(channels, dtype=object)
        if len(days) <= _SMALL_RECORD:
            # Offers the catalogue no longer has still count, under their id.
            for offer_id, day, ch in zip(np.asarray(offer_ids, dtype=object).tolist(), days.tolist(), named.tolist(), strict=True):
                if offer_id is not None:
                    self.offer_totals[offer_id] += 1
                if ch is not None:
                    self.channel_days[(day, ch)] += 1
            return
        offer = columns["offer"]
        known = offer >= 0
        counts = np.bincount(offer[known], minlength=len(self._offer_ids))
        self.offer_totals.update({self._offer_ids[i]: int(k) for i, k in enumerate(counts) if k})
        if not known.all():  # offers the catalogue no longer has still count under their id
            self.offer_totals.update(pd.Series(np.asarray(offer_ids, dtype=object)[~known]).value_counts().to_dict())
        per_day = pd.DataFrame({"day": days, "channel": named}).value_counts(sort=False)
        self.channel_days.update({(pd.Timestamp(d).date(), c): int(k) for (d, c), k in per_day.items()})

    def record_negative(self, customer_ids: np.ndarray, at: dt.datetime, outcome: str) -> None:
        """Add complaints or unsubscribes observed in this run (``outcome``: complaint | unsubscribe)."""
        ids = np.asarray(customer_ids, dtype="int64")
        ts = np.full(len(ids), pd.Timestamp(at).as_unit("us").to_datetime64())
        self._negative_log.append(self._negative_columns(ids, ts, np.full(len(ids), outcome, dtype=object)))

    def latest_contact(self, customer_id: int) -> dt.datetime | None:
        """Time of the customer's newest recorded contact (``None`` without one)."""
        ts = self._contacts.rows_of(np.array([customer_id], dtype=np.int64))["ts"]
        return pd.Timestamp(ts.max()).to_pydatetime() if len(ts) else None

    def pressure(
        self, customer_ids: np.ndarray, at: dt.datetime, features: Sequence[PressureFeature]
    ) -> dict[str, np.ndarray]:
        """Contact pressure of ``customer_ids`` (in that order) at ``at``: the ``features`` as the training set
        counts them at a decision's time (:func:`~nextbest.features.contacts.pressure_values`), over every
        contact this history holds, recorded ones included, strictly before ``at``.

        Exact while the history holds :data:`~nextbest.features.contacts.PRESSURE_HORIZON_DAYS` days before
        ``at`` (:func:`lookback_days` covers them).
        """
        ids = np.asarray(customer_ids, dtype=np.int64)
        ev = self._contacts.rows_of(ids)
        pos = _positions(ids, ev["customer_id"])
        at_us = int(np.datetime64(pd.Timestamp(at).as_unit("us").to_datetime64(), "us").astype(np.int64))
        ch = ev["channel"]
        names = np.append(np.asarray(self._channel_ids, dtype=object), None)  # -1: a channel not configured
        keep = pos >= 0
        return pressure_values(features, pos[keep], len(ids), ev["ts"][keep].astype(np.int64), at_us, names[ch[keep]])

    def view(self, customer_ids: np.ndarray, at: dt.datetime) -> HistoryView:
        """Counts for the customers ``customer_ids`` (in that order) at ``at``."""
        n, n_ch, n_of = len(customer_ids), len(self._channel_ids), len(self._offer_ids)
        ids = np.asarray(customer_ids, dtype=np.int64)
        stamp = pd.Timestamp(at)
        at64 = np.datetime64(stamp.as_unit("us").to_datetime64(), "us")

        ev = self._contacts.rows_of(ids)
        ts = ev["ts"]
        recent = (ts > at64 - self._lookback) & (ts <= at64)
        pos = _positions(ids, ev["customer_id"])
        ch, of = ev["channel"], ev["offer"]
        mine = recent & (pos >= 0) & (ch >= 0)
        is_personal = np.zeros(len(ch), dtype=bool)
        is_personal[mine] = self._personal[ch[mine]]
        in_window = mine & is_personal & (ts > at64 - self._window)
        contacts = np.bincount(pos[in_window], minlength=n)
        by_channel = np.bincount(pos[in_window] * n_ch + ch[in_window], minlength=n * n_ch).reshape(n, n_ch)
        cool = mine & is_personal & (of >= 0) & (ts > at64 - self._cooldown)
        cooling = np.zeros((n, n_of), dtype=bool)
        cooling[pos[cool], of[cool]] = True
        trigger_cooling = np.zeros((n, len(self._refire)), dtype=bool)
        sent = mine & (of >= 0)
        for t_idx, refire in enumerate(self._refire):
            hit = sent & self._trigger_offers[np.where(sent, of, 0), t_idx] & (ts > at64 - refire)
            trigger_cooling[pos[hit], t_idx] = True

        neg = self._negative_log.rows_of(ids)
        npos = _positions(ids, neg["customer_id"])
        age = at64 - neg["ts"]
        live = (npos >= 0) & (age >= np.timedelta64(0))
        is_complaint = neg["complaint"]
        complaint = np.zeros(n, dtype=bool)
        negative = np.zeros(n, dtype=bool)
        complaint[npos[live & is_complaint & (age < self._complaint_days)]] = True
        negative[npos[live & ~is_complaint & (age < self._negative_days)]] = True

        offer_remaining = np.full(n_of, np.inf)
        for i, oid, cap in self._offer_caps:
            offer_remaining[i] = max(cap - self.offer_totals.get(oid, 0), 0)
        day = stamp.date()
        channel_remaining = np.full(n_ch, np.inf)
        for i, cid, cap in self._channel_caps:
            channel_remaining[i] = max(cap - self.channel_days.get((day, cid), 0), 0)
        return HistoryView(
            contacts, by_channel, cooling, complaint, negative, offer_remaining, channel_remaining, trigger_cooling
        )


#: Up to this many contacts, counting per (day, channel) in Python beats a pandas groupby.
_SMALL_RECORD = 64


def record_contacts_at(
    history: ContactHistory, customer_ids: np.ndarray, at: dt.datetime, offer_ids: np.ndarray, channels: np.ndarray
) -> None:
    """Add to ``history`` the contacts of ``customer_ids`` made at ``at`` (offer and channel of each)."""
    history.record_contacts(customer_ids, np.full(len(customer_ids), pd.Timestamp(at).as_unit("us").to_datetime64()), offer_ids, channels)


def _positions_of(index: pd.Index, where: dict[object, int], values: np.ndarray) -> np.ndarray:
    """Position of each value in ``index`` (-1 = absent); a look-up in ``where`` (the same, as a dict)
    for the few of a single decision."""
    values = np.asarray(values, dtype=object)
    if len(values) <= _SMALL_RECORD:
        return np.fromiter((where.get(v, -1) for v in values.tolist()), dtype=np.int64, count=len(values))
    return index.get_indexer(values)


def lookback_days(config: NextbestConfig) -> int:
    """Days of contacts a view reads: the caps' window, the offer cool-down, every trigger's re-fire cool-down
    and the horizon of the models' contact pressure."""
    policy = config.policy
    return max(
        policy.contact.window_days, policy.contact.offer_cooldown_days,
        *(t.refire_cooldown_days for t in policy.triggers), PRESSURE_HORIZON_DAYS + 1,
    )


def _days(n: int) -> np.timedelta64:
    return np.timedelta64(int(n) * 86_400_000_000, "us")


def _normalise(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    out = frame.loc[:, list(columns)].copy()
    out["customer_id"] = out["customer_id"].astype("int64")
    out["ts"] = pd.to_datetime(out["ts"]).astype("datetime64[us]")
    for c in columns[2:]:
        out[c] = out[c].astype(object)
    return out.reset_index(drop=True)
