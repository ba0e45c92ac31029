// The trivial JSON route of the benchmark.
routeRegistry.registerRoute("GET", "/json", () => ({ body: { ok: true, n: 42 } }));
