"""A stand-in for marketplace-api's token check (``GET /auth/me``), run in a thread.

Tests say per token what it answers and read back which requests reached it. A token nobody
registered gets a 401.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True, slots=True)
class Answer:
    status: int = 200
    body: Any = None  # JSON-encoded unless it is a str
    delay_s: float = 0.0


@dataclass(frozen=True, slots=True)
class SeenRequest:
    method: str
    path: str
    authorization: str | None
    token: str | None
    at: float


def user_body(user_id: int | str, shape: str) -> Any:
    """A 2xx body carrying ``user_id`` in one of the places the remote verifier reads it from."""
    place, _, key = shape.rpartition(".")
    body: dict[str, Any] = {key: user_id, "email": "someone@example.test"}
    return {place: body} if place else body


class FakeMarketplaceApi:
    def __init__(self) -> None:
        self._answers: dict[str, Answer] = {}
        self._lock = threading.Lock()
        self.requests: list[SeenRequest] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeMarketplaceApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def answer(self, token: str, answer: Answer) -> None:
        with self._lock:
            self._answers[token] = answer

    def accept(self, token: str, user_id: int, shape: str = "id") -> None:
        self.answer(token, Answer(200, user_body(user_id, shape)))

    def requests_for(self, token: str) -> list[SeenRequest]:
        with self._lock:
            return [r for r in self.requests if r.token == token]

    def _lookup(self, token: str | None) -> Answer:
        with self._lock:
            return self._answers.get(token or "", Answer(401, {"message": "Unauthorized"}))

    def _record(self, request: SeenRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                authorization = self.headers.get("Authorization")
                token = None
                if authorization and authorization.lower().startswith("bearer "):
                    token = authorization[7:].strip()
                api._record(SeenRequest("GET", self.path, authorization, token, time.monotonic()))
                answer = api._lookup(token)
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                if isinstance(answer.body, str):
                    data, ctype = answer.body.encode(), "text/html"
                else:
                    data, ctype = json.dumps(answer.body).encode(), "application/json"
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the service gave up waiting (timeout tests)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
