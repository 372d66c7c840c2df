"""The EODAG gateway, configured only from the user's own EODAG file (providers, credentials)."""
from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError

if TYPE_CHECKING:  # eodag is imported when a gateway is opened
    from eodag import EODataAccessGateway

#: EODAG's name of the Sentinel-1 Level-1 GRD collection, the same for every provider.
COLLECTION = "S1_SAR_GRD"

_SECRET_NAMES = r"(?:password|passwd|pwd|token|access_token|refresh_token|apikey|api_key|key|secret|" \
                r"client_secret|aws_secret_access_key|aws_session_token|totp|signature|sig|" \
                r"x-amz-signature|x-amz-credential|x-amz-security-token)"
_SECRETS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # URL query parameters: ...?token=abc&... (some providers authenticate that way)
    (re.compile(rf"([?&;]{_SECRET_NAMES}=)[^&#\s'\"]+", re.IGNORECASE), r"\1***"),
    # mappings and headers: 'password': 'a b', password=abc, "apikey": "abc"
    (re.compile(rf"(['\"]?\b{_SECRET_NAMES}['\"]?\s*[:=]\s*)(?:(['\"]).*?\2|[^'\",\s}}&]+)", re.IGNORECASE),
     lambda m: f"{m.group(1)}{m.group(2) or ''}***{m.group(2) or ''}"),
    (re.compile(r"\b(Basic|Bearer)\s+[A-Za-z0-9._~+/=-]+"), r"\1 ***"),
]


def redact(text: str) -> str:
    """``text`` with what looks like a credential (URL token, password entry, auth header) masked."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class _RedactingFilter(logging.Filter):
    """Masks credentials in the records of a logger (message and traceback)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is logging's business, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        return True


_FILTER = _RedactingFilter()


def protect_logs() -> None:
    """Install the credential mask on EODAG's loggers and this package's (idempotent).

    EODAG logs request URLs and tracebacks; with providers that pass a token in the URL
    those could show it. Filters act per logger, so each existing one gets it.
    """
    prefixes = ("eodag", "s1tiling.download")
    names = [n for n in logging.root.manager.loggerDict if n.startswith(prefixes)]
    for name in {*names, *prefixes}:
        target = logging.getLogger(name)
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)


def is_transient(error: BaseException | None) -> bool:
    """HTTP 5xx/429, timeouts and broken connections, anywhere in the exception chain."""
    import requests

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, (requests.Timeout, requests.ConnectionError,
                              requests.exceptions.ChunkedEncodingError, TimeoutError, ConnectionError)):
            return True
        status = getattr(error, "status_code", None) or getattr(getattr(error, "response", None),
                                                                 "status_code", None)
        if isinstance(status, int) and (status >= 500 or status == 429):
            return True
        if type(error).__name__ == "TimeOutError":  # eodag.utils.exceptions.TimeOutError
            return True
        error = error.__cause__ or error.__context__
    return False


def open_gateway(eodag_config: Path | None = None) -> EODataAccessGateway:
    """An ``EODataAccessGateway`` reading ``eodag_config`` (None: EODAG's own default configuration,
    said in the log).

    EODAG's usual environment variables still apply (``EODAG_CFG_DIR``,
    ``EODAG_PROVIDERS_WHITELIST``, ``EODAG_STRICT_COLLECTIONS``, ``EODAG__<PROVIDER>__...``).
    Credentials stay inside EODAG: this module never reads nor logs them.
    """
    from eodag import EODataAccessGateway
    from eodag.config import EODAGSettings

    kwargs: dict[str, Any] = {}
    if eodag_config is None:
        logging.getLogger(__name__).info(
            "no EODAG configuration file ([DataSource] eodag_config, $EODAG_CFG_FILE, $EODAG_CFG_DIR/eodag.yml, "
            "~/.config/eodag/eodag.yml): EODAG's own default configuration is used, as S1Tiling does")
    else:
        path = Path(eodag_config).expanduser()
        if not path.is_file():
            # EODAG would silently create a template there: a typo must not go unnoticed.
            raise ConfigurationError(f"EODAG configuration file {path} not found ([DataSource] eodag_config)")
        kwargs["cfg_file"] = path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            gateway = EODataAccessGateway(settings=EODAGSettings(**kwargs))
    except Exception as err:  # EODAG raises yaml, pydantic and its own errors alike
        where = kwargs.get("cfg_file", "the default EODAG configuration")
        raise ConfigurationError(f"{where}: cannot configure EODAG: {_describe(err)}") from err
    protect_logs()  # now that EODAG's plugins (and their loggers) are loaded
    return gateway


def _describe(err: Exception) -> str:
    """The error without the offending YAML line, which may hold a password."""
    import yaml

    if isinstance(err, yaml.MarkedYAMLError) and err.problem_mark is not None:
        mark = err.problem_mark
        return f"invalid YAML ({err.problem}) at line {mark.line + 1}, column {mark.column + 1}"
    return f"{type(err).__name__}: {err}"
