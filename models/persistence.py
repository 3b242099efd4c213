"""Save fitted estimators as JSON plus native LightGBM model files.

No pickle: an artifact is a folder with ``model.json`` (estimator classes,
parameters and learned attributes as plain JSON) and one LightGBM text model
per booster (``booster_<n>.txt``), which :class:`lightgbm.Booster` loads
natively. Only classes from ``nextbest.models`` (and scikit-learn-free plain
data) can be restored, so loading an artifact never imports arbitrary code.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.base import BaseEstimator

from nextbest.errors import BadInputError

_ALLOWED_PREFIX = "nextbest.models."
FORMAT_VERSION = 1

#: Classes artifacts name by a path they no longer have. An artifact records each
#: estimator's ``module:qualname``; the uplift learners were all in
#: ``nextbest.models.uplift`` until it was split by concern, and bundles saved
#: before (registered model versions, a workspace's champion) must still load.
MOVED: dict[str, str] = {
    f"nextbest.models.uplift:{name}": f"nextbest.models.{module}:{name}"
    for name, module in {
        "SLearner": "s_learner",
        "TLearner": "t_learner",
        "XLearner": "x_learner",
        "ShiftLearner": "shift_learner",
        "BaggedLearner": "bagged_learner",
    }.items()
}


class _Writer:
    def __init__(self) -> None:
        self.boosters: dict[str, str] = {}

    def encode(self, obj: Any) -> Any:
        if isinstance(obj, lgb.Booster):
            name = f"booster_{len(self.boosters)}.txt"
            self.boosters[name] = obj.model_to_string()
            return {"__booster__": name}
        if isinstance(obj, BaseEstimator):
            cls = type(obj)
            if not cls.__module__.startswith(_ALLOWED_PREFIX):
                raise TypeError(f"cannot persist {cls.__module__}.{cls.__name__}: only nextbest.models estimators")
            fitted = {k: v for k, v in vars(obj).items() if k.endswith("_") and not k.startswith("_")}
            return {
                "__estimator__": f"{cls.__module__}:{cls.__qualname__}",
                "params": self.encode(obj.get_params(deep=False)),
                "fitted": self.encode(fitted),
            }
        if isinstance(obj, np.ndarray):
            return {"__ndarray__": self.encode(obj.tolist()), "dtype": str(obj.dtype)}
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, dict):
            if not all(isinstance(k, str) for k in obj):
                raise TypeError("only dicts with string keys can be persisted")
            return {"__dict__": {k: self.encode(v) for k, v in obj.items()}}
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v) for v in obj]}
        if isinstance(obj, list):
            return [self.encode(v) for v in obj]
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        raise TypeError(f"cannot persist a {type(obj).__name__}")


def _decode(doc: Any, folder: Path) -> Any:
    if isinstance(doc, list):
        return [_decode(v, folder) for v in doc]
    if not isinstance(doc, dict):
        return doc
    if "__booster__" in doc:
        return lgb.Booster(model_file=str(folder / doc["__booster__"]))
    if "__ndarray__" in doc:
        return np.asarray(_decode(doc["__ndarray__"], folder), dtype=doc["dtype"])
    if "__dict__" in doc:
        return {k: _decode(v, folder) for k, v in doc["__dict__"].items()}
    if "__tuple__" in doc:
        return tuple(_decode(v, folder) for v in doc["__tuple__"])
    if "__estimator__" in doc:
        module_name, _, qualname = MOVED.get(doc["__estimator__"], doc["__estimator__"]).partition(":")
        if not module_name.startswith(_ALLOWED_PREFIX):
            raise BadInputError(f"model artifact names a class outside nextbest.models: {doc['__estimator__']!r}")
        cls = getattr(importlib.import_module(module_name), qualname)
        obj = cls(**_decode(doc["params"], folder))
        for k, v in _decode(doc["fitted"], folder).items():
            setattr(obj, k, v)
        return obj
    raise BadInputError(f"model artifact has an unknown node {sorted(doc)}")


def save(obj: Any, folder: Path | str) -> Path:
    """Write ``obj`` (estimators, arrays, dicts, scalars) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writer = _Writer()
    doc = {"format": FORMAT_VERSION, "root": writer.encode(obj)}
    for name, text in writer.boosters.items():
        (folder / name).write_text(text)
    (folder / "model.json").write_text(json.dumps(doc, indent=1))
    return folder


def load(folder: Path | str) -> Any:
    """Read back what :func:`save` wrote."""
    folder = Path(folder)
    path = folder / "model.json"
    if not path.exists():
        raise BadInputError(f"{folder} is not a nextbest model artifact (no model.json)")
    doc = json.loads(path.read_text())
    if doc.get("format") != FORMAT_VERSION:
        raise BadInputError(f"{path}: artifact format {doc.get('format')!r}; this nextbest reads {FORMAT_VERSION}")
    return _decode(doc["root"], folder)
