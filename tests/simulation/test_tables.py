"""What ``nextbest simulate`` prints beside its tables: the learning curve."""

from __future__ import annotations

from nextbest.simulation.accounting import summarise
from nextbest.simulation.tables import learning_curve_lines
from tests.simulation.test_accounting import _daily_ledger


def test_the_learning_curve_line_lists_each_periods_share_of_the_oracle() -> None:
    ledgers = {
        "champion": _daily_ledger([(5.0, 2.0, 10.0), (7.0, 2.0, 10.0), (12.0, 2.0, 11.0), (14.0, 2.0, 11.0)]),
        "random": _daily_ledger([(-1.0, 2.0, 10.0)] * 4),
        "oracle": _daily_ledger([(20.0, 2.0, 11.0)] * 4),
        "none": _daily_ledger([(0.0, 0.0, 10.0)] * 4),
    }
    lines = learning_curve_lines(summarise(ledgers, {}, {}, {}, 2), 2)
    assert lines == [
        "champion: share of the oracle per 2 days: 21% · 63%",
        "random: share of the oracle per 2 days: -16% · -16%",
    ]
    # One period is no curve.
    assert learning_curve_lines(summarise(ledgers, {}, {}, {}, 10), 10) == []
