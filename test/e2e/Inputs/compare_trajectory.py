#!/usr/bin/env python3
"""Compares vlora-train's metrics.jsonl with a PyTorch reference trajectory.

  compare_trajectory.py METRICS.jsonl REFERENCE.json [--rtol 1e-4]

REFERENCE.json is make_train_references.py's: "steps" = [{"step", "loss",
"grad_norm"}, ...]. Every reference step must be in METRICS with loss and
grad_norm within rtol; prints one line per step and exits 1 on a mismatch.
"""
import argparse
import json
import sys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("metrics")
    p.add_argument("reference")
    p.add_argument("--rtol", type=float, default=1e-4)
    a = p.parse_args()
    logged = {}
    for line in open(a.metrics):
        record = json.loads(line)
        if "loss" in record:
            logged[record["step"]] = record
    failed = False
    for ref in json.load(open(a.reference))["steps"]:
        got = logged.get(ref["step"])
        if got is None:
            print(f"step {ref['step']}: not logged")
            failed = True
            continue
        parts = []
        for key in ("loss", "grad_norm"):
            err = abs(got[key] - ref[key]) / abs(ref[key])
            ok = err <= a.rtol
            failed |= not ok
            parts.append(f"{key} {got[key]:.6f} vs {ref[key]:.6f} ({'ok' if ok else 'MISMATCH'}, rel {err:.1e})")
        print(f"step {ref['step']}: " + ", ".join(parts))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
