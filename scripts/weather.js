// Live weather: polls an upstream JSON API with fetch and streams what changed.
//
// Outbound requests are refused unless allowed, so serve it with:
//   aiwebengine serve --allow-outbound https://api.open-meteo.com
// (or AIWEBENGINE_ALLOW_OUTBOUND=https://api.open-meteo.com make run).
// To use another upstream, change UPSTREAM (and the rule) below; any JSON API
// works whose answer has the readings in `current` (or at its top level).
//
// Nothing is fetched until someone asks: the first GET /weather/current (the
// page at /weather does) starts polling every POLL_MS.

const UPSTREAM =
  "https://api.open-meteo.com/v1/forecast?latitude=60.17&longitude=24.94&current=temperature_2m,wind_speed_10m,relative_humidity_2m";
const POLL_MS = 60000;
const FETCH_TIMEOUT_MS = 10000;

let current = null; // the last readings
let fetchedAt = null;
let lastError = null;
let poller = null;

routeRegistry.registerStreamRoute("/weather/stream");

// The readings that differ between two snapshots: {name: {from, to}}.
function changes(before, after) {
  const changed = {};
  for (const key of Object.keys(after)) {
    const from = before ? before[key] : undefined;
    if (JSON.stringify(from) !== JSON.stringify(after[key])) changed[key] = { from, to: after[key] };
  }
  return changed;
}

async function poll() {
  try {
    const res = await fetch(UPSTREAM, { headers: { accept: "application/json" }, timeout: FETCH_TIMEOUT_MS });
    if (!res.ok) throw new Error(`upstream answered ${res.status} ${res.statusText}`);
    const data = await res.json();
    const readings = data && typeof data.current === "object" ? data.current : data;
    const changed = changes(current, readings);
    current = readings;
    fetchedAt = new Date().toISOString();
    if (lastError !== null) console.info("weather: the upstream answers again");
    lastError = null;
    if (Object.keys(changed).length > 0) {
      sendStreamMessage({ changed, current, fetchedAt });
    }
  } catch (e) {
    // Log a failure once, not at every poll.
    if (String(e) !== lastError) console.warn(`weather: ${e}`);
    lastError = String(e);
  }
}

function snapshot() {
  return { current, fetchedAt, error: lastError, upstream: UPSTREAM };
}

routeRegistry.registerRoute("GET", "/weather/current", async () => {
  if (poller === null) {
    poller = setInterval(poll, POLL_MS);
    await poll();
  }
  return { status: current === null ? 502 : 200, body: snapshot() };
});

routeRegistry.registerRoute("POST", "/weather/refresh", async () => {
  await poll();
  return { status: lastError === null ? 200 : 502, body: snapshot() };
});

routeRegistry.registerRoute("GET", "/weather", () => ({
  headers: { "content-type": "text/html" },
  body: `<!doctype html>
<html>
<head><meta charset="utf-8"><title>Live weather</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 2rem auto; }
  table { border-collapse: collapse; } td { padding: 0.25rem 1rem; border-bottom: 1px solid #ddd; }
  .changed { background: #fff3c4; } #error { color: #b00; }
</style></head>
<body>
<h1>Live weather</h1>
<p id="status">Loading...</p>
<p id="error"></p>
<table id="readings"></table>
<script>
  const table = document.getElementById("readings");
  function show(snapshot, changed) {
    document.getElementById("status").textContent = snapshot.fetchedAt ? "Updated " + snapshot.fetchedAt : "No data yet";
    document.getElementById("error").textContent = snapshot.error || "";
    table.innerHTML = "";
    for (const [name, value] of Object.entries(snapshot.current || {})) {
      const row = table.insertRow();
      row.insertCell().textContent = name;
      row.insertCell().textContent = JSON.stringify(value);
      if (changed && name in changed) row.className = "changed";
    }
  }
  fetch("/weather/current").then((r) => r.json()).then((s) => show(s));
  const events = new EventSource("/weather/stream");
  events.onmessage = (e) => {
    const m = JSON.parse(e.data);
    show({ current: m.current, fetchedAt: m.fetchedAt }, m.changed);
  };
</script>
</body>
</html>`,
}));
