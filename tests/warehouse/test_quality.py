"""Data-quality report on a hand-built warehouse with known defects, and on a generated world."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest
from nextbest.warehouse.db import connect
from nextbest.warehouse.quality import CUSTOMER_CHECKS, flagged_customers, quality_report

from nextbest.config import NextbestConfig
from nextbest.workspace import Workspace

CHANNEL_COLUMNS = ["consent_email", "consent_sms", "consent_push", "consent_direct_mail", "consent_outbound_call"]


@pytest.fixture
def defects(workspace: Workspace) -> duckdb.DuckDBPyConnection:
    """Customers 1-10, each with the defects named in the comment."""
    con = connect(workspace.warehouse_path)
    rows = [
        # id, email, phone, consent_email, valid_email, other consents, member_since
        (1, "ann@example.com", "+31612345678", True, True, False, "2020-01-01"),  # clean
        (2, "bob(at)example.com", None, True, False, False, "2020-01-01"),  # invalid e-mail, unreachable
        (3, "cy@example.com", "12-34", True, True, False, "2020-01-01"),  # invalid phone
        (4, " Same@Example.com", None, True, True, False, "2020-01-01"),  # duplicate e-mail (4, 5)
        (5, "same@example.com", None, True, True, False, "2020-01-01"),
        (6, "dee@example.com", "+31 6 1234 5679", True, True, False, "2020-01-01"),  # duplicate phone (6, 7)
        (7, "eve@example.com", "0031-612345679", True, True, False, "2020-01-01"),
        (8, "fay@example.com", None, None, True, None, "2020-01-01"),  # consent unknown everywhere, unreachable
        (9, "gus@example.com", None, True, True, False, "2020-01-01"),  # stale: no activity for 12+ months
        (10, "hal@example.com", None, False, True, False, "2024-05-01"),  # no consent, unreachable; new: not stale
    ]
    frame = pd.DataFrame(
        [
            {
                "customer_id": cid,
                "email": email,
                "phone": phone,
                "consent_email": ce,
                "valid_email": ve,
                **{c: other for c in CHANNEL_COLUMNS[1:]},
                "member_since": pd.Timestamp(since).date(),
            }
            for cid, email, phone, ce, ve, other, since in rows
        ]
    )
    con.register("defect_rows", frame)
    con.execute("INSERT INTO customers BY NAME SELECT * FROM defect_rows")
    con.unregister("defect_rows")
    con.execute(
        """
        INSERT INTO interactions SELECT customer_id, TIMESTAMP '2024-06-01', 'web.view', NULL, NULL, NULL
            FROM range(1, 9) t(customer_id);
        INSERT INTO interactions VALUES (9, TIMESTAMP '2023-01-01', 'web.view', NULL, NULL, NULL),
                                        (99, TIMESTAMP '2024-06-02', 'app.open', NULL, NULL, NULL),
                                        (1, TIMESTAMP '2024-06-01', 'web.view', NULL, NULL, NULL);
        INSERT INTO transactions VALUES (98, TIMESTAMP '2024-06-01', 'o1', 'shoes', 10, 2);
        INSERT INTO responses VALUES ('ghost', TIMESTAMP '2024-06-01', 'open', NULL);
        """
    )
    return con


EXPECTED = {
    "invalid_email": [2],
    "invalid_phone": [3],
    "duplicate_email": [4, 5],
    "duplicate_phone": [6, 7],
    "missing_consent_all": [8],
    "unreachable": [2, 8, 10],
    "stale": [9],
}


def test_each_customer_check_finds_exactly_the_defects(defects, config: NextbestConfig) -> None:
    flagged = flagged_customers(defects, config)
    found = {kind: sorted(group["customer_id"].tolist()) for kind, group in flagged.groupby("kind")}
    assert found == EXPECTED


@pytest.mark.parametrize(
    ("name", "count", "examples"),
    [
        ("unknown_customer:interactions", 1, (99,)),
        ("unknown_customer:transactions", 1, (98,)),
        ("unknown_customer:life_events", 0, ()),
        ("unknown_decision:responses", 1, ("ghost",)),
        ("duplicates:interactions", 1, ()),
        ("duplicates:customers", 0, ()),
    ],
)
def test_table_checks_count_orphans_and_duplicates(defects, config, name, count, examples) -> None:
    check = quality_report(defects, config).check(name)
    assert (check.count, check.examples) == (count, examples)
    assert check.status == ("ok" if count == 0 else "warn")


def test_report_aggregates_counts_consent_and_completeness(defects, config) -> None:
    report = quality_report(defects, config)
    assert report.customers == 10
    assert report.as_of == dt.datetime(2024, 6, 2)  # latest activity, not the wall clock
    assert {c.name: c.count for c in report.checks if c.unit == "customers"} == {k: len(v) for k, v in EXPECTED.items()}
    assert report.check("duplicate_email").share == pytest.approx(0.2)
    email = next(c for c in report.consent if c.channel == "email")
    assert (email.consent, email.consent_unknown, email.reachable) == pytest.approx((0.8, 0.1, 0.7))
    web = next(c for c in report.consent if c.channel == "web")
    assert not web.personal and web.reachable == 1.0
    assert report.completeness["customers"]["phone"] == pytest.approx(0.6)
    assert report.completeness["customers"]["customer_id"] == 0.0
    doc = report.as_dict()
    assert [c["name"] for c in doc["checks"]][: len(CUSTOMER_CHECKS)] == list(CUSTOMER_CHECKS)
    assert doc["consent"]["email"]["reachable"] == pytest.approx(0.7)


def test_as_of_moves_the_stale_cutoff(defects, config) -> None:
    later = quality_report(defects, config, as_of=dt.datetime(2026, 1, 1))
    assert later.check("stale").count == 10  # nobody active in 2025


def test_report_never_contains_personal_values(defects, config) -> None:
    text = str(quality_report(defects, config).as_dict())
    assert "example.com" not in text and "+316" not in text


def test_empty_warehouse_reports_zeros(workspace, config) -> None:
    con = connect(workspace.warehouse_path)
    report = quality_report(con, config)
    assert report.customers == 0 and all(c.count == 0 for c in report.checks)


@pytest.fixture(scope="module")
def generated(world_warehouse) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The generated world's seeded defects and what the report flags."""
    from nextbest.config import load_config

    con = connect(world_warehouse, read_only=True)
    seeded = con.execute("SELECT kind, customer_id FROM ground_truth.seeded_defects WHERE kind <> 'params'").df()
    flagged = flagged_customers(con, load_config())
    con.close()
    return seeded, flagged


SEEDED_KINDS = [
    "invalid_email",
    "invalid_phone",
    "duplicate_email",
    "duplicate_phone",
    "missing_consent_all",
    "unreachable",
]


@pytest.mark.parametrize("kind", SEEDED_KINDS)
def test_generated_world_defects_are_found_exactly(generated, kind: str) -> None:
    seeded, flagged = generated
    expected = set(seeded.loc[seeded["kind"] == kind, "customer_id"])
    found = set(flagged.loc[flagged["kind"] == kind, "customer_id"])
    assert expected, f"the world seeded no {kind}"
    assert found == expected, f"{kind}: missed {sorted(expected - found)[:5]}, extra {sorted(found - expected)[:5]}"
