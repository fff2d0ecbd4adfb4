#!/usr/bin/env python3
"""Prints an upper bound of the stack that a Thumb ELF program uses from one
function down, computed from its disassembly, and the deepest call path.

Usage: stack_bound.py LLVM_OBJDUMP ELF ROOT_SYMBOL

ROOT_SYMBOL is a function symbol as `llvm-nm` prints it, or the shortened
path that the output prints.

Each function's frame is the sum of every stack decrement in its body
(`push`, `vpush`, `sub sp, #n`, `str rX, [sp, #-n]!`), which is at least what
any one path through it takes. A call (`bl`, or a branch to the start of
another function, conditional or not) adds the callee's bound. `blx rX` or
`bx rX` is a call to the address in rX if rX was loaded from a literal
pool, or copied from a register so loaded, and not written since. Any
other indirect call may reach every function whose address the data
sections contain (vtables and other constants), so it adds the largest
bound among those. Interrupt and
exception handlers are not counted. The script fails on recursion and on a
stack pointer set from a register, which it cannot bound.
"""

import re
import struct
import subprocess
import sys

# Mnemonics whose first operand is not a register they write.
NO_DESTINATION = {
    "str", "strb", "strh", "strd", "stm", "cmp", "cmn", "tst", "teq", "push", "vpush",
    "b", "bl", "blx", "bx", "cbz", "cbnz", "it",
}

LINE = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")

# A branch, conditional or not: one to the start of another function is a
# tail call.
BRANCH = re.compile(r"^b(eq|ne|cs|hs|cc|lo|mi|pl|vs|vc|hi|ls|ge|lt|gt|le|al)?$")


def read_elf(path):
    """Returns the functions (start -> (end, name)), every function symbol's
    name with its address (aliases included), the words of the data
    sections, and the loaded sections as (address, bytes)."""
    with open(path, "rb") as file:
        data = file.read()
    if len(data) < 0x34 or data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        sys.exit(f"{path}: not a 32-bit little-endian ELF file")
    if struct.unpack_from("<H", data, 0x12)[0] != 40:  # EM_ARM
        sys.exit(f"{path}: not an Arm ELF file")
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    sections = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize) for i in range(shnum)]
    names_offset = sections[shstrndx][4]

    functions, names, data_words, memory = {}, {}, set(), []
    for name, kind, flags, addr, offset, size, link, _, _, entsize in sections:
        section = data[names_offset + name:data.index(b"\0", names_offset + name)]
        loaded = kind == 1 and flags & 0x2  # SHT_PROGBITS with SHF_ALLOC
        if loaded:
            memory.append((addr, data[offset:offset + size]))
        # Indirect calls go through vtables and other constants. The vector
        # table lists the handlers that the hardware calls, and the literal
        # pools in .text are resolved where `blx` uses them.
        if loaded and section not in (b".vector_table", b".text"):
            for at in range(offset + (-addr % 4), offset + size - 3, 4):
                data_words.add(struct.unpack_from("<I", data, at)[0])
        if kind == 2:  # SHT_SYMTAB
            strings = sections[link][4]
            for at in range(offset, offset + size, entsize):
                st_name, value, st_size, info, _, _ = struct.unpack_from("<IIIBBH", data, at)
                if info & 0xF == 2:  # STT_FUNC
                    end = data.index(b"\0", strings + st_name)
                    start = value & ~1
                    name = data[strings + st_name:end].decode()
                    names[name] = start
                    if st_size > 0:
                        functions[start] = (start + st_size, name)
    return functions, names, data_words, memory


def read_word(memory, address):
    """Returns the 32-bit word at `address` of the loaded image, or None."""
    for base, content in memory:
        if base <= address and address + 4 <= base + len(content):
            return struct.unpack_from("<I", content, address - base)[0]
    return None


def demangle(name):
    """Shortens a Rust legacy-mangled symbol (`_ZN...E`) to its path without
    the hash. Other names come back unchanged."""
    if not (name.startswith("_ZN") and name.endswith("E")):
        return name
    parts, at = [], 3
    while at < len(name) - 1 and name[at].isdigit():
        digits = re.match(r"\d+", name[at:]).group(0)
        at += len(digits)
        parts.append(name[at:at + int(digits)])
        at += int(digits)
    if parts and re.fullmatch(r"h[0-9a-f]{16}", parts[-1]):
        parts.pop()
    text = "::".join(parts)
    for code, char in (("$LT$", "<"), ("$GT$", ">"), ("$u20$", " "), ("$C$", ","),
                       ("$RF$", "&"), ("$u7b$", "{"), ("$u7d$", "}"), ("..", "::")):
        text = text.replace(code, char)
    # A segment that starts with `<` or `{` is mangled with a leading `_`.
    return re.sub(r"(^|::)_(?=[<{])", r"\1", text)


def pushed_bytes(operands):
    """Returns the bytes that `push` or `vpush` with these operands stores."""
    registers = operands[operands.index("{") + 1:operands.index("}")]
    count, width = 0, 4
    for part in (part.strip() for part in registers.split(",")):
        if part.startswith("d"):
            width = 8
        if "-" in part:
            low, high = part.split("-")
            count += int(high.strip()[1:]) - int(low.strip()[1:]) + 1
        elif part:
            count += 1
    return count * width


def scan(listing, functions, memory):
    """Returns each function's frame, direct callees and whether it makes an
    indirect call, from the disassembly listing."""
    starts = sorted(functions)
    frame = {start: 0 for start in starts}
    calls = {start: set() for start in starts}
    indirect = {start: False for start in starts}
    current, literals = None, {}
    for line in listing.splitlines():
        match = LINE.match(line)
        if not match:
            continue
        address = int(match.group(1), 16)
        if current is None or not current <= address < functions[current][0]:
            current = next((s for s in starts if s <= address < functions[s][0]), None)
            literals = {}
        if current is None:
            continue  # padding or data between functions
        mnemonic, rest = match.group(2), match.group(3)
        operands, _, comment = (part.strip() for part in rest.partition("@"))
        base = mnemonic.split(".")[0]
        destination = operands.split(",")[0].strip()

        if base == "ldr" and "[pc" in operands and comment.startswith("0x"):
            literals[destination] = read_word(memory, int(comment.split()[0], 16))
            continue
        # A register copy of a loaded literal keeps it: the compiler loads a
        # function's address once and may move it before the calls.
        source = operands.partition(",")[2].strip()
        if base == "mov" and destination != "sp" and source in literals:
            literals[destination] = literals[source]
            continue
        if base not in NO_DESTINATION:
            literals.pop(destination, None)

        if base in ("push", "vpush"):
            frame[current] += pushed_bytes(operands)
        elif base in ("sub", "subw") and re.match(r"^sp,\s*(sp,\s*)?#", operands):
            frame[current] += int(operands.rsplit("#", 1)[1], 0)
        elif base == "str" and re.search(r"\[sp, #-(\d+)\]!", operands):
            frame[current] += int(re.search(r"\[sp, #-(\d+)\]!", operands).group(1))
        elif (base in ("sub", "subw") and operands.startswith("sp,")) or (
            base == "mov" and operands.startswith("sp,")
        ):
            sys.exit(f"stack pointer set from a register in {demangle(functions[current][1])}")
        elif base == "bl" or (BRANCH.match(base) and operands.startswith("0x")):
            target = int(operands.split()[0], 16)
            if target in functions and target != current:
                calls[current].add(target)
        elif base == "blx" or (base == "bx" and operands != "lr"):
            loaded = (literals.get(operands) or 0) & ~1
            if operands.startswith("0x"):
                calls[current].add(int(operands.split()[0], 16))
            elif loaded in functions:
                calls[current].add(loaded)
            else:
                indirect[current] = True
    return frame, calls, indirect


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    objdump, elf, root = sys.argv[1:]
    functions, names, data_words, memory = read_elf(elf)
    address_taken = [start for start in functions if (start | 1) in data_words]
    listing = subprocess.run(
        [objdump, "-d", "--no-show-raw-insn", elf], capture_output=True, text=True, check=True
    ).stdout
    frame, calls, indirect = scan(listing, functions, memory)

    def callees(start):
        return list(calls[start]) + (address_taken if indirect[start] else [])

    bound, visiting = {}, set()

    def stack(start, path):
        if start in bound:
            return bound[start]
        if start in visiting:
            sys.exit("recursion: " + " -> ".join(demangle(functions[s][1]) for s in path + [start]))
        visiting.add(start)
        deepest = max((stack(callee, path + [start]) for callee in callees(start)), default=0)
        visiting.discard(start)
        bound[start] = frame[start] + deepest
        return bound[start]

    # The raw symbol, an alias at the same address, or the shortened name
    # that the path output prints.
    roots = [start for name, start in names.items() if root in (name, demangle(name))]
    roots = [start for start in roots if start in functions]
    if not roots:
        sys.exit(f"no function named {root} in {elf}")
    print(stack(roots[0], []))

    # The path that reaches the bound, for the reader.
    path, at = [], roots[0]
    while True:
        path.append(f"{demangle(functions[at][1])} ({frame[at]})")
        options = callees(at)
        if not options:
            break
        at = max(options, key=lambda callee: bound[callee])
    print(" -> ".join(path))


if __name__ == "__main__":
    try:
        main()
    except OSError as error:
        sys.exit(f"stack_bound.py: {error}")
    except struct.error:
        sys.exit("stack_bound.py: the ELF file is truncated or damaged")
    except subprocess.CalledProcessError as error:
        sys.exit(f"stack_bound.py: {error.cmd[0]} failed: {error.stderr.strip()}")
