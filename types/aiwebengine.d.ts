// Type declarations for aiwebengine scripts: the globals a script sees inside
// its sandbox. A running server also serves this file at
// /_engine/aiwebengine.d.ts.
//
// Use it from an editor with a tsconfig.json beside your scripts (see
// scripts/tsconfig.json in the aiwebengine repository), or at the top of one file:
//
//     /// <reference path="./aiwebengine.d.ts" />
//
// Scripts run in QuickJS (ES2023): the standard JavaScript library is there
// (JSON, Math, Date, Map, Promise...) plus the globals declared below, the
// browser's DOM and Node's modules are not, so do not add "DOM" to your
// tsconfig's "lib" (its console and timers would clash with these).

declare namespace AIWebEngine {
  /** An HTTP method. Any case is accepted when registering; handlers see upper case. */
  type Method =
    | "GET"
    | "HEAD"
    | "POST"
    | "PUT"
    | "PATCH"
    | "DELETE"
    | "OPTIONS"
    | (string & {});

  /**
   * The request a handler receives.
   *
   * @example
   * routeRegistry.registerRoute("GET", "/users/:id", (request) => ({
   *   body: { id: request.params.id, page: request.query.page ?? "1" },
   * }));
   */
  interface Request {
    /**
     * The request id: the client's `X-Request-Id` when it is at most 128
     * visible ASCII characters, else one the server made. It is echoed on the
     * response and tags every log line of the request.
     */
    readonly id: string;
    /** The method, in upper case: `"GET"`, `"POST"`... */
    readonly method: string;
    /** The path, percent-decoded, without the query: `"/users/42"`. */
    readonly path: string;
    /**
     * The query string's parameters, decoded. For a repeated key the last value
     * wins. `?page=2&q=a%20b` gives `{ page: "2", q: "a b" }`.
     */
    readonly query: { readonly [name: string]: string | undefined };
    /**
     * Request headers by lower-case name; repeated headers are joined with `", "`.
     * `request.headers["content-type"]`.
     */
    readonly headers: { readonly [name: string]: string | undefined };
    /**
     * The raw body as a string (`""` when there is none). A body that is not
     * valid UTF-8 is answered 400 before the handler runs; one larger than
     * `--max-body-bytes` gets 413. Parse JSON with `JSON.parse(request.body)`.
     */
    readonly body: string;
    /**
     * Values of the route's `:name` segments and trailing `*name` wildcard:
     * for the route `/files/:dir/*rest`, `GET /files/a/b/c` gives
     * `{ dir: "a", rest: "b/c" }`.
     */
    readonly params: { readonly [name: string]: string | undefined };
  }

  /** A header value; an array gives one header line per value. */
  type HeaderValue = string | number | boolean | ReadonlyArray<string | number | boolean>;

  /**
   * A response body:
   * - a string, sent as UTF-8 (`text/plain; charset=utf-8` when no
   *   `Content-Type` is given; a `text/*` type without a charset gets
   *   `; charset=utf-8`);
   * - a `Uint8Array`, `ArrayBuffer` or other typed array, sent as raw bytes;
   * - anything else (object, array, number, boolean, null) is sent as JSON with
   *   `Content-Type: application/json`.
   */
  type Body = string | Uint8Array | ArrayBuffer | ArrayBufferView | object | number | boolean | null;

  /**
   * What a handler returns. Every field is optional: `{}` is an empty 200.
   *
   * @example
   * return { status: 201, headers: { Location: "/items/7" }, body: { id: 7 } };
   */
  interface Response {
    /** The status code, an integer from 100 to 999. Default 200. */
    status?: number;
    /** Response headers by name (any case). */
    headers?: { [name: string]: HeaderValue | undefined | null };
    /** The body. Default empty. See {@link Body}. */
    body?: Body;
  }

  /**
   * A route handler: called with the request, returns the response or a
   * Promise of it (an `async` function is awaited; one not settled within
   * `--timeout-ms` gets a 504). A handler that throws or rejects gives a 500
   * naming the script and the error.
   */
  type Handler = (request: Request) => Response | Promise<Response>;

  /**
   * Which subscribers a stream message reaches: only those whose subscription
   * query holds every pair (values are compared after `String(value)`).
   * `{ room: "42" }` reaches `new EventSource("/chat?room=42")`.
   */
  type StreamFilter = { [name: string]: string | number | boolean };

  interface RouteRegistry {
    /**
     * Registers an HTTP route. Only allowed while the script's top level runs
     * (when it loads).
     *
     * @param method case-insensitive: `"GET"`, `"post"`...
     * @param path starts with `/`; may hold `:name` segments and a trailing
     *   `*name` wildcard, both seen in `request.params`. Paths under `/_engine`
     *   are reserved.
     * @param handler a function, or the name of a global function (checked when
     *   the script finishes loading, so a typo fails the load).
     * @throws TypeError on an invalid method or path, or when called after load.
     *
     * @example
     * routeRegistry.registerRoute("GET", "/hello/:name", (request) => ({
     *   body: `hello ${request.params.name}`,
     * }));
     */
    registerRoute(method: Method, path: string, handler: Handler | string): void;

    /**
     * Registers a Server-Sent-Event stream at a static path (no parameters).
     * A `GET` with `Accept: text/event-stream` subscribes, even when the same
     * path also has a `GET` page route; a plain `GET` subscribes when the path
     * has no `GET` route. Each message gets an `id:`, and a reconnecting
     * `EventSource` is replayed what it missed (`Last-Event-ID`).
     *
     * @example
     * routeRegistry.registerStreamRoute("/chat");
     */
    registerStreamRoute(path: string, handlers?: StreamHandlers): void;

    /**
     * Sends `data`, serialised with `JSON.stringify`, to the subscribers of the
     * stream at `path` (registered by any script).
     *
     * @param filter reaches only subscribers whose query holds every pair, e.g.
     *   `{ room: "42" }`. Without it, every subscriber.
     * @returns the number of subscribers the message was sent to.
     * @throws Error if no stream is registered at `path`.
     *
     * @example
     * routeRegistry.sendStreamMessage("/chat", { text: "hi" }, { room: "42" });
     */
    sendStreamMessage(path: string, data: unknown, filter?: StreamFilter): number;
  }

  /**
   * Script log output: each call is one host log line tagged with the
   * script's file name. Strings are logged as they are, objects as JSON,
   * errors with their stack; arguments are joined with spaces.
   */
  interface Console {
    /** Logs at level info. */
    log(...data: unknown[]): void;
    /** Logs at level info. */
    info(...data: unknown[]): void;
    /** Logs at level warn. */
    warn(...data: unknown[]): void;
    /** Logs at level error. */
    error(...data: unknown[]): void;
    /** Logs at level debug (shown with `RUST_LOG=debug`). */
    debug(...data: unknown[]): void;
    /** Logs at level debug. */
    trace(...data: unknown[]): void;
  }

  /** A timer id, as returned by `setTimeout` and `setInterval`. */
  type TimerId = number;

  interface Performance {
    /** Milliseconds (fractional) from a monotonic clock; only differences mean something. */
    now(): number;
  }

  /**
   * One WebSocket connection on a stream path, as the stream's handlers see
   * it. It receives every message of the stream as `{"id": n, "data": ...}`.
   */
  interface WebSocketClient {
    /** Unique for the life of the server, e.g. `"ws-12"`. */
    readonly id: string;
    /** The connection's decoded query parameters (also used for filters). */
    readonly params: Record<string, string>;
    /**
     * Sends one message to this connection only, as `{"data": ...}` (no id).
     * @returns false when the client is gone or too far behind.
     */
    send(data: unknown): boolean;
  }

  /**
   * Handlers for WebSocket clients of a stream (the second argument of
   * `registerStreamRoute`). Each call is a turn of the script, queued in order
   * and run under the same limits as a request; one that throws is logged and
   * the connection stays open.
   */
  interface StreamHandlers {
    /** A WebSocket client connected. */
    onOpen?(client: WebSocketClient): void | Promise<void>;
    /** A client sent a text frame (a string) or a binary one (a Uint8Array). */
    onMessage?(client: WebSocketClient, message: string | Uint8Array): void | Promise<void>;
    /** A client's connection closed. */
    onClose?(client: WebSocketClient): void | Promise<void>;
  }

  /** A value `storage` can keep: anything JSON can express. */
  type StorageValue = null | boolean | number | string | StorageValue[] | { [key: string]: StorageValue };

  /**
   * Durable storage of this script (one namespace per script file name without
   * extension), kept in `--data-dir`. A turn's writes (a request handler, a
   * timer callback, a Promise continuation) commit together when it ends
   * normally and are discarded when it throws or trips a limit; a response is
   * sent only once its turn's writes are on disk.
   */
  interface Storage {
    /** The stored value (a JSON round trip), or `undefined`. */
    get(key: string): any;
    /**
     * Stores `value` under `key`.
     * @throws TypeError for `undefined`, functions, symbols, BigInts or cycles.
     * @throws RangeError beyond `--storage-max-value-bytes`.
     * @throws Error past the script's `--storage-quota-mb`.
     */
    set(key: string, value: unknown): void;
    /** Removes `key`; `true` if it existed. */
    delete(key: string): boolean;
    /**
     * Entries ordered by key (UTF-8 byte order): those starting with `prefix`,
     * strictly after `after`, at most `limit` (default 100, at most 1000).
     */
    list(options?: { prefix?: string; after?: string; limit?: number }): Array<{ key: string; value: any }>;
    /**
     * Adds `by` (default 1) to the number at `key` (missing counts as 0).
     * @returns the new number.
     * @throws TypeError if the stored value is not a number.
     */
    increment(key: string, by?: number): number;
  }

  /**
   * The same storage through Web-Storage-style names, as the original
   * aiwebengine has them: values are strings.
   */
  interface SharedStorage {
    /** The string stored at `key`, or `null`. */
    getItem(key: string): string | null;
    /** Stores `String(value)` at `key`. */
    setItem(key: string, value: unknown): void;
    /** Removes `key`. */
    removeItem(key: string): void;
    /** Removes every key of this script. */
    clear(): void;
  }

  /** Options of `fetch`: as in browsers, plus `timeout`. */
  interface FetchInit {
    /** Default `"GET"`. */
    method?: string;
    headers?: Record<string, string> | Array<[string, string]> | Headers;
    body?: string | Uint8Array | ArrayBuffer | ArrayBufferView;
    /** Milliseconds before the fetch rejects; default 30000. */
    timeout?: number;
  }
}

/**
 * Outbound HTTP, asynchronous: the script runs other requests and timers while
 * it waits. Only destinations allowed by `--allow-outbound` are reached;
 * loopback, private and link-local addresses need a rule naming them. A refused
 * destination, a network failure or a timeout rejects with a `TypeError`.
 */
declare function fetch(input: string, init?: AIWebEngine.FetchInit): Promise<Response>;

/** Response headers (names are case-insensitive). */
declare class Headers implements Iterable<[string, string]> {
  constructor(init?: Record<string, string> | Array<[string, string]> | Headers);
  get(name: string): string | null;
  has(name: string): boolean;
  set(name: string, value: string): void;
  append(name: string, value: string): void;
  delete(name: string): void;
  forEach(callback: (value: string, name: string) => void): void;
  entries(): IterableIterator<[string, string]>;
  keys(): IterableIterator<string>;
  values(): IterableIterator<string>;
  [Symbol.iterator](): IterableIterator<[string, string]>;
}

/** The answer to a `fetch`. */
declare class Response {
  readonly status: number;
  readonly statusText: string;
  /** `status` is 200–299. */
  readonly ok: boolean;
  /** The URL after redirects. */
  readonly url: string;
  readonly redirected: boolean;
  readonly headers: Headers;
  readonly bodyUsed: boolean;
  text(): Promise<string>;
  json(): Promise<any>;
  arrayBuffer(): Promise<ArrayBuffer>;
  bytes(): Promise<Uint8Array>;
  clone(): Response;
}

/** This script's durable storage (see `AIWebEngine.Storage`). */
declare var storage: AIWebEngine.Storage;

/** This script's storage with Web-Storage-style string values. */
declare var sharedStorage: AIWebEngine.SharedStorage;

/**
 * Registers the script's routes and streams, and sends stream messages.
 * Registration is only possible while the script's top level runs.
 */
declare var routeRegistry: AIWebEngine.RouteRegistry;

/**
 * Sends `data`, serialised with `JSON.stringify`, to every stream this script
 * registered, unfiltered.
 *
 * @returns the number of subscribers reached.
 *
 * @example
 * routeRegistry.registerStreamRoute("/ticks");
 * setInterval(() => sendStreamMessage({ at: Date.now() }), 1000);
 */
declare function sendStreamMessage(data: unknown): number;

/** Host log lines tagged with the script's name. */
declare var console: AIWebEngine.Console;

/**
 * Calls `callback(...args)` once after `ms` milliseconds, on the script's own
 * thread, under the same limits as a request. A delay that is not a number,
 * below 1 or above 2^31-1 means 1 ms. A script may have `--max-timers` (1000)
 * timers alive at once; one more throws a RangeError.
 */
declare function setTimeout<A extends unknown[]>(
  callback: (...args: A) => void,
  ms?: number,
  ...args: A
): AIWebEngine.TimerId;

/**
 * Calls `callback(...args)` every `ms` milliseconds until cleared. A callback
 * that throws is logged and the interval keeps going.
 */
declare function setInterval<A extends unknown[]>(
  callback: (...args: A) => void,
  ms?: number,
  ...args: A
): AIWebEngine.TimerId;

/** Cancels a timer (of either kind); unknown ids are ignored. */
declare function clearTimeout(id: AIWebEngine.TimerId | undefined): void;

/** Cancels a timer (of either kind); unknown ids are ignored. */
declare function clearInterval(id: AIWebEngine.TimerId | undefined): void;

/** Runs `callback` as a microtask, before the current call into the script ends. */
declare function queueMicrotask(callback: () => void): void;

/** A monotonic clock. */
declare var performance: AIWebEngine.Performance;

/** Encodes strings as UTF-8 bytes. */
declare class TextEncoder {
  constructor();
  /** Always `"utf-8"`. */
  readonly encoding: string;
  /** The UTF-8 bytes of `input`. */
  encode(input?: string): Uint8Array;
}

/** Decodes UTF-8 bytes into a string. */
declare class TextDecoder {
  constructor(label?: string);
  readonly encoding: string;
  /** The string the UTF-8 bytes of `input` encode. */
  decode(input?: ArrayBuffer | ArrayBufferView): string;
}
