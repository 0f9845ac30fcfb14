#!/usr/bin/env bash
# Backlog catch-up benchmark, against a real broker (tansu on loopback, in memory):
# N events produced to the six topics BEFORE the server starts (follows last), then
# `instabrand serve --kafka` timed until every event is applied; the same events read
# from an NDJSON file for comparison, rate and all-time reach. See e2e/bench_backlog.py.
#
#   scripts/bench-backlog.sh [--events 300000] [--source independent|generator]
#                            [--partitions 3] [--users N] [--seed S] [--no-file-run]
#
# Environment: CARGO_TARGET_DIR (default target); INSTABRAND_BIN to skip the build.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
if [ -z "${INSTABRAND_BIN:-}" ]; then
    echo "building (release)..." >&2
    cargo build --release -p instabrand-server --bin instabrand >&2
    export INSTABRAND_BIN="$TARGET/release/instabrand"
fi
exec python3 e2e/bench_backlog.py "$@"
