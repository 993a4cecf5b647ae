// JSON-lines bridge between the Python end-to-end tests and the official socket.io-client.
//
// stdin, one JSON object a line (every command may carry an `id`, echoed in its reply):
//   {"op":"open","id":1,"client":"a","url":"http://127.0.0.1:3001/chat","options":{...}}
//   {"op":"emit","id":2,"client":"a","event":"chat:create","args":[{...}],"ack":true,"timeoutMs":5000}
//   {"op":"emit","id":2,"client":"a","event":"x","argsJson":"[[[1]]]"}  args as JSON text, parsed here
//   {"op":"raw","id":5,"client":"a","data":"2/chat,900001[\"x\"]","ackId":900001,"timeoutMs":5000}
//       writes one Socket.IO packet as it is; with `ackId`, replies with the server's ACK to it
//   {"op":"close","id":3,"client":"a"}
//   {"op":"ping","id":4}
// stdout, one JSON object a line:
//   {"type":"ready","version":"4.8.1"}                       once, at start
//   {"type":"reply","id":1,"ok":true,...}                    for every command that has an id
//   {"type":"event","client":"a","event":"connect","args":[],"transport":"polling","t":...}
//   every event a client receives, in order: connect, connect_error, disconnect and all others.
// Bad input never ends the process: it gets {"type":"reply","ok":false,"error":...} or
// {"type":"error",...}. The process ends when stdin closes.
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const require = createRequire(import.meta.url);
const clientVersion = (() => {
  try {
    return require("socket.io-client/package.json").version;
  } catch {
    return "unknown";
  }
})();

const sockets = new Map();

function toJsonSafe(value, depth = 0) {
  if (depth > 50) return "[too deep]";
  if (value === undefined) return null;
  if (value === null || typeof value !== "object") {
    if (typeof value === "bigint") return value.toString();
    if (typeof value === "function") return "[function]";
    return value;
  }
  if (value instanceof Error) {
    const out = { message: value.message, name: value.name };
    if (value.data !== undefined) out.data = toJsonSafe(value.data, depth + 1);
    if (value.description !== undefined) out.description = String(value.description);
    if (value.type !== undefined) out.type = String(value.type);
    return out;
  }
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    return { binary: Buffer.from(value.buffer ?? value).toString("base64") };
  }
  if (Array.isArray(value)) return value.map((v) => toJsonSafe(v, depth + 1));
  const out = {};
  for (const [k, v] of Object.entries(value)) out[k] = toJsonSafe(v, depth + 1);
  return out;
}

function write(obj) {
  let line;
  try {
    line = JSON.stringify(toJsonSafe(obj));
  } catch (err) {
    line = JSON.stringify({ type: "error", error: `unserialisable output: ${err}` });
  }
  process.stdout.write(line + "\n");
}

function reply(cmd, fields) {
  if (cmd && cmd.id !== undefined && cmd.id !== null) {
    write({ type: "reply", id: cmd.id, client: cmd.client ?? null, ...fields });
  } else if (fields.ok === false) {
    write({ type: "error", client: cmd?.client ?? null, error: fields.error });
  }
}

function transportOf(socket) {
  return socket.io?.engine?.transport?.name ?? null;
}

function forward(name, socket, event, args) {
  write({ type: "event", client: name, event, args, transport: transportOf(socket), t: Date.now() });
}

function openClient(cmd) {
  const name = cmd.client;
  if (typeof name !== "string" || name === "") throw new Error("open needs a client name");
  if (sockets.has(name)) throw new Error(`client ${name} already exists`);
  if (typeof cmd.url !== "string") throw new Error("open needs a url");
  const options = {
    reconnection: false,
    forceNew: true,
    timeout: 10000,
    ...(cmd.options && typeof cmd.options === "object" ? cmd.options : {}),
  };
  const socket = io(cmd.url, options);
  sockets.set(name, socket);
  socket.on("connect", () => forward(name, socket, "connect", [{ id: socket.id }]));
  socket.on("connect_error", (err) => forward(name, socket, "connect_error", [err]));
  socket.on("disconnect", (reason, details) =>
    forward(name, socket, "disconnect", details === undefined ? [reason] : [reason, details]),
  );
  socket.onAny((event, ...args) => forward(name, socket, event, args));
  socket.io.on("open", () => {
    socket.io.engine?.on("upgrade", (transport) =>
      forward(name, socket, "transport:upgrade", [transport?.name ?? String(transport)]),
    );
  });
  return {};
}

function emitFrom(cmd) {
  const socket = sockets.get(cmd.client);
  if (!socket) throw new Error(`unknown client ${cmd.client}`);
  if (typeof cmd.event !== "string") throw new Error("emit needs an event name");
  const args =
    typeof cmd.argsJson === "string" ? JSON.parse(cmd.argsJson) : Array.isArray(cmd.args) ? cmd.args : [];
  if (!Array.isArray(args)) throw new Error("argsJson must hold a JSON array");
  if (!cmd.ack) {
    socket.emit(cmd.event, ...args);
    reply(cmd, { ok: true, sent: true });
    return;
  }
  const timeoutMs = Number.isFinite(cmd.timeoutMs) ? cmd.timeoutMs : 5000;
  socket.timeout(timeoutMs).emit(cmd.event, ...args, (err, ...response) => {
    if (err) reply(cmd, { ok: false, error: "ack timeout", timeout: true });
    else reply(cmd, { ok: true, args: response });
  });
}

// A packet the client library would never write (a malformed event, a reserved name), sent as it
// is. The library drops an ACK whose id it did not issue, so the reply is read off the engine.
function rawFrom(cmd) {
  const socket = sockets.get(cmd.client);
  if (!socket) throw new Error(`unknown client ${cmd.client}`);
  if (typeof cmd.data !== "string") throw new Error("raw needs data");
  const engine = socket.io.engine;
  if (!engine) throw new Error(`client ${cmd.client} has no connection`);
  if (!Number.isInteger(cmd.ackId)) {
    engine.write(cmd.data);
    reply(cmd, { ok: true, sent: true });
    return;
  }
  const prefix = `3${socket.nsp === "/" ? "" : socket.nsp + ","}${cmd.ackId}[`;
  const timeoutMs = Number.isFinite(cmd.timeoutMs) ? cmd.timeoutMs : 5000;
  const onPacket = (packet) => {
    if (packet.type !== "message" || typeof packet.data !== "string") return;
    if (!packet.data.startsWith(prefix)) return;
    clearTimeout(timer);
    engine.off("packet", onPacket);
    reply(cmd, { ok: true, args: JSON.parse(packet.data.slice(prefix.length - 1)) });
  };
  const timer = setTimeout(() => {
    engine.off("packet", onPacket);
    reply(cmd, { ok: false, error: "ack timeout", timeout: true });
  }, timeoutMs);
  engine.on("packet", onPacket);
  engine.write(cmd.data);
}

function closeClient(cmd) {
  const socket = sockets.get(cmd.client);
  if (!socket) return { existed: false };
  sockets.delete(cmd.client);
  socket.disconnect();
  socket.io.engine?.close();
  return { existed: true };
}

function handle(line) {
  if (line.trim() === "") return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (err) {
    write({ type: "error", error: `bad JSON: ${err.message}` });
    return;
  }
  if (cmd === null || typeof cmd !== "object" || Array.isArray(cmd)) {
    write({ type: "error", error: "a command must be a JSON object" });
    return;
  }
  try {
    switch (cmd.op) {
      case "open":
        reply(cmd, { ok: true, ...openClient(cmd) });
        break;
      case "emit":
        emitFrom(cmd); // replies by itself (at once, or when the ack or its timeout comes)
        break;
      case "raw":
        rawFrom(cmd); // replies by itself, like emit
        break;
      case "close":
        reply(cmd, { ok: true, ...closeClient(cmd) });
        break;
      case "ping":
        reply(cmd, { ok: true });
        break;
      default:
        reply(cmd, { ok: false, error: `unknown op ${JSON.stringify(cmd.op)}` });
    }
  } catch (err) {
    reply(cmd, { ok: false, error: err?.message ?? String(err) });
  }
}

process.on("uncaughtException", (err) => write({ type: "error", error: `uncaught: ${err?.stack ?? err}` }));
process.on("unhandledRejection", (err) => write({ type: "error", error: `unhandled: ${err?.stack ?? err}` }));
process.stdout.on("error", () => process.exit(0)); // the Python side went away

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
rl.on("line", handle);
rl.on("close", () => {
  for (const name of [...sockets.keys()]) closeClient({ client: name });
  setTimeout(() => process.exit(0), 50);
});

write({ type: "ready", version: clientVersion });
