#!/usr/bin/env bash
# `A && B || fail ...` is meant: fail unless both hold.
# shellcheck disable=SC2015
# The scaling pipeline end to end on this machine, without Kubernetes:
#
#   2 pods (the static binary, POD_NAME/POD_NAMESPACE as the downward API sets
#   them) -> the real Prometheus, scraping them as the ServiceMonitor / the
#   plain scrape config in manifests/ would (every 1 s instead of 15 s) ->
#   a known load -> prometheus-adapter's metricsQuery (manifests/adapter/
#   values.yaml), filled as the adapter fills it, through Prometheus' HTTP API
#   -> the HPA formula on manifests/hpa.yaml, under load and at rest.
#
#   scripts/e2e-hpa.sh                # from anywhere; about 90 s
#   RATE_PER_POD=40 KEEP_TMP=1 scripts/e2e-hpa.sh
#
# Needs: prometheus (Debian package prometheus, 2.42 here), curl, $VENV
# (default .venv) with PyYAML; builds the static binary and the load client
# with cargo when they are missing or stale (no-ops when built).
# Everything listens on 127.0.0.1; every wait is bounded; everything started
# is stopped on exit (trap), also on failure or Ctrl-C. Prints a timeline and
# exits 0 only if every step passed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
PROMETHEUS="${PROMETHEUS:-prometheus}"
RATE_PER_POD="${RATE_PER_POD:-40}"   # req/s each pod gets
CONNS_PER_POD=2
# The adapter's rate window is 1m: its value equals the applied rate only once
# the whole window lies inside the load, so the load runs 64 s and is measured
# at 62 s (window = seconds 2..62 of the load).
LOAD_SECONDS=64
MEASURE_AT=62
REST_WINDOW=10s                      # "at rest": the rate() range shortened 1m -> 10s
BUDGET=120                           # seconds for the pipeline (setup excluded)
PODS=(app-e2e-a app-e2e-b)
NS=default

T0=$(date +%s.%N)
tmp="$(mktemp -d /tmp/e2e-hpa.XXXXXX)"
export E2E_T0="$T0" E2E_TIMELINE="$tmp/timeline"
: >"$E2E_TIMELINE"

pids=()   # everything started in the background, in start order
pnames=()

elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
mark() {
    local now
    now=$(date +%s.%N)
    printf '%s\t%s\n' "$now" "$*" >>"$E2E_TIMELINE"
    printf '[%6.1fs] %s\n' "$(awk -v a="$T0" -v b="$now" 'BEGIN { print b - a }')" "$*"
}
say() { printf '          %s\n' "$*"; }
fail() {
    printf '[%6.1fs] FAIL %s\n' "$(elapsed)" "$*"
    exit 1
}

print_timeline() {
    printf '\ntimeline (seconds since start):\n'
    awk -F'\t' -v t0="$T0" '{ printf "  %6.1f  %s\n", $1 - t0, $2 }' "$E2E_TIMELINE"
}

# bg NAME LOG CMD...: start CMD in the background, remember its pid.
bg() {
    local name="$1" log="$2"
    shift 2
    "$@" >"$log" 2>&1 &
    pids+=("$!")
    pnames+=("$name")
}

# forget PID: it has been waited for (no kill on exit).
forget() {
    local i
    for i in "${!pids[@]}"; do
        [ "${pids[$i]}" = "$1" ] && unset 'pids[i]' 'pnames[i]'
    done
    return 0
}

# run_fg CMD...: run CMD to completion, but in the background and waited for, so
# that a SIGINT/SIGTERM to this script is handled at once (bash defers traps
# while a foreground command runs) and cleanup stops CMD too.
run_fg() {
    local rc=0
    "$@" &
    local pid=$!
    pids+=("$pid")
    pnames+=("$1")
    wait "$pid" || rc=$?
    forget "$pid"
    return "$rc"
}

# gone PID SECONDS: wait (bounded) until PID has exited; bash reaps its
# children as they exit, so kill -0 fails then, and `wait PID` still has the status.
gone() {
    local deadline
    deadline=$(($(date +%s%N) + $2 * 1000000000))
    while kill -0 "$1" 2>/dev/null; do
        [ "$(date +%s%N)" -lt "$deadline" ] || return 1
        sleep 0.01
    done
}

# stop PID: SIGTERM, wait up to 5 s, else SIGKILL; sets stop_rc and stop_ms
# (the caller judges them).
stop() {
    local pid="$1" t1 t2
    t1=$(date +%s%N)
    kill -TERM "$pid" 2>/dev/null || true
    gone "$pid" 5 || kill -KILL "$pid" 2>/dev/null || true
    stop_rc=0
    wait "$pid" 2>/dev/null || stop_rc=$?
    t2=$(date +%s%N)
    stop_ms=$(((t2 - t1) / 1000000))
    forget "$pid"
}

cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for i in "${!pids[@]}"; do
        kill -TERM "${pids[$i]}" 2>/dev/null && echo "cleanup: stopped ${pnames[$i]} (pid ${pids[$i]})"
    done
    for i in "${!pids[@]}"; do
        gone "${pids[$i]}" 5 || { kill -KILL "${pids[$i]}" 2>/dev/null && echo "cleanup: killed ${pnames[$i]}"; }
        wait "${pids[$i]}" 2>/dev/null || true
    done
    if [ "$rc" -ne 0 ]; then
        for f in "$tmp"/*.log "$tmp"/*.out; do
            [ -s "$f" ] || continue
            printf '\n--- last lines of %s\n' "$(basename "$f")"
            tail -n 15 "$f"
        done
        print_timeline
        printf '\ne2e-hpa: FAILED after %s s\n' "$(elapsed)"
    fi
    if [ -n "${KEEP_TMP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- setup (excluded from the 2-minute budget: cargo is a no-op when built)
for tool in "$PROMETHEUS" curl awk; do
    command -v "$tool" >/dev/null || fail "missing $tool"
done
[ -x "$PY" ] && "$PY" -c 'import yaml' 2>/dev/null || fail "$PY with PyYAML is needed (VENV=$VENV)"
BIN="$(scripts/build-static.sh 2>"$tmp/build.log")" || fail "scripts/build-static.sh (see $tmp/build.log)"
cargo build --release --example load -q >"$tmp/build-load.log" 2>&1 || fail "cargo build --release --example load"
LOAD=target/release/examples/load
[ -x "$BIN" ] && [ -x "$LOAD" ] || fail "binaries missing: $BIN $LOAD"
mark "setup: $BIN ($(stat -c %s "$BIN") bytes, static), $LOAD, $("$PROMETHEUS" --version 2>&1 | head -n 1 | cut -d' ' -f1-3)"
T_PIPE=$(date +%s.%N)

# --- 1. two pods
ports=()
app_pids=()
for pod in "${PODS[@]}"; do
    bg "pod $pod" "$tmp/$pod.log" env POD_NAME="$pod" POD_NAMESPACE="$NS" "$BIN" --bind 127.0.0.1 --port 0
    app_pids+=("$!")
done
for pod in "${PODS[@]}"; do
    port=""
    for _ in $(seq 100); do  # up to 5 s
        port=$(sed -n '1s/^slpocapp .* listening on 127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' "$tmp/$pod.log")
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || fail "pod $pod did not report its port: $(cat "$tmp/$pod.log")"
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/readyz")
    [ "$code" = 200 ] || fail "pod $pod: /readyz answered $code"
    ports+=("$port")
    mark "pod $pod (namespace $NS) listening on 127.0.0.1:$port, /readyz 200"
done

# --- 2. Prometheus, configured as the manifests route would configure it
run_fg "$PY" scripts/e2e_hpa.py config "$tmp/prometheus.yml" "${ports[0]}" "${PODS[0]}" "${ports[1]}" "${PODS[1]}" ||
    fail "writing prometheus.yml from manifests/"
promtool check config "$tmp/prometheus.yml" >"$tmp/promtool.out" 2>&1 || fail "promtool check config: $(cat "$tmp/promtool.out")"
pport=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
PROM="http://127.0.0.1:$pport"
bg prometheus "$tmp/prometheus.log" "$PROMETHEUS" --config.file="$tmp/prometheus.yml" \
    --storage.tsdb.path="$tmp/tsdb" --web.listen-address="127.0.0.1:$pport" --log.level=info
prom_pid=$!
mark "Prometheus started on 127.0.0.1:$pport (tsdb in $tmp/tsdb)"
run_fg "$PY" scripts/e2e_hpa.py wait "$PROM" 30 "${PODS[@]}" || fail "Prometheus did not get both targets' data"
run_fg "$PY" scripts/e2e_hpa.py series "$PROM" "${PODS[@]}" || fail "stored series"
mark "series checked: labels namespace/pod/job right, no exported_ labels, scraped as OpenMetrics"
T_SCRAPING=$(date +%s.%N)

# --- 3. known load: one client per pod, in parallel
load_pids=()
for i in 0 1; do
    bg "load ${PODS[$i]}" "$tmp/load-${PODS[$i]}.out" timeout -s KILL $((LOAD_SECONDS + 15)) \
        "$LOAD" -c "$CONNS_PER_POD" -r "$RATE_PER_POD" -d "$LOAD_SECONDS" -q "127.0.0.1:${ports[$i]}/"
    load_pids+=("$!")
done
T_LOAD=$(date +%s.%N)
mark "load started: $CONNS_PER_POD connections x ${RATE_PER_POD} req/s per pod, 2 pods, ${LOAD_SECONDS} s (total $((2 * RATE_PER_POD)) req/s)"

# --- 4. the adapter's query under load, once its 1m window lies inside the load
run_fg sleep "$(awk -v t="$T_LOAD" -v m="$MEASURE_AT" -v now="$(date +%s.%N)" 'BEGIN { d = t + m - now; print (d > 0 ? d : 0) }')"
run_fg "$PY" scripts/e2e_hpa.py query "$PROM" "$tmp/under-load.json" "" "${PODS[@]}" || fail "adapter query under load"
mark "adapter metricsQuery evaluated under load (window [1m] = seconds $((MEASURE_AT - 60))..$MEASURE_AT of the load)"
for i in 0 1; do
    pid="${load_pids[$i]}"
    rc=0
    wait "$pid" || rc=$?  # bounded: the client's -d, and timeout -s KILL around it
    forget "$pid"
    [ "$rc" -eq 0 ] || fail "load client for ${PODS[$i]} exited $rc: $(cat "$tmp/load-${PODS[$i]}.out")"
done
mark "load stopped; achieved (load client summaries): $(for p in "${PODS[@]}"; do
    awk -v p="$p" 'NR == 1 { printf "%s %d requests in %s s = %.2f req/s\n", p, $1, $4, $1 / $4 }' "$tmp/load-$p.out"; done |
    paste -sd ',' - | sed 's/,/, /g')"
for p in "${PODS[@]}"; do say "load $p: $(tr '\n' ' ' <"$tmp/load-$p.out")"; done

# --- 5. per-pod values against the applied rate; HPA under load, then at rest
run_fg "$PY" scripts/e2e_hpa.py judge-load "$tmp/under-load.json" "$RATE_PER_POD" \
    "${PODS[0]}=$tmp/load-${PODS[0]}.out" "${PODS[1]}=$tmp/load-${PODS[1]}.out" || fail "under load"
run_fg "$PY" scripts/e2e_hpa.py rest "$PROM" "$REST_WINDOW" 30 "${PODS[@]}" || fail "at rest"
run_fg "$PY" scripts/e2e_hpa.py scrapes "$PROM" "$T_SCRAPING" "${PODS[@]}" || fail "scrape health"

# --- 6. stop everything, in reverse order; the pods must exit 0 within 1 s
stop "$prom_pid"
[ "$stop_rc" -eq 0 ] || fail "Prometheus exited $stop_rc on SIGTERM"
mark "Prometheus stopped (SIGTERM, exit 0, ${stop_ms} ms)"
for i in 1 0; do
    stop "${app_pids[$i]}"
    [ "$stop_rc" -eq 0 ] && [ "$stop_ms" -lt 1000 ] ||
        fail "pod ${PODS[$i]}: SIGTERM -> exit $stop_rc after $stop_ms ms (want 0 within 1000 ms)"
    mark "pod ${PODS[$i]} stopped: SIGTERM -> exit 0 in ${stop_ms} ms ($(tail -n 1 "$tmp/${PODS[$i]}.log" | sed 's/^slpocapp: //'))"
done
[ "${#pids[@]}" -eq 0 ] || fail "still running: ${pnames[*]}"

pipeline=$(awk -v a="$T_PIPE" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
total=$(elapsed)
awk -v p="$pipeline" -v b="$BUDGET" 'BEGIN { exit !(p < b) }' || fail "the pipeline took $pipeline s (budget $BUDGET s)"
mark "done: pipeline $pipeline s (budget $BUDGET s), total with setup $total s"
print_timeline
printf '\ne2e-hpa: all steps passed in %s s\n' "$total"
