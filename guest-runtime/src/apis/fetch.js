// fetch(input, init), Headers and Response, as in browsers and Node, built on
// the raw `__aiwe_fetch` functions. The host performs the request off the
// script's thread and reports back through `settle`, which only Rust holds.
(function (raw) {
  "use strict";

  const DEFAULT_TIMEOUT_MS = 30000;
  const MAX_TIMEOUT_MS = 4294967295;
  const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
  const NORMALISED_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT"];
  const FORBIDDEN_METHODS = ["CONNECT", "TRACE", "TRACK"];

  function describe(value) {
    if (typeof value === "string") return JSON.stringify(value);
    if (typeof value === "function") return `function ${value.name || "(anonymous)"}`;
    return String(value);
  }

  // ---- Headers ----------------------------------------------------------

  const headerLists = new WeakMap(); // Headers -> Map(lower-case name -> [values])

  function checkName(name) {
    const text = String(name);
    if (!TOKEN.test(text)) throw new TypeError(`Headers: invalid header name ${describe(text)}`);
    return text.toLowerCase();
  }

  function checkValue(value) {
    const text = String(value).replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, "");
    if (/[\0\r\n]/.test(text)) throw new TypeError(`Headers: invalid header value ${describe(text)}`);
    return text;
  }

  class Headers {
    constructor(init) {
      headerLists.set(this, new Map());
      if (init === undefined || init === null) return;
      if (init instanceof Headers) {
        for (const [name, value] of init) this.append(name, value);
      } else if (typeof init === "object" && typeof init[Symbol.iterator] === "function") {
        for (const pair of init) {
          const list = Array.from(pair);
          if (list.length !== 2) throw new TypeError("Headers: each header pair must be [name, value]");
          this.append(list[0], list[1]);
        }
      } else if (typeof init === "object") {
        for (const name of Object.keys(init)) this.append(name, init[name]);
      } else {
        throw new TypeError(`Headers: expected an object or an array of [name, value] pairs, got ${describe(init)}`);
      }
    }
    append(name, value) {
      const map = headerLists.get(this);
      const key = checkName(name);
      const list = map.get(key);
      if (list) list.push(checkValue(value));
      else map.set(key, [checkValue(value)]);
    }
    set(name, value) {
      headerLists.get(this).set(checkName(name), [checkValue(value)]);
    }
    get(name) {
      const list = headerLists.get(this).get(checkName(name));
      return list ? list.join(", ") : null;
    }
    getSetCookie() {
      return (headerLists.get(this).get("set-cookie") || []).slice();
    }
    has(name) {
      return headerLists.get(this).has(checkName(name));
    }
    delete(name) {
      headerLists.get(this).delete(checkName(name));
    }
    forEach(callback, thisArg) {
      for (const [name, value] of this) callback.call(thisArg, value, name, this);
    }
    *entries() {
      const map = headerLists.get(this);
      for (const name of Array.from(map.keys()).sort()) {
        if (name === "set-cookie") {
          for (const value of map.get(name)) yield [name, value];
        } else {
          yield [name, map.get(name).join(", ")];
        }
      }
    }
    *keys() {
      for (const [name] of this.entries()) yield name;
    }
    *values() {
      for (const [, value] of this.entries()) yield value;
    }
    [Symbol.iterator]() {
      return this.entries();
    }
  }

  // ---- Response ---------------------------------------------------------

  const responses = new WeakMap(); // Response -> its state

  function bytesOf(body, what) {
    if (body === undefined || body === null) return null;
    if (typeof body === "string") return new TextEncoder().encode(body);
    if (body instanceof Uint8Array) return body;
    if (body instanceof ArrayBuffer) return new Uint8Array(body);
    if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    throw new TypeError(`${what}: body must be a string, Uint8Array or ArrayBuffer, got ${describe(body)}`);
  }

  function consume(response) {
    const state = responses.get(response);
    if (state.used) return Promise.reject(new TypeError("Response: body has already been read"));
    state.used = true;
    return Promise.resolve(state.body || new Uint8Array(0));
  }

  class Response {
    constructor(body, init) {
      const options = init || {};
      const status = options.status === undefined ? 200 : Number(options.status);
      if (!Number.isInteger(status) || status < 200 || status > 599) {
        throw new RangeError(`Response: status must be an integer from 200 to 599, got ${describe(options.status)}`);
      }
      const bytes = bytesOf(body, "Response");
      responses.set(this, {
        status,
        statusText: options.statusText === undefined ? "" : String(options.statusText),
        headers: new Headers(options.headers),
        url: "",
        redirected: false,
        body: bytes && new Uint8Array(bytes),
        used: false,
      });
    }
    get status() {
      return responses.get(this).status;
    }
    get statusText() {
      return responses.get(this).statusText;
    }
    get ok() {
      const status = responses.get(this).status;
      return status >= 200 && status < 300;
    }
    get headers() {
      return responses.get(this).headers;
    }
    get url() {
      return responses.get(this).url;
    }
    get redirected() {
      return responses.get(this).redirected;
    }
    get bodyUsed() {
      return responses.get(this).used;
    }
    text() {
      return consume(this).then((bytes) => new TextDecoder().decode(bytes));
    }
    json() {
      return this.text().then((text) => JSON.parse(text));
    }
    arrayBuffer() {
      return consume(this).then((bytes) => bytes.slice().buffer);
    }
    bytes() {
      return consume(this).then((bytes) => bytes.slice());
    }
    clone() {
      const state = responses.get(this);
      if (state.used) throw new TypeError("Response: cannot clone a response whose body was read");
      const copy = Object.create(Response.prototype);
      responses.set(copy, Object.assign({}, state, { headers: new Headers(state.headers) }));
      return copy;
    }
  }

  // A response the host delivered: {status, statusText, url, headers, body}.
  function fromHost(res) {
    const response = Object.create(Response.prototype);
    responses.set(response, {
      status: res.status,
      statusText: res.statusText,
      headers: new Headers(res.headers),
      url: res.url,
      redirected: res.redirected,
      body: res.body,
      used: false,
    });
    return response;
  }

  // ---- fetch ------------------------------------------------------------

  const pending = new Map(); // id -> {resolve, reject}

  function urlOf(input) {
    if (typeof input === "string") return input;
    if (input !== null && typeof input === "object") {
      if (typeof input.href === "string") return input.href; // a URL
      if (typeof input.url === "string") return input.url; // a Request-like object
    }
    throw new TypeError(`fetch: input must be a URL string, got ${describe(input)}`);
  }

  function methodOf(method) {
    if (method === undefined) return "GET";
    const text = String(method);
    if (!TOKEN.test(text)) throw new TypeError(`fetch: invalid method ${describe(text)}`);
    const upper = text.toUpperCase();
    if (FORBIDDEN_METHODS.includes(upper)) throw new TypeError(`fetch: method ${upper} is not allowed`);
    return NORMALISED_METHODS.includes(upper) ? upper : text;
  }

  function timeoutOf(timeout) {
    if (timeout === undefined) return DEFAULT_TIMEOUT_MS;
    const ms = Number(timeout);
    if (!(ms > 0)) throw new TypeError(`fetch: timeout must be a positive number of milliseconds, got ${describe(timeout)}`);
    return Math.min(Math.ceil(ms), MAX_TIMEOUT_MS);
  }

  function start(input, init) {
    const options = init === undefined || init === null ? {} : init;
    if (typeof options !== "object") throw new TypeError(`fetch: init must be an object, got ${describe(init)}`);
    const url = urlOf(input);
    const method = methodOf(options.method);
    const headers = new Headers(options.headers);
    let body = bytesOf(options.body, "fetch");
    if (body !== null && (method === "GET" || method === "HEAD")) {
      throw new TypeError(`fetch: a ${method} request cannot have a body`);
    }
    if (typeof options.body === "string" && !headers.has("content-type")) {
      headers.set("content-type", "text/plain;charset=UTF-8");
    }
    const id = raw.start(url, method, Array.from(headers), body === null ? undefined : body, timeoutOf(options.timeout));
    return id;
  }

  function fetch(input, init) {
    return new Promise((resolve, reject) => {
      const id = start(input, init);
      pending.set(id, { resolve, reject });
    });
  }

  // Called by the host (through Rust) when fetch `id` finished.
  raw.onDone((id, error, res) => {
    const waiting = pending.get(id);
    if (!waiting) return;
    pending.delete(id);
    if (typeof error === "string") waiting.reject(new TypeError(`fetch failed: ${error}`));
    else waiting.resolve(fromHost(res));
  });

  globalThis.fetch = fetch;
  globalThis.Headers = Headers;
  globalThis.Response = Response;
})(globalThis.__aiwe_fetch);
delete globalThis.__aiwe_fetch;
