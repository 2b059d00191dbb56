"""The model, weights and batch of scripts/bench-gpu, in numpy only.

scripts/bench-gpu-prepare (here, with MLIR, torch, transformers and onnx)
exports a LLaVA-style VLM built from a transformers config and compiles it;
scripts/bench-gpu (on the GPU machine, which has neither MLIR nor, for sure,
transformers or onnx) regenerates its multi-GB weight files from a small
*recipe* and trains it with vlora-train and with PyTorch + PEFT. This module
holds what both sides must agree on, byte for byte:

  * the model configurations (`PRESETS`): SigLIP vision tower + GELU MLP
    projector + Llama language model, i.e. transformers'
    LlavaForConditionalGeneration(SiglipVisionConfig, LlamaConfig) with
    vision_feature_layer -1 and the "full" feature strategy;
  * the value of every weight: `tensor_values(name, shape, init)`, from the
    raw 64-bit outputs of numpy's PCG64 (a stream numpy guarantees across
    versions and machines) seeded by a SHA-256 of the tensor's name, turned
    into float32 with exact integer and power-of-two arithmetic and one
    rounding (a multiply, then for norm scales an add of 1): uniform with the
    standard deviation of the usual init (0.02);
  * the initial LoRA adapters (PEFT's: A uniform in +-1/sqrt(in), B zero) and
    the training batch, written as safetensors by our own writer;
  * bf16 conversion (round to nearest even, as vlora-compile's
    --mixed-precision bf16 does);
  * the FLOP count of one LoRA training step (`step_flops`), for MFU.

Nothing here imports torch: the driver process stays small.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import math
import os
import struct

try:
    import numpy as np
except ImportError as exc:  # the device machine has it (PEFT needs it)
    raise SystemExit(f"bench-gpu: numpy is needed ({exc}); pip install numpy") from exc

SEED_TAG = "vlora-bench-gpu/1"
INIT_STD = 0.02
IGNORE_INDEX = -100
BOS = 1
CHUNK = 1 << 24  # values generated per call (64 MiB of uint64 at a time)
HASH_CHUNK = 1 << 28  # bytes per SHA-256 chunk of a file (256 MiB)

# --------------------------------------------------------------------------
# configurations

PRESETS = {
    # Runs on a CPU in seconds: the whole path end to end.
    "tiny": dict(
        image_size=32, patch_size=8, vision_hidden=32, vision_layers=2, vision_heads=2,
        vision_mlp=64, text_hidden=64, text_layers=2, text_heads=4, text_kv_heads=2,
        text_mlp=128, vocab=320, image_token=300, seq=48, batch=2,
        rope_theta=10000.0, rms_eps=1e-5, ln_eps=1e-6, r=16, lora_alpha=16),
    # ~50 M with the full preset's head sizes (72 vision, 64 language), GQA
    # ratio and vocabulary: a CPU check at realistic shapes.
    "small": dict(
        image_size=224, patch_size=14, vision_hidden=576, vision_layers=3, vision_heads=8,
        vision_mlp=2304, text_hidden=512, text_layers=3, text_heads=8, text_kv_heads=1,
        text_mlp=1408, vocab=32064, image_token=32000, seq=384, batch=2,
        rope_theta=10000.0, rms_eps=1e-5, ln_eps=1e-6, r=16, lora_alpha=16),
    # ~1.5 B: SigLIP-so400m/14 at 384 px (729 image tokens) + a TinyLlama-1.1B-
    # shaped Llama (GQA 32/4, SwiGLU 5632), 2048 tokens per example.
    "full": dict(
        image_size=384, patch_size=14, vision_hidden=1152, vision_layers=27, vision_heads=16,
        vision_mlp=4304, text_hidden=2048, text_layers=22, text_heads=32, text_kv_heads=4,
        text_mlp=5632, vocab=32064, image_token=32000, seq=2048, batch=4,
        rope_theta=10000.0, rms_eps=1e-5, ln_eps=1e-6, r=16, lora_alpha=16),
}


def image_tokens(cfg: dict) -> int:
    return (cfg["image_size"] // cfg["patch_size"]) ** 2


# --------------------------------------------------------------------------
# the parameters (names as transformers 5 names LlavaForConditionalGeneration's)


def param_specs(cfg: dict) -> list[tuple[str, list[int], str]]:
    """(name, shape, init) of every parameter the exported graph reads, in
    the order of the model's named_parameters(). init is 'weight' (std
    INIT_STD), 'bias' (std INIT_STD) or 'norm' (1 + std INIT_STD). The
    vision tower's post_layernorm is not listed: with feature layer -1 the
    features are the last encoder layer's output before it (dead code, not
    in the graph)."""
    vh, vm, p = cfg["vision_hidden"], cfg["vision_mlp"], cfg["patch_size"]
    th, tm, v = cfg["text_hidden"], cfg["text_mlp"], cfg["vocab"]
    kv = cfg["text_kv_heads"] * (th // cfg["text_heads"])
    out = []
    vt = "model.vision_tower."
    out += [(vt + "embeddings.patch_embedding.weight", [vh, 3, p, p], "weight"),
            (vt + "embeddings.patch_embedding.bias", [vh], "bias"),
            (vt + "embeddings.position_embedding.weight", [image_tokens(cfg), vh], "weight")]
    for i in range(cfg["vision_layers"]):
        pre = f"{vt}encoder.layers.{i}."
        out += [(pre + "layer_norm1.weight", [vh], "norm"), (pre + "layer_norm1.bias", [vh], "bias")]
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            out += [(f"{pre}self_attn.{proj}.weight", [vh, vh], "weight"),
                    (f"{pre}self_attn.{proj}.bias", [vh], "bias")]
        out += [(pre + "layer_norm2.weight", [vh], "norm"), (pre + "layer_norm2.bias", [vh], "bias"),
                (pre + "mlp.fc1.weight", [vm, vh], "weight"), (pre + "mlp.fc1.bias", [vm], "bias"),
                (pre + "mlp.fc2.weight", [vh, vm], "weight"), (pre + "mlp.fc2.bias", [vh], "bias")]
    pj = "model.multi_modal_projector."
    out += [(pj + "linear_1.weight", [th, vh], "weight"), (pj + "linear_1.bias", [th], "bias"),
            (pj + "linear_2.weight", [th, th], "weight"), (pj + "linear_2.bias", [th], "bias")]
    lm = "model.language_model."
    out.append((lm + "embed_tokens.weight", [v, th], "weight"))
    for i in range(cfg["text_layers"]):
        pre = f"{lm}layers.{i}."
        out += [(pre + "self_attn.q_proj.weight", [th, th], "weight"),
                (pre + "self_attn.k_proj.weight", [kv, th], "weight"),
                (pre + "self_attn.v_proj.weight", [kv, th], "weight"),
                (pre + "self_attn.o_proj.weight", [th, th], "weight"),
                (pre + "mlp.gate_proj.weight", [tm, th], "weight"),
                (pre + "mlp.up_proj.weight", [tm, th], "weight"),
                (pre + "mlp.down_proj.weight", [th, tm], "weight"),
                (pre + "input_layernorm.weight", [th], "norm"),
                (pre + "post_attention_layernorm.weight", [th], "norm")]
    out += [(lm + "norm.weight", [th], "norm"), ("lm_head.weight", [v, th], "weight")]
    return out


def lora_targets(cfg: dict) -> list[tuple[str, int, int]]:
    """(module, in, out) of every linear layer LoRA adapts: vlora-compile's
    default selection (Unsloth's: every attention and MLP linear of both
    towers; not the projector, patch embedding or lm_head), sorted."""
    targets = []
    for name, shape, _ in param_specs(cfg):
        module, leaf = name.rsplit(".", 1)
        if leaf != "weight" or len(shape) != 2:
            continue
        last = module.rsplit(".", 1)[-1]
        if ".layers." in module and last in ("q_proj", "k_proj", "v_proj", "out_proj", "o_proj",
                                             "fc1", "fc2", "gate_proj", "up_proj", "down_proj"):
            targets.append((module, shape[1], shape[0]))
    return sorted(targets)


def count_params(cfg: dict) -> dict:
    """Parameters per tower (of the graph: post_layernorm left out) and LoRA's."""
    counts = {"vision": 0, "projector": 0, "language": 0, "lm_head": 0}
    for name, shape, _ in param_specs(cfg):
        n = math.prod(shape)
        if name.startswith("model.vision_tower."):
            counts["vision"] += n
        elif name.startswith("model.multi_modal_projector."):
            counts["projector"] += n
        elif name == "lm_head.weight":
            counts["lm_head"] += n
        else:
            counts["language"] += n
    counts["total"] = sum(counts.values())
    counts["lora"] = sum(cfg["r"] * (i + o) for _, i, o in lora_targets(cfg))
    return counts


# --------------------------------------------------------------------------
# deterministic values


def name_seed(name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{SEED_TAG}/{name}".encode()).digest()[:8], "little")


def uniform_pm1(name: str, count: int):
    """Yields float32 arrays, together `count` values uniform in [-1, 1),
    from the raw PCG64 stream of `name`: the top 24 bits of each 64-bit
    output, times 2^-23, minus 1 (all exact)."""
    bits = np.random.PCG64(name_seed(name))
    done = 0
    while done < count:
        n = min(CHUNK, count - done)
        raw = bits.random_raw(n)
        u = (raw >> np.uint64(40)).astype(np.float32)
        del raw
        u *= np.float32(2.0 ** -23)
        u -= np.float32(1.0)
        yield u
        done += n


def fill_values(out, name: str, init: str) -> None:
    """Writes the values of tensor `name` into the float32 array `out` (any
    shape; filled in C order)."""
    flat = out.reshape(-1)
    half_width = np.float32(INIT_STD * math.sqrt(3.0))  # uniform with std INIT_STD
    pos = 0
    for u in uniform_pm1(name, flat.size):
        seg = flat[pos:pos + u.size]
        np.multiply(u, half_width, out=seg, dtype=np.float32)
        if init == "norm":
            np.add(seg, np.float32(1.0), out=seg, dtype=np.float32)
        elif init not in ("weight", "bias"):
            raise ValueError(f"unknown init {init!r} for {name}")
        pos += u.size


def tensor_values(name: str, shape, init: str):
    out = np.empty(shape, dtype=np.float32)
    fill_values(out, name, init)
    return out


def lora_a_values(key: str, in_features: int, r: int):
    """PEFT's default lora_A init distribution (kaiming-uniform with a=sqrt(5)
    is uniform in +-1/sqrt(in)), from our generator."""
    out = np.empty((r, in_features), dtype=np.float32)
    bound = np.float32(1.0 / math.sqrt(in_features))
    flat = out.reshape(-1)
    pos = 0
    for u in uniform_pm1(key, flat.size):
        np.multiply(u, bound, out=flat[pos:pos + u.size], dtype=np.float32)
        pos += u.size
    return out


def bf16_bits(values):
    """float32 -> bf16 bit patterns (uint16), round to nearest even (finite
    values; ours are)."""
    bits = values.reshape(-1).view(np.uint32)
    rounded = bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))
    return (rounded >> np.uint32(16)).astype(np.uint16)


# --------------------------------------------------------------------------
# safetensors (our own writer: the bytes must not depend on a library version)


def safetensors_bytes_header(entries: list[tuple[str, str, list[int], int]]) -> tuple[bytes, list[int]]:
    """Header bytes (length prefix included) and each entry's data offset, for
    (name, dtype, shape, nbytes) entries in the given order, data packed."""
    header, offsets, pos = {"__metadata__": {"format": "pt"}}, [], 0
    for name, dtype, shape, nbytes in entries:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + nbytes]}
        offsets.append(pos)
        pos += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, offsets


def write_safetensors(path: str, tensors: list[tuple[str, "np.ndarray"]]) -> None:
    names = {"float32": "F32", "int64": "I64", "uint16": "BF16"}
    entries = [(n, names[a.dtype.name], list(a.shape), a.nbytes) for n, a in tensors]
    head, _ = safetensors_bytes_header(entries)
    with open(path, "wb") as f:
        f.write(head)
        for _, a in tensors:
            f.write(np.ascontiguousarray(a).tobytes())


def read_safetensors(path: str) -> dict:
    """name -> numpy array (F32, I64, BF16 as uint16)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    types = {"F32": np.float32, "I64": np.int64, "BF16": np.uint16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=types[info["dtype"]]).reshape(info["shape"])
    return out


def adapter_tensors(cfg: dict) -> list[tuple[str, "np.ndarray"]]:
    """The initial adapters under PEFT's keys, sorted (A from our generator,
    B zero): the file vlora-compile --init-from reads and PEFT loads."""
    out = []
    for module, fin, fout in lora_targets(cfg):
        key = f"base_model.model.{module}"
        out.append((key + ".lora_A.weight", lora_a_values(key + ".lora_A.weight", fin, cfg["r"])))
        out.append((key + ".lora_B.weight", np.zeros((fout, cfg["r"]), dtype=np.float32)))
    return sorted(out, key=lambda t: t[0])


def dataset_tensors(cfg: dict) -> list[tuple[str, "np.ndarray"]]:
    """One batch (batch examples): random pixels in [-1, 1), <bos>, the image
    tokens, random text; labels = the text (bos and image tokens -100)."""
    b, s, n_img = cfg["batch"], cfg["seq"], image_tokens(cfg)
    if s < n_img + 2:
        raise ValueError(f"seq {s} leaves no text after {n_img} image tokens")
    size = cfg["image_size"]
    pixels = np.empty((b, 3, size, size), dtype=np.float32)
    pos = 0
    flat = pixels.reshape(-1)
    for u in uniform_pm1("dataset/pixel_values", flat.size):
        flat[pos:pos + u.size] = u
        pos += u.size
    lo, hi = 3, min(cfg["image_token"], cfg["vocab"]) - 10
    raw = np.random.PCG64(name_seed("dataset/input_ids")).random_raw(b * s)
    ids = (lo + (raw % np.uint64(hi - lo))).astype(np.int64).reshape(b, s)
    ids[:, 0] = BOS
    ids[:, 1:1 + n_img] = cfg["image_token"]
    labels = ids.copy()
    labels[:, :1 + n_img] = IGNORE_INDEX
    mask = np.ones((b, s), dtype=np.int64)
    return [("pixel_values", pixels), ("input_ids", ids), ("attention_mask", mask),
            ("labels", labels)]


# --------------------------------------------------------------------------
# files: regenerate and check


def sha256_chunks(path: str, threads: int = 8) -> list[str]:
    """SHA-256 of each HASH_CHUNK-byte piece of the file, in parallel (hashlib
    releases the GIL)."""
    size = os.path.getsize(path)

    def one(k):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            f.seek(k * HASH_CHUNK)
            left = min(HASH_CHUNK, size - k * HASH_CHUNK)
            while left > 0:
                block = f.read(min(1 << 24, left))
                if not block:
                    raise OSError(f"{path}: short read")
                h.update(block)
                left -= len(block)
        return h.hexdigest()

    count = max(1, (size + HASH_CHUNK - 1) // HASH_CHUNK)
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, range(count)))


def _write_tensor(job):
    path, name, shape, init, offset, bf16 = job
    values = tensor_values(name, shape, init)
    data = bf16_bits(values).tobytes() if bf16 else values.tobytes()
    fd = os.open(path, os.O_WRONLY)
    try:
        view = memoryview(data)
        while view:
            n = os.pwrite(fd, view, offset)
            view, offset = view[n:], offset + n
    finally:
        os.close(fd)
    return len(data)


def regenerate_file(path: str, entry: dict, cfg: dict, workers: int) -> None:
    """Writes one file of the recipe: 'tensors' (each tensor at its offset,
    float32 or bf16, zero gaps), 'adapters' or 'dataset' (safetensors)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    kind = entry["kind"]
    if kind == "adapters":
        write_safetensors(path, adapter_tensors(cfg))
        return
    if kind == "dataset":
        write_safetensors(path, dataset_tensors(cfg))
        return
    if kind != "tensors":
        raise ValueError(f"unknown file kind {kind!r}")
    with open(path, "wb") as f:
        f.truncate(entry["size"])
    bf16 = entry.get("dtype") == "bf16"
    jobs = [(path, t["name"], t["shape"], t["init"], t["offset"], bf16) for t in entry["tensors"]]
    jobs.sort(key=lambda j: -math.prod(j[2]))  # big first: better balance
    if workers <= 1:
        for job in jobs:
            _write_tensor(job)
        return
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for _ in pool.imap_unordered(_write_tensor, jobs, chunksize=1):
            pass


# --------------------------------------------------------------------------
# FLOPs of one LoRA training step


def step_flops(cfg: dict, predicted_tokens: int | None = None) -> dict:
    """Model FLOPs of one training step (forward, backward, no optimizer),
    counting multiply-adds as 2 and nothing else (norms, activations,
    softmax, AdamW are left out, as usual for MFU):

      frozen linear W [out, in] on T tokens: forward 2*in*out*T, backward
        only the input gradient 2*in*out*T (a frozen weight gets no weight
        gradient) -- except the patch embedding, which is the first op and
        so needs no backward at all;
      LoRA (A [r, in], B [out, r]) on T tokens: forward 2*r*(in+out)*T,
        backward input gradient 2*r*(in+out)*T and weight gradients
        dA, dB 2*r*(in+out)*T: 6*r*(in+out)*T;
      attention (no weights): forward QK^T and PV 4*Tq*Tkv*d per layer
        (d = heads*head_dim), backward twice that; causal attention
        counts half the (Tq, Tkv) pairs (the language tower);
      lm_head + loss: only positions with a label (shifted) need logits:
        forward 2*h*V and input gradient 2*h*V per predicted token.
    """
    b, s, n_img = cfg["batch"], cfg["seq"], image_tokens(cfg)
    vh, th = cfg["vision_hidden"], cfg["text_hidden"]
    r = cfg["r"]
    if predicted_tokens is None:
        predicted_tokens = b * (s - 1 - n_img)  # labels shift by one: the last has no target
    tv, tt = b * n_img, b * s
    lora = {m: (i, o) for m, i, o in lora_targets(cfg)}
    frozen = lora_fl = 0.0
    patch = 2.0 * 3 * cfg["patch_size"] ** 2 * vh * tv
    for name, shape, _ in param_specs(cfg):
        module, leaf = name.rsplit(".", 1)
        if leaf != "weight" or len(shape) != 2 or "embed" in module or module == "lm_head":
            continue
        t = tv if module.startswith("model.vision_tower.") or "projector" in module else tt
        fin, fout = shape[1], shape[0]
        frozen += 4.0 * fin * fout * t
        if module in lora:
            lora_fl += 6.0 * r * (fin + fout) * t
    attn_v = 3 * 4.0 * n_img * n_img * vh * cfg["vision_layers"] * b
    attn_t = 3 * 4.0 * s * s * th * cfg["text_layers"] * b / 2
    head = 4.0 * th * cfg["vocab"] * predicted_tokens
    total = frozen + patch + lora_fl + attn_v + attn_t + head
    return {"frozen_linear": frozen, "patch_embedding": patch, "lora": lora_fl,
            "attention_vision": attn_v, "attention_language": attn_t, "lm_head": head,
            "total": total, "predicted_tokens": predicted_tokens, "tokens": b * s}
