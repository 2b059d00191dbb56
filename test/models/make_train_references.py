#!/usr/bin/env python3
"""PyTorch + PEFT training references for the fixtures in test/models.

Command (from the repository root):

    /work/venv/bin/python test/models/make_train_references.py [--out test/models] [--only NAME ...]

Needs the packages pinned in test/models/requirements.txt (peft 0.21.2 among
them) and the files written by generate.py and make_references.py (it reads
<fixture>/inputs.safetensors and <fixture>/peft/, never writes them).  Writes,
for every fixture, <fixture>/train/:

dataset.safetensors
    A dataset in the format of docs/training.md holding exactly one batch:
    the tensors of inputs.safetensors as they are (N = B examples) plus
    `labels` [B, S] int64.  Label rule (LABEL_RULE below): labels = input_ids,
    then -100 where attention_mask == 0 (padding) and where input_ids is one of
    the model's special tokens: pad, bos, image token, and for Qwen2-VL also
    vision_start / vision_end / video token.  (What HF SFT recipes do: only
    text is predicted, never image placeholders or padding.  eos would be kept;
    no fixture contains it.)  Position 0 never counts: the causal-LM loss
    predicts labels[:, s+1] from the logits at s.
grads.safetensors
    d loss / d p at the starting adapter for every LoRA parameter p, keyed by
    its PEFT save key (base_model.model.<module>.lora_A.weight, no ".default"),
    F32, before clipping.  loss = transformers' causal-LM loss
    (model.loss_function = ForCausalLMLoss: shift by one, ignore_index -100,
    mean over the valid shifted labels).
adapters_step1.safetensors, adapters_step10.safetensors
    The adapters after 1 and after 10 optimizer steps on this one batch
    (PEFT keys; the same tensors PeftModel.save_pretrained would write).
reference.json
    Hyperparameters, per-step loss (before the update), grad_norm
    (clip_grad_norm_'s return value, before clipping) and clip coefficient,
    the loss after the last step, versions, the label rule, the checks made.

and for llava_ts also train/accum/ (gradient accumulation, G = 2): the same
inputs twice, the second copy with more labels masked (ACCUM_RULE), in
transformers' num_items_in_batch semantics: per micro-batch i the loss
sum CE_i / (n_1 + n_2) is back-propagated, so the accumulated gradient is that
of (sum CE over both) / (total valid tokens).

    accum/dataset.safetensors   both micro-batches, concatenated (N = 4 examples,
                                micro-batch 1 = rows 0-1 = train/dataset.safetensors,
                                micro-batch 2 = rows 2-3)
    accum/dataset2.safetensors  micro-batch 2 alone
    accum/grads.safetensors     the accumulated gradient at the starting adapter
    accum/adapters_step3.safetensors  after 3 optimizer steps (each over both
                                micro-batches), same AdamW/clip settings
    accum/reference.json        n_i, per-micro-batch mean losses, loss_scale_i,
                                per-step values

Training setup (the model is what generate.py exported, so the loss is a
function of exactly the ONNX forward): generate.py's builder rebuilds the fp32
model with eager attention; PeftModel.from_pretrained(model, <fixture>/peft,
is_trainable=True) loads the random adapter (A and B both non-zero, so every
gradient is non-zero); model.train() (as the HF Trainer does; every dropout of
these configs has p = 0, which the script asserts, and it checks that the
train-mode logits equal the eval-mode logits bit for bit); only the LoRA
parameters require grad.  Optimizer: torch.optim.AdamW(lr=LR, betas=(0.9,
0.999), eps=1e-8, weight_decay=0.01, foreach=False) over the LoRA parameters
in named_parameters() order, torch.nn.utils.clip_grad_norm_(max_norm=1.0)
before each step, constant LR, 10 steps on the same batch.

Byte-for-byte reproducible with the pinned versions (CPU, one thread,
PYTHONHASHSEED=0, which the script sets by re-executing itself); ~10 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

if __name__ == "__main__" and os.environ.get("PYTHONHASHSEED") != "0":
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), *sys.argv[1:]])

import generate  # noqa: E402  (sets TRANSFORMERS_DISABLE_TORCH_CHECK / HF_HUB_OFFLINE first)
from make_references import LOGITS_TOL, build, run  # noqa: E402

import peft  # noqa: E402
import safetensors.torch  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402

IGNORE_INDEX = -100
LR = 1e-2
BETAS = (0.9, 0.999)
EPS = 1e-8
WEIGHT_DECAY = 0.01
MAX_GRAD_NORM = 1.0
STEPS = 10
ACCUM_FIXTURE = "llava_ts"
ACCUM_STEPS = 3

LABEL_RULE = (
    "labels = input_ids; labels = -100 where attention_mask == 0 or input_ids is in special_token_ids "
    "(pad, bos, image token; Qwen2-VL also vision_start, vision_end, video token). The loss predicts "
    "labels[:, s+1] from logits[:, s]; a shifted label of -100 is skipped."
)
ACCUM_RULE = (
    "micro-batch 2 = micro-batch 1 with, in every row, the first 2 labels that are not -100 "
    "also set to -100"
)
MODEL_INPUTS = ("pixel_values", "input_ids", "attention_mask")


def special_token_ids(model: nn.Module) -> list[int]:
    cfg = model.config
    text = cfg.get_text_config()
    ids = {text.pad_token_id, text.bos_token_id}
    for attr in ("image_token_index", "image_token_id", "vision_start_token_id", "vision_end_token_id",
                 "video_token_id", "boi_token_index", "eoi_token_index"):  # boi/eoi: Gemma3
        v = getattr(cfg, attr, None)
        if v is not None:
            ids.add(v)
    return sorted(i for i in ids if i is not None)


def make_labels(inputs: dict, special: list[int]) -> torch.Tensor:
    ids = inputs["input_ids"]
    labels = ids.clone()
    labels[inputs["attention_mask"] == 0] = IGNORE_INDEX
    labels[torch.isin(ids, torch.tensor(special, dtype=ids.dtype))] = IGNORE_INDEX
    return labels


def n_valid(labels: torch.Tensor) -> int:
    """Valid shifted labels: the tokens the causal-LM loss counts."""
    return int((labels[:, 1:] != IGNORE_INDEX).sum())


def ce_by_hand(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    v = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1, :].reshape(-1, v).float(), labels[:, 1:].reshape(-1),
                           ignore_index=IGNORE_INDEX, reduction="mean")


def peft_key(param_name: str) -> str:
    """named_parameters() name -> PEFT save key (drops the adapter name)."""
    return param_name.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")


def load_trainable(name: str, folder: str):
    model, _ = build(name)
    pm = peft.PeftModel.from_pretrained(model, os.path.join(folder, "peft"), is_trainable=True)
    trainable = [(peft_key(n), p) for n, p in pm.named_parameters() if p.requires_grad]
    saved = safetensors.torch.load_file(os.path.join(folder, "peft", "adapter_model.safetensors"))
    assert sorted(k for k, _ in trainable) == sorted(saved), f"{name}: trainable parameters != adapter keys"
    for k, p in trainable:
        assert torch.equal(p.detach(), saved[k]), f"{name}: {k} not loaded"
    dropouts = [(n, m.p) for n, m in pm.named_modules() if isinstance(m, nn.Dropout) and m.p != 0.0]
    assert not dropouts, f"{name}: active dropout {dropouts}"
    for attr in ("attention_dropout", "dropout", "hidden_dropout"):
        for sub in (pm.config, getattr(pm.config, "text_config", None), getattr(pm.config, "vision_config", None)):
            v = getattr(sub, attr, 0.0) if sub is not None else 0.0
            assert not v, f"{name}: config {attr} = {v}"
    return pm, trainable


def forward(pm: nn.Module, inputs: dict) -> torch.Tensor:
    return pm(inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"])


def causal_lm_loss(pm: nn.Module, logits: torch.Tensor, labels: torch.Tensor, num_items=None) -> torch.Tensor:
    base = pm.get_base_model()
    return base.loss_function(logits=logits, labels=labels, vocab_size=base.config.get_text_config().vocab_size,
                              num_items_in_batch=num_items)


def adapters(trainable) -> dict:
    return {k: p.detach().clone().contiguous() for k, p in trainable}


def make_optimizer(trainable):
    return torch.optim.AdamW([p for _, p in trainable], lr=LR, betas=BETAS, eps=EPS,
                             weight_decay=WEIGHT_DECAY, foreach=False)


def save(tensors: dict, path: str) -> None:
    safetensors.torch.save_file({k: v.contiguous() for k, v in sorted(tensors.items())}, path)


def hyperparameters() -> dict:
    return {
        "optimizer": "torch.optim.AdamW (foreach=False, amsgrad=False, maximize=False)",
        "lr": LR, "lr_schedule": "constant", "adam_beta1": BETAS[0], "adam_beta2": BETAS[1],
        "adam_epsilon": EPS, "weight_decay": WEIGHT_DECAY,
        "max_grad_norm": MAX_GRAD_NORM,
        "clipping": "torch.nn.utils.clip_grad_norm_(lora params, max_norm): grad_norm = L2 norm over all "
                    "gradients; every gradient *= min(1, max_norm / (grad_norm + 1e-6))",
        "adamw_update": "torch's _single_tensor_adam, in float32 with double scalars: p *= 1 - lr*wd; "
                        "m.lerp_(g, 1-b1) (= m + (1-b1)*(g-m)); v = v*b2 + (1-b2)*g*g; "
                        "p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps); t = 1 for the first step; "
                        "m = v = 0 initially",
        "clip_detail": "grad_norm = norm of the per-tensor L2 norms (float32); the gradients are always "
                       "multiplied by the float32 clamp(max_norm / (grad_norm + 1e-6), max=1)",
        "loss": "transformers ForCausalLMLoss (model.loss_function): logits.float(), labels padded by one "
                "-100 on the right and shifted left, cross_entropy(ignore_index=-100, reduction='mean')",
        "ignore_index": IGNORE_INDEX,
        "lora_dropout": 0.0,
        "gradient_accumulation_steps": 1,
        "steps": STEPS,
        "dtype": "float32",
        "attention": "eager",
        "mode": "model.train() (all dropout p = 0), only lora_A/lora_B require grad",
    }


def versions() -> dict:
    return {"peft": peft.__version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": sys.version.split()[0]}


def train_reference(name: str, folder: str) -> dict:
    inputs = safetensors.torch.load_file(os.path.join(folder, "inputs.safetensors"))
    pm, trainable = load_trainable(name, folder)
    special = special_token_ids(pm.get_base_model())
    labels = make_labels(inputs, special)
    per_row = [int((labels[b, 1:] != IGNORE_INDEX).sum()) for b in range(labels.shape[0])]
    assert min(per_row) >= 3, f"{name}: too few labels per row {per_row}"

    peft_logits = safetensors.torch.load_file(os.path.join(folder, "peft", "logits.safetensors"))["logits"]
    pm.eval()
    eval_logits = run(pm, inputs)
    pm.train()
    with torch.no_grad():
        train_logits = forward(pm, inputs).float()
    assert torch.equal(eval_logits, train_logits), f"{name}: train() and eval() logits differ"
    err = float((train_logits - peft_logits).abs().max())
    assert err <= LOGITS_TOL, f"{name}: logits differ from peft/logits.safetensors by {err}"

    out = os.path.join(folder, "train")
    if os.path.isdir(out):
        shutil.rmtree(out)
    os.makedirs(out)
    dataset = {k: inputs[k] for k in MODEL_INPUTS}
    dataset["labels"] = labels
    save(dataset, os.path.join(out, "dataset.safetensors"))

    # Loss checks at step 0: loss_function == by hand (== stock forward with labels for LLaVA).
    with torch.no_grad():
        logits = forward(pm, inputs)
        loss_fn = causal_lm_loss(pm, logits, labels)
        loss_hand = ce_by_hand(logits, labels)
        checks = {"loss_function_minus_by_hand": float(loss_fn - loss_hand)}
        base = pm.get_base_model()
        stock = type(base).__mro__[1]
        if stock.__name__ == getattr(base, "_stock_class_name", None) and name.startswith("llava"):
            out_stock = stock.forward(base, pixel_values=inputs["pixel_values"], input_ids=inputs["input_ids"],
                                      attention_mask=inputs["attention_mask"], labels=labels, use_cache=False,
                                      return_dict=True)
            checks["stock_forward_with_labels_minus_loss_function"] = float(out_stock.loss - loss_fn)
    assert abs(checks["loss_function_minus_by_hand"]) <= 1e-6, (name, checks)
    assert abs(checks.get("stock_forward_with_labels_minus_loss_function", 0.0)) == 0.0, (name, checks)

    opt = make_optimizer(trainable)
    steps = []
    for step in range(1, STEPS + 1):
        opt.zero_grad(set_to_none=True)
        loss = causal_lm_loss(pm, forward(pm, inputs), labels)
        loss.backward()
        if step == 1:
            grads = {k: p.grad.detach().clone() for k, p in trainable}
            zero = [k for k, g in grads.items() if not bool((g != 0).any())]
            assert not zero, f"{name}: zero gradients {zero}"
            save(grads, os.path.join(out, "grads.safetensors"))
        grad_norm = float(torch.nn.utils.clip_grad_norm_([p for _, p in trainable], MAX_GRAD_NORM))
        opt.step()
        steps.append({"step": step, "loss": float(loss.detach()), "grad_norm": grad_norm,
                      "clip_coef": min(1.0, MAX_GRAD_NORM / (grad_norm + 1e-6))})
        if step == 1:
            save(adapters(trainable), os.path.join(out, "adapters_step1.safetensors"))
    save(adapters(trainable), os.path.join(out, "adapters_step10.safetensors"))
    with torch.no_grad():
        final_loss = float(causal_lm_loss(pm, forward(pm, inputs), labels))
    assert final_loss < steps[0]["loss"], f"{name}: loss did not go down ({steps[0]['loss']} -> {final_loss})"

    info = {
        "fixture": name,
        "hyperparameters": hyperparameters(),
        "start_adapter": "../peft/adapter_model.safetensors (PeftModel.from_pretrained(..., is_trainable=True))",
        "label_rule": LABEL_RULE + (" Gemma3: also boi and eoi (begin/end of image)."
                                    if getattr(pm.get_base_model().config, "boi_token_index", None) is not None else ""),
        "special_token_ids": special,
        "batch_size": int(labels.shape[0]),
        "sequence_length": int(labels.shape[1]),
        "valid_labels_per_row": per_row,
        "valid_labels": n_valid(labels),
        "step0_loss": steps[0]["loss"],
        "steps": steps,
        "loss_after_last_step": final_loss,
        "files": {
            "dataset.safetensors": "inputs.safetensors + labels (one batch, N = B)",
            "grads.safetensors": "d loss/d adapter at step 0 (before clipping), PEFT keys",
            "adapters_step1.safetensors": "adapters after optimizer step 1",
            "adapters_step10.safetensors": f"adapters after optimizer step {STEPS}",
        },
        "checks": dict(checks, train_logits_equal_eval_logits=True,
                       max_abs_diff_vs_peft_logits=err, all_gradients_nonzero=True),
        "versions": versions(),
        "reproduce": "/work/venv/bin/python test/models/make_train_references.py --only " + name,
    }
    if name == ACCUM_FIXTURE:
        info["gradient_accumulation"] = accum_reference(name, folder, inputs, labels)
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    return info


def accum_reference(name: str, folder: str, inputs: dict, labels1: torch.Tensor) -> str:
    labels2 = labels1.clone()
    for b in range(labels2.shape[0]):
        valid = (labels2[b] != IGNORE_INDEX).nonzero().flatten()
        labels2[b, valid[:2]] = IGNORE_INDEX
    micro = [labels1, labels2]
    n = [n_valid(l) for l in micro]
    total = sum(n)

    out = os.path.join(folder, "train", "accum")
    os.makedirs(out)
    both = {k: torch.cat([inputs[k], inputs[k]]) for k in MODEL_INPUTS}
    both["labels"] = torch.cat(micro)
    save(both, os.path.join(out, "dataset.safetensors"))
    save(dict({k: inputs[k] for k in MODEL_INPUTS}, labels=labels2), os.path.join(out, "dataset2.safetensors"))

    pm, trainable = load_trainable(name, folder)
    pm.train()
    opt = make_optimizer(trainable)
    steps = []
    for step in range(1, ACCUM_STEPS + 1):
        opt.zero_grad(set_to_none=True)
        mean_losses, summed = [], 0.0
        for lab in micro:
            logits = forward(pm, inputs)
            loss = causal_lm_loss(pm, logits, lab, num_items=torch.tensor(total))
            loss.backward()
            summed += float(loss.detach())
            with torch.no_grad():
                mean_losses.append(float(causal_lm_loss(pm, logits, lab)))
        if step == 1:
            grads = {k: p.grad.detach().clone() for k, p in trainable}
            save(grads, os.path.join(out, "grads.safetensors"))
            # Cross-check: the same gradient from loss_scale_i * (mean loss_i), the runner's form.
            pm2, tr2 = load_trainable(name, folder)
            pm2.train()
            for lab, ni in zip(micro, n):
                (causal_lm_loss(pm2, forward(pm2, inputs), lab) * (ni / total)).backward()
            worst = max(float((p.grad - grads[k]).abs().max() / grads[k].abs().max()) for k, p in tr2)
            assert worst < 1e-5, f"{name}: loss_scale form differs from num_items_in_batch form ({worst})"
        grad_norm = float(torch.nn.utils.clip_grad_norm_([p for _, p in trainable], MAX_GRAD_NORM))
        opt.step()
        steps.append({"step": step, "micro_batch_mean_loss": mean_losses, "loss": summed,
                      "grad_norm": grad_norm, "clip_coef": min(1.0, MAX_GRAD_NORM / (grad_norm + 1e-6))})
    save(adapters(trainable), os.path.join(out, f"adapters_step{ACCUM_STEPS}.safetensors"))

    info = {
        "fixture": name,
        "gradient_accumulation_steps": 2,
        "hyperparameters": dict(hyperparameters(), gradient_accumulation_steps=2, steps=ACCUM_STEPS),
        "micro_batches": "dataset.safetensors rows 0-1 (= ../dataset.safetensors) then rows 2-3 "
                         "(= dataset2.safetensors); every optimizer step runs both, in that order",
        "label_rule": LABEL_RULE + " Micro-batch 2: " + ACCUM_RULE + ".",
        "valid_labels": n,
        "loss_scale": [ni / total for ni in n],
        "normalisation": "transformers num_items_in_batch: micro-batch i back-propagates "
                         "sum CE_i / (n_1 + n_2) (ForCausalLMLoss with num_items_in_batch = n_1 + n_2), "
                         "= loss_scale_i * mean CE_i with loss_scale_i = n_i / (n_1 + n_2); "
                         "n_i = labels[:, 1:] != -100 counted over the micro-batch",
        "step0_micro_batch_mean_loss": steps[0]["micro_batch_mean_loss"],
        "step0_loss": steps[0]["loss"],
        "steps": steps,
        "step_fields": "loss = sum CE over both micro-batches / total valid tokens (before the update); "
                       "grad_norm before clipping",
        "files": {
            "dataset.safetensors": "both micro-batches, N = 4 examples",
            "dataset2.safetensors": "micro-batch 2 alone",
            "grads.safetensors": "accumulated gradient at the starting adapter (before clipping)",
            f"adapters_step{ACCUM_STEPS}.safetensors": f"adapters after {ACCUM_STEPS} optimizer steps",
        },
        "checks": {"loss_scale_form_equals_num_items_in_batch_form": True},
        "versions": versions(),
        "reproduce": "/work/venv/bin/python test/models/make_train_references.py --only " + name,
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    return "accum/reference.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--only", nargs="*", choices=sorted(generate.FIXTURES))
    a = ap.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    for name in a.only or list(generate.FIXTURES):
        info = train_reference(name, os.path.join(a.out, name))
        losses = [s["loss"] for s in info["steps"]]
        norms = [s["grad_norm"] for s in info["steps"]]
        print(f"[{name}] {info['valid_labels']} labels; loss {losses[0]:.5f} -> {info['loss_after_last_step']:.5f}; "
              f"grad_norm {norms[0]:.4g} .. {norms[-1]:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
