// The benchmark's Node.js baseline: the aiwebengine script API (README, "Script API")
// on node:http, each script in its own node:vm context. No sandbox limits, no hot
// reload: what a user would write instead. Runs under Node and Bun.
//   node bench/node/engine.mjs --scripts <dir> --listen 127.0.0.1:<port>
import http from "node:http";
import vm from "node:vm";
import fs from "node:fs";
// The `ws` package on Node; Bun answers this import with its built-in WebSocket server.
import { WebSocketServer } from "ws";

const MAX_BODY = 1024 * 1024; // bodies above this get a 413
const MAX_BACKLOG = 1024 * 1024; // an SSE subscriber this far behind is dropped
const SSE_HEADERS = { "content-type": "text/event-stream", "cache-control": "no-cache", "x-accel-buffering": "no" };

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const scriptsDir = arg("--scripts", "scripts");
const listen = arg("--listen", "127.0.0.1:3000");

const log = (level, tag, msg) => process.stderr.write(`${level.toUpperCase()} [${tag}] ${msg}\n`);
const describe = (v) => (typeof v === "string" ? v : typeof v === "object" && v !== null && !(v instanceof Error) ? safeJson(v) : String(v));
function safeJson(v) {
  try { return JSON.stringify(v); } catch { return String(v); }
}

// ---- route table ------------------------------------------------------------
// One entry per path shape: {methods: Map(METHOD -> route), stream, allow}.
// Static paths sit in a Map; patterns are tried in order of specificity.
const staticEntries = new Map();
const patternEntries = []; // {shape, rank, regex, entry}
const streams = new Map(); // path -> {path, script, subs: Set<res>, sockets: Set<ws>, handlers, n}
const WS_MAX_MESSAGE = 64 * 1024;
let nextClient = 0;
const scripts = []; // {name, status, routes, streams}

function parsePath(p) {
  if (typeof p !== "string" || p[0] !== "/" || /[?#\s]/.test(p)) throw new TypeError(`invalid route path ${JSON.stringify(p)}`);
  if (p === "/_engine" || p.startsWith("/_engine/")) throw new Error("paths under /_engine are reserved for the engine");
  const segs = p.slice(1).split("/");
  const names = [], rank = [];
  let re = "^", shape = "";
  segs.forEach((s, i) => {
    if (s[0] === ":" || s[0] === "*") {
      const name = s.slice(1);
      if (!/^\w+$/.test(name)) throw new TypeError(`invalid route path ${JSON.stringify(p)}: bad parameter name`);
      if (s[0] === "*" && i !== segs.length - 1) throw new TypeError(`invalid route path ${JSON.stringify(p)}: "*" must be last`);
      names.push(name);
      rank.push(s[0] === ":" ? 1 : 2);
      re += s[0] === ":" ? "/([^/]+)" : "/(.+)";
      shape += "/" + s[0];
    } else {
      rank.push(0);
      re += "/" + s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      shape += "/" + s;
    }
  });
  return { source: p, names, rank, shape, regex: names.length ? new RegExp(re + "$") : null };
}

function entryFor(parsed) {
  if (!parsed.regex) {
    let e = staticEntries.get(parsed.source);
    if (!e) staticEntries.set(parsed.source, (e = { methods: new Map(), stream: null }));
    return e;
  }
  let p = patternEntries.find((x) => x.shape === parsed.shape);
  if (!p) {
    p = { shape: parsed.shape, rank: parsed.rank, regex: parsed.regex, entry: { methods: new Map(), stream: null } };
    patternEntries.push(p);
    // static segment < :param < *wildcard, segment by segment
    patternEntries.sort((a, b) => {
      for (let i = 0; i < Math.min(a.rank.length, b.rank.length); i++) if (a.rank[i] !== b.rank[i]) return a.rank[i] - b.rank[i];
      return b.rank.length - a.rank.length;
    });
  }
  return p.entry;
}

function lookup(rawPath) {
  const e = staticEntries.get(rawPath);
  if (e) return { entry: e, values: [] };
  for (const p of patternEntries) {
    const m = p.regex.exec(rawPath);
    if (m) return { entry: p.entry, values: m.slice(1) };
  }
  return null;
}

function allowOf(entry) {
  const methods = new Set(entry.methods.keys());
  if (entry.stream || methods.has("GET")) methods.add("GET").add("HEAD");
  return [...methods].sort().join(", ");
}

// ---- streams ----------------------------------------------------------------
function broadcast(stream, data) {
  const json = JSON.stringify(data) ?? "null";
  const frame = Buffer.from(`id: ${++stream.n}\ndata: ${json}\n\n`); // built once per broadcast
  let sent = 0;
  for (const res of stream.subs) {
    if (res.writableLength > MAX_BACKLOG) { res.destroy(); continue; } // too slow a reader
    res.write(frame);
    sent++;
  }
  if (stream.sockets.size) {
    const text = Buffer.from(`{"id":${stream.n},"data":${json}}`); // built once, sent as text
    for (const ws of stream.sockets) {
      if (ws.bufferedAmount > MAX_BACKLOG) { ws.terminate(); continue; }
      ws.send(text, { binary: false });
      sent++;
    }
  }
  return sent;
}

// A WebSocket on a stream path: the stream's messages, and its handlers for the client's.
function attachSocket(stream, ws, rawQuery) {
  const client = {
    id: `ws-${++nextClient}`,
    params: rawQuery ? Object.fromEntries(new URLSearchParams(rawQuery)) : {},
    send: (data) => (ws.send(`{"data":${JSON.stringify(data) ?? "null"}}`), true),
  };
  const h = stream.handlers || {};
  const run = (name, ...args) => {
    try { h[name]?.(client, ...args); } catch (e) { log("error", stream.script.name, `${name} threw: ${e?.stack ?? e}`); }
  };
  stream.sockets.add(ws);
  ws.on("message", (data, isBinary) => run("onMessage", isBinary ? new Uint8Array(data) : data.toString()));
  ws.on("close", () => { stream.sockets.delete(ws); run("onClose"); });
  run("onOpen");
}

function subscribe(stream, req, res) {
  res.writeHead(200, SSE_HEADERS);
  if (req.method === "HEAD") return res.end();
  res.write("retry: 2000\n\n");
  stream.subs.add(res);
  res.on("close", () => stream.subs.delete(res));
}

// ---- loading scripts --------------------------------------------------------
function loadScript(dir, name) {
  const file = `${dir}/${name}`;
  const script = { name, status: "ok", routes: [], streams: [], context: null, at: null };
  const pending = { routes: [], streams: [] };
  const wrapTimer = (set) => (cb, ms, ...args) => {
    if (typeof cb !== "function") throw new TypeError("timer callback must be a function");
    return set(() => { try { cb(...args); } catch (e) { log("error", name, `timer callback threw: ${e?.stack ?? e}`); } }, ms);
  };
  const logger = (level) => (...args) => log(level, name, args.map(describe).join(" "));
  const routeRegistry = {
    registerRoute(method, p, handler) {
      if (typeof method !== "string" || !/^[A-Za-z]+$/.test(method)) throw new TypeError(`registerRoute: invalid method ${describe(method)}`);
      if (typeof handler !== "function" && typeof handler !== "string") throw new TypeError("registerRoute: handler must be a function or a global function's name");
      pending.routes.push({ method: method.toUpperCase(), path: parsePath(p), handler });
    },
    registerStreamRoute(p, handlers) {
      const parsed = parsePath(p);
      if (parsed.regex) throw new TypeError(`registerStreamRoute: stream paths cannot have parameters: ${p}`);
      pending.streams.push({ p, handlers });
    },
    sendStreamMessage(p, data) {
      const stream = streams.get(p);
      if (!stream) throw new Error(`sendStreamMessage: no stream is registered at ${describe(p)}`);
      return broadcast(stream, data);
    },
  };
  const context = vm.createContext({
    routeRegistry,
    sendStreamMessage: (data) => script.streams.reduce((n, s) => n + broadcast(s, data), 0),
    console: { log: logger("info"), info: logger("info"), warn: logger("warn"), error: logger("error"), debug: logger("debug"), trace: logger("debug") },
    setTimeout: wrapTimer(setTimeout), setInterval: wrapTimer(setInterval), clearTimeout, clearInterval, queueMicrotask,
  });
  script.context = context;
  script.at = new RegExp(`${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:\\d+:\\d+`);
  scripts.push(script);
  try {
    // Top-level function declarations become properties of `context`.
    new vm.Script(fs.readFileSync(file, "utf8"), { filename: name }).runInContext(context);
    for (const r of pending.routes) {
      if (typeof r.handler === "string" && typeof context[r.handler] !== "function") throw new TypeError(`handler "${r.handler}" is not a global function`);
    }
  } catch (e) {
    script.status = "error";
    log("error", name, `failed to load: ${e?.stack ?? e}`);
    return;
  }
  // Commit; the first script in file-name order keeps a contested path.
  for (const r of pending.routes) {
    const entry = entryFor(r.path);
    const owner = entry.methods.get(r.method);
    if (owner) {
      script.status = "conflict";
      log("warn", name, `${r.method} ${r.path.source} is already served by ${owner.script.name}; ignored`);
      continue;
    }
    entry.methods.set(r.method, { script, handler: r.handler, names: r.path.names, source: r.path.source });
    script.routes.push({ method: r.method, path: r.path.source });
  }
  for (const { p, handlers } of pending.streams) {
    if (streams.has(p)) {
      script.status = "conflict";
      log("warn", name, `stream ${p} is already registered by ${streams.get(p).script.name}; ignored`);
      continue;
    }
    const stream = { path: p, script, subs: new Set(), sockets: new Set(), handlers, n: 0 };
    streams.set(p, stream);
    entryFor(parsePath(p)).stream = stream;
    script.streams.push(stream);
  }
}

// ---- requests ---------------------------------------------------------------
function sendText(res, status, text, extra) {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(text), ...extra });
  res.end(text);
}

function engineRoutes(res) {
  const body = JSON.stringify({
    scripts: scripts.map((s) => ({
      name: s.name,
      status: s.status,
      routes: s.routes,
      streams: s.streams.map((st) => ({ path: st.path, subscribers: st.subs.size + st.sockets.size })),
    })),
  }, null, 2);
  res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

// Handler result -> status, headers and body on `res`.
function sendResult(res, result) {
  if (result === null || typeof result !== "object") throw new TypeError("handler must return an object {status, headers, body}");
  const status = result.status === undefined ? 200 : Number(result.status);
  if (!Number.isInteger(status) || status < 100 || status > 999) throw new RangeError(`invalid response status ${describe(result.status)}`);
  const headers = {};
  let type;
  for (const [k, v] of Object.entries(result.headers || {})) {
    if (v === undefined || v === null) continue;
    const key = k.toLowerCase();
    headers[key] = Array.isArray(v) ? v.map(String) : String(v);
    if (key === "content-type") type = headers[key];
  }
  let body = result.body ?? "";
  if (typeof body === "string") {
    if (type === undefined && body.length > 0) headers["content-type"] = "text/plain; charset=utf-8";
  } else if (ArrayBuffer.isView(body)) {
    body = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  } else if (Object.prototype.toString.call(body) === "[object ArrayBuffer]") {
    body = Buffer.from(body);
  } else {
    body = JSON.stringify(body) ?? "null";
    if (type === undefined) headers["content-type"] = "application/json";
  }
  if (typeof type === "string" && /^text\//i.test(type) && !/charset=/i.test(type)) headers["content-type"] = type + "; charset=utf-8";
  headers["content-length"] = typeof body === "string" ? Buffer.byteLength(body) : body.length;
  res.writeHead(status, headers);
  res.end(body);
}

function failed(res, route, e) {
  const where = route.script.at.exec(String(e?.stack ?? ""));
  const message = String(e) + (where ? ` (at ${where[0]})` : "");
  log("error", route.script.name, `${route.source}: handler threw ${message}\n${e?.stack ?? ""}`);
  if (!res.headersSent) sendText(res, 500, `script ${route.script.name} failed: ${message}\n`);
  else res.destroy();
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const decode = (s) => { try { return decodeURIComponent(s); } catch { return s; } };

async function callRoute(req, res, route, rawPath, rawQuery, values, bodyBytes) {
  let body;
  try { body = bodyBytes.length ? utf8.decode(bodyBytes) : ""; } catch { return sendText(res, 400, "the request body is not valid UTF-8\n"); }
  const params = {};
  for (let i = 0; i < values.length; i++) params[route.names[i]] = decode(values[i]);
  const request = {
    method: req.method,
    path: decode(rawPath),
    query: rawQuery ? Object.fromEntries(new URLSearchParams(rawQuery)) : {}, // last repeated key wins
    headers: req.headers,
    body,
    params,
  };
  try {
    const h = typeof route.handler === "string" ? route.script.context[route.handler] : route.handler;
    if (typeof h !== "function") throw new TypeError(`handler "${route.handler}" is not a global function`);
    let result = h(request);
    if (result && typeof result.then === "function") result = await result;
    sendResult(res, result);
  } catch (e) {
    failed(res, route, e);
  }
}

function onRequest(req, res) {
  const url = req.url;
  const q = url.indexOf("?");
  const rawPath = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? "" : url.slice(q + 1);
  const method = req.method.toUpperCase();
  if (rawPath === "/_engine/routes") return engineRoutes(res);

  const found = lookup(rawPath);
  if (!found) return sendText(res, 404, `no route for ${rawPath}\n`);
  const { entry, values } = found;
  const reads = method === "GET" || method === "HEAD";
  if (entry.stream && reads && (!entry.methods.has("GET") || (req.headers.accept || "").toLowerCase().includes("text/event-stream"))) {
    return subscribe(entry.stream, req, res);
  }
  const route = entry.methods.get(method) || (method === "HEAD" ? entry.methods.get("GET") : undefined);
  if (!route) return sendText(res, 405, `${method} is not allowed on ${rawPath}\n`, { allow: allowOf(entry) });

  if (Number(req.headers["content-length"]) > MAX_BODY) return sendText(res, 413, "the request body is too large\n", { connection: "close" });
  const chunks = [];
  let size = 0;
  req.on("data", (c) => {
    size += c.length;
    if (size <= MAX_BODY) chunks.push(c);
  });
  req.on("end", () => {
    if (size > MAX_BODY) return sendText(res, 413, "the request body is too large\n", { connection: "close" });
    callRoute(req, res, route, rawPath, rawQuery, values, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
  });
}

// ---- start ------------------------------------------------------------------
for (const f of fs.readdirSync(scriptsDir).filter((f) => f.endsWith(".js")).sort()) loadScript(scriptsDir, f);

const server = http.createServer(onRequest); // keep-alive is the default
server.keepAliveTimeout = 65000;
const wss = new WebSocketServer({ noServer: true, maxPayload: WS_MAX_MESSAGE });
server.on("upgrade", (req, socket, head) => {
  const q = req.url.indexOf("?");
  const rawPath = q < 0 ? req.url : req.url.slice(0, q);
  const stream = lookup(rawPath)?.entry.stream;
  if (!stream) return socket.destroy();
  wss.handleUpgrade(req, socket, head, (ws) => attachSocket(stream, ws, q < 0 ? "" : req.url.slice(q + 1)));
});
const colon = listen.lastIndexOf(":");
server.listen(Number(listen.slice(colon + 1)), listen.slice(0, colon).replace(/^\[|\]$/g, ""), () => {
  const a = server.address();
  process.stdout.write(`listening on http://${a.family === "IPv6" || a.family === 6 ? `[${a.address}]` : a.address}:${a.port}\n`);
});
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
