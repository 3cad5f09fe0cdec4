#!/usr/bin/env bash
# The test command: formatting, lints, and every test (unit, integration, doc).
# Installs the system packages first, so it works on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
# The tests run with a fake microphone (a PulseAudio null sink) so the desktop app's capture
# path is tested for real.
bash scripts/fake-mic.sh run cargo test --locked
