#!/usr/bin/env bash
# Installs what the tests need and runs the whole test suite.
#
#   ./scripts/test.sh            # everything
#   ./scripts/test.sh -p skerry-shared   # extra arguments go to `cargo test`
#
# The suite runs against real parts: it starts `skerry serve` processes itself, so no
# service has to be running beforehand.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (https://rustup.rs)" >&2
  exit 1
fi

# Third-party parts the tests use for real: the MQTT clients that check the cloud's MQTT
# endpoint, and a static busybox from which the tests build their container images
# FROM scratch (no registry is needed or reached).
need=()
command -v mosquitto_sub >/dev/null 2>&1 || need+=(mosquitto-clients)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  echo "the tests run real containers: a running Docker engine is required" >&2
  exit 1
fi

log "building the binaries the tests run"
cargo build --locked --bins

log "running the test suite"
cargo test --locked --workspace "$@"
