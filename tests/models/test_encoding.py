from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nextbest.errors import BadInputError
from nextbest.models.encoding import FrameEncoder, Levels


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


def _reference_codes(series: pd.Series, levels: list[str]) -> np.ndarray:
    """What encoding meant before the look-up tables: the column's text, matched to the levels."""
    return pd.Categorical(series.astype("string"), categories=levels).codes.astype(np.int64)


LEVELS = ["1", "1.5", "rural", "urban"]


@pytest.mark.parametrize(
    "series",
    [
        pd.Series(["urban", None, "rural", "suburban"], dtype=object),
        pd.Series(["urban", None, "rural", "suburban"], dtype="str"),
        pd.Series(["urban", None, "rural", "suburban"], dtype="string"),
        pd.Series(pd.Categorical(["urban", None, "rural", "suburban"])),
        pd.Series([1, "urban", 1.5, None], dtype=object),  # mixed objects: matched by their text
        pd.Series([1.0, 1.5, np.nan, 2.0]),
        pd.Series(pd.Categorical([1.5, 2.0, None])),
    ],
    ids=["object", "str", "string", "categorical", "mixed", "float", "numeric-categorical"],
)
@pytest.mark.parametrize("rows", [1, 200], ids=["small", "large"])
def test_level_codes_match_the_text_categorical(series: pd.Series, rows: int) -> None:
    long = pd.Series(np.resize(series.to_numpy(dtype=object), rows), dtype=series.dtype) if rows > len(series) else series.iloc[:rows]
    np.testing.assert_array_equal(Levels.of(LEVELS).codes_of(long), _reference_codes(long, LEVELS))


def test_categorical_and_text_inputs_encode_alike() -> None:
    train = pd.DataFrame({"offer_id": ["a", "b", "c"] * 30, "x": np.arange(90.0), "flag": [True, False, True] * 30})
    enc = FrameEncoder().fit(train)
    rows = pd.DataFrame({"offer_id": ["c", "a", "zzz", None] * 40, "x": np.arange(160.0), "flag": [False, True] * 80})
    as_text = enc.transform(rows)
    as_categorical = enc.transform(rows.astype({"offer_id": "category"}))
    np.testing.assert_array_equal(as_text, as_categorical)
    np.testing.assert_array_equal(as_text[:4, 0], [2.0, 0.0, np.nan, np.nan])


def test_duplicate_columns_are_named() -> None:
    enc = FrameEncoder().fit(pd.DataFrame({"a": [1.0]}))
    frame = pd.DataFrame([[1.0, 2.0]], columns=["a", "a"])
    with pytest.raises(BadInputError, match=r"duplicate column\(s\) \['a'\]"):
        enc.transform(frame)
