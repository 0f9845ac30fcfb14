#!/usr/bin/env bash
# Sets everything up and runs the whole test suite: formatting and lints, the Rust
# unit and integration tests, then the end-to-end tests against the real server, a
# real Kafka-protocol broker and headless Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
export PATH="$PWD/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"
export CARGO_TERM_COLOR=never

step() { printf '\n== %s\n' "$*"; }

step "format"
cargo fmt --all -- --check
step "lints"
cargo clippy --workspace --all-targets -- -D warnings
step "Rust tests"
cargo test --workspace
step "build the dashboard and the release server"
bash scripts/build-frontend.sh
cargo build --release -p instabrand-server
step "end-to-end tests"
export INSTABRAND_BIN="$PWD/target/release/instabrand"
python3 -m pytest e2e -q -p no:cacheprovider
