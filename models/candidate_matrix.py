"""Scoring candidate rows as float matrices, without a candidate DataFrame.

A candidate row is a customer's features plus a few columns that depend on the
(offer, channel) pair: ``offer_id``, ``channel``, the offer-history columns, the
:class:`~nextbest.models.context.OfferContext` columns and the treatment flag.
:meth:`ResponseModel.score <nextbest.models.response.ResponseModel.score>` builds
that frame row by row and encodes it; for a single customer with ~80 candidate
pairs the pandas work costs a hundred times the LightGBM call.

:class:`CandidateMatrix` splits the work along that line: :meth:`~CandidateMatrix.encode`
turns customers into encoded rows once (the scoring service does it once per
feature snapshot), and :meth:`~CandidateMatrix.score` gathers a row per
candidate, writes the pair's columns into it and hands the rows to the uplift
learner's matrix methods (``predict_outcomes_matrix``, ``predict_contrib_matrix``
in :mod:`nextbest.models.uplift_base`), which run the same trees with the same
arithmetic as its DataFrame methods. The encoders, boosters and calibration map
are the model's own, so probabilities, uplifts and reason codes equal the
DataFrame path's; ``tests/decisioning/test_matrix_scoring.py`` checks it for
every learner (S, T, X, shift, bagged) on generated workspaces.

One encoded customer matrix per distinct encoder. The parts of a learner may
encode differently: the T- and X-learners fit their models on the contacted and
the control rows apart, so a category level seen by one arm only is a code for
one model and missing for the other, and the X-learner's effect regressors are
built without the outcome model's forced categories and defaults. Giving every
part one shared encoder would change what those models learned (a retrain, and
bundles saved before would not benefit), so the learner names the encoders it
reads (``matrix_encoders``) and this class keeps one customer matrix per
*distinct* encoding (same columns, levels and defaults). The S- and shift
learners and bagged ensembles of them read one (each bagged member is fitted on
the same frame, so its encoders are equal to the others'); T and X read one or
two. Candidate rows are gathered per encoding on first use in a call, so each
encoding costs one gather however many models read it.

Only the model shapes it knows are taken (a learner whose matrix methods cover
its DataFrame methods, over encoded LightGBM estimators, with or without an
``OfferContext``): :meth:`CandidateMatrix.of` returns ``None`` for any other
scorer (e.g. the ``per_offer_channel`` strategy's per-group classifier, or a
bundle of an unknown shape), which the engine then scores through its DataFrame.

A long-lived process (the scoring service) may also :meth:`~CandidateMatrix.compile`
every booster the learner predicts with to native code with ``lleaves``
(:class:`CompiledForest`; the shift learner's as raw log-odds): the same trees,
evaluated without LightGBM's per-call overhead, ~5x faster for the few hundred
rows of a request. Probabilities agree with LightGBM's to ~1e-15 (the tree
outputs are summed in another order); compiling checks the learner's outcomes on
sample rows and keeps LightGBM when they do not agree. Reason codes
(``pred_contrib``, TreeSHAP) always come from LightGBM, so the T- and X-learners'
contacted-outcome model that only explains (X) is never compiled.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from nextbest.models.context import OfferContext
from nextbest.models.encoding import FrameEncoder, with_columns
from nextbest.models.response import ResponseModel
from nextbest.models.uplift_base import lightgbm_predict, matrix_encoders_of

log = logging.getLogger(__name__)

#: Largest difference from LightGBM's probability a compiled forest may show on the check rows.
COMPILED_TOLERANCE = 1e-12
#: Objectives whose output transform lleaves reproduces as LightGBM applies it.
_COMPILABLE_OBJECTIVES = ("binary", "regression")

#: Candidate rows gathered per block: bounds the (rows x features) matrices of a large batch.
_BLOCK_ROWS = 65_536


@dataclass(frozen=True)
class EncodedCustomers:
    """Customers encoded for one model: what every candidate row of theirs starts from.

    Attributes
    ----------
    matrices
        One (n, F_k) matrix of encoded customer features per distinct encoding of
        the model (:attr:`CandidateMatrix.layouts` order), in that encoder's column
        order; the candidate columns hold placeholders that scoring overwrites.
    derived
        OfferContext column → (n, O) value per customer and offer (config order).
    """

    matrices: tuple[np.ndarray, ...]
    derived: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.matrices[0])

    def take(self, positions: np.ndarray) -> EncodedCustomers:
        """The customers at ``positions`` (repeats allowed)."""
        return EncodedCustomers(
            tuple(m[positions] for m in self.matrices), {c: v[positions] for c, v in self.derived.items()}
        )

    @classmethod
    def concat(cls, parts: Sequence[EncodedCustomers]) -> EncodedCustomers:
        """The customers of ``parts`` one after the other."""
        return cls(
            tuple(np.concatenate(ms) for ms in zip(*(p.matrices for p in parts), strict=True)),
            {c: np.concatenate([p.derived[c] for p in parts]) for c in parts[0].derived},
        )


def reason_codes(contrib: np.ndarray, names: np.ndarray, top: int) -> list[list[str]]:
    """Top ``top`` contributions by magnitude per row, as ``"feature:+0.41"`` (zeros left out).

    ``contrib`` holds one column per name in ``names`` (no bias, no treatment),
    as :meth:`ResponseModel.reasons <nextbest.models.response.ResponseModel.reasons>` ranks them.
    """
    k = min(top, contrib.shape[1])
    order = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(contrib, order, axis=1)
    return [
        [f"{names[j]}:{v:+.2f}" for j, v in zip(row_idx, row_val, strict=True) if v != 0.0]
        for row_idx, row_val in zip(order.tolist(), picked.tolist(), strict=True)
    ]


@dataclass(frozen=True)
class CustomerEncoder:
    """Encodes customers for one scorer's matrix path, candidate rows carrying ``offer_history_columns``.

    What :class:`~nextbest.decisioning.prepared.PreparedCustomers` calls: the whole
    frame (:meth:`__call__`), or a few numeric columns changed (:meth:`with_numbers`).
    """

    matrix: CandidateMatrix
    offer_history_columns: tuple[str, ...] = ()

    def __call__(self, features: pd.DataFrame) -> EncodedCustomers:
        return self.matrix.encode(features, self.offer_history_columns)

    def with_numbers(
        self, customers: EncodedCustomers, rows: np.ndarray, values: Mapping[str, np.ndarray]
    ) -> EncodedCustomers | None:
        """:meth:`CandidateMatrix.with_numbers` for these candidate rows."""
        return self.matrix.with_numbers(customers, rows, values, self.offer_history_columns)


class CompiledForest:
    """A LightGBM booster compiled to native code by ``lleaves``; build with :meth:`build`.

    Parameters
    ----------
    model
        The compiled ``lleaves.Model``.
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """What ``Booster.predict(matrix)`` gives (probability for a binary objective), in this thread."""
        # One thread: a request's few hundred rows are done before a pool would have started.
        return self.model.predict(matrix, n_jobs=1)  # type: ignore[no-any-return]

    @classmethod
    def build(
        cls, booster: lgb.Booster, num_iteration: int | None, cache_dir: Path | None = None, raw_score: bool = False,
    ) -> CompiledForest:
        """Compile ``booster``'s first ``num_iteration`` iterations (all when ``None``).

        ``raw_score`` compiles the sum of the trees without the objective's output
        transform (``Booster.predict(raw_score=True)``).

        ``cache_dir`` keeps the object code, named by a hash of the model text, the
        compiler versions and this host's CPU, so the next start (or another worker)
        loads it instead of compiling for seconds.

        Raises
        ------
        ImportError
            When ``lleaves`` (or its ``llvmlite``) is not installed.
        ValueError
            When the objective is not one lleaves reproduces.
        """
        import lleaves  # noqa: PLC0415 - optional, and llvmlite takes a while to import
        import llvmlite.binding as llvm  # noqa: PLC0415

        objective = str(booster.params.get("objective", ""))
        if objective not in _COMPILABLE_OBJECTIVES:
            raise ValueError(f"objective {objective!r} is not compiled; LightGBM predicts it")
        text = booster.model_to_string(num_iteration=num_iteration)
        with tempfile.TemporaryDirectory(prefix="nextbest-forest-") as tmp:
            model_file = Path(tmp) / "model.txt"
            model_file.write_text(text)
            model = lleaves.Model(model_file=str(model_file))
            cache = None
            if cache_dir is not None:
                llvm.initialize()
                llvm.initialize_native_target()
                try:
                    features = llvm.get_host_cpu_features().flatten()
                except RuntimeError:
                    features = ""
                # Object code is native to this CPU and compiler: all of them name the file.
                key = "\n".join([
                    text, metadata.version("lleaves"), metadata.version("llvmlite"), platform.machine(),
                    llvm.get_process_triple(), llvm.get_host_cpu_name(), features,
                    *(["raw_score"] if raw_score else []),
                ])
                cache = cache_dir / f"forest-{hashlib.sha256(key.encode()).hexdigest()[:24]}.o"
            if cache is not None and cache.exists():
                model.compile(cache=str(cache), raw_score=raw_score)
            elif cache is not None:
                cache_dir.mkdir(parents=True, exist_ok=True)  # type: ignore[union-attr]
                # Written under a private name and renamed: another worker may be loading it meanwhile.
                partial = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
                model.compile(cache=str(partial), raw_score=raw_score)
                os.replace(partial, cache)
            else:
                model.compile(raw_score=raw_score)
        return cls(model)


def _encoding_key(encoder: FrameEncoder) -> tuple[object, ...]:
    """What decides how ``encoder`` encodes a frame: columns, category levels, defaults."""
    return (
        tuple(map(str, encoder.feature_names_in_)),
        tuple(sorted((str(c), tuple(v)) for c, v in encoder.categories_.items())),
        tuple(sorted((encoder.defaults or {}).items())),
    )


class _Layout:
    """Where one encoding puts the candidate columns, and the codes it gives offers and channels."""

    def __init__(
        self, encoder: FrameEncoder, offer_ids: Sequence[str], channel_ids: Sequence[str], derived: Sequence[str],
    ) -> None:
        self.encoder = encoder
        self.names = [str(c) for c in encoder.feature_names_in_]
        self.position = {c: i for i, c in enumerate(self.names)}
        levels = encoder._levels()

        def codes(column: str, ids: Sequence[str]) -> tuple[int | None, np.ndarray | None]:
            if column not in self.position or column not in levels:
                return None, None
            c = levels[column].codes(np.asarray(list(ids), dtype=object))
            return self.position[column], np.where(c < 0, np.nan, c).astype(float)

        self.offer_col, self.offer_code = codes("offer_id", offer_ids)
        self.channel_col, self.channel_code = codes("channel", channel_ids)
        self.derived_cols = {c: self.position[c] for c in derived if c in self.position}

    def rows(
        self, customers: np.ndarray, derived: Mapping[str, np.ndarray], cust: np.ndarray, offer: np.ndarray,
        channel: np.ndarray, offer_history: Mapping[str, np.ndarray],
    ) -> np.ndarray:
        """Candidate rows from this encoding's customer matrix (treatment column left as encoded)."""
        m = customers[cust]
        if self.offer_col is not None:
            m[:, self.offer_col] = self.offer_code[offer]  # type: ignore[index]
        if self.channel_col is not None:
            m[:, self.channel_col] = self.channel_code[channel]  # type: ignore[index]
        for column, i in self.derived_cols.items():
            m[:, i] = derived[column][cust, offer]
        for column, values in offer_history.items():
            i = self.position.get(column)
            if i is not None:
                m[:, i] = values
        return m


class CandidateMatrix:
    """Matrix-level scoring of one :class:`ResponseModel`; build with :meth:`of`.

    Parameters
    ----------
    model
        A fitted response model whose uplift learner has a matrix path
        (:func:`~nextbest.models.uplift_base.matrix_encoders_of` is not ``None``).
    offer_ids, channel_ids
        Offers and channels in config order (candidate rows name them by position).

    Attributes
    ----------
    layouts : list of the distinct encodings the learner reads (one customer matrix each).
    compiled : ``None`` (LightGBM predicts) or the compiled forests by model, set by :meth:`compile`.
    """

    def __init__(self, model: ResponseModel, offer_ids: Sequence[str], channel_ids: Sequence[str]) -> None:
        self.model = model
        self.learner = model.learner_
        self.calibrator = model.calibrator_
        self.context: OfferContext | None = getattr(model, "context_", None)
        self.offer_ids = list(offer_ids)
        self.n_channels = len(channel_ids)
        derived = list(self.context.outputs_) if self.context is not None else []
        encoders = matrix_encoders_of(self.learner)
        if not encoders:
            raise ValueError(f"{type(self.learner).__name__} has no matrix path; use CandidateMatrix.of")
        keys: dict[tuple[object, ...], int] = {}
        #: id(encoder) → its layout's position: the learner asks for rows by its own encoder objects.
        self._layout_of: dict[int, int] = {}
        self.layouts: list[_Layout] = []
        for encoder in encoders:
            k = keys.setdefault(_encoding_key(encoder), len(keys))
            if k == len(self.layouts):
                self.layouts.append(_Layout(encoder, offer_ids, channel_ids, derived))
            self._layout_of[id(encoder)] = k
        self.derived_cols = [c for c in derived if any(c in lay.position for lay in self.layouts)]
        self.treatment_column = self.learner.treatment_column
        self.compiled: dict[tuple[int, bool], CompiledForest] | None = None

    @classmethod
    def of(cls, scorer: object, offer_ids: Sequence[str], channel_ids: Sequence[str]) -> CandidateMatrix | None:
        """The matrix scorer of ``scorer``, or ``None`` when its shape is not one this module reproduces."""
        if type(scorer) is not ResponseModel:
            return None
        encoders = matrix_encoders_of(getattr(scorer, "learner_", None))
        if not encoders:
            return None
        context = getattr(scorer, "context_", None)
        # offer_table derives every output transform does (one derivation), so any OfferContext will do.
        if context is not None and type(context) is not OfferContext:
            return None
        for encoder in encoders:
            for column in ("offer_id", "channel"):
                # A pair column the encoder reads as a number would need the DataFrame's conversion.
                if column in set(map(str, encoder.feature_names_in_)) and column not in encoder.categories_:
                    return None
        return cls(scorer, offer_ids, channel_ids)

    # ------------------------------------------------------------------ compiled trees
    def compile(self, check: EncodedCustomers, cache_dir: Path | None = None, check_rows: int = 2000) -> bool:
        """Predict through :class:`CompiledForest`\\ s from now on, if they match LightGBM on ``check``.

        Every tree model the learner predicts with is compiled (as it reads it:
        probability or raw score). The check scores candidate rows of the first
        customers of ``check`` (every offer and channel, both outcomes) both ways;
        beyond :data:`COMPILED_TOLERANCE` apart, or when lleaves is missing or
        fails, LightGBM keeps predicting and a warning says why.

        Returns
        -------
        bool
            Whether the compiled forests are now in use.
        """
        forests: dict[tuple[int, bool], CompiledForest] = {}
        try:
            for model, raw_score in self.learner.matrix_models():
                if (id(model), raw_score) not in forests:
                    booster = model.booster_
                    forests[id(model), raw_score] = CompiledForest.build(
                        booster, booster.best_iteration or None, cache_dir, raw_score=raw_score
                    )
        except Exception as exc:  # noqa: BLE001 - any failure leaves LightGBM predicting, as before
            log.warning("tree model not compiled (%s: %s); LightGBM predicts", type(exc).__name__, exc)
            return False
        n_pairs = max(len(self.offer_ids) * self.n_channels, 1)
        k = max(1, min(len(check), check_rows // n_pairs))
        cust = np.repeat(np.arange(k), n_pairs)
        pair = np.tile(np.arange(n_pairs), k)
        rows = self._rows(check, cust, pair // self.n_channels, pair % self.n_channels, {})
        ours = self.learner.predict_outcomes_matrix(rows, self._predictor(forests))
        theirs = self.learner.predict_outcomes_matrix(rows, lightgbm_predict)
        gap = max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(ours, theirs, strict=True))
        if not gap <= COMPILED_TOLERANCE:
            log.warning("compiled tree model differs from LightGBM by %.3g; LightGBM predicts", gap)
            return False
        self.compiled = forests
        return True

    @staticmethod
    def _predictor(forests: Mapping[tuple[int, bool], CompiledForest]) -> Any:
        def predict(model: Any, matrix: np.ndarray, raw_score: bool) -> np.ndarray:
            forest = forests.get((id(model), raw_score))
            return forest.predict(matrix) if forest is not None else lightgbm_predict(model, matrix, raw_score)

        return predict

    def _predict(self) -> Any:
        return self._predictor(self.compiled) if self.compiled is not None else lightgbm_predict

    # ------------------------------------------------------------------ customers
    def pair_columns(self, offer_history_columns: Sequence[str]) -> list[str]:
        """Columns a candidate row takes from its pair rather than its customer."""
        pair = ["offer_id", "channel", self.treatment_column, *self.derived_cols, *offer_history_columns]
        read = {c for lay in self.layouts for c in lay.position}
        return [c for c in dict.fromkeys(pair) if c in read]

    def encode(self, features: pd.DataFrame, offer_history_columns: Sequence[str] = ()) -> EncodedCustomers:
        """Encode customer feature rows (``customer_id`` + features, as the engine gets them).

        ``offer_history_columns`` are the offer-history columns candidate rows will
        carry (they then override a customer column of the same name, as in the
        engine's candidate frame).
        """
        n = len(features)
        placeholders = {c: np.full(n, np.nan) for c in self.pair_columns(offer_history_columns)}
        # The encoders read every model column by name: the pair's get NaN here and their values per row.
        frame = with_columns(features.drop(columns=[c for c in placeholders if c in features.columns]), placeholders)
        matrices = tuple(lay.encoder.transform(frame) for lay in self.layouts)
        derived = self.context.offer_table(features, self.offer_ids) if self.context is not None else {}
        return EncodedCustomers(matrices, {c: derived[c] for c in self.derived_cols})

    def with_numbers(
        self, customers: EncodedCustomers, rows: np.ndarray, values: Mapping[str, np.ndarray],
        offer_history_columns: Sequence[str] = (),
    ) -> EncodedCustomers | None:
        """``customers`` with numeric feature columns set to ``values`` (column → one value per row of
        ``rows``): what :meth:`encode` gives the changed rows, without building their frame.

        The encoders copy a numeric column as it is, so the values go straight into the
        matrices. ``None`` when a column is encoded otherwise (a category), is a pair
        column, or may feed a derived column: then only :meth:`encode` knows.
        """
        pair = set(self.pair_columns(offer_history_columns))
        if any(c in pair or (self.context is not None and self.context.reads(c)) for c in values):
            return None
        matrices = []
        for layout, matrix in zip(self.layouts, customers.matrices, strict=True):
            if any(c in layout.encoder.categories_ for c in values):
                return None
            matrix = matrix.copy()
            for column, v in values.items():
                i = layout.position.get(column)
                if i is not None:
                    matrix[rows, i] = v
            matrices.append(matrix)
        return EncodedCustomers(tuple(matrices), customers.derived)

    # ------------------------------------------------------------------ candidates
    def _rows(
        self, customers: EncodedCustomers, cust: np.ndarray, offer: np.ndarray, channel: np.ndarray,
        offer_history: Mapping[str, np.ndarray],
    ) -> Any:
        """The learner's ``rows(encoder)``: candidate rows per encoding, gathered on first use."""
        built: dict[int, np.ndarray] = {}

        def rows(encoder: FrameEncoder) -> np.ndarray:
            k = self._layout_of[id(encoder)]
            m = built.get(k)
            if m is None:
                m = self.layouts[k].rows(customers.matrices[k], customers.derived, cust, offer, channel, offer_history)
                m.flags.writeable = False  # shared by every model of this encoding
                built[k] = m
            return m

        return rows

    def score(
        self, customers: EncodedCustomers, cust: np.ndarray, offer: np.ndarray, channel: np.ndarray,
        offer_history: Mapping[str, np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated ``(p_contact, uplift)`` of candidate rows: customer ``cust`` with pair ``(offer, channel)``.

        ``offer_history`` maps offer-history columns to their value per row.
        """
        n = len(cust)
        p1, p0 = np.empty(n), np.empty(n)
        predict = self._predict()
        for start in range(0, n, _BLOCK_ROWS):
            rows = slice(start, min(start + _BLOCK_ROWS, n))
            history = {c: v[rows] for c, v in offer_history.items()}
            raw1, raw0 = self.learner.predict_outcomes_matrix(
                self._rows(customers, cust[rows], offer[rows], channel[rows], history), predict
            )
            # The calibration map is elementwise: one call maps both arms.
            both = self.calibrator.transform(np.concatenate([raw1, raw0]))
            k = len(raw1)
            p1[rows], p0[rows] = both[:k], both[k:]
        return p1, p1 - p0

    def reasons(
        self, customers: EncodedCustomers, cust: np.ndarray, offer: np.ndarray, channel: np.ndarray,
        offer_history: Mapping[str, np.ndarray], top: int = 3,
    ) -> list[list[str]]:
        """Reason codes of candidate rows, as :meth:`ResponseModel.reasons` gives them (LightGBM's TreeSHAP)."""
        if len(cust) == 0:
            return []
        contrib, names = self.learner.predict_contrib_matrix(self._rows(customers, cust, offer, channel, offer_history))
        keep = np.flatnonzero(names != "bias")
        return reason_codes(contrib[:, keep], names[keep], top)
