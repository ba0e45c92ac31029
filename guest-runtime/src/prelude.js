// The script API, built from the raw host functions the Rust side installs as
// `__aiwe_host`. Argument checks and the API's shape live here; Rust stays thin,
// except on the hot paths (sendStreamMessage, serialise, WebSocket events),
// which call back in here for what is rare (checkPath, filterPairs).
// Evaluated once per instance, before the user's script. Its value is the
// internal API the Rust side calls; nothing of it is left in a global.
(function (host) {
  "use strict";
  delete globalThis.__aiwe_host;

  const handlers = [];

  function checkPath(what, path) {
    if (typeof path !== "string" || path[0] !== "/") {
      throw new TypeError(`${what}: path must be a string starting with "/", got ${describe(path)}`);
    }
  }

  function describe(value) {
    if (typeof value === "string") return JSON.stringify(value);
    if (typeof value === "function") return `function ${value.name || "(anonymous)"}`;
    return String(value);
  }

  // JSON.stringify(data), or "null" when that is undefined (serialise.rs).
  // A script may replace JSON.stringify and so send any text at all: the host
  // frames it safely (data lines split on CR and LF) whatever it holds.
  const serialise = host.serialise;

  const routeRegistry = {
    registerRoute(method, path, handler) {
      if (typeof method !== "string" || method.length === 0) {
        throw new TypeError(`registerRoute: method must be a non-empty string, got ${describe(method)}`);
      }
      checkPath("registerRoute", path);
      if (typeof handler !== "function" && typeof handler !== "string") {
        throw new TypeError(
          `registerRoute: handler must be a function or the name of a global function, got ${describe(handler)}`,
        );
      }
      host.registerRoute(method.toUpperCase(), path, handlers.length);
      handlers.push(handler);
    },
    registerStreamRoute(path) {
      checkPath("registerStreamRoute", path);
      host.registerStream(path);
    },
    // The hot path of every broadcast, in Rust (host.rs): it calls
    // checkPath and filterPairs for what is rare (a bad path, a filter).
    sendStreamMessage: host.sendToStream,
  };

  // `{room: "42"}` -> [["room", "42"]]: only subscribers whose query has room=42.
  function filterPairs(filter) {
    if (filter === undefined || filter === null) return [];
    if (typeof filter !== "object") {
      throw new TypeError(`sendStreamMessage: filter must be an object like {room: "42"}, got ${describe(filter)}`);
    }
    return Object.keys(filter).map((key) => [key, String(filter[key])]);
  }

  function sendStreamMessage(data) {
    return host.sendToOwnStreams(serialise(data));
  }

  function format(value) {
    if (typeof value === "string") return value;
    if (value instanceof Error) return value.stack ? `${value}\n${value.stack}` : String(value);
    if (typeof value === "object" && value !== null) {
      try {
        return JSON.stringify(value);
      } catch (_) {
        return String(value);
      }
    }
    return String(value);
  }

  function logger(level) {
    return function (...args) {
      host.log(level, args.map(format).join(" "));
    };
  }

  const console = {
    log: logger("info"),
    info: logger("info"),
    warn: logger("warn"),
    error: logger("error"),
    debug: logger("debug"),
    trace: logger("debug"),
  };

  function resolveHandler(id) {
    const handler = handlers[id];
    if (typeof handler === "function") return handler;
    const found = globalThis[handler];
    if (typeof found !== "function") {
      throw new TypeError(`handler "${handler}" is not a global function`);
    }
    return found;
  }

  // Called by the host after the script's top level ran: handlers named by
  // string must exist by then, so a typo fails the load, not the first request.
  function checkHandlers() {
    for (let id = 0; id < handlers.length; id++) {
      if (typeof handlers[id] === "string") resolveHandler(id);
    }
  }

  function dispatch(id, request) {
    return resolveHandler(id)(request);
  }

  // Timers. The host owns the clock: we tell it when the earliest timer is due
  // (`setWakeup`) and it calls `runTimer` then, through the script's actor, so
  // callbacks never overlap requests and run under the same limits.
  const timers = new Map();
  let nextTimerId = 1;
  let wakeupDue; // the due time last told to the host

  function schedule() {
    let due = Infinity;
    for (const t of timers.values()) if (t.due < due) due = t.due;
    if (due === wakeupDue) return;
    wakeupDue = due;
    host.setWakeup(due === Infinity ? undefined : Math.max(0, Math.ceil(due - performance.now())));
  }

  // As Node does: not a number, below 1 or beyond a 32-bit int means 1 ms.
  function delayOf(ms) {
    const n = Number(ms);
    return n >= 1 && n <= 2147483647 ? Math.trunc(n) : 1;
  }

  function addTimer(kind, callback, ms, args, repeat) {
    if (typeof callback !== "function") {
      throw new TypeError(`${kind}: callback must be a function, got ${describe(callback)}`);
    }
    const maxTimers = host.maxTimers(); // the host's cap; scripts cannot change it
    if (timers.size >= maxTimers) {
      throw new RangeError(`${kind}: too many timers (this script may have ${maxTimers} at once)`);
    }
    const id = nextTimerId++;
    const delay = delayOf(ms);
    timers.set(id, { id, callback, args, delay, repeat, due: performance.now() + delay });
    schedule();
    return id;
  }

  function clearTimer(id) {
    if (timers.delete(Number(id))) schedule();
  }

  // Returns true when the callback threw, so the host discards the turn's writes.
  function runTimer() {
    const now = performance.now();
    let next;
    let threw = false;
    for (const t of timers.values()) {
      if (t.due <= now && (!next || t.due < next.due || (t.due === next.due && t.id < next.id))) next = t;
    }
    if (next) {
      if (next.repeat) next.due = now + next.delay;
      else timers.delete(next.id);
      try {
        next.callback(...next.args);
      } catch (e) {
        host.log("error", `timer callback threw: ${format(e)}`);
        threw = true;
      }
    }
    schedule();
    return threw;
  }

  // A handler whose Promise is still pending answers when it settles.
  function defer(id, promise) {
    promise.then(
      // Normalised by the host's guest code (`convert::respond`), as a direct answer is.
      (result) => host.completeResponse(id, result),
      (error) => host.completeError(id, error),
    );
  }

  // No `configure` here: the host's settings reach the prelude only through
  // hidden host functions, so a script cannot raise its own caps.
  const api = Object.freeze({
    dispatch,
    describe,
    checkHandlers,
    runTimer,
    defer,
    checkPath,
    filterPairs,
  });
  globalThis.routeRegistry = routeRegistry;
  globalThis.sendStreamMessage = sendStreamMessage;
  globalThis.console = console;
  globalThis.setTimeout = (callback, ms, ...args) => addTimer("setTimeout", callback, ms, args, false);
  globalThis.setInterval = (callback, ms, ...args) => addTimer("setInterval", callback, ms, args, true);
  globalThis.clearTimeout = clearTimer;
  globalThis.clearInterval = clearTimer;
  if (typeof globalThis.queueMicrotask !== "function") {
    globalThis.queueMicrotask = (callback) => {
      if (typeof callback !== "function") {
        throw new TypeError(`queueMicrotask: callback must be a function, got ${describe(callback)}`);
      }
      Promise.resolve().then(() => callback());
    };
  }
  return api;
})(globalThis.__aiwe_host);
