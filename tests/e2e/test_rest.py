"""README "REST": the same data over HTTP with the same bearer tokens, objects and
codes; bodies are the plain objects; errors are ``{error, code}`` with a matching status."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from .conftest import Connect
from .convo import chats_page, history_page, message_rows, pair, send_many, wait_for_news
from .helpers import assert_chat_shape, assert_message_shape, ok, parse_iso, send
from .resthelp import body, rest, rest_failed
from .server import ChatServer
from .tokens import Tokens, new_user_id

pytestmark = pytest.mark.e2e

# Every /api route of README "REST": (method, path template, JSON body).
ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/chats", None),
    ("POST", "/api/chats", {"buyerId": 1, "sellerId": 2}),
    ("GET", "/api/chats/{chat}", None),
    ("GET", "/api/chats/{chat}/messages", None),
    ("POST", "/api/chats/{chat}/messages", {"text": "hello"}),
    ("POST", "/api/chats/{chat}/read", {"messageId": "{message}"}),
    ("PATCH", "/api/chats/{chat}/messages/{message}", {"text": "edited"}),
    ("DELETE", "/api/chats/{chat}/messages/{message}", None),
    ("GET", "/api/users/{user}/response-stats", None),
]


def _fill(value: Any, chat_id: str, message_id: str) -> Any:
    if isinstance(value, str):
        return value.replace("{chat}", chat_id).replace("{message}", message_id)
    if isinstance(value, dict):
        return {k: _fill(v, chat_id, message_id) for k, v in value.items()}
    return value


# -- authentication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "payload"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES]
)
async def test_every_route_wants_a_valid_bearer_token(
    connect: Connect,
    chat_server: ChatServer,
    tokens: Tokens,
    db: asyncpg.Pool,
    method: str,
    path: str,
    payload: dict[str, Any] | None,
) -> None:
    p = await pair(connect)
    message = await send(p.buyer, p.chat_id, "hi")
    url = _fill(path, p.chat_id, message["id"])
    json_body = _fill(payload, p.chat_id, message["id"])
    cases = [
        (None, "TOKEN_REQUIRED"),
        ("Bearer not-a-jwt", "TOKEN_INVALID"),
        (f"Bearer {tokens.mint(p.buyer_id, secret='x' * 40)}", "TOKEN_INVALID"),
        (f"Bearer {tokens.mint(p.buyer_id, exp=time.time() - 60)}", "TOKEN_EXPIRED"),
    ]

    async with rest(chat_server) as http:
        for header, code in cases:
            headers = {"Authorization": header} if header is not None else {}
            response = await http.request(method, url, json=json_body, headers=headers)
            rest_failed(response, code)

    assert len(await message_rows(db, p.chat_id)) == 1
    await p.seller.assert_no_event("message:read", within=0.2, since=0)


# -- chats -----------------------------------------------------------------------------------


async def test_post_chats_is_201_when_new_and_200_when_existing(
    connect: Connect, chat_server: ChatServer, tokens: Tokens
) -> None:
    me, seller_id = new_user_id(), new_user_id()
    seller = await connect(seller_id)

    async with rest(chat_server, tokens.mint(me)) as http:
        created = body(
            await http.post("/api/chats", json={"buyerId": me, "sellerId": seller_id}), 201
        )
        again = body(
            await http.post(
                "/api/chats", json={"buyerId": str(me), "sellerId": seller_id, "productId": 8}
            ),
            200,
        )

    assert_chat_shape(created)
    assert (created["buyerId"], created["sellerId"], created["productId"]) == (me, seller_id, None)
    assert created["lastMessage"] is None
    assert created["unreadCount"] == 0
    assert again["id"] == created["id"]
    assert again["productId"] == 8
    assert (await seller.wait_for("chat:created"))["id"] == created["id"]
    await asyncio.sleep(0.5)
    assert len(seller.events("chat:created")) == 1, seller.log


async def test_get_chat_equals_the_socket_view(
    connect: Connect, chat_server: ChatServer, tokens: Tokens
) -> None:
    p = await pair(connect)
    await send(p.buyer, p.chat_id, "hello", productId=3)
    await send(p.seller, p.chat_id, "hi")

    for user_id, client in ((p.buyer_id, p.buyer), (p.seller_id, p.seller)):
        async with rest(chat_server, tokens.mint(user_id)) as http:
            got = body(await http.get(f"/api/chats/{p.chat_id}"), 200)
        assert got == ok(await client.emit_ack("chat:join", {"chatId": p.chat_id}))
        assert_chat_shape(got)
    assert got["unreadCount"] == 1
    assert got["productId"] == 3


async def test_get_chats_equals_chats_list_page_by_page(
    connect: Connect, chat_server: ChatServer, tokens: Tokens
) -> None:
    me = new_user_id()
    client = await connect(me)
    for i in range(3):
        p = await pair(connect, me)
        await send(p.seller, p.chat_id, f"from seller {i}")

    async with rest(chat_server, tokens.mint(me)) as http:
        whole = body(await http.get("/api/chats"), 200)
        first = body(await http.get("/api/chats", params={"limit": 2}), 200)
        second = body(
            await http.get("/api/chats", params={"limit": 2, "before": first["nextCursor"]}), 200
        )

    assert set(whole) == {"chats", "nextCursor"}
    assert (whole["chats"], whole["nextCursor"]) == await chats_page(client)
    assert (first["chats"], first["nextCursor"]) == await chats_page(client, limit=2)
    assert (second["chats"], second["nextCursor"]) == await chats_page(
        client, limit=2, before=first["nextCursor"]
    )
    assert len(whole["chats"]) == 3
    assert second["nextCursor"] is None
    assert [c["id"] for c in first["chats"] + second["chats"]] == [c["id"] for c in whole["chats"]]


# -- messages --------------------------------------------------------------------------------


async def test_get_messages_equals_messages_history(
    connect: Connect, chat_server: ChatServer, tokens: Tokens
) -> None:
    p = await pair(connect)
    sent = await send_many(p.buyer, p.chat_id, 6)
    queries: list[dict[str, Any]] = [
        {},
        {"limit": 2},
        {"limit": 2, "before": sent[3]["id"]},
        {"limit": 3, "after": sent[1]["id"]},
        {"after": sent[5]["id"]},
    ]

    async with rest(chat_server, tokens.mint(p.seller_id)) as http:
        for query in queries:
            got = body(await http.get(f"/api/chats/{p.chat_id}/messages", params=query), 200)
            assert set(got) == {"messages", "hasMore"}, got
            socket_page = await history_page(p.seller, p.chat_id, **query)
            assert (got["messages"], got["hasMore"]) == socket_page, query

    whole = await history_page(p.seller, p.chat_id)
    assert whole == (sent, False)


async def test_post_message_is_201_and_delivered_in_real_time(
    connect: Connect, chat_server: ChatServer, tokens: Tokens, db: asyncpg.Pool
) -> None:
    p = await pair(connect)
    buyer_phone = await connect(p.buyer_id)
    await send(p.seller, p.chat_id, "first")

    async with rest(chat_server, tokens.mint(p.buyer_id)) as http:
        message = body(
            await http.post(
                f"/api/chats/{p.chat_id}/messages",
                json={"text": "  from the web  ", "productId": 21, "clientMessageId": "web-1"},
            ),
            201,
        )

    assert_message_shape(message)
    assert (message["seq"], message["senderId"], message["text"]) == (2, p.buyer_id, "from the web")
    assert (message["productId"], message["clientMessageId"]) == (21, "web-1")
    for client in (p.buyer, buyer_phone, p.seller):
        news = await wait_for_news(client, p.chat_id, 2)
        assert news[-1] == message, client.name
        assert len(news) == 2, client.log
    [row] = [r for r in await message_rows(db, p.chat_id) if r["seq"] == 2]
    assert str(row["id"]) == message["id"]


async def test_post_message_is_idempotent_with_the_socket_too(
    connect: Connect, chat_server: ChatServer, tokens: Tokens, db: asyncpg.Pool
) -> None:
    p = await pair(connect)
    payload = {"text": "only once", "clientMessageId": "dup-web"}

    async with rest(chat_server, tokens.mint(p.buyer_id)) as http:
        first = body(await http.post(f"/api/chats/{p.chat_id}/messages", json=payload), 201)
        again = body(await http.post(f"/api/chats/{p.chat_id}/messages", json=payload), (200, 201))
    by_socket = await send(p.buyer, p.chat_id, "only once", clientMessageId="dup-web")

    assert again == first
    assert by_socket == first
    assert len(await message_rows(db, p.chat_id)) == 1
    await p.seller.assert_no_event("message:new", within=0.5)
    assert p.seller.events("message:new") == [first]


async def test_post_read_moves_the_pointer_and_tells_both_participants(
    connect: Connect, chat_server: ChatServer, tokens: Tokens
) -> None:
    p = await pair(connect)
    sent = await send_many(p.buyer, p.chat_id, 3)

    async with rest(chat_server, tokens.mint(p.seller_id)) as http:
        receipt = body(
            await http.post(f"/api/chats/{p.chat_id}/read", json={"messageId": sent[1]["id"]}),
            200,
        )
        older = body(
            await http.post(f"/api/chats/{p.chat_id}/read", json={"messageId": sent[0]["id"]}),
            200,
        )
        chat = body(await http.get(f"/api/chats/{p.chat_id}"), 200)

    assert set(receipt) == {"chatId", "messageId", "seq", "readAt"}
    assert (receipt["chatId"], receipt["messageId"], receipt["seq"]) == (
        p.chat_id,
        sent[1]["id"],
        2,
    )
    parse_iso(receipt["readAt"])
    assert older == receipt
    for client in (p.buyer, p.seller):
        assert await client.wait_for("message:read") == {**receipt, "userId": p.seller_id}
    await asyncio.sleep(0.5)
    assert len(p.buyer.events("message:read")) == 1
    assert chat["unreadCount"] == 1


# -- errors ----------------------------------------------------------------------------------


async def test_a_non_participant_is_forbidden(
    connect: Connect, chat_server: ChatServer, tokens: Tokens, db: asyncpg.Pool
) -> None:
    p = await pair(connect)
    message = await send(p.buyer, p.chat_id, "private")
    stranger = new_user_id()

    async with rest(chat_server, tokens.mint(stranger)) as http:
        rest_failed(await http.get(f"/api/chats/{p.chat_id}"), "FORBIDDEN")
        rest_failed(await http.get(f"/api/chats/{p.chat_id}/messages"), "FORBIDDEN")
        rest_failed(
            await http.post(f"/api/chats/{p.chat_id}/messages", json={"text": "spam"}),
            "FORBIDDEN",
        )
        rest_failed(
            await http.post(f"/api/chats/{p.chat_id}/read", json={"messageId": message["id"]}),
            "FORBIDDEN",
        )
        rest_failed(
            await http.post("/api/chats", json={"buyerId": p.buyer_id, "sellerId": p.seller_id}),
            "FORBIDDEN",
        )

    assert len(await message_rows(db, p.chat_id)) == 1


async def test_an_unknown_chat_or_message_is_not_found(
    connect: Connect, chat_server: ChatServer, tokens: Tokens
) -> None:
    p = await pair(connect)
    await send(p.buyer, p.chat_id, "here")
    unknown = str(uuid.uuid4())

    async with rest(chat_server, tokens.mint(p.buyer_id)) as http:
        rest_failed(await http.get(f"/api/chats/{unknown}"), "NOT_FOUND")
        rest_failed(await http.get(f"/api/chats/{unknown}/messages"), "NOT_FOUND")
        rest_failed(
            await http.post(f"/api/chats/{unknown}/messages", json={"text": "x"}), "NOT_FOUND"
        )
        rest_failed(
            await http.get(f"/api/chats/{p.chat_id}/messages", params={"before": unknown}),
            "NOT_FOUND",
        )
        rest_failed(
            await http.post(f"/api/chats/{p.chat_id}/read", json={"messageId": unknown}),
            "NOT_FOUND",
        )


M = "/api/chats/{chat}/messages"


@pytest.mark.parametrize(
    ("method", "path", "params", "payload", "field"),
    [
        pytest.param("GET", "/api/chats", {"limit": 0}, None, "limit", id="chats-limit-0"),
        pytest.param("GET", "/api/chats", {"limit": 101}, None, "limit", id="chats-limit-101"),
        pytest.param("GET", "/api/chats", {"before": "x"}, None, "before", id="chats-bad-cursor"),
        pytest.param("GET", M, {"limit": 0}, None, "limit", id="limit-0"),
        pytest.param("GET", M, {"limit": 101}, None, "limit", id="limit-101"),
        pytest.param("GET", M, {"limit": "abc"}, None, "limit", id="limit-abc"),
        pytest.param("GET", M, {"limit": "5.5"}, None, "limit", id="limit-5.5"),
        pytest.param(
            "GET",
            M,
            {"before": "{message}", "after": "{message}"},
            None,
            "before",
            id="before-and-after",
        ),
        pytest.param("POST", M, None, {"text": "  "}, "text", id="blank-text"),
        pytest.param("POST", M, None, {}, "text", id="no-text"),
        pytest.param("POST", M, None, {"text": "x", "bogus": 1}, "bogus", id="unknown-field"),
        pytest.param("POST", M, None, [1, 2], "payload", id="array-body"),
        pytest.param("POST", "/api/chats/{chat}/read", None, {}, "messageid", id="read-no-id"),
        pytest.param(
            "POST",
            "/api/chats",
            None,
            {"buyerId": "{me}", "sellerId": "{me}"},
            "sellerid",
            id="same-users",
        ),
        pytest.param(
            "POST", "/api/chats", None, {"buyerId": 1.5, "sellerId": 2}, "buyerid", id="fraction-id"
        ),
    ],
)
async def test_bad_input_is_422_validation_error_naming_the_field(
    connect: Connect,
    chat_server: ChatServer,
    tokens: Tokens,
    db: asyncpg.Pool,
    method: str,
    path: str,
    params: dict[str, Any] | None,
    payload: Any,
    field: str,
) -> None:
    p = await pair(connect)
    message = await send(p.buyer, p.chat_id, "here")

    def fill(value: Any) -> Any:
        if isinstance(value, str):
            filled = _fill(value, p.chat_id, message["id"])
            return p.buyer_id if filled == "{me}" else filled
        if isinstance(value, dict):
            return {k: fill(v) for k, v in value.items()}
        return value

    async with rest(chat_server, tokens.mint(p.buyer_id)) as http:
        response = await http.request(method, fill(path), params=fill(params), json=fill(payload))

    error = rest_failed(response, "VALIDATION_ERROR")
    assert field in error.lower(), error
    assert len(await message_rows(db, p.chat_id)) == 1


async def test_a_malformed_chat_id_is_refused_cleanly(
    chat_server: ChatServer, tokens: Tokens
) -> None:
    async with rest(chat_server, tokens.mint(new_user_id())) as http:
        response = await http.get("/api/chats/not-a-uuid/messages")

    assert response.status_code in (404, 422), response.text
    if response.status_code == 422:
        assert "chatid" in rest_failed(response, "VALIDATION_ERROR").lower()
    else:
        rest_failed(response, "NOT_FOUND")


# -- description -----------------------------------------------------------------------------


def _template(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


async def test_openapi_lists_the_rest_routes(chat_server: ChatServer) -> None:
    async with httpx.AsyncClient(base_url=chat_server.url, timeout=10.0) as http:
        response = await http.get("/openapi.json")

    spec = body(response, 200)
    assert str(spec.get("openapi", "")).startswith("3"), spec.get("openapi")
    paths = {_template(path): {m.lower() for m in ops} for path, ops in spec["paths"].items()}
    for method, path, _ in ROUTES:
        assert method.lower() in paths.get(_template(path.replace("{chat}", "{chatId}")), set()), (
            method,
            path,
            sorted(paths),
        )


async def test_openapi_describes_objects_bodies_errors_and_the_bearer_scheme(
    chat_server: ChatServer,
) -> None:
    async with httpx.AsyncClient(base_url=chat_server.url, timeout=10.0) as http:
        spec = body(await http.get("/openapi.json"), 200)

    components = spec["components"]
    schemes = components["securitySchemes"]
    # The users' JWTs, and the operators' ADMIN_API_KEY of the /api/admin routes.
    assert {n: (s["type"], s["scheme"]) for n, s in schemes.items()} == {
        "bearer": ("http", "bearer"),
        "adminKey": ("http", "bearer"),
    }, schemes
    schemas = components["schemas"]
    assert set(schemas["Chat"]["properties"]) >= {
        "id", "buyerId", "sellerId", "productId", "createdAt", "updatedAt", "lastMessage",
        "unreadCount",
    }  # fmt: skip
    assert set(schemas["Message"]["properties"]) >= {
        "id", "chatId", "seq", "senderId", "text", "productId", "clientMessageId", "createdAt",
    }  # fmt: skip
    assert set(schemas["Error"]["required"]) == {"error", "code"}

    def op(method: str, path: str) -> dict[str, Any]:
        return dict(spec["paths"][path][method])

    def ref(response: dict[str, Any]) -> str:
        return str(response["content"]["application/json"]["schema"]["$ref"]).rsplit("/", 1)[1]

    expected = {
        ("get", "/api/chats"): ("200", "ChatsPage"),
        ("post", "/api/chats"): ("201", "Chat"),
        ("get", "/api/chats/{chatId}"): ("200", "Chat"),
        ("get", "/api/chats/{chatId}/messages"): ("200", "HistoryPage"),
        ("post", "/api/chats/{chatId}/messages"): ("201", "Message"),
        ("post", "/api/chats/{chatId}/read"): ("200", "ReadPointer"),
        ("get", "/api/users/{userId}/response-stats"): ("200", "ResponseStats"),
    }
    for (method, path), (status, schema) in expected.items():
        operation = op(method, path)
        assert operation["security"] == [{"bearer": []}], (method, path)
        assert ref(operation["responses"][status]) == schema, (method, path)
        for error_status in ("401", "404", "422", "500"):
            assert ref(operation["responses"][error_status]) == "Error", (method, path)
    bodies = {
        path: op("post", path)["requestBody"]["content"]["application/json"]["schema"]
        for path in ("/api/chats", "/api/chats/{chatId}/messages", "/api/chats/{chatId}/read")
    }
    assert set(bodies["/api/chats"]["required"]) == {"buyerId", "sellerId"}
    assert bodies["/api/chats/{chatId}/messages"]["required"] == ["text"]
    assert "chatId" not in bodies["/api/chats/{chatId}/messages"]["properties"]
    assert bodies["/api/chats/{chatId}/read"]["required"] == ["messageId"]
    assert "413" in op("post", "/api/chats")["responses"]


async def test_response_stats_count_the_seller_s_first_replies(
    connect: Connect, chat_server: ChatServer, tokens: Tokens
) -> None:
    p = await pair(connect)
    asked = await send(p.buyer, p.chat_id, "is it available?")
    await send(p.buyer, p.chat_id, "hello?")
    replied = await send(p.seller, p.chat_id, "yes")
    chat = ok(
        await p.seller.emit_ack("chat:create", {"buyerId": new_user_id(), "sellerId": p.seller_id})
    )
    await send(p.seller, chat["id"], "not a buyer's start")  # started by the seller: left out

    async with rest(chat_server, tokens.mint(new_user_id())) as http:
        stats = body(await http.get(f"/api/users/{p.seller_id}/response-stats"), 200)
        stranger = body(await http.get(f"/api/users/{new_user_id()}/response-stats"), 200)
        for bad in ("abc", "0", "-1", str(2**53)):
            rest_failed(await http.get(f"/api/users/{bad}/response-stats"), "VALIDATION_ERROR")

    wait_s = (parse_iso(replied["createdAt"]) - parse_iso(asked["createdAt"])).total_seconds()
    assert stats == {
        "userId": p.seller_id,
        "windowDays": 30,
        "chats": 1,
        "answered": 1,
        "answeredWithin24h": 1,
        "medianFirstReplyS": pytest.approx(wait_s, abs=0.001),
        "p90FirstReplyS": pytest.approx(wait_s, abs=0.001),
    }
    assert stranger["chats"] == 0
    assert stranger["medianFirstReplyS"] is None
    assert stranger["p90FirstReplyS"] is None


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_nothing_from_another_host(
    chat_server: ChatServer, page: str
) -> None:
    async with httpx.AsyncClient(base_url=chat_server.url, timeout=10.0) as http:
        response = await http.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "://" not in response.text.replace("window.location.origin", ""), response.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
        assert assets, response.text
        for asset in assets:
            assert (await http.get(asset)).status_code == 200, asset
