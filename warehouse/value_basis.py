"""What customer value is measured in: margin, amount × a configured margin rate, or amount.

Many businesses export orders with amounts and no margin. Customer value
(``clv_12m`` and its run-rate fallback) must not then silently become zero:
it is measured in the best unit the transactions carry, and every place that
reports on value (the feature build, its manifest, the data-quality report)
names that unit.

* ``margin``: some transactions carry a margin. A line without one counts as
  ``amount × margin_rate`` when a rate is configured, else as 0 (the quality
  report counts those lines).
* ``amount x margin_rate``: no transaction carries a margin and
  ``features.margin_rate`` is set: value is ``amount × margin_rate``.
* ``amount``: no margin and no rate: value is revenue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import duckdb

from nextbest.config import NextbestConfig
from nextbest.warehouse.engine import SqlEngine, as_engine

Basis = Literal["margin", "amount x margin_rate", "amount"]

#: The fix a report prints when margins are missing.
MARGIN_FIX = ("import a `margin` column with the transactions, or set `margin_rate` (share of revenue that is "
              "margin, e.g. 0.3) in config/features.yaml")


@dataclass(frozen=True)
class ValueBasis:
    """The unit of customer value, decided from the transactions and the configuration.

    Attributes
    ----------
    basis
        ``"margin"``, ``"amount x margin_rate"`` or ``"amount"``.
    margin_rate
        ``features.margin_rate`` (None when not configured).
    transactions
        Transaction lines looked at.
    without_margin
        Of those, lines whose margin is null.
    """

    basis: Basis
    margin_rate: float | None
    transactions: int
    without_margin: int

    @property
    def value_sql(self) -> str:
        """SQL expression of one transaction line's value (columns ``amount`` and ``margin``)."""
        amount = "coalesce(amount, 0.0)"
        scaled = amount if self.margin_rate is None else f"{amount} * {self.margin_rate!r}"
        if self.basis == "margin":
            return f"coalesce(margin, {scaled})" if self.margin_rate is not None else "coalesce(margin, 0.0)"
        return scaled

    @property
    def warning(self) -> str | None:
        """What a report should say about missing margins (None when every line has one)."""
        if self.without_margin == 0:
            return None
        if self.basis == "margin":
            counted = (f"as amount x margin_rate ({self.margin_rate:g})" if self.margin_rate is not None
                       else "as 0 margin")
            return (f"{self.without_margin:,} of {self.transactions:,} transaction lines have no margin and count "
                    f"{counted} in customer value (clv_12m); fix: {MARGIN_FIX}")
        if self.basis == "amount x margin_rate":
            return (f"no transaction has a margin: customer value (clv_12m) is amount x margin_rate "
                    f"({self.margin_rate:g}) from config/features.yaml")
        return (f"no transaction has a margin: customer value (clv_12m) is revenue (amount), not margin; "
                f"fix: {MARGIN_FIX}")

    def as_dict(self) -> dict[str, object]:
        return {
            "basis": self.basis,
            "margin_rate": self.margin_rate,
            "transactions": self.transactions,
            "without_margin": self.without_margin,
            "warning": self.warning,
        }


def value_basis(con: duckdb.DuckDBPyConnection | SqlEngine, config: NextbestConfig) -> ValueBasis:
    """Decide the value basis from every transaction line in the warehouse and ``features.margin_rate``.

    The whole table decides, not a time window, so every snapshot and fit of a
    warehouse uses one unit.
    """
    counts = as_engine(con).query("SELECT count(*) AS n_rows, count(margin) AS n_margin FROM transactions")
    rows, with_margin = int(counts["n_rows"].iloc[0]), int(counts["n_margin"].iloc[0])
    rate = config.features.margin_rate
    basis: Basis = "margin" if with_margin else "amount" if rate is None else "amount x margin_rate"
    return ValueBasis(basis, rate, int(rows), int(rows - with_margin))
