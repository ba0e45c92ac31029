#!/usr/bin/env bash
# make bench: installs what the benchmark needs (wrk; Bun through npm), builds
# the release binaries and runs the suite. Extra arguments go to the driver:
#   bench/run.sh --quick            short runs, a smoke test
#   bench/run.sh throughput reload  only those sections
#   bench/run.sh cluster            only the cluster section (Redis); it
#                                   replaces just its section of BENCHMARKS.md
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  echo "bench: installing wrk" >&2
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq wrk >/dev/null
fi
if ! command -v redis-server >/dev/null; then
  echo "bench: installing redis-server (the cluster section starts its own)" >&2
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq redis-server >/dev/null
fi
if [ -f bench/package-lock.json ] && { [ ! -x bench/node_modules/.bin/bun ] || [ ! -d bench/node_modules/ws ]; }; then
  echo "bench: npm ci (bun, ws)" >&2
  (cd bench && npm ci --no-audit --no-fund --loglevel=error)
fi
cargo build --release -p aiwebengine -p aiwebengine-bench
ulimit -n 20000 2>/dev/null || true
exec "${CARGO_TARGET_DIR:-target}/release/aiwebengine-bench" "$@"
