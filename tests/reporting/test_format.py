"""Numbers for people."""

from __future__ import annotations

import pytest

from nextbest.reporting import format as fmt


@pytest.mark.parametrize(
    ("func", "args", "expected"),
    [
        (fmt.count, (1234567.4,), "1,234,567"),
        (fmt.count, (float("nan"),), "–"),
        (fmt.signed_count, (1234,), "+1,234"),
        (fmt.signed_count, (-5,), "-5"),
        (fmt.percent, (0.0423,), "4.2%"),
        (fmt.percent, (0.0423, 2), "4.23%"),
        (fmt.points, (0.0123,), "+1.23 pp"),
        (fmt.points, (-0.004,), "-0.40 pp"),
        (fmt.money, (1234.5, "EUR"), "€1,234"),
        (fmt.money, (-1234.5, "USD", 2), "-$1,234.50"),
        (fmt.money, (10, "NOK"), "NOK 10"),
        (fmt.money, (10, "EUR", 0, True), "+€10"),
        (fmt.p_value, (0.0004,), "p < 0.001"),
        (fmt.p_value, (0.0456,), "p = 0.046"),
        (fmt.p_value, (None,), "p = –"),
    ],
)
def test_formatting(func, args, expected: str) -> None:
    assert func(*args) == expected
