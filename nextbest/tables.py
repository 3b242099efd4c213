"""Reading a table a user exported from another tool: CSV (text cells) or Parquet."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nextbest.errors import BadInputError


def read_user_table(path: Path | str, what: str) -> pd.DataFrame:
    """Read ``path`` as CSV (every cell text, empty = missing kept as ``""``), TSV or Parquet.

    CSV cells stay text so that "010" keeps its zero and the caller's validation
    converts the rest. The delimiter is sniffed (spreadsheets in many locales write
    ``;``) and a byte-order mark is dropped. Column names lose surrounding blanks.

    Parameters
    ----------
    path
        The file.
    what
        What the file holds, for messages ("the catalogue", "the decision log").

    Raises
    ------
    BadInputError
        The file is missing, of another type, or unreadable; the message names it and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"{path}: no such file; give {what} as .csv or .parquet")
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
        elif suffixes.endswith((".csv", ".csv.gz", ".tsv")):
            sep = "\t" if ".tsv" in suffixes else None
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep, engine="python", encoding="utf-8-sig")
        else:
            raise BadInputError(f"{path}: unknown file type; export {what} as .csv or .parquet")
    except BadInputError:
        raise
    except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many kinds; the user needs the file named
        raise BadInputError(f"{path}: cannot read it as {what} ({exc}); check the file") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame
