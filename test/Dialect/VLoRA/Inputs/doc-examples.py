#!/usr/bin/env python3
"""Turns the examples of the generated vlora dialect reference into a module.

Reads the markdown that `mlir-tblgen -gen-dialect-doc` writes, checks that
every op section has an ```mlir example, and prints one `func.func` per op
whose arguments are the SSA values the example uses but does not define,
typed from the example's own type signature (`: T` for ops whose operands
and result share one type, `: (T1, T2) -> R` otherwise). The output is fed
to `vlora-opt`, so an example that does not parse or verify fails the test.
"""

import re
import sys

OP_HEADER = re.compile(r"^### `(vlora\.[a-z_]+)`")
VALUE = re.compile(r"%[A-Za-z_][A-Za-z0-9_]*")


def split_top_level(text):
    """Splits `text` at commas that are not nested in <>, (), [] or {}."""
    parts, depth, current = [], 0, ""
    for ch in text:
        if ch in "<([{":
            depth += 1
        elif ch in ">)]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += ch
    if current.strip():
        parts.append(current.strip())
    return parts


def operand_types(statement):
    """The types of the operands of one op statement, in operand order."""
    # The signature follows the last ` : ` outside of brackets.
    depth, colon = 0, -1
    for i, ch in enumerate(statement):
        if ch in "<([{":
            depth += 1
        elif ch in ">)]}":
            depth -= 1
        elif ch == ":" and depth == 0 and statement[i - 1] == " ":
            colon = i
    if colon < 0:
        sys.exit(f"no type signature in example: {statement}")
    signature = statement[colon + 1:].strip()
    if signature.startswith("("):
        inputs = signature[1:signature.index(") ->")]
        return statement[:colon], split_top_level(inputs)
    return statement[:colon], None if not signature else [signature]


def main():
    lines = open(sys.argv[1]).read().splitlines()
    examples, op, in_block, block = {}, None, False, []
    for line in lines:
        header = OP_HEADER.match(line)
        if header:
            op = header.group(1)
            continue
        if line.strip() == "```mlir":
            in_block, block = True, []
            continue
        if in_block and line.strip() == "```":
            in_block = False
            if op is not None:
                examples.setdefault(op, []).append(block)
            continue
        if in_block:
            block.append(line)

    ops = [m.group(1) for m in map(OP_HEADER.match, lines) if m]
    missing = [o for o in ops if o not in examples]
    if missing:
        sys.exit("ops without an example: " + ", ".join(missing))

    for op in ops:
        for n, block in enumerate(examples[op]):
            # Join continuation lines: a statement starts with `%name =`.
            statements = []
            for line in block:
                if re.match(r"\s*%[^=]*=", line) or not statements:
                    statements.append(line.strip())
                else:
                    statements[-1] += " " + line.strip()
            defined, args = set(), {}
            for statement in statements:
                lhs, rhs = statement.split("=", 1)
                operands_text, types = operand_types(rhs)
                used = [v for v in VALUE.findall(operands_text)
                        if v not in defined]
                for i, value in enumerate(dict.fromkeys(used)):
                    if value in args:
                        continue
                    if types is None:
                        sys.exit(f"cannot type {value} in: {statement}")
                    args[value] = types[i] if len(types) > 1 else types[0]
                defined.update(VALUE.findall(lhs))
            name = op.replace(".", "_") + ("" if n == 0 else f"_{n}")
            params = ", ".join(f"{v}: {t}" for v, t in args.items())
            print(f"// EXAMPLE: {op}")
            print(f"func.func @{name}({params}) {{")
            for statement in statements:
                print("  " + statement)
            print("  return")
            print("}")


if __name__ == "__main__":
    main()
