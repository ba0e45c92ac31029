// The WebSocket benchmark's room: every client message is broadcast to all.
routeRegistry.registerStreamRoute("/wsroom", {
  onMessage(client, message) {
    routeRegistry.sendStreamMessage("/wsroom", message);
  },
});

routeRegistry.registerRoute("POST", "/wsroom/send", (req) => ({
  body: { reached: routeRegistry.sendStreamMessage("/wsroom", req.body) },
}));
