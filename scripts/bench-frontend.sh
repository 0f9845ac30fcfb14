#!/usr/bin/env bash
# Benchmarks the dashboard against its goals: wasm <= 700 KB gzip, first live number
# <= 1 s after load, map frame <= 16 ms with 20,000 points. Uses the real server on
# its embedded generator and headless Chromium (scripts/setup.sh --test installs it).
#
#   scripts/bench-frontend.sh            build what is missing, then measure
#   INSTABRAND_BIN=path scripts/bench-frontend.sh   measure against another binary
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${INSTABRAND_BIN:-}" ] && [ ! -x target/release/instabrand ]; then
  cargo build --release -p instabrand-server
fi
ls dist/*.wasm >/dev/null 2>&1 || scripts/build-frontend.sh
exec python3 e2e/bench.py
