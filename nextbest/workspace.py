"""The workspace: one folder holding everything a nextbest deployment reads and writes.

Layout::

    workspace/
      warehouse.duckdb    raw tables, logs, feature snapshots (DuckDB)
      config/             offers.yaml, channels.yaml, policy.yaml, features.yaml, training.yaml
      mlflow.db           MLflow tracking + registry (sqlite); MLFLOW_TRACKING_URI overrides
      mlartifacts/        MLflow artifacts
      artifacts/          other versioned artifacts (feature-set manifests, fitted clusterers)
      reports/            HTML and JSON reports
      audit.log           erasure audit trail (no personal data)
      logs/nextbest.log   libraries' messages (MLflow, Alembic, Optuna, ...), kept off the screen
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from nextbest.config import CONFIG_FILES, DEFAULTS_DIR, NextbestConfig, load_config

ENV_VAR = "NEXTBEST_WORKSPACE"
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
    def log_path(self) -> Path:
        """Where libraries' log records and warnings go (:mod:`nextbest.logfile`)."""
        return self.root / "logs" / "nextbest.log"

    @property
    def tracking_uri(self) -> str:
        """``$MLFLOW_TRACKING_URI`` if set, else the embedded sqlite store."""
        return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{self.root / 'mlflow.db'}"

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
