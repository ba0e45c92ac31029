#!/usr/bin/env bash
# Prints the path of `promtool` (Prometheus's checker for the metrics text
# format), installing Debian's `prometheus` package first when it is missing.
# The operating tests pass /_engine/metrics through `promtool check metrics`.
set -euo pipefail
if ! command -v promtool >/dev/null; then
  echo "installing prometheus (for promtool)" >&2
  export DEBIAN_FRONTEND=noninteractive
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq >&2
  # No service is started: the package is only wanted for its promtool binary.
  $sudo_ apt-get install -y -qq --no-install-recommends prometheus >&2
fi
command -v promtool
