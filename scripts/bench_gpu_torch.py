#!/usr/bin/env python3
"""The PyTorch + PEFT side of scripts/bench-gpu: the benchmark's VLM in plain
PyTorch, trained with PEFT LoRA.

The model is written here rather than taken from transformers: the device
machine's transformers (if any) may name modules differently or compute
differently from the version that exported the ONNX graph here, so the
PyTorch side needs only torch and PEFT. It is the same math as
transformers 5's LlavaForConditionalGeneration(SiglipVisionConfig,
LlamaConfig) with vision_feature_layer -1 and the "full" strategy, under the
same module names (so PEFT's keys are the bundle's adapter keys);
scripts/bench-gpu-prepare checks its logits against the transformers model
and onnxruntime on the tiny and small presets. Attention is
torch.nn.functional.scaled_dot_product_attention (causal in the language
tower, GQA through enable_gqa), the batch has no padding.

Run as a worker by scripts/bench-gpu (one JSON line on stdout at the end):

    bench_gpu_torch.py --recipe DIR --workdir DIR --device cuda --steps 10 --warmup 3

Training: PEFT LoraConfig(r, lora_alpha, lora_dropout 0, the bundle's
target modules), its adapters set to the recipe's initial adapters (PEFT's
key names, A uniform +-1/sqrt(in), B 0); torch.optim.AdamW (fused on CUDA,
the optimizer transformers' Trainer uses by default), constant learning rate,
weight decay, clipping at max_grad_norm; causal-LM loss as transformers'
(logits upcast to float32, labels shifted, mean over labelled tokens).
Precision: on CUDA the weights are bf16 (transformers' torch_dtype=bfloat16),
the adapters fp32 (PEFT's autocast_adapter_dtype), the forward under
torch.autocast(bfloat16) (Trainer's bf16=True). On the CPU everything is
fp32, with the weights vlora's --mixed-precision bf16 converts rounded to
bf16, so the step-1 loss must equal vlora-train's to fp32 rounding.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_gpu_model as bm  # noqa: E402


def need(module: str):
    try:
        return __import__(module)
    except ImportError as exc:
        raise SystemExit(f"bench-gpu: the PyTorch side needs {module} ({exc})") from exc


torch = need("torch")
nn = torch.nn
F = torch.nn.functional


# --------------------------------------------------------------------------
# the model (module names as transformers')


class VisionEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        p = c["patch_size"]
        self.patch_embedding = nn.Conv2d(3, c["vision_hidden"], p, stride=p)
        self.position_embedding = nn.Embedding(bm.image_tokens(c), c["vision_hidden"])

    def forward(self, pixels):
        x = self.patch_embedding(pixels.to(self.patch_embedding.weight.dtype))
        return x.flatten(2).transpose(1, 2) + self.position_embedding.weight


class VisionAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["vision_hidden"]
        self.heads = c["vision_heads"]
        self.k_proj, self.v_proj = nn.Linear(h, h), nn.Linear(h, h)
        self.q_proj, self.out_proj = nn.Linear(h, h), nn.Linear(h, h)

    def forward(self, x):
        b, t, h = x.shape
        split = lambda y: y.view(b, t, self.heads, h // self.heads).transpose(1, 2)  # noqa: E731
        o = F.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)),
                                           split(self.v_proj(x)))
        return self.out_proj(o.transpose(1, 2).reshape(b, t, h))


class VisionMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc1 = nn.Linear(c["vision_hidden"], c["vision_mlp"])
        self.fc2 = nn.Linear(c["vision_mlp"], c["vision_hidden"])

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class VisionLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, eps = c["vision_hidden"], c["ln_eps"]
        self.layer_norm1 = nn.LayerNorm(h, eps=eps)
        self.self_attn = VisionAttention(c)
        self.layer_norm2 = nn.LayerNorm(h, eps=eps)
        self.mlp = VisionMLP(c)

    def forward(self, x):
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class VisionEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList(VisionLayer(c) for _ in range(c["vision_layers"]))


class VisionTower(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings = VisionEmbeddings(c)
        self.encoder = VisionEncoder(c)

    def forward(self, pixels):
        x = self.embeddings(pixels)
        for layer in self.encoder.layers:
            x = layer(x)
        return x  # feature layer -1: the last layer's output, before post_layernorm


class Projector(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.linear_1 = nn.Linear(c["vision_hidden"], c["text_hidden"])
        self.linear_2 = nn.Linear(c["text_hidden"], c["text_hidden"])

    def forward(self, x):
        return self.linear_2(F.gelu(self.linear_1(x)))


class RMSNorm(nn.Module):
    def __init__(self, h, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(h))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.to(torch.float32)
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x):
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class TextAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        h = c["text_hidden"]
        self.heads, self.kv_heads = c["text_heads"], c["text_kv_heads"]
        self.head_dim = h // self.heads
        kv = self.kv_heads * self.head_dim
        self.q_proj = nn.Linear(h, h, bias=False)
        self.k_proj = nn.Linear(h, kv, bias=False)
        self.v_proj = nn.Linear(h, kv, bias=False)
        self.o_proj = nn.Linear(h, h, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if self.kv_heads != self.heads:
            try:
                o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
            except TypeError:  # torch < 2.5
                rep = self.heads // self.kv_heads
                o = F.scaled_dot_product_attention(q, k.repeat_interleave(rep, 1),
                                                   v.repeat_interleave(rep, 1), is_causal=True)
        else:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o_proj(o.transpose(1, 2).reshape(b, t, -1))


class TextMLP(nn.Module):
    def __init__(self, c):
        super().__init__()
        h, m = c["text_hidden"], c["text_mlp"]
        self.gate_proj = nn.Linear(h, m, bias=False)
        self.up_proj = nn.Linear(h, m, bias=False)
        self.down_proj = nn.Linear(m, h, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class TextLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = TextAttention(c)
        self.mlp = TextMLP(c)
        self.input_layernorm = RMSNorm(c["text_hidden"], c["rms_eps"])
        self.post_attention_layernorm = RMSNorm(c["text_hidden"], c["rms_eps"])

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class LanguageModel(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed_tokens = nn.Embedding(c["vocab"], c["text_hidden"])
        self.layers = nn.ModuleList(TextLayer(c) for _ in range(c["text_layers"]))
        self.norm = RMSNorm(c["text_hidden"], c["rms_eps"])

    def rotary(self, t, device, dtype):
        """transformers' default RoPE: float32 angles, then the activation dtype."""
        d = self.c["text_hidden"] // self.c["text_heads"]
        inv = 1.0 / (self.c["rope_theta"] ** (
            torch.arange(0, d, 2, dtype=torch.int64, device=device).float() / d))
        pos = torch.arange(t, device=device).float()
        with torch.autocast(device_type=device.type, enabled=False):
            freqs = (inv[None, :, None] @ pos[None, None, :]).transpose(1, 2)
            emb = torch.cat((freqs, freqs), dim=-1)
            return emb.cos()[:, None].to(dtype), emb.sin()[:, None].to(dtype)


class Inner(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.vision_tower = VisionTower(c)
        self.multi_modal_projector = Projector(c)
        self.language_model = LanguageModel(c)


class VLM(nn.Module):
    """forward(pixel_values, input_ids) -> logits, as the exported graph."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.model = Inner(c)
        self.lm_head = nn.Linear(c["text_hidden"], c["vocab"], bias=False)

    def forward(self, pixel_values, input_ids):
        inner = self.model
        feats = inner.multi_modal_projector(inner.vision_tower(pixel_values))
        lm = inner.language_model
        x = lm.embed_tokens(input_ids)
        mask = (input_ids == self.c["image_token"]).unsqueeze(-1)
        x = x.masked_scatter(mask, feats.to(x.dtype))
        cos, sin = lm.rotary(x.shape[1], x.device, x.dtype)
        for layer in lm.layers:
            x = layer(x, cos, sin)
        return self.lm_head(lm.norm(x))


def causal_lm_loss(logits, labels):
    """transformers' ForCausalLMLoss without num_items_in_batch."""
    logits = logits.float()
    labels = F.pad(labels, (0, 1), value=bm.IGNORE_INDEX)[..., 1:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                           ignore_index=bm.IGNORE_INDEX)


# --------------------------------------------------------------------------
# weights from the regenerated files


def load_weights(model, recipe, workdir, dtype, round_bf16: set):
    """Copies every parameter from the recipe's float32 weight file (the
    bytes vlora-train reads); names in round_bf16 are rounded to bf16 first
    (what vlora's --mixed-precision bf16 converts)."""
    import numpy as np

    entry = next(f for f in recipe["files"] if f["kind"] == "tensors" and f.get("dtype") == "f32")
    path = os.path.join(workdir, entry["path"])
    params = dict(model.named_parameters())
    seen = set()
    with open(path, "rb") as f:
        for t in entry["tensors"]:
            if t["name"] not in params:
                raise SystemExit(f"bench-gpu: the PyTorch model has no parameter {t['name']}")
            p = params[t["name"]]
            if list(p.shape) != t["shape"]:
                raise SystemExit(f"bench-gpu: {t['name']}: shape {list(p.shape)} in the PyTorch "
                                 f"model, {t['shape']} in the recipe")
            f.seek(t["offset"])
            a = np.fromfile(f, dtype=np.float32, count=math.prod(t["shape"])).reshape(t["shape"])
            value = torch.from_numpy(a)
            if t["name"] in round_bf16:
                value = value.to(torch.bfloat16)
            with torch.no_grad():
                p.copy_(value.to(dtype))  # converted on the host, then copied
            seen.add(t["name"])
    missing = sorted(set(params) - seen)
    if missing:
        raise SystemExit(f"bench-gpu: {len(missing)} PyTorch parameters have no recipe tensor, "
                         f"e.g. {missing[:3]}")


def build(recipe, workdir, device, dtype, round_bf16):
    c = recipe["config"]
    with torch.device("meta"):
        model = VLM(c).to(dtype)
    model = model.to_empty(device=device)  # no float32 copy on the device
    load_weights(model, recipe, workdir, dtype, round_bf16)
    model.requires_grad_(False)
    return model


def batch(recipe, workdir, device):
    entry = next(f for f in recipe["files"] if f["kind"] == "dataset")
    data = bm.read_safetensors(os.path.join(workdir, entry["path"]))
    return {k: torch.from_numpy(v.copy()).to(device) for k, v in data.items()}


def peft_model(model, recipe, workdir):
    peft = need("peft")
    c = recipe["config"]
    targets = [m for m, _, _ in bm.lora_targets(c)]
    cfg = peft.LoraConfig(r=c["r"], lora_alpha=c["lora_alpha"], lora_dropout=0.0,
                          target_modules=targets, bias="none")
    pm = peft.get_peft_model(model, cfg)
    entry = next(f for f in recipe["files"] if f["kind"] == "adapters")
    init = bm.read_safetensors(os.path.join(workdir, entry["path"]))
    state = {k: torch.from_numpy(v.copy()) for k, v in init.items()}
    result = peft.set_peft_model_state_dict(pm, state)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise SystemExit(f"bench-gpu: PEFT did not take {len(unexpected)} adapter tensors, "
                         f"e.g. {unexpected[:3]}")
    trainable = [(n, p) for n, p in pm.named_parameters() if p.requires_grad]
    lora_names = {n.replace(".default", "") for n, _ in trainable}
    if lora_names != set(init):
        raise SystemExit("bench-gpu: PEFT's adapters are not the recipe's: "
                         f"{sorted(lora_names ^ set(init))[:4]}")
    for n, p in trainable:  # loaded values, as fp32 masters
        want = state[n.replace(".default", "")]
        if not torch.equal(p.detach().float().cpu(), want):
            raise SystemExit(f"bench-gpu: adapter {n} did not load")
    return pm, [p for _, p in trainable], peft.__version__


# --------------------------------------------------------------------------
# the benchmark


def main():
    ap = argparse.ArgumentParser(description="the PyTorch + PEFT side of scripts/bench-gpu")
    ap.add_argument("--recipe", required=True, help="folder with recipe.json")
    ap.add_argument("--workdir", required=True, help="folder with the regenerated files")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    with open(os.path.join(args.recipe, "recipe.json")) as f:
        recipe = json.load(f)
    t = recipe["training"]
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("bench-gpu: torch sees no CUDA device")
    t0 = time.perf_counter()
    # CUDA: bf16 weights (torch_dtype=bfloat16). CPU: fp32 with vlora's bf16
    # conversions applied, the check that both sides compute the same thing.
    dtype = torch.bfloat16 if cuda else torch.float32
    round_bf16 = set() if cuda else set(recipe.get("bf16_converted", []))
    model = build(recipe, args.workdir, device, dtype, round_bf16)
    data = batch(recipe, args.workdir, device)
    labels = data.pop("labels")
    if not bool((data["attention_mask"] == 1).all()):
        raise SystemExit("bench-gpu: the batch has padding; the PyTorch model assumes none")
    pm, trainable, peft_version = peft_model(model, recipe, args.workdir)
    pm.train()
    if cuda:
        opt = torch.optim.AdamW(trainable, lr=t["learning_rate"], betas=tuple(t["betas"]),
                                eps=t["eps"], weight_decay=t["weight_decay"], fused=True)
    else:
        opt = torch.optim.AdamW(trainable, lr=t["learning_rate"], betas=tuple(t["betas"]),
                                eps=t["eps"], weight_decay=t["weight_decay"], foreach=False)
    setup_s = time.perf_counter() - t0

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = pm(data["pixel_values"], data["input_ids"])
        loss = causal_lm_loss(logits, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, t["max_grad_norm"])
        opt.step()
        return float(loss.detach())  # synchronises

    losses, times = [], []
    for _ in range(args.warmup + args.steps):
        if cuda:
            torch.cuda.synchronize()
        s = time.perf_counter()
        losses.append(step())
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - s)
    out = {"losses": losses, "step_seconds": times[args.warmup:],
           "first_steps_seconds": times[:args.warmup], "setup_seconds": setup_s,
           "torch": torch.__version__, "peft": peft_version, "dtype": str(dtype),
           "device": str(device), "adapter_params": sum(p.numel() for p in trainable)}
    if cuda:
        out["max_memory_allocated"] = torch.cuda.max_memory_allocated()
        out["max_memory_reserved"] = torch.cuda.max_memory_reserved()
        out["gpu"] = torch.cuda.get_device_name()
        out["sdpa_flash"] = bool(torch.backends.cuda.flash_sdp_enabled())
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
