#!/usr/bin/env bash
# HTTP benchmark: slpocapp (static release build) against a faithful Python copy of
# the seed app (aiohttp + prometheus-client), on this machine, in one run.
#
#   bench/http.sh            # DURATION=10 by default (seconds per wrk run)
#
# For each: time from start to the first answered /metrics, RSS idle, wrk -c32 on
# / and on /metrics (req/s, p50, p99), peak RSS under that load, and slpocapp's
# answers per connection from examples/load (which wrk does not show).
# Needs wrk (Debian) and a venv with aiohttp and prometheus-client (made here).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-10}"
VENV="${VENV:-.venv}"
command -v wrk >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get install -y -qq wrk >/dev/null; }
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import aiohttp, prometheus_client' 2>/dev/null || "$VENV/bin/pip" install -q aiohttp prometheus-client
binary=$(scripts/build-static.sh 2>/dev/null)
cargo build -q --release --example load
load=target/release/examples/load

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
# wrk_run URL -> "req/s p50 p99"
wrk_run() {
    wrk -t2 -c32 -d"${DURATION}s" --latency "$1" | awk '
        /Requests\/sec/ {rps=$2}
        $1=="50%" {p50=$2} $1=="99%" {p99=$2}
        /Socket errors/ {err=$0}
        END {printf "%.0f %s %s\n", rps, p50, p99}'
}

declare -A result
bench_app() {
    local name=$1 port=$2; shift 2
    local out pid first idle
    out=$("$VENV/bin/python" bench/first_scrape.py "$port" "$@")
    first=$(sed -n 1p <<<"$out"); pid=$(sed -n 2p <<<"$out")
    sleep 1
    idle=$(rss_kib "$pid")
    read -r root_rps root_p50 root_p99 < <(wrk_run "http://127.0.0.1:$port/")
    read -r met_rps met_p50 met_p99 < <(wrk_run "http://127.0.0.1:$port/metrics")
    local peak; peak=$(hwm_kib "$pid")
    result[$name]="$first $idle $root_rps $root_p50 $root_p99 $met_rps $met_p50 $met_p99 $peak"
    if [ "$name" = slpocapp ]; then
        echo "examples/load -c32 on slpocapp /:" >&2
        "$load" -q -c 32 -d "$DURATION" "127.0.0.1:$port/" | sed 's/^/  /' >&2
    fi
    kill "$pid"; wait "$pid" 2>/dev/null || true
}

bench_app slpocapp 18100 "$binary" --bind 127.0.0.1 --port 18100
PORT=18101 bench_app seed 18101 "$VENV/bin/python" bench/seed_app.py

read -r s_first s_idle s_rrps s_rp50 s_rp99 s_mrps s_mp50 s_mp99 s_peak <<<"${result[slpocapp]}"
read -r p_first p_idle p_rrps p_rp50 p_rp99 p_mrps p_mp50 p_mp99 p_peak <<<"${result[seed]}"
mib() { awk -v k="$1" 'BEGIN {printf "%.2f MiB", k/1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1fx", a/b}'; }
echo
echo "wrk -t2 -c32 -d${DURATION}s, $(nproc) CPUs, $(date -u +%Y-%m-%d)"
echo
echo "| | slpocapp (static musl) | seed app (aiohttp + prometheus-client) | slpocapp / seed |"
echo "|---|---|---|---|"
echo "| GET / req/s | $s_rrps | $p_rrps | $(ratio "$s_rrps" "$p_rrps") |"
echo "| GET / p50 / p99 | $s_rp50 / $s_rp99 | $p_rp50 / $p_rp99 | |"
echo "| GET /metrics req/s | $s_mrps | $p_mrps | $(ratio "$s_mrps" "$p_mrps") |"
echo "| GET /metrics p50 / p99 | $s_mp50 / $s_mp99 | $p_mp50 / $p_mp99 | |"
echo "| RSS idle | $(mib "$s_idle") | $(mib "$p_idle") | |"
echo "| RSS peak under load (32 connections) | $(mib "$s_peak") | $(mib "$p_peak") | |"
echo "| start to first answered /metrics | $s_first ms | $p_first ms | |"
