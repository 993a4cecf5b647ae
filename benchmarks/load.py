"""Load benchmark of marketplace-chat: the real service on one core, the official Socket.IO
client on the other.

    .venv/bin/python benchmarks/load.py [--scenario closed|open|flood|idle|connect|webhooks|
                                                    contacts|all]
                                        [--duration S]
                                        [--pairs N] [--json PATH] [--profile]

Each scenario starts a fresh `python -m marketplace_chat serve` (pinned to core 0, production
mode, local HS256 verifier, rate limits off) against PostgreSQL and Redis: BENCH_DATABASE_URL /
BENCH_REDIS_URL when set, else the machine's own servers on their standard local ports (database
`test`) when they answer, else embedded servers started for the run (said at the start),
drives it with benchmarks/js/loadgen.mjs (pinned to core 1; run `npm ci` in benchmarks/js
first), checks every acknowledged message against PostgreSQL, prints one table and writes the
figures as JSON (benchmarks/results/load.json).

Scenarios:
  closed   50 pairs; each alternates buyer -> seller -> buyer, the next send right after the ack
  open     200 pairs at 5 messages/s each (1,000 msg/s offered) on a fixed schedule, acks or not
  flood    the closed loop of 50 pairs for one window, then for another while one user floods
           every event type from 4 sockets (64 events outstanding on each); the server keeps its
           default budgets (sends: 1,000 per 10 s, far above a pair's rate); /health is polled
  idle     5,000 idle authenticated sockets: server RSS per connection
  connect  2,000 sockets at once: first attempt to the last `connect`
  storm    5,000 sockets (2,500 pairs) drop at once and come back at once: from the drop until
           each is connected, knows its partner is back and has its `users:online` answered
  relay    the closed loop against benchmarks/relay.py (bare python-socketio on the same
           uvicorn settings): the ceiling the closed loop is read against (runs with closed)
  webhooks the closed loop with webhooks off and on (a local receiver answering 200),
           alternately twice, best round of each (target: 90% of the throughput without them),
           then the dispatcher alone on a backlog
           of 20,000 events of 2,000 chats (target: 2,000 events/s delivered)
  contacts the closed loop with CONTACT_POLICY=off and with the default (mask), alternately
           twice, best round of each (target: 95% of the throughput with off); then with mask on
           a text with digits (figure only)

Never part of the test suite. Users are fresh random ids on every run, so runs share no data.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import redis.asyncio as aioredis

from marketplace_chat.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parent.parent
JS_DIR = ROOT / "benchmarks" / "js"
RESULTS_DIR = ROOT / "benchmarks" / "results"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SERVER_CORE = 0
LOADGEN_CORE = 1
STARTUP_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
MESSAGE_TEXT = "Hi! Is this still available? I could pick it up tomorrow after work."
# The developer's shell must not change what the server sees.
SCRUBBED_PREFIXES = (
    "AUTH_",
    "JWT_",
    "RATE_LIMIT_",
    "MARKETPLACE_",
    "DATABASE_",
    "REDIS_",
    "CHAT_",
    "LOG_",
    "WS_",
    "SHUTDOWN_",
    "MIGRATE_",
    "NODE_ID",
    "MAX_MESSAGE",
    "MAX_EVENTS",
    "MAX_SOCKETS",
    "TYPING_",
    "CORS_",
    "CONTACT_",
)

# The issue's targets.
CLOSED_MIN_RATE = 4000.0  # acked msg/s
CLOSED_MAX_P99_ACK_MS = 50.0
OPEN_MAX_P99_DELIVERY_MS = 25.0
IDLE_MAX_KB_PER_CONN = 27.0
CONNECT_MAX_S = 2.5
STORM_MAX_S = 10.0  # a reconnect storm: dropped sockets back, registered, announced, answering
STORM_SOCKETS = 5000
BACKGROUND_WARN_PCT = 10.0
IDLE_WAIT_S = 45
FLOOD_MAX_P99_RATIO = 2.0  # the pairs' p99 ack with the flood / without it
FLOOD_MAX_HEALTH_MS = 100.0
FLOOD_SOCKETS = 4
FLOOD_LANES = 64  # events each flood socket keeps outstanding, past its bound of 4 in flight
FLOOD_LIMITS = {
    "RATE_LIMIT_MESSAGES": "1000",  # per 10 s: far above a pair's rate; only the flooder meets it
    "RATE_LIMIT_CHATS": "10",  # the default, back on: the pairs create one chat each
}
# After the window: how long to wait for the acks and deliveries still due.
DRAIN_S = 15.0


# -- the server -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """One `python -m marketplace_chat serve`, pinned to SERVER_CORE, in an empty folder."""

    secret: str
    database_url: str
    redis_url: str
    log_path: Path
    port: int = 0
    proc: asyncio.subprocess.Process | None = None
    workdir: tempfile.TemporaryDirectory[str] | None = None
    env: dict[str, str] = field(default_factory=dict)  # over the benchmark's own settings
    stop_s: float | None = None  # SIGTERM to exit; None: killed after STOP_TIMEOUT_S
    busy_after_s: float | None = None  # busy after the clients left, before SIGTERM
    relay: bool = False  # benchmarks/relay.py instead of the service: the machine's ceiling

    async def quiesce(self, max_s: float = 60.0) -> None:
        """Lets the server finish what the clients' going left it (disconnects), so that the
        SIGTERM that follows times the drain alone."""
        self.busy_after_s = await busy_for(self.pid, max_s)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        self.port = free_port()
        self.workdir = tempfile.TemporaryDirectory(prefix="chat-bench-")
        env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
        env.update(
            PORT=str(self.port),
            HOST="127.0.0.1",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            CHAT_ENV="production",
            AUTH_VERIFIER="local",
            JWT_SECRET=self.secret,
            RATE_LIMIT_MESSAGES="0",
            RATE_LIMIT_CHATS="0",
            # The budgets of the other events stay at their defaults: the pairs only send.
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.env)
        with self.log_path.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                "taskset",
                "-c",
                str(SERVER_CORE),
                sys.executable,
                *(
                    [str(ROOT / "benchmarks" / "relay.py"), str(self.port)]
                    if self.relay
                    else ["-m", "marketplace_chat", "serve"]
                ),
                cwd=self.workdir.name,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        async with httpx.AsyncClient(timeout=2.0) as client:
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"server exited at start-up; see {self.log_path}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/health")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server not healthy in {STARTUP_TIMEOUT_S} s")
                await asyncio.sleep(0.1)

    async def stop(self) -> int | None:
        if self.proc is not None and self.proc.returncode is None:
            started = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT_S)
                self.stop_s = time.monotonic() - started
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self.workdir is not None:
            self.workdir.cleanup()
            self.workdir = None
        return None if self.proc is None else self.proc.returncode


def _stat_fields(pid: int) -> list[str]:
    data = Path(f"/proc/{pid}/stat").read_text()
    return data[data.rfind(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (the service's webhook dispatcher)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int(_stat_fields(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
    return found


def cpu_ticks(pid: int) -> int:
    """utime + stime of the process (all its threads) and of its live children (the webhook
    dispatcher runs in one), in clock ticks."""
    fields = _stat_fields(pid)
    ticks = int(fields[11]) + int(fields[12])
    for child in children(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            f = _stat_fields(child)
            ticks += int(f[11]) + int(f[12])
    return ticks


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def core_times() -> dict[str, tuple[int, int]]:
    """(busy, total) jiffies per core, from /proc/stat."""
    out: dict[str, tuple[int, int]] = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *rest = line.split()
        if name.startswith("cpu") and name != "cpu":
            v = [int(x) for x in rest]
            idle = v[3] + v[4]
            out[name] = (sum(v[:8]) - idle, sum(v[:8]))
    return out


async def busy_for(pid: int, max_s: float) -> float:
    """Seconds until the process uses under 5% of a core over half a second (at most max_s)."""
    started = time.monotonic()
    while time.monotonic() - started < max_s:
        a = cpu_ticks(pid)
        await asyncio.sleep(0.5)
        if (cpu_ticks(pid) - a) / CLK_TCK < 0.025:
            break
    return round(time.monotonic() - started - 0.5, 1)


# -- the machine's ceilings ------------------------------------------------------------------------

CPU_PROBE = (
    "import time\n"
    "best = 1e9\n"
    "for _ in range(5):\n"
    "    t = time.perf_counter(); x = 0\n"
    "    for i in range(1_000_000): x += i * i % 7\n"
    "    best = min(best, time.perf_counter() - t)\n"
    "print(best * 1000)\n"
)


def cpu_probe_ms() -> float:
    """A fixed pure-Python loop (a million steps) on the server's core, best of five: what this
    core does for Python, to compare machines by."""
    out = subprocess.run(
        ["taskset", "-c", str(SERVER_CORE), sys.executable, "-c", CPU_PROBE],
        capture_output=True,
        text=True,
        check=True,
    )
    return round(float(out.stdout.strip()), 1)


PG_PROBE_ROWS = 21  # about the batch the closed loop's group commit writes
PG_PROBE_S = 3.0


async def pg_insert_probe(database_url: str) -> dict[str, Any]:
    """PostgreSQL's batched-insert rate here: multi-row inserts of PG_PROBE_ROWS message-shaped
    rows (uuid key, a (chat, seq) unique index), each statement its own transaction (so one
    WAL flush each, as the service's commits), one statement at a time, for PG_PROBE_S."""
    table = f"bench_insert_probe_{secrets.token_hex(4)}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            f"CREATE TABLE public.{table} (id uuid PRIMARY KEY, chat_id uuid NOT NULL, "
            "seq int NOT NULL, sender_id bigint NOT NULL, text text NOT NULL, "
            "created_at timestamptz NOT NULL, UNIQUE (chat_id, seq))"
        )
        insert = (
            f"INSERT INTO public.{table} SELECT * FROM unnest($1::uuid[], $2::uuid[], "
            "$3::int[], $4::bigint[], $5::text[], $6::timestamptz[])"
        )
        chats = [uuid.uuid4() for _ in range(PG_PROBE_ROWS)]
        seq = 0
        statements = 0
        started = time.monotonic()
        server_ms = 0.0
        while time.monotonic() - started < PG_PROBE_S:
            seq += 1
            now = datetime.now(UTC)
            t = time.perf_counter()
            await conn.execute(
                insert,
                [uuid.uuid4() for _ in chats],
                chats,
                [seq] * len(chats),
                [1] * len(chats),
                [MESSAGE_TEXT] * len(chats),
                [now] * len(chats),
            )
            server_ms += (time.perf_counter() - t) * 1000
            statements += 1
        wall = time.monotonic() - started
    finally:
        with contextlib.suppress(Exception):
            await conn.execute(f"DROP TABLE IF EXISTS public.{table}")
        await conn.close()
    rows = statements * PG_PROBE_ROWS
    return {
        "rowsPerStatement": PG_PROBE_ROWS,
        "statements": statements,
        "rowsPerS": round(rows / wall),
        "statementMs": round(server_ms / statements, 2),
        "usPerRow": round(1000 * server_ms / rows, 1),
    }


async def pg_backend_ticks(database_url: str, application_name: str) -> dict[int, int]:
    """CPU ticks so far of each PostgreSQL backend serving `application_name` (read from /proc:
    the database runs on this machine)."""
    conn = await asyncpg.connect(database_url)
    try:
        pids = await conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1", application_name
        )
    finally:
        await conn.close()
    ticks: dict[int, int] = {}
    for row in pids:
        with contextlib.suppress(OSError):
            ticks[row["pid"]] = cpu_ticks(row["pid"])
    return ticks


# The tables every message writes. A chat's row is rewritten by each of its messages and, since
# the activity indexes hold the time it changed, never in place: its dead versions and their index
# entries pile up until a vacuum. A database with autovacuum off (CI's) kept them from one round
# to the next, so every round met a larger chats table than the one before it: on the 2-core
# machine two rounds of one setting gave 2,415 and 4,765 acked msg/s without it, 5,188 and 5,112
# with it.
VACUUMED = "chat.chats, chat.messages, chat.outbox, chat.read_pointers, chat.chat_context"


async def vacuum(database_url: str) -> None:
    """What autovacuum does on a production server, before a round."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"VACUUM (ANALYZE) {VACUUMED}")
    finally:
        await conn.close()


def pg_cpu_s(before: dict[int, int], after: dict[int, int]) -> float:
    return sum(t - before.get(pid, 0) for pid, t in after.items()) / CLK_TCK


@dataclass
class Sample:
    wall: float
    server_ticks: int
    cores: dict[str, tuple[int, int]]

    @staticmethod
    def take(pid: int) -> Sample:
        return Sample(time.monotonic(), cpu_ticks(pid), core_times())


def cpu_summary(a: Sample, b: Sample) -> dict[str, Any]:
    wall = b.wall - a.wall
    server_s = (b.server_ticks - a.server_ticks) / CLK_TCK
    cores = {}
    for name, (busy, total) in b.cores.items():
        busy0, total0 = a.cores.get(name, (0, 0))
        cores[name] = round(100.0 * (busy - busy0) / max(1, total - total0), 1)
    return {
        "wallS": round(wall, 3),
        "serverCpuS": round(server_s, 3),
        "serverCpuPct": round(100.0 * server_s / wall, 1) if wall > 0 else None,
        "coreBusyPct": cores,
    }


async def presence_missing(redis_url: str, user_ids: list[int]) -> int:
    """How many of these users are not in `online:users`: a socket whose `connect` the client saw
    is registered, so every connected user must be there."""
    client = aioredis.from_url(redis_url)
    try:
        found: list[int] = []
        for i in range(0, len(user_ids), 1000):
            chunk = [str(u) for u in user_ids[i : i + 1000]]
            found += await client.smismember("online:users", chunk)
    finally:
        await client.aclose()
    return sum(1 for f in found if not f)


def _server_end(
    server: Server, background: dict[str, Any], exit_code: int | None
) -> dict[str, Any]:
    """How the server's run ended: what else kept the cores busy, its exit, its wind-down."""
    return {
        "backgroundBusyPct": background,
        "serverExitCode": exit_code,
        "serverStopS": server.stop_s,
        "serverBusyAfterClientsLeftS": server.busy_after_s,
    }


def log_summary(path: Path) -> dict[str, Any]:
    """Warnings and errors in the server's log (JSON lines; other lines count as `unstructured`)."""
    levels: Counter[str] = Counter()
    events: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            levels["unstructured"] += 1
            events[line[:60]] += 1
            continue
        if not isinstance(entry, dict):
            continue
        level = str(entry.get("level", "?"))
        levels[level] += 1
        if level not in ("debug", "info"):
            events[str(entry.get("event"))] += 1
    return {"levels": dict(levels), "topEvents": events.most_common(5)}


def log_row(server: Server, log: dict[str, Any], presence: int | None) -> Row:
    bad = {k: v for k, v in log["levels"].items() if k not in ("debug", "info")}
    text = "server log: " + (
        ", ".join(f"{v:,} {k}" for k, v in sorted(bad.items())) if bad else "no warnings/errors"
    )
    if log["topEvents"]:
        text += " (" + "; ".join(f"{e} x{c:,}" for e, c in log["topEvents"][:3]) + ")"
    if presence is not None:
        text += f"; connected users missing from online:users: {presence:,}"
    if server.busy_after_s:
        text += f"; busy {server.busy_after_s:g} s after the clients left"
    if server.stop_s is None:
        text += f"; SIGTERM: still running after {STOP_TIMEOUT_S:g} s, killed"
    else:
        text += f"; SIGTERM: exited in {server.stop_s:.1f} s"
    ok = not bad and not presence and server.stop_s is not None and server.stop_s <= 10
    return Row(
        "",
        text,
        "no warnings/errors, presence registered, exit <= 10 s after SIGTERM",
        "PASS" if ok else "WARN",
    )


# -- users, tokens, chats -------------------------------------------------------------------------


@dataclass
class User:
    id: int
    token: str

    def wire(self) -> dict[str, Any]:
        return {"id": self.id, "token": self.token}


def fresh_users(n: int, secret: str) -> list[User]:
    """n users with ids no earlier run used (kept below 2**53 for the JS client)."""
    base = random.randrange(10**12, 10**15)
    now = int(time.time())
    return [
        User(
            base + i,
            jwt.encode(
                {"sub": str(base + i), "iat": now, "exp": now + 7200}, secret, algorithm="HS256"
            ),
        )
        for i in range(n)
    ]


@dataclass
class Pair:
    buyer: User
    seller: User
    chat_id: str = ""  # opened by the generator, with the buyer's `chat:create`


# -- the load generator ---------------------------------------------------------------------------

LineHandler = Callable[[dict[str, Any]], Awaitable[None]]


async def run_loadgen(
    config: dict[str, Any],
    scratch: Path,
    on_phase: LineHandler,
    on_barrier: LineHandler,
    timeout_s: float,
) -> dict[str, Any]:
    """Runs loadgen.mjs pinned to LOADGEN_CORE; barrier lines are answered once `on_barrier` is
    done with them. Returns the generator's result file. A generator still running after
    `timeout_s` is killed, and the scenario fails."""
    out = scratch / f"{config['scenario']}-result.json"
    cfg_path = scratch / f"{config['scenario']}-config.json"
    cfg_path.write_text(json.dumps({**config, "out": str(out)}))
    stderr_path = RESULTS_DIR / f"loadgen-{config['scenario']}.stderr"
    node = shutil.which("node") or "node"
    with stderr_path.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            "taskset",
            "-c",
            str(LOADGEN_CORE),
            node,
            # e.g. BENCH_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the generator
            *os.environ.get("BENCH_NODE_ARGS", "").split(),
            str(JS_DIR / "loadgen.mjs"),
            str(cfg_path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            limit=1 << 20,
        )
    assert proc.stdout is not None
    assert proc.stdin is not None
    stdin, stdout = proc.stdin, proc.stdout

    async def follow() -> bool:
        async for raw in stdout:
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                continue
            kind = line.get("type")
            if kind == "phase":
                await on_phase(line)
            elif kind == "barrier":
                await on_barrier(line)
                stdin.write(b"go\n")
                await stdin.drain()
            elif kind == "done":
                return True
            elif kind == "fatal":
                raise RuntimeError(f"loadgen failed: {line.get('error')}")
        return False

    try:
        done = await asyncio.wait_for(follow(), timeout_s)
        code = await asyncio.wait_for(proc.wait(), 30)
    except TimeoutError:
        raise RuntimeError(f"loadgen still running after {timeout_s:.0f} s; killed") from None
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if not done or code != 0:
        tail = stderr_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"loadgen exited with {code}: {tail}")
    result: dict[str, Any] = json.loads(out.read_text())
    return result


# -- statistics -----------------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    """Nearest rank on sorted values."""
    if not values:
        return math.nan
    return values[max(0, math.ceil(p / 100.0 * len(values)) - 1)]


def latency(values: list[float], unanswered: int = 0) -> dict[str, Any]:
    """Percentiles in ms; what never got an answer counts as infinitely late (null in JSON)."""
    v = sorted(values) + [math.inf] * unanswered

    def at(p: float) -> float | None:
        x = percentile(v, p)
        return None if math.isinf(x) or math.isnan(x) else round(x, 3)

    return {
        "n": len(values),
        "unanswered": unanswered,
        "p50": at(50),
        "p95": at(95),
        "p99": at(99),
        "max": at(100),
        "mean": round(sum(values) / len(values), 3) if values else None,
    }


def fmt_lat(s: dict[str, Any]) -> str:
    def one(x: float | None) -> str:
        return "inf" if x is None else f"{x:.1f}"

    text = "/".join(one(s[k]) for k in ("p50", "p95", "p99", "max")) + " ms"
    if s["unanswered"]:
        text += f" ({s['unanswered']:,} never answered)"
    return text


# -- checks against PostgreSQL --------------------------------------------------------------------


async def verify_messages(
    database_url: str, pairs: list[Pair], rec: dict[str, list[Any]], tag: str
) -> dict[str, Any]:
    """Every acked message is in chat.messages exactly once, as acked; no duplicate
    (chat_id, client_message_id); seq gapless per chat and equal to chats.last_seq."""
    chat_ids = [p.chat_id for p in pairs]
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT id::text AS id, chat_id::text AS chat_id, seq, sender_id, client_message_id"
            " FROM chat.messages WHERE chat_id = ANY($1::uuid[])",
            chat_ids,
        )
        chats = await conn.fetch(
            "SELECT id::text AS id, last_seq FROM chat.chats WHERE id = ANY($1::uuid[])", chat_ids
        )
    finally:
        await conn.close()

    by_id: dict[str, asyncpg.Record] = {}
    id_rows: Counter[str] = Counter()
    per_key: Counter[tuple[str, str | None]] = Counter()
    seqs: dict[str, list[int]] = {c: [] for c in chat_ids}
    for r in rows:
        by_id[r["id"]] = r
        id_rows[r["id"]] += 1
        per_key[(r["chat_id"], r["client_message_id"])] += 1
        seqs[r["chat_id"]].append(r["seq"])

    acked_cmids: set[str] = set()
    missing = mismatched = 0
    ack_ids: Counter[str] = Counter()
    for i, ok in enumerate(rec["ok"]):
        if not ok:
            continue
        cmid = f"{tag}-{i}"
        acked_cmids.add(cmid)
        pair = pairs[rec["pair"][i]]
        sender = pair.buyer.id if rec["fromBuyer"][i] else pair.seller.id
        mid = rec["id"][i]
        ack_ids[mid] += 1
        row = by_id.get(mid)
        if row is None:
            missing += 1
        elif (
            row["chat_id"] != pair.chat_id
            or row["client_message_id"] != cmid
            or row["seq"] != rec["seq"][i]
            or row["sender_id"] != sender
        ):
            mismatched += 1
    gaps = 0
    last_seq_off = 0
    last_seq = {r["id"]: r["last_seq"] for r in chats}
    for chat_id, s in seqs.items():
        s.sort()
        if s != list(range(1, len(s) + 1)):
            gaps += 1
        if last_seq.get(chat_id) != len(s):
            last_seq_off += 1
    return {
        "rows": len(rows),
        "ackedMessages": sum(1 for ok in rec["ok"] if ok),
        "missing": missing,
        "notAsAcked": mismatched,
        "sameIdAckedTwice": sum(n - 1 for n in ack_ids.values() if n > 1),
        "duplicateRows": sum(n - 1 for n in per_key.values() if n > 1)
        + sum(n - 1 for n in id_rows.values() if n > 1),
        "rowsNotAcked": sum(1 for r in rows if r["client_message_id"] not in acked_cmids),
        "chatsWithSeqGaps": gaps,
        "chatsLastSeqOff": last_seq_off,
    }


# -- scenarios ------------------------------------------------------------------------------------


@dataclass
class Row:
    scenario: str
    figures: str
    target: str
    verdict: str  # PASS, FAIL, WARN (beyond the issue's targets) or "" (information)


@dataclass
class Context:
    args: argparse.Namespace
    secret: str
    database_url: str
    redis_url: str
    scratch: Path
    rows: list[Row] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def server(self, name: str, **env: str) -> Server:
        return Server(
            self.secret,
            self.database_url,
            self.redis_url,
            RESULTS_DIR / f"server-{name}.log",
            env=env,
        )

    async def background(self, scenario: str, server: Server) -> dict[str, float]:
        """Waits (up to IDLE_WAIT_S) for the fresh server to go idle: a node that died without
        cleaning up (an earlier run's server killed after SIGTERM) is reaped by the live nodes,
        which costs them CPU. Then how busy the cores are with no load yet: other work on the
        machine (another job, autovacuum) makes every figure of the scenario worse."""
        waited = 0
        while True:
            a = Sample.take(server.pid)
            await asyncio.sleep(1.0)
            b = Sample.take(server.pid)
            own = round(100.0 * (b.server_ticks - a.server_ticks) / CLK_TCK / (b.wall - a.wall), 1)
            if own < 5.0 or waited >= IDLE_WAIT_S:
                break
            waited += 1
        busy = cpu_summary(a, b)["coreBusyPct"]
        if waited:
            self.warnings.append(f"{scenario}: waited {waited} s for the fresh server to go idle")
        if max(busy.values(), default=0.0) > BACKGROUND_WARN_PCT:
            self.warnings.append(
                f"{scenario}: cores busy before the load started ("
                + ", ".join(f"{k} {v}%" for k, v in busy.items())
                + f"; the idle server itself {own}%): something else runs on this machine, "
                "the figures are pessimistic"
            )
        return {**busy, "server": own, "waitedForIdleS": waited}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@dataclass
class Profiler:
    """py-spy on the server from `start` to `stop`; collapsed stacks in results/NAME-profile.txt."""

    name: str
    proc: asyncio.subprocess.Process | None = None

    @property
    def out(self) -> Path:
        return RESULTS_DIR / f"{self.name}-profile.txt"

    async def start(self, pid: int) -> None:
        bindir = Path(sys.executable).parent
        pyspy = shutil.which("py-spy", path=f"{bindir}:{os.environ.get('PATH', '')}")
        if pyspy is None:
            print("--profile: no py-spy (pip install py-spy into the venv)", file=sys.stderr)
            return
        self.out.unlink(missing_ok=True)
        self.proc = await asyncio.create_subprocess_exec(
            pyspy,
            "record",
            "--pid",
            str(pid),
            "--rate",
            "100",
            "--format",
            "raw",
            "--output",
            str(self.out),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def stop(self) -> dict[str, Any] | None:
        """Ends the recording (py-spy writes its file on SIGINT); the top frames."""
        if self.proc is None:
            return None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(self.proc.wait(), 30)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self.proc = None
        if not self.out.exists():
            return None
        return {"file": str(self.out), **top_frames(self.out)}


LIBRARIES = frozenset(
    [
        "asyncio",
        "socketio",
        "engineio",
        "uvicorn",
        "websockets",
        "h11",
        "redis",
        "asyncpg",
        "json",
        "orjson",
        "pydantic",
        "pydantic_core",
        "structlog",
        "jwt",
        "prometheus_client",
        "email",
        "importlib",
        "re",
        "uuid",
        "logging",
    ]
)


SERVICE_DIR = ROOT / "src" / "marketplace_chat"
# py-spy names the service's files relative to the package: `models.py`, `gateway/server.py`.
SERVICE_NAMES = (
    frozenset(p.name for p in SERVICE_DIR.iterdir()) if SERVICE_DIR.is_dir() else frozenset()
)


def frame_package(frame: str) -> str:
    """`func (socketio/packet.py:176)` -> socketio; the service's own files -> marketplace_chat;
    the standard library's single modules (`uuid.py`) -> python."""
    where = frame[frame.rfind("(") + 1 :].rsplit(":", 1)[0]
    if where.startswith("<frozen"):
        return "python"
    top = where.split("/", 1)[0]
    if top in LIBRARIES:
        return top
    if top in SERVICE_NAMES:
        return "marketplace_chat"
    return "python" if "/" not in where else top


def top_frames(collapsed: Path, n: int = 20) -> dict[str, Any]:
    """Self and inclusive shares of the frames in py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    packages: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        k = int(count)
        total += k
        frames = stack.split(";")
        own[frames[-1]] += k
        packages[frame_package(frames[-1])] += k
        for f in set(frames):
            incl[f] += k
    share = 100.0 / max(1, total)
    # The frames every sample has (runpy, uvicorn, the event loop's run) say nothing.
    below = [(f, c) for f, c in incl.most_common() if c < 0.95 * total]
    return {
        "samples": total,
        "self": [(f, round(c * share, 1)) for f, c in own.most_common(n)],
        "selfByPackage": [(f, round(c * share, 1)) for f, c in packages.most_common()],
        "inclusive": [(f, round(c * share, 1)) for f, c in below[:n]],
    }


async def message_scenario(
    ctx: Context,
    mode: str,
    *,
    label: str | None = None,
    env: dict[str, str] | None = None,
    relay: bool = False,
    text: str = MESSAGE_TEXT,
) -> dict[str, Any]:
    """One closed, open or flood run; `label` names a variant (its results, log and rows) whose
    server gets `env` over the scenario's own settings. `relay`: the closed loop against the
    bare relay (benchmarks/relay.py), the ceiling the service's figures are compared with."""
    args = ctx.args
    key = "relay" if relay else (label or mode)
    n_pairs = args.pairs or (200 if mode == "open" else 50)
    users = fresh_users(2 * n_pairs + 2, ctx.secret)
    flooder, victim = users.pop(), users.pop()
    pairs = [Pair(users[2 * k], users[2 * k + 1]) for k in range(n_pairs)]
    tag = f"{mode[0]}{secrets.token_hex(4)}"
    server = ctx.server(key, **(FLOOD_LIMITS if mode == "flood" else {}), **(env or {}))
    server.relay = relay
    pg_ticks: dict[str, dict[int, int]] = {}
    health = HealthProbe()
    samples: dict[str, Sample] = {}
    profiler = Profiler(mode)
    profile: dict[str, Any] | None = None
    presence: int | None = None

    async def on_phase(line: dict[str, Any]) -> None:
        nonlocal profile, presence
        name = line.get("name")
        if name == "connected":
            presence = await presence_missing(ctx.redis_url, [u.id for u in users])
        if name in ("measure-start", "measure-end"):
            samples[name] = Sample.take(server.pid)
            if not relay:
                pg_ticks[name] = await pg_backend_ticks(ctx.database_url, "marketplace-chat")
        if mode == "flood" and name in ("measure-start", "flood-start"):
            health.start(server.url, "baseline" if name == "measure-start" else "flood")
        if mode == "flood" and name == "measure-end":
            await health.stop()
        if name == "measure-start" and args.profile:
            await profiler.start(server.pid)
        if name == "measure-end" and args.profile:
            profile = await profiler.stop()

    async def no_barrier(line: dict[str, Any]) -> None:
        return None

    if not relay:
        await vacuum(ctx.database_url)
    await server.start()
    try:
        background = await ctx.background(mode, server)
        config = {
            "scenario": mode,
            "url": server.url,
            "tag": tag,
            "pairs": [{"buyer": p.buyer.wire(), "seller": p.seller.wire()} for p in pairs],
            "warmupMs": int(args.warmup * 1000),
            "durationMs": int(args.duration * 1000),
            "drainMs": int(DRAIN_S * 1000),
            "ratePerPair": args.rate,
            "text": text,
            "flooder": flooder.wire(),
            "victim": victim.id,
            "floodSockets": FLOOD_SOCKETS,
            "floodLanes": FLOOD_LANES,
        }
        limit = args.warmup + 2 * args.duration + DRAIN_S + 120
        out = await run_loadgen(config, ctx.scratch, on_phase, no_barrier, limit)
        await server.quiesce()
    finally:
        await health.stop()
        await profiler.stop()
        exit_code = await server.stop()
    if "records" not in out:
        raise RuntimeError(f"{mode}: {out.get('error')} {out.get('counters')}")

    for pair, chat_id in zip(pairs, out["chatIds"], strict=True):
        pair.chat_id = chat_id
    rec: dict[str, list[Any]] = out["records"]
    ws, we = out["windowStart"], out["windowEnd"]
    dur_s = (we - ws) / 1000.0
    n = len(rec["emitT"])
    in_window = [i for i in range(n) if ws <= rec["emitT"][i] < we]
    ack_ms = [rec["ackT"][i] - rec["emitT"][i] for i in in_window if rec["ackT"][i] is not None]
    del_ms = [rec["delT"][i] - rec["emitT"][i] for i in in_window if rec["delT"][i] is not None]
    acked_in_window = sum(
        1
        for i in range(n)
        if rec["ok"][i] and rec["ackT"][i] is not None and ws <= rec["ackT"][i] < we
    )
    errors: Counter[str] = Counter()
    for i in range(n):
        if not rec["ok"][i]:
            errors[rec["err"][i] or "NO_ACK"] += 1
    for kind, counts in out["counters"].items():
        for key, c in counts.items():
            errors[f"{kind}:{key}"] += c
    acked = [i for i in range(n) if rec["ok"][i]]
    delivery = {
        "lost": sum(1 for i in acked if rec["delCount"][i] == 0),
        "duplicate": sum(rec["delCount"][i] - 1 for i in acked if rec["delCount"][i] > 1),
        "wrongId": sum(
            1 for i in acked if rec["delCount"][i] > 0 and rec["delId"][i] != rec["id"][i]
        ),
        "ofUnacked": sum(1 for i in range(n) if not rec["ok"][i] and rec["delCount"][i] > 0),
        "senderEchoNotOnce": sum(1 for i in acked if rec["echo"][i] != 1),
        "foreign": out["foreignDeliveries"],
    }
    cpu = cpu_summary(samples["measure-start"], samples["measure-end"]) if len(samples) == 2 else {}
    rate = acked_in_window / dur_s
    per_cpu_s = acked_in_window / cpu["serverCpuS"] if cpu.get("serverCpuS") else None
    if relay:
        ctx.results["relay"] = relay_result = {
            "ackedPerS": round(rate, 1),
            "ackedPerServerCpuS": round(per_cpu_s, 1) if per_cpu_s else None,
            "ackLatencyMs": latency(ack_ms, len(in_window) - len(ack_ms)),
            "delivery": delivery,
            "cpu": cpu,
        }
        ctx.rows.append(
            Row(
                f"ceiling: bare relay, {n_pairs} pairs",
                f"{rate:,.0f} acked msg/s, {per_cpu_s or 0:,.0f} msg per server CPU-s "
                f"(python-socketio on the same uvicorn settings, the same client, nothing "
                f"behind it); lost {delivery['lost']}, duplicate {delivery['duplicate']}",
                "-",
                "",
            )
        )
        return relay_result
    db = await verify_messages(ctx.database_url, pairs, rec, tag)
    pg_s = (
        pg_cpu_s(pg_ticks["measure-start"], pg_ticks["measure-end"]) if len(pg_ticks) == 2 else None
    )
    pg_us = 1e6 * pg_s / acked_in_window if pg_s is not None and acked_in_window else None
    ack_lat = latency(ack_ms, len(in_window) - len(ack_ms))
    del_lat = latency(del_ms, len(in_window) - len(del_ms))
    integrity_bad = (
        db["missing"]
        + db["notAsAcked"]
        + db["sameIdAckedTwice"]
        + db["duplicateRows"]
        + db["chatsWithSeqGaps"]
        + db["chatsLastSeqOff"]
        + delivery["lost"]
        + delivery["duplicate"]
        + delivery["wrongId"]
        + delivery["senderEchoNotOnce"]
    )
    result: dict[str, Any] = {
        "pairs": n_pairs,
        "warmupS": args.warmup,
        "durationS": dur_s,
        "sent": n,
        "sentInWindow": len(in_window),
        "offeredPerS": round(len(in_window) / dur_s, 1),
        "ackedInWindow": acked_in_window,
        "ackedPerS": round(rate, 1),
        "ackedPerServerCpuS": round(per_cpu_s, 1) if per_cpu_s else None,
        "serverCpuUsPerMsg": round(1e6 / per_cpu_s, 1) if per_cpu_s else None,
        "postgresCpuUsPerMsg": round(pg_us, 1) if pg_us is not None else None,
        "ackLatencyMs": ack_lat,
        "deliveryLatencyMs": del_lat,
        "errors": dict(errors),
        "delivery": delivery,
        "database": db,
        "cpu": cpu,
        "loadgen": out["loadgen"],
        **_server_end(server, background, exit_code),
    }
    flood_rows = flood_figures(out, rec, ws, we, health, result) if mode == "flood" else []
    if mode == "open":
        result["ratePerPair"] = args.rate
        lag = [x for x in rec["lag"] if x is not None]
        result["scheduleLagMs"] = latency(lag)
    ctx.results[key] = result

    # The table.
    lg = out["loadgen"] or {}
    lg_cpu = (lg.get("cpuUserMs", 0) + lg.get("cpuSystemMs", 0)) / (10 * dur_s)
    rest_pct = sum(cpu.get("coreBusyPct", {}).values()) - (cpu.get("serverCpuPct") or 0) - lg_cpu
    if cpu:
        cpu["restPctOfACore"] = round(rest_pct, 1)
    cpu_fig = (
        f"server CPU {cpu.get('serverCpuPct')}% of a core "
        f"({per_cpu_s or 0:,.0f} acked msg per server CPU-s, {1e6 / (per_cpu_s or math.inf):.0f} "
        f"us/msg; PostgreSQL backends {pg_us or 0:.0f} us CPU/msg); cores busy "
        + ", ".join(f"{k} {v}%" for k, v in sorted(cpu.get("coreBusyPct", {}).items()))
        + f"; loadgen CPU {lg_cpu:.0f}% of its core, event loop "
        f"{100 * lg.get('eventLoopUtilization', 0):.0f}% busy; the rest (PostgreSQL, Redis, "
        f"anything else) {rest_pct:.0f}% of a core"
    )
    err_fig = ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none"
    integrity_fig = (
        f"{db['ackedMessages']:,} acked, {db['rows']:,} rows: missing {db['missing']}, "
        f"not as acked {db['notAsAcked']}, duplicate rows {db['duplicateRows']}, "
        f"chats with seq gaps {db['chatsWithSeqGaps']}, last_seq off {db['chatsLastSeqOff']}, "
        f"rows not acked {db['rowsNotAcked']}; deliveries to the partner: lost {delivery['lost']}, "
        f"duplicate {delivery['duplicate']}, wrong id {delivery['wrongId']}; sender echo not once "
        f"{delivery['senderEchoNotOnce']}"
    )
    integrity_ok = integrity_bad == 0
    if mode == "closed":
        name = f"closed, {n_pairs} pairs" + (f", {label}" if label else "")
        ok = rate >= CLOSED_MIN_RATE and (ack_lat["p99"] or math.inf) <= CLOSED_MAX_P99_ACK_MS
        ceiling = ctx.results.get("relay") or {}
        probe = ctx.results.get("machine", {}).get("postgresInsert") or {}
        fractions = []
        if ceiling.get("ackedPerS"):
            fractions.append(f"{rate / ceiling['ackedPerS']:.2f} of the relay's msg/s")
            result["ofRelayRate"] = round(rate / ceiling["ackedPerS"], 3)
        if ceiling.get("ackedPerServerCpuS") and per_cpu_s:
            fractions.append(f"{per_cpu_s / ceiling['ackedPerServerCpuS']:.2f} of its msg/CPU-s")
            result["ofRelayPerCpuS"] = round(per_cpu_s / ceiling["ackedPerServerCpuS"], 3)
        if probe.get("rowsPerS"):
            fractions.append(f"{rate / probe['rowsPerS']:.2f} of PostgreSQL's batched-insert rate")
            result["ofPostgresInsertRate"] = round(rate / probe["rowsPerS"], 3)
        ctx.rows += [
            Row(
                name,
                f"{rate:,.0f} acked msg/s ({acked_in_window:,} in {dur_s:.0f} s); "
                f"ack p50/p95/p99/max {fmt_lat(ack_lat)}"
                + (f"; {', '.join(fractions)}" if fractions else ""),
                f">= {CLOSED_MIN_RATE:,.0f} msg/s, p99 ack <= {CLOSED_MAX_P99_ACK_MS:.0f} ms",
                verdict(ok),
            ),
            Row("", f"delivery p50/p95/p99/max {fmt_lat(del_lat)}", "-", ""),
        ]
    elif mode == "flood":
        ctx.rows += flood_rows
    else:
        name = f"open, {n_pairs} pairs x {args.rate:g}/s"
        ok = (del_lat["p99"] or math.inf) <= OPEN_MAX_P99_DELIVERY_MS
        lag_s = result["scheduleLagMs"]
        ctx.rows += [
            Row(
                name,
                f"offered {result['offeredPerS']:,.0f} msg/s, acked {rate:,.0f} msg/s; "
                f"delivery p50/p95/p99/max {fmt_lat(del_lat)}",
                f"p99 delivery <= {OPEN_MAX_P99_DELIVERY_MS:.0f} ms",
                verdict(ok),
            ),
            Row(
                "",
                f"ack p50/p95/p99/max {fmt_lat(ack_lat)}; send schedule lag p99 "
                f"{lag_s['p99']:.1f} ms, max {lag_s['max']:.1f} ms",
                "-",
                "",
            ),
        ]
    ctx.rows += [
        Row("", cpu_fig, "-", ""),
        Row("", integrity_fig, "0 missing/duplicate/lost", verdict(integrity_ok)),
        Row(
            "",
            f"errors (NO_ACK: no ack {DRAIN_S:g} s after the window): {err_fig}",
            "every send acked, no errors",
            verdict(not errors),
        ),
    ]
    log = log_summary(server.log_path)
    result["serverLog"] = log
    result["presenceMissing"] = presence
    ctx.rows.append(log_row(server, log, presence))
    if profile is not None:
        result["profile"] = profile
    result["chatIds"] = [p.chat_id for p in pairs]
    return result


@dataclass
class HealthProbe:
    """Polls `/health` one request after the other, the latencies kept per phase."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    phase: str = ""

    def start(self, url: str, phase: str) -> None:
        self.phase = phase
        self.latencies.setdefault(phase, [])
        if self.task is None:
            self.task = asyncio.ensure_future(self._poll(url))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def _poll(self, url: str) -> None:
        async with httpx.AsyncClient(timeout=10.0) as http:
            while True:
                started = time.perf_counter()
                try:
                    ok = (await http.get(f"{url}/health")).status_code == 200
                except httpx.HTTPError:
                    ok = False
                took = (time.perf_counter() - started) * 1000
                self.latencies[self.phase].append(took if ok else math.inf)
                await asyncio.sleep(0.02)  # about 50 probes a second, not a flood of our own


def flood_figures(
    out: dict[str, Any],
    rec: dict[str, list[Any]],
    ws: float,
    we: float,
    health: HealthProbe,
    result: dict[str, Any],
) -> list[Row]:
    """The pairs' acks without and with the flood, /health during it, what the flooder got."""
    split = out.get("floodStart") or (ws + we) / 2

    def acks(lo: float, hi: float) -> dict[str, Any]:
        window = [i for i in range(len(rec["emitT"])) if lo <= rec["emitT"][i] < hi]
        ms = [rec["ackT"][i] - rec["emitT"][i] for i in window if rec["ackT"][i] is not None]
        return latency(ms, len(window) - len(ms))

    base, flooded = acks(ws, split), acks(split, we)
    ratio = (flooded["p99"] or math.inf) / (base["p99"] or math.inf)
    probes = {phase: latency(values) for phase, values in health.latencies.items()}
    worst = max(health.latencies.get("flood") or [math.inf])
    answers: dict[str, int] = (out.get("flood") or {}).get("answers", {})
    result["flood"] = {
        "pairsAckBaselineMs": base,
        "pairsAckFloodMs": flooded,
        "p99Ratio": round(ratio, 2),
        "healthMs": probes,
        "flooder": out.get("flood"),
    }
    by_code: Counter[str] = Counter()
    for key, count in answers.items():
        by_code[key.rsplit(" ", 1)[1]] += count
    sent = (out.get("flood") or {}).get("sent", 0)
    return [
        Row(
            f"flood, {result['pairs']} pairs + 1 flooder",
            f"pairs' ack without the flood {fmt_lat(base)}; with it {fmt_lat(flooded)}; "
            f"p99 ratio {ratio:.2f}",
            f"p99 with the flood <= {FLOOD_MAX_P99_RATIO:g}x without",
            verdict(ratio <= FLOOD_MAX_P99_RATIO),
        ),
        Row(
            "",
            "/health during the flood "
            + (fmt_lat(probes["flood"]) if "flood" in probes else "never polled")
            + "; without it "
            + (fmt_lat(probes["baseline"]) if "baseline" in probes else "never polled"),
            f"/health < {FLOOD_MAX_HEALTH_MS:.0f} ms",
            verdict(worst < FLOOD_MAX_HEALTH_MS),
        ),
        Row(
            "",
            f"the flooder sent {sent:,} events: "
            + ", ".join(f"{code} {n:,}" for code, n in by_code.most_common()),
            "-",
            "",
        ),
    ]


async def connect_scenario(ctx: Context) -> None:
    n = ctx.args.connect_sockets
    users = fresh_users(n, ctx.secret)
    server = ctx.server("connect")
    samples: list[Sample] = []
    profiler = Profiler("connect")
    profile: dict[str, Any] | None = None
    presence: int | None = None

    async def on_phase(line: dict[str, Any]) -> None:
        nonlocal profile, presence
        if line.get("name") == "connected":
            samples.append(Sample.take(server.pid))
            profile = await profiler.stop()
            presence = await presence_missing(ctx.redis_url, [u.id for u in users])

    async def no_barrier(line: dict[str, Any]) -> None:
        return None

    await server.start()
    try:
        background = await ctx.background("connect", server)
        samples.append(Sample.take(server.pid))
        if ctx.args.profile:
            await profiler.start(server.pid)
        config = {"scenario": "connect", "url": server.url, "tokens": [u.wire() for u in users]}
        out = await run_loadgen(config, ctx.scratch, on_phase, no_barrier, 180)
        if len(samples) < 2:
            samples.append(Sample.take(server.pid))
        await server.quiesce()
    finally:
        await profiler.stop()
        exit_code = await server.stop()
    last_ms = out["lastConnectMs"]
    errors = {
        f"{kind}:{key}": c for kind, counts in out["counters"].items() for key, c in counts.items()
    }
    each = latency(out["connectMs"], n - out["connected"])
    lg = out["loadgen"]
    lg_cpu_s = (lg["cpuUserMs"] + lg["cpuSystemMs"]) / 1000
    cpu = cpu_summary(samples[0], samples[1])
    ok = (
        out["connected"] == n
        and not errors
        and last_ms is not None
        and last_ms <= CONNECT_MAX_S * 1000
    )
    ctx.results["connect"] = {
        "sockets": n,
        "connected": out["connected"],
        "lastConnectMs": last_ms,
        "perSocketConnectMs": each,
        "clientCreationMs": round(out["createdMs"], 1),
        "errors": errors,
        "cpu": cpu,
        "loadgen": out["loadgen"],
        **_server_end(server, background, exit_code),
    }
    log = log_summary(server.log_path)
    ctx.results["connect"]["serverLog"] = log
    ctx.results["connect"]["presenceMissing"] = presence
    if profile is not None:
        ctx.results["connect"]["profile"] = profile
    err_fig = ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none"
    ctx.rows += [
        Row(
            f"connect, {n:,} sockets",
            f"{out['connected']:,}/{n:,} connected+authenticated in "
            f"{(last_ms or math.nan) / 1000:.2f} s (each: p50/p95/p99/max {fmt_lat(each)}); "
            f"errors: {err_fig}",
            f"<= {CONNECT_MAX_S:g} s, all connected",
            verdict(ok),
        ),
        Row(
            "",
            f"{out['connected'] / ((last_ms or math.inf) / 1000):,.0f} connects/s; server CPU "
            f"{cpu['serverCpuS']:.2f} s to connect them ({cpu['serverCpuPct']}% of a core, "
            f"{1000 * cpu['serverCpuS'] / max(1, n):.2f} ms/socket); loadgen CPU "
            f"{lg_cpu_s:.2f} s",
            "-",
            "",
        ),
        log_row(server, log, presence),
    ]


async def storm_scenario(ctx: Context) -> None:
    """STORM_SOCKETS sockets (in pairs that share a chat) drop at once and come back at once;
    the target: every one connected, registered, its partner's return known and its
    `users:online` answered within STORM_MAX_S of the drop."""
    n = STORM_SOCKETS
    users = fresh_users(n, ctx.secret)
    server = ctx.server("storm")
    figures: dict[str, Any] = {}

    async def on_phase(line: dict[str, Any]) -> None:
        return None

    async def on_barrier(line: dict[str, Any]) -> None:
        if line["name"] == "connected":
            figures["ticksBefore"] = cpu_ticks(server.pid)
        elif line["name"] == "settled":
            figures["ticksAfter"] = cpu_ticks(server.pid)
            figures["presenceMissing"] = await presence_missing(
                ctx.redis_url, [u.id for u in users]
            )

    await server.start()
    try:
        background = await ctx.background("storm", server)
        config = {
            "scenario": "storm",
            "url": server.url,
            "tokens": [u.wire() for u in users],
            "concurrency": 200,
        }
        out = await run_loadgen(config, ctx.scratch, on_phase, on_barrier, 300)
        await server.quiesce()
    finally:
        exit_code = await server.stop()
    errors = {
        f"{kind}:{key}": c for kind, counts in out["counters"].items() for key, c in counts.items()
    }
    last = out["lastReadyMs"]
    cpu_s = (figures.get("ticksAfter", 0) - figures.get("ticksBefore", 0)) / CLK_TCK
    ok = (
        out["ready"] == n
        and not errors
        and last is not None
        and last <= STORM_MAX_S * 1000
        and not figures.get("presenceMissing")
    )
    log = log_summary(server.log_path)
    ctx.results["storm"] = {
        **out,
        "errors": errors,
        "serverCpuS": round(cpu_s, 2),
        "presenceMissing": figures.get("presenceMissing"),
        "serverLog": log,
        **_server_end(server, background, exit_code),
    }
    err_fig = ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none"
    ctx.rows += [
        Row(
            f"reconnect storm, {n:,} sockets",
            f"all dropped at once and back at once: {out['ready']:,}/{n:,} ready (connected, "
            f"partner's return known, users:online answered) in "
            f"{(last or math.nan) / 1000:.2f} s (last connect {out['lastConnectMs'] / 1000:.2f} "
            f"s); server CPU {cpu_s:.2f} s; errors: {err_fig}",
            f"<= {STORM_MAX_S:g} s, all ready",
            verdict(ok),
        ),
        log_row(server, log, figures.get("presenceMissing")),
    ]


async def idle_scenario(ctx: Context) -> None:
    n = ctx.args.idle_sockets
    users = fresh_users(n + 200, ctx.secret)
    server = ctx.server("idle")
    figures: dict[str, Any] = {}

    async def on_phase(line: dict[str, Any]) -> None:
        return None

    async def settle() -> int:
        """RSS once it stops moving and the server is idle (at most 20 s)."""
        prev = rss_kb(server.pid)
        prev_ticks = cpu_ticks(server.pid)
        stable = 0
        for _ in range(40):
            await asyncio.sleep(0.5)
            cur = rss_kb(server.pid)
            ticks = cpu_ticks(server.pid)
            busy = (ticks - prev_ticks) / CLK_TCK / 0.5
            stable = stable + 1 if abs(cur - prev) <= 0.002 * prev and busy < 0.05 else 0
            prev, prev_ticks = cur, ticks
            if stable >= 3:
                break
        return prev

    async def on_barrier(line: dict[str, Any]) -> None:
        if line["name"] == "before":
            figures["rssBeforeKb"] = await settle()
            figures["ticksBefore"] = cpu_ticks(server.pid)
        elif line["name"] == "connected":
            figures["connectedReported"] = line.get("connected")
            figures["ticksConnected"] = cpu_ticks(server.pid)
            figures["rssAfterKb"] = await settle()
            figures["presenceMissing"] = await presence_missing(
                ctx.redis_url, [u.id for u in users[:n]]
            )

    await server.start()
    try:
        background = await ctx.background("idle", server)
        config = {
            "scenario": "idle",
            "url": server.url,
            "tokens": [u.wire() for u in users[:n]],
            "warmTokens": [u.wire() for u in users[n:]],
            "concurrency": 200,
        }
        out = await run_loadgen(config, ctx.scratch, on_phase, on_barrier, 300)
        await server.quiesce()
    finally:
        exit_code = await server.stop()
    connected = out["connected"]
    log = log_summary(server.log_path)
    delta = figures["rssAfterKb"] - figures["rssBeforeKb"]
    per_conn = delta / max(1, connected)
    errors = {
        f"{kind}:{key}": c for kind, counts in out["counters"].items() for key, c in counts.items()
    }
    ok = per_conn <= IDLE_MAX_KB_PER_CONN and connected == n and out["alive"] == n and not errors
    cpu_s = (figures["ticksConnected"] - figures["ticksBefore"]) / CLK_TCK
    ctx.results["idle"] = {
        "sockets": n,
        "connected": connected,
        "aliveAfterSettling": out["alive"],
        "rssBeforeKb": figures["rssBeforeKb"],
        "rssAfterKb": figures["rssAfterKb"],
        "kbPerConnection": round(per_conn, 2),
        "connectS": round(out["connectedInMs"] / 1000, 2),
        "serverCpuSToConnect": round(cpu_s, 2),
        "errors": errors,
        "presenceMissing": figures["presenceMissing"],
        "serverLog": log,
        **_server_end(server, background, exit_code),
    }
    err_fig = ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none"
    ctx.rows += [
        Row(
            f"idle, {n:,} sockets",
            f"RSS {figures['rssBeforeKb'] / 1024:,.1f} -> {figures['rssAfterKb'] / 1024:,.1f} MB: "
            f"{per_conn:.1f} kB per connection ({connected:,} connected, {out['alive']:,} still "
            f"up after settling); errors: {err_fig}",
            f"<= {IDLE_MAX_KB_PER_CONN:g} kB/conn",
            verdict(ok),
        ),
        Row(
            "",
            f"connected in {out['connectedInMs'] / 1000:.2f} s (200 handshakes in flight), server "
            f"CPU {cpu_s:.2f} s",
            "-",
            "",
        ),
        log_row(server, log, figures["presenceMissing"]),
    ]


# -- output ---------------------------------------------------------------------------------------


# -- contact policies ----------------------------------------------------------------------------

CONTACTS_MIN_RATIO = 0.95  # the closed loop with the contact check keeps 95% of it without
ROUNDS = 2  # rounds of each setting when two are compared (see `alternate`)
# A text with digits: the detector reads it whole and the split-number memory costs a Redis call.
NUMBER_TEXT = "Can you do 1500 for it? I could pick it up tomorrow after 18:30."


async def alternate(
    ctx: Context, first: tuple[str, dict[str, str]], second: tuple[str, dict[str, str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The closed loop with two settings, alternately for `ROUNDS` rounds, so that both meet
    the same moments of the machine (a comparison of two runs minutes apart measured the
    machine's other load as much as the change)."""
    a_runs: list[dict[str, Any]] = []
    b_runs: list[dict[str, Any]] = []
    for n in range(1, ROUNDS + 1):
        for (label, env), runs in ((first, a_runs), (second, b_runs)):
            runs.append(await message_scenario(ctx, "closed", label=f"{label}, round {n}", env=env))
    return a_runs, b_runs


def best(runs: list[dict[str, Any]], key: str) -> float:
    """Other load on the machine only ever slows a round down: the best round counts."""
    return max((r.get(key) or 0.0) for r in runs)


async def contacts_scenario(ctx: Context) -> None:
    """The closed loop with CONTACT_POLICY=off and with the default (mask), alternately (the
    best round of each counts), then once with mask on a text with digits (the split-number
    memory's Redis call on every send)."""
    off_runs, mask_runs = await alternate(
        ctx,
        ("contact policy off", {"CONTACT_POLICY": "off"}),
        ("contact policy mask", {}),
    )
    digits = await message_scenario(
        ctx, "closed", label="contact policy mask, digits", text=NUMBER_TEXT
    )
    off, on = best(off_runs, "ackedPerS"), best(mask_runs, "ackedPerS")
    off_cpu, on_cpu = best(off_runs, "ackedPerServerCpuS"), best(mask_runs, "ackedPerServerCpuS")
    ratio = on / off if off else 0.0
    cpu_ratio = on_cpu / off_cpu if off_cpu else 0.0
    digits_ratio = digits["ackedPerS"] / off if off else 0.0
    ctx.results["contacts"] = {
        "offPerS": off,
        "maskPerS": on,
        "offPerServerCpuS": off_cpu,
        "maskPerServerCpuS": on_cpu,
        "maskDigitsPerS": digits["ackedPerS"],
        "ratio": round(ratio, 3),
        "cpuRatio": round(cpu_ratio, 3),
        "digitsRatio": round(digits_ratio, 3),
    }
    ctx.rows += [
        Row(
            "contact check: closed loop",
            f"best of {ROUNDS} rounds: {on:,.0f} acked msg/s with CONTACT_POLICY=mask, "
            f"{off:,.0f} with off ({100 * ratio:.1f}%); per server CPU-s {on_cpu:,.0f} and "
            f"{off_cpu:,.0f} ({100 * cpu_ratio:.1f}%); mask on a text with digits: "
            f"{digits['ackedPerS']:,.0f} acked msg/s ({100 * digits_ratio:.1f}%)",
            f">= {100 * CONTACTS_MIN_RATIO:.0f}% of the throughput with off",
            verdict(ratio >= CONTACTS_MIN_RATIO),
        ),
    ]


# -- webhooks ------------------------------------------------------------------------------------

WEBHOOKS_MIN_RATIO = 0.9  # the closed loop with webhooks on keeps 90% of its throughput
DISPATCH_MIN_RATE = 2000.0  # events/s the dispatcher delivers to a local receiver
DISPATCH_EVENTS = 20_000
DISPATCH_LANES = 2_000  # chats the events belong to: each one's events go out in order
DISPATCH_TIMEOUT_S = 120.0

# A receiver that answers every POST with 200 at once (HTTP/1.1 keep-alive) and counts them;
# `GET /count` tells the count. Run with the interpreter, pinned beside the load generator.
SINK = textwrap.dedent(
    """
    import asyncio, sys
    count = 0
    async def serve(reader, writer):
        global count
        try:
            while True:
                head = await reader.readuntil(b"\\r\\n\\r\\n")
                length = 0
                for line in head.split(b"\\r\\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                if length:
                    await reader.readexactly(length)
                if head.startswith(b"GET /count"):
                    body = str(count).encode()
                else:
                    count += 1
                    body = b"ok"
                reply = b"HTTP/1.1 200 OK\\r\\nContent-Length: %d\\r\\n\\r\\n" % len(body)
                writer.write(reply + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
    async def main():
        server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]), backlog=1024)
        async with server:
            await server.serve_forever()
    asyncio.run(main())
    """
)


@dataclass
class Sink:
    port: int = field(default_factory=free_port)
    proc: asyncio.subprocess.Process | None = None
    client: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/chat-events"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "taskset", "-c", str(LOADGEN_CORE), sys.executable, "-c", SINK, str(self.port)
        )
        async with httpx.AsyncClient(timeout=1.0) as client:
            for _ in range(100):
                with contextlib.suppress(httpx.HTTPError):
                    await client.get(f"http://127.0.0.1:{self.port}/count")
                    return
                await asyncio.sleep(0.05)
        raise RuntimeError("the webhook sink did not start")

    async def count(self) -> int:
        # One kept-alive client: a fresh one per poll cost the driver tens of milliseconds of
        # CPU each, on the core the receiver answers from.
        if self.client is None:
            self.client = httpx.AsyncClient(timeout=2.0)
        return int((await self.client.get(f"http://127.0.0.1:{self.port}/count")).text)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


# The receiver's ceiling: the service's own webhook client, alone on the service's core, posting
# as fast as the sink answers with as many requests in flight as the dispatcher keeps; prints
# requests/s and the client's CPU per request. The dispatcher's rate is shown as a share of it.
CEILING = textwrap.dedent(
    """
    import asyncio, json, resource, sys, time
    import uvloop
    from marketplace_chat.webhooks.dispatcher import CONCURRENCY
    from marketplace_chat.webhooks.poster import WebhookPoster
    async def main():
        poster = WebhookPoster(sys.argv[1], 5.0, CONCURRENCY)
        body, n = b'{"x":"' + b"y" * int(sys.argv[3]) + b'"}', int(sys.argv[2])
        left = n
        async def worker():
            nonlocal left
            while left > 0:
                left -= 1
                assert await poster.post(body, {"Content-Type": "application/json"}) is None
        assert await poster.post(body, {}) is None  # the pool's first connection, and imports
        cpu = lambda: sum(resource.getrusage(resource.RUSAGE_SELF)[:2])
        started, used = time.monotonic(), cpu()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        per_s = n / (time.monotonic() - started)
        us = 1e6 * (cpu() - used) / n
        print(json.dumps({"perS": round(per_s, 1), "cpuUsPerRequest": round(us, 1)}))
        await poster.aclose()
    uvloop.run(main())
    """
)


async def sink_ceiling(sink: Sink, requests: int = DISPATCH_EVENTS) -> dict[str, float]:
    proc = await asyncio.create_subprocess_exec(
        "taskset",
        "-c",
        str(SERVER_CORE),
        sys.executable,
        "-c",
        CEILING,
        sink.url,
        str(requests),
        str(len(MESSAGE_TEXT) * 6),  # about a message.created body
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), DISPATCH_TIMEOUT_S)
    if proc.returncode != 0:
        raise RuntimeError("the ceiling measurement failed")
    figures: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return figures


def hook_env(sink: Sink) -> dict[str, str]:
    return {"WEBHOOK_URL": sink.url, "WEBHOOK_SECRET": secrets.token_urlsafe(24)}


async def settle_outbox(database_url: str, chat_ids: list[str]) -> dict[str, int]:
    """Drops the pending events of a run's own chats (their reminders fall due after it), so
    that they do not load the next scenario's dispatcher; how many of each type there were."""
    conn = await asyncpg.connect(database_url, timeout=10)
    try:
        rows = await conn.fetch(
            "WITH dropped AS (UPDATE chat.outbox SET status = 'cancelled', finished_at = now() "
            "WHERE status = 'pending' AND chat_id = ANY($1::uuid[]) RETURNING type) "
            "SELECT type, count(*) AS n FROM dropped GROUP BY type",
            chat_ids,
        )
    finally:
        await conn.close()
    return {r["type"]: r["n"] for r in rows}


# DISPATCH_EVENTS pending events of DISPATCH_LANES synthetic chats, with a message.created body of
# the usual size, all due now; returns their ids.
DISPATCH_FILL = """
INSERT INTO chat.outbox (id, type, lane, chat_id, data, created_at, next_attempt_at)
SELECT gen_random_uuid(), 'message.created', lanes.id, lanes.id,
       jsonb_build_object(
         'message', jsonb_build_object('id', gen_random_uuid(), 'chatId', lanes.id, 'seq', g,
                                       'senderId', 1, 'text', $3::text, 'productId', NULL,
                                       'clientMessageId', NULL, 'createdAt', now()),
         'chat', jsonb_build_object('id', lanes.id, 'buyerId', 1, 'sellerId', 2,
                                    'productId', NULL),
         'recipientId', 2),
       now(), now()
  FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, $1)) lanes,
       generate_series(1, $2 / $1) g
 ORDER BY g
RETURNING id
"""


async def dispatch_rate(ctx: Context, sink: Sink) -> dict[str, Any]:
    """A service with webhooks on and no clients: how fast it delivers a backlog."""
    await vacuum(ctx.database_url)
    server = ctx.server("dispatch", **hook_env(sink))
    conn = await asyncpg.connect(ctx.database_url, timeout=10)
    try:
        await server.start()
        background = await ctx.background("dispatch", server)
        before = await sink.count()
        ids = [
            str(r["id"])
            for r in await conn.fetch(DISPATCH_FILL, DISPATCH_LANES, DISPATCH_EVENTS, MESSAGE_TEXT)
        ]
        a = Sample.take(server.pid)
        started = time.monotonic()
        deadline = started + DISPATCH_TIMEOUT_S
        delivered = 0
        # The receiver's count is watched until every event has arrived, and only then the
        # outbox, for the settles: a count over the events' ids every few milliseconds costs
        # PostgreSQL more CPU than the dispatcher's own statements, on the cores it shares.
        while time.monotonic() < deadline:
            if await sink.count() - before >= len(ids):
                break
            await asyncio.sleep(0.05)
        while time.monotonic() < deadline:
            delivered = await conn.fetchval(
                "SELECT count(*) FROM chat.outbox WHERE id = ANY($1::uuid[]) "
                "AND status = 'delivered'",
                ids,
            )
            if delivered == len(ids):
                break
            await asyncio.sleep(0.02)
        elapsed = time.monotonic() - started
        b = Sample.take(server.pid)
        received = await sink.count() - before
        await conn.execute(
            "UPDATE chat.outbox SET status = 'cancelled' WHERE id = ANY($1::uuid[]) "
            "AND status = 'pending'",
            ids,
        )
    finally:
        await conn.close()
        exit_code = await server.stop()
    cpu = cpu_summary(a, b)
    return {
        "events": len(ids),
        "lanes": DISPATCH_LANES,
        "delivered": delivered,
        "receivedBySink": received,
        "seconds": round(elapsed, 2),
        "deliveredPerS": round(delivered / elapsed, 1) if elapsed else None,
        "cpuUsPerEvent": round(1e6 * (b.server_ticks - a.server_ticks) / CLK_TCK / delivered)
        if delivered
        else None,
        "cpu": cpu,
        **_server_end(server, background, exit_code),
    }


def _pending(by_type: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {t}" for t, n in sorted(by_type.items())) or "none"


async def webhooks_scenario(ctx: Context) -> None:
    """The closed loop without webhooks and with them (every message's event delivered to a
    local receiver while the loop runs), then the dispatcher's rate on a backlog."""
    sink = Sink()
    await sink.start()
    try:
        received = await sink.count()
        off_runs, on_runs = await alternate(
            ctx, ("webhooks off", {}), ("webhooks on", hook_env(sink))
        )
        left: dict[str, int] = {}
        for run in on_runs:
            for kind, n in (await settle_outbox(ctx.database_url, run["chatIds"])).items():
                left[kind] = left.get(kind, 0) + n
        received = await sink.count() - received
        acked_on = sum(run["database"]["ackedMessages"] for run in on_runs)
        dispatch = await dispatch_rate(ctx, sink)
        ceiling = await sink_ceiling(sink)
        dispatch["ceilingPerS"] = ceiling["perS"]
        dispatch["clientCpuUsPerRequest"] = ceiling["cpuUsPerRequest"]
    finally:
        await sink.stop()
    off, on = best(off_runs, "ackedPerS"), best(on_runs, "ackedPerS")
    ratio = on / off if off else 0.0
    rate = dispatch["deliveredPerS"] or 0.0
    dispatch["ofCeiling"] = round(rate / dispatch["ceilingPerS"], 3)
    ctx.results["webhooks"] = {"closedRatio": round(ratio, 3), "dispatch": dispatch}
    ctx.rows += [
        Row(
            "webhooks on: closed loop",
            f"best of {ROUNDS} rounds each, alternately: {on:,.0f} acked msg/s with webhooks, "
            f"{off:,.0f} without ({100 * ratio:.0f}%); {received:,} webhooks received for "
            f"{acked_on:,} messages acked with them on, by the end of the runs; pending then: "
            f"{_pending(left)}",
            f">= {100 * WEBHOOKS_MIN_RATIO:.0f}% of the throughput without",
            verdict(ratio >= WEBHOOKS_MIN_RATIO),
        ),
        Row(
            "webhooks: dispatcher",
            f"{dispatch['deliveredPerS'] or 0:,.0f} events/s: {dispatch['delivered']:,} of "
            f"{dispatch['events']:,} ({dispatch['lanes']:,} chats) delivered in "
            f"{dispatch['seconds']} s; server CPU {dispatch['cpu'].get('serverCpuPct')}% of a core "
            f"({dispatch['cpuUsPerEvent']} us per event); "
            f"the receiver's ceiling {dispatch['ceilingPerS']:,.0f} requests/s from the same "
            f"client alone ({100 * dispatch['ofCeiling']:.0f}% of it), which spends "
            f"{dispatch['clientCpuUsPerRequest']} us of CPU per request",
            f">= {DISPATCH_MIN_RATE:,.0f} events/s to a local receiver",
            verdict((dispatch["deliveredPerS"] or 0) >= DISPATCH_MIN_RATE),
        ),
    ]


SCENARIOS = ("relay", "closed", "open", "flood", "connect", "idle", "storm", "webhooks", "contacts")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


async def machine_figures(database_url: str) -> dict[str, Any]:
    """What this machine can do at all, measured in the same run as the service's figures."""
    print("probing the machine ...", file=sys.stderr, flush=True)
    return {
        "cpuModel": cpu_model(),
        "cpuProbeMs": await asyncio.to_thread(cpu_probe_ms),
        "postgresInsert": await pg_insert_probe(database_url),
    }


def machine_row(machine: dict[str, Any]) -> Row:
    pg = machine["postgresInsert"]
    return Row(
        "machine",
        f"{machine['cpuModel']}, {os.cpu_count()} cores; CPU probe (a fixed pure-Python loop "
        f"of 1,000,000 steps, best of 5, on the server's core) {machine['cpuProbeMs']:.0f} ms; "
        f"PostgreSQL batched insert: {pg['rowsPerS']:,} rows/s in statements of "
        f"{pg['rowsPerStatement']} rows, one commit each ({pg['statementMs']:.2f} ms a "
        f"statement, {pg['usPerRow']:.0f} us a row)",
        "-",
        "",
    )


def print_table(rows: list[Row]) -> None:
    widths = (26, 78, 38, 6)
    head = ("scenario", "figures", "target", "result")
    line = "+".join("-" * (w + 2) for w in widths)
    print(line)
    print("|".join(f" {h:<{w}} " for h, w in zip(head, widths, strict=True)))
    print(line)
    for i, row in enumerate(rows):
        if i and row.scenario:
            print(line)
        cells = [
            textwrap.wrap(text, w) or [""]
            for text, w in zip(
                (row.scenario, row.figures, row.target, row.verdict), widths, strict=True
            )
        ]
        for k in range(max(len(c) for c in cells)):
            print(
                "|".join(
                    f" {(c[k] if k < len(c) else ''):<{w}} "
                    for c, w in zip(cells, widths, strict=True)
                )
            )
    print(line)


def source_version() -> str:
    """The commit measured, and whether src/ differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head or 'unknown'}{' + uncommitted changes in src/' if dirty else ''}"


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else hard
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--scenario",
        type=lambda v: v.split(","),
        default=["all"],
        help="one or more of " + ", ".join(SCENARIOS) + " (comma-separated), or all",
    )
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds (default 20)")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring (3)")
    p.add_argument("--pairs", type=int, help="pairs for closed/open (default 50 / 200)")
    p.add_argument("--rate", type=float, default=5.0, help="open loop: msg/s per pair (5)")
    p.add_argument("--idle-sockets", type=int, default=5000)
    p.add_argument("--connect-sockets", type=int, default=2000)
    p.add_argument("--json", type=Path, default=RESULTS_DIR / "load.json", help="JSON output")
    p.add_argument(
        "--profile",
        action="store_true",
        help="py-spy the server during the measured window of closed, open and connect "
        "(benchmarks/results/SCENARIO-profile.txt; pip install py-spy into the venv)",
    )
    return p.parse_args(argv)


async def _answers(probe: Callable[[], Awaitable[object]]) -> bool:
    try:
        async with asyncio.timeout(3):
            await probe()
    except Exception:  # any failure means: not usable, fall back to an embedded server
        return False
    return True


async def backends(scratch: Path, stack: contextlib.ExitStack) -> tuple[str, str]:
    """BENCH_DATABASE_URL / BENCH_REDIS_URL, else the machine's servers on their standard ports
    when they answer, else embedded ones for this run (stopped with `stack`)."""
    from marketplace_chat.embedded import EmbeddedServers

    database_url = os.environ.get("BENCH_DATABASE_URL")
    redis_url = os.environ.get("BENCH_REDIS_URL")

    async def pg() -> None:
        await (await asyncpg.connect(DEFAULT_DATABASE_URL, timeout=3)).close()

    async def rd() -> None:
        client = aioredis.from_url(DEFAULT_REDIS_URL)
        try:
            await client.ping()
        finally:
            await client.aclose()

    embedded: EmbeddedServers | None = None
    if database_url is None:
        if await _answers(pg):
            database_url = DEFAULT_DATABASE_URL
        else:
            embedded = EmbeddedServers(scratch / "embedded")
            stack.callback(embedded.stop)
            database_url = embedded.start_postgres()
    if redis_url is None:
        if await _answers(rd):
            redis_url = DEFAULT_REDIS_URL
        else:
            if embedded is None:
                embedded = EmbeddedServers(scratch / "embedded")
                stack.callback(embedded.stop)
            redis_url = embedded.start_redis()
    print(
        f"backends: PostgreSQL {_masked(database_url)}, Redis {_masked(redis_url)}"
        + (" (embedded, for this run)" if embedded is not None else ""),
        file=sys.stderr,
        flush=True,
    )
    return database_url, redis_url


def _masked(url: str) -> str:
    from marketplace_chat.preflight import masked

    return masked(url)


async def amain(args: argparse.Namespace) -> int:
    if not (JS_DIR / "node_modules" / "socket.io-client").is_dir():
        print("benchmarks/js/node_modules missing: run `npm ci` in benchmarks/js", file=sys.stderr)
        return 2
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    raise_fd_limit()
    # The driver itself keeps off the server's core.
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {LOADGEN_CORE})
    scenarios = list(SCENARIOS) if "all" in args.scenario else args.scenario
    unknown = [name for name in scenarios if name not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    if "closed" in scenarios and "relay" not in scenarios:
        scenarios.insert(0, "relay")  # the closed loop's figures are read against its ceiling
    started = time.time()
    version = source_version()
    with (
        tempfile.TemporaryDirectory(prefix="chat-bench-") as scratch,
        contextlib.ExitStack() as stack,
    ):
        database_url, redis_url = await backends(Path(scratch), stack)
        # The rounds vacuum the service's tables before its server starts (and migrates): on a
        # database that has never held them, the schema must be there first.
        await asyncio.to_thread(upgrade, database_url)
        ctx = Context(
            args=args,
            secret=secrets.token_urlsafe(32),
            database_url=database_url,
            redis_url=redis_url,
            scratch=Path(scratch),
        )
        ctx.results["machine"] = machine = await machine_figures(database_url)
        ctx.rows.append(machine_row(machine))
        for name in scenarios:
            print(f"running {name} ...", file=sys.stderr, flush=True)
            try:
                if name == "relay":
                    await message_scenario(ctx, "closed", relay=True)
                elif name in ("closed", "open", "flood"):
                    await message_scenario(ctx, name)
                elif name == "storm":
                    await storm_scenario(ctx)
                elif name == "connect":
                    await connect_scenario(ctx)
                elif name == "webhooks":
                    await webhooks_scenario(ctx)
                elif name == "contacts":
                    await contacts_scenario(ctx)
                else:
                    await idle_scenario(ctx)
            except Exception as exc:  # one broken scenario must not hide the others' figures
                ctx.results[name] = {"error": f"{type(exc).__name__}: {exc}"}
                ctx.rows.append(
                    Row(name, f"did not complete: {type(exc).__name__}: {exc}"[:600], "-", "FAIL")
                )
    print(
        f"marketplace-chat {version}; server on core {SERVER_CORE}, loadgen on core {LOADGEN_CORE}"
    )
    print_table(ctx.rows)
    for warning in ctx.warnings:
        print(f"WARNING: {warning}")
    failed = [r for r in ctx.rows if r.verdict == "FAIL"]
    for mode in ("closed", "open", "connect"):
        profile = ctx.results.get(mode, {}).get("profile")
        if profile:
            print(f"\nserver profile, {mode} ({profile['file']}), % of samples:")
            for kind in ("selfByPackage", "self", "inclusive"):
                print(f"  top {kind}:")
                for frame, pct in profile[kind]:
                    print(f"    {pct:5.1f}%  {frame}")
    report = {
        "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "elapsedS": round(time.time() - started, 1),
        "source": version,
        "machine": {
            "cpus": os.cpu_count(),
            "serverCore": SERVER_CORE,
            "loadgenCore": LOADGEN_CORE,
            **ctx.results.get("machine", {}),
        },
        "targets": {
            "closedMinAckedPerS": CLOSED_MIN_RATE,
            "closedMaxP99AckMs": CLOSED_MAX_P99_ACK_MS,
            "openMaxP99DeliveryMs": OPEN_MAX_P99_DELIVERY_MS,
            "idleMaxKbPerConnection": IDLE_MAX_KB_PER_CONN,
            "connectMaxS": CONNECT_MAX_S,
            "stormMaxS": STORM_MAX_S,
            "webhooksMinClosedRatio": WEBHOOKS_MIN_RATIO,
            "dispatchMinPerS": DISPATCH_MIN_RATE,
        },
        "scenarios": ctx.results,
        "table": [r.__dict__ for r in ctx.rows],
        "warnings": ctx.warnings,
        "passed": not failed,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    summary = "all targets met" if not failed else f"{len(failed)} row(s) FAIL"
    print(f"\n{summary}; JSON: {args.json}")
    return 0 if not failed else 1


def main() -> int:
    return asyncio.run(amain(parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
