#!/usr/bin/env bash
# `A && B || fail ...` is meant: fail unless both hold.
# shellcheck disable=SC2015
# The scratch image's contract, checked without Docker (Dockerfile.scratch):
# the static binary ALONE in an empty root filesystem, run as uid/gid
# 65532:65532 and as PID 1 of its own PID namespace, as the container runtime
# runs it. Checks:
#   - `file` says statically linked; size under 1 MiB
#   - the root fs holds exactly one file, /slpocapp (mode 0555, dir 0555: not
#     writable by the process, as with readOnlyRootFilesystem)
#   - in the chroot it is PID 1 (NSpid), uid/gid 65532, no supplementary
#     groups, no capabilities
#   - it answers /, /metrics (text and OpenMetrics), /healthz, /readyz on
#     127.0.0.1; with no /proc inside, process metrics are left out and
#     /metrics still answers 200
#   - SIGTERM sent from outside to its host pid: exit 0 within 1 s (a PID 1
#     only gets signals it handles or blocks; see src/bin/slpocapp/signals.rs)
#
#   scripts/scratch-test.sh          # as root (unshare --pid, chroot)
#
# Fails (exit 1) on the first mismatch; always stops what it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

UID_GID=65532
MAX_SIZE=$((1024 * 1024))
# Prometheus 2.42's Accept header.
OM_ACCEPT='application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1'

n=0
ok() { n=$((n + 1)); printf 'ok   %s\n' "$*"; }
fail() { printf 'FAIL %s\n' "$*"; exit 1; }

upid=""
cpid=""
tmp="$(mktemp -d /tmp/scratch-test.XXXXXX)"
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$upid" ] && kill -0 "$upid" 2>/dev/null; then
        # unshare ignores SIGTERM while it waits: kill its child (the
        # namespace's PID 1), then unshare exits with it.
        [ -n "$cpid" ] || cpid="$(tr -d ' ' <"/proc/$upid/task/$upid/children" 2>/dev/null || true)"
        if [ -n "$cpid" ] && kill -KILL "$cpid" 2>/dev/null; then echo "cleanup: killed /slpocapp (host pid $cpid)"; fi
        for _ in $(seq 200); do kill -0 "$upid" 2>/dev/null || break; sleep 0.01; done
        kill -KILL "$upid" 2>/dev/null || true
        wait "$upid" 2>/dev/null || true
    fi
    if [ "$rc" -ne 0 ] && [ -s "$tmp/stderr" ]; then
        printf -- '--- stderr of /slpocapp:\n'
        cat "$tmp/stderr"
    fi
    rm -rf "$tmp"
    [ "$rc" -eq 0 ] || echo "scratch-test: FAILED"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" -eq 0 ] || fail "must run as root (unshare --pid and chroot need it); run: sudo $0"
UNSHARE="$(command -v unshare)" || fail "missing unshare (util-linux)"
CHROOT="$(command -v chroot)" || fail "missing chroot (coreutils)"
for tool in curl file; do command -v "$tool" >/dev/null || fail "missing $tool"; done

# --- the binary
BIN="$(scripts/build-static.sh 2>"$tmp/build.log")" || { cat "$tmp/build.log"; fail "scripts/build-static.sh"; }
desc="$(file -b "$BIN")"
case "$desc" in
    *"statically linked"*) ok "file: $BIN: $desc" ;;
    *) fail "file does not say statically linked: $desc" ;;
esac
size=$(stat -c %s "$BIN")
[ "$size" -lt "$MAX_SIZE" ] || fail "$BIN is $size bytes, not under 1 MiB ($MAX_SIZE)"
ok "size $size bytes ($(awk -v s="$size" 'BEGIN { printf "%.2f", s / 1048576 }') MiB) < 1 MiB"

# --- the image: one file in an empty root
root="$tmp/rootfs"
mkdir "$root"
cp "$BIN" "$root/slpocapp"
chmod 0555 "$root/slpocapp" "$root"
contents="$(cd "$root" && find . -mindepth 1 -printf '%p %M %u:%g\n')"
[ "$contents" = "./slpocapp -r-xr-xr-x root:root" ] || fail "root fs is not exactly /slpocapp: $contents"
ok "root fs $root holds exactly one file: /slpocapp (-r-xr-xr-x root:root, dir 0555: read-only for uid $UID_GID)"

# --- run it as the runtime would: own PID namespace, chroot, uid:gid 65532,
# an environment with only what the Deployment sets (no PATH, no HOME).
env -i POD_NAME=scratch-pod POD_NAMESPACE=default \
    "$UNSHARE" --fork --pid "$CHROOT" --userspec="$UID_GID:$UID_GID" "$root" /slpocapp --bind 127.0.0.1 --port 0 \
    >"$tmp/stdout" 2>"$tmp/stderr" &
upid=$!
port=""
for _ in $(seq 100); do  # up to 5 s
    [ -z "$cpid" ] && [ -r "/proc/$upid/task/$upid/children" ] && cpid="$(tr -d ' ' <"/proc/$upid/task/$upid/children")"
    port="$(sed -n '1s/^slpocapp .* listening on 127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' "$tmp/stderr")"
    [ -n "$port" ] && [ -n "$cpid" ] && break
    kill -0 "$upid" 2>/dev/null || break
    sleep 0.05
done
[ -n "$port" ] && [ -n "$cpid" ] || fail "the binary did not start in the chroot (unshare pid $upid, child '${cpid}')"
ok "started: $(head -n 1 "$tmp/stderr")"

# --- identity, from outside (no /proc inside)
status="/proc/$cpid/status"
nspid="$(awk '/^NSpid:/ { print $NF }' "$status")"
uids="$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "$status")"
gids="$(awk '/^Gid:/ { print $2, $3, $4, $5 }' "$status")"
groups="$(awk '/^Groups:/ { $1 = ""; print }' "$status" | tr -d ' ')"
capeff="$(awk '/^CapEff:/ { print $2 }' "$status")"
exe="$(readlink "/proc/$cpid/exe")"
croot="$(readlink "/proc/$cpid/root")"
[ "$exe" = "$root/slpocapp" ] && [ "$croot" = "$root" ] ||
    fail "host pid $cpid is not /slpocapp in the chroot (exe $exe, root $croot)"
ok "host pid $cpid runs $exe with root directory $croot"
[ "$nspid" = 1 ] || fail "not PID 1 in its namespace: $(grep '^NSpid:' "$status")"
ok "PID 1 in its own PID namespace ($(grep '^NSpid:' "$status" | tr -s '\t ' ' '))"
[ "$uids" = "$UID_GID $UID_GID $UID_GID $UID_GID" ] || fail "Uid is $uids, want $UID_GID"
[ "$gids" = "$UID_GID $UID_GID $UID_GID $UID_GID" ] || fail "Gid is $gids, want $UID_GID"
[ -z "$groups" ] || fail "supplementary groups $groups, want none"
ok "runs as uid $UID_GID, gid $UID_GID (real, effective, saved, fs), no supplementary groups"
[ "$capeff" = 0000000000000000 ] || fail "effective capabilities $capeff, want none"
ok "no effective capabilities (CapEff $capeff)"
[ ! -e "$root/proc" ] || fail "$root/proc exists"

# --- HTTP on 127.0.0.1
base="http://127.0.0.1:$port"
get() {  # get PATH [ACCEPT]: body to $tmp/body, headers to $tmp/headers; prints the status
    curl -s --max-time 2 -D "$tmp/headers" -o "$tmp/body" -w '%{http_code}' ${2:+-H "Accept: $2"} "$base$1" || echo "curl-failed"
}
code=$(get /)
[ "$code" = 200 ] && grep -q '"Respuesta de:": "scratch-pod processing time: ' "$tmp/body" ||
    fail "GET / -> $code: $(cat "$tmp/body")"
ok "GET / -> 200 $(cat "$tmp/body")"
for path in /healthz /readyz; do
    code=$(get "$path")
    [ "$code" = 200 ] || fail "GET $path -> $code"
    ok "GET $path -> 200"
done
code=$(get /metrics)
ctype="$(grep -i '^content-type:' "$tmp/headers" | tr -d '\r' | cut -d' ' -f2-)"
[ "$code" = 200 ] && [[ "$ctype" == "text/plain; version=0.0.4"* ]] || fail "GET /metrics -> $code ($ctype)"
grep -qx 'slpocapp_request_operations_total{namespace="default",pod="scratch-pod"} 1' "$tmp/body" ||
    fail "/metrics lacks the counter at 1 after one GET /: $(grep slpocapp_request_operations "$tmp/body")"
present="$(grep -o '^process_[a-z_]*' "$tmp/body" | paste -sd ' ' -)"
ok "GET /metrics -> 200 ($ctype), slpocapp_request_operations_total{namespace=\"default\",pod=\"scratch-pod\"} 1; process samples without /proc: ${present:-none} (the rest left out)"
code=$(get /metrics "$OM_ACCEPT")
ctype="$(grep -i '^content-type:' "$tmp/headers" | tr -d '\r' | cut -d' ' -f2-)"
[ "$code" = 200 ] && [[ "$ctype" == "application/openmetrics-text; version=1.0.0"* ]] && [ "$(tail -n 1 "$tmp/body")" = "# EOF" ] ||
    fail "GET /metrics with Prometheus' Accept header -> $code ($ctype), last line $(tail -n 1 "$tmp/body")"
ok "GET /metrics with Prometheus 2.42's Accept header -> 200 ($ctype), ends with # EOF"
if command -v promtool >/dev/null; then
    get /metrics >/dev/null
    promtool check metrics <"$tmp/body" >"$tmp/promtool.out" 2>&1 || fail "promtool check metrics: $(cat "$tmp/promtool.out")"
    ok "promtool check metrics: the text exposition without process metrics is valid"
fi

# --- SIGTERM from outside to the host pid: exit 0 within 1 s
# Poll (bash reaps its child unshare as it exits, so kill -0 fails then), up to
# 5 s, then SIGKILL; `wait` gives unshare's status, which is the child's.
t1=$(date +%s%N)
kill -TERM "$cpid"
deadline=$((t1 + 5000000000))
while kill -0 "$upid" 2>/dev/null && [ "$(date +%s%N)" -lt "$deadline" ]; do sleep 0.005; done
t2=$(date +%s%N)
kill -0 "$upid" 2>/dev/null && kill -KILL "$cpid"
rc=0
wait "$upid" || rc=$?
ms=$(((t2 - t1) / 1000000))
upid=""
kill -0 "$cpid" 2>/dev/null && fail "host pid $cpid still running after its namespace's unshare exited"
cpid=""
[ "$rc" -eq 0 ] || fail "SIGTERM: exit status $rc (unshare reports the child's), want 0; stderr: $(tail -n 1 "$tmp/stderr")"
[ "$ms" -lt 1000 ] || fail "SIGTERM: exited after $ms ms, want < 1000"
ok "SIGTERM to host pid -> exit 0 in $ms ms (< 1000): $(tail -n 1 "$tmp/stderr")"

printf 'scratch-test: %d checks passed\n' "$n"
