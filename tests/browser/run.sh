#!/usr/bin/env bash
# Real-browser end-to-end tests of the seed example pages (scripts/*.js).
#
# Starts the debug server on a free 127.0.0.1 port with a temporary copy of scripts/,
# then runs tests/browser/*.test.mjs with node's built-in test runner and headless
# Chromium (driven by playwright-core). Screenshots land in target/screenshots/.
#
# Environment:
#   AIWEBENGINE_BIN  use this server binary instead of building target/debug/aiwebengine
#   CHROMIUM         browser executable (default /usr/bin/chromium)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"

export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"

# 1. Chromium from apt (playwright's own browser download does not work here).
if [[ ! -x "$CHROMIUM" ]]; then
  echo "browser: installing chromium via apt"
  sudo_=""; [[ "$(id -u)" == 0 ]] || sudo_=sudo
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq chromium >/dev/null
fi

# 2. playwright-core. npm writes node_modules/.package-lock.json on install, so a
#    package-lock.json newer than it means node_modules is stale.
if [[ ! -f "$HERE/node_modules/.package-lock.json" ||
  "$HERE/package-lock.json" -nt "$HERE/node_modules/.package-lock.json" ]]; then
  echo "browser: npm ci"
  (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error)
fi

# 3. The server (an incremental debug build; a no-op when nothing changed).
if [[ -n "${AIWEBENGINE_BIN:-}" ]]; then
  BIN="$AIWEBENGINE_BIN"
else
  cargo build -q -p aiwebengine
  BIN="$ROOT/target/debug/aiwebengine"
fi

# 4. Start it on a free port, serving a throwaway copy of the seed scripts.
WORK="$(mktemp -d)"
SERVER_PID=""
cleanup() {
  local rc=$?
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [[ $rc -ne 0 && -f "$WORK/server.log" ]]; then
    echo "browser: FAILED (exit $rc); last server log lines:" >&2
    tail -n 40 "$WORK/server.log" >&2 || true
  fi
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

mkdir -p "$WORK/scripts"
cp scripts/*.js "$WORK/scripts/"

# Ask the OS for a free port (a tiny race with other processes is acceptable here).
PORT="$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });')"
export BASE_URL="http://127.0.0.1:$PORT"

NO_COLOR=1 "$BIN" serve --scripts "$WORK/scripts" --listen "127.0.0.1:$PORT" --no-watch \
  >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

# Ready once the scripts are loaded (at most 30 s: the first start compiles the guest).
# The server accepts connections while it loads; /_engine/health/ready answers 503 until then.
for _ in $(seq 150); do
  if curl -sf -o /dev/null "$BASE_URL/_engine/health/ready"; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "browser: server exited during startup" >&2
    exit 1
  fi
  sleep 0.2
done
curl -sf -o /dev/null "$BASE_URL/_engine/health/ready" || {
  echo "browser: server not ready at $BASE_URL after 30 s" >&2
  exit 1
}

# 5. The tests.
export SCREENSHOT_DIR="$ROOT/target/screenshots"
mkdir -p "$SCREENSHOT_DIR"
echo "browser: server at $BASE_URL, screenshots in $SCREENSHOT_DIR"
node --test --test-reporter=spec --test-timeout=60000 "$HERE"/*.test.mjs
