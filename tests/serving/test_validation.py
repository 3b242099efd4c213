"""Request validation without a server: field bounds of the schemas and the server-dependent checks."""

from __future__ import annotations

import datetime as dt

import pytest
from pydantic import ValidationError

from nextbest.serving.schemas import FeedbackBody, RankBatchBody, RankBody
from nextbest.serving.validation import INT64_MAX, INT64_MIN, InvalidFieldError, RequestChecks, TimeWindow

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.timezone.utc)
WINDOW = TimeWindow(past_days=3650, future_days=1)
PLUS_1H = dt.timezone(dt.timedelta(hours=1))
MINUS_1H = dt.timezone(dt.timedelta(hours=-1))
CHANNELS = ("email", "web")


def errors(model: type, raw: str) -> list[tuple[str, str]]:
    """``(field, message)`` of each error validating JSON ``raw`` as ``model``."""
    with pytest.raises(ValidationError) as caught:
        model.model_validate_json(raw)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in caught.value.errors()]


# ---------------------------------------------------------------------------- the time window
@pytest.mark.parametrize(
    "ts",
    [
        NOW,
        NOW - dt.timedelta(days=3650),  # both ends are inside
        NOW + dt.timedelta(days=1),
        (NOW - dt.timedelta(days=3650)).replace(tzinfo=None),  # naive = UTC
        dt.datetime(2024, 6, 1, 9, 0),  # the demo world's dates
        (NOW + dt.timedelta(days=1)).astimezone(PLUS_1H),  # the same instant in another zone
    ],
)
def test_times_within_the_window_pass(ts: dt.datetime) -> None:
    WINDOW.check("body.timestamp", ts, now=NOW)


@pytest.mark.parametrize(
    "ts",
    [
        dt.datetime(1, 1, 1, tzinfo=PLUS_1H),  # 0000-12-31T23:00Z: converting it to UTC overflows
        dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=MINUS_1H),  # year 10000 in UTC
        dt.datetime(1, 1, 1),
        dt.datetime.min,
        dt.datetime.max,
        dt.datetime(9999, 12, 31),
        NOW - dt.timedelta(days=3650, microseconds=1),
        NOW + dt.timedelta(days=1, microseconds=1),
        (NOW + dt.timedelta(days=1, seconds=1)).replace(tzinfo=None),
    ],
)
def test_times_outside_the_window_are_rejected_without_overflow(ts: dt.datetime) -> None:
    with pytest.raises(InvalidFieldError) as caught:
        WINDOW.check("body.context.timestamp", ts, now=NOW)
    err = caught.value
    assert err.field == "body.context.timestamp"
    assert str(err).startswith(f"body.context.timestamp: {ts.isoformat()} is outside the accepted window ")


def test_the_message_names_the_window_the_settings_and_the_fix() -> None:
    with pytest.raises(InvalidFieldError) as caught:
        WINDOW.check("body.timestamp", dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=MINUS_1H), now=NOW)
    assert caught.value.message == (
        "9999-12-31T23:59:59-01:00 is outside the accepted window 2016-12-08T12:00:00Z .. 2026-12-07T12:00:00Z "
        "(at most 3650 days before now, NEXTBEST_MAX_PAST_DAYS, and 1 after, NEXTBEST_MAX_FUTURE_DAYS); "
        "send a time within it (or leave it out to mean now), or have the server's operator widen the window"
    )


def test_a_window_of_fractions_of_days() -> None:
    window = TimeWindow(past_days=0.5, future_days=0)
    window.check("t", NOW - dt.timedelta(hours=12), now=NOW)
    with pytest.raises(InvalidFieldError, match=r"at most 0\.5 days before now, NEXTBEST_MAX_PAST_DAYS, and 0 after"):
        window.check("t", NOW + dt.timedelta(seconds=1), now=NOW)


def test_no_timestamp_means_now_and_passes() -> None:
    WINDOW.check("body.context.timestamp", None)


# ---------------------------------------------------------------------------- checks of whole bodies
def checks() -> RequestChecks:
    return RequestChecks(WINDOW, lambda: CHANNELS)


@pytest.mark.parametrize("model", [RankBody, RankBatchBody])
def test_rank_bodies_are_checked_for_time_and_channel(model: type) -> None:
    ids = '"customer_id": 1' if model is RankBody else '"customer_ids": [1]'
    checks().rank(model.model_validate_json(f'{{{ids}, "context": {{"channel": "web"}}}}'))
    checks().rank(model.model_validate_json(f"{{{ids}}}"))
    with pytest.raises(InvalidFieldError, match=r"^body\.context\.channel: 'fax' is not a configured channel; "
                       r"use one of \['email', 'web'\] or leave it out$"):
        checks().rank(model.model_validate_json(f'{{{ids}, "context": {{"channel": "fax"}}}}'))
    with pytest.raises(InvalidFieldError, match=r"^body\.context\.timestamp: 0001-01-01T00:00:00\+01:00 is outside"):
        checks().rank(model.model_validate_json(f'{{{ids}, "context": {{"timestamp": "0001-01-01T00:00:00+01:00"}}}}'))


def test_feedback_bodies_are_checked_for_time() -> None:
    body = '{"decision_id": "d-0", "outcome": "open", "timestamp": "%s"}'
    checks().feedback(FeedbackBody.model_validate_json(body % dt.datetime.now(dt.timezone.utc).isoformat()))
    with pytest.raises(InvalidFieldError, match=r"^body\.timestamp: 0001-01-01T00:00:00 is outside"):
        checks().feedback(FeedbackBody.model_validate_json(body % "0001-01-01T00:00:00"))


# ---------------------------------------------------------------------------- bounds of the schemas
@pytest.mark.parametrize("cid", [INT64_MIN, -1, 0, INT64_MAX])
def test_customer_ids_span_the_signed_64_bit_range(cid: int) -> None:
    assert RankBody.model_validate_json(f'{{"customer_id": {cid}}}').customer_id == cid
    assert RankBatchBody.model_validate_json(f'{{"customer_ids": [{cid}, 1]}}').customer_ids[0] == cid


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        ('{"customer_id": 9223372036854775808}', "customer_id", "Input should be less than or equal to 9223372036854775807"),
        ('{"customer_id": -9223372036854775809}', "customer_id",
         "Input should be greater than or equal to -9223372036854775808"),
        ('{"customer_id": 1, "seed": 9223372036854775808}', "seed", "Input should be less than or equal to 9223372036854775807"),
        ('{"customer_id": 1, "seed": -9223372036854775809}', "seed",
         "Input should be greater than or equal to -9223372036854775808"),
        ('{"customer_id": 1, "context": {"event": "%s"}}' % ("e" * 101), "context.event",
         "String should have at most 100 characters"),
        ('{"customer_id": 1, "context": {"channel": "%s"}}' % ("c" * 101), "context.channel",
         "String should have at most 100 characters"),
    ],
)
def test_rank_body_bounds(raw: str, field: str, message: str) -> None:
    assert errors(RankBody, raw) == [(field, message)]


def test_each_batch_id_is_bounded() -> None:
    assert errors(RankBatchBody, '{"customer_ids": [1, 9223372036854775808], "seed": -9223372036854775809}') == [
        ("customer_ids.1", "Input should be less than or equal to 9223372036854775807"),
        ("seed", "Input should be greater than or equal to -9223372036854775808"),
    ]


@pytest.mark.parametrize(
    ("revenue", "message"),
    [
        ("1e309", "Input should be a finite number"),  # parses as inf
        ("Infinity", "Input should be a finite number"),
        ("-Infinity", "Input should be a finite number"),
        ("NaN", "Input should be a finite number"),
        ("1e10", "Input should be less than or equal to 1000000000"),
        ("-0.01", "Input should be greater than or equal to 0"),
    ],
)
def test_revenue_is_a_finite_bounded_amount(revenue: str, message: str) -> None:
    raw = '{"decision_id": "d-0", "outcome": "conversion", "revenue": %s, "timestamp": "2026-12-01T00:00:00Z"}'
    assert errors(FeedbackBody, raw % revenue) == [("revenue", message)]
    assert FeedbackBody.model_validate_json(raw % "1e9").revenue == 1e9
