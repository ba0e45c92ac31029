// A guestbook whose entries survive reloads and restarts: every message is
// kept in this script's durable storage ("msg:" + a zero-padded number, so
// key order is arrival order), read back page by page with storage.list, and
// broadcast to everyone watching the page over Server-Sent Events.

const PAGE = 50;
const MAX_NAME = 40;
const MAX_TEXT = 500;

routeRegistry.registerStreamRoute("/guestbook/stream");
routeRegistry.registerRoute("GET", "/guestbook", showPage);
routeRegistry.registerRoute("GET", "/guestbook/api/messages", listMessages);
routeRegistry.registerRoute("POST", "/guestbook/api/messages", postMessage);

function keyOf(n) {
  return "msg:" + String(n).padStart(12, "0");
}

// GET /guestbook/api/messages?after=KEY&limit=N -> { messages, next }
// `next` is the `after` of the following page, or null after the last one.
function listMessages(request) {
  const limit = Math.min(Math.max(parseInt(request.query.limit, 10) || PAGE, 1), 1000);
  const after = request.query.after || undefined;
  const page = storage.list({ prefix: "msg:", after, limit });
  const messages = page.map((entry) => Object.assign({ key: entry.key }, entry.value));
  const next = page.length === limit ? page[page.length - 1].key : null;
  return { status: 200, body: { messages, next } };
}

// POST /guestbook/api/messages with {"name": "...", "text": "..."}
function postMessage(request) {
  let input;
  try {
    input = JSON.parse(request.body || "{}");
  } catch (e) {
    return { status: 400, body: { error: "the body must be JSON: {name, text}" } };
  }
  const name = String(input.name || "anonymous").trim().slice(0, MAX_NAME) || "anonymous";
  const text = String(input.text || "").trim();
  if (text.length === 0 || text.length > MAX_TEXT) {
    return { status: 400, body: { error: `text must be 1 to ${MAX_TEXT} characters` } };
  }
  const n = storage.increment("count");
  const key = keyOf(n);
  const entry = { name, text, at: new Date().toISOString() };
  storage.set(key, entry);
  const message = Object.assign({ key }, entry);
  routeRegistry.sendStreamMessage("/guestbook/stream", message);
  return { status: 201, body: message };
}

function showPage() {
  return {
    status: 200,
    headers: { "Content-Type": "text/html" },
    body: `<!DOCTYPE html>
<html>
<head>
  <meta charset="utf-8">
  <title>Guestbook</title>
  <style>
    body { font-family: system-ui, sans-serif; max-width: 720px; margin: 2em auto; padding: 0 1em; background: #fafafa; }
    form { display: flex; gap: 8px; margin-bottom: 1.5em; }
    input[name=name] { width: 9em; }
    input[name=text] { flex: 1; }
    .entry { background: white; border: 1px solid #ddd; border-radius: 6px; padding: 8px 12px; margin: 8px 0; }
    .entry b { margin-right: 6px; }
    .entry time { color: #888; font-size: 0.8em; float: right; }
  </style>
</head>
<body>
  <h1>Guestbook</h1>
  <form id="sign">
    <input name="name" placeholder="Your name" maxlength="${MAX_NAME}">
    <input name="text" placeholder="Say something nice" maxlength="${MAX_TEXT}" required>
    <button>Sign</button>
  </form>
  <div id="entries"></div>
  <script>
    const entries = document.getElementById("entries");
    const shown = new Set();

    function render(m, atTop) {
      if (shown.has(m.key)) return;
      shown.add(m.key);
      const div = document.createElement("div");
      div.className = "entry";
      const who = document.createElement("b");
      who.textContent = m.name;
      const when = document.createElement("time");
      when.textContent = new Date(m.at).toLocaleString();
      div.append(when, who, document.createTextNode(m.text));
      if (atTop) entries.prepend(div); else entries.append(div);
    }

    // Pages come oldest first; show newest first.
    async function loadAll() {
      let after = "";
      const all = [];
      for (;;) {
        const res = await fetch("/guestbook/api/messages?limit=${PAGE}" + (after ? "&after=" + encodeURIComponent(after) : ""));
        const page = await res.json();
        all.push(...page.messages);
        if (!page.next) break;
        after = page.next;
      }
      for (const m of all.reverse()) render(m, false);
    }

    document.getElementById("sign").addEventListener("submit", async (e) => {
      e.preventDefault();
      const form = e.target;
      const body = JSON.stringify({ name: form.name.value, text: form.text.value });
      const res = await fetch("/guestbook/api/messages", { method: "POST", body });
      if (res.ok) form.text.value = "";
      else alert((await res.json()).error);
    });

    new EventSource("/guestbook/stream").onmessage = (e) => render(JSON.parse(e.data), true);
    loadAll();
  </script>
</body>
</html>`,
  };
}
