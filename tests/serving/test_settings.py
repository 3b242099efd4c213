"""Service settings from the environment."""

from __future__ import annotations

import pytest

from nextbest.errors import BadInputError
from nextbest.serving.settings import ServeSettings


def test_defaults_and_workspace(tmp_path) -> None:
    s = ServeSettings.from_env({"NEXTBEST_WORKSPACE": str(tmp_path)})
    assert s.workspace.root == tmp_path.resolve()
    assert s.api_token is None


def test_values_are_parsed() -> None:
    s = ServeSettings.from_env({"NEXTBEST_API_TOKEN": "long-enough-token", "NEXTBEST_BATCH_CHUNK": "250"})
    assert s.api_token == "long-enough-token"
    assert s.batch_chunk == 250


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"NEXTBEST_API_TOKEN": "short"}, "NEXTBEST_API_TOKEN: String should have at least 8 characters"),
        ({"NEXTBEST_WRITER_MAX_ROWS": "many"}, "NEXTBEST_WRITER_MAX_ROWS: Input should be a valid integer"),
        ({"NEXTBEST_BATCH_CHUNK": "0"}, "NEXTBEST_BATCH_CHUNK: Input should be greater than or equal to 1"),
        ({"NEXTBEST_LOCK_TIMEOUT_S": "-1"}, "NEXTBEST_LOCK_TIMEOUT_S: Input should be greater than 0"),
    ],
)
def test_invalid_environment_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        ServeSettings.from_env(env)
