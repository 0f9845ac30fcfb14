#!/usr/bin/env bash
# Installs what building, running and testing Instabrand needs, at pinned versions, and
# skips whatever is already there. Everything comes from the package registries
# (Debian, crates.io, npm, PyPI); nothing is downloaded at run time.
#
#   scripts/setup.sh          what the dashboard needs (wasm32 target, Trunk,
#                             wasm-bindgen-cli, wasm-opt)
#   scripts/setup.sh --test   also what the test suite needs (Chromium + chromedriver,
#                             the tansu Kafka broker, kafka-python, duckdb, selenium)
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned versions. WASM_BINDGEN must equal the wasm-bindgen version in Cargo.lock
# (the frontend pins it with `=`), or the generated JS glue will not match the wasm.
TRUNK_VERSION=0.21.14
WASM_BINDGEN_VERSION=0.2.130
BINARYEN_VERSION=132.0.0
TANSU_VERSION=0.6.0

want_test=0
[ "${1:-}" = "--test" ] && want_test=1

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }
export PATH="$HOME/.cargo/bin:$PATH"

have_version() { # command, expected substring of `command --version`
  command -v "$1" >/dev/null 2>&1 && "$1" --version 2>/dev/null | grep -q -- "$2"
}

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Native build dependencies: librdkafka is built from rdkafka's bundled source.
apt_install build-essential pkg-config cmake zlib1g-dev

if ! rustup target list --installed | grep -q wasm32-unknown-unknown; then
  log "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

if ! have_version trunk "$TRUNK_VERSION"; then
  log "cargo install trunk $TRUNK_VERSION (several minutes, once)"
  cargo install trunk --version "$TRUNK_VERSION" --locked --quiet
fi

if ! have_version wasm-bindgen "$WASM_BINDGEN_VERSION"; then
  log "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION"
  # Not --locked: its lock file names a webpki-roots version the registry lacks.
  cargo install wasm-bindgen-cli --version "=$WASM_BINDGEN_VERSION" --quiet
fi

# Debian's binaryen 108 miscompiles wasm-bindgen's externref table; npm's 132 works.
if ! [ -x tools/node_modules/.bin/wasm-opt ] || ! tools/node_modules/.bin/wasm-opt --version | grep -q 132; then
  log "npm install binaryen@$BINARYEN_VERSION"
  mkdir -p tools
  (cd tools && npm install --silent --no-audit --no-fund --prefix . "binaryen@$BINARYEN_VERSION" >/dev/null)
fi

if [ "$want_test" = 1 ]; then
  apt_install chromium chromium-driver fonts-dejavu-core
  if ! have_version tansu "$TANSU_VERSION"; then
    log "cargo install tansu $TANSU_VERSION (about 9 minutes, once)"
    cargo install tansu --version "$TANSU_VERSION" --features dynostore --quiet
  fi
  if ! python3 -c 'import kafka, duckdb, selenium, pytest, moto' 2>/dev/null; then
    log "pip install kafka-python duckdb selenium pytest moto[server]"
    # moto: a local S3 server for the broker's storage in the broker-restart test.
    python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
      'kafka-python==2.2.15' 'duckdb==1.4.1' 'selenium==4.38.0' 'pytest==9.2.0' \
      'moto[server]==5.2.1'
  fi
fi
log "ready"
