"""Libraries' messages go to a log file of the workspace; nextbest's own stay on screen.

MLflow, Alembic, Optuna and other libraries log and warn about things a
nextbest user cannot act on (how MLflow pickles a model, the pip version it
could not resolve, its database migrations). The CLI and the service's workers
send those to ``<workspace>/logs/nextbest.log``, and the CLI says where, once, at
the end of a command that wrote something there. What stays on screen:

- nextbest's progress and results (they are printed, not logged);
- records of nextbest's own loggers (``nextbest.*``) at WARNING and above;
- Python warnings raised in nextbest's own code (a library's warning whose
  ``stacklevel`` points into nextbest counts as ours: our call caused it).

MLflow's "Downloading artifacts" progress bar, drawn on every model load, is
switched off through its setting ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``
(left alone when the user set it; inherited by the processes a command starts).

Child processes whose output is a library's (Spark's driver JVM) get the log file
as their output (:func:`open_for_child`).

Scripts (``benchmarks/``) print their figures on stdout and route library output
the same way, into a log of their own under the temporary directory
(:func:`route_script_output`); the pointer goes to stderr when they exit.

MLflow configures its loggers and its print stream when it is first imported,
and commands import it lazily (it is slow to import), so the re-routing of a
library is applied when the library is imported, through a small import hook.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import logging
import logging.handlers
import os
import sys
import sysconfig
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO, TextIO

#: Where library messages go, relative to the workspace (``Workspace.log_path``).
LOG_FILE = Path("logs") / "nextbest.log"
PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"

#: Library loggers that configure their own handlers (to stderr) and stop propagation;
#: they are pointed at the file instead. Levels: MLflow's INFO lines (migrations,
#: uv/pip resolution) are kept in the file, the others from WARNING.
_LIBRARY_LEVELS: dict[str, int] = {
    "mlflow": logging.INFO,
    "alembic": logging.WARNING,
    "huey": logging.WARNING,
    "optuna": logging.WARNING,
    "lightgbm": logging.WARNING,
}


class LibraryLogHandler(logging.handlers.WatchedFileHandler):
    """Appends to the log file, created (with its folder) on the first record only.

    A watched file: should the workspace be wiped while the command runs
    (``nextbest demo --fresh``), the next record opens the file anew.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(path, encoding="utf-8", delay=True)
        self.path = path
        self.records = 0
        self.setFormatter(logging.Formatter(_FORMAT))

    def _open(self) -> TextIO:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return super()._open()

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        super().emit(record)


class _StreamToLog:
    """A text stream writing each line as a record (MLflow prints some messages instead of logging them)."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.enabled = True  # MLflow's own stream has this switch; keep it working

    def write(self, text: str) -> int:
        if self.enabled and text.strip():
            self.logger.info(text.rstrip())
        return len(text)

    def flush(self) -> None:
        pass


_handler: LibraryLogHandler | None = None
_ours: tuple[str, ...] = ()
_show_warning = warnings.showwarning


def route_library_output(workspace_root: Path, *, root_logger: bool = True) -> LibraryLogHandler:
    """Send library messages to ``<workspace_root>/logs/nextbest.log``; returns the handler.

    Parameters
    ----------
    workspace_root
        The workspace folder.
    root_logger
        Also send every other library's records to the file, through the root
        logger (the CLI). A server passes False: its root logger is the server's
        log, configured by BentoML.

    Calling again (another workspace) moves the file; nothing is added twice.
    """
    global _handler, _ours
    os.environ.setdefault(PROGRESS_BAR_ENV, "false")
    path = Path(workspace_root) / LOG_FILE
    if _handler is not None and _handler.path == path:
        return _handler
    old, _handler = _handler, LibraryLogHandler(path)
    if old is not None:
        old.close()
    _ours = _our_folders()
    for name, level in _LIBRARY_LEVELS.items():
        _to_file(logging.getLogger(name), level)
    _to_file(logging.getLogger("py.warnings"), logging.WARNING)
    if root_logger:
        root = logging.getLogger()
        if old is not None and old in root.handlers:
            root.removeHandler(old)
        root.addHandler(_handler)
        root.setLevel(logging.WARNING)
        # Our own loggers keep the screen: WARNING and above to stderr, as Python's
        # fallback printed them before the root logger had a handler.
        own = logging.getLogger("nextbest")
        if not own.handlers:
            screen = logging.StreamHandler()
            screen.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
            own.addHandler(screen)
        own.propagate = False
    warnings.showwarning = _show_or_log
    _after_import("mlflow", _route_mlflow)
    _after_import("optuna", _route_optuna)
    return _handler


def route_script_output(script: str | Path) -> Path:
    """:func:`route_library_output` for a script run outside any workspace (a benchmark).

    The log goes to ``<tmp>/nextbest-scripts/<script>-<time>-<pid>/logs/nextbest.log``,
    where it outlives the temporary workspaces scripts build and delete; when the
    script exits, the :func:`pointer` line goes to stderr (stdout keeps the script's
    figures). Returns the log file's path (created on the first record only).
    """
    stamp = time.strftime("%Y%m%d-%H%M%S")
    root = Path(tempfile.gettempdir()) / "nextbest-scripts" / f"{Path(script).stem}-{stamp}-{os.getpid()}"
    handler = route_library_output(root)
    atexit.register(_point_to_log)
    return handler.path


def _point_to_log() -> None:
    line = pointer()
    if line is not None:
        print(line, file=sys.stderr)


def routed_root() -> Path | None:
    """The folder whose ``logs/nextbest.log`` receives library output (``None``: not routed).

    A worker process started with ``spawn`` passes it to :func:`route_library_output`
    to write into the same file as its parent.
    """
    return _handler.path.parent.parent if _handler is not None else None


def written() -> Path | None:
    """The log file, if this process wrote to it."""
    return _handler.path if _handler is not None and _handler.records else None


def open_for_child(name: str) -> BinaryIO | None:
    """The log file, open for appending, to be a child process's stderr (and stdout); ``None`` when
    library output is not routed (the child then shares this process's streams).

    A record names the child first (``name``), so the CLI's pointer names the file. The
    caller closes the file once the child has started: the child keeps its own descriptor,
    and its lines interleave with the handler's (both append).
    """
    if _handler is None:
        return None
    _handler.handle(logging.makeLogRecord({"name": name, "levelno": logging.INFO, "levelname": "INFO",
                                           "msg": "%s's output follows in this file", "args": (name,)}))
    return open(_handler.path, "ab")  # noqa: SIM115 (closed by the caller once the child runs)


def pointer() -> str | None:
    """The one line the CLI prints when library messages were written (a relative path when shorter)."""
    path = written()
    if path is None:
        return None
    try:
        shown = path.relative_to(Path.cwd())
    except ValueError:
        shown = path
    return f"library messages: {shown}"


def _to_file(logger: logging.Logger, level: int) -> None:
    assert _handler is not None
    logger.handlers = [_handler]
    logger.setLevel(level)
    logger.propagate = False


def _our_folders() -> tuple[str, ...]:
    """Folders of nextbest's code: the installed package, or an editable checkout (outside the library paths)."""
    import nextbest

    return (str(Path(nextbest.__file__).resolve().parent) + os.sep,)


def _library_paths() -> tuple[str, ...]:
    paths = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    return tuple(str(Path(p).resolve()) + os.sep for p in paths)


def is_ours(filename: str) -> bool:
    """Whether a warning raised at ``filename`` comes from nextbest's code."""
    try:
        resolved = str(Path(filename).resolve())
    except (OSError, ValueError):
        return False
    if resolved.startswith(_ours or _our_folders()):
        return True
    # An editable install: the subpackages (serving/, models/, ...) live in the checkout,
    # outside every library folder. Frozen or generated code ("<string>") is not ours.
    return Path(resolved).is_file() and not resolved.startswith(_library_paths())


def _show_or_log(
    message: Warning | str, category: type[Warning], filename: str, lineno: int,
    file: TextIO | None = None, line: str | None = None,
) -> None:
    if file is not None or is_ours(filename):
        _show_warning(message, category, filename, lineno, file, line)
        return
    text = warnings.formatwarning(message, category, filename, lineno, line)
    logging.getLogger("py.warnings").warning("%s", text.rstrip())


def _route_mlflow(mlflow: ModuleType) -> None:
    from mlflow.utils import logging_utils

    for name in ("mlflow", "alembic", "huey"):
        _to_file(logging.getLogger(name), _LIBRARY_LEVELS[name])
    # eprint(): "Successfully registered model ...", "Created version ..."
    logging_utils.MLFLOW_LOGGING_STREAM = _StreamToLog(logging.getLogger("mlflow"))  # type: ignore[assignment]


def _route_optuna(optuna: ModuleType) -> None:
    optuna.logging.disable_default_handler()
    _to_file(logging.getLogger("optuna"), _LIBRARY_LEVELS["optuna"])


# ---------------------------------------------------------------- import hook
_pending: dict[str, Callable[[ModuleType], None]] = {}


def _after_import(name: str, apply: Callable[[ModuleType], None]) -> None:
    """Run ``apply(module)`` now if ``name`` is imported, else right after its import."""
    module = sys.modules.get(name)
    if module is not None:
        apply(module)
        return
    _pending[name] = apply
    if not any(isinstance(f, _AfterImportFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImportFinder())


class _AfterImportFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of a pending module so ``apply`` runs after it executes."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in _pending:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _ThenApply(spec.loader, fullname)
        return spec


class _ThenApply(importlib.abc.Loader):
    def __init__(self, loader: Any, name: str) -> None:
        self.loader = loader
        self.name = name

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        # The module keeps its own loader: tools look loaders up by type.
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        apply = _pending.pop(self.name, None)
        if apply is not None:
            apply(module)

    def __getattr__(self, attr: str) -> Any:  # get_resource_reader, is_package, ...
        return getattr(self.loader, attr)
