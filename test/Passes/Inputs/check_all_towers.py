#!/usr/bin/env python3
"""Runs --vlora-classify-towers/--vlora-report-towers on every fixture, with
names and on a copy with all names stripped, for all 16 combinations of
vision x language x attention x mlp and for the projector flag, and compares
each report with the fixture's modules.json (check_towers.py)."""
import argparse
import itertools
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tools", required=True)
    ap.add_argument("--models", required=True)
    args = ap.parse_args()
    translate = os.path.join(args.tools, "vlora-translate")
    opt = os.path.join(args.tools, "vlora-opt")
    fixtures = sorted(d for d in os.listdir(args.models)
                      if os.path.exists(os.path.join(args.models, d, "modules.json")))
    combos = [c + (0,) for c in itertools.product((0, 1), repeat=4)] + [(1, 1, 1, 1, 1), (0, 0, 0, 0, 1)]
    failures = runs = 0
    with tempfile.TemporaryDirectory() as tmp:
        for fixture in fixtures:
            mlir = os.path.join(tmp, fixture + ".mlir")
            subprocess.run([translate, "--import-onnx",
                            os.path.join(args.models, fixture, "model.onnx"), "-o", mlir], check=True)
            for mode in ("names", "structure"):
                for combo in combos:
                    names = ("vision", "language", "attention", "mlp", "projector")
                    opts = " ".join(f"{n}={'true' if v else 'false'}" for n, v in zip(names, combo))
                    report = os.path.join(tmp, "report.txt")
                    pipeline = ["--test-vlora-strip-names"] if mode == "structure" else []
                    cmd = [opt, mlir, *pipeline, "--vlora-classify-towers",
                           f"--vlora-report-towers={opts} output={report}", "-o", os.devnull]
                    r = subprocess.run(cmd, capture_output=True, text=True)
                    runs += 1
                    if r.returncode != 0 or "warning" in r.stderr:
                        print(f"FAIL {fixture} {mode} {combo}: vlora-opt: {r.stderr.strip()}")
                        failures += 1
                        continue
                    check = subprocess.run(
                        [sys.executable, os.path.join(HERE, "check_towers.py"), report,
                         os.path.join(args.models, fixture, "modules.json"), "--mode", mode,
                         "--flags", ",".join(map(str, combo))], capture_output=True, text=True)
                    if check.returncode != 0:
                        print(f"FAIL {fixture} {mode} {combo}:\n{check.stdout}")
                        failures += 1
    print(f"{runs - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
