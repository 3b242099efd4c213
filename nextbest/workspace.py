"""The workspace: one folder holding everything a nextbest deployment reads and writes.

Layout::

    workspace/
      warehouse.duckdb    raw tables, logs, feature snapshots (DuckDB): the analytical store
      live.db             decisions, outcomes, consent changes, erasures the services write
                          (SQLite; NEXTBEST_LIVE_URL names another, e.g. PostgreSQL)
      config/             offers.yaml, channels.yaml, policy.yaml, features.yaml, training.yaml
      mlflow.db           MLflow tracking + registry (sqlite); MLFLOW_TRACKING_URI overrides
      mlartifacts/        MLflow artifacts
      artifacts/          other versioned artifacts (feature-set manifests, fitted clusterers)
      reports/            HTML and JSON reports
      audit.log           erasure audit trail (no personal data)
      logs/nextbest.log   libraries' messages (MLflow, Alembic, Optuna, ...), kept off the screen

A workspace can be copied or moved as a folder: its embedded MLflow store is
relocated to the new folder the first time it is opened there
(:mod:`nextbest.relocation`), so the copy never reads or writes the original's files.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from nextbest.config import CONFIG_FILES, DEFAULTS_DIR, NextbestConfig, load_config
from nextbest.relocation import relocate_store

ENV_VAR = "NEXTBEST_WORKSPACE"
#: Where new MLflow experiments keep their artifacts when MLflow tracks outside the workspace
#: (``s3://bucket/prefix``; MLflow reads the S3 endpoint and keys from its usual variables).
ARTIFACT_ROOT_ENV = "NEXTBEST_ARTIFACT_ROOT"
DEFAULT_PATH = Path("workspace")


@dataclass(frozen=True)
class Workspace:
    """Paths of a workspace. Construct with :meth:`resolve` to honour the environment."""

    root: Path

    @classmethod
    def resolve(cls, path: Path | str | None = None) -> Workspace:
        """``path`` if given, else ``$NEXTBEST_WORKSPACE``, else ``./workspace``."""
        chosen = Path(path) if path is not None else Path(os.environ.get(ENV_VAR, DEFAULT_PATH))
        return cls(chosen.expanduser().resolve())

    @property
    def warehouse_path(self) -> Path:
        return self.root / "warehouse.duckdb"

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"

    @property
    def artifacts_dir(self) -> Path:
        return self.root / "artifacts"

    @property
    def mlartifacts_dir(self) -> Path:
        return self.root / "mlartifacts"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit.log"

    @property
    def root_live_url(self) -> str:
        """SQLAlchemy URL of the embedded live store in this folder, whatever ``NEXTBEST_LIVE_URL`` says."""
        return f"sqlite:///{self.root / 'live.db'}"

    @property
    def live_url(self) -> str:
        """SQLAlchemy URL of the live store: ``NEXTBEST_LIVE_URL``, else SQLite in the workspace."""
        return os.environ.get("NEXTBEST_LIVE_URL") or f"sqlite:///{self.root / 'live.db'}"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def uses_embedded_store(self) -> bool:
        """Whether MLflow tracks into this workspace's own ``mlflow.db``.

        True without ``$MLFLOW_TRACKING_URI``, and when it names this file anyway
        (as the tests' CLI runs do).
        """
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            return True
        if not uri.startswith("sqlite:///"):
            return False
        path = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
        return os.path.abspath(path) == os.path.abspath(self.mlflow_db)

    @property
    def log_path(self) -> Path:
        """Where libraries' log records and warnings go (:mod:`nextbest.logfile`)."""
        return self.root / "logs" / "nextbest.log"

    def artifact_location(self, experiment: str) -> str | None:
        """Artifact location of a new MLflow experiment named ``experiment``.

        ``$NEXTBEST_ARTIFACT_ROOT/<experiment>`` when set (an object store shared by
        every machine); else under ``mlartifacts/`` with the embedded store; else
        ``None``: the tracking server's own default artifact root.
        """
        root = os.environ.get(ARTIFACT_ROOT_ENV)
        if root:
            return f"{root.rstrip('/')}/{experiment}"
        if self.uses_embedded_store:
            self.mlartifacts_dir.mkdir(parents=True, exist_ok=True)
            return (self.mlartifacts_dir / experiment).as_uri()
        return None

    @property
    def tracking_uri(self) -> str:
        """``$MLFLOW_TRACKING_URI`` if set, else the embedded sqlite store.

        Every MLflow client of a workspace is built from this URI, so this is
        where an embedded store copied or moved from another folder is
        relocated here first (:func:`nextbest.relocation.relocate_store`; a
        single read once done). A user's own tracking server is left alone.
        """
        if self.uses_embedded_store:
            relocate_store(self.root, self.mlflow_db)
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.mlflow_db}"

    def ensure(self) -> Workspace:
        """Create the folders (idempotent)."""
        for d in (self.root, self.config_dir, self.reports_dir, self.artifacts_dir, self.mlartifacts_dir):
            d.mkdir(parents=True, exist_ok=True)
        return self

    def init_config(self, overwrite: bool = False) -> list[Path]:
        """Copy the commented example configuration into ``config/``; returns written files."""
        self.ensure()
        written = []
        for name in CONFIG_FILES:
            target = self.config_dir / f"{name}.yaml"
            if target.exists() and not overwrite:
                continue
            shutil.copyfile(DEFAULTS_DIR / f"{name}.yaml", target)
            written.append(target)
        return written

    def config(self) -> NextbestConfig:
        """The validated configuration (packaged defaults for absent files)."""
        return load_config(self.config_dir if self.config_dir.exists() else None)
