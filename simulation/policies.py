"""The policies a simulation compares, and the scorers behind the baselines.

Every policy that contacts anybody decides through the one
:class:`~nextbest.decisioning.engine.DecisionEngine`: the same candidates,
consent, eligibility, contact caps, capacities and arbitration. They differ only
in the experiment arm the engine serves and in the :class:`Scorer` it asks:

=============  ==========================================================================
``champion``   the registry's champion model (exploration as configured)
``challenger`` the registry's challenger model
``rules``      a marketer's static rules: the best offer of the customer's segment by its
               historical conversion rate × margin, on the preferred channel
               (:class:`RulesScorer`, ranked by P(response) × value − cost)
``random``     uniform over the eligible actions (the engine's ``random`` arm)
``oracle``     the world's true probabilities (:class:`OracleScorer`), greedy on true uplift
``none``       nobody is contacted (the baseline of every incremental figure)
``experiment`` the workspace's configured A/B experiment, arms and shares as configured
=============  ==========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from nextbest.config import Arbitration, Arm, Exploration, Experiment, NextbestConfig
from nextbest.decisioning.ruleset import RuleSet
from nextbest.errors import BadInputError
from nextbest.models.scoring import SCORE_COLUMNS
from nextbest.world import World

PolicyName = Literal["champion", "challenger", "rules", "random", "oracle", "none", "experiment"]
POLICIES: tuple[str, ...] = ("champion", "challenger", "rules", "random", "oracle", "none", "experiment")
#: Policies whose scorer is a registered model (the ones ``--via-server`` routes through HTTP).
MODEL_POLICIES: frozenset[str] = frozenset({"champion", "challenger", "experiment"})
#: Segment of a customer no marketer segment matches.
OTHER_SEGMENT = "other"


def check_policies(policies: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validated, de-duplicated policy names with ``none`` added (every increment is against it).

    Raises
    ------
    BadInputError
        For an unknown name, listing the known ones.
    """
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        raise BadInputError(f"--policy {unknown[0]!r} is unknown; use one of {', '.join(POLICIES)}")
    chosen = tuple(dict.fromkeys(policies or ("champion",)))
    return chosen if "none" in chosen else (*chosen, "none")


def policy_config(config: NextbestConfig, policy: str, experiment: Experiment | None = None) -> NextbestConfig:
    """The configuration a policy decides under: the workspace's, with one arm for everyone.

    ``experiment`` keeps the configured experiment, or runs ``experiment`` if given. The oracle explores nothing (it
    knows the truth) and neither do the static rules, which rank by response ×
    value, as a marketer without an uplift model would. Contact policy, offers and channels are never
    changed, so every policy obeys the same constraints.
    """
    if policy == "experiment":
        if experiment is None:
            return config
        return config.model_copy(update={"policy": config.policy.model_copy(update={"experiment": experiment})})
    name = config.policy.experiment.name
    arm = {
        "champion": Arm(name="champion", share=1.0, policy="model", model_alias="champion"),
        "challenger": Arm(name="challenger", share=1.0, policy="model", model_alias="challenger"),
        "rules": Arm(name="rules", share=1.0, policy="model", model_alias="rules"),
        "random": Arm(name="random", share=1.0, policy="random"),
        "oracle": Arm(name="oracle", share=1.0, policy="model", model_alias="oracle"),
        "none": Arm(name="none", share=1.0, policy="control"),
    }[policy]
    policy_cfg = config.policy.model_copy(
        update={"experiment": Experiment(name=f"{name}-sim-{policy}", arms=(arm,), salt=config.policy.experiment.salt)}
    )
    if policy in ("oracle", "rules"):  # the truth and a static rule set have nothing to learn
        policy_cfg = policy_cfg.model_copy(update={"exploration": Exploration(method="none")})
    if policy == "rules":
        arb = config.policy.arbitration.model_dump()
        policy_cfg = policy_cfg.model_copy(update={"arbitration": Arbitration(**{**arb, "objective": "response"})})
    return config.model_copy(update={"policy": policy_cfg})


def _frame(candidates: pd.DataFrame, p_contact: np.ndarray, p_control: np.ndarray, value: np.ndarray) -> pd.DataFrame:
    out = pd.DataFrame(
        {"p_contact": p_contact, "p_control": p_control, "uplift": p_contact - p_control, "value": value},
        index=candidates.index,
    )
    return out[list(SCORE_COLUMNS)]


class OracleScorer:
    """A :class:`~nextbest.models.scoring.Scorer` that knows the world's true probabilities.

    Scores at the world's clock (the simulator decides before it advances the
    day), with the customer's latent state as it is at that moment.

    Parameters
    ----------
    world
        The policy's own copy of the world.
    """

    model_version = "oracle"

    def __init__(self, world: World) -> None:
        self.world = world

    def score(self, candidates: pd.DataFrame) -> pd.DataFrame:
        """True ``p_contact``, ``p_control`` and expected revenue of each candidate row."""
        if len(candidates) == 0:
            return _frame(candidates, np.zeros(0), np.zeros(0), np.zeros(0))
        ids = pd.unique(candidates["customer_id"].to_numpy(np.int64))
        truth = self.world.true_probabilities(ids)
        key = ["customer_id", "offer_id", "channel"]
        rows = candidates[key].astype({"offer_id": object, "channel": object}).reset_index(drop=True)
        merged = rows.merge(truth, on=key, how="left", validate="many_to_one")
        if merged["p_contact"].isna().any():
            bad = merged.loc[merged["p_contact"].isna(), key].iloc[0].tolist()
            raise BadInputError(f"oracle: the world has no truth for candidate {bad}; is the world's config the workspace's?")
        return _frame(
            candidates, merged["p_contact"].to_numpy(float), merged["p_control"].to_numpy(float),
            merged["revenue"].to_numpy(float),
        )

    def reasons(self, candidates: pd.DataFrame, top: int = 3) -> list[list[str]]:
        """The oracle has no features to blame: one ``oracle`` reason per row."""
        return [["oracle"] for _ in range(len(candidates))]


class UniformScorer:
    """Scores nothing (all zeros): what the engine's ``random`` arm is logged with."""

    model_version = "random"

    def score(self, candidates: pd.DataFrame) -> pd.DataFrame:
        n = len(candidates)
        return _frame(candidates, np.zeros(n), np.zeros(n), np.zeros(n))

    def reasons(self, candidates: pd.DataFrame, top: int = 3) -> list[list[str]]:
        return [["random"] for _ in range(len(candidates))]


@dataclass(frozen=True)
class _Rates:
    p_contact: pd.Series  # (segment, offer_id) -> rate
    p_control: pd.Series
    channel_rate: pd.Series  # (offer_id, channel) -> rate


class RulesScorer:
    """A marketer's static rule set, learnt once from the historical campaign log.

    * **Offer**: each (segment, offer) gets its historical conversion rate among
      contacted customers (and among the control group), shrunk towards the
      offer's overall rate; the engine then ranks by rate × margin − cost.
    * **Segment**: the first of the configured marketer segments (``policy.segments``)
      the customer belongs to, else ``other``.
    * **Channel**: one channel per customer and offer: the stated preferred channel
      when it is a candidate, else the offer's historically best channel. The other
      channels score zero, so the engine never picks them.

    Parameters
    ----------
    config
        Segments (rules) and offers.
    shrinkage
        Pseudo-decisions of the offer's overall rate added to every segment's count.

    Attributes
    ----------
    rates_ : _Rates
        Learnt rates (after :meth:`fit`).
    """

    model_version = "rules"

    def __init__(self, config: NextbestConfig, shrinkage: float = 20.0) -> None:
        self.config = config
        self.shrinkage = shrinkage

    def segment_of(self, frame: pd.DataFrame) -> np.ndarray:
        """Marketer segment of each row (first matching configured segment, else ``other``)."""
        rules = RuleSet.from_config(self.config)
        out = np.full(len(frame), OTHER_SEGMENT, dtype=object)
        for seg in reversed(self.config.policy.segments):  # earlier segments win
            out[rules.segment(seg.name).evaluate(frame)] = seg.name
        return out

    def fit(self, log: pd.DataFrame) -> RulesScorer:
        """Learn the rates from historical decisions with their features and 0/1 ``label``.

        Parameters
        ----------
        log
            One row per decision: ``offer_id``, ``channel``, ``contacted``, ``label`` and
            the features the segment rules read (a training set's frame).

        Raises
        ------
        BadInputError
            When ``log`` is empty or lacks a column.
        """
        missing = [c for c in ("offer_id", "channel", "contacted", "label") if c not in log.columns]
        if missing or log.empty:
            raise BadInputError(f"rules policy: the historical log is empty or lacks {missing}; run `nextbest data generate`")
        frame = pd.DataFrame(
            {
                "segment": self.segment_of(log),
                "offer_id": log["offer_id"].astype(str).to_numpy(),
                "channel": log["channel"].astype(str).to_numpy(),
                "contacted": log["contacted"].astype(bool).to_numpy(),
                "label": log["label"].astype(float).to_numpy(),
            }
        )

        def shrunk(part: pd.DataFrame) -> pd.Series:
            offer = part.groupby("offer_id")["label"].agg(["sum", "count"])
            prior = (offer["sum"].sum() / max(offer["count"].sum(), 1.0))
            offer_rate = (offer["sum"] + self.shrinkage * prior) / (offer["count"] + self.shrinkage)
            seg = part.groupby(["segment", "offer_id"])["label"].agg(["sum", "count"])
            base = offer_rate.reindex(seg.index.get_level_values("offer_id")).to_numpy()
            return (seg["sum"] + self.shrinkage * base) / (seg["count"] + self.shrinkage)

        contacted = frame[frame["contacted"]]
        control = frame[~frame["contacted"]]
        channel = contacted.groupby(["offer_id", "channel"])["label"].mean()
        self.rates_ = _Rates(
            p_contact=shrunk(contacted),
            p_control=shrunk(control) if len(control) else pd.Series(dtype=float),
            channel_rate=channel,
        )
        return self

    def score(self, candidates: pd.DataFrame) -> pd.DataFrame:
        """Segment × offer rates on the rule's channel; zero on every other channel."""
        n = len(candidates)
        if n == 0:
            return _frame(candidates, np.zeros(0), np.zeros(0), np.zeros(0))
        segment = self.segment_of(candidates)
        offer = candidates["offer_id"].astype(str).to_numpy()
        channel = candidates["channel"].astype(str).to_numpy()
        key = pd.MultiIndex.from_arrays([segment, offer])
        p_contact = self.rates_.p_contact.reindex(key).to_numpy(float)
        p_control = self.rates_.p_control.reindex(key).to_numpy(float) if len(self.rates_.p_control) else np.zeros(n)
        p_contact, p_control = np.nan_to_num(p_contact), np.nan_to_num(p_control)

        # Channel rule: preferred channel first, then the offer's historically best channel.
        preferred = candidates["preferred_channel"].astype(object).to_numpy() if "preferred_channel" in candidates else np.full(n, None)
        history = self.rates_.channel_rate.reindex(pd.MultiIndex.from_arrays([offer, channel])).fillna(0.0).to_numpy()
        rank_key = pd.DataFrame(
            {
                "customer": candidates["customer_id"].to_numpy(np.int64),
                "offer": offer,
                "preferred": (channel == preferred).astype(int),
                "history": history,
            }
        )
        order = rank_key.sort_values(["customer", "offer", "preferred", "history"], ascending=[True, True, False, False]).index
        first = ~rank_key.loc[order, ["customer", "offer"]].duplicated().to_numpy()
        keep = np.zeros(n, dtype=bool)
        keep[order.to_numpy()[first]] = True
        value = np.array([o.value for o in self.config.offers.offers], dtype=float)
        offer_value = pd.Series(value, index=[o.id for o in self.config.offers.offers]).reindex(offer).to_numpy()
        return _frame(candidates, np.where(keep, p_contact, 0.0), np.where(keep, p_control, 0.0), offer_value)

    def reasons(self, candidates: pd.DataFrame, top: int = 3) -> list[list[str]]:
        """The rule that fired: ``segment:<name>``."""
        return [[f"segment:{s}"] for s in self.segment_of(candidates)]
