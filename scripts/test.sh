#!/usr/bin/env bash
# The project's one test command: sets up what it needs on a fresh Debian machine,
# then runs every check. CI (.ci/run) calls exactly this.
#
#   scripts/test.sh
#
# Environment: VENV (default .venv) is the Python venv it creates and uses.
set -euo pipefail
cd "$(dirname "$0")/.."
export VENV="${VENV:-.venv}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n==> %s\n' "$*"; }

step "setup: Debian packages (promtool from prometheus)"
need=()
command -v promtool >/dev/null || need+=(prometheus)
if ((${#need[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
promtool --version 2>&1 | head -n 1

step "setup: Python venv $VENV (prometheus-client)"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import prometheus_client' 2>/dev/null ||
    "$VENV/bin/pip" install -q prometheus-client
"$VENV/bin/python" -c 'import prometheus_client, importlib.metadata as m; print("prometheus-client", m.version("prometheus-client"))'
export PROMLITE_PYTHON="$VENV/bin/python"

step "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path bench/Cargo.toml -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo test (unit, integration, doc tests) and the conformance tests against promtool and prometheus-client"
cargo test -- --include-ignored

step "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps

step "benchmark crate builds (clippy, no run)"
cargo clippy --manifest-path bench/Cargo.toml --all-targets -- -D warnings

printf '\nall checks passed\n'
