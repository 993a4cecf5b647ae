"""A sender's last few number-like texts in a chat, kept in Redis for every node to see, so that a
phone number split over consecutive messages is found whichever node each part went through.

One key per (chat, sender), a list of at most `keep` entries that expires `window_s` after the
latest; one script call reads the earlier entries and appends the new one (one round trip).
A retried send (same client message id) is not appended twice, and its earlier parts are those
that came before its first attempt.
"""

from __future__ import annotations

import json
from datetime import datetime

import redis.asyncio as aioredis

from marketplace_chat.realtime.connection import redis_errors

SPLIT_WINDOW_S = 60.0
SPLIT_KEEP = 2  # earlier parts: a number may be split over three messages

# KEYS[1] the list; ARGV[1] the new entry, ARGV[2] its client id ('' for none), ARGV[3] how
# many entries to keep, ARGV[4] the key's lifetime in ms. Returns the entries before the new one.
_PUSH = """
local items = redis.call('LRANGE', KEYS[1], 0, -1)
if ARGV[2] ~= '' then
  for _, item in ipairs(items) do
    local ok, entry = pcall(cjson.decode, item)
    if ok and type(entry) == 'table' and entry['c'] == ARGV[2] then
      return items
    end
  end
end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[3]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return items
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
        self._script = redis.register_script(_PUSH)
        self._window_ms = int(window_s * 1000)
        self._keep = keep

    async def push(
        self, chat_id: str, sender_id: int, text: str, client_id: str | None, now: datetime
    ) -> list[str]:
        """Remember `text` and return the sender's earlier texts still inside the window,
        oldest first."""
        now_ms = int(now.timestamp() * 1000)
        entry = json.dumps({"t": text, "at": now_ms, "c": client_id}, ensure_ascii=False)
        with redis_errors():
            raw = await self._script(
                keys=[recent_key(chat_id, sender_id)],
                args=[entry, client_id or "", self._keep, self._window_ms],
            )
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
