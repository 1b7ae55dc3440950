#!/usr/bin/env bash
# Installs what the tests need and runs the whole test suite.
#
#   ./scripts/test.sh                      # everything
#   ./scripts/test.sh -p skerry-shared     # extra arguments go to `cargo test`
#   SKERRY_TEST_INSTALL=check ./scripts/test.sh
#                                          # the install path only: report each package,
#                                          # simulate the apt-get install (no root, nothing
#                                          # changes), exit
#   SKERRY_TEST_DPKG_ADMINDIR=DIR          # judge what is installed by DIR/status instead of
#                                          # /var/lib/dpkg/status (an empty file: a fresh
#                                          # machine); .ci/run checks the install path so
#
# The suite runs against real parts: it starts `skerry serve` processes itself, so no
# service has to be running beforehand; a Docker engine must be.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*" >&2; }

# The Debian packages the build and the tests use, each checked on its own: a C compiler
# for the crates with C code (ring, zstd), the MQTT clients that check the cloud's MQTT
# endpoint, a static busybox from which the tests build their container images FROM
# scratch (no registry is needed or reached), and curl for the docs' runnable example.
PACKAGES=(build-essential mosquitto-clients busybox-static curl)

mode="${SKERRY_TEST_INSTALL:-install}"
case "$mode" in
  install | check) ;;
  *)
    echo "SKERRY_TEST_INSTALL must be install or check, not \"$mode\"" >&2
    exit 2
    ;;
esac
admindir="${SKERRY_TEST_DPKG_ADMINDIR:-/var/lib/dpkg}"

installed() { # PACKAGE: whether dpkg knows it as installed
  dpkg-query --admindir="$admindir" -W -f='${Status}' "$1" 2>/dev/null |
    grep -q 'install ok installed'
}

if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
  log "not a Debian system (no dpkg-query/apt-get): install ${PACKAGES[*]} (or their equivalents) beforehand"
  [ "$mode" = check ] && exit 1
else
  missing=()
  for p in "${PACKAGES[@]}"; do
    if installed "$p"; then
      log "package $p: installed"
    else
      log "package $p: missing"
      missing+=("$p")
    fi
  done
  if [ "$mode" = check ]; then
    if [ ${#missing[@]} -eq 0 ]; then
      log "nothing to install"
      exit 0
    fi
    log "would run: apt-get update && apt-get install -y ${missing[*]}"
    # Resolve the install against the same dpkg state, without changing anything.
    plan=$(apt-get -s -o Dir::State::status="$admindir/status" install -y "${missing[@]}" 2>&1) || {
      printf '%s\n' "$plan" >&2
      log "apt-get could not plan the install"
      exit 1
    }
    log "apt-get would install $(grep -c '^Inst ' <<<"$plan") package(s) in all"
    exit 0
  fi
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
    for p in "${missing[@]}"; do
      installed "$p" || {
        echo "apt-get did not install $p" >&2
        exit 1
      }
    done
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is required (https://rustup.rs)" >&2
  exit 1
fi
if ! docker info >/dev/null 2>&1; then
  echo "the tests run real containers: a running Docker engine is required" >&2
  exit 1
fi

log "building the binaries the tests run"
cargo build --locked --bins

log "running the test suite"
cargo test --locked --workspace --no-fail-fast "$@"
