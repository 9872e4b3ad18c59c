#!/usr/bin/env bash
# The test command: every test of the workspace, in one target dir.
# Audio-device tests need a sound server: start PulseAudio with a null sink first
# (idempotent; the device tests also start it themselves if it is not running).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
# A CI clone builds once: incremental state would only take disk space.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi
eval "$(scripts/start-pulse.sh)"
cargo test --workspace --locked 2>&1
