"""Contact formats: the vectorised masks agree with the SQL the quality report runs."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest
from nextbest.warehouse.contact import (
    EMAIL_PATTERN,
    PHONE_PATTERN,
    email_key_sql,
    phone_key_sql,
    valid_email_mask,
    valid_phone_mask,
)

EMAILS = [
    ("ann@example.com", True),
    (" Ann.Smith+news@mail.example.org ", True),
    ("ann@example", False),
    ("ann@@example.com", False),
    ("ann example@x.com", False),
    ("annexample.com", False),
    (None, False),
]
PHONES = [
    ("+31612345678", True),
    ("+31 6 1234 5678", True),
    ("0031-6-12345678", True),
    ("(020) 123 4567", True),
    ("+316123", False),
    ("+3161AB345678", False),
    ("+31612345678901234", False),
    (None, False),
]


@pytest.mark.parametrize(("mask", "cases"), [(valid_email_mask, EMAILS), (valid_phone_mask, PHONES)])
def test_masks(mask, cases) -> None:
    values = np.array([v for v, _ in cases], dtype=object)
    assert mask(values).tolist() == [ok for _, ok in cases]


def test_masks_match_the_sql_rule() -> None:
    con = duckdb.connect()
    emails = [v for v, _ in EMAILS]
    phones = [v for v, _ in PHONES]
    sql_email = [
        con.execute(f"SELECT coalesce(regexp_full_match(trim(?), '{EMAIL_PATTERN}'), false)", [v]).fetchone()[0]
        for v in emails
    ]
    sql_phone = [
        con.execute(
            f"SELECT coalesce(regexp_full_match({phone_key_sql('?')}, '{PHONE_PATTERN}'), false)", [v]
        ).fetchone()[0]
        for v in phones
    ]
    assert sql_email == valid_email_mask(emails).tolist()
    assert sql_phone == valid_phone_mask(phones).tolist()


def test_comparison_keys_normalise_case_and_separators() -> None:
    con = duckdb.connect()
    assert con.execute(f"SELECT {email_key_sql('?')}", [" Ann@Example.COM "]).fetchone()[0] == "ann@example.com"
    assert con.execute(f"SELECT {phone_key_sql('?')}", ["0031 6-1234.5678"]).fetchone()[0] == "+31612345678"
