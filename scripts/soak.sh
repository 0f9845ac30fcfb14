#!/usr/bin/env bash
# Soak benchmark (issue 12): the release server with the embedded generator at
# 20,000 events/s for 30 minutes, event time running fast enough to cover 60 days,
# state store and archive on a temporary dir; one line per minute (memory, store file,
# checkpoint, state per part), then min/max per series after the warm-up and whether
# each stays within ±10 % of its mean (exit 1 if not). `--file FILE`: the same for an
# NDJSON file spanning 90 days read at full speed (made first if absent).
#
#   scripts/soak.sh [--rate 20000] [--minutes 30] [--days 60] [--every 60]
#                   [--settle-minutes 10 | --settle-days D] [-- SERVE ARGS…]
#   scripts/soak.sh --file /tmp/soak-90d.ndjson [--file-events 36000000] [--file-days 90]
#
# All options: scripts/soak.py --help. Environment: CARGO_TARGET_DIR (default target);
# INSTABRAND_BIN to skip the build.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=${CARGO_TARGET_DIR:-target}
if [ -z "${INSTABRAND_BIN:-}" ]; then
    echo "building (release)..." >&2
    cargo build --release -p instabrand-server --bin instabrand >&2
    export INSTABRAND_BIN="$TARGET/release/instabrand"
fi
exec python3 scripts/soak.py "$@"
