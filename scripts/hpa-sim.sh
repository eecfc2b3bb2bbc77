#!/usr/bin/env bash
# The HPA's scaling loop closed on this machine, faster than real time:
# real slpocapp pods and a real Prometheus, the adapter's query and a model of
# the HPA controller (Kubernetes v1.30) reading manifests/hpa.yaml and the
# Deployment. Prints a timeline, checks the scenarios of README.md (The scaling loop on one machine) and
# writes target/hpa-sim/hpa-sim.svg.
#
#   scripts/hpa-sim.sh                 # from anywhere; about a minute (speed 15)
#   scripts/hpa-sim.sh --speed 1       # real time (about 16 minutes)
#   SLPOCAPP=target/release/slpocapp scripts/hpa-sim.sh --keep-tmp
#
# Needs: prometheus (Debian package prometheus, 2.42 here), $VENV (default
# .venv) with PyYAML; SLPOCAPP, else the static binary of
# scripts/build-static.sh (a no-op when it is built). Everything listens on
# 127.0.0.1; the run is bounded (timeout) and stops what it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
PROMETHEUS="${PROMETHEUS:-prometheus}"
OUT="${OUT:-target/hpa-sim}"

command -v "$PROMETHEUS" >/dev/null || { echo "FAIL missing $PROMETHEUS (Debian package prometheus)"; exit 1; }
[ -x "$PY" ] && "$PY" -c 'import yaml' 2>/dev/null || { echo "FAIL $PY with PyYAML is needed (VENV=$VENV)"; exit 1; }
BIN="${SLPOCAPP:-}"
if [ -z "$BIN" ]; then
    BIN="$(scripts/build-static.sh 2>/dev/null)" || { echo "FAIL scripts/build-static.sh"; exit 1; }
fi
[ -x "$BIN" ] || { echo "FAIL no slpocapp binary at $BIN"; exit 1; }

# Bounded: the story at the default speed takes about 70 s of real time; an
# explicit --speed sets its own bound (story / speed + 60 s).
speed=15
args=("$@")
for i in "${!args[@]}"; do
    case "${args[$i]}" in
        --speed) speed="${args[$((i + 1))]:-15}" ;;
        --speed=*) speed="${args[$i]#--speed=}" ;;
    esac
done
bound=$(awk -v s="$speed" 'BEGIN { printf "%d", 990 / s + 90 }')
exec timeout -s TERM -k 10 "$bound" "$PY" scripts/hpa_sim.py --slpocapp "$BIN" --prometheus "$(command -v "$PROMETHEUS")" \
    --out "$OUT" "$@"
