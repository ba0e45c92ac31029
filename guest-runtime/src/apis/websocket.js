// WebSocket clients of stream routes: `registerStreamRoute(path, handlers)`
// with `{ onOpen(client), onMessage(client, message), onClose(client) }`, and
// `client = { id, params, send(data) }`. Evaluated after prelude.js.
(function (raw, routeRegistry, console) {
  "use strict";

  const HOOKS = ["onOpen", "onMessage", "onClose"];

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
    // The host calls them straight from Rust (websocket.rs), looked up once.
    raw.listen(path, handlers.onOpen, handlers.onMessage, handlers.onClose);
  };

  // A connection heard of for the first time: its client object, made once.
  function introduce(id, params) {
    return Object.freeze({
      id,
      params: Object.freeze(params),
      send(data) {
        return raw.send(id, serialise(data));
      },
    });
  }

  // A handler gave a Promise: its rejection is logged like a throw.
  function watch(result, path) {
    result.then(undefined, (e) => console.error(`WebSocket handler on ${path} rejected:`, e));
  }

  Object.defineProperty(globalThis, "__aiwe_websocket", { value: Object.freeze({ introduce, watch }) });
})(globalThis.__aiwe_ws_host, globalThis.routeRegistry, globalThis.console);
delete globalThis.__aiwe_ws_host;
