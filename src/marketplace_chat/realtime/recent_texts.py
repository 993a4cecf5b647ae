"""A sender's last few number-like texts in a chat, kept in Redis for every node to see, so that a
phone number split over consecutive messages is found whichever node each part went through.

One key per (chat, sender), a list of at most `keep` entries that expires `window_s` after the
latest; one script call reads the earlier entries and appends the new one, for every push that
arrived while the previous call was in flight (one round trip for a burst of them).
A retried send (same client message id) is not appended twice, and its earlier parts are those
that came before its first attempt.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

from marketplace_chat.batching import Coalescer
from marketplace_chat.realtime.connection import redis_errors

SPLIT_WINDOW_S = 60.0
SPLIT_KEEP = 2  # earlier parts: a number may be split over three messages

# One run handles the pushes that arrived while the previous run was in flight, in order.
# KEYS[i] the list of push i; ARGV[1] how many entries to keep, ARGV[2] the key's lifetime in ms,
# then two values per push: its entry and its client id ('' for none). Returns, per push, the
# entries before it (a later push to the same list in the run sees the earlier one).
_PUSH = """
local out = {}
for i, key in ipairs(KEYS) do
  local entry, client = ARGV[2 * i + 1], ARGV[2 * i + 2]
  local items = redis.call('LRANGE', key, 0, -1)
  local seen = false
  if client ~= '' then
    for _, item in ipairs(items) do
      local ok, decoded = pcall(cjson.decode, item)
      if ok and type(decoded) == 'table' and decoded['c'] == client then
        seen = true
        break
      end
    end
  end
  if not seen then
    redis.call('RPUSH', key, entry)
    redis.call('LTRIM', key, -tonumber(ARGV[1]), -1)
    redis.call('PEXPIRE', key, ARGV[2])
  end
  out[i] = items
end
return out
"""


def recent_key(chat_id: str, sender_id: int) -> str:
    return f"contacts:recent:{chat_id}:{sender_id}"


class RecentTexts:
    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        window_s: float = SPLIT_WINDOW_S,
        keep: int = SPLIT_KEEP,
    ) -> None:
        self._script: Any = redis.register_script(_PUSH)
        self._window_ms = int(window_s * 1000)
        self._keep = keep
        self._batches: Coalescer[tuple[str, str, str], list[Any]] = Coalescer(self._run)

    def remember(
        self, chat_id: str, sender_id: int, text: str, client_id: str | None, now: datetime
    ) -> None:
        """Push without waiting: it goes out with the next call, and a failure is logged."""
        self._batches.post(
            (recent_key(chat_id, sender_id), _entry(text, client_id, now), client_id or "")
        )

    async def push(
        self, chat_id: str, sender_id: int, text: str, client_id: str | None, now: datetime
    ) -> list[str]:
        """Remember `text` and return the sender's earlier texts still inside the window,
        oldest first."""
        now_ms = int(now.timestamp() * 1000)
        entry = _entry(text, client_id, now)
        raw = await self._batches.submit((recent_key(chat_id, sender_id), entry, client_id or ""))
        entries = []
        for item in raw:
            try:
                decoded = json.loads(item)
            except ValueError:
                continue
            if isinstance(decoded, dict):
                entries.append(decoded)
        if client_id is not None:
            for index, decoded in enumerate(entries):
                if decoded.get("c") == client_id:
                    entries = entries[:index]  # a retry: its parts are those before the first
                    break
        return [
            str(e.get("t", ""))
            for e in entries[-self._keep :]
            if isinstance(e.get("at"), int) and 0 <= now_ms - e["at"] <= self._window_ms
        ]

    async def _run(self, pushes: list[tuple[str, str, str]]) -> list[list[Any]]:
        """The pushes in flight together: one round trip for all of them."""
        args: list[Any] = [self._keep, self._window_ms]
        for _, entry, client in pushes:
            args += [entry, client]
        with redis_errors():
            results = await self._script(keys=[key for key, _, _ in pushes], args=args)
        return [list(items) for items in results]


def _entry(text: str, client_id: str | None, now: datetime) -> str:
    at = int(now.timestamp() * 1000)
    return json.dumps({"t": text, "at": at, "c": client_id}, ensure_ascii=False)
