"""Where a workspace's new MLflow experiments keep their artifacts."""

from __future__ import annotations

from pathlib import Path

import pytest

from nextbest.workspace import ARTIFACT_ROOT_ENV, Workspace


@pytest.mark.parametrize(
    ("tracking", "root", "expected"),
    [
        (None, None, "mlartifacts"),  # the embedded store: under the workspace
        (None, "s3://models/nextbest/", "s3://models/nextbest/nextbest-response"),
        ("postgresql+psycopg://mlflow@db/mlflow", "s3://models/nextbest", "s3://models/nextbest/nextbest-response"),
        ("http://mlflow.internal:5000", None, None),  # a tracking server's own default artifact root
    ],
)
def test_artifact_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tracking: str | None, root: str | None, expected: str | None
) -> None:
    for name, value in (("MLFLOW_TRACKING_URI", tracking), (ARTIFACT_ROOT_ENV, root)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    ws = Workspace.resolve(tmp_path / "ws")
    location = ws.artifact_location("nextbest-response")
    if expected == "mlartifacts":
        assert location == (ws.mlartifacts_dir / "nextbest-response").as_uri() and ws.mlartifacts_dir.is_dir()
    else:
        assert location == expected
