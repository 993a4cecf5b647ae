"""The log stream: one JSON object per line, tracebacks rendered, and no token in any of it.

Each test configures logging in a fresh interpreter, as the service does at start, so that the
process-wide logging, structlog and warnings state of the test run is left alone.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import jwt
import pytest

from marketplace_chat.logs import redact

TOKEN = jwt.encode({"sub": "5", "exp": 4102444800}, "k" * 40, algorithm="HS256")
SIGNATURE = TOKEN.rsplit(".", 1)[1]


def run_logged(code: str, fmt: str = "json") -> tuple[list[str], str]:
    """The stdout lines and the stderr of `code` run after `configure_logging("INFO", fmt)`."""
    prelude = (
        "import logging, structlog, warnings\n"
        "from marketplace_chat.logs import configure_logging\n"
        f"configure_logging('INFO', {fmt!r})\n"
        f"TOKEN = {TOKEN!r}\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "default", "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.splitlines(), done.stderr


def assert_no_token(text: str) -> None:
    assert TOKEN not in text
    assert SIGNATURE not in text
    assert TOKEN.split(".")[1] not in text


def test_library_warning_is_one_json_line_and_nothing_goes_to_stderr() -> None:
    lines, stderr = run_logged(
        """
        import jwt
        jwt.encode({"sub": "1"}, "short", algorithm="HS256")
        """
    )
    assert stderr == ""
    records = [json.loads(line) for line in lines]
    (warning,) = records
    assert warning["level"] == "warning"
    assert "InsecureKeyLengthWarning" in warning["event"]


LIBRARY_CRASH = """
    try:
        (TOKEN + "\\ud800").encode("utf-8")
    except UnicodeEncodeError:
        logging.getLogger("engineio.server").exception("message async handler error")
"""


def test_library_exception_record_is_one_json_line_with_a_traceback_and_no_token() -> None:
    lines, stderr = run_logged(LIBRARY_CRASH)
    assert stderr == ""
    (record,) = [json.loads(line) for line in lines]
    assert record["event"] == "message async handler error"
    assert record["level"] == "error"
    assert record["exception"].startswith("Traceback (most recent call last):")
    assert "UnicodeEncodeError" in record["exception"]
    assert "<traceback object" not in lines[0]
    assert_no_token(lines[0])


def test_library_exception_record_on_the_console_has_a_traceback_and_no_token() -> None:
    lines, stderr = run_logged(LIBRARY_CRASH, fmt="console")
    output = "\n".join(lines)
    assert stderr == ""
    assert "message async handler error" in output
    assert "Traceback (most recent call last):" in output
    assert "UnicodeEncodeError" in output
    assert "<traceback object" not in output
    assert_no_token(output)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_exception_whose_message_holds_a_token_is_redacted(fmt: str) -> None:
    lines, stderr = run_logged(
        """
        try:
            raise ValueError(f"cannot use {TOKEN!r}")
        except ValueError:
            structlog.get_logger("x").exception("crashed")
        try:
            raise KeyError(TOKEN)
        except KeyError:
            logging.getLogger("uvicorn.error").exception("crashed too")
        """,
        fmt=fmt,
    )
    output = "\n".join(lines)
    assert stderr == ""
    assert output.count("Traceback (most recent call last):") == 2
    assert "ValueError: cannot use '[redacted]'" in output
    assert_no_token(output)


def test_token_anywhere_in_an_event_is_redacted() -> None:
    lines, _ = run_logged(
        """
        class Request:
            def __repr__(self):
                return f"<Request Authorization: Bearer {TOKEN}>"
        structlog.get_logger("x").info(
            TOKEN,
            nested={"deep": [TOKEN, {"deeper": (TOKEN,)}]},
            request=Request(),
            url=f"/socket.io/?EIO=4&token={TOKEN}&transport=polling",
        )
        logging.getLogger("websockets").warning("bad frame %r", {"t": TOKEN})
        """
    )
    assert len(lines) == 2
    for line in lines:
        json.loads(line)
        assert_no_token(line)
    record = json.loads(lines[0])
    assert record["nested"] == {"deep": ["[redacted]", {"deeper": ["[redacted]"]}]}
    assert record["url"] == "/socket.io/?EIO=4&token=[redacted]&transport=polling"


@pytest.mark.parametrize(
    "text",
    [
        "marketplace_chat.gateway.namespace",
        'File "/srv/app/.venv/lib/python3.11/site-packages/socketio/async_server.py"',
        "engineio.async_drivers.asgi",
        "connected sid=eyXyz user_id=5",
        "2026-12-01T22:00:00.123Z",
    ],
)
def test_text_that_only_looks_dotted_is_left_alone(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    "token",
    [
        TOKEN,
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIiwiZXhwIjoxZTMwOH0.AAAA",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
        "ewogICJhbGciOiAiSFMyNTYiCn0.eyJzdWIiOiIxIn0.c2ln",
    ],
)
def test_every_jwt_shape_is_redacted(token: str) -> None:
    assert redact(f"x {token}\\ud800 y") == "x [redacted]\\ud800 y"
