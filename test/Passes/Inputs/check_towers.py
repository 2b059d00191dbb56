#!/usr/bin/env python3
"""Compares a --vlora-report-towers report with a fixture's modules.json.

modules.json lists every nn.Linear of the Hugging Face model with the tower,
block and layer a human gives it. The report must classify exactly the
linears that are in the exported graph, the same way:

  --mode names      module paths, tower, block, layer, in, out all equal
  --mode structure  the multiset of (tower, block, layer, in, out) is equal
                    (a stripped graph has no module paths)

With --flags vision,language,attention,mlp,projector (0/1 each) it also
checks the selection the report states: its count, and, in names mode, that
the printed PEFT target_modules regex (Python re.fullmatch) selects exactly
the in-graph linears the switches select.
Prints every difference; exits 1 if there is any.
"""
import argparse
import collections
import json
import re
import sys


def parse_report(path):
    rows, selected, regex = [], None, None
    with open(path) as f:
        lines = f.read().splitlines()
    for line in lines[1:]:
        if not line.strip():
            break
        module, tower, block, layer, fin, fout = line.split()
        rows.append((module, tower, block, None if layer == "-" else int(layer), int(fin), int(fout)))
    for line in lines:
        m = re.match(r"selected by .*: (\d+)$", line)
        if m:
            selected = int(m.group(1))
        m = re.match(r'target_modules = r"(.*)"$', line)
        if m:
            regex = m.group(1)
    return rows, selected, regex


def is_selected(entry, flags):
    vision, language, attention, mlp, projector = flags
    tower, block = entry["tower"], entry["block"]
    if tower == "projector":
        return projector
    if tower == "other" or (tower == "vision" and not vision) or (tower == "language" and not language):
        return False
    return (block == "attention" and attention) or (block == "mlp" and mlp)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("report")
    ap.add_argument("modules_json")
    ap.add_argument("--mode", choices=["names", "structure"], required=True)
    ap.add_argument("--flags")
    args = ap.parse_args()

    truth = [m for m in json.load(open(args.modules_json))
             if m["kind"] == "linear" and m.get("in_graph", True)]
    rows, selected, regex = parse_report(args.report)
    errors = []
    if args.mode == "names":
        want = {m["module"]: (m["tower"], m["block"], m["layer"], m["in_features"], m["out_features"]) for m in truth}
        got = {r[0]: r[1:] for r in rows}
        for module in sorted(set(want) | set(got)):
            if want.get(module) != got.get(module):
                errors.append(f"{module}: expected {want.get(module)}, report says {got.get(module)}")
    else:
        want = collections.Counter((m["tower"], m["block"], m["layer"], m["in_features"], m["out_features"]) for m in truth)
        got = collections.Counter(r[1:] for r in rows)
        for key in sorted(set(want) | set(got), key=str):
            if want[key] != got[key]:
                errors.append(f"{key}: expected {want[key]} modules, report has {got[key]}")

    if args.flags is not None:
        flags = [bool(int(x)) for x in args.flags.split(",")]
        expected = sorted(m["module"] for m in truth if is_selected(m, flags))
        if selected != len(expected):
            errors.append(f"selection count: expected {len(expected)}, report says {selected}")
        if args.mode == "names":
            if expected and regex is None:
                errors.append("no target_modules regex printed")
            matched = sorted(m["module"] for m in truth if regex and re.fullmatch(regex, m["module"]))
            if matched != expected:
                errors.append(f"target_modules regex selects {matched}, expected {expected}")
        elif not expected and regex is not None:
            errors.append("a regex was printed for an empty selection")

    for e in errors:
        print("mismatch:", e)
    print(f"{len(rows)} rows checked against {len(truth)} modules: {len(errors)} mismatches")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
