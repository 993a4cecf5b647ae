"""What a developer needs on the first screen of `serve --dev`: where it runs, what to do next."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Banner:
    host: str
    port: int
    database: str  # "embedded (DATA_DIR)" or "configured"
    redis: str
    verifier: str

    def text(self) -> str:
        local = ("127.0.0.1", "0.0.0.0", "::", "::1")
        shown = "localhost" if self.host in local else self.host
        base = f"http://{shown}:{self.port}"
        return "\n".join(
            (
                "",
                f"  marketplace-chat (development) on {base}",
                f"    Socket.IO    {base}/chat  (namespace /chat, auth: {{ token }})",
                f"    REST docs    {base}/docs",
                f"    health       {base}/health · {base}/ready · {base}/metrics",
                f"    PostgreSQL   {self.database}",
                f"    Redis        {self.redis}",
                f"    tokens       {self.verifier}: marketplace-chat token --dev --user 42",
                "    stop         Ctrl-C",
                "",
            )
        )
