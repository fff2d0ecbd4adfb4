#!/usr/bin/env bash
# Runs the size probes' crypto configuration (syssync-proto's own SHA-2
# rounds and CompactCrypto) and SaltyCrypto with salty's Cortex-M4
# assembly on QEMU's Arm MPS2 AN386 board, a Cortex-M4, against known-answer
# vectors. Host tests do not reach these code paths. Exits non-zero if any
# check fails.
#
# Usage: bash benches/footprint/on-target.sh
# Needs the thumbv7em-none-eabihf target and qemu-system-arm; installs them if
# missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target=thumbv7em-none-eabihf
target_dir="${FOOTPRINT_TARGET_DIR:-$root/target/footprint}/on-target"

if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    echo "installing the $target target" >&2
    rustup target add "$target"
fi
if ! command -v qemu-system-arm >/dev/null; then
    echo "installing qemu-system-arm" >&2
    # A new machine's package lists may be empty; refresh them first.
    apt-get update -qq >&2 || true
    apt-get install -y -qq qemu-system-arm >&2
fi

cd "$here/on-target"
# `.cargo/config.toml` sets QEMU as the runner; semihosting carries the output
# and the exit status.
CARGO_TARGET_DIR="$target_dir" timeout 600 cargo run --release --quiet
