#!/usr/bin/env bash
# Real-browser end-to-end tests of the seed example pages (scripts/*.js).
#
# Starts the debug server on 127.0.0.1 port 0 (it picks a free port and logs it) with
# a temporary copy of scripts/, then runs tests/browser/*.test.mjs with node's built-in
# test runner and headless Chromium (driven by playwright-core). Screenshots land in
# target/screenshots/.
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
# Interrupted: still stop the server (cleanup runs on the way out).
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK/scripts"
cp scripts/*.js "$WORK/scripts/"

# Port 0: the server binds a free port itself and logs the address it got, so
# no other process can take the port in between. The compiled guest is cached
# under target/, never in ~/.cache.
NO_COLOR=1 RUST_LOG=info "$BIN" serve --scripts "$WORK/scripts" --data-dir "$WORK/data" --listen 127.0.0.1:0 --no-watch \
  --cache-dir "$ROOT/target/browser-guest-cache" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

# Ready when it logs its address (at most 60 s: the first start compiles the guest).
BASE_URL=""
for _ in $(seq 300); do
  BASE_URL="$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$WORK/server.log" | head -n 1 | sed 's/^listening on //')" || true
  if [[ -n "$BASE_URL" ]]; then break; fi
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "browser: server exited during startup" >&2
    exit 1
  fi
  sleep 0.2
done
if [[ -z "$BASE_URL" ]]; then
  echo "browser: the server logged no address after 60 s" >&2
  exit 1
fi
export BASE_URL
curl -sf -o /dev/null --max-time 10 "$BASE_URL/_engine/health/ready" || {
  echo "browser: server at $BASE_URL is not ready" >&2
  exit 1
}

# 5. The tests.
export SCREENSHOT_DIR="$ROOT/target/screenshots"
mkdir -p "$SCREENSHOT_DIR"
echo "browser: server at $BASE_URL, screenshots in $SCREENSHOT_DIR"
node --test --test-reporter=spec --test-timeout=60000 "$HERE"/*.test.mjs
