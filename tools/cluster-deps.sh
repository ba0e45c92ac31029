#!/usr/bin/env bash
# Installs what cluster mode's example (deploy/run.sh) and tests (host/tests/cluster.rs)
# need and this machine lacks: Debian's redis-server and nginx. A no-op when both are
# on PATH (or in /usr/sbin, where Debian puts nginx).
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v nginx >/dev/null || missing+=(nginx)
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "cluster-deps: installing ${missing[*]} via apt"
sudo_=""; [[ "$(id -u)" == 0 ]] || sudo_=sudo
$sudo_ apt-get update -qq
# The packages' post-install scripts try to start system services (redis on 6379,
# nginx on 80); where that fails (a container without an init system) the binaries
# are still installed, which is all we need, so only their presence is checked.
DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || true
for bin in redis-server nginx; do
  command -v "$bin" >/dev/null || { echo "cluster-deps: $bin is still missing" >&2; exit 1; }
done
