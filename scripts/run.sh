#!/usr/bin/env bash
# Sets everything up and runs the dashboard on the embedded generator (no external
# service): http://localhost:8080. Extra arguments go to `instabrand serve`
# (e.g. --port 9000, --bind 0.0.0.0, --rate 500).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build-frontend.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -p instabrand-server
exec target/release/instabrand serve "$@"
