// Load generator of the marketplace-chat benchmark (driven by benchmarks/load.py).
//
//   node loadgen.mjs CONFIG.json
//
// CONFIG: { scenario: "closed"|"open"|"idle"|"connect", url, out, tag, ...scenario fields }
//   closed: pairs [{buyer:{id,token}, seller:{id,token}}], warmupMs, durationMs, drainMs, text
//   open:   the same plus ratePerPair (messages per second per pair)
//   flood:  closed's fields plus flooder {id,token}, victim id, floodSockets, floodLanes: the
//           closed loop runs durationMs without the flood, then durationMs more while one user
//           floods every event type from its own sockets (floodStart marks the switch)
//   idle:   tokens [..] (one user each), warmTokens [..], concurrency
//   connect: tokens [..]
//   storm:  tokens [..] (pairs: 2k and 2k+1 share a chat), concurrency
//
// stdout carries one JSON object a line for the driver:
//   {"type":"phase","name":...,"t":ms}          progress (measure-start / measure-end mark the window)
//   {"type":"barrier","name":...}               waits for one line on stdin before going on
//   {"type":"done","out":path}                  the results were written to `out`
// Results are column arrays (one entry per message) so the driver does all the statistics.
//
// Efficiency: one process, one event loop; payload objects are built before the clock starts;
// timing is performance.now() (monotonic, hrtime-based, sub-microsecond); clientMessageId is
// `${tag}-${index}` so a delivery is matched to its record without a Map lookup.
import { readFileSync, writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { monitorEventLoopDelay, performance } from "node:perf_hooks";
import { io } from "socket.io-client";

const cfg = JSON.parse(readFileSync(process.argv[2], "utf8"));
const now = () => performance.now();
const SOCKET_OPTS = {
  transports: ["websocket"],
  forceNew: true, // one connection per socket, never multiplexed
  reconnection: false, // a dropped or refused socket is counted, never silently retried
  timeout: 30000,
};

function say(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

const stdinLines = [];
const stdinWaiters = [];
createInterface({ input: process.stdin }).on("line", (line) => {
  const waiter = stdinWaiters.shift();
  if (waiter) waiter(line);
  else stdinLines.push(line);
});

function barrier(name, extra = {}) {
  say({ type: "barrier", name, ...extra });
  if (stdinLines.length) return Promise.resolve(stdinLines.shift());
  return new Promise((resolve) => stdinWaiters.push(resolve));
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// -- sockets ---------------------------------------------------------------------------------

const counters = { connectErrors: {}, authErrors: {}, disconnects: {}, exceptions: {} };
let closing = false;

function bump(map, key) {
  map[key] = (map[key] ?? 0) + 1;
}

/** Opens one socket; resolves with the connect time (ms since `t0`), or null on failure.
 * The client's own `timeout` covers the Engine.IO handshake only; a namespace CONNECT that never
 * comes is counted here after CONNECT_TIMEOUT_MS. */
const CONNECT_TIMEOUT_MS = cfg.connectTimeoutMs ?? 30000;
function openSocket(token, userId, t0, onSocket) {
  return new Promise((resolve) => {
    const socket = io(`${cfg.url}/chat`, { ...SOCKET_OPTS, auth: { token } });
    socket.userId = userId;
    onSocket?.(socket);
    const timer = setTimeout(() => {
      bump(counters.connectErrors, `no connect within ${CONNECT_TIMEOUT_MS} ms`);
      resolve({ socket, at: null });
    }, CONNECT_TIMEOUT_MS);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve({ socket, at: now() - t0 });
    });
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      bump(counters.connectErrors, err?.message ?? String(err));
      resolve({ socket, at: null });
    });
    socket.on("auth:error", (e) => bump(counters.authErrors, e?.code ?? "unknown"));
    socket.on("exception", (e) => bump(counters.exceptions, e?.code ?? "unknown"));
    socket.on("disconnect", (reason) => {
      if (!closing) bump(counters.disconnects, reason);
    });
  });
}

/** Opens sockets with at most `concurrency` handshakes in flight. */
async function openMany(specs, concurrency, t0, onSocket) {
  const results = new Array(specs.length);
  let next = 0;
  async function worker() {
    while (next < specs.length) {
      const i = next++;
      results[i] = await openSocket(specs[i].token, specs[i].id, t0, onSocket);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, specs.length) }, worker));
  return results;
}

function closeAll(sockets) {
  closing = true;
  for (const s of sockets) s.disconnect();
}

function loopStats(histogram, eluStart, cpuStart) {
  const elu = performance.eventLoopUtilization(eluStart);
  const cpu = process.cpuUsage(cpuStart);
  return {
    eventLoopUtilization: elu.utilization,
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    loopDelayP99Ms: histogram.percentile(99) / 1e6,
    loopDelayMaxMs: histogram.max / 1e6,
  };
}

// -- message scenarios (closed and open loop) -------------------------------------------------

async function runMessages(mode) {
  const pairs = cfg.pairs;
  const P = pairs.length;
  const prefix = `${cfg.tag}-`;
  const cut = prefix.length;

  // Column records, one entry per message.
  const pairOf = [];
  const fromBuyer = [];
  const emitT = [];
  const ackT = [];
  const ok = [];
  const err = [];
  const ids = [];
  const seqs = [];
  const delT = [];
  const delCount = [];
  const delId = [];
  const echo = [];
  const lag = [];
  let foreign = 0;

  function onMessageNew(socket, msg) {
    const cmid = msg?.clientMessageId;
    if (typeof cmid !== "string" || !cmid.startsWith(prefix)) {
      foreign++;
      return;
    }
    const i = +cmid.slice(cut);
    if (msg.senderId === socket.userId) {
      echo[i]++;
      return;
    }
    if (delCount[i]++ === 0) {
      delT[i] = now();
      delId[i] = msg.id;
    }
  }

  const t0 = now();
  const specs = [];
  for (const p of pairs) specs.push(p.buyer, p.seller);
  const opened = await openMany(specs, 200, t0, (socket) =>
    socket.on("message:new", (msg) => onMessageNew(socket, msg)),
  );
  const sockets = opened.map((o) => o.socket);
  const failed = opened.filter((o) => o.at === null).length;
  say({ type: "phase", name: "connected", sockets: sockets.length, failed });
  if (failed) {
    closeAll(sockets);
    return { error: `${failed} sockets failed to connect`, counters };
  }
  // One chat per pair, opened by its buyer with `chat:create` (before the clock starts).
  const chatIds = await Promise.all(
    pairs.map(
      (p, k) =>
        new Promise((resolve, reject) =>
          sockets[2 * k]
            .timeout(30000)
            .emit("chat:create", { buyerId: p.buyer.id, sellerId: p.seller.id }, (err, res) =>
              res?.success
                ? resolve(res.data.id)
                : reject(new Error(`chat:create: ${err ?? JSON.stringify(res)}`)),
            ),
        ),
    ),
  );
  say({ type: "phase", name: "chats", chats: chatIds.length });
  await sleep(300); // let the user:online and chat:created events of the set-up pass

  // Everything a send needs, built before the clock starts.
  const lanes = pairs.map((p, k) => ({
    buyer: sockets[2 * k],
    seller: sockets[2 * k + 1],
    chatId: chatIds[k],
    text: cfg.text,
    sent: 0,
  }));

  function newRecord(k, buyer) {
    const i = pairOf.length;
    pairOf.push(k);
    fromBuyer.push(buyer);
    emitT.push(0);
    ackT.push(null);
    ok.push(false);
    err.push(null);
    ids.push(null);
    seqs.push(null);
    delT.push(null);
    delCount.push(0);
    delId.push(null);
    echo.push(0);
    lag.push(null);
    return i;
  }

  let inflight = 0;
  let stopping = false;
  let onIdle = null;

  function send(i, socket, payload, then) {
    inflight++;
    emitT[i] = now();
    socket.emit("message:send", payload, (res) => {
      ackT[i] = now();
      inflight--;
      if (res && res.success === true) {
        ok[i] = true;
        ids[i] = res.data?.id ?? null;
        seqs[i] = res.data?.seq ?? null;
      } else {
        err[i] = res?.code ?? "BAD_ACK";
      }
      if (then !== null) then();
      if (inflight === 0 && onIdle !== null) onIdle();
    });
  }

  const warm = cfg.warmupMs;
  // The flood scenario measures two windows back to back: without the flood, then with it.
  const flooding = mode === "flood";
  const dur = flooding ? 2 * cfg.durationMs : cfg.durationMs;
  const histogram = monitorEventLoopDelay({ resolution: 5 });
  let eluStart = null;
  let cpuStart = null;
  let loadgen = null;
  const start = now();
  const warmEnd = start + warm;
  const end = warmEnd + dur;
  const markStart = setTimeout(() => {
    say({ type: "phase", name: "measure-start" });
    histogram.enable();
    eluStart = performance.eventLoopUtilization();
    cpuStart = process.cpuUsage();
  }, warm);
  let flood = null;
  let floodStart = null;
  let floodResult = null;
  const markFlood = flooding
    ? setTimeout(async () => {
        floodStart = now() - start;
        say({ type: "phase", name: "flood-start" });
        flood = await startFlood(chatIds);
      }, warm + cfg.durationMs)
    : null;
  const markEnd = new Promise((resolve) =>
    setTimeout(() => {
      say({ type: "phase", name: "measure-end" });
      if (flood !== null) floodResult = flood.stop();
      histogram.disable();
      loadgen = loopStats(histogram, eluStart, cpuStart);
      stopping = true;
      resolve();
    }, warm + dur),
  );

  if (mode === "closed" || flooding) {
    // Each pair: buyer, seller, buyer, … ; the next send goes out as soon as the ack is in.
    const step = (k) => {
      if (stopping) return;
      const lane = lanes[k];
      const buyer = lane.sent % 2 === 0;
      lane.sent++;
      const i = newRecord(k, buyer);
      const payload = { chatId: lane.chatId, text: lane.text, clientMessageId: prefix + i };
      send(i, buyer ? lane.buyer : lane.seller, payload, () => step(k));
    };
    for (let k = 0; k < P; k++) step(k);
  } else {
    // A fixed schedule, whatever the acks: message j at start + j * interval, pair j % P,
    // the pair's buyer and seller taking turns. All payloads are built up front.
    const interval = 1000 / (P * cfg.ratePerPair);
    const total = Math.floor((warm + dur) / interval);
    const plan = new Array(total);
    for (let j = 0; j < total; j++) {
      const k = j % P;
      const buyer = Math.floor(j / P) % 2 === 0;
      const i = newRecord(k, buyer);
      plan[j] = {
        socket: buyer ? lanes[k].buyer : lanes[k].seller,
        payload: { chatId: lanes[k].chatId, text: lanes[k].text, clientMessageId: prefix + i },
      };
    }
    let j = 0;
    await new Promise((resolve) => {
      const tick = () => {
        const t = now();
        while (j < total && start + j * interval <= t) {
          const due = start + j * interval;
          send(j, plan[j].socket, plan[j].payload, null);
          lag[j] = emitT[j] - due;
          plan[j] = null;
          j++;
        }
        if (j < total) setTimeout(tick, 1);
        else resolve();
      };
      setTimeout(tick, 0);
    });
  }
  await markEnd;
  clearTimeout(markStart);
  if (markFlood !== null) clearTimeout(markFlood);

  // Let the acks in flight come back, then the deliveries, then a little grace for duplicates.
  const drainUntil = now() + cfg.drainMs;
  if (inflight > 0) {
    await Promise.race([new Promise((r) => (onIdle = r)), sleep(cfg.drainMs)]);
  }
  const undelivered = () => {
    for (let i = 0; i < ok.length; i++) if (ok[i] && delCount[i] === 0) return true;
    return false;
  };
  while (undelivered() && now() < drainUntil) await sleep(50);
  await sleep(500);
  const lateInflight = inflight;
  closeAll(flood === null ? sockets : [...sockets, ...flood.sockets]);
  return {
    tag: cfg.tag,
    chatIds,
    warmupMs: warm,
    durationMs: dur,
    windowStart: warmEnd - start,
    windowEnd: end - start,
    records: {
      pair: pairOf,
      fromBuyer,
      emitT: emitT.map((x) => x - start),
      ackT: ackT.map((x) => (x === null ? null : x - start)),
      ok,
      err,
      id: ids,
      seq: seqs,
      delT: delT.map((x) => (x === null ? null : x - start)),
      delCount,
      delId,
      echo,
      lag,
    },
    inflightAtEnd: lateInflight,
    floodStart,
    flood: floodResult,
    foreignDeliveries: foreign,
    loadgen,
    counters,
  };
}

// -- the flood: one user sends every event type as fast as the answers come back ---------------

async function startFlood(chatIds) {
  const f = cfg.flooder;
  const opened = await openMany(
    Array.from({ length: cfg.floodSockets }, () => f),
    cfg.floodSockets,
    now(),
  );
  const sockets = opened.map((o) => o.socket).filter((s) => s.connected);
  const chatId = await new Promise((resolve, reject) =>
    sockets[0]
      .timeout(30000)
      .emit("chat:create", { buyerId: f.id, sellerId: cfg.victim }, (err, res) =>
        res?.success ? resolve(res.data.id) : reject(new Error(`flood chat:create: ${err}`)),
      ),
  );
  let messageId = "00000000-0000-4000-8000-000000000000";
  const events = [
    ["chats:list", { limit: 100 }],
    ["messages:history", { chatId, limit: 100 }],
    ["messages:sync", {}],
    ["users:online", { userIds: [cfg.victim] }],
    ["chat:join", { chatId }],
    ["chat:leave", { chatId }],
    ["message:send", { chatId, text: cfg.text }],
    ["message:read", () => ({ chatId, messageId })],
    ["typing:start", { chatId }],
    ["typing:stop", { chatId }],
    ["chat:create", { buyerId: f.id, sellerId: cfg.victim }],
    ["auth:refresh-token", { token: f.token }],
    // Someone else's chat: FORBIDDEN, however many times.
    ["messages:history", { chatId: chatIds[0], limit: 100 }],
  ];
  const answers = {};
  let sent = 0;
  let stop = false;
  const lane = (socket, start) => {
    let n = start;
    const next = () => {
      if (stop || !socket.connected) return;
      const [event, payload] = events[n++ % events.length];
      sent++;
      socket.timeout(30000).emit(event, typeof payload === "function" ? payload() : payload, (e, res) => {
        const key = e ? "NO_ACK" : res?.success ? "ok" : (res?.code ?? "BAD_ACK");
        bump(answers, `${event} ${key}`);
        if (event === "message:send" && res?.success) messageId = res.data.id;
        next();
      });
    };
    next();
  };
  sockets.forEach((socket, k) => {
    for (let j = 0; j < cfg.floodLanes; j++) lane(socket, k * cfg.floodLanes + j);
  });
  return {
    stop() {
      stop = true;
      return { sockets: sockets.length, sent, answers };
    },
    sockets,
  };
}

// -- connection scenarios -----------------------------------------------------------------------

async function runConnect() {
  // Every handshake at once, as after a node failure: the clock runs from the first attempt to
  // the last `connect`. Sockets are created in slices so that the handshakes already under way
  // are served while the rest are being created.
  const specs = cfg.tokens;
  const histogram = monitorEventLoopDelay({ resolution: 5 });
  histogram.enable();
  const eluStart = performance.eventLoopUtilization();
  const cpuStart = process.cpuUsage();
  const t0 = now();
  const pending = [];
  for (let i = 0; i < specs.length; i += 100) {
    for (const spec of specs.slice(i, i + 100)) pending.push(openSocket(spec.token, spec.id, t0));
    await new Promise((r) => setImmediate(r));
  }
  const created = now() - t0;
  const opened = await Promise.all(pending);
  const times = opened.map((o) => o.at).filter((x) => x !== null);
  const last = times.length ? Math.max(...times) : null;
  say({ type: "phase", name: "connected", connected: times.length });
  histogram.disable();
  const loadgen = loopStats(histogram, eluStart, cpuStart);
  await sleep(1000); // an auth:error would follow its connect
  closeAll(opened.map((o) => o.socket));
  return {
    sockets: specs.length,
    connected: times.length,
    lastConnectMs: last,
    connectMs: times,
    createdMs: created,
    loadgen,
    counters,
  };
}

async function runIdle() {
  const warmSpecs = cfg.warmTokens;
  const specs = cfg.tokens;
  // Warm-up: connect and drop a few sockets, so one-time costs land before the baseline.
  const warm = await openMany(warmSpecs, cfg.concurrency, now());
  closeAll(warm.map((o) => o.socket));
  closing = false;
  await sleep(1000);
  await barrier("before");
  const t0 = now();
  const opened = await openMany(specs, cfg.concurrency, t0);
  const connectedIn = now() - t0;
  const connected = opened.filter((o) => o.at !== null).length;
  await barrier("connected", { connected });
  // Still there after settling?
  const alive = opened.filter((o) => o.socket.connected).length;
  closeAll(opened.map((o) => o.socket));
  return { sockets: specs.length, connected, alive, connectedInMs: connectedIn, counters };
}

async function runStorm() {
  // N sockets of N/2 pairs (tokens 2k and 2k+1 share a chat) connect, then all drop at once and
  // come back at once, as when a load balancer or a node restarts. A socket is ready when it is
  // connected, its `users:online` for its partner is answered, and it knows its partner is back
  // (from that answer or from a `user:online` event): the clock runs from the drop to the last
  // socket ready.
  const specs = cfg.tokens;
  const N = specs.length;
  const first = await openMany(specs, cfg.concurrency, now());
  const firstSockets = first.map((o) => o.socket);
  const failedFirst = first.filter((o) => o.at === null).length;
  for (let k = 0; k + 1 < N; k += 2) {
    await new Promise((resolve) =>
      firstSockets[k]
        .timeout(30000)
        .emit("chat:create", { buyerId: specs[k].id, sellerId: specs[k + 1].id }, () => resolve()),
    );
  }
  await barrier("connected", { connected: N - failedFirst });
  const partnerOf = (i) => (i % 2 === 0 ? i + 1 : i - 1);
  const connectAt = new Array(N).fill(null);
  const answerAt = new Array(N).fill(null);
  const partnerAt = new Array(N).fill(null);
  const t0 = now();
  closing = true;
  for (const s of firstSockets) s.disconnect();
  closing = false;
  const pending = [];
  const sockets = new Array(N);
  for (let i = 0; i < N; i += 100) {
    for (let j = i; j < Math.min(N, i + 100); j++) {
      const partner = specs[partnerOf(j)].id;
      pending.push(
        openSocket(specs[j].token, specs[j].id, t0, (socket) => {
          sockets[j] = socket;
          socket.on("user:online", (e) => {
            if (e?.userId === partner && partnerAt[j] === null) partnerAt[j] = now() - t0;
          });
          socket.once("connect", () => {
            connectAt[j] = now() - t0;
            socket
              .timeout(30000)
              .emit("users:online", { userIds: [partner] }, (err, res) => {
                if (err || !res?.success) return;
                answerAt[j] = now() - t0;
                if ((res.data?.userIds ?? []).includes(partner) && partnerAt[j] === null) {
                  partnerAt[j] = answerAt[j];
                }
              });
          });
        }),
      );
    }
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(pending);
  const readyAt = () =>
    connectAt.map((c, i) =>
      c === null || answerAt[i] === null || partnerAt[i] === null
        ? null
        : Math.max(c, answerAt[i], partnerAt[i]),
    );
  const deadline = now() + 30000;
  while (readyAt().some((x) => x === null) && now() < deadline) await sleep(50);
  const ready = readyAt();
  const done = ready.filter((x) => x !== null);
  await barrier("settled", { ready: done.length });
  closeAll(sockets.filter(Boolean));
  return {
    sockets: N,
    firstConnectFailed: failedFirst,
    reconnected: connectAt.filter((x) => x !== null).length,
    answered: answerAt.filter((x) => x !== null).length,
    partnerSeen: partnerAt.filter((x) => x !== null).length,
    ready: done.length,
    lastConnectMs: Math.max(...connectAt.filter((x) => x !== null), 0),
    lastReadyMs: done.length ? Math.max(...done) : null,
    counters,
  };
}

// -- main ---------------------------------------------------------------------------------------

const runners = {
  closed: () => runMessages("closed"),
  open: () => runMessages("open"),
  flood: () => runMessages("flood"),
  connect: runConnect,
  idle: runIdle,
  storm: runStorm,
};

try {
  const result = await runners[cfg.scenario]();
  writeFileSync(cfg.out, JSON.stringify(result));
  say({ type: "done", out: cfg.out });
  // Give the disconnect packets a moment to leave, then go.
  setTimeout(() => process.exit(0), 300);
} catch (e) {
  say({ type: "fatal", error: String(e?.stack ?? e) });
  process.exit(1);
}
