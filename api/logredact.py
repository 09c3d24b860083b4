"""Secrets never reach the logs: in uvicorn's access log, the value of every query parameter
whose name looks secret (``code`` and ``state`` of an OAuth callback, ``token``, ``_xsrf``,
``key``, ``auth``, ``password``, ``secret``, ``session``, ``signature``) is replaced by
``[redacted]``, the same parameters JupyterHub and Jupyter Server scrub from theirs."""

from __future__ import annotations

import logging
import re

ACCESS_LOGGER = "uvicorn.access"
REDACTED = "[redacted]"
_SECRET = re.compile(r"([?&;][^=&#;?]*?(?:code|state|token|xsrf|key|auth|passw|secret|session"
                     r"|signature)[^=&#;?]*=)[^&#;\s\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with the values of secret-looking query parameters replaced."""
    return _SECRET.sub(lambda m: m.group(1) + REDACTED, text) if "=" in text else text


class RedactQuery(logging.Filter):
    """Rewrites a record's message and string arguments before any handler sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install() -> None:
    """Put the filter on uvicorn's access logger (once per process)."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not any(isinstance(f, RedactQuery) for f in logger.filters):
        logger.addFilter(RedactQuery())
