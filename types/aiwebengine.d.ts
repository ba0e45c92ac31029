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
    registerStreamRoute(path: string): void;

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

  // ---------------------------------------------------------------------------
  // Storage: the persistent key-value API is being built; its declarations
  // will go here when it is part of the engine. Nothing is declared for it yet.
  //
  // Outgoing HTTP (fetch) and WebSocket routes: likewise, not part of the
  // engine yet; their declarations will go here when they are.
  // ---------------------------------------------------------------------------
}

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
