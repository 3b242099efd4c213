"""Per-policy copies of a workspace: each policy starts from the same warehouse, models and config.

A simulation never touches the workspace it starts from. Each policy gets a
folder ``<workspace>/simulations/<run>/<policy>/`` that is itself a complete
workspace (warehouse, config, feature models, MLflow store), so every command
(`nextbest report uplift`, `nextbest ab analyze`, `nextbest serve`) works on it.

The MLflow store is copied with its artifacts and relocated to the policy's folder
when first opened there (:mod:`nextbest.relocation`): the models it already holds
are read from the copy, and models a policy trains during the simulation are
logged and registered in the policy's folder only, never in the original's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from nextbest.config import NextbestConfig
from nextbest.errors import BadInputError
from nextbest.warehouse.db import connect
from nextbest.workspace import Workspace

#: Folder of a workspace holding the simulation runs.
SIMULATIONS_DIR = "simulations"


def simulations_root(ws: Workspace) -> Path:
    """``<workspace>/simulations``."""
    return ws.root / SIMULATIONS_DIR


def checkpoint(ws: Workspace) -> None:
    """Fold DuckDB's write-ahead log into the warehouse file so a file copy is complete."""
    con = connect(ws.warehouse_path)
    try:
        con.execute("CHECKPOINT")
    finally:
        con.close()


def replicate(base: Workspace, target: Path, config: NextbestConfig) -> Workspace:
    """Copy ``base`` into ``target`` (replacing it) with ``config``'s policy settings.

    Parameters
    ----------
    base
        The workspace the simulation starts from (checkpointed by the caller).
    target
        The policy's folder; emptied first.
    config
        The policy's configuration; its ``policy`` section is written to
        ``config/policy.yaml``, the other files are copied from ``base``.

    Raises
    ------
    BadInputError
        When ``base`` has no warehouse.
    """
    if not base.warehouse_path.exists():
        raise BadInputError(f"no warehouse at {base.warehouse_path}; run `nextbest data generate` first")
    if target.exists():
        shutil.rmtree(target)
    ws = Workspace(target.resolve()).ensure()
    shutil.copyfile(base.warehouse_path, ws.warehouse_path)
    if base.config_dir.exists():
        shutil.copytree(base.config_dir, ws.config_dir, dirs_exist_ok=True)
    else:
        ws.init_config()
    policy = config.policy.model_dump(mode="json")
    (ws.config_dir / "policy.yaml").write_text(
        "# Written by `nextbest simulate`: the policy this copy of the workspace decides with.\n"
        + yaml.safe_dump(policy, sort_keys=False)
    )
    features = base.artifacts_dir / "features"
    if features.exists():
        shutil.copytree(features, ws.artifacts_dir / "features", dirs_exist_ok=True)
    if base.mlflow_db.exists():
        shutil.copyfile(base.mlflow_db, ws.mlflow_db)
        if base.mlartifacts_dir.exists():
            shutil.copytree(base.mlartifacts_dir, ws.mlartifacts_dir, dirs_exist_ok=True)
    return ws
