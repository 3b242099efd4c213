"""The MLflow model registry: where trained response models live and how they are loaded.

One registered model, :data:`MODEL_NAME`, with two aliases: ``champion`` (what
production scores with) and ``challenger`` (the latest trained version, until
:func:`nextbest.training.promotion.promote` moves the champion alias to it).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from nextbest.errors import NotFoundError
from nextbest.models.pyfunc import SCORER_ARTIFACT
from nextbest.models.response import ResponseModel

MODEL_NAME = "nextbest-response"
CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class RegisteredVersion:
    """A registered version and the run that trained it."""

    name: str
    version: str
    run_id: str | None
    aliases: tuple[str, ...]

    @property
    def label(self) -> str:
        """``"nextbest-response/3"``: what decisions log as ``model_version``."""
        return f"{self.name}/{self.version}"

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _wrap(v: ModelVersion) -> RegisteredVersion:
    return RegisteredVersion(v.name, str(v.version), v.run_id, tuple(getattr(v, "aliases", ()) or ()))


def get_version(tracking_uri: str, alias: str = CHAMPION, name: str = MODEL_NAME) -> RegisteredVersion | None:
    """The version behind ``alias``, or ``None`` when the alias (or the model) does not exist."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        return _wrap(client.get_model_version_by_alias(name, alias))
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def list_versions(tracking_uri: str, name: str = MODEL_NAME) -> list[RegisteredVersion]:
    """Every registered version, newest first."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    versions = client.search_model_versions(f"name = '{name}'")
    if not versions:
        return []
    # Version search results carry no aliases; the registered model has the alias → version map.
    aliases: dict[str, list[str]] = {}
    for alias, version in client.get_registered_model(name).aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    wrapped = [
        RegisteredVersion(v.name, str(v.version), v.run_id, tuple(sorted(aliases.get(str(v.version), []))))
        for v in versions
    ]
    return sorted(wrapped, key=lambda v: int(v.version), reverse=True)


def set_alias(tracking_uri: str, alias: str, version: str, name: str = MODEL_NAME) -> None:
    MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri).set_registered_model_alias(name, alias, version)


def load_model_version(tracking_uri: str, version: RegisteredVersion, dst: Path | None = None) -> ResponseModel:
    """Load a registered version's bundle natively (JSON + LightGBM text files).

    The artifact is downloaded into ``dst``, or into a temporary folder that is
    removed once the bundle is in memory (a long-running service reloads models on
    every refresh and would otherwise fill the temporary directory).
    """
    if dst is None:
        with tempfile.TemporaryDirectory(prefix="nextbest-model-") as tmp:
            return load_model_version(tracking_uri, version, Path(tmp))
    # Resolve the version's storage location through a client bound to ``tracking_uri``:
    # a ``models:/`` URI would be resolved against MLflow's *global* registry URI, which a
    # fresh process (the simulator, a notebook) has not pointed at the workspace.
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    source = client.get_model_version_download_uri(version.name, version.version)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{source.rstrip('/')}/artifacts/{SCORER_ARTIFACT}",
        dst_path=str(dst),
        tracking_uri=tracking_uri,
    )
    return ResponseModel.load(local, model_version=version.label)


def load_scorer(tracking_uri: str, alias: str = CHAMPION) -> ResponseModel:
    """The :class:`~nextbest.models.scoring.Scorer` registered under ``alias``.

    Parameters
    ----------
    tracking_uri
        MLflow tracking/registry URI (``Workspace.tracking_uri``).
    alias
        ``"champion"`` (default) or ``"challenger"``.

    Raises
    ------
    NotFoundError
        When no version carries the alias.
    """
    version = get_version(tracking_uri, alias)
    if version is None:
        raise NotFoundError(f"no {alias} model registered — run `nextbest train`")
    return load_model_version(tracking_uri, version)
