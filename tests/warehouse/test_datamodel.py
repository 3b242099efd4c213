"""docs/data-model.md is generated from the schema and must be up to date."""

from __future__ import annotations

from nextbest.warehouse.datamodel import DOC_PATH, main, render_data_model
from nextbest.warehouse.schema import PERSONAL_COLUMNS, TABLES


def test_committed_document_is_up_to_date() -> None:
    assert DOC_PATH.read_text() == render_data_model(), (
        "docs/data-model.md is out of date: run .venv/bin/python -m nextbest.warehouse.datamodel"
    )


def test_document_covers_every_table_and_column() -> None:
    text = render_data_model()
    for table in TABLES.values():
        assert f"### `{table.name}`" in text
        for column in table.columns:
            assert f"| `{column.name}` | {column.type} |" in text
    for column in PERSONAL_COLUMNS:
        assert f"`{column}`" in text
    assert "## Erasure (right to be forgotten)" in text and "register_eraser" in text


def test_check_mode_detects_a_stale_document(tmp_path) -> None:
    path = tmp_path / "data-model.md"
    assert main(["--path", str(path), "--check"]) == 1
    assert main(["--path", str(path)]) == 0
    assert main(["--path", str(path), "--check"]) == 0
