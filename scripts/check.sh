#!/usr/bin/env bash
# The test command: formatting, lints, and every test (unit, integration, doc).
# Installs the system packages first, so it works on a fresh Debian machine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
