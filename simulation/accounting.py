"""What each policy earned, and what it earned *because* it acted.

Revenue of a contact is counted when the world's paired draw says it converted.
Its **incremental** part compares the same draw with the same decision left
unsent: the world keys a decision's conversion uniform by (customer, day, offer,
channel), so the counterfactual "not contacted" outcome of exactly this
decision is known (:meth:`Ledger.add_day` takes both outcomes). A contact that
would have converted anyway adds revenue but no incremental revenue; one that
puts a sleeping dog off adds negative incremental revenue.

Contacts also change the customers (engagement, fatigue, consent), which moves
their organic purchases: the difference between the policy's organic revenue
and the ``none`` policy's on the same draws is added to the increment
(:func:`summarise`).

Profit is revenue minus contact cost (the configured cost per contact).

The **learning curve** (:func:`period_shares`) splits the simulated days into
periods (10 days by default) and gives each policy's incremental profit in each
period as a share of the oracle's in the same period, on the same draws: a
policy that learns closes the gap period after period.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from nextbest.config import NextbestConfig


def _conversions(responses: pd.DataFrame) -> pd.Series:
    """Revenue per converted decision_id."""
    if responses.empty:
        return pd.Series(dtype=float)
    conv = responses[responses["outcome"] == "conversion"]
    return conv.groupby("decision_id")["revenue"].sum()


@dataclass
class Ledger:
    """Running totals of one policy's simulation (updated once per simulated day)."""

    contacts_by_channel: Counter[str] = field(default_factory=Counter)
    decisions: int = 0
    contact_cost: float = 0.0
    conversions: int = 0
    revenue: float = 0.0
    incremental_conversions: int = 0
    incremental_conversion_revenue: float = 0.0
    expected_incremental_revenue: float = 0.0
    organic_revenue: float = 0.0
    daily: list[dict[str, float]] = field(default_factory=list)

    def add_day(
        self,
        day: int,
        decisions: pd.DataFrame,
        responses: pd.DataFrame,
        counterfactual: pd.DataFrame,
        truth: pd.DataFrame,
        organic_transactions: pd.DataFrame,
        config: NextbestConfig,
    ) -> None:
        """Book one day.

        Parameters
        ----------
        day
            Day offset (for the daily series).
        decisions
            The day's decision rows (``decision_id, offer_id, channel, contacted``).
        responses
            The world's outcomes of ``decisions`` (every timestamp, also future ones).
        counterfactual
            The outcomes of the contacted decisions had they not been sent, on the same draws.
        truth
            ``decision_id, p_contact, p_control, expected_revenue`` of the decisions.
        organic_transactions
            The day's organic order lines (``amount``).
        """
        cost_of = {c.id: c.cost_per_contact for c in config.channels.channels}
        acted = decisions[decisions["contacted"].astype(bool) & decisions["offer_id"].notna()]
        cost = float(acted["channel"].map(cost_of).sum())
        self.contacts_by_channel.update(acted["channel"].value_counts().to_dict())
        self.decisions += len(decisions)
        self.contact_cost += cost

        contacted_ids = pd.Index(acted["decision_id"])
        real = _conversions(responses)
        real = real[real.index.isin(contacted_ids)]
        cf = _conversions(counterfactual)
        cf = cf[cf.index.isin(contacted_ids)]
        both = pd.concat([real.rename("real"), cf.rename("cf")], axis=1).fillna(0.0)
        self.conversions += int((both["real"] > 0).sum())
        self.revenue += float(both["real"].sum())
        self.incremental_conversions += int((both["real"] > 0).sum() - (both["cf"] > 0).sum())
        self.incremental_conversion_revenue += float((both["real"] - both["cf"]).sum())

        t = truth[truth["decision_id"].isin(contacted_ids)]
        expected = float(((t["p_contact"] - t["p_control"]) * t["expected_revenue"]).sum())
        self.expected_incremental_revenue += expected
        organic = float(organic_transactions["amount"].sum()) if len(organic_transactions) else 0.0
        self.organic_revenue += organic
        self.daily.append(
            {
                "day": day, "decisions": len(decisions), "contacts": len(acted), "contact_cost": cost,
                "revenue": float(both["real"].sum()), "incremental_conversion_revenue": float((both["real"] - both["cf"]).sum()),
                "organic_revenue": organic,
            }
        )


@dataclass(frozen=True)
class PolicyResult:
    """One policy's figures (see :func:`summarise`); ``as_dict`` is the ``--json`` object."""

    policy: str
    revenue: float
    incremental_revenue: float
    contact_cost: float
    incremental_profit: float
    conversions: int
    incremental_conversions: int
    contacts_by_channel: dict[str, int]
    violations: dict[str, int]
    regret_vs_oracle: float | None
    share_of_oracle: float | None
    expected_incremental_profit: float
    organic_revenue_change: float
    decisions: int
    workspace: str
    model_versions: list[str]
    #: The learning curve: one entry per period (:func:`period_shares`).
    periods: tuple[dict[str, Any], ...] = ()

    @property
    def total_violations(self) -> int:
        return int(sum(self.violations.values()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "revenue": round(self.revenue, 2),
            "incremental_revenue": round(self.incremental_revenue, 2),
            "contact_cost": round(self.contact_cost, 2),
            "incremental_profit": round(self.incremental_profit, 2),
            "conversions": self.conversions,
            "incremental_conversions": self.incremental_conversions,
            "contacts_by_channel": dict(sorted(self.contacts_by_channel.items())),
            "violations": self.total_violations,
            "violations_by_kind": self.violations,
            "regret_vs_oracle": None if self.regret_vs_oracle is None else round(self.regret_vs_oracle, 2),
            "share_of_oracle": None if self.share_of_oracle is None else round(self.share_of_oracle, 4),
            "expected_incremental_profit": round(self.expected_incremental_profit, 2),
            "organic_revenue_change": round(self.organic_revenue_change, 2),
            "decisions": self.decisions,
            "workspace": self.workspace,
            "model_versions": self.model_versions,
            "share_of_oracle_by_period": [dict(p) for p in self.periods],
        }


def daily_profit(ledgers: dict[str, Ledger]) -> pd.DataFrame:
    """Incremental profit of each policy on each simulated day (days × policies), against ``none``.

    A day's increment is its contacts' incremental conversion revenue, less their
    cost, plus the organic revenue above the ``none`` policy's that day.
    """
    none = pd.Series({d["day"]: d["organic_revenue"] for d in ledgers["none"].daily}, dtype=float)
    columns = {}
    for name, led in ledgers.items():
        days = pd.DataFrame(led.daily, columns=["day", "incremental_conversion_revenue", "contact_cost", "organic_revenue"])
        days = days.set_index("day")
        organic = days["organic_revenue"] - none.reindex(days.index).fillna(0.0)
        columns[name] = days["incremental_conversion_revenue"] - days["contact_cost"] + organic
    return pd.DataFrame(columns).sort_index()


def period_shares(ledgers: dict[str, Ledger], period_days: int = 10) -> dict[str, tuple[dict[str, Any], ...]]:
    """The learning curve: each policy's incremental profit per period, and its share of the oracle's.

    Parameters
    ----------
    ledgers
        Policy → ledger; must hold ``none`` (the increments' baseline).
    period_days
        Days per period, counted from the first simulated day (the last period may be shorter).

    Returns
    -------
    dict
        Policy → one entry per period: ``from_day``, ``days`` (offsets from the first
        simulated day), ``incremental_profit``, ``oracle_incremental_profit`` and
        ``share_of_oracle`` (``None`` without an oracle, or when its profit is not positive).
    """
    profit = daily_profit(ledgers)
    if profit.empty:
        return {name: () for name in ledgers}
    offset = (profit.index.to_numpy() - profit.index.min()) // period_days
    by_period = profit.groupby(offset)
    totals, sizes = by_period.sum(), by_period.size()
    out: dict[str, tuple[dict[str, Any], ...]] = {}
    for name in ledgers:
        rows = []
        for k in totals.index:
            mine = float(totals.at[k, name])
            oracle = float(totals.at[k, "oracle"]) if "oracle" in totals.columns else None
            rows.append({
                "from_day": int(k * period_days), "days": int(sizes.at[k]), "incremental_profit": round(mine, 2),
                "oracle_incremental_profit": None if oracle is None else round(oracle, 2),
                "share_of_oracle": None if oracle is None or oracle <= 0 else round(mine / oracle, 4),
            })
        out[name] = tuple(rows)
    return out


def summarise(
    ledgers: dict[str, Ledger],
    violations: dict[str, dict[str, int]],
    workspaces: dict[str, str],
    model_versions: dict[str, list[str]],
    period_days: int = 10,
) -> list[PolicyResult]:
    """Turn the ledgers into results: increments against ``none``, regret against ``oracle``.

    Parameters
    ----------
    ledgers
        Policy → ledger; must hold ``none``.
    violations
        Policy → violations by kind (:func:`nextbest.simulation.violations.count_violations`).
    workspaces, model_versions
        Where each policy's copy lives and which models it decided with.
    period_days
        Days per period of the learning curve (:func:`period_shares`).
    """
    curves = period_shares(ledgers, period_days)
    baseline = ledgers["none"].organic_revenue
    partial: dict[str, tuple[float, float]] = {}
    for name, led in ledgers.items():
        organic_change = led.organic_revenue - baseline
        incremental = led.incremental_conversion_revenue + organic_change
        partial[name] = (incremental - led.contact_cost, organic_change)
    oracle = partial.get("oracle", (None, None))[0]
    out = []
    for name, led in ledgers.items():
        profit, organic_change = partial[name]
        regret = None if oracle is None else oracle - profit
        share = None if oracle is None or oracle <= 0 else profit / oracle
        out.append(
            PolicyResult(
                policy=name,
                revenue=led.revenue,
                incremental_revenue=profit + led.contact_cost,
                contact_cost=led.contact_cost,
                incremental_profit=profit,
                conversions=led.conversions,
                incremental_conversions=led.incremental_conversions,
                contacts_by_channel={k: int(v) for k, v in led.contacts_by_channel.items()},
                violations=violations.get(name, {}),
                regret_vs_oracle=regret,
                share_of_oracle=share,
                expected_incremental_profit=led.expected_incremental_revenue - led.contact_cost,
                organic_revenue_change=organic_change,
                decisions=led.decisions,
                workspace=workspaces.get(name, ""),
                model_versions=model_versions.get(name, []),
                periods=curves.get(name, ()),
            )
        )
    return out


def ratio(a: float, b: float) -> float:
    """``a / b`` for positive ``b``, else NaN (for "captures x% of" figures)."""
    return a / b if b > 0 else float(np.nan)
