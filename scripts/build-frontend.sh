#!/usr/bin/env bash
# Builds the dashboard into dist/ (served by `instabrand serve`), offline, with the
# pinned tools that scripts/setup.sh installs: trunk 0.21.14 and wasm-bindgen-cli
# 0.2.130 in ~/.cargo/bin, wasm-opt version_132 from npm binaryen in tools/.
#
#   scripts/build-frontend.sh            release build (wasm-opt -Oz)
#   NO_WASM_OPT=1 scripts/build-frontend.sh   skip wasm-opt (the fallback if it misbehaves)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/tools/node_modules/.bin:$HOME/.cargo/bin:$PATH"

for tool in trunk wasm-bindgen wasm-opt; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run scripts/setup.sh" >&2; exit 1; }
done
wasm-bindgen --version | grep -q 0.2.130 || { echo "wasm-bindgen-cli must be 0.2.130 (scripts/setup.sh)" >&2; exit 1; }
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

index=frontend/index.html
if [ "${NO_WASM_OPT:-0}" = 1 ]; then
  # Build from a copy of index.html with wasm-opt off; the tracked file is untouched.
  tmp=frontend/.index.no-opt.html
  sed 's/data-wasm-opt="z"/data-wasm-opt="0"/' "$index" > "$tmp"
  trap 'rm -f "$tmp"' EXIT
  index=$tmp
fi
trunk build --release --offline=true "$index"
wasm=$(ls dist/*.wasm | head -1)
echo "built $(du -h "$wasm" | cut -f1) $wasm ($(gzip -9 -c "$wasm" | wc -c) bytes gzip)"
