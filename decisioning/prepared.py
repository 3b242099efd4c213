"""Customers prepared for deciding: everything the engine reads from their feature rows, as arrays.

:meth:`DecisionEngine.prepare <nextbest.decisioning.engine.DecisionEngine.prepare>`
turns a feature frame (and its offer history) into :class:`PreparedCustomers`;
every decision goes through one. A batch run prepares its frame per call; the
scoring service prepares its whole feature snapshot once when it loads it and
takes the requested customers' rows per request, so a request does no pandas
work at all. :func:`complete_features` gives requested ids their feature rows,
an all-null (cold-start) row for unknown ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from nextbest.decisioning.candidates import CustomerFacts
from nextbest.models.candidate_matrix import CustomerEncoder, EncodedCustomers

#: Offer-history columns joined onto candidate rows, with the value a never-shown offer gets.
OFFER_HISTORY_FILL: dict[str, float] = {
    "shown_30d": 0.0, "shown_90d": 0.0, "days_since_shown": np.nan, "responded_before": 0.0, "converted_before": 0.0,
}


@dataclass(frozen=True)
class OfferHistoryRows:
    """Offer-history rows of a batch's customers, by customer position and offer index.

    Rows are grouped by customer, in their original order within a customer, so a
    (customer, offer) pair listed twice resolves to the same row however the
    batch is cut.

    Attributes
    ----------
    cust, offer
        (m,) customer position in the batch and offer index (config order).
    values
        Offer-history column → (m,) float values.
    start, count
        (n,) first row and number of rows of each customer.
    """

    cust: np.ndarray
    offer: np.ndarray
    values: dict[str, np.ndarray]
    start: np.ndarray
    count: np.ndarray

    @classmethod
    def of(cls, offer_history: pd.DataFrame, ids: np.ndarray, offer_ids: Sequence[str]) -> OfferHistoryRows:
        """Rows of ``offer_history`` whose customer is in ``ids`` and whose offer is configured."""
        cust = pd.Index(ids).get_indexer(offer_history["customer_id"].to_numpy()) if len(offer_history) else np.zeros(0, dtype=np.int64)
        offer = pd.Index(list(offer_ids), dtype=object).get_indexer(offer_history["offer_id"].to_numpy()) if len(offer_history) else cust
        ok = np.flatnonzero((cust >= 0) & (offer >= 0))
        ok = ok[np.argsort(cust[ok], kind="stable")]
        values = {
            c: offer_history[c].to_numpy(dtype=float, na_value=np.nan)[ok]
            for c in OFFER_HISTORY_FILL if c in offer_history.columns
        }
        count = np.bincount(cust[ok], minlength=len(ids))
        start = np.zeros(len(ids), dtype=np.int64)
        np.cumsum(count[:-1], out=start[1:])
        return cls(cust[ok].astype(np.int64), offer[ok].astype(np.int64), values, start, count)

    @property
    def columns(self) -> list[str]:
        """Offer-history columns held."""
        return list(self.values)

    def take(self, positions: np.ndarray) -> OfferHistoryRows:
        """The rows of the customers at ``positions``, renumbered to their new positions."""
        count = self.count[positions]
        start = np.zeros(len(positions), dtype=np.int64)
        np.cumsum(count[:-1], out=start[1:])
        rows = np.repeat(self.start[positions] - start, count) + np.arange(int(count.sum()))
        cust = np.repeat(np.arange(len(positions), dtype=np.int64), count)
        return OfferHistoryRows(cust, self.offer[rows], {c: v[rows] for c, v in self.values.items()}, start, count)

    @classmethod
    def concat(cls, parts: Sequence[OfferHistoryRows]) -> OfferHistoryRows:
        """The customers of ``parts`` one after the other."""
        sizes = np.array([len(p.count) for p in parts])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        rows = np.concatenate([[0], np.cumsum([len(p.cust) for p in parts])[:-1]])
        return cls(
            np.concatenate([p.cust + o for p, o in zip(parts, offsets, strict=True)]),
            np.concatenate([p.offer for p in parts]),
            {c: np.concatenate([p.values[c] for p in parts]) for c in parts[0].values},
            np.concatenate([p.start + r for p, r in zip(parts, rows, strict=True)]),
            np.concatenate([p.count for p in parts]),
        )

    def lookup(self, cust: np.ndarray, offer: np.ndarray, n_offers: int) -> dict[str, np.ndarray]:
        """Each column's value for candidate rows ``(cust, offer)``; the fill value where never shown."""
        slot = np.full(len(self.count) * n_offers, -1, dtype=np.int64)
        # A pair listed twice takes its last row, as a repeated fancy assignment does.
        slot[self.cust * n_offers + self.offer] = np.arange(len(self.cust))
        hit = slot[cust * n_offers + offer]
        # The appended fill value is what index -1 (never shown) picks.
        return {c: np.append(v, OFFER_HISTORY_FILL[c])[hit] for c, v in self.values.items()}


class ReasonMemo:
    """Model reason codes already computed, by (model alias, customer row, offer, channel).

    A candidate row is fixed by its customer's prepared row and its pair, so its
    contributions (``pred_contrib``, ~0.25 ms a row, most of a single-customer
    decision) are too, for as long as the prepared block and the models stay: the
    scoring service keeps one memo per loaded state. Bounded by ``size`` entries:
    full, it starts over.

    Parameters
    ----------
    size
        Most entries kept.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        #: Lookups answered from memory and lookups that had to compute (a benchmark's hit rate).
        self.hits = 0
        self.misses = 0
        # Tuples of strings: the garbage collector stops tracking them, so a full memo adds nothing to its scans.
        self._codes: dict[tuple[str, int, int, int], tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self._codes)

    def get(self, key: tuple[str, int, int, int]) -> tuple[str, ...] | None:
        """The reasons of ``key``, or ``None`` when not computed yet."""
        found = self._codes.get(key)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    def put(self, key: tuple[str, int, int, int], reasons: Sequence[str]) -> None:
        """Remember the reasons of ``key``."""
        if len(self._codes) >= self.size:
            self._codes.clear()
        self._codes[key] = tuple(reasons)


class PreparedCustomers:
    """A batch of customers as the engine decides on them.

    Parameters
    ----------
    ids
        (n,) customer ids, one per customer (no repeats).
    facts
        Targeting inputs (:func:`~nextbest.decisioning.candidates.customer_facts`).
    cold_start
        (n,) no feature known.
    interest
        (n,) ``interest_category`` (objects; ``None`` when the frame has none), for messages.
    offer_history
        Offer-history rows, or ``None`` when the batch came without.
    frame_of
        Returns the feature frame of ``ids`` (one row per id, in order); called
        only for what needs the frame (a scorer without a matrix path, an encoding
        not prepared yet).
    encoders
        Scorer alias → the encoder of its matrix path.
    encoded
        Encodings already made, by alias.
    memo, origin
        Reason codes computed before for these customers (``None``: nothing
        remembered), and each customer's row in the block they were taken from
        (``None``: not taken from a block that keeps track).
    pressure
        Contact-pressure column → (n,) the values the feature rows (and so the
        encodings) hold; :meth:`with_pressure` replaces them.
    """

    def __init__(
        self,
        ids: np.ndarray,
        facts: CustomerFacts,
        cold_start: np.ndarray,
        interest: np.ndarray,
        offer_history: OfferHistoryRows | None,
        frame_of: Callable[[np.ndarray], pd.DataFrame],
        encoders: Mapping[str, CustomerEncoder],
        encoded: dict[str, EncodedCustomers] | None = None,
        memo: ReasonMemo | None = None,
        origin: np.ndarray | None = None,
        pressure: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.ids = ids
        self.facts = facts
        self.cold_start = cold_start
        self.interest = interest
        self.offer_history = offer_history
        self._frame_of = frame_of
        self._frame: pd.DataFrame | None = None
        self._encoders = encoders
        self._encoded = dict(encoded or {})
        self.memo = memo
        self.origin = origin
        self.pressure = dict(pressure or {})
        #: Encodings of the same customers before :meth:`with_pressure`, and the rows it changed.
        self._stale: tuple[dict[str, EncodedCustomers], np.ndarray] = ({}, np.zeros(0, dtype=np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def frame(self) -> pd.DataFrame:
        """The customers' feature rows (built on first use)."""
        if self._frame is None:
            self._frame = self._frame_of(self.ids).reset_index(drop=True)
        return self._frame

    def encoded(self, alias: str) -> EncodedCustomers:
        """The customers encoded for scorer ``alias``'s matrix path (made on first use)."""
        enc = self._encoded.get(alias)
        if enc is None:
            before, rows = self._stale
            old = before.get(alias)
            if old is None:
                enc = self._encoders[alias](self.frame)
            else:
                # Only pressure columns changed: numbers written into a copy, unless the encoder needs the frame.
                enc = self._encoders[alias].with_numbers(old, rows, {c: v[rows] for c, v in self.pressure.items()})
            if enc is None:
                assert old is not None
                fresh = self._encoders[alias](self._frame_of(self.ids[rows]))
                matrices = tuple(m.copy() for m in old.matrices)
                for m, f in zip(matrices, fresh.matrices, strict=True):
                    m[rows] = f
                derived = {c: v.copy() for c, v in old.derived.items()}
                for c, v in derived.items():
                    v[rows] = fresh.derived[c]
                enc = EncodedCustomers(matrices, derived)
            self._encoded[alias] = enc
        return enc

    def encode_all(self) -> PreparedCustomers:
        """Make every encoding now (the service does so once per snapshot); returns ``self``."""
        for alias in self._encoders:
            self.encoded(alias)
        return self

    def remember_reasons(self, size: int) -> PreparedCustomers:
        """Keep up to ``size`` reason codes of these customers across :meth:`take`\ s; returns ``self``.

        Only for a block whose rows and models stay fixed (a loaded snapshot); ``size`` 0 keeps none.
        Rows taken from the block know their ``origin`` in it either way.
        """
        self.memo = ReasonMemo(size) if size > 0 else None
        self.origin = np.arange(len(self.ids), dtype=np.int64)
        return self

    def take(self, positions: np.ndarray, ids: np.ndarray | None = None) -> PreparedCustomers:
        """The customers at ``positions``; ``ids`` renames them (a cold-start row serves any unknown id)."""
        return PreparedCustomers(
            self.ids[positions] if ids is None else np.asarray(ids, dtype=np.int64),
            self.facts.take(positions),
            self.cold_start[positions],
            self.interest[positions],
            self.offer_history.take(positions) if self.offer_history is not None else None,
            self._frame_of,
            self._encoders,
            {alias: enc.take(positions) for alias, enc in self._encoded.items()},
            self.memo,
            self.origin[positions] if self.origin is not None else None,
            {c: v[positions] for c, v in self.pressure.items()},
        )

    def with_pressure(self, values: Mapping[str, np.ndarray]) -> PreparedCustomers:
        """These customers with the contact-pressure columns ``values`` (those the rows have) in place of the
        snapshot's: ``self`` when nothing changes, else a copy whose changed rows are encoded again.

        The copy remembers no reason codes (they were computed on the old values) and keeps ``origin``.
        A cold start (no feature known) stays on its all-null row: no model saw pressure without the rest.
        """
        known = ~self.cold_start
        values = {c: np.where(known, np.asarray(v, dtype=float), self.pressure[c]) for c, v in values.items() if c in self.pressure}
        changed = np.zeros(len(self.ids), dtype=bool)
        for c, v in values.items():
            changed |= known & (self.pressure[c] != v)
        if not changed.any():
            return self
        own, base_of = self.ids, self._frame_of

        def frame_of(ids: np.ndarray) -> pd.DataFrame:
            frame = base_of(ids).reset_index(drop=True)
            pos = pd.Index(own).get_indexer(np.asarray(ids, dtype=np.int64))
            found = pos >= 0
            return frame.assign(**{
                c: np.where(found, v[np.maximum(pos, 0)], frame[c].to_numpy(dtype=float, na_value=np.nan))
                for c, v in values.items()
            })

        patched = PreparedCustomers(
            self.ids, self.facts, self.cold_start, self.interest, self.offer_history, frame_of, self._encoders,
            None, None, self.origin, {**self.pressure, **values},
        )
        # Encodings made before: only the changed rows are encoded again, and only when asked for.
        patched._stale = (dict(self._encoded), np.flatnonzero(changed))
        return patched

    @classmethod
    def concat(cls, parts: Sequence[PreparedCustomers], frame_of: Callable[[np.ndarray], pd.DataFrame]) -> PreparedCustomers:
        """The customers of ``parts`` one after the other (``frame_of`` serves the whole)."""
        histories = [p.offer_history for p in parts]
        first = parts[0]
        return cls(
            np.concatenate([p.ids for p in parts]),
            CustomerFacts.concat([p.facts for p in parts]),
            np.concatenate([p.cold_start for p in parts]),
            np.concatenate([p.interest for p in parts]),
            OfferHistoryRows.concat(histories) if all(h is not None for h in histories) else None,  # type: ignore[arg-type]
            frame_of,
            first._encoders,
            {a: EncodedCustomers.concat([p.encoded(a) for p in parts]) for a in first._encoded if all(a in p._encoded for p in parts)},
            pressure={c: np.concatenate([p.pressure[c] for p in parts]) for c in first.pressure
                      if all(c in p.pressure for p in parts)},
        )


def complete_features(found: pd.DataFrame, customer_ids: np.ndarray, columns: list[str] | None = None) -> pd.DataFrame:
    """Feature rows for ``customer_ids`` in that order, with an all-null row for unknown ids.

    A customer without features is a *cold start*: null consent and reachability
    leave only non-personal channels, and the decision says ``cold_start``.

    Parameters
    ----------
    found
        Rows the feature store returned (``customer_id`` + features).
    customer_ids
        Requested ids.
    columns
        Feature columns when ``found`` is empty (default: those of ``found``).
    """
    ids = np.asarray(customer_ids, dtype=np.int64)
    index = pd.Index(found["customer_id"].to_numpy(dtype=np.int64)) if len(found) else pd.Index([], dtype=np.int64)
    pos = index.get_indexer(ids)
    if (pos >= 0).all():
        return found.take(pos).reset_index(drop=True)
    cols = list(found.columns) if len(found.columns) else ["customer_id", *(columns or [])]
    blank = pd.DataFrame({c: pd.Series([None] * int((pos < 0).sum()), dtype=object) for c in cols})
    blank["customer_id"] = ids[pos < 0]
    known = found.take(pos[pos >= 0]).reset_index(drop=True)
    merged = pd.concat([known, blank], ignore_index=True) if len(known) else blank
    order = pd.Index(merged["customer_id"].to_numpy(dtype=np.int64)).get_indexer(ids)
    return merged.take(order).reset_index(drop=True)
