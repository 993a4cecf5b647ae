"""README "REST": `/docs` (Swagger UI) and `/redoc` (ReDoc) render the API in a real headless
browser on a machine without internet, since their scripts come from the service itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from .server import ChatServer

pytestmark = pytest.mark.e2e

# How long the page's scripts may run in the browser's virtual time (fetching /openapi.json
# and rendering); virtual time runs ahead when the page is idle, so this is rarely waited out.
VIRTUAL_TIME_BUDGET_MS = 15_000
BROWSER_TIMEOUT_S = 60.0
OPERATIONS = ("/api/chats", "/api/chats/{chatId}/messages", "/api/chats/{chatId}/read")


async def _rendered_dom(chromium: str, url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran, as headless chromium dumps it."""
    proc = await asyncio.create_subprocess_exec(
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--virtual-time-budget={VIRTUAL_TIME_BUDGET_MS}",
        "--dump-dom",
        url,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), BROWSER_TIMEOUT_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode == 0, err.decode(errors="replace")[-2000:]
    return out.decode(errors="replace")


async def test_swagger_ui_renders_the_operations_and_the_authorize_button(
    chat_server: ChatServer, chromium: str, tmp_path: Path
) -> None:
    dom = await _rendered_dom(chromium, f"{chat_server.url}/docs", tmp_path)

    for path in OPERATIONS:
        assert f'data-path="{path}"' in dom, f"{path} not rendered:\n{dom[-3000:]}"
    assert "btn authorize" in dom, dom[-3000:]


async def test_redoc_renders_the_operations(
    chat_server: ChatServer, chromium: str, tmp_path: Path
) -> None:
    dom = await _rendered_dom(chromium, f"{chat_server.url}/redoc", tmp_path)

    for path in OPERATIONS:
        assert path in dom, f"{path} not rendered:\n{dom[-3000:]}"
    assert "Send a message; delivered in real time" in dom, dom[-3000:]
