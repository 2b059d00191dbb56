#!/usr/bin/env python3
"""Estimates, on a CPU and without computing anything, the peak GPU memory of
the PyTorch + PEFT side of scripts/bench-gpu (scripts/bench_gpu_torch.py on
CUDA): bf16 frozen weights, fp32 LoRA adapters, forward under
autocast(bfloat16), flash SDPA, fused AdamW.

Method. The model is bench_gpu_torch.VLM built on the meta device, cast to
bf16 and wrapped with PEFT exactly as on CUDA (LoraConfig(r, lora_alpha,
dropout 0, bench_gpu_model.lora_targets); PEFT's autocast_adapter_dtype makes
the adapters fp32). It is then moved with to_empty() onto a *fake* CUDA
device (torch FakeTensorMode: meta storage, no data, no GPU needed), because
autocast has no meta backend (torch.autocast("meta") is refused and
bench_gpu_torch's rotary embedding opens one) while fake CUDA tensors go
through the real C++ CUDA autocast policy. torch.autocast("cuda") disables
itself where CUDA is missing, so the same state is set with
torch.set_autocast_enabled/dtype. Hence every dtype, every autocast cast copy
(layer_norm run in fp32, PEFT's fp32 upcast of each LoRA input cast back to
bf16, the cached bf16 copies of the adapters) and every view-vs-copy is what
CUDA produces. One forward (pm(pixels, ids) under autocast) and
bench_gpu_torch.causal_lm_loss (outside it) run under
torch.autograd.graph.saved_tensors_hooks, which tallies every tensor autograd
keeps for backward once per storage (key: the StorageImpl address,
untyped_storage()._cdata; meta data pointers are all 0; each packed tensor
stays referenced so no address is reused). Storages of parameters and of
the batch are resident anyway and are left out (saved weights are reported
apart). Attention: torch.nn.functional.scaled_dot_product_attention is
replaced, in this process only, by a function that saves what CUDA's flash
kernel saves -- q, k, v (un-repeated under GQA: flash does GQA itself), the
output (in flash's [B, S, H, D] memory layout, so the output projection's
reshape is a view, as on CUDA) and the fp32 logsumexp [B, H, S] -- instead of
the math path's S x S probabilities; its output holds no values.

Peak = frozen weights + adapters + adapter grads + AdamW state (exp_avg,
exp_avg_sq: 2 x adapters) + the batch + saved activations + the transient of
the loss backward. That transient, with N = batch x seq and V = vocab (all
positions get logits): the bf16 logits [N, V] that bench_gpu_torch's step()
still holds (2 N V bytes), the fp32 gradient of the log-probabilities from
nll_loss backward (4 N V) and the fp32 gradient log_softmax backward makes
while its input gradient and saved output are alive (4 N V): 10 N V bytes on
top of the saved fp32 log-probabilities. It is the largest backward
transient by far (an attention or MLP gradient is ~0.1 GB at full size); the
loss forward (bf16 logits + fp32 upcast + fp32 log-probs) is smaller.

Limits: counts tensors, not the CUDA caching allocator (512-byte rounding,
fragmentation, reserved vs allocated), cuBLAS/flash workspaces, the CUDA
context or AdamW's per-parameter step scalars; adapter grads are counted
although step() frees them (zero_grad(set_to_none)) before the forward, so
the figure is an upper bound by ~1 x adapters. Compare it with
torch.cuda.max_memory_allocated.

  scripts/bench_gpu_peft_memory.py [--recipe DIR | --preset NAME] [--validate]

--validate checks the counting itself on the tiny and small presets: real
CPU tensors vs fake (meta-backed) ones, fp32, and bf16 weights under CPU
autocast; the tallies must be equal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import unittest.mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_gpu_model as bm  # noqa: E402
import bench_gpu_torch as bt  # noqa: E402

torch = bt.torch
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FlashAttention(torch.autograd.Function):
    """Saves what aten._scaled_dot_product_flash_attention saves (its philox
    seed/offset scalars aside); no values, no backward."""

    @staticmethod
    def forward(ctx, q, k, v):
        b, h, s, _ = q.shape
        out = q.new_empty(b, s, h, v.shape[-1]).transpose(1, 2)
        lse = q.new_empty(b, h, s, dtype=torch.float32)
        ctx.save_for_backward(q, k, v, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad):
        raise NotImplementedError("a memory model: backward is never run")


def flash_sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
               enable_gqa=False):
    if attn_mask is not None or dropout_p:
        raise ValueError("flash_sdpa models mask-free, dropout-free attention only")
    device = q.device.type
    if torch.is_autocast_enabled(device):  # SDPA is on autocast's lower-precision list
        dtype = torch.get_autocast_dtype(device)
        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    return FlashAttention.apply(q, k, v)


@contextlib.contextmanager
def autocast_bf16(device):
    """torch.autocast(device, bfloat16), also for a CUDA this machine lacks."""
    before = torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)
    torch.set_autocast_enabled(device, True)
    torch.set_autocast_dtype(device, torch.bfloat16)
    torch.autocast_increment_nesting()
    try:
        yield
    finally:
        if torch.autocast_decrement_nesting() == 0:
            torch.clear_autocast_cache()
        torch.set_autocast_enabled(device, before[0])
        torch.set_autocast_dtype(device, before[1])


def storage_key(t):
    return t.untyped_storage()._cdata


def measure(cfg, device, weight_dtype, autocast, fake):
    """Sizes of one bench_gpu_torch training step's tensors: parameters, batch,
    and what autograd saves during forward + loss, per category."""
    import peft
    from torch._subclasses.fake_tensor import FakeTensorMode

    with torch.device("meta"):  # as bench_gpu_torch.build, without loading weights
        vlm = bt.VLM(cfg).to(weight_dtype)
    vlm.requires_grad_(False)
    lora = peft.LoraConfig(r=cfg["r"], lora_alpha=cfg["lora_alpha"], lora_dropout=0.0,
                           target_modules=[m for m, _, _ in bm.lora_targets(cfg)], bias="none")
    pm = peft.get_peft_model(vlm, lora)
    pm.train()
    mode = FakeTensorMode(allow_non_fake_inputs=True) if fake else contextlib.nullcontext()
    saved, current = {}, ["vision"]  # storage key -> (category, bytes, dtype, tensor)

    def pack(t):
        key = storage_key(t)
        if key not in saved:
            saved[key] = (current[0], t.untyped_storage().nbytes(), t.dtype, t)
        return t

    def category(name):
        return lambda module, args: current.__setitem__(0, name)

    inner = vlm.model
    for module, name in ((inner.vision_tower, "vision"), (inner.multi_modal_projector, "projector"),
                         (inner.language_model.embed_tokens, "language"),
                         (vlm.lm_head, "logits_loss")):
        module.register_forward_pre_hook(category(name))
    with mode, unittest.mock.patch.object(torch.nn.functional, "scaled_dot_product_attention",
                                          flash_sdpa):
        pm.to_empty(device=device)
        put = mode.from_tensor if fake else (lambda t: t)
        data = {k: put(torch.from_numpy(v.copy())).to(device)
                for k, v in bm.dataset_tensors(cfg)}
        params = list(pm.parameters())
        weights = {storage_key(p) for p in params}
        resident = weights | {storage_key(t) for t in data.values()}
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            with autocast_bf16(device.type) if autocast else contextlib.nullcontext():
                logits = pm(data["pixel_values"], data["input_ids"])
            loss = bt.causal_lm_loss(logits, data["labels"])
        out = {"weights": sum(p.nbytes for p in params if not p.requires_grad),
               "adapters": sum(p.nbytes for p in params if p.requires_grad),
               "adapter_params": sum(p.numel() for p in params if p.requires_grad),
               "batch": sum(t.nbytes for t in data.values()),
               "logits_dtype": str(logits.dtype).replace("torch.", ""),
               "loss_dtype": str(loss.dtype).replace("torch.", "")}
    acts = {k: v for k, v in saved.items() if k not in resident}
    out["saved_weights"] = sum(n for k, (_, n, _, _) in saved.items() if k in weights)
    out["saved"] = sum(n for _, n, _, _ in acts.values())
    for cat in ("vision", "projector", "language", "logits_loss"):
        out["saved_" + cat] = sum(n for c, n, _, _ in acts.values() if c == cat)
    for dt in sorted({str(d).replace("torch.", "") for _, _, d, _ in acts.values()}):
        out["saved_" + dt] = sum(n for _, n, d, _ in acts.values() if str(d) == "torch." + dt)
    out["saved_tensors"] = len(acts)
    return out


def estimate(cfg):
    m = measure(cfg, torch.device("cuda"), torch.bfloat16, autocast=True, fake=True)
    nv = cfg["batch"] * cfg["seq"] * cfg["vocab"]
    m["grads"] = m["adapters"]
    m["adamw_state"] = 2 * m["adapters"]
    m["loss_backward_transient"] = 10 * nv
    m["peak"] = sum(m[k] for k in ("weights", "adapters", "grads", "adamw_state", "batch",
                                   "saved", "loss_backward_transient"))
    return m


def table(m, title):
    gib = lambda n: f"{n / 2**30:10.3f} GiB"  # noqa: E731
    rows = [("frozen weights (bf16)", "weights"), ("LoRA adapters (fp32)", "adapters"),
            ("adapter grads (fp32)", "grads"), ("AdamW state (2 x fp32)", "adamw_state"),
            ("batch", "batch"), ("saved activations", "saved"),
            ("  vision tower", "saved_vision"), ("  projector", "saved_projector"),
            ("  language tower", "saved_language"), ("  lm_head + loss", "saved_logits_loss"),
            ("    of which bf16", "saved_bfloat16"), ("    of which fp32", "saved_float32"),
            ("loss backward transient", "loss_backward_transient"), ("estimated peak", "peak"),
            ("(weights autograd saves, resident)", "saved_weights")]
    lines = [title] + [f"  {label:36s}{gib(m[k])}" for label, k in rows if k in m]
    print("\n".join(lines), file=sys.stderr)


def validate():
    """Real CPU tensors vs fake ones: the tallies must be equal."""
    ok = True
    for preset in ("tiny", "small"):
        cfg = bm.PRESETS[preset]
        for wdt, ac in ((torch.float32, False), (torch.bfloat16, True)):
            cpu = torch.device("cpu")
            real = measure(cfg, cpu, wdt, ac, fake=False)
            fake = measure(cfg, cpu, wdt, ac, fake=True)
            same = real == fake
            ok &= same
            print(json.dumps({"validate": preset, "weights": str(wdt), "cpu_autocast": ac,
                              "equal": same, "real_cpu_saved": real["saved"],
                              "fake_saved": fake["saved"],
                              "real_cpu_saved_tensors": real["saved_tensors"],
                              "fake_saved_tensors": fake["saved_tensors"]}), flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", default=os.path.join(ROOT, "build/bench-gpu/full/recipe"),
                    help="folder with recipe.json (only its config is read)")
    ap.add_argument("--preset", choices=sorted(bm.PRESETS), help="a preset instead of a recipe")
    ap.add_argument("--validate", action="store_true",
                    help="check the counting on real vs fake CPU tensors (tiny, small)")
    args = ap.parse_args()
    if args.validate:
        sys.exit(0 if validate() else 1)
    if args.preset:
        cfg, source = bm.PRESETS[args.preset], f"preset {args.preset}"
    else:
        with open(os.path.join(args.recipe, "recipe.json")) as f:
            cfg, source = json.load(f)["config"], args.recipe
    m = estimate(cfg)
    m["config"] = cfg
    table(m, f"PyTorch + PEFT step on CUDA (estimate, {source}):")
    print(json.dumps(m), flush=True)


if __name__ == "__main__":
    main()
