"""Contact-detail formats: the one definition the quality report and the privacy guard share.

The checks are deliberately simple, format-only rules (no DNS or carrier
look-ups): they catch typos and placeholder values, not dead mailboxes; the
``valid_*`` columns carry deliverability when the source system knows it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Something@domain.tld: one ``@``, no spaces, a dot in the domain, a 2+ letter top-level domain.
# Local part, then a domain of non-empty labels (no leading, trailing or doubled dots) and a TLD.
EMAIL_PATTERN = r"[^@\s]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}"

#: Characters dropped before a phone number is checked or compared (spacing and punctuation).
PHONE_SEPARATORS = r"[\s().\-/]"

#: After dropping separators: an optional ``+`` and 8 to 15 digits (E.164 allows at most 15).
PHONE_PATTERN = r"\+?[0-9]{8,15}"


def email_key_sql(column: str) -> str:
    """SQL for the comparable form of an e-mail address (trimmed, lower-case)."""
    return f"lower(trim({column}))"


def phone_key_sql(column: str) -> str:
    """SQL for the comparable form of a phone number (separators removed, ``00`` prefix as ``+``)."""
    digits = f"regexp_replace({column}, '{PHONE_SEPARATORS}', '', 'g')"
    return f"regexp_replace({digits}, '^00', '+')"


def valid_email_mask(values: Sequence[str | None] | pa.Array) -> np.ndarray:
    """Vectorised :data:`EMAIL_PATTERN` check (after trimming); null is False.

    The same rule as the quality report, for code that builds ``valid_email``
    (e.g. the synthetic world) so the two never disagree.
    """
    text = pc.utf8_trim_whitespace(_strings(values))
    return pc.fill_null(pc.match_substring_regex(text, f"^(?:{EMAIL_PATTERN})$"), False).to_numpy(zero_copy_only=False)


def valid_phone_mask(values: Sequence[str | None] | pa.Array) -> np.ndarray:
    """Vectorised :data:`PHONE_PATTERN` check after dropping :data:`PHONE_SEPARATORS`; null is False."""
    digits = pc.replace_substring_regex(_strings(values), PHONE_SEPARATORS, "")
    digits = pc.replace_substring_regex(digits, "^00", "+")
    return pc.fill_null(pc.match_substring_regex(digits, f"^(?:{PHONE_PATTERN})$"), False).to_numpy(
        zero_copy_only=False
    )


def _strings(values: Sequence[str | None] | pa.Array) -> pa.Array:
    return values if isinstance(values, pa.Array) else pa.array(values, type=pa.string(), from_pandas=True)
