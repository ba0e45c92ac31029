// The script API, built from the raw host functions the Rust side installs as
// `__aiwe_host`. Argument checks and the API's shape live here; Rust stays thin.
// Evaluated once per instance, before the user's script.
(function (host) {
  "use strict";

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

  function serialise(data) {
    const json = JSON.stringify(data);
    return json === undefined ? "null" : json;
  }

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
    sendStreamMessage(path, data) {
      checkPath("sendStreamMessage", path);
      return host.sendStreamMessage(path, serialise(data));
    },
  };

  function sendStreamMessage(data) {
    return host.sendStreamMessage(undefined, serialise(data));
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

  // Turns whatever a handler returned into {status, headers: [[name, value]], body}
  // where body is a string or a Uint8Array.
  function toResponse(result) {
    if (result === undefined || result === null) {
      throw new TypeError("handler returned nothing; return {status, headers, body}");
    }
    if (typeof result !== "object") {
      throw new TypeError(`handler must return an object {status, headers, body}, got ${describe(result)}`);
    }
    const status = result.status === undefined ? 200 : Number(result.status);
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      throw new RangeError(`response status must be an integer from 100 to 999, got ${describe(result.status)}`);
    }
    const headers = [];
    let hasContentType = false;
    const given = result.headers || {};
    for (const name of Object.keys(given)) {
      const value = given[name];
      if (value === undefined || value === null) continue;
      if (name.toLowerCase() === "content-type") hasContentType = true;
      for (const one of Array.isArray(value) ? value : [value]) headers.push([name, String(one)]);
    }
    let body = result.body;
    if (body === undefined || body === null) {
      body = "";
    } else if (typeof body === "string") {
      if (!hasContentType && body.length > 0) headers.push(["content-type", "text/plain; charset=utf-8"]);
    } else if (body instanceof Uint8Array) {
      // bytes as they are
    } else if (body instanceof ArrayBuffer) {
      body = new Uint8Array(body);
    } else if (ArrayBuffer.isView(body)) {
      body = new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    } else {
      body = serialise(body);
      if (!hasContentType) headers.push(["content-type", "application/json"]);
    }
    return { status, headers, body };
  }

  const api = { dispatch, toResponse, checkHandlers };
  Object.defineProperty(globalThis, "__aiwe", { value: Object.freeze(api) });
  globalThis.routeRegistry = routeRegistry;
  globalThis.sendStreamMessage = sendStreamMessage;
  globalThis.console = console;
})(globalThis.__aiwe_host);
delete globalThis.__aiwe_host;
