"""bf16 mixed-precision references (PyTorch autocast) for the fixtures.

Command (from the repository root):

    /work/venv/bin/python test/models/make_bf16_references.py [--out test/models] [--only NAME ...]

Needs what make_train_references.py needs, and its outputs (<fixture>/train/).
Writes, for every fixture that has train/, <fixture>/bf16/:

logits.safetensors
    The base model's logits (no adapters, the inputs of inputs.safetensors)
    under torch.autocast("cpu", dtype=torch.bfloat16): PyTorch's standard
    mixed precision, which rounds every matmul / linear / conv operand (the
    weights and the activations) to bf16 and writes their results in bf16.
    The fp32 model's logits are <fixture>/logits.safetensors.
step.safetensors
    The training step of make_train_references.py (PeftModel, the starting
    adapter of <fixture>/peft, the one batch of train/dataset.safetensors)
    with the forward under the same autocast: `loss` and every adapter
    gradient (PEFT keys + ".grad", as test/e2e/Inputs/train_step_io.py names
    them). The fp32 step is train/grads.safetensors and train/reference.json.

These are "the same computation done in bf16 by the reference": a vlora
bundle compiled with --mixed-precision bf16 passes when its error against
the fp32 reference is at most twice the error of these against it
(scripts/compare-safetensors --bf16-reference, the flash-attention rule).
Reproducible with the pinned versions (CPU, PYTHONHASHSEED=0).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable] + sys.argv)

import safetensors.torch  # noqa: E402
import torch  # noqa: E402

import generate  # noqa: E402
import make_train_references as mtr  # noqa: E402
from make_references import build  # noqa: E402


def autocast():
    return torch.autocast("cpu", dtype=torch.bfloat16)


def bf16_reference(name: str, folder: str) -> dict:
    inputs = safetensors.torch.load_file(os.path.join(folder, "inputs.safetensors"))
    out = os.path.join(folder, "bf16")
    os.makedirs(out, exist_ok=True)

    model, _ = build(name)
    model.eval()
    with torch.no_grad(), autocast():
        logits = model(inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"])
    logits = logits.float().contiguous()
    mtr.save({"logits": logits}, os.path.join(out, "logits.safetensors"))
    fp32 = safetensors.torch.load_file(os.path.join(folder, "logits.safetensors"))["logits"]
    logits_err = float((logits - fp32).abs().max())

    dataset = safetensors.torch.load_file(os.path.join(folder, "train", "dataset.safetensors"))
    labels = dataset["labels"]
    pm, trainable = mtr.load_trainable(name, folder)
    pm.train()
    with autocast():
        step_logits = mtr.forward(pm, inputs)
    loss = mtr.causal_lm_loss(pm, step_logits.float(), labels)
    loss.backward()
    step = {k + ".grad": p.grad.detach().float().clone() for k, p in trainable}
    step["loss"] = loss.detach().float().reshape(())
    mtr.save(step, os.path.join(out, "step.safetensors"))

    ref = safetensors.torch.load_file(os.path.join(folder, "train", "grads.safetensors"))
    grad_err = max(float((step[k + ".grad"] - g).abs().max() / g.abs().max()) for k, g in ref.items())
    with open(os.path.join(folder, "train", "reference.json")) as f:
        fp32_loss = json.load(f)["step0_loss"]
    info = {
        "fixture": name,
        "autocast": "torch.autocast('cpu', dtype=torch.bfloat16); eager attention; fp32 weights "
                    "and adapters (autocast rounds matmul operands to bf16 on the fly)",
        "logits_max_abs_error_vs_fp32": logits_err,
        "step0_loss": float(step["loss"]),
        "step0_loss_fp32": fp32_loss,
        "grads_max_error_over_max_vs_fp32": grad_err,
        "versions": mtr.versions(),
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)
        f.write("\n")
    return info


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--only", nargs="*", choices=sorted(generate.FIXTURES))
    args = ap.parse_args()
    torch.set_num_threads(1)
    for name in args.only or sorted(generate.FIXTURES):
        folder = os.path.join(args.out, name)
        if not os.path.isdir(os.path.join(folder, "train")):
            continue
        info = bf16_reference(name, folder)
        print(f"{name}: logits err {info['logits_max_abs_error_vs_fp32']:.3g}, "
              f"loss {info['step0_loss']:.6f} (fp32 {info['step0_loss_fp32']:.6f}), "
              f"grad err/max {info['grads_max_error_over_max_vs_fp32']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
