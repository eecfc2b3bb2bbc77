#!/usr/bin/env bash
# The library benchmark before and after a change, in one run: builds
# bench/benches/compare.rs at REV in a temporary worktree and at the working tree, then runs the
# two binaries in turn, RUNS times each (before, after, before, after, ...), so
# that the machine's moods fall on both, and prints promlite's median per case
# for each side (the median of the runs' medians) and their ratio.
#
#   bench/before_after.sh REV              # RUNS=3, BENCH_ROUNDS=7
#   BENCH_ONLY=observe bench/before_after.sh REV
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: bench/before_after.sh REV}
RUNS=${RUNS:-3}
export BENCH_ROUNDS=${BENCH_ROUNDS:-7}
tmp=$(mktemp -d)
trap 'git worktree remove --force "$tmp/before" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
git worktree add -q --detach "$tmp/before" "$rev"
build() { # DIR -> path of the compare bench binary
    (cd "$1" && cargo bench --manifest-path bench/Cargo.toml --bench compare --no-run 2>&1 |
        sed -n 's/.*Executable .*(\(.*\)).*/\1/p' | tail -n 1 | sed "s|^|$1/|")
}
before=$(build "$tmp/before")
after=$(build "$PWD")
[ -x "$before" ] && [ -x "$after" ] || { echo "could not build the benchmarks ($before, $after)" >&2; exit 1; }
for run in $(seq "$RUNS"); do
    echo "run $run/$RUNS: before ($rev)" >&2
    "$before" --bench >"$tmp/before.$run" 2>/dev/null
    echo "run $run/$RUNS: after (working tree)" >&2
    "$after" --bench >"$tmp/after.$run" 2>/dev/null
done
python3 - "$tmp" "$RUNS" "$rev" <<'EOF'
import re, statistics, sys
tmp, runs, rev = sys.argv[1], int(sys.argv[2]), sys.argv[3]
UNIT = {"ns": 1, "us": 1e3, "µs": 1e3, "ms": 1e6, "s": 1e9}

def table(path):
    rows = {}
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or cells[0] in ("case", "") or set(cells[0]) <= set("-"):
            continue
        m = re.match(r"([0-9.]+) (ns|us|µs|ms|s)\b", cells[1])
        if m:
            rows[cells[0]] = float(m.group(1)) * UNIT[m.group(2)]
    return rows

sides = {side: [table(f"{tmp}/{side}.{r}") for r in range(1, runs + 1)] for side in ("before", "after")}
cases = [c for c in sides["after"][0] if c in sides["before"][0]]

def show(ns):
    return f"{ns / 1e6:.2f} ms" if ns >= 1e5 else f"{ns:.1f} ns"

print(f"\npromlite, before ({rev}) and after (working tree), {runs} alternating runs each, BENCH_ROUNDS rounds per run\n")
print("| case | before | after | after / before |")
print("|---|---|---|---|")
for case in cases:
    b = statistics.median(t[case] for t in sides["before"] if case in t)
    a = statistics.median(t[case] for t in sides["after"] if case in t)
    print(f"| {case} | {show(b)} | {show(a)} | {a / b:.2f}x |")
EOF
