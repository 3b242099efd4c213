"""Service settings from the environment."""

from __future__ import annotations

import pytest

from nextbest.errors import BadInputError
from nextbest.serving.settings import ServeSettings
from nextbest.serving.validation import TimeWindow


def test_defaults_and_workspace(tmp_path) -> None:
    s = ServeSettings.from_env({"NEXTBEST_WORKSPACE": str(tmp_path)})
    assert s.workspace.root == tmp_path.resolve()
    assert s.api_token is None
    assert (s.max_past_days, s.max_future_days) == (3650, 1)


def test_values_are_parsed() -> None:
    s = ServeSettings.from_env({"NEXTBEST_API_TOKEN": "long-enough-token", "NEXTBEST_BATCH_CHUNK": "250"})
    assert s.api_token == "long-enough-token"
    assert s.batch_chunk == 250


def test_the_time_window_of_requests() -> None:
    s = ServeSettings.from_env({"NEXTBEST_MAX_PAST_DAYS": "30", "NEXTBEST_MAX_FUTURE_DAYS": "0.25"})
    assert s.time_window == TimeWindow(past_days=30, future_days=0.25)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NEXTBEST_API_TOKEN": "short"}, "NEXTBEST_API_TOKEN: String should have at least 8 characters"),
        ({"NEXTBEST_COMMIT_GATHER_MS": "soon"}, "NEXTBEST_COMMIT_GATHER_MS: Input should be a valid number"),
        ({"NEXTBEST_COMMIT_GATHER_MS": "500"}, "NEXTBEST_COMMIT_GATHER_MS: Input should be less than or equal to 100"),
        ({"NEXTBEST_BATCH_CHUNK": "0"}, "NEXTBEST_BATCH_CHUNK: Input should be greater than or equal to 1"),
        ({"NEXTBEST_LOCK_TIMEOUT_S": "-1"}, "NEXTBEST_LOCK_TIMEOUT_S: Input should be greater than 0"),
        ({"NEXTBEST_MAX_PAST_DAYS": "-1"}, "NEXTBEST_MAX_PAST_DAYS: Input should be greater than or equal to 0"),
        # A century back at most: the window stays clear of the calendar's ends.
        ({"NEXTBEST_MAX_PAST_DAYS": "1e6"}, "NEXTBEST_MAX_PAST_DAYS: Input should be less than or equal to 36500"),
        ({"NEXTBEST_MAX_PAST_DAYS": "inf"}, "NEXTBEST_MAX_PAST_DAYS: Input should be a finite number"),
        ({"NEXTBEST_MAX_FUTURE_DAYS": "3651"}, "NEXTBEST_MAX_FUTURE_DAYS: Input should be less than or equal to 3650"),
        ({"NEXTBEST_MAX_FUTURE_DAYS": "soon"}, "NEXTBEST_MAX_FUTURE_DAYS: Input should be a valid number"),
    ],
)
def test_invalid_environment_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        ServeSettings.from_env(env)
