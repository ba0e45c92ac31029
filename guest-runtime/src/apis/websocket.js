// WebSocket clients of stream routes: `registerStreamRoute(path, handlers)`
// with `{ onOpen(client), onMessage(client, message), onClose(client) }`, and
// `client = { id, params, send(data) }`. Evaluated after prelude.js.
(function (raw, routeRegistry, console) {
  "use strict";

  const HOOKS = ["onOpen", "onMessage", "onClose"];
  const streams = new Map(); // path -> handlers
  const connections = new Map(); // connection number -> {client, path, handlers}, until close

  function describe(value) {
    if (typeof value === "string") return JSON.stringify(value);
    if (typeof value === "function") return `function ${value.name || "(anonymous)"}`;
    return String(value);
  }

  const serialise = raw.serialise; // as the prelude's

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

  // What dispatch's first argument says (see websocket.rs).
  const OPEN = 0, MESSAGE = 1, CLOSE = 2;

  // A connection heard of for the first time: its client object, made once,
  // and its stream's handlers (streams are all registered while loading).
  function introduce(connection) {
    const { id, path, params } = raw.client();
    const client = Object.freeze({
      id,
      params: Object.freeze(params),
      send(data) {
        return raw.send(id, serialise(data));
      },
    });
    const known = { client, path, handlers: streams.get(path) };
    connections.set(connection, known);
    return known;
  }

  // Called by the host, one event per turn, for the connection numbered
  // `connection`: OPEN, MESSAGE (with the message) or CLOSE.
  function dispatch(kind, connection, message) {
    const known = connections.get(connection) || introduce(connection);
    if (kind === CLOSE) connections.delete(connection);
    const { client, handlers } = known;
    if (!handlers) return;
    let result;
    if (kind === MESSAGE) {
      if (handlers.onMessage) result = handlers.onMessage(client, message);
    } else if (kind === OPEN) {
      if (handlers.onOpen) result = handlers.onOpen(client);
    } else if (handlers.onClose) result = handlers.onClose(client);
    if (result && typeof result.then === "function") {
      result.then(undefined, (e) => console.error(`WebSocket handler on ${known.path} rejected:`, e));
    }
  }

  Object.defineProperty(globalThis, "__aiwe_websocket", { value: Object.freeze({ dispatch }) });
})(globalThis.__aiwe_ws_host, globalThis.routeRegistry, globalThis.console);
delete globalThis.__aiwe_ws_host;
