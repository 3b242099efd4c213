"""Every rule of a configuration, parsed and checked once.

Offer eligibility rules, segment rules and trigger conditions share one language
(:mod:`nextbest.decisioning.rules`). :class:`RuleSet` parses them all, checks that
each names only known features, and is what the engine and the segment commands
evaluate. ``NextbestConfig`` builds one while loading, so a bad rule fails at
``load_config`` / ``Workspace.config()`` with the offer id and the position.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nextbest.decisioning.rules import Rule, RuleError, check_names, parse_rule

if TYPE_CHECKING:
    from nextbest.config import NextbestConfig


def known_feature_names(config: NextbestConfig) -> frozenset[str] | None:
    """Names of the customer features the feature registry declares for ``config``
    (some depend on it, e.g. ``consent_<channel>``), or ``None`` when no registry
    is installed (then rules are checked for syntax only)."""
    try:
        from nextbest.features.registry import feature_defs
    except ImportError:
        return None
    return frozenset(f.name for f in feature_defs(config) if f.entity == "customer")


@dataclass(frozen=True)
class RuleSet:
    """The parsed rules of a configuration.

    Attributes
    ----------
    eligibility
        Offer id -> its eligibility rule (``None`` = everyone).
    segments
        Segment name -> its rule.
    conditions
        Trigger id -> its condition (``None`` = the event alone).
    """

    eligibility: dict[str, Rule | None]
    segments: dict[str, Rule]
    conditions: dict[str, Rule | None]

    @classmethod
    def from_config(cls, config: NextbestConfig, known_features: Iterable[str] | None = None) -> RuleSet:
        """Parse and check every rule of ``config``.

        Parameters
        ----------
        config
            The configuration.
        known_features
            Feature names rules may read; ``None`` asks the feature registry
            (:func:`known_feature_names`), and checks syntax only if there is none.

        Raises
        ------
        RuleError
            Naming the offer, segment or trigger, the position and the fix.
        """
        known = frozenset(known_features) if known_features is not None else known_feature_names(config)
        personal = {a.name for a in config.features.attributes if a.personal}

        def compile_(text: str, where: str) -> Rule:
            rule = parse_rule(text, where=where)
            for name in rule.features:
                if name in personal:
                    raise RuleError(
                        f"{where}: {name!r} is a personal attribute (features.yaml `personal: true`); rules never "
                        "read personal data. Fix: declare it `personal: false` if it is not personal, or drop it "
                        "from the rule"
                    )
            if known is not None:
                check_names(rule, known, where=where)
            return rule

        eligibility = {
            o.id: None if o.eligibility is None else compile_(o.eligibility, f"offers.yaml: offer {o.id!r} eligibility")
            for o in config.offers.offers
        }
        segments = {
            s.name: compile_(s.rule, f"policy.yaml: segment {s.name!r} rule") for s in config.policy.segments
        }
        conditions: dict[str, Rule | None] = {}
        for t in config.policy.triggers:
            where = f"policy.yaml: trigger {t.id!r}"
            if known is not None and t.event not in known:
                raise RuleError(f"{where}: event {t.event!r} is not a known feature; use a boolean event feature")
            conditions[t.id] = None if t.condition is None else compile_(t.condition, f"{where} condition")
        return cls(eligibility, segments, conditions)

    def segment(self, name: str) -> Rule:
        """The rule of segment ``name``.

        Raises
        ------
        NotFoundError
            When no such segment is configured.
        """
        from nextbest.errors import NotFoundError

        try:
            return self.segments[name]
        except KeyError:
            raise NotFoundError(
                f"no segment {name!r}; configured: {', '.join(sorted(self.segments)) or 'none'} (policy.yaml segments)"
            ) from None


__all__ = ["RuleSet", "RuleError", "known_feature_names"]
