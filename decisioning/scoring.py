"""Steps 1-4 of a decision: the candidates that survive every rule, scored and valued.

Every customer of a batch starts with every (offer, channel) pair of a
:class:`~nextbest.decisioning.candidates.PairGrid`; the rules of
:mod:`~nextbest.decisioning.candidates` remove pairs, the surviving rows go to
the scorer of the customer's experiment arm, and arbitration values each row:

    EV = (uplift or P) × value × lever × boost − cost

:func:`score_grid` returns them as :class:`ScoredCandidates`, which selection,
campaign planning and the per-customer plans all start from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig
from nextbest.decisioning.candidates import PairGrid, Targeting, suppression_codes
from nextbest.decisioning.documents import Context
from nextbest.decisioning.hashing import key_of, uniform
from nextbest.decisioning.history import ContactHistory, HistoryView
from nextbest.decisioning.prepared import PreparedCustomers

if TYPE_CHECKING:
    from nextbest.decisioning.engine import DecisionEngine


def assign_arms(customer_ids: np.ndarray, config: NextbestConfig) -> np.ndarray:
    """Experiment arm index (config order) of each customer: a salted hash, stable forever.

    Parameters
    ----------
    customer_ids
        Integer customer ids.
    config
        Its ``policy.experiment`` gives the arms, shares and salt.
    """
    exp = config.policy.experiment
    u = uniform(np.asarray(customer_ids, dtype=np.int64), key_of("arm", exp.name, exp.salt))
    edges = np.cumsum([a.share for a in exp.arms])
    return np.minimum(np.searchsorted(edges, u, side="right"), len(exp.arms) - 1)


def in_universal_control(customer_ids: np.ndarray, config: NextbestConfig) -> np.ndarray:
    """Whether each customer is in the persistent universal control group (never contacted).

    A hash with the group's own salt, independent of the experiment's name and
    salt, so the same customers stay held out whatever experiment runs.
    """
    uc = config.policy.universal_control
    if uc.share <= 0:
        return np.zeros(len(customer_ids), dtype=bool)
    return uniform(np.asarray(customer_ids, dtype=np.int64), key_of("universal_control", uc.salt)) < uc.share


@dataclass(frozen=True)
class ScoredCandidates:
    """Surviving candidate rows of a batch with their arbitration terms.

    ``cust``/``pair``/``offer``/``channel`` index each row's customer (batch
    position), grid pair, offer and channel (config order); the other arrays
    are per row except ``ids``, ``arm``, ``cold_start`` (per customer).
    ``customers`` are the prepared customers the rows belong to; :attr:`frame`
    builds the rows as a DataFrame (the scorers' input) when asked.
    """

    at: dt.datetime
    ids: np.ndarray
    arm: np.ndarray
    grid: PairGrid
    target: Targeting
    view: HistoryView
    codes: np.ndarray
    cust: np.ndarray
    pair: np.ndarray
    offer: np.ndarray
    channel: np.ndarray
    customers: PreparedCustomers
    probability: np.ndarray
    uplift: np.ndarray
    boost: np.ndarray
    gain: np.ndarray
    cost: np.ndarray
    expected_value: np.ndarray
    cold_start: np.ndarray
    engine: DecisionEngine

    @cached_property
    def frame(self) -> pd.DataFrame:
        """The candidate rows as the scorers read them: ``customer_id, offer_id, channel`` + features."""
        return candidate_frame(self.customers, self.cust, self.offer, self.channel, self.engine.offer_ids, self.engine.channel_ids)


def score_grid(
    engine: DecisionEngine, customers: PreparedCustomers, at: dt.datetime, context: Context, history: ContactHistory,
    grid: PairGrid,
) -> ScoredCandidates:
    """:meth:`DecisionEngine.score_candidates <nextbest.decisioning.engine.DecisionEngine.score_candidates>`
    over the pairs of ``grid``, with ``engine``'s rules, scorers and arbitration terms."""
    config = engine.config
    ids = customers.ids
    view = history.view(ids, at)
    # A trigger within its re-fire cool-down does not fire (the same rule rank_plans applies to a plan).
    target = customers.facts.targeting(config, context, view.trigger_cooling)
    codes = suppression_codes(config, grid, target, view, engine._policy_arrays)
    # The universal control group overrides every arm: decided and logged, never contacted.
    arm = np.where(in_universal_control(ids, config), engine.universal_arm, engine.arm_served[assign_arms(ids, config)])

    cust, pair = np.nonzero(codes == 0)
    offer, channel = grid.offer[pair], grid.channel[pair]
    p_contact, uplift = score_rows(engine, customers, cust, offer, channel, arm[cust])

    arb = config.policy.arbitration
    boost = target.boost[cust, offer]
    stages = config.policy.stages
    if stages.mode == "boost":
        boost = boost * np.where(engine.offer_stage[offer] == target.stage[cust], stages.boost, 1.0)
    # Boosts scale the gain, never the cost: a boosted loss must not become a bigger loss.
    gain = engine.offer_value[offer] * engine.offer_lever[offer] * boost
    p = uplift if arb.objective == "uplift" else p_contact
    cost = engine.channel_cost[channel]
    return ScoredCandidates(
        at=at, ids=ids, arm=arm, grid=grid, target=target, view=view, codes=codes, cust=cust, pair=pair,
        offer=offer, channel=channel, customers=customers, probability=p_contact, uplift=uplift, boost=boost,
        gain=gain, cost=cost, expected_value=p * gain - cost, cold_start=customers.cold_start, engine=engine,
    )


def ranking_keys(sc: ScoredCandidates, rules_arm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each candidate row's ranking key and whether a trigger forces it.

    ``rules_arm`` says, per experiment arm, whether it is a ``rules`` arm.
    """
    # The rules arm ranks by business value alone; every arm still reports the model's EV.
    key = np.where(rules_arm[sc.arm[sc.cust]], sc.gain - sc.cost, sc.expected_value)
    return key, sc.target.forced[sc.cust, sc.offer]


def score_rows(
    engine: DecisionEngine, customers: PreparedCustomers, cust: np.ndarray, offer: np.ndarray, channel: np.ndarray,
    row_arm: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """``p_contact`` and ``uplift`` of candidate rows ``(cust, offer, channel)``, each by its arm's scorer.

    A scorer with a matrix path scores from the customers' encoding; the others
    read the candidate DataFrame (built once, for all of them).
    """
    p_contact = np.zeros(len(cust))
    uplift = np.zeros(len(cust))
    if len(cust) == 0:
        return p_contact, uplift
    aliases = np.array(engine.arm_scorer, dtype=object)[row_arm]
    frame: pd.DataFrame | None = None
    history: dict[str, np.ndarray] | None = None
    for alias in dict.fromkeys(engine.arm_scorer):
        sel = aliases == alias
        if not sel.any():
            continue
        matrix = engine.matrix.get(alias)
        if matrix is not None:
            history = offer_history_of(customers, cust, offer, len(engine.offer_ids)) if history is None else history
            every = sel.all()
            p_contact[sel], uplift[sel] = matrix.score(
                customers.encoded(alias), cust if every else cust[sel], offer if every else offer[sel],
                channel if every else channel[sel], history if every else {c: v[sel] for c, v in history.items()},
            )
            continue
        frame = candidate_frame(customers, cust, offer, channel, engine.offer_ids, engine.channel_ids) if frame is None else frame
        part = frame if sel.all() else frame.loc[sel]
        scores = engine.scorers[alias].score(part)
        p_contact[sel] = scores["p_contact"].to_numpy(dtype=float)
        uplift[sel] = scores["uplift"].to_numpy(dtype=float)
    return p_contact, uplift


def candidate_frame(
    customers: PreparedCustomers, cust: np.ndarray, offer: np.ndarray, channel: np.ndarray, offer_ids: np.ndarray,
    channel_ids: np.ndarray,
) -> pd.DataFrame:
    """Candidate rows ``(cust, offer, channel)`` as a DataFrame: ``customer_id, offer_id, channel``, the
    customer's features, then its offer history for the offer.

    Parameters
    ----------
    customers
        The customers ``cust`` indexes.
    cust, offer, channel
        Customer position, offer and channel index (config order) of each row.
    offer_ids, channel_ids
        Offer and channel ids in config order (the categories of ``offer_id`` and ``channel``).
    """
    features = customers.frame
    # Text columns as categoricals: taking ~25 rows per customer copies codes, not strings.
    # (Skipped for small batches, where the per-column conversion costs more than it saves.)
    # Small batches: Arrow-backed strings as plain objects, whose row take is far cheaper.
    if len(features) >= 1000:
        text = {c: "category" for c, d in features.dtypes.items() if not (pd.api.types.is_numeric_dtype(d) or pd.api.types.is_bool_dtype(d))}
    else:
        text = {c: object for c, d in features.dtypes.items() if isinstance(d, pd.StringDtype)}
    compact = features.astype(text) if text else features
    frame = compact.take(cust).reset_index(drop=True)
    # Column labels as objects: scorers add columns, and inserting into an Arrow-backed
    # string index costs ~0.1 ms a column, most of a single-customer decision.
    frame.columns = frame.columns.astype(object)
    pair = pd.DataFrame(
        {
            "offer_id": pd.Categorical.from_codes(offer, categories=list(offer_ids)),
            "channel": pd.Categorical.from_codes(channel, categories=list(channel_ids)),
        }
    )
    added: dict[str, np.ndarray] = {}
    if customers.offer_history is not None and len(frame):
        added = customers.offer_history.lookup(cust, offer, len(offer_ids))
    # One concatenation, not an insert per column: the frame has a block per categorical
    # or nullable column, and pandas slows down (and warns) on inserts into such frames.
    parts = [frame.iloc[:, :1], pair, frame.iloc[:, 1:]]
    fresh = {c: v for c, v in added.items() if c not in frame.columns}
    if fresh:
        parts.append(pd.DataFrame(fresh))
    frame = pd.concat(parts, axis=1)
    replaced = {c: v for c, v in added.items() if c not in fresh}
    return frame.assign(**replaced) if replaced else frame


def offer_history_of(customers: PreparedCustomers, cust: np.ndarray, offer: np.ndarray, n_offers: int) -> dict[str, np.ndarray]:
    """Offer-history values of candidate rows (none without offer history); ``n_offers`` configured offers."""
    if customers.offer_history is None or len(cust) == 0:
        return {}
    return customers.offer_history.lookup(cust, offer, n_offers)
