"""Guards that keep personal data out of models, artifacts and logs.

:data:`~nextbest.warehouse.schema.PERSONAL_COLUMNS` lists the columns that
identify a person. They may be used for contact and personalisation, but never
as model features and never written to MLflow; call
:func:`assert_no_personal_data` on anything about to be logged or saved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
from nextbest.warehouse.contact import EMAIL_PATTERN
from nextbest.warehouse.schema import PERSONAL_COLUMNS

from nextbest.errors import NextbestError

_EMAIL = re.compile(EMAIL_PATTERN)


class PersonalDataError(NextbestError):
    """Personal data was about to leave the warehouse (a bug in the caller, exit code 1)."""


def personal_columns_in(columns: Iterable[Any]) -> list[str]:
    """The names in ``columns`` that are personal, compared case-insensitively.

    Qualified names count by their last part (``customers.email`` is ``email``).
    """
    return [str(c) for c in columns if str(c).strip().lower().rsplit(".", 1)[-1] in PERSONAL_COLUMNS]


def assert_no_personal_data(data: pd.DataFrame | Mapping[str, Any] | Iterable[str], *, what: str = "data") -> None:
    """Raise if ``data`` holds personal columns or e-mail addresses.

    Parameters
    ----------
    data
        A DataFrame (column names and text values are checked), a mapping
        (keys checked, e.g. MLflow params) or column names.
    what
        Name of the thing checked, for the message (e.g. ``"training frame"``).

    Raises
    ------
    PersonalDataError
        Naming the offending columns.
    """
    if isinstance(data, pd.DataFrame):
        columns: list[Any] = list(data.columns)
    elif isinstance(data, Mapping):
        columns = list(data.keys())
    else:
        columns = list(data)
    found = personal_columns_in(columns)
    if found:
        raise PersonalDataError(
            f"{what} contains personal column(s) {', '.join(found)}; drop them before logging or saving "
            f"(personal columns: {', '.join(sorted(PERSONAL_COLUMNS))})"
        )
    if isinstance(data, pd.DataFrame):
        # A renamed copy of an e-mail column is still personal data.
        leaking = [c for c in data.columns if _holds_emails(data[c])]
        if leaking:
            raise PersonalDataError(
                f"{what}: column(s) {', '.join(map(str, leaking))} hold e-mail addresses; drop them"
            )


def _holds_emails(values: pd.Series) -> bool:
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = pd.Series(values.cat.categories)
    elif not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
        return False
    text = values.dropna().astype("string")
    return bool(text.str.fullmatch(EMAIL_PATTERN).any())
