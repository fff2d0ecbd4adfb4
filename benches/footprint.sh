#!/usr/bin/env bash
# Builds the two size probes in benches/footprint/ for thumbv7em-none-eabihf
# (boot side with and without Ed25519, device side) and prints their section
# sizes, the engine's RAM and the size goals.
#
# Usage: bash benches/footprint.sh
# Needs the thumbv7em-none-eabihf target; installs it and a size tool if missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
target=thumbv7em-none-eabihf
target_dir="${FOOTPRINT_TARGET_DIR:-$root/target/footprint}"

if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    echo "installing the $target target" >&2
    rustup target add "$target"
fi

# Size and symbol tools: rustup's llvm-tools, then the system's LLVM, then
# Debian's ARM binutils.
host="$(rustc -vV | sed -n 's/^host: //p')"
rustup_bin="$(rustc --print sysroot)/lib/rustlib/$host/bin"
find_tools() {
    if [[ -x "$rustup_bin/llvm-size" && -x "$rustup_bin/llvm-nm" ]]; then
        size_tool="$rustup_bin/llvm-size"; nm_tool="$rustup_bin/llvm-nm"
        objdump_tool="$rustup_bin/llvm-objdump"
    elif command -v llvm-size >/dev/null && command -v llvm-nm >/dev/null; then
        size_tool="$(command -v llvm-size)"; nm_tool="$(command -v llvm-nm)"
        objdump_tool="$(command -v llvm-objdump || true)"
    elif command -v arm-none-eabi-size >/dev/null && command -v arm-none-eabi-nm >/dev/null; then
        size_tool="$(command -v arm-none-eabi-size)"; nm_tool="$(command -v arm-none-eabi-nm)"
        # The stack bound reads llvm-objdump's listing only.
        objdump_tool=""
    else
        return 1
    fi
}
if ! find_tools; then
    echo "no size tool found: trying rustup's llvm-tools, then binutils-arm-none-eabi" >&2
    timeout 300 rustup component add llvm-tools >&2 || true
    if ! find_tools; then
        # A new machine's package lists may be empty; refresh them first.
        apt-get update -qq >&2 || true
        apt-get install -y binutils-arm-none-eabi >&2
        find_tools
    fi
fi

build() {
    local dir="$1"; shift
    (cd "$here/footprint/$dir" && CARGO_TARGET_DIR="$target_dir/$dir" cargo build --release --quiet "$@")
}

# Prints "<.text> <.rodata> <.data> <.bss> <.vector_table>" of an ELF file.
sections() {
    "$size_tool" -A "$1" | awk '
        $1 == ".text" { text = $2 } $1 == ".rodata" { rodata = $2 }
        $1 == ".data" { data = $2 } $1 == ".bss" { bss = $2 }
        $1 == ".vector_table" { vectors = $2 }
        END { print text + 0, rodata + 0, data + 0, bss + 0, vectors + 0 }'
}

# Prints the size of the first symbol whose demangled name contains $2.
symbol_size() {
    # awk reads to the end: an early exit would stop nm with SIGPIPE, which
    # pipefail turns into a failure of the whole script.
    "$nm_tool" -S -C --radix=d "$1" | awk -v name="$2" '!found && index($0, name) { print $2 + 0; found = 1 }'
}

verdict() {
    if (( $1 <= $2 )); then echo "met"; else echo "NOT MET"; fi
}

echo "building the size probes for $target (opt-level z, LTO, panic abort) with $(rustc --version)" >&2
build boot-side
cp "$target_dir/boot-side/$target/release/footprint-boot-side" "$target_dir/boot-side.elf"
build boot-side --features signature
cp "$target_dir/boot-side/$target/release/footprint-boot-side" "$target_dir/boot-side-ed25519.elf"
build device-side
device_elf="$target_dir/device-side/$target/release/footprint-device-side"

echo "| program | .text | .rodata | .data | .bss | code (.text + .rodata) | flash (code + .data) |"
echo "|---|---|---|---|---|---|---|"
declare -A code
for program in boot-side boot-side-ed25519 device-side; do
    if [[ $program == device-side ]]; then elf="$device_elf"; else elf="$target_dir/$program.elf"; fi
    read -r text rodata data bss vectors < <(sections "$elf")
    code[$program]=$((text + rodata))
    echo "| $program | $text | $rodata | $data | $bss | ${code[$program]} | $((text + rodata + data)) |"
done
echo
echo "The 1024-byte .vector_table of cortex-m-rt is not counted in any column."

engine=$(symbol_size "$device_elf" "::ENGINE")
rx=$(symbol_size "$device_elf" "::RX")
tx=$(symbol_size "$device_elf" "::TX")
read -r _ _ device_data device_bss _ < <(sections "$device_elf")
static_ram=$((device_data + device_bss))
beyond=$((static_ram - rx - tx))
echo
echo "device-side RAM: engine (size_of Engine) $engine bytes, receive buffer $rx, transmit buffer $tx;"
echo "static RAM (.data + .bss) $static_ram bytes, of which $beyond beyond the two frame buffers"
echo
echo "stack from main, at most (an upper bound from the disassembly, interrupt handlers not counted):"
for program in boot-side boot-side-ed25519 device-side; do
    if [[ $program == device-side ]]; then elf="$device_elf"; else elf="$target_dir/$program.elf"; fi
    if [[ -z "$objdump_tool" || ! -x "$objdump_tool" ]]; then
        echo "  $program: not computed (needs llvm-objdump)"
    elif bound=$(python3 "$here/footprint/stack_bound.py" "$objdump_tool" "$elf" main 2>&1); then
        echo "  $program: $(head -n 1 <<<"$bound") bytes, deepest path: $(tail -n 1 <<<"$bound")"
    else
        echo "  $program: not computed ($bound)"
    fi
done
echo
echo "goal: device side code <= 32768 bytes: ${code[device-side]} ($(verdict "${code[device-side]}" 32768))"
echo "goal: device side static RAM beyond the frame buffers <= 4096 bytes: $beyond ($(verdict "$beyond" 4096))"
echo "goal: boot side code <= 8192 bytes without signature checks: ${code[boot-side]} ($(verdict "${code[boot-side]}" 8192))"
echo "goal: boot side code <= 24576 bytes with Ed25519: ${code[boot-side-ed25519]} ($(verdict "${code[boot-side-ed25519]}" 24576))"
