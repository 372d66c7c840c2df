"""Logging set-up of the ``s1tiling`` command, as S1Tiling's default ``logging.conf.yaml``.

``[Processing] mode``: ``Normal`` -> INFO messages on stdout (``LEVEL - message``); ``debug`` ->
DEBUG; ``logging`` -> also, in the current directory, ``S1Processor-main.log`` (or
``S1Processor-main.debug.log`` in debug mode: everything) and ``S1Processor-main.warning.log``
(warnings and errors), and the same per dask worker (``S1Processor-worker-<n>...``, see
:func:`install_worker_logs`); files are overwritten by the next run, as S1Tiling's.

A ``logging.conf.yaml`` (dictConfig, needs PyYAML) or ``logging.conf`` (fileConfig) placed next
to the request file replaces this set-up. As in S1Tiling, the ``{kind}`` (``main``, or
``worker-<n>``) and ``{mode}`` (``.debug`` or nothing) placeholders of its file names are filled,
``debug`` forces the root level (and the ``console`` handler) to DEBUG, and ``logging`` adds its
``file`` and ``important`` handlers to the root logger. Credentials that slip into a message
(``password=...``, ``user:secret@host``) are masked by our handlers.
"""
from __future__ import annotations

import copy
import logging
import logging.config
import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Settings

_CONSOLE_FORMAT = "%(levelname)s - %(message)s"
_DETAILED_FORMAT = "%(asctime)s - %(levelname)s - %(name)s - %(message)s"
_OWN_HANDLERS: list[logging.Handler] = []


class _RedactCredentials(logging.Filter):
    """Masks secrets in formatted messages."""

    _SECRETS = (
        (re.compile(r"(?i)\b(password|passwd|pwd|api_?key|token|secret|totp|aws_secret_access_key)"
                    r"(['\"]?\s*[:=]\s*)(['\"]?)[^\s,;'\"}]+"), r"\1\2\3***"),
        (re.compile(r"(://[^/\s:@]+:)[^@\s/]+@"), r"\1***@"),
    )

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = original = record.getMessage()
        except Exception:  # a malformed record is reported by the handler itself
            return True
        for pattern, replacement in self._SECRETS:
            message = pattern.sub(replacement, message)
        if message != original:
            record.msg, record.args = message, ()
        return True


#: S1Tiling's log file names: ``{kind}`` is ``main`` or ``worker-<n>``, ``{mode}`` ``.debug`` or nothing
LOG_FILE = "S1Processor-{kind}{mode}.log"
WARNING_LOG_FILE = "S1Processor-{kind}.warning.log"


class _ConsoleHandler(logging.StreamHandler):
    """Writes to the current ``sys.stdout`` (S1Tiling's console; it may be redirected after set-up)."""

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, _value):
        pass


def _install(handler: logging.Handler, level: int, fmt: str) -> None:
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(fmt))
    handler.addFilter(_RedactCredentials())
    logging.getLogger().addHandler(handler)
    _OWN_HANDLERS.append(handler)


def reset_logging() -> None:
    """Removes and closes the handlers installed by :func:`setup_logging`."""
    root = logging.getLogger()
    while _OWN_HANDLERS:
        handler = _OWN_HANDLERS.pop()
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.WARNING)


def _fill_placeholders(config: dict, debug: bool, to_files: bool, kind: str = "main") -> dict:
    """A dictConfig from S1Tiling's ``logging.conf.yaml``, made for a run as S1Tiling does: file
    names' ``{kind}`` and ``{mode}`` filled, DEBUG forced in debug mode, the ``file`` and
    ``important`` handlers on the root logger when logging to files."""
    config = copy.deepcopy(config)
    handlers = config.get("handlers") or {}
    for handler in handlers.values():
        if isinstance(handler, dict) and isinstance(handler.get("filename"), str):
            handler["filename"] = handler["filename"].replace("{mode}", ".debug" if debug else "").replace(
                "{kind}", kind)
    root = config.setdefault("root", {})
    if debug:
        root["level"] = "DEBUG"
        if isinstance(handlers.get("console"), dict):
            handlers["console"]["level"] = "DEBUG"
        if to_files and isinstance(handlers.get("file"), dict):
            handlers["file"]["level"] = "DEBUG"
    if to_files:
        root_handlers = root.setdefault("handlers", [])
        for name in ("file", "important"):
            if name in handlers and name not in root_handlers:
                root_handlers.append(name)
    return config


def _user_config(config_dir: Path, debug: bool = False, to_files: bool = False) -> bool:
    """Applies a logging configuration file found next to the request file, if any."""
    yaml_file, ini_file = config_dir / "logging.conf.yaml", config_dir / "logging.conf"
    if yaml_file.is_file():
        try:
            import yaml
        except ImportError:
            logging.getLogger(__name__).warning("%s ignored: PyYAML is not installed", yaml_file)
        else:
            with open(yaml_file, encoding="utf-8") as stream:
                logging.config.dictConfig(_fill_placeholders(yaml.safe_load(stream) or {}, debug, to_files))
            return True
    if ini_file.is_file():
        logging.config.fileConfig(ini_file, disable_existing_loggers=False)
        return True
    return False


def setup_logging(settings: Settings | None = None, files: bool = True) -> list[Path]:
    """Configures logging for a run; without settings, INFO messages to stderr only.

    Returns the log files opened (empty unless mode has ``logging``; none with ``files`` False:
    ``--dry-run`` writes nothing).
    """
    reset_logging()
    root = logging.getLogger()
    if settings is None:
        root.setLevel(logging.INFO)
        _install(_ConsoleHandler(), logging.INFO, _CONSOLE_FORMAT)
        return []

    mode = settings.processing.mode
    debug = "debug" in mode
    level = logging.DEBUG if debug else logging.INFO
    if debug and settings.processing.engine == "otb":
        os.environ["OTB_LOGGER_LEVEL"] = "DEBUG"
    if files and _user_config(settings.config_dir, debug, "logging" in mode):  # it may open log files: not in a dry run
        if debug:
            root.setLevel(logging.DEBUG)
        return []

    root.setLevel(level)
    _install(_ConsoleHandler(), level, _DETAILED_FORMAT if debug else _CONSOLE_FORMAT)
    if "logging" not in mode or not files:
        return []
    return _install_files(Path.cwd(), "main", debug, _OWN_HANDLERS)


def _install_files(directory: Path, kind: str, debug: bool, keep: list) -> list[Path]:
    """S1Tiling's two log files of ``kind`` in ``directory`` (overwritten), on the root logger."""
    level = logging.DEBUG if debug else logging.INFO
    files = [directory / LOG_FILE.format(kind=kind, mode=".debug" if debug else ""),
             directory / WARNING_LOG_FILE.format(kind=kind)]
    for path, file_level in zip(files, (level, logging.WARNING)):
        handler = logging.FileHandler(path, mode="w", encoding="utf-8")
        handler.setLevel(file_level)
        handler.setFormatter(logging.Formatter(_DETAILED_FORMAT))
        handler.addFilter(_RedactCredentials())
        logging.getLogger().addHandler(handler)
        keep.append(handler)
    return files


_WORKER_HANDLERS: list[logging.Handler] = []


def install_worker_logs(directory: str, index: int, debug: bool) -> list[str]:
    """In a dask worker: S1Tiling's ``S1Processor-worker-<index>[.debug].log`` and
    ``...warning.log`` in ``directory`` (run by the pipeline on each worker when ``mode`` has
    ``logging``); idempotent per worker process."""
    root = logging.getLogger()
    while _WORKER_HANDLERS:
        handler = _WORKER_HANDLERS.pop()
        root.removeHandler(handler)
        handler.close()
    files = _install_files(Path(directory), f"worker-{index}", debug, _WORKER_HANDLERS)
    logging.getLogger("s1tiling").setLevel(logging.DEBUG if debug else logging.INFO)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.DEBUG if debug else logging.INFO)
    return [str(f) for f in files]


class _Collector(logging.Handler):
    """Keeps the records logged while the request file is read, before the log files exist."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def start_collecting() -> _Collector:
    """Collect the records of the ``s1tiling`` loggers (see :func:`replay_into_files`)."""
    collector = _Collector()
    logging.getLogger("s1tiling").addHandler(collector)
    return collector


def replay_into_files(collector: _Collector) -> None:
    """Stop collecting; the collected records go to the log files installed since (the console
    showed them already)."""
    logging.getLogger("s1tiling").removeHandler(collector)
    files = [h for h in _OWN_HANDLERS if isinstance(h, logging.FileHandler)]
    for record in collector.records:
        for handler in files:
            if record.levelno >= handler.level:
                handler.handle(record)
