"""Customer × offer features derived inside the model from customer features and the catalogue.

A global model sees ``offer_id`` and, say, twelve ``spend_share_<category>``
columns; to learn "this customer buys the offer's category" it would need a
split on every offer × share combination. Handing it that match directly is
worth more than any tuning (on the synthetic world, +0.015 test AUC). The
catalogue facts (offer → category, offer → journey stage) are captured from the
configuration at fit time and stored with the model, so the scorer needs
nothing but the candidate rows.

Derived columns (each only when its inputs are in the training frame):

``offer_category_share``     the customer's ``spend_share_<offer category>``
``offer_category_affinity``  the customer's ``category_affinity_<offer category>`` (browsing and buying),
                             shrunk towards the mean of customers like them (see below)
``offer_category_interest``  1 if ``interest_category`` is the offer's category
``offer_category_demand``    the market's ``category_demand_<offer category>``: is the offer's category
                             in season now (:mod:`nextbest.features.demand`)
``offer_stage_gap``          |journey stage of the customer − the offer's stage| (in stages)

Most customers leave a dozen or two category-tagged events, too few to tell a
taste from chance; what customers of the same gender, life stage and urbanity
browse and buy is a far better first guess. ``fit`` learns that guess - the
pooled affinity per demographic cell (``affinity_cells``), itself shrunk towards
everyone's - and ``transform`` combines it with the customer's own events
(``category_events``) as an empirical-Bayes posterior::

    (events · category_affinity + affinity_prior_events · cell affinity) / (events + affinity_prior_events)

It learns no label, only means of features, so it fits on the training rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from nextbest.config import JOURNEY_STAGES, NextbestConfig
from nextbest.features.registry import DEMAND_PREFIX
from nextbest.models.encoding import Levels, with_columns

SHARE_PREFIX = "spend_share_"
AFFINITY_PREFIX = "category_affinity_"
EVENTS_COLUMN = "category_events"
#: Pseudo-events that hold a sparse demographic cell's affinity near everyone's.
_CELL_PRIOR_EVENTS = 200.0


class OfferContext(TransformerMixin, BaseEstimator):
    """Add customer × offer match features to candidate rows.

    Parameters
    ----------
    offer_category, offer_stage
        Offer id → product category and → journey stage (from the catalogue).
    stages
        Journey stages in order.
    affinity_cells
        Categorical customer columns whose combinations are the cells of the affinity
        prior; ``()`` uses the customer's own affinity unshrunk.
    affinity_prior_events
        Weight, in events, of the cell's affinity against the customer's own events.

    Attributes
    ----------
    outputs_ : list[str]
        Derived columns this fitted transformer adds.
    categories_with_share_ : list[str]
        Offer categories that have a ``spend_share_`` column.
    categories_with_affinity_ : list[str]
        Offer categories that have a ``category_affinity_`` column.
    categories_with_demand_ : list[str]
        Offer categories that have a ``category_demand_`` column.
    cell_levels_ : list[list[str]]
        Levels of each of ``affinity_cells`` seen in fit (empty without the prior).
    affinity_prior_ : ndarray of shape (n_cells + 1, n_categories_with_affinity) or None
        Pooled affinity per cell (mixed-radix code over ``cell_levels_``, unknown level
        last); the last row, everyone's, serves rows whose cell was never seen.
    """

    def __init__(
        self,
        offer_category: Mapping[str, str] | None = None,
        offer_stage: Mapping[str, str] | None = None,
        stages: Sequence[str] = JOURNEY_STAGES,
        affinity_cells: Sequence[str] = ("gender", "life_stage", "urbanity"),
        affinity_prior_events: float = 40.0,
    ) -> None:
        self.offer_category = offer_category
        self.offer_stage = offer_stage
        self.stages = stages
        self.affinity_cells = affinity_cells
        self.affinity_prior_events = affinity_prior_events

    @classmethod
    def from_config(cls, config: NextbestConfig) -> OfferContext:
        offers = config.offers.offers
        return cls({o.id: o.category for o in offers}, {o.id: o.stage for o in offers})

    def fit(self, X: pd.DataFrame, y: object = None) -> OfferContext:
        categories = sorted(set((self.offer_category or {}).values()))
        self.categories_with_share_ = [c for c in categories if f"{SHARE_PREFIX}{c}" in X.columns]
        self.categories_with_affinity_ = [c for c in categories if f"{AFFINITY_PREFIX}{c}" in X.columns]
        self.categories_with_demand_ = [c for c in categories if f"{DEMAND_PREFIX}{c}" in X.columns]
        outputs = []
        if self.categories_with_share_:
            outputs.append("offer_category_share")
        if self.categories_with_affinity_:
            outputs.append("offer_category_affinity")
        if self.offer_category and "interest_category" in X.columns:
            outputs.append("offer_category_interest")
        if self.categories_with_demand_:
            outputs.append("offer_category_demand")
        if self.offer_stage and "journey_stage" in X.columns:
            outputs.append("offer_stage_gap")
        self.outputs_ = outputs
        self.cell_levels_, self.affinity_prior_ = [], None
        cells = list(self.affinity_cells)
        if self.categories_with_affinity_ and cells and all(c in X.columns for c in [*cells, EVENTS_COLUMN]):
            self.cell_levels_ = [sorted(set(X[c].dropna().astype(str))) for c in cells]
            self.affinity_prior_ = self._fit_prior(X)
        self.n_features_in_ = X.shape[1]
        return self

    def _cell_codes(self, X: pd.DataFrame) -> np.ndarray:
        """Mixed-radix cell code per row; a level not seen in fit takes each column's last slot."""
        code = np.zeros(len(X), dtype=np.int64)
        for column, levels in zip(self.affinity_cells, self.cell_levels_, strict=True):
            c = Levels.of(levels).codes_of(X[column])
            code = code * (len(levels) + 1) + np.where(c < 0, len(levels), c)
        return code

    def _fit_prior(self, X: pd.DataFrame) -> np.ndarray:
        n_cells = int(np.prod([len(levels) + 1 for levels in self.cell_levels_]))
        events = pd.to_numeric(X[EVENTS_COLUMN], errors="coerce").fillna(0.0).to_numpy(dtype=float)
        shares = X[[f"{AFFINITY_PREFIX}{c}" for c in self.categories_with_affinity_]].apply(
            pd.to_numeric, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        shares = np.nan_to_num(shares, nan=1.0 / max(len(self.categories_with_affinity_), 1))
        code = self._cell_codes(X)
        # Pooled (event-weighted) shares: a customer with 100 events says more than one with 2.
        weight = np.bincount(code, weights=events, minlength=n_cells)
        pooled = np.stack([np.bincount(code, weights=events * shares[:, k], minlength=n_cells)
                           for k in range(shares.shape[1])], axis=1)
        everyone = pooled.sum(axis=0) / max(weight.sum(), 1e-12)
        prior = (pooled + _CELL_PRIOR_EVENTS * everyone) / (weight + _CELL_PRIOR_EVENTS)[:, None]
        return np.vstack([prior, everyone])

    def _tables(self) -> _Tables:
        # Built on first use (a restored bundle never runs ``fit``) and kept while the
        # inputs are the same objects.
        # Bundles saved before the affinity or demand features existed lack their attribute.
        with_affinity = self.__dict__.get("categories_with_affinity_", [])
        with_demand = self.__dict__.get("categories_with_demand_", [])
        key = (self.offer_category, self.offer_stage, self.stages, self.categories_with_share_, with_affinity,
               with_demand)
        cached = self.__dict__.get("_tables_cache")
        if cached is None or any(a is not b for a, b in zip(cached[0], key, strict=True)):
            cached = (key, _Tables.build(self.offer_category or {}, self.offer_stage or {}, self.stages,
                                         self.categories_with_share_, with_affinity, with_demand))
            self.__dict__["_tables_cache"] = cached
        return cached[1]

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """``X`` with the derived columns, without the market's per-category demand columns.

        The demand columns are the same for every customer on a date; a learner given them
        raw splits on them as on a calendar and learns which weeks of the training period
        converted, which says nothing about the weeks it is asked about. Only the offer's
        own category's demand (``offer_category_demand``) goes on.
        """
        if not self.outputs_:
            return X
        # Every fact is looked up through the row's offer code: no per-row strings.
        offer = self._tables().offers.codes_of(X["offer_id"])  # -1 = an offer the catalogue does not know
        out = with_columns(X, self._derive(X, offer, table=False))
        return out.drop(columns=self.consumed_columns(), errors="ignore")

    def reads(self, column: str) -> bool:
        """Whether a derived column may be computed from customer column ``column`` (fitted or not)."""
        prefixes = (SHARE_PREFIX, AFFINITY_PREFIX, DEMAND_PREFIX)
        return column.startswith(prefixes) or column in {EVENTS_COLUMN, "interest_category", "journey_stage",
                                                          *self.affinity_cells}

    def consumed_columns(self) -> list[str]:
        """Input columns :meth:`transform` replaces by derived ones and drops."""
        return [f"{DEMAND_PREFIX}{c}" for c in self.__dict__.get("categories_with_demand_", [])]

    def offer_table(self, X: pd.DataFrame, offer_ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Every derived column for each customer row of ``X`` × each of ``offer_ids``.

        The scoring service's matrix path reads a candidate's derived value at
        ``[customer, offer]`` instead of deriving it per candidate row; each entry
        equals what :meth:`transform` gives the row of that customer and offer
        (both run :meth:`_derive`, here broadcast over the offers).

        Returns
        -------
        dict
            Derived column → ``(len(X), len(offer_ids))`` float array (``outputs_`` only).
        """
        if not self.outputs_:
            return {}
        offer = self._tables().offers.codes(np.asarray(list(offer_ids), dtype=object))
        return self._derive(X, offer, table=True)

    def _derive(self, X: pd.DataFrame, offer: np.ndarray, *, table: bool) -> dict[str, np.ndarray]:
        """The derived columns for the customers of ``X`` and offer codes ``offer``.

        ``table=False``: ``offer`` holds one code per row of ``X`` and each column is
        ``(len(X),)``. ``table=True``: ``offer`` holds the offers to derive for every
        customer and each column is ``(len(X), len(offer))``. One set of operations
        serves both by broadcasting customer arrays against offer arrays.
        """
        t = self._tables()
        lift = _Lift(table)
        category = t.offer_category[offer]  # -1 = no category, which nothing matches
        out: dict[str, np.ndarray] = {}
        if "offer_category_share" in self.outputs_:
            slot = lift.offer(t.share_slot[category])
            out["offer_category_share"] = _pick(X, SHARE_PREFIX, self.categories_with_share_, slot, lift)
        if "offer_category_affinity" in self.outputs_:
            out["offer_category_affinity"] = self._affinity(X, lift.offer(t.affinity_slot[category]), lift)
        if "offer_category_interest" in self.outputs_:
            interest = lift.customer(t.categories.codes_of(X["interest_category"]))
            known = lift.offer(category)
            out["offer_category_interest"] = ((interest == known) & (known >= 0)).astype(float)
        if "offer_category_demand" in self.outputs_:
            slot = lift.offer(t.demand_slot[category])
            out["offer_category_demand"] = _pick(X, DEMAND_PREFIX, self.categories_with_demand_, slot, lift)
        if "offer_stage_gap" in self.outputs_:
            customer = t.stages.codes_of(X["journey_stage"]).astype(float)
            customer[customer < 0] = np.nan
            out["offer_stage_gap"] = np.abs(lift.customer(customer) - lift.offer(t.offer_stage[offer]))
        return out

    def _affinity(self, X: pd.DataFrame, slot: np.ndarray, lift: _Lift) -> np.ndarray:
        """The customer's affinity for the offer's category, shrunk towards their cell's."""
        own = _pick(X, AFFINITY_PREFIX, self.categories_with_affinity_, slot, lift)
        prior = self.__dict__.get("affinity_prior_")
        if prior is None:
            return own
        events = lift.customer(pd.to_numeric(X[EVENTS_COLUMN], errors="coerce").fillna(0.0).to_numpy(dtype=float))
        cell = lift.customer(np.minimum(self._cell_codes(X), len(prior) - 1))
        cell_share = np.where(slot >= 0, prior[cell, np.maximum(slot, 0)], np.nan)
        own = np.where(np.isnan(own), cell_share, own)
        a = self.affinity_prior_events
        return (events * own + a * cell_share) / (events + a)


@dataclass(frozen=True)
class _Lift:
    """Shapes customer and offer arrays for :meth:`OfferContext._derive`: aligned rows, or customers × offers."""

    table: bool

    def customer(self, values: np.ndarray) -> np.ndarray:
        return values[:, None] if self.table else values

    def offer(self, values: np.ndarray) -> np.ndarray:
        return values[None, :] if self.table else values


def _pick(X: pd.DataFrame, prefix: str, categories: Sequence[str], slot: np.ndarray, lift: _Lift) -> np.ndarray:
    """The ``<prefix><category>`` column of each slot (NaN for slot -1), per row or per customer × offer."""
    out = np.full(np.broadcast_shapes(lift.customer(np.empty(len(X))).shape, slot.shape), np.nan)
    for k, c in enumerate(categories):  # one vectorised pass per category, not per row
        hit = slot == k
        if hit.any():
            column = pd.to_numeric(X[f"{prefix}{c}"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            out = np.where(hit, lift.customer(column), out)
    return out


@dataclass(frozen=True)
class _Tables:
    """The catalogue facts of an :class:`OfferContext` as arrays indexed by offer code.

    Each per-offer array has one extra trailing entry, picked by code ``-1`` (unknown offer).
    """

    offers: Levels
    categories: Levels
    stages: Levels
    offer_category: np.ndarray  # category code per offer (-1 = none)
    offer_stage: np.ndarray  # stage index per offer (NaN = none)
    share_slot: np.ndarray  # position in categories_with_share_ per category code, -1 = none
    affinity_slot: np.ndarray  # position in categories_with_affinity_ per category code, -1 = none
    demand_slot: np.ndarray  # position in categories_with_demand_ per category code, -1 = none

    @classmethod
    def build(
        cls,
        offer_category: Mapping[str, str],
        offer_stage: Mapping[str, str],
        stages: Sequence[str],
        with_share: Sequence[str],
        with_affinity: Sequence[str] = (),
        with_demand: Sequence[str] = (),
    ) -> _Tables:
        offer_ids = sorted(set(offer_category) | set(offer_stage))
        categories = sorted(set(offer_category.values()))
        cat_code = {c: i for i, c in enumerate(categories)}
        stage_code = {s: float(i) for i, s in enumerate(stages)}
        category = [cat_code.get(offer_category.get(o), -1) for o in offer_ids] + [-1]  # type: ignore[arg-type]
        stage = [stage_code.get(offer_stage.get(o), np.nan) for o in offer_ids] + [np.nan]  # type: ignore[arg-type]
        slot = {c: k for k, c in enumerate(with_share)}
        affinity_slot = {c: k for k, c in enumerate(with_affinity)}
        demand_slot = {c: k for k, c in enumerate(with_demand)}
        return cls(
            offers=Levels.of(offer_ids),
            categories=Levels.of(categories),
            stages=Levels.of(list(stages)),
            offer_category=np.array(category, dtype=np.int64),
            offer_stage=np.array(stage, dtype=float),
            share_slot=np.array([slot.get(c, -1) for c in categories] + [-1], dtype=np.int64),
            affinity_slot=np.array([affinity_slot.get(c, -1) for c in categories] + [-1], dtype=np.int64),
            demand_slot=np.array([demand_slot.get(c, -1) for c in categories] + [-1], dtype=np.int64),
        )
