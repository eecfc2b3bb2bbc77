#!/usr/bin/env bash
# HTTP benchmark, side by side in one run: slpocapp (static musl release build),
# the same service on axum 0.8 + prometheus-client (bench/examples/axum_app.rs),
# once with the six process metrics slpocapp's scrape carries and once without,
# and a faithful Python copy of the seed app (aiohttp + prometheus-client).
#
#   bench/http.sh          # DURATION=5 seconds per wrk run, ROUNDS=3
#
# Two placements: "shared" (servers and wrk -t2 on all CPUs) and "pinned" (the
# server on CPU 0 with taskset, wrk -t1 on CPU 1: what a pod with one CPU sees).
# In each placement the four servers are started fresh; their start-to-first-
# scrape time and idle RSS are read, then ROUNDS rounds run wrk -c32 on / and on
# /metrics against each server in turn (interleaved, so that a noisy moment hits
# all of them), and the table gives the median of the rounds with min-max.
# Peak RSS is VmHWM after the rounds (32 connections at once).
# Needs wrk (Debian) and a venv with aiohttp and prometheus-client (made here).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${DURATION:-5}"
ROUNDS="${ROUNDS:-3}"
VENV="${VENV:-.venv}"
command -v wrk >/dev/null || { sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo; $sudo apt-get install -y -qq wrk >/dev/null; }
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c 'import aiohttp, prometheus_client' 2>/dev/null || "$VENV/bin/pip" install -q aiohttp prometheus-client
binary=$(scripts/build-static.sh 2>/dev/null)
cargo build -q --release --manifest-path bench/Cargo.toml --example axum_app
axum=bench/target/release/examples/axum_app
(($(nproc) >= 2)) || { echo "the pinned placement needs 2 CPUs" >&2; exit 1; }

names=(slpocapp axum axum+process seed)
port_of() { case $1 in slpocapp) echo 18100 ;; axum) echo 18101 ;; axum+process) echo 18102 ;; seed) echo 18103 ;; esac; }
command_of() {
    local port; port=$(port_of "$1")
    case $1 in
    slpocapp) echo "$binary --bind 127.0.0.1 --port $port" ;;
    axum) echo "env PROCESS_METRICS=0 $axum $port" ;;
    axum+process) echo "env PROCESS_METRICS=1 $axum $port" ;;
    seed) echo "env PORT=$port $VENV/bin/python bench/seed_app.py" ;;
    esac
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM/ {print $2}' "/proc/$1/status"; }
# wrk_run WRAPPER THREADS URL -> "req/s p50_ms p99_ms errors"
wrk_run() {
    $1 wrk -t"$2" -c32 -d"${DURATION}s" --latency "$3" | awk '
        function ms(v) {
            if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0
            if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v
        }
        /Requests\/sec/ {rps = $2}
        $1 == "50%" {p50 = ms($2)} $1 == "99%" {p99 = ms($2)}
        /Socket errors/ {gsub(",", ""); errors += $4 + $6 + $8 + $10}
        /Non-2xx/ {errors += $5}
        END {printf "%.0f %.3f %.3f %d\n", rps, p50, p99, errors}'
}
# stats VALUES... -> "median (min-max)"
stats() {
    printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        fmt = (v[NR] >= 100) ? "%.0f" : "%.2f"
        printf fmt " (" fmt "-" fmt ")", m, v[1], v[NR]}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
mib() { awk -v k="$1" 'BEGIN {printf "%.2f MiB", k / 1024}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }

declare -A pid first idle peak samples
run_placement() {
    local placement=$1 server_wrap wrk_wrap threads
    if [ "$placement" = pinned ]; then
        server_wrap="taskset -c 0" wrk_wrap="taskset -c 1" threads=1
    else
        server_wrap="" wrk_wrap="" threads=2
    fi
    for name in "${names[@]}"; do
        local out
        # shellcheck disable=SC2046
        out=$("$VENV/bin/python" bench/first_scrape.py "$(port_of "$name")" $server_wrap $(command_of "$name"))
        first[$name]=$(sed -n 1p <<<"$out")
        pid[$name]=$(sed -n 2p <<<"$out")
        for path in root metrics; do samples[$name.$path.rps]="" samples[$name.$path.p50]="" samples[$name.$path.p99]=""; done
        samples[$name.errors]=0
    done
    sleep 1
    for name in "${names[@]}"; do idle[$name]=$(rss_kib "${pid[$name]}"); done
    for round in $(seq "$ROUNDS"); do
        for name in "${names[@]}"; do
            for path in root metrics; do
                local url="http://127.0.0.1:$(port_of "$name")/"
                [ "$path" = metrics ] && url+=metrics
                read -r rps p50 p99 errors < <(wrk_run "$wrk_wrap" "$threads" "$url")
                samples[$name.$path.rps]+=" $rps" samples[$name.$path.p50]+=" $p50" samples[$name.$path.p99]+=" $p99"
                samples[$name.errors]=$((samples[$name.errors] + errors))
                printf '%s round %s %-12s %-8s %8s req/s p99 %s ms\n' "$placement" "$round" "$name" "$path" "$rps" "$p99" >&2
            done
        done
    done
    for name in "${names[@]}"; do
        peak[$name]=$(hwm_kib "${pid[$name]}")
        kill "${pid[$name]}"
    done
    wait 2>/dev/null || true
    sleep 0.5

    echo
    echo "### $placement: $([ "$placement" = pinned ] && echo "server on CPU 0, wrk -t1 -c32 on CPU 1" || echo "wrk -t2 -c32, $(nproc) CPUs shared")"
    echo
    echo "$ROUNDS rounds of ${DURATION}s, median (min-max); $(date -u +%Y-%m-%d)"
    echo
    echo "| | slpocapp | axum + prometheus-client | axum + prometheus-client + process metrics | seed app (aiohttp) | slpocapp / axum | slpocapp / seed |"
    echo "|---|---|---|---|---|---|---|"
    # shellcheck disable=SC2086
    for path in root metrics; do
        local label; label=$([ "$path" = root ] && echo "GET /" || echo "GET /metrics")
        local peer=axum; [ "$path" = metrics ] && peer=axum+process
        local row="| $label req/s"
        for name in "${names[@]}"; do row+=" | $(stats ${samples[$name.$path.rps]})"; done
        row+=" | $(ratio "$(median ${samples[slpocapp.$path.rps]})" "$(median ${samples[$peer.$path.rps]})")"
        row+=" | $(ratio "$(median ${samples[slpocapp.$path.rps]})" "$(median ${samples[seed.$path.rps]})") |"
        echo "$row"
        row="| $label p50 / p99 ms"
        for name in "${names[@]}"; do row+=" | $(median ${samples[$name.$path.p50]}) / $(median ${samples[$name.$path.p99]})"; done
        echo "$row | | |"
    done
    local row="| RSS idle"
    for name in "${names[@]}"; do row+=" | $(mib "${idle[$name]}")"; done
    echo "$row | | |"
    row="| RSS peak (32 connections)"
    for name in "${names[@]}"; do row+=" | $(mib "${peak[$name]}")"; done
    echo "$row | | |"
    row="| start to first answered /metrics"
    for name in "${names[@]}"; do row+=" | ${first[$name]} ms"; done
    echo "$row | | |"
    row="| failed requests (socket errors, non-2xx)"
    for name in "${names[@]}"; do row+=" | ${samples[$name.errors]}"; done
    echo "$row | | |"
}

run_placement shared
run_placement pinned
echo
echo "slpocapp static binary: $(stat -c %s "$binary") bytes ($(mib $(($(stat -c %s "$binary") / 1024)))); axum_app (dynamically linked, glibc): $(stat -c %s "$axum") bytes"
