"""The fitted part of a feature set: basket clusterer and CLV regressor, versioned together.

The *feature set version* hashes the registry, the feature configuration and
both fitted models, so a snapshot names exactly what produced it. Models are
saved as JSON (no pickles) under ``artifacts/features/<version>/models.json``;
they hold centroids and trees, no customer data.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from nextbest.features.baskets import BasketClusterer
from nextbest.features.clv import ClvRegressor
from nextbest.features.registry import definition_hash

from nextbest.config import NextbestConfig
from nextbest.errors import BadInputError

MODELS_FILE = "models.json"


@dataclass(frozen=True)
class FeatureModels:
    """Models fitted on data strictly before ``fitted_as_of``, applied unchanged afterwards."""

    definition_hash: str
    fitted_as_of: pd.Timestamp
    clusterer: BasketClusterer
    clv: ClvRegressor

    def to_dict(self) -> dict[str, Any]:
        return {
            "definition_hash": self.definition_hash,
            "fitted_as_of": self.fitted_as_of.isoformat(),
            "clusterer": self.clusterer.to_dict(),
            "clv": self.clv.to_dict(),
        }

    @property
    def version(self) -> str:
        """Feature set version: hash of registry + feature config + fitted models."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:12]

    def matches(self, config: NextbestConfig) -> bool:
        """Whether these models were fitted for ``config``'s feature definitions."""
        return self.definition_hash == definition_hash(config)

    def save(self, root: Path) -> Path:
        """Write under ``root/<version>/``; returns that folder."""
        folder = root / self.version
        folder.mkdir(parents=True, exist_ok=True)
        doc = {**self.to_dict(), "version": self.version, "saved_at": dt.datetime.now(dt.UTC).isoformat()}
        (folder / MODELS_FILE).write_text(json.dumps(doc))
        return folder

    @classmethod
    def load(cls, folder: Path) -> FeatureModels:
        """Read a folder written by :meth:`save`."""
        path = folder / MODELS_FILE
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise BadInputError(f"{path}: not a readable feature-model file ({exc}); rebuild with "
                                "`nextbest features build --refit`") from exc
        return cls(
            definition_hash=doc["definition_hash"],
            fitted_as_of=pd.Timestamp(doc["fitted_as_of"]),
            clusterer=BasketClusterer.from_dict(doc["clusterer"]),
            clv=ClvRegressor.from_dict(doc["clv"]),
        )

    @classmethod
    def latest(cls, root: Path, config: NextbestConfig) -> FeatureModels | None:
        """The most recently saved models under ``root`` that match ``config``, if any."""
        if not root.exists():
            return None
        wanted = definition_hash(config)
        found: list[tuple[str, Path]] = []
        for path in root.glob(f"*/{MODELS_FILE}"):
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            if doc.get("definition_hash") == wanted:
                found.append((doc.get("saved_at", ""), path.parent))
        return cls.load(max(found)[1]) if found else None
