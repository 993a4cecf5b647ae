"""What a REST endpoint reads from a request: the query string and the JSON body, turned into the
plain values the socket's payload models take, so that both edges validate with the same rules.

An endpoint reads its body only here, after its bearer token was verified: FastAPI reads a
declared `Body` before it resolves any dependency, which would let an anonymous client make the
server read (and hold) whatever it sends.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

from starlette.requests import Request

from marketplace_chat.errors import ValidationFailed

# Payloads are objects of scalars (messages:sync's map is the deepest, at two levels); anything
# nested deeper is refused before a model walks it.
MAX_JSON_DEPTH = 16
# A query-string integer is written the one way JSON writes it: no sign, no leading zero, no
# fraction. Anything else stays a string, which the models' strict integers refuse.
_CANONICAL_INT = re.compile(r"(?:0|[1-9][0-9]{0,17})")


def query_args(
    request: Request, *, ints: Iterable[str] = (), path: Iterable[str] = ()
) -> dict[str, object]:
    """The query string as a payload: each parameter once, canonical digits as integers for the
    parameters in `ints`. Names in `path` come from the path and may not be repeated here."""
    ints, path = set(ints), set(path)
    args: dict[str, object] = {}
    for name in request.query_params:
        values = request.query_params.getlist(name)
        if name in path:
            raise ValidationFailed(f"{name}: give it in the path")
        if len(values) > 1:
            raise ValidationFailed(f"{name}: given more than once")
        value = values[0]
        args[name] = int(value) if name in ints and _CANONICAL_INT.fullmatch(value) else value
    return args


async def json_object(request: Request) -> dict[str, object]:
    """The request's body as a JSON object; read through the body size limit."""
    raw = await request.body()
    if not raw.strip():
        raise ValidationFailed("payload: a JSON object is required")
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ValidationFailed(f"payload: nested deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:  # also a body that is not UTF-8
        raise ValidationFailed("payload: not valid JSON") from None
    if not isinstance(data, dict):
        raise ValidationFailed("payload: must be an object")
    if _depth(data) > MAX_JSON_DEPTH:
        raise ValidationFailed(f"payload: nested deeper than {MAX_JSON_DEPTH} levels")
    return data


def _depth(value: object) -> int:
    """How deep containers nest in a parsed JSON value, without recursion."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if not isinstance(item, dict | list):
            continue
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, level + 1) for child in children)
    return deepest
