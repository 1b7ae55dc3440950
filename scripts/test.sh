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

log "building the binaries the tests run"
cargo build --locked --bins

log "running the test suite"
cargo test --locked --workspace "$@"
