#!/usr/bin/env bash
# The test command: every test of the workspace, in one target dir.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
cargo test --workspace --locked 2>&1
