"""The wire form of a webhook: its envelope, its headers, its signature, and the retry schedule.

The signature follows the scheme receivers know from Stripe: `t=<unix seconds>,v1=<hex>`, where
the hex is HMAC-SHA256 of `"<t>.<raw body>"` keyed by the shared secret. Signing the timestamp
with the body lets a receiver refuse old deliveries replayed by someone who recorded them.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

import orjson

from marketplace_chat.models import iso

# Retries back off by doubling from one second, but never wait longer than five minutes: an
# outage of marketplace-api is then noticed within five minutes of its end.
FIRST_RETRY_S = 1.0
MAX_RETRY_S = 300.0


def backoff_s(failed_attempts: int) -> float:
    """Seconds to wait after the `failed_attempts`-th failed attempt: 1, 2, 4, … at most 300."""
    exponent = max(0, failed_attempts - 1)
    if exponent >= 16:  # 2**16 s is far past the cap; no need for the float to grow
        return MAX_RETRY_S
    return float(min(MAX_RETRY_S, FIRST_RETRY_S * 2**exponent))


def envelope(event_id: str, event_type: str, created_at: datetime, data_json: str) -> bytes:
    """The body `{ id, type, createdAt, data }`, with `data` as stored (already JSON)."""
    head = orjson.dumps({"id": event_id, "type": event_type, "createdAt": iso(created_at)})
    return head[:-1] + b',"data":' + data_json.encode() + b"}"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Chat-Signature` header value for `body` sent at `timestamp` (unix seconds)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance_s: int = 300) -> bool:
    """What a receiver does: the signature matches and its timestamp is recent."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def headers(event_id: str, event_type: str, signed: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Chat-Event": event_type,
        "X-Chat-Delivery": event_id,
        "X-Chat-Signature": signed,
    }
