// WebSocket clients of stream routes: `registerStreamRoute(path, handlers)`
// with `{ onOpen(client), onMessage(client, message), onClose(client) }`, and
// `client = { id, params, send(data) }`. Evaluated after prelude.js.
(function (raw, routeRegistry, console) {
  "use strict";

  const HOOKS = ["onOpen", "onMessage", "onClose"];
  const streams = new Map(); // path -> handlers
  const clients = new Map(); // id -> client, from open to close

  function describe(value) {
    if (typeof value === "string") return JSON.stringify(value);
    if (typeof value === "function") return `function ${value.name || "(anonymous)"}`;
    return String(value);
  }

  function serialise(data) {
    const json = JSON.stringify(data);
    return json === undefined ? "null" : json;
  }

  const plain = routeRegistry.registerStreamRoute;
  routeRegistry.registerStreamRoute = function registerStreamRoute(path, handlers) {
    if (handlers !== undefined && handlers !== null) {
      if (typeof handlers !== "object") {
        throw new TypeError(
          `registerStreamRoute: handlers must be an object like {onOpen, onMessage, onClose}, got ${describe(handlers)}`,
        );
      }
      for (const name of HOOKS) {
        const h = handlers[name];
        if (h !== undefined && typeof h !== "function") {
          throw new TypeError(`registerStreamRoute: ${name} must be a function, got ${describe(h)}`);
        }
      }
    }
    plain(path);
    if (handlers === undefined || handlers === null) return;
    const own = {};
    for (const name of HOOKS) own[name] = handlers[name];
    raw.listen(path, !!own.onOpen, !!own.onMessage, !!own.onClose);
    streams.set(path, own);
  };

  function clientOf(id, params) {
    let client = clients.get(id);
    if (!client) {
      client = Object.freeze({
        id,
        params: Object.freeze(params),
        send(data) {
          return raw.send(id, serialise(data));
        },
      });
      clients.set(id, client);
    }
    return client;
  }

  // Called by the host, one event per turn: "open", "message" or "close".
  function dispatch(kind, id, path, params, message) {
    const client = clients.get(id) || clientOf(id, params);
    if (kind === "close") clients.delete(id);
    const handlers = streams.get(path);
    if (!handlers) return;
    let result;
    if (kind === "open" && handlers.onOpen) result = handlers.onOpen(client);
    else if (kind === "message" && handlers.onMessage) result = handlers.onMessage(client, message);
    else if (kind === "close" && handlers.onClose) result = handlers.onClose(client);
    if (result && typeof result.then === "function") {
      result.then(undefined, (e) => console.error(`WebSocket handler on ${path} rejected:`, e));
    }
  }

  Object.defineProperty(globalThis, "__aiwe_websocket", { value: Object.freeze({ dispatch }) });
})(globalThis.__aiwe_ws_host, globalThis.routeRegistry, globalThis.console);
delete globalThis.__aiwe_ws_host;
