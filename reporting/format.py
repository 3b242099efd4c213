"""Numbers formatted for people: thousands separators, percentages, money."""

from __future__ import annotations

import math

#: Symbols for common ISO 4217 codes; other currencies print their code.
CURRENCY_SYMBOLS: dict[str, str] = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF ", "SEK": "SEK "}


def _bad(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and not math.isfinite(x))


def count(x: float | None) -> str:
    """``12345.6`` → ``'12,346'``."""
    return "–" if _bad(x) else f"{x:,.0f}"


def signed_count(x: float | None) -> str:
    """``1234`` → ``'+1,234'``."""
    return "–" if _bad(x) else f"{x:+,.0f}"


def percent(x: float | None, digits: int = 1) -> str:
    """A share: ``0.0423`` → ``'4.2%'``."""
    return "–" if _bad(x) else f"{100 * x:.{digits}f}%"


def points(x: float | None, digits: int = 2) -> str:
    """A difference of shares in percentage points: ``0.0123`` → ``'+1.23 pp'``."""
    return "–" if _bad(x) else f"{100 * x:+.{digits}f} pp"


def money(x: float | None, currency: str, digits: int = 0, signed: bool = False) -> str:
    """``1234.5, 'EUR'`` → ``'€1,235'``; negative amounts get a leading minus."""
    if _bad(x):
        return "–"
    symbol = CURRENCY_SYMBOLS.get(currency, f"{currency} ")
    sign = "-" if x < 0 else ("+" if signed and x > 0 else "")
    return f"{sign}{symbol}{abs(x):,.{digits}f}"


def p_value(p: float | None) -> str:
    """``p = 0.0004`` → ``'p < 0.001'``."""
    if _bad(p):
        return "p = –"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"
