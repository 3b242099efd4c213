from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.errors import BadInputError
from nextbest.models.encoding import FrameEncoder


def test_categories_are_learned_once_and_unknown_levels_become_missing() -> None:
    train = pd.DataFrame({"urbanity": ["urban", "rural", None], "age": [30.0, None, 50.0], "flag": [True, False, True]})
    enc = FrameEncoder().fit(train)
    assert enc.categories_ == {"urbanity": ["rural", "urban"]}
    assert enc.categorical_indices_ == [0]
    out = enc.transform(pd.DataFrame({"urbanity": ["urban", "suburban"], "age": [1.0, 2.0], "flag": [False, True]}))
    np.testing.assert_array_equal(out[:, 0], [1.0, np.nan])
    np.testing.assert_array_equal(out[:, 2], [0.0, 1.0])


def test_absent_column_takes_its_default() -> None:
    enc = FrameEncoder(defaults={"shown_30d": 0.0}).fit(pd.DataFrame({"a": [1.0], "shown_30d": [3]}))
    out = enc.transform(pd.DataFrame({"a": [2.0, 3.0]}))
    np.testing.assert_array_equal(out[:, 1], [0.0, 0.0])


@pytest.mark.parametrize(
    ("fit_cols", "transform_cols", "message"),
    [
        (["a", "b"], ["a"], r"candidate rows lack feature column\(s\) \['b'\]"),
        (["a"], ["b"], r"candidate rows lack feature column\(s\) \['a'\]"),
    ],
)
def test_missing_column_names_it(fit_cols: list[str], transform_cols: list[str], message: str) -> None:
    enc = FrameEncoder().fit(pd.DataFrame({c: [1.0] for c in fit_cols}))
    with pytest.raises(BadInputError, match=message):
        enc.transform(pd.DataFrame({c: [1.0] for c in transform_cols}))


def test_fit_refuses_absent_requested_columns() -> None:
    with pytest.raises(BadInputError, match=r"training frame lacks column\(s\) \['zzz'\]"):
        FrameEncoder(columns=["zzz"]).fit(pd.DataFrame({"a": [1.0]}))
