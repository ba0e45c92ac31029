// A shared whiteboard over WebSocket: every open tab draws strokes, sends
// each one over its WebSocket (onMessage), and the script broadcasts it on the
// /whiteboard/live stream, so every tab sees everyone's strokes live. A tab
// that loses its connection reconnects with ?lastEventId=N and gets what it
// missed; a new tab first loads the board so far from GET /whiteboard/strokes.

const MAX_STROKES = 500; // strokes kept for new tabs
const MAX_POINTS = 200; // points per stroke
let strokes = [];
let artists = 0;

routeRegistry.registerRoute("GET", "/whiteboard", whiteboardPage);
routeRegistry.registerRoute("GET", "/whiteboard/strokes", () => ({
  body: { strokes, artists },
}));
routeRegistry.registerRoute("POST", "/whiteboard/clear", () => {
  strokes = [];
  routeRegistry.sendStreamMessage("/whiteboard/live", { type: "clear" });
  return { body: { ok: true } };
});

routeRegistry.registerStreamRoute("/whiteboard/live", {
  onOpen(client) {
    artists++;
    client.send({ type: "hello", you: client.id, artists });
    routeRegistry.sendStreamMessage("/whiteboard/live", { type: "artists", artists });
  },
  onMessage(client, message) {
    if (typeof message !== "string") return; // strokes are JSON text
    const stroke = parseStroke(message);
    if (!stroke) {
      client.send({ type: "error", error: "a stroke is {color, width, points: [[x, y], ...]}" });
      return;
    }
    stroke.by = client.id;
    strokes.push(stroke);
    if (strokes.length > MAX_STROKES) strokes = strokes.slice(-MAX_STROKES);
    routeRegistry.sendStreamMessage("/whiteboard/live", { type: "stroke", stroke });
  },
  onClose() {
    artists = Math.max(0, artists - 1);
    routeRegistry.sendStreamMessage("/whiteboard/live", { type: "artists", artists });
  },
});

function parseStroke(text) {
  let s;
  try {
    s = JSON.parse(text);
  } catch (_) {
    return null;
  }
  if (!s || !Array.isArray(s.points) || s.points.length === 0) return null;
  const points = s.points
    .slice(0, MAX_POINTS)
    .filter((p) => Array.isArray(p) && p.length === 2)
    .map(([x, y]) => [Math.round(Number(x)) || 0, Math.round(Number(y)) || 0]);
  const color = /^#[0-9a-fA-F]{6}$/.test(s.color) ? s.color : "#222222";
  const width = Math.min(Math.max(Number(s.width) || 3, 1), 30);
  return { color, width, points };
}

function whiteboardPage() {
  const html = `<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>Whiteboard</title>
  <style>
    body { margin: 0; font-family: system-ui, sans-serif; background: #eef1f5; }
    header { display: flex; gap: 12px; align-items: center; padding: 10px 16px;
             background: #2d3e50; color: white; }
    header h1 { font-size: 1.1em; margin: 0 12px 0 0; }
    #status { margin-left: auto; font-size: 0.9em; }
    #status.online { color: #7ee787; }
    #status.offline { color: #ff9b9b; }
    canvas { display: block; margin: 16px auto; background: white; cursor: crosshair;
             box-shadow: 0 2px 8px rgba(0,0,0,0.15); touch-action: none; }
  </style>
</head>
<body>
  <header>
    <h1>Whiteboard</h1>
    <input type="color" id="color" value="#1f6feb" title="colour">
    <input type="range" id="width" min="1" max="20" value="4" title="width">
    <button id="clear">Clear</button>
    <span id="artists">0 artists</span>
    <span id="status" class="offline">connecting…</span>
  </header>
  <canvas id="board" width="900" height="560" data-strokes="0"></canvas>
  <script>
    const canvas = document.getElementById("board");
    const ctx = canvas.getContext("2d");
    const statusEl = document.getElementById("status");
    let lastEventId = null;
    let socket = null;
    let drawn = 0;
    let current = null;

    function draw(stroke) {
      ctx.strokeStyle = stroke.color;
      ctx.lineWidth = stroke.width;
      ctx.lineCap = ctx.lineJoin = "round";
      ctx.beginPath();
      stroke.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      if (stroke.points.length === 1) ctx.lineTo(stroke.points[0][0] + 0.1, stroke.points[0][1]);
      ctx.stroke();
      canvas.dataset.strokes = String(++drawn);
    }

    function clearBoard() {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      drawn = 0;
      canvas.dataset.strokes = "0";
    }

    function setStatus(online, text) {
      statusEl.textContent = text;
      statusEl.className = online ? "online" : "offline";
    }

    function onFrame(event) {
      const frame = JSON.parse(event.data);
      if (frame.id !== undefined) lastEventId = frame.id;
      if (frame.event === "missed") return load(); // too much missed: reload the board
      const msg = frame.data;
      if (msg.type === "stroke") draw(msg.stroke);
      else if (msg.type === "clear") clearBoard();
      else if (msg.type === "artists") document.getElementById("artists").textContent = msg.artists + " artists";
      else if (msg.type === "hello") setStatus(true, "connected as " + msg.you);
    }

    function connect() {
      const url = new URL("/whiteboard/live", location.href);
      url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
      if (lastEventId !== null) url.searchParams.set("lastEventId", lastEventId);
      socket = new WebSocket(url);
      socket.onmessage = onFrame;
      socket.onclose = () => {
        setStatus(false, "reconnecting…");
        setTimeout(connect, 1000);
      };
    }

    async function load() {
      const res = await fetch("/whiteboard/strokes");
      const board = await res.json();
      clearBoard();
      board.strokes.forEach(draw);
    }

    function point(e) {
      const r = canvas.getBoundingClientRect();
      return [Math.round(e.clientX - r.left), Math.round(e.clientY - r.top)];
    }

    canvas.addEventListener("pointerdown", (e) => {
      current = {
        color: document.getElementById("color").value,
        width: Number(document.getElementById("width").value),
        points: [point(e)],
      };
    });
    canvas.addEventListener("pointermove", (e) => {
      if (current && current.points.length < 200) current.points.push(point(e));
    });
    canvas.addEventListener("pointerup", () => {
      // The stroke is drawn when the server broadcasts it back: one order for every tab.
      if (current && socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(current));
      current = null;
    });
    document.getElementById("clear").onclick = () => fetch("/whiteboard/clear", { method: "POST" });

    // Load the board so far, then follow it live (the stream replays from
    // the id of the first frame we see, so nothing falls in between).
    load().then(connect);
  </script>
</body>
</html>`;
  return { headers: { "Content-Type": "text/html" }, body: html };
}
