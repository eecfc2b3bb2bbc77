#!/usr/bin/env bash
# Builds the static release binary of slpocapp and prints where it is.
#
#   scripts/build-static.sh          # prints the binary's path on stdout
#
# x86_64-unknown-linux-musl (the target is added with rustup when missing); if it
# cannot be had, the gnu target with +crt-static. Either way `file` must report a
# statically linked executable, or the script fails.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-musl
if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    rustup target add "$target" >&2 || target=""
fi
if [ -n "$target" ]; then
    cargo build --release --locked --target "$target" --bin slpocapp >&2
else
    target=x86_64-unknown-linux-gnu
    echo "build-static: musl target unavailable, falling back to $target with +crt-static" >&2
    RUSTFLAGS="-C target-feature=+crt-static -C relocation-model=static" \
        cargo build --release --locked --target "$target" --bin slpocapp >&2
fi
binary="target/$target/release/slpocapp"
description=$(file -b "$binary")
case "$description" in
    *"statically linked"*) ;;
    *) echo "build-static: $binary is not statically linked: $description" >&2; exit 1 ;;
esac
echo "build-static: $binary, $(stat -c %s "$binary") bytes: $description" >&2
echo "$binary"
