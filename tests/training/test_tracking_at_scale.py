"""MLflow at scale: tracking and registry on PostgreSQL, artifacts in an S3-compatible object store.

The object store is moto's S3 server on 127.0.0.1 (a real HTTP S3 endpoint, driven by
MLflow's own boto3 client); the database is a throwaway PostgreSQL cluster.
``nextbest train`` registers the model there, and ``models:/nextbest-response@champion``
loads the same model whichever way it is loaded: through MLflow's pyfunc, through
nextbest's registry (what the service and ``decide`` do), and after being copied
into an embedded workspace store.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pandas as pd
import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from nextbest.cli import app
from nextbest.models.pyfunc import SCORER_ARTIFACT, ResponseModelPyfunc
from nextbest.models.registry import CHAMPION, MODEL_NAME, get_version, load_scorer, set_alias
from nextbest.serving.process import stop_tree, wait_ready
from nextbest.training.tracking import use_workspace
from nextbest.workspace import Workspace

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.server]
BUCKET = "nextbest-mlflow"


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto's S3 server on a free loopback port, with an empty bucket; MLflow's S3 variables point at it."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        for key, value in {
            "MLFLOW_S3_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            monkeypatch.setenv(key, value)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


def _cli(ws: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["--workspace", str(ws), *args], catch_exceptions=True)
    assert result.exception is None, f"nextbest {' '.join(args)}: {result.exception!r}\n{result.output[-2000:]}"
    return result.stdout


def _candidates(example: pd.DataFrame, n: int = 200) -> pd.DataFrame:
    """``n`` candidate rows around the logged input example (numeric features spread, text kept)."""
    rng = np.random.default_rng(0)
    rows = pd.concat([example] * n, ignore_index=True)
    for c in rows.columns:
        if rows[c].dtype.kind == "f":
            rows[c] = rows[c] * rng.uniform(0, 2, n) + rng.normal(0, 1, n)
    return rows


def test_train_on_postgres_and_s3_registers_a_champion_that_loads_the_same(
    tmp_path: Path, postgres_url: str, s3: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    ws = tmp_path / "ws"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    _cli(ws, "init")
    _cli(ws, "data", "generate", "--customers", "400", "--days", "45", "--seed", "3")
    _cli(ws, "features", "build")

    tracking = make_url(postgres_url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    monkeypatch.setenv("NEXTBEST_ARTIFACT_ROOT", f"s3://{BUCKET}/mlflow")
    trained = json.loads(_cli(ws, "train", "--json"))
    label = trained["model_version"]
    assert label == f"{MODEL_NAME}/1" and CHAMPION in trained["aliases"]

    # Registered in PostgreSQL, stored in the bucket, nothing in the workspace's artifact folder.
    version = get_version(tracking, CHAMPION)
    assert version is not None and version.label == label
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3).list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert any(k.startswith("mlflow/nextbest-response/") and f"/{SCORER_ARTIFACT}/" in k for k in keys)
    assert not any(p.is_file() for p in (ws / "mlartifacts").rglob("*"))

    # The same model, however it is loaded.
    native = load_scorer(tracking, CHAMPION)  # the service's and decide's way
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(tracking)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{CHAMPION}")
    rows = _candidates(pyfunc.input_example)
    expected = native.score(rows)
    pd.testing.assert_frame_equal(pyfunc.predict(rows).reset_index(drop=True), expected.reset_index(drop=True))
    assert native.model_version == label

    # Copied into an embedded store, the bundle predicts the same again.
    with tempfile.TemporaryDirectory() as tmp:
        client = mlflow.MlflowClient(tracking_uri=tracking, registry_uri=tracking)
        source = client.get_model_version_download_uri(MODEL_NAME, version.version)
        folder = mlflow.artifacts.download_artifacts(f"{source.rstrip('/')}/artifacts/{SCORER_ARTIFACT}", dst_path=tmp)
        monkeypatch.delenv("MLFLOW_TRACKING_URI")
        monkeypatch.delenv("NEXTBEST_ARTIFACT_ROOT")
        embedded = Workspace.resolve(tmp_path / "embedded")
        embedded.init_config()
        use_workspace(embedded)
        mlflow.set_experiment("copied")
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(name="model", python_model=ResponseModelPyfunc(),
                                           artifacts={SCORER_ARTIFACT: folder}, pip_requirements=["nextbest"])
        copied = mlflow.register_model(info.model_uri, MODEL_NAME)
        set_alias(embedded.tracking_uri, CHAMPION, str(copied.version))
    local = load_scorer(embedded.tracking_uri, CHAMPION)
    pd.testing.assert_frame_equal(local.score(rows).reset_index(drop=True), expected.reset_index(drop=True))

    # decide loads the champion from PostgreSQL + S3.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    monkeypatch.setenv("NEXTBEST_ARTIFACT_ROOT", f"s3://{BUCKET}/mlflow")
    summary = json.loads(_cli(ws, "decide", "--date", "2024-02-15", "--output", str(tmp_path / "d.parquet"), "--dry-run"))
    assert summary["model_version"] == label and summary["customers"] > 0

    # And the service: `nextbest serve` starts on it and ranks with that version.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).with_name("nextbest")), "--workspace", str(ws), "serve", "--port", str(port),
             "--workers", "1"],
            env={**os.environ, "NEXTBEST_WORKSPACE": str(ws)}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            assert wait_ready(proc, url, 240), (tmp_path / "server.log").read_text()[-3000:]
            answer = httpx.post(f"{url}/rank", json={"customer_id": 1, "top_k": 1}, timeout=60)
            assert answer.status_code == 200, answer.text
            assert answer.json()["model_version"] == label
        finally:
            stop_tree(proc, signal.SIGTERM, 60)
