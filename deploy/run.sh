#!/usr/bin/env bash
# An aiwebengine cluster on this machine: one Redis, three nodes serving scripts/,
# and nginx in front of them. Ctrl-C stops everything.
#
#   deploy/run.sh            build the release binary, then start it all
#   deploy/run.sh prepare    only install, build and render (for deploy/Procfile)
#
#   http://127.0.0.1:8080     nginx, load-balancing the three nodes
#   http://127.0.0.1:8081-3   the nodes themselves (node1, node2, node3)
#   redis://127.0.0.1:6379    Redis: the shared streams and storage
#
# Environment (all optional):
#   PORT=8080 NODE_PORTS="8081 8082 8083" REDIS_PORT=6379
#   SCRIPTS=scripts           the folder every node serves (the same on each node)
#   RUN_DIR=target/deploy     Redis's data (append-only file), node data, nginx's files
#   AIWEBENGINE_BIN=path      a binary to use instead of building target/release/aiwebengine
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
cd "$ROOT"
export PATH="$PATH:/usr/sbin:/sbin" # Debian's nginx

PORT="${PORT:-8080}"
NODE_PORTS="${NODE_PORTS:-8081 8082 8083}"
REDIS_PORT="${REDIS_PORT:-6379}"
SCRIPTS="${SCRIPTS:-scripts}"
RUN_DIR="${RUN_DIR:-$ROOT/target/deploy}"
REDIS_URL="redis://127.0.0.1:$REDIS_PORT"

say() { echo "run.sh: $*" >&2; }

# 1. redis-server and nginx (Debian packages), the binary, the folders.
"$ROOT/tools/cluster-deps.sh"
if [[ -n "${AIWEBENGINE_BIN:-}" ]]; then
  BIN="$AIWEBENGINE_BIN"
else
  say "building the release binary (the first build takes several minutes)"
  cargo build --release -q -p aiwebengine
  BIN="$ROOT/target/release/aiwebengine"
fi
mkdir -p "$RUN_DIR/redis" "$RUN_DIR/nginx"

# 2. nginx.conf rendered from the template: this run's ports, paths under RUN_DIR.
upstreams=""
for p in $NODE_PORTS; do
  upstreams+="server 127.0.0.1:$p max_fails=1 fail_timeout=5s; "
done
# (Comment lines are left as they are.)
sed -e "/^ *#/!{s|@PREFIX@|$RUN_DIR/nginx|g; s|@LISTEN@|127.0.0.1:$PORT|g; s|@UPSTREAMS@|$upstreams|g}" \
  "$HERE/nginx.conf" >"$RUN_DIR/nginx/nginx.conf"
nginx -t -q -p "$RUN_DIR/nginx" -c "$RUN_DIR/nginx/nginx.conf" -e "$RUN_DIR/nginx/error.log"
[[ "${1:-}" == prepare ]] && { say "prepared $RUN_DIR"; exit 0; }

# 3. Every port must be free: a Redis already on 6379 (Debian starts one) would
#    otherwise be shared by accident.
for p in "$REDIS_PORT" $NODE_PORTS "$PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
    say "port $p is in use; pick others, e.g. REDIS_PORT=6380 PORT=9080 NODE_PORTS=\"9081 9082 9083\" $0"
    exit 1
  fi
done

# 4. Start everything, each line of output prefixed with its name, Procfile-style.
declare -A NAMES=()
PIDS=()
start() { # start NAME COMMAND...
  local name="$1"; shift
  # The prefixer ignores Ctrl-C, so the last lines of a stopping process still show.
  "$@" > >(trap '' INT TERM; exec sed -u "s/^/$(printf '%-6s' "$name") | /") 2>&1 &
  NAMES[$!]="$name"
  PIDS+=($!)
}
stop_all() {
  trap - INT TERM EXIT
  say "stopping"
  kill -TERM "${PIDS[@]}" 2>/dev/null || true
  wait "${PIDS[@]}" 2>/dev/null || true
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Redis keeps the streams' history and the scripts' storage: an append-only file,
# fsync'd every second, under RUN_DIR/redis.
start redis redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$RUN_DIR/redis" \
  --save "" --appendonly yes --appendfsync everysec
n=0
for p in $NODE_PORTS; do
  n=$((n + 1))
  # A node retries Redis until it answers, so the start order does not matter.
  start "node$n" "$BIN" serve --scripts "$SCRIPTS" --listen "127.0.0.1:$p" \
    --redis "$REDIS_URL" --node-name "node$n" --data-dir "$RUN_DIR/node$n"
done
start nginx nginx -p "$RUN_DIR/nginx" -c "$RUN_DIR/nginx/nginx.conf" -e "$RUN_DIR/nginx/error.log"

say "http://127.0.0.1:$PORT (nginx) -> nodes on $NODE_PORTS -> $REDIS_URL; Ctrl-C stops all"
say "try: http://127.0.0.1:$PORT/chat in two browsers; kill -9 one node and keep chatting"

# 5. Until Ctrl-C. A node may be killed to try failover; the cluster keeps going.
#    Without Redis or nginx there is nothing left to show, so then all stop.
while ((${#NAMES[@]} > 0)); do
  pid=""
  wait -n -p pid "${!NAMES[@]}" || true
  [[ -n "$pid" ]] || continue
  name="${NAMES[$pid]}"
  unset "NAMES[$pid]"
  say "$name (pid $pid) exited"
  if [[ "$name" == redis || "$name" == nginx ]]; then exit 1; fi
done
