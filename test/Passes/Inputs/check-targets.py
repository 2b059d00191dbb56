#!/usr/bin/env python3
"""Compares the modules --vlora-inject-lora adapted with a fixture's ground truth.

usage: check-targets.py MODULES_JSON INJECTED_MLIR vision language attention mlp projector

The flags are 0/1. The ground truth is the fixture's modules.json (written by
test/models/generate.py from the Hugging Face model): its linear modules
whose tower and block the switches enable (projector modules whenever the
projector flag is on). Prints `targets match: N` or the differences.
"""

import json
import re
import sys


def main():
    modules = json.load(open(sys.argv[1]))
    text = open(sys.argv[2]).read()
    vision, language, attention, mlp, projector = (a == "1" for a in sys.argv[3:8])
    towers = {"vision": vision, "language": language}
    blocks = {"attention": attention, "mlp": mlp}
    expected = set()
    for m in modules:
        if m["kind"] != "linear" or not m.get("in_graph", True):
            continue
        if m["tower"] == "projector":
            if projector:
                expected.add(m["module"])
        elif towers.get(m["tower"]) and blocks.get(m["block"]):
            expected.add(m["module"])
    config = re.search(r"target_modules = \[([^\]]*)\]", text)
    got = set(re.findall(r'"([^"]*)"', config.group(1))) if config else set()
    adapted = set(re.findall(r'vlora\.lora_matmul .*vlora\.module = "([^"]*)"', text))
    if expected == got == adapted:
        print(f"targets match: {len(got)}")
        return
    print("missing:", sorted(expected - got))
    print("unexpected:", sorted(got - expected))
    print("config and ops differ:", sorted(got ^ adapted))
    sys.exit(1)


if __name__ == "__main__":
    main()
