#!/usr/bin/env python3
"""Reference data from the real Python LoRA ecosystem for the fixtures in test/models.

Command (from the repository root):

    /work/venv/bin/python test/models/make_references.py [--out test/models] [--only NAME ...]

Needs the packages pinned in test/models/requirements.txt (peft 0.21.2 among
them) plus unsloth-zoo, which must be installed WITHOUT its dependencies (it
pins torch < 2.15 and transformers <= 5.17, which would replace the versions the
fixtures were generated with):

    /work/venv/bin/pip install -r test/models/requirements.txt
    /work/venv/bin/pip install --no-deps unsloth-zoo==2026.10.9

The fixture files written by generate.py (model.onnx, inputs/logits.safetensors,
modules.json, fixture.json) are only read, never written.  For every fixture the
Hugging Face model is rebuilt with generate.py's own builder (same seeds, same
weights); the script first recomputes the logits on inputs.safetensors and
fails unless they equal logits.safetensors to 1e-5.  Then it writes

<fixture>/unsloth_selection.json
    What Unsloth selects: for each of the 16 combinations of
    finetune_vision_layers x finetune_language_layers x finetune_attention_modules
    x finetune_mlp_modules, unsloth_zoo.peft_utils.get_peft_regex(model, ...) on
    the HF model (the call FastVisionModel.get_peft_model makes), as
    [{"vision", "language", "attention", "mlp": bool,
      "regex": str | null, "error": str | null,       # error = Unsloth's exception text
      "modules": [every nn.Linear name the regex re.fullmatch-es, i.e. what PEFT targets]}]
    For every accepted combination the script also checks that PEFT itself, given
    the regex as target_modules, wraps exactly `modules`.
    Only unsloth_zoo/peft_utils.py (and the small helper modules it imports) is
    loaded: the package's __init__ refuses to import without the `unsloth`
    package and a GPU stack, so a bare package object stands in for it.

<fixture>/peft/adapter_config.json, adapter_model.safetensors
    A PEFT LoRA adapter (LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
    init_lora_weights=True, target_modules=<every vision and language
    attention/MLP nn.Linear that is in the ONNX graph per modules.json>),
    get_peft_model, save_pretrained) whose lora_A and lora_B are then all
    overwritten with N(0, 0.05) draws: torch.manual_seed(1), then one
    Tensor.normal_(0, 0.05) per LoRA parameter in named_parameters() order.
    Keys: base_model.model.<module>.lora_A.weight [r, in], ...lora_B.weight [out, r].
<fixture>/peft/logits.safetensors
    `logits` (float32) of the PEFT model on inputs.safetensors.
<fixture>/peft/reference.json
    Settings, versions, max |logits_peft - logits_base| (must be clearly > 0),
    and the checks made: with PEFT's own initialisation (B = 0) the logits equal
    the base logits exactly, and reloading the saved adapter onto a freshly built
    base model (PeftModel.from_pretrained) reproduces logits.safetensors exactly.

Byte-for-byte reproducible with the pinned versions (CPU, one thread,
PYTHONHASHSEED=0, which the script sets by re-executing itself); ~10 s.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import re
import shutil
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

# PEFT stores target_modules as a set and save_pretrained writes it (shrunk to
# unambiguous suffixes) in set iteration order, which depends on the string hash
# seed: run under a fixed one so adapter_config.json is reproducible.
if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]])

import generate  # noqa: E402  (sets TRANSFORMERS_DISABLE_TORCH_CHECK / HF_HUB_OFFLINE first)

import peft  # noqa: E402
import safetensors.torch  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import transformers  # noqa: E402

LOGITS_TOL = 1e-5
LORA_R, LORA_ALPHA = 4, 8
LORA_SEED, LORA_STD = 1, 0.05


def load_unsloth_peft_utils():
    """Imports unsloth_zoo.peft_utils without running unsloth_zoo/__init__.py.

    The package __init__ raises "Please install Unsloth via `pip install unsloth`!"
    (and would otherwise pull in triton/bitsandbytes/GPU checks).  A bare package
    object with the right __path__ lets `import unsloth_zoo.peft_utils` resolve the
    module and its relative imports (.log, .empty_model, .utils, .hf_utils), which
    need only torch and transformers.
    """
    spec = importlib.util.find_spec("unsloth_zoo")
    if spec is None:
        raise SystemExit("unsloth-zoo is not installed (pip install --no-deps unsloth-zoo==2026.10.9)")
    pkg = types.ModuleType("unsloth_zoo")
    pkg.__path__ = list(spec.submodule_search_locations)
    pkg.__file__ = spec.origin
    sys.modules["unsloth_zoo"] = pkg
    import unsloth_zoo.peft_utils as peft_utils

    return peft_utils


def unsloth_version() -> str:
    from importlib.metadata import version

    return version("unsloth_zoo")


def build(name: str):
    """generate.py's model for `name`, in the form it was exported and run."""
    builder, _, _ = generate.FIXTURES[name]
    generate.seed_everything()
    model, inputs, _ = builder()
    if not hasattr(model, "_stock_class_name"):
        generate.logits_only(model)
    return model, inputs


def linear_names(model: nn.Module) -> list[str]:
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


def run(model: nn.Module, inputs: dict) -> torch.Tensor:
    with torch.no_grad():
        return model(inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"]).float().contiguous()


def peft_targets(model: nn.Module) -> list[str]:
    """Module names (of the unwrapped model) that PEFT wrapped with a LoRA layer."""
    out = []
    for n, m in model.named_modules():
        if isinstance(m, peft.tuners.lora.LoraLayer):
            out.append(n.removeprefix("base_model.model."))
    return out


def unsloth_selection(name: str, model: nn.Module, peft_utils) -> list[dict]:
    linears = linear_names(model)
    records = []
    for vision, language, attention, mlp in itertools.product((False, True), repeat=4):
        rec = {"vision": vision, "language": language, "attention": attention, "mlp": mlp,
               "regex": None, "error": None, "modules": []}
        try:
            regex = peft_utils.get_peft_regex(
                model,
                finetune_vision_layers=vision,
                finetune_language_layers=language,
                finetune_attention_modules=attention,
                finetune_mlp_modules=mlp,
            )
        except Exception as e:  # Unsloth's rejection, recorded verbatim
            rec["error"] = f"{type(e).__name__}: {e}"
            records.append(rec)
            continue
        rec["regex"] = regex
        rec["modules"] = [n for n in linears if re.fullmatch(regex, n)]
        # Cross-check with PEFT's own matcher: the regex as target_modules must
        # make PEFT wrap exactly these modules (on a throw-away copy of the model).
        fresh, _ = build(name)
        wrapped = peft.get_peft_model(fresh, peft.LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, target_modules=regex))
        got = peft_targets(wrapped)
        assert sorted(got) == sorted(rec["modules"]), (name, vision, language, attention, mlp, got, rec["modules"])
        records.append(rec)
    return records


def make_peft_reference(name: str, folder: str, base_logits: torch.Tensor, inputs: dict) -> dict:
    with open(os.path.join(folder, "modules.json")) as f:
        modules = json.load(f)
    targets = [m["module"] for m in modules
               if m["kind"] == "linear" and m["in_graph"]
               and m["tower"] in ("vision", "language") and m["block"] in ("attention", "mlp")]
    model, _ = build(name)
    config = peft.LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, target_modules=targets,
                             lora_dropout=0.0, init_lora_weights=True)
    pm = peft.get_peft_model(model, config)
    assert sorted(peft_targets(pm)) == sorted(targets), (name, peft_targets(pm), targets)
    pm.eval()
    init_logits = run(pm, inputs)
    init_diff = float((init_logits - base_logits).abs().max())
    assert init_diff == 0.0, f"{name}: PEFT's initial adapter (B = 0) changes the logits by {init_diff}"

    torch.manual_seed(LORA_SEED)
    n_params = 0
    with torch.no_grad():
        for pname, p in pm.named_parameters():
            if ".lora_A." in pname or ".lora_B." in pname:
                p.normal_(0.0, LORA_STD)
                n_params += 1
    assert n_params == 2 * len(targets)
    logits = run(pm, inputs)
    diff = float((logits - base_logits).abs().max())
    assert diff > 1e-2, f"{name}: the random adapter barely changes the logits ({diff})"

    out = os.path.join(folder, "peft")
    if os.path.isdir(out):
        shutil.rmtree(out)
    with tempfile.TemporaryDirectory() as tmp:
        pm.save_pretrained(tmp)
        os.makedirs(out)
        for f in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.copy(os.path.join(tmp, f), os.path.join(out, f))  # not PEFT's model-card README.md
    safetensors.torch.save_file({"logits": logits}, os.path.join(out, "logits.safetensors"))

    # Reload the saved adapter onto a fresh base: must reproduce the logits.
    fresh, _ = build(name)
    reloaded = peft.PeftModel.from_pretrained(fresh, out)
    reloaded.eval()
    reload_diff = float((run(reloaded, inputs) - logits).abs().max())
    assert reload_diff == 0.0, f"{name}: reloaded adapter differs by {reload_diff}"

    keys = sorted(safetensors.torch.load_file(os.path.join(out, "adapter_model.safetensors")))
    info = {
        "fixture": name,
        "lora_config": {"r": LORA_R, "lora_alpha": LORA_ALPHA, "lora_dropout": 0.0,
                        "init_lora_weights": True, "scaling": LORA_ALPHA / LORA_R,
                        "target_modules": targets},
        "adapter_weights": f"torch.manual_seed({LORA_SEED}); every lora_A/lora_B parameter, in "
                           f"named_parameters() order, .normal_(0, {LORA_STD})",
        "adapter_keys": keys,
        "max_abs_diff_vs_base_logits": diff,
        "max_abs_base_logit": float(base_logits.abs().max()),
        "checks": {
            "peft_init_B0_logits_equal_base": True,
            "reloaded_adapter_logits_equal": True,
        },
        "versions": {
            "peft": peft.__version__,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "python": sys.version.split()[0],
        },
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--only", nargs="*", choices=sorted(generate.FIXTURES))
    a = ap.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    peft_utils = load_unsloth_peft_utils()
    print(f"peft {peft.__version__}, unsloth_zoo {unsloth_version()}, torch {torch.__version__}, "
          f"transformers {transformers.__version__}")
    for name in a.only or list(generate.FIXTURES):
        folder = os.path.join(a.out, name)
        model, _ = build(name)
        inputs = safetensors.torch.load_file(os.path.join(folder, "inputs.safetensors"))
        want = safetensors.torch.load_file(os.path.join(folder, "logits.safetensors"))["logits"]
        base = run(model, inputs)
        err = float((base - want).abs().max())
        if err > LOGITS_TOL:
            raise SystemExit(f"{name}: rebuilt model's logits differ from logits.safetensors by {err}")

        sel = unsloth_selection(name, model, peft_utils)
        with open(os.path.join(folder, "unsloth_selection.json"), "w") as f:
            json.dump(sel, f, indent=1)
            f.write("\n")
        info = make_peft_reference(name, folder, base, inputs)
        rejected = sum(1 for r in sel if r["error"])
        print(f"[{name}] logits reproduce (max diff {err:.3g}); unsloth: {16 - rejected} combos, "
              f"{rejected} rejected; peft: {len(info['lora_config']['target_modules'])} targets, "
              f"max |dlogits| {info['max_abs_diff_vs_base_logits']:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
