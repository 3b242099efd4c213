"""Rich tables of simulation results (``nextbest simulate`` and ``nextbest demo``)."""

from __future__ import annotations

import math

from rich.table import Table

from nextbest.simulation.accounting import PolicyResult


def _money(x: float | None, currency: str) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:,.0f} {currency}"


def _share(x: float | None) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.0%}"


def results_table(results: list[PolicyResult], currency: str, title: str) -> Table:
    """One row per policy: revenue, increments versus ``none``, cost, contacts, violations, regret."""
    table = Table(title=title, title_justify="left")
    for col, justify in (
        ("policy", "left"), ("revenue", "right"), ("incr. revenue", "right"), ("contact cost", "right"),
        ("incr. profit", "right"), ("of oracle", "right"), ("regret vs oracle", "right"),
        ("conversions (incr.)", "right"), ("contacts by channel", "left"), ("violations", "right"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]
    for r in results:
        channels = ", ".join(f"{k} {v:,}" for k, v in sorted(r.contacts_by_channel.items(), key=lambda kv: -kv[1]))
        table.add_row(
            r.policy, _money(r.revenue, currency), _money(r.incremental_revenue, currency),
            _money(r.contact_cost, currency), _money(r.incremental_profit, currency), _share(r.share_of_oracle),
            _money(r.regret_vs_oracle, currency), f"{r.conversions:,} ({r.incremental_conversions:+,})",
            channels or "—", f"[bold red]{r.total_violations}[/]" if r.total_violations else "0",
        )
    return table
