"""Rich tables of simulation results (``nextbest simulate`` and ``nextbest demo``)."""

from __future__ import annotations

import math

from rich.table import Table

from nextbest.simulation.accounting import PolicyResult

#: Console width the tables need; narrower terminals wrap them.
TABLE_WIDTH = 150


def _money(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.0f}"


def _share(x: float | None) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.0%}"


def results_table(results: list[PolicyResult], currency: str, title: str) -> Table:
    """One row per policy: revenue, increments versus ``none``, cost, share of the oracle, regret, violations."""
    table = Table(title=title, title_justify="left", caption=f"money in {currency}; incremental = versus no contact",
                  caption_justify="left")
    for col in ("policy", "revenue", "incr. revenue", "contact cost", "incr. profit", "of oracle", "regret",
                "conversions", "incr. conv.", "contacts", "violations"):
        width = max([len(col)] + [len(r.policy) for r in results]) if col == "policy" else len(col)
        table.add_column(col, justify="left" if col == "policy" else "right", no_wrap=True, min_width=width)
    for r in results:
        table.add_row(
            r.policy, _money(r.revenue), _money(r.incremental_revenue), _money(r.contact_cost),
            _money(r.incremental_profit), _share(r.share_of_oracle), _money(r.regret_vs_oracle),
            f"{r.conversions:,}", f"{r.incremental_conversions:+,}", f"{sum(r.contacts_by_channel.values()):,}",
            f"[bold red]{r.total_violations}[/]" if r.total_violations else "0",
        )
    return table


def channels_table(results: list[PolicyResult]) -> Table:
    """Contacts per policy and channel."""
    channels = sorted({c for r in results for c in r.contacts_by_channel})
    table = Table(title="contacts by channel", title_justify="left")
    table.add_column("policy", no_wrap=True)
    for c in channels:
        table.add_column(c, justify="right", no_wrap=True)
    for r in results:
        table.add_row(r.policy, *(f"{r.contacts_by_channel.get(c, 0):,}" for c in channels))
    return table


def learning_curve_lines(results: list[PolicyResult], period_days: int) -> list[str]:
    """``<policy>: share of the oracle per 10 days: 41% · 55% · 62%`` for each policy but the oracle and none
    (nothing when the run has a single period or no oracle)."""
    lines = []
    for r in results:
        shares = [p["share_of_oracle"] for p in r.periods]
        if r.policy in ("oracle", "none") or len(shares) < 2 or all(s is None for s in shares):
            continue
        curve = " · ".join("n/a" if s is None else f"{s:.0%}" for s in shares)
        lines.append(f"{r.policy}: share of the oracle per {period_days} days: {curve}")
    return lines
