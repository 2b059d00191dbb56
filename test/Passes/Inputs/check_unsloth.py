#!/usr/bin/env python3
"""Compares our LoRA target selection with Unsloth's on every fixture.

test/models/<fixture>/unsloth_selection.json (written by
test/models/make_references.py) records, for the 16 combinations of
finetune_vision_layers x finetune_language_layers x finetune_attention_modules
x finetune_mlp_modules, the regex unsloth_zoo's get_peft_regex returns on the
Hugging Face model and the nn.Linear modules it selects (or the error with
which Unsloth rejects the combination).

For each fixture and each recorded combination this runs

    vlora-opt --vlora-classify-towers
              --vlora-report-towers="vision=.. language=.. attention=.. mlp=..
                                     projector=false|true output=REPORT"

and takes our selection to be the in-graph modules (modules.json `in_graph`)
that the printed `target_modules` regex re.fullmatch-es (also checking the
printed count).  Unsloth's selection is restricted to the same in-graph
modules (modules Unsloth selects that the exporter pruned as dead code, e.g.
LLaVA's unused last CLIP layer, are listed as "not in graph" and not compared).

  * a combination Unsloth accepts: compared with projector=false and with
    projector=true; every module selected by one side only is printed, with
    the ALLOWED reason when an ALLOW_LIST entry covers it, else as UNEXPECTED;
  * a combination Unsloth rejects (no tower or no block selected): our report
    must select nothing (with projector=false).

Exits 1 if anything is UNEXPECTED.  Python 3 standard library only.
"""
import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile

# Every deliberate difference between Unsloth's selection and ours.  A
# difference is allowed only if an entry matches its fixture (fullmatch),
# module (fullmatch), side ("ours": selected by us only; "unsloth": selected
# by Unsloth only) and the projector flag of our run.
_PROJECTOR = (
    "the multimodal projector (modules.json tower=projector) is selected by us only "
    "with projector=true. Unsloth has no projector switch and never targets it: "
    "get_peft_regex keeps a Linear leaf name as a candidate only if it occurs more "
    "than once in the model or inside a numbered layer stack (the rule that keeps "
    "lm_head out), and each projector leaf occurs once")
ALLOW_LIST = [
    {"id": "projector-llava", "fixture": r"llava_(?:ts|dynamo)",
     "module": r"model\.multi_modal_projector\.linear_[12]", "side": "ours", "projector": True,
     "reason": _PROJECTOR + " (linear_1, linear_2; their path has no vision/language "
               "or attention/mlp tag either)"},
    {"id": "projector-idefics3", "fixture": r"idefics3_ts",
     "module": r"model\.connector\.modality_projection\.proj", "side": "ours", "projector": True,
     "reason": _PROJECTOR + " (proj; connector.modality_projection has no vision/language "
               "or attention/mlp tag either)"},
    {"id": "projector-qwen2vl-merger", "fixture": r"qwen2(?:vl|_5_vl)_ts",
     "module": r"model\.visual\.merger\.mlp\.[02]", "side": "ours", "projector": True,
     "reason": _PROJECTOR + " (the path model.visual.merger.mlp.N does carry the tags "
               "'visual' and 'mlp', so the leaf-count rule alone keeps it out: its leaves "
               "'0' and '2' are not in the regex's leaf alternatives)"},
]


def allowed(fixture, module, side, projector, allow_list):
    for entry in allow_list:
        if (re.fullmatch(entry["fixture"], fixture) and re.fullmatch(entry["module"], module)
                and entry["side"] == side and entry["projector"] == projector):
            return entry
    return None


def parse_report(path):
    selected, regex = None, None
    with open(path) as f:
        for line in f.read().splitlines():
            m = re.match(r"selected by .*: (\d+)$", line)
            if m:
                selected = int(m.group(1))
            m = re.match(r'target_modules = r"(.*)"$', line)
            if m:
                regex = m.group(1)
    return selected, regex


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tools", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--ignore-allow-list", action="store_true",
                    help="treat every difference as unexpected (checks that the check can fail)")
    args = ap.parse_args()
    allow_list = [] if args.ignore_allow_list else ALLOW_LIST
    used = {}
    translate = os.path.join(args.tools, "vlora-translate")
    opt = os.path.join(args.tools, "vlora-opt")
    fixtures = sorted(d for d in os.listdir(args.models)
                      if os.path.exists(os.path.join(args.models, d, "unsloth_selection.json")))
    if not fixtures:
        print("FAIL no unsloth_selection.json under", args.models)
        return 1
    unexpected = allowed_count = compared = 0
    with tempfile.TemporaryDirectory() as tmp:
        for fixture in fixtures:
            folder = os.path.join(args.models, fixture)
            with open(os.path.join(folder, "modules.json")) as f:
                modules = json.load(f)
            in_graph = [m["module"] for m in modules if m["kind"] == "linear" and m.get("in_graph", True)]
            with open(os.path.join(folder, "unsloth_selection.json")) as f:
                records = json.load(f)
            combos = {(r["vision"], r["language"], r["attention"], r["mlp"]) for r in records}
            if combos != set(itertools.product((False, True), repeat=4)):
                print(f"UNEXPECTED {fixture}: unsloth_selection.json does not hold the 16 combinations")
                unexpected += 1
            mlir = os.path.join(tmp, fixture + ".mlir")
            subprocess.run([translate, "--import-onnx", os.path.join(folder, "model.onnx"), "-o", mlir],
                           check=True)
            print(f"== {fixture}: {len(in_graph)} in-graph linears")
            for rec in records:
                flags = (rec["vision"], rec["language"], rec["attention"], rec["mlp"])
                tag = "vision={} language={} attention={} mlp={}".format(*(int(x) for x in flags))
                for projector in ((False,) if rec["error"] else (False, True)):
                    opts = " ".join(f"{n}={'true' if v else 'false'}" for n, v in
                                    zip(("vision", "language", "attention", "mlp", "projector"),
                                        flags + (projector,)))
                    report = os.path.join(tmp, "report.txt")
                    r = subprocess.run([opt, mlir, "--vlora-classify-towers",
                                        f"--vlora-report-towers={opts} output={report}", "-o", os.devnull],
                                       capture_output=True, text=True)
                    where = f"{fixture} {tag} projector={int(projector)}"
                    if r.returncode != 0:
                        print(f"UNEXPECTED {where}: vlora-opt failed: {r.stderr.strip()}")
                        unexpected += 1
                        continue
                    count, regex = parse_report(report)
                    ours = {m for m in in_graph if regex is not None and re.fullmatch(regex, m)}
                    if count != len(ours):
                        print(f"UNEXPECTED {where}: report says {count} selected, its regex matches {len(ours)}")
                        unexpected += 1
                    compared += 1
                    if rec["error"]:
                        if ours:
                            print(f"UNEXPECTED {where}: Unsloth rejects this combination "
                                  f"({rec['error']}) but we select {sorted(ours)}")
                            unexpected += 1
                        else:
                            print(f"{where}: Unsloth rejects ({rec['error']}); we select nothing: ok")
                        continue
                    theirs_all = set(rec["modules"])
                    theirs = theirs_all & set(in_graph)
                    pruned = sorted(theirs_all - theirs)
                    diffs = [(m, "ours") for m in sorted(ours - theirs)] + \
                            [(m, "unsloth") for m in sorted(theirs - ours)]
                    line = f"{where}: Unsloth {len(theirs)}, ours {len(ours)}, {len(diffs)} differences"
                    if pruned:
                        line += f" (Unsloth also selects {len(pruned)} modules not in graph: {', '.join(pruned)})"
                    print(line)
                    for module, side in diffs:
                        who = "only we select" if side == "ours" else "only Unsloth selects"
                        entry = allowed(fixture, module, side, projector, allow_list)
                        if entry:
                            allowed_count += 1
                            used[entry["id"]] = entry["reason"]
                            print(f"  ALLOWED [{entry['id']}] {who} {module}")
                        else:
                            unexpected += 1
                            print(f"  UNEXPECTED {who} {module}")
    for key, reason in used.items():
        print(f"[{key}]: {reason}")
    print(f"{compared} selections compared, {allowed_count} allowed differences, {unexpected} unexpected")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
