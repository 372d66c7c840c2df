"""Logging set-up of the ``s1tiling`` command.

``[Processing] mode``: ``Normal`` -> INFO on stderr; ``debug`` -> DEBUG;
``logging`` -> also ``{output}/S1Tiling-<stamp>.log`` (everything) and
``{output}/S1Tiling-<stamp>-errors.log`` (warnings and errors).

A ``logging.conf.yaml`` (dictConfig, needs PyYAML) or ``logging.conf``
(fileConfig) placed next to the request file replaces this set-up; ``debug``
still forces the root level to DEBUG.  Credentials that slip into a message
(``password=...``, ``user:secret@host``) are masked by our handlers.
"""
from __future__ import annotations

import datetime
import logging
import logging.config
import os
import re
import sys
from pathlib import Path

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


class _ConsoleHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` (which may be redirected after set-up)."""

    @property
    def stream(self):
        return sys.stderr

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


def _user_config(config_dir: Path) -> bool:
    """Applies a logging configuration file found next to the request file, if any."""
    yaml_file, ini_file = config_dir / "logging.conf.yaml", config_dir / "logging.conf"
    if yaml_file.is_file():
        try:
            import yaml
        except ImportError:
            logging.getLogger(__name__).warning("%s ignored: PyYAML is not installed", yaml_file)
        else:
            with open(yaml_file, encoding="utf-8") as stream:
                logging.config.dictConfig(yaml.safe_load(stream))
            return True
    if ini_file.is_file():
        logging.config.fileConfig(ini_file, disable_existing_loggers=False)
        return True
    return False


def setup_logging(settings=None, files: bool = True) -> list[Path]:
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
    if files and _user_config(settings.config_dir):  # it may open log files: not in a dry run
        if debug:
            root.setLevel(logging.DEBUG)
        return []

    root.setLevel(level)
    _install(_ConsoleHandler(), level, _DETAILED_FORMAT if debug else _CONSOLE_FORMAT)
    if "logging" not in mode or not files:
        return []
    stamp = f"{datetime.datetime.now():%Y%m%dT%H%M%S}-{os.getpid()}"
    output = settings.paths.output
    files = [output / f"S1Tiling-{stamp}.log", output / f"S1Tiling-{stamp}-errors.log"]
    _install(logging.FileHandler(files[0], encoding="utf-8"), level, _DETAILED_FORMAT)
    _install(logging.FileHandler(files[1], encoding="utf-8"), logging.WARNING, _DETAILED_FORMAT)
    return files
