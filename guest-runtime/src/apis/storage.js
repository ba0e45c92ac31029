// `storage` (JSON values) and `sharedStorage` (Web-Storage-style strings) over
// the raw `__aiwe_storage` functions. Argument checks live here; the host
// re-checks sizes and quota. Both views read and write the same keys.
(function (raw) {
  "use strict";

  const MAX_LIMIT = 1000;

  function describe(value) {
    if (typeof value === "string") return JSON.stringify(value);
    if (typeof value === "function") return "a function";
    if (typeof value === "symbol") return "a symbol";
    if (typeof value === "bigint") return "a BigInt";
    return String(value);
  }

  function checkKey(what, key) {
    if (typeof key !== "string" || key.length === 0) {
      throw new TypeError(`${what}: key must be a non-empty string, got ${describe(key)}`);
    }
  }

  function serialise(what, value) {
    if (value === undefined || typeof value === "function" || typeof value === "symbol") {
      throw new TypeError(`${what}: value must be JSON-serialisable, got ${describe(value)}`);
    }
    let json;
    try {
      json = JSON.stringify(value);
    } catch (e) {
      throw new TypeError(`${what}: value is not JSON-serialisable: ${e && e.message ? e.message : e}`);
    }
    if (json === undefined) {
      throw new TypeError(`${what}: value is not JSON-serialisable`);
    }
    return json;
  }

  function parse(json) {
    return json === undefined ? undefined : JSON.parse(json);
  }

  const storage = {
    get(key) {
      checkKey("storage.get", key);
      return parse(raw.get(key));
    },
    set(key, value) {
      checkKey("storage.set", key);
      raw.set(key, serialise("storage.set", value));
      return undefined;
    },
    delete(key) {
      checkKey("storage.delete", key);
      return raw.remove(key);
    },
    list(options) {
      const opts = options === undefined || options === null ? {} : options;
      if (typeof opts !== "object") {
        throw new TypeError(`storage.list: options must be an object like {prefix, after, limit}, got ${describe(opts)}`);
      }
      const prefix = opts.prefix === undefined ? "" : opts.prefix;
      if (typeof prefix !== "string") {
        throw new TypeError(`storage.list: prefix must be a string, got ${describe(prefix)}`);
      }
      const after = opts.after === undefined || opts.after === null ? undefined : opts.after;
      if (after !== undefined && typeof after !== "string") {
        throw new TypeError(`storage.list: after must be a string, got ${describe(after)}`);
      }
      const limit = opts.limit === undefined ? 100 : opts.limit;
      if (typeof limit !== "number" || !Number.isInteger(limit)) {
        throw new TypeError(`storage.list: limit must be an integer, got ${describe(limit)}`);
      }
      if (limit < 0 || limit > MAX_LIMIT) {
        throw new RangeError(`storage.list: limit must be from 0 to ${MAX_LIMIT}, got ${limit}`);
      }
      return raw.scan(prefix, after, limit).map(([key, json]) => ({ key, value: JSON.parse(json) }));
    },
    increment(key, by) {
      checkKey("storage.increment", key);
      const step = by === undefined ? 1 : by;
      if (typeof step !== "number" || !Number.isFinite(step)) {
        throw new TypeError(`storage.increment: by must be a finite number, got ${describe(step)}`);
      }
      const current = parse(raw.get(key));
      const base = current === undefined ? 0 : current;
      if (typeof base !== "number") {
        throw new TypeError(`storage.increment: the value at ${JSON.stringify(key)} is not a number`);
      }
      const next = base + step;
      raw.set(key, JSON.stringify(next));
      return next;
    },
  };

  // The real aiwebengine's Web-Storage-style names, over the same keys.
  const sharedStorage = {
    getItem(key) {
      checkKey("sharedStorage.getItem", key);
      const json = raw.get(key);
      if (json === undefined) return null;
      const value = JSON.parse(json);
      return typeof value === "string" ? value : json;
    },
    setItem(key, value) {
      checkKey("sharedStorage.setItem", key);
      raw.set(key, JSON.stringify(String(value)));
    },
    removeItem(key) {
      checkKey("sharedStorage.removeItem", key);
      raw.remove(key);
    },
    clear() {
      raw.clear();
    },
  };

  Object.freeze(storage);
  Object.freeze(sharedStorage);
  Object.defineProperty(globalThis, "storage", { value: storage, writable: true, configurable: true });
  Object.defineProperty(globalThis, "sharedStorage", { value: sharedStorage, writable: true, configurable: true });
})(globalThis.__aiwe_storage);
delete globalThis.__aiwe_storage;
