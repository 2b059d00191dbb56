#!/usr/bin/env python3
"""Regenerate the tiny vision-language-model ONNX test fixtures.

Command (from the repository root):

    /work/venv/bin/python test/models/generate.py [--out test/models] [--only NAME ...]

The Python packages needed are pinned in test/models/requirements.txt
(`pip install -r test/models/requirements.txt`).

Nothing is downloaded: every model is built from a transformers *config* class
with random weights drawn from a fixed seed.  For every fixture a folder
<out>/<name>/ is written with

    model.onnx           the exported graph, all weights inside (no external data)
    inputs.safetensors   pixel_values, input_ids, attention_mask as fed to the export
    logits.safetensors   logits (float32) from the PyTorch model on those inputs
    modules.json         every nn.Linear (and the vision patch-embedding conv) of the
                         HF model, labelled with tower / block / layer
    fixture.json         model class, exporter, opset, versions, shapes, HF config,
                         onnxruntime cross-check, ONNX op histogram, initializer list

and <out>/ops_summary.txt holds the union of ONNX ops over all fixtures.

Every graph has exactly the inputs (pixel_values: float32, input_ids: int64,
attention_mask: int64), in that order, and one output `logits` (float32).
All shapes are static.  The output is byte-for-byte reproducible with the
pinned versions (checked by running the script twice); it takes ~15 s on 2 CPUs.
See test/models/README.md for what each fixture is.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import sys
import warnings

# transformers' torch_compilable_check() emits aten._is_all_true asserts into
# torch.export graphs, which the dynamo ONNX exporter cannot translate; they
# are runtime sanity checks only (placeholder-token count == feature count).
os.environ.setdefault("TRANSFORMERS_DISABLE_TORCH_CHECK", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import onnx
import onnxruntime as ort
import safetensors.torch
import torch
import torch.nn as nn
import transformers

SEED = 0
INIT_STD = 0.05


# --------------------------------------------------------------------------
# helpers


def seed_everything(seed: int = SEED) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


@torch.no_grad()
def init_weights(model: nn.Module, std: float = INIT_STD) -> None:
    """Deterministic, non-trivial re-initialisation of every parameter.

    Weights of matmul-like layers and embeddings ~ N(0, std); biases ~ N(0, std);
    norm weights ~ 1 + N(0, std) and norm biases ~ N(0, std), so nothing is
    exactly 0 or 1 and the logits are far from 0.
    """
    gen = torch.Generator().manual_seed(SEED)
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=gen, dtype=torch.float32) * std
        leaf = name.rsplit(".", 1)[-1]
        owner = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
        is_norm = "norm" in type(owner).__name__.lower() or "norm" in name.rsplit(".", 1)[0].rsplit(".", 1)[-1]
        if is_norm and leaf == "weight":
            p.copy_(1.0 + noise)
        elif p.ndim >= 2 or leaf in ("bias",):
            p.copy_(noise)
        else:  # e.g. CLIP class_embedding (1-D)
            p.copy_(noise)


def layer_index(path: str) -> int | None:
    m = re.search(r"\.(?:layers|layer|blocks)\.(\d+)\.", path)
    return int(m.group(1)) if m else None


def collect_modules(model: nn.Module, classify) -> list[dict]:
    out = []
    for path, mod in model.named_modules():
        if isinstance(mod, nn.Linear):
            entry = {
                "module": path,
                "kind": "linear",
                "in_features": mod.in_features,
                "out_features": mod.out_features,
                "bias": mod.bias is not None,
            }
        elif isinstance(mod, (nn.Conv2d, nn.Conv3d)):
            entry = {
                "module": path,
                "kind": "conv",
                # for a conv: in_features/out_features are the channel counts;
                # the flattened GEMM view has in_channels*prod(kernel_size) inputs
                "in_features": mod.in_channels,
                "out_features": mod.out_channels,
                "bias": mod.bias is not None,
                "kernel_size": list(mod.kernel_size),
                "stride": list(mod.stride),
            }
        else:
            continue
        tower, block = classify(path)
        entry["tower"] = tower
        entry["block"] = block
        entry["layer"] = layer_index(path) if tower in ("vision", "language") and block != "other" else None
        out.append(entry)
    return out


def _leaf(path: str) -> str:
    return path.rsplit(".", 1)[-1]


VISION_ATTN = {"q_proj", "k_proj", "v_proj", "out_proj", "o_proj", "qkv", "proj"}
VISION_MLP = {"fc1", "fc2", "gate_proj", "up_proj", "down_proj"}
TEXT_ATTN = {"q_proj", "k_proj", "v_proj", "o_proj"}
TEXT_MLP = {"gate_proj", "up_proj", "down_proj"}


def make_classifier(vision_prefix: str, projector_prefix: str, language_prefix: str):
    def classify(path: str):
        leaf = _leaf(path)
        if path.startswith(projector_prefix):
            return "projector", "other"
        if path.startswith(vision_prefix):
            if ".attn." in path or ".self_attn." in path or ".attention." in path:
                if leaf in VISION_ATTN:
                    return "vision", "attention"
            if ".mlp." in path and leaf in VISION_MLP:
                return "vision", "mlp"
            return "vision", "other"
        if path.startswith(language_prefix):
            if ".self_attn." in path and leaf in TEXT_ATTN:
                return "language", "attention"
            if ".mlp." in path and leaf in TEXT_MLP:
                return "language", "mlp"
            return "language", "other"
        return "other", "other"

    return classify


def attach_onnx_names(modules: list[dict], model: nn.Module, onnx_model: onnx.ModelProto) -> None:
    """For each module, find the ONNX initializer(s) holding its weight/bias.

    An initializer matches when it has the parameter's FQN, or (the TorchScript
    exporter's constant folding renames MatMul weights to onnx::MatMul_NNN and
    stores them transposed, [in, out]) when its values equal the parameter or
    its transpose bit for bit.  null means the parameter is not in the graph
    (dead code pruned by the exporter, e.g. LLaVA's unused last vision layer).
    """
    by_name = {}
    by_shape: dict = collections.defaultdict(list)
    for init in onnx_model.graph.initializer:
        arr = onnx.numpy_helper.to_array(init)
        by_name[init.name] = arr
        by_shape[arr.shape].append((init.name, arr))

    def find(t: torch.Tensor):
        a = t.detach().cpu().numpy()
        hits = []
        for name, arr in by_shape.get(a.shape, []):
            if np.array_equal(arr, a):
                hits.append((name, False))
        if a.ndim == 2:
            for name, arr in by_shape.get(a.T.shape, []):
                if np.array_equal(arr, a.T):
                    hits.append((name, True))
        return hits

    for entry in modules:
        mod = model.get_submodule(entry["module"])
        fqn = entry["module"] + ".weight"
        if fqn in by_name:
            entry["onnx_weight"], entry["onnx_weight_transposed"] = fqn, False
        else:
            hits = find(mod.weight)
            entry["onnx_weight"] = hits[0][0] if hits else None
            entry["onnx_weight_transposed"] = hits[0][1] if hits else None
            if len(hits) > 1:
                entry["onnx_weight_all_matches"] = [h[0] for h in hits]
        if mod.bias is not None:
            bfqn = entry["module"] + ".bias"
            if bfqn in by_name:
                entry["onnx_bias"] = bfqn
            else:
                hits = [h for h in find(mod.bias) if not h[1]]
                entry["onnx_bias"] = hits[0][0] if hits else None
        entry["in_graph"] = entry["onnx_weight"] is not None


def onnx_op_histogram(model: onnx.ModelProto) -> list[dict]:
    counts: collections.Counter = collections.Counter()

    def walk(graph):
        for node in graph.node:
            counts[(node.domain or "ai.onnx", node.op_type)] += 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    walk(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    for g in attr.graphs:
                        walk(g)

    walk(model.graph)
    for fn in model.functions:  # local functions (should be none)
        for node in fn.node:
            counts[(node.domain or "ai.onnx", node.op_type)] += 1
    return [{"domain": d, "op_type": o, "count": c} for (d, o), c in sorted(counts.items())]


def onnx_attr_summary(model: onnx.ModelProto) -> dict[str, list[str]]:
    """op_type -> sorted distinct 'attr=value' strings (tensor/graph attributes by type only)."""
    seen: dict = collections.defaultdict(set)
    for node in model.graph.node:
        key = f"{node.domain or 'ai.onnx'}::{node.op_type}"
        seen[key]
        for a in node.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                t = a.t
                val = f"tensor<{onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name}{list(t.dims)}>"
                seen[key].add(f"{a.name}={val}" if node.op_type != "Constant" else f"{a.name}=tensor<{onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name}>")
            elif a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                seen[key].add(f"{a.name}=<graph>")
            else:
                v = onnx.helper.get_attribute_value(a)
                if isinstance(v, bytes):
                    v = v.decode()
                if a.name == "to":
                    v = onnx.helper.tensor_dtype_to_np_dtype(v).name
                seen[key].add(f"{a.name}={v}")
    return {k: sorted(v) for k, v in sorted(seen.items())}


def non_static_values(model: onnx.ModelProto) -> list[dict]:
    """Values whose shape ONNX shape inference (with data propagation) cannot pin down."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    out = []
    for v in inferred.graph.value_info:
        t = v.type.tensor_type
        if not t.HasField("shape") or any(not d.HasField("dim_value") for d in t.shape.dim):
            out.append(value_info_desc(v))
    return out


def value_info_desc(vi: onnx.ValueInfoProto) -> dict:
    t = vi.type.tensor_type
    dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
    return {"name": vi.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": dims}


def initializer_list(model: onnx.ModelProto, param_names: set[str]) -> list[dict]:
    out = []
    for init in model.graph.initializer:
        out.append(
            {
                "name": init.name,
                "dtype": onnx.helper.tensor_dtype_to_np_dtype(init.data_type).name,
                "shape": list(init.dims),
                "is_parameter_fqn": init.name in param_names,
            }
        )
    return out


def export_onnx(wrapper: nn.Module, args: tuple, path: str, exporter: str, opset: int) -> None:
    names_in = ["pixel_values", "input_ids", "attention_mask"]
    if exporter == "torchscript":
        torch.onnx.export(
            wrapper,
            args,
            path,
            dynamo=False,
            opset_version=opset,
            input_names=names_in,
            output_names=["logits"],
            do_constant_folding=True,  # exporter default
            export_params=True,
        )
        m = onnx.load(path)
        # keep it one self-contained file (the TorchScript exporter never uses
        # external data below 2 GB anyway)
        onnx.save_model(m, path, save_as_external_data=False)
    elif exporter == "dynamo":
        prog = torch.onnx.export(
            wrapper,
            args,
            dynamo=True,
            opset_version=opset,
            input_names=names_in,
            output_names=["logits"],
            external_data=False,
            optimize=DYNAMO_OPTIMIZE,
        )
        # Node metadata is kept (namespace / name_scopes / class_hierarchy /
        # fx_node map every node back to its nn.Module), except the Python
        # stack traces: they hold absolute paths of this machine and are ~2/3
        # of the file.
        model = prog.model_proto
        for node in model.graph.node:
            keep = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
            del node.metadata_props[:]
            node.metadata_props.extend(keep)
        onnx.save_model(model, path, save_as_external_data=False)
    else:
        raise ValueError(exporter)


DYNAMO_OPTIMIZE = False


def logits_only(model: nn.Module, **fixed_kwargs) -> nn.Module:
    """Turn the HF model in place into forward(pixel_values, input_ids, attention_mask) -> logits.

    The class of `model` is swapped for a subclass whose forward calls the stock
    forward with use_cache=False (plus `fixed_kwargs`, e.g. Qwen2-VL's
    image_grid_thw closed over as a constant) and returns only `.logits`.  No
    wrapper module is put around the model, so the parameter names the exporters
    see are exactly the HF ones (named_parameters() of the HF model).
    """
    base = type(model)

    def forward(self, pixel_values, input_ids, attention_mask):
        out = base.forward(
            self,
            pixel_values=pixel_values,
            input_ids=input_ids,
            attention_mask=attention_mask,
            use_cache=False,
            return_dict=True,
            **fixed_kwargs,
        )
        return out.logits

    model.__class__ = type(base.__name__ + "LogitsOnly", (base,), {"forward": forward})
    model._stock_class_name = base.__name__
    return model


# --------------------------------------------------------------------------
# model builders.  Each returns (hf_model, wrapper, inputs dict, classify)


def text_config_kwargs(vocab: int, pad: int) -> dict:
    return dict(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,  # GQA, as in the real models
        max_position_embeddings=256,
        rms_norm_eps=1e-6,
        tie_word_embeddings=False,
        pad_token_id=pad,
        bos_token_id=1,
        eos_token_id=2,
    )


def random_text(gen: torch.Generator, batch: int, seq: int, vocab_lo: int, vocab_hi: int) -> torch.Tensor:
    return torch.randint(vocab_lo, vocab_hi, (batch, seq), generator=gen, dtype=torch.int64)


def build_llava():
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    vocab, pad, image_token = 320, 0, 300
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        projection_dim=32,
        # 3 layers: with vision_feature_layer=-2 (as in real LLaVA) the last
        # layer (and post_layernorm) is dead code and absent from the graph
        num_hidden_layers=3,
        num_attention_heads=2,
        num_channels=3,
        image_size=32,
        patch_size=8,
        hidden_act="quick_gelu",
        layer_norm_eps=1e-5,
    )
    text = LlamaConfig(**text_config_kwargs(vocab, pad))
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_seq_length=16,
    )
    config._attn_implementation = "eager"
    seed_everything()
    model = LlavaForConditionalGeneration(config)
    model.set_attn_implementation("eager")
    init_weights(model)
    model.eval()

    n_img = (32 // 8) ** 2  # 16 image tokens (CLS dropped by "default" strategy)
    batch, seq = 2, 24
    gen = torch.Generator().manual_seed(SEED + 1)
    pixel_values = torch.randn(batch, 3, 32, 32, generator=gen)
    ids = random_text(gen, batch, seq, 3, 290)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    # row 0: <bos> <image>*16 text*7 ; row 1: left padded by 3
    ids[0, 0] = 1
    ids[0, 1 : 1 + n_img] = image_token
    ids[1, :3] = pad
    mask[1, :3] = 0
    ids[1, 3] = 1
    ids[1, 4 : 4 + n_img] = image_token
    inputs = {"pixel_values": pixel_values, "input_ids": ids, "attention_mask": mask}
    classify = make_classifier("model.vision_tower.", "model.multi_modal_projector.", "model.language_model.")
    return model, inputs, classify


def _idefics3_static_vision(inner: nn.Module) -> None:
    """Static-shape stand-in for Idefics3Model.get_image_features.

    The stock version drops all-zero "padding" images with a boolean index
    (pixel_values[real_images_inds]) and then unfolds a pixel mask of that
    data-dependent size, which the TorchScript exporter rejects ("Unsupported:
    ONNX export of operator Unfold, input size not accessible").  Here every
    image is real and unpadded (as in the fixture's inputs), so the pixel mask
    is all ones and the patch mask is a constant of static shape; the vision
    tower, connector and merge are the stock modules, and the result is the
    same as the stock method's for such inputs (checked in build_idefics3).
    """
    base = type(inner)

    def get_image_features(self, pixel_values, pixel_attention_mask=None, **kwargs):
        batch_size, num_images, num_channels, height, width = pixel_values.shape
        pixel_values = pixel_values.reshape(batch_size * num_images, num_channels, height, width)
        patch = self.config.vision_config.patch_size
        patch_attention_mask = torch.ones(
            (batch_size * num_images, height // patch, width // patch), dtype=torch.bool, device=pixel_values.device
        )
        kwargs["return_dict"] = True
        image_outputs = self.vision_model(
            pixel_values=pixel_values, patch_attention_mask=patch_attention_mask, **kwargs
        )
        image_features = self.connector(image_outputs.last_hidden_state)
        image_outputs.pooler_output = image_features.reshape(-1, image_features.shape[-1])
        return image_outputs

    inner.__class__ = type(base.__name__ + "Static", (base,), {"get_image_features": get_image_features})

    # The stock Idefics3VisionEmbeddings derives the position ids from the patch
    # mask with bucketize + where(mask, pos_ids, zeros); the TorchScript
    # exporter types that Where as float (Cast to=FLOAT before it), so the
    # position-embedding Gather gets float indices and the model is invalid.
    # For full, unpadded images the stock computation yields 0..num_patches-1,
    # which is what this stand-in uses.
    emb = inner.vision_model.embeddings
    emb_base = type(emb)

    def embeddings_forward(self, pixel_values, patch_attention_mask):
        patch_embeds = self.patch_embedding(pixel_values)
        embeddings = patch_embeds.flatten(2).transpose(1, 2)
        position_ids = torch.arange(embeddings.shape[1], device=embeddings.device).unsqueeze(0)
        return embeddings + self.position_embedding(position_ids)

    emb.__class__ = type(emb_base.__name__ + "Static", (emb_base,), {"forward": embeddings_forward})


def build_idefics3():
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3VisionConfig, LlamaConfig

    vocab, pad, image_token = 320, 0, 300
    vision = Idefics3VisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_channels=3,
        image_size=32,
        patch_size=8,
        hidden_act="gelu_pytorch_tanh",
        layer_norm_eps=1e-6,
    )
    text = LlamaConfig(**text_config_kwargs(vocab, pad))
    config = Idefics3Config(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_id=image_token,
        scale_factor=2,
        pad_token_id=pad,
        tie_word_embeddings=False,
    )
    config._attn_implementation = "eager"
    seed_everything()
    model = Idefics3ForConditionalGeneration(config)
    model.set_attn_implementation("eager")
    init_weights(model)
    model.eval()

    n_img = (32 // 8) ** 2 // (2 * 2)  # 16 patches, pixel shuffle x2 -> 4 tokens per image
    batch, seq, n_images = 1, 20, 2
    gen = torch.Generator().manual_seed(SEED + 2)
    pixel_values = torch.randn(batch, n_images, 3, 32, 32, generator=gen)
    ids = random_text(gen, batch, seq, 3, 290)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    ids[0, 0] = 1
    ids[0, 2 : 2 + n_img] = image_token
    ids[0, 8 : 8 + n_img] = image_token
    inputs = {"pixel_values": pixel_values, "input_ids": ids, "attention_mask": mask}
    classify = make_classifier("model.vision_model.", "model.connector.", "model.text_model.")
    with torch.no_grad():
        stock = model(**inputs, use_cache=False).logits
    _idefics3_static_vision(model.model)
    with torch.no_grad():
        static = model(**inputs, use_cache=False).logits
    assert torch.equal(stock, static), "static get_image_features differs from the stock one"
    return model, inputs, classify


def build_qwen2vl():
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

    vocab, pad = 320, 0
    image_token, vision_start, vision_end, video_token = 300, 301, 302, 303
    text = text_config_kwargs(vocab, pad)
    text.update(rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]})  # head_dim 16 -> 8 rotary freqs
    vision = dict(
        depth=2,
        embed_dim=32,
        hidden_size=64,  # merger output = text hidden size
        hidden_act="quick_gelu",
        mlp_ratio=2,
        num_heads=2,
        in_channels=3,
        patch_size=8,
        spatial_merge_size=2,
        temporal_patch_size=2,
    )
    config = Qwen2VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=image_token,
        video_token_id=video_token,
        vision_start_token_id=vision_start,
        vision_end_token_id=vision_end,
        pad_token_id=pad,
        tie_word_embeddings=False,
    )
    config._attn_implementation = "eager"
    seed_everything()
    model = Qwen2VLForConditionalGeneration(config)
    model.set_attn_implementation("eager")
    init_weights(model)
    model.eval()

    # one 32x32 image: 4x4 patches of 8 px (temporal patch 2) -> merged 2x2 -> 4 tokens
    grid_thw = torch.tensor([[1, 4, 4]], dtype=torch.int64)
    n_patches = 16
    patch_dim = 3 * 2 * 8 * 8
    n_img = n_patches // 4
    batch, seq = 1, 16
    gen = torch.Generator().manual_seed(SEED + 3)
    pixel_values = torch.randn(n_patches, patch_dim, generator=gen)
    ids = random_text(gen, batch, seq, 3, 290)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    ids[0, 0] = 1
    ids[0, 2] = vision_start
    ids[0, 3 : 3 + n_img] = image_token
    ids[0, 3 + n_img] = vision_end
    inputs = {"pixel_values": pixel_values, "input_ids": ids, "attention_mask": mask}
    classify = make_classifier("model.visual.", "model.visual.merger.", "model.language_model.")
    # Qwen2-VL needs image_grid_thw and (transformers 5) mm_token_type_ids to
    # compute the 3-D M-RoPE position ids with data-dependent Python loops.
    # The graph only takes the three standard inputs, so the grid and the
    # position ids for this prompt layout are computed here and closed over as
    # constants (they are valid for any prompt with the image tokens at the
    # same positions).
    mm_token_type_ids = (ids == image_token).to(torch.int32)
    with torch.no_grad():
        stock = model(**inputs, image_grid_thw=grid_thw, mm_token_type_ids=mm_token_type_ids, use_cache=False).logits
        position_ids, _ = model.model.get_rope_index(
            ids, mm_token_type_ids=mm_token_type_ids, image_grid_thw=grid_thw, attention_mask=mask
        )
    model.model.rope_deltas = None
    logits_only(model, image_grid_thw=grid_thw, position_ids=position_ids)
    with torch.no_grad():
        mine = model(*inputs.values())
    assert torch.equal(stock, mine), "closed-over grid/position ids change the logits"
    return model, inputs, classify


def build_qwen2_5_vl():
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    vocab, pad = 320, 0
    image_token, vision_start, vision_end, video_token = 300, 301, 302, 303
    text = text_config_kwargs(vocab, pad)
    text.update(rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]})  # head_dim 16 -> 8 rotary freqs
    vision = dict(
        depth=2,
        hidden_size=32,
        intermediate_size=64,  # gated SiLU MLP (gate/up/down_proj)
        out_hidden_size=64,  # merger output = text hidden size
        hidden_act="silu",
        num_heads=2,
        in_channels=3,
        patch_size=8,
        spatial_merge_size=2,
        temporal_patch_size=2,
        # window attention: a 16 px window = one merged 2x2 patch group, so block 0
        # attends within windows (window_index / reverse gather) and block 1 globally
        window_size=16,
        fullatt_block_indexes=[1],
    )
    config = Qwen2_5_VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=image_token,
        video_token_id=video_token,
        vision_start_token_id=vision_start,
        vision_end_token_id=vision_end,
        pad_token_id=pad,
        tie_word_embeddings=False,
    )
    config._attn_implementation = "eager"
    seed_everything()
    model = Qwen2_5_VLForConditionalGeneration(config)
    model.set_attn_implementation("eager")
    init_weights(model)
    model.eval()

    # one 32x32 image: 4x4 patches of 8 px (temporal patch 2) -> merged 2x2 -> 4 tokens
    grid_thw = torch.tensor([[1, 4, 4]], dtype=torch.int64)
    n_patches = 16
    patch_dim = 3 * 2 * 8 * 8
    n_img = n_patches // 4
    batch, seq = 1, 16
    gen = torch.Generator().manual_seed(SEED + 4)
    pixel_values = torch.randn(n_patches, patch_dim, generator=gen)
    ids = random_text(gen, batch, seq, 3, 290)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    ids[0, 0] = 1
    ids[0, 2] = vision_start
    ids[0, 3 : 3 + n_img] = image_token
    ids[0, 3 + n_img] = vision_end
    inputs = {"pixel_values": pixel_values, "input_ids": ids, "attention_mask": mask}
    classify = make_classifier("model.visual.", "model.visual.merger.", "model.language_model.")
    # As for Qwen2-VL: image_grid_thw and the M-RoPE position ids of this prompt
    # layout are closed over as constants.
    mm_token_type_ids = (ids == image_token).to(torch.int32)
    with torch.no_grad():
        stock = model(**inputs, image_grid_thw=grid_thw, mm_token_type_ids=mm_token_type_ids, use_cache=False).logits
        position_ids, _ = model.model.get_rope_index(
            ids, mm_token_type_ids=mm_token_type_ids, image_grid_thw=grid_thw, attention_mask=mask
        )
    model.model.rope_deltas = None
    logits_only(model, image_grid_thw=grid_thw, position_ids=position_ids)
    with torch.no_grad():
        mine = model(*inputs.values())
    assert torch.equal(stock, mine), "closed-over grid/position ids change the logits"
    return model, inputs, classify


def build_gemma3():
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, Gemma3TextConfig, SiglipVisionConfig

    vocab, pad, image_token, boi, eoi = 320, 0, 300, 301, 302
    vision = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_channels=3,
        image_size=32,
        patch_size=8,
        hidden_act="gelu_pytorch_tanh",
        layer_norm_eps=1e-6,
    )
    text = text_config_kwargs(vocab, pad)
    text.pop("rms_norm_eps")
    text.update(
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=8,  # layer 0 local (sliding window 8), layer 1 global, as Gemma3 interleaves them
        layer_types=["sliding_attention", "full_attention"],
        # tied, as in the real Gemma3 (untied, the dynamo graph would exceed 1.5 MB)
        tie_word_embeddings=True,
    )
    config = Gemma3Config(
        vision_config=vision.to_dict(),
        text_config=Gemma3TextConfig(**text).to_dict(),
        mm_tokens_per_image=4,  # 4x4 patches -> AvgPool 2x2 -> 4 tokens per image
        boi_token_index=boi,
        eoi_token_index=eoi,
        image_token_index=image_token,
        pad_token_id=pad,
        tie_word_embeddings=True,
    )
    config._attn_implementation = "eager"
    seed_everything()
    model = Gemma3ForConditionalGeneration(config)
    model.set_attn_implementation("eager")
    init_weights(model)
    model.eval()

    n_img = 4
    batch, seq = 2, 20
    gen = torch.Generator().manual_seed(SEED + 5)
    pixel_values = torch.randn(batch, 3, 32, 32, generator=gen)
    ids = random_text(gen, batch, seq, 3, 290)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    # row 0: <bos> t <boi> <image>*4 <eoi> text*12 ; row 1: the same layout left-padded by 3
    ids[:, 0] = 1
    ids[:, 2] = boi
    ids[:, 3 : 3 + n_img] = image_token
    ids[:, 3 + n_img] = eoi
    ids[1] = torch.cat([torch.full((3,), pad, dtype=ids.dtype), ids[1, :-3]])
    mask[1, :3] = 0
    inputs = {"pixel_values": pixel_values, "input_ids": ids, "attention_mask": mask}
    classify = make_classifier("model.vision_tower.", "model.multi_modal_projector.", "model.language_model.")
    # Gemma3's processor returns token_type_ids = (input_ids == image token), which
    # makes the image tokens of one image attend to each other bidirectionally.
    # The graph takes only the three standard inputs, so the wrapper computes it
    # from input_ids in the graph (valid for any prompt, and for any row order).
    base = type(model)

    def forward(self, pixel_values, input_ids, attention_mask):
        out = base.forward(
            self,
            pixel_values=pixel_values,
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=(input_ids == image_token).long(),
            use_cache=False,
            return_dict=True,
        )
        return out.logits

    with torch.no_grad():
        stock = model(**inputs, token_type_ids=(ids == image_token).long(), use_cache=False).logits
    model.__class__ = type(base.__name__ + "LogitsOnly", (base,), {"forward": forward})
    model._stock_class_name = base.__name__
    with torch.no_grad():
        mine = model(*inputs.values())
    assert torch.equal(stock, mine), "in-graph token_type_ids change the logits"
    return model, inputs, classify


FIXTURES = {
    "llava_ts": (build_llava, "torchscript", 17),
    "llava_dynamo": (build_llava, "dynamo", 18),
    "idefics3_ts": (build_idefics3, "torchscript", 17),
    "qwen2vl_ts": (build_qwen2vl, "torchscript", 17),
    "qwen2_5_vl_ts": (build_qwen2_5_vl, "torchscript", 17),
    "gemma3_dynamo": (build_gemma3, "dynamo", 18),
}


# --------------------------------------------------------------------------


def make_fixture(name: str, out_root: str) -> dict:
    builder, exporter, opset = FIXTURES[name]
    model, inputs, classify = builder()
    if not hasattr(model, "_stock_class_name"):
        logits_only(model)
    wrapper = model
    args = (inputs["pixel_values"], inputs["input_ids"], inputs["attention_mask"])
    with torch.no_grad():
        logits = wrapper(*args).float().contiguous()
    assert torch.isfinite(logits).all(), f"{name}: non-finite torch logits"

    folder = os.path.join(out_root, name)
    os.makedirs(folder, exist_ok=True)
    onnx_path = os.path.join(folder, "model.onnx")
    for stale in os.listdir(folder):
        if stale.startswith("model.onnx"):
            os.remove(os.path.join(folder, stale))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        export_onnx(wrapper, args, onnx_path, exporter, opset)
    extra = [f for f in os.listdir(folder) if f.startswith("model.onnx") and f != "model.onnx"]
    assert not extra, f"{name}: external data files written: {extra}"

    m = onnx.load(onnx_path)
    onnx.checker.check_model(m, full_check=True)
    assert [i.name for i in m.graph.input] == ["pixel_values", "input_ids", "attention_mask"], [
        i.name for i in m.graph.input
    ]
    assert [o.name for o in m.graph.output] == ["logits"], [o.name for o in m.graph.output]

    sess_opts = ort.SessionOptions()
    sess_opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(onnx_path, sess_opts, providers=["CPUExecutionProvider"])
    ort_logits = sess.run(["logits"], {k: v.numpy() for k, v in inputs.items()})[0]
    ref = logits.numpy()
    assert ort_logits.shape == ref.shape, (ort_logits.shape, ref.shape)
    max_abs = float(np.abs(ref).max())
    max_diff = float(np.abs(ort_logits - ref).max())
    rel = max_diff / max_abs
    print(f"[{name}] logits {tuple(ref.shape)} max|logit|={max_abs:.4g} ort max diff={max_diff:.3g} (rel {rel:.3g})")
    assert rel < 1e-4, f"{name}: onnxruntime mismatch {max_diff} (rel {rel})"

    safetensors.torch.save_file({k: v.contiguous() for k, v in inputs.items()}, os.path.join(folder, "inputs.safetensors"))
    safetensors.torch.save_file({"logits": logits}, os.path.join(folder, "logits.safetensors"))

    modules = collect_modules(model, classify)
    attach_onnx_names(modules, model, m)
    with open(os.path.join(folder, "modules.json"), "w") as f:
        json.dump(modules, f, indent=1)
        f.write("\n")

    param_names = {n for n, _ in model.named_parameters()}
    info = {
        "fixture": name,
        "model_class": model._stock_class_name,
        "wrapper": "forward(pixel_values, input_ids, attention_mask) -> logits (use_cache=False, eager attention)",
        "exporter": exporter,
        "opset": opset,
        "opset_import": [{"domain": o.domain or "ai.onnx", "version": o.version} for o in m.opset_import],
        "ir_version": m.ir_version,
        "producer": f"{m.producer_name} {m.producer_version}",
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
            "onnxscript": _version("onnxscript"),
            "python": sys.version.split()[0],
        },
        "seed": SEED,
        "init_std": INIT_STD,
        "inputs": [value_info_desc(i) for i in m.graph.input],
        "outputs": [value_info_desc(o) for o in m.graph.output],
        "input_values": {k: {"dtype": str(v.dtype).replace("torch.", ""), "shape": list(v.shape)} for k, v in inputs.items()},
        "logits_shape": list(ref.shape),
        "max_abs_logit": max_abs,
        "onnxruntime_check": {
            "provider": "CPUExecutionProvider",
            "graph_optimization_level": "ORT_DISABLE_ALL",
            "max_abs_diff": max_diff,
            "max_rel_diff": rel,
            "tolerance_rel": 1e-4,
            "passed": True,
        },
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "onnx_ops": onnx_op_histogram(m),
        "onnx_op_attributes": onnx_attr_summary(m),
        "contains_control_flow": any(n.op_type in ("If", "Loop", "Scan") for n in m.graph.node),
        # all graph inputs/outputs are static; only NonZero's output (and what
        # derives from it) is truly data-dependent, the rest are shapes that
        # onnx's own inference cannot fold (Expand/Reshape of computed shapes)
        "values_with_unknown_dims_after_onnx_shape_inference": non_static_values(m),
        "local_functions": [f"{fn.domain}::{fn.name}" for fn in m.functions],
        "initializers": initializer_list(m, param_names),
        "hf_config": model.config.to_dict(),
    }
    with open(os.path.join(folder, "fixture.json"), "w") as f:
        json.dump(info, f, indent=1, sort_keys=False, default=str)
        f.write("\n")
    return info


def _version(mod: str) -> str:
    try:
        return __import__(mod).__version__
    except Exception:
        return "n/a"


def write_ops_summary(out_root: str, infos: dict[str, dict]) -> None:
    union: dict = collections.defaultdict(dict)
    opsets: dict = collections.defaultdict(set)
    for name, info in infos.items():
        for op in info["onnx_ops"]:
            union[(op["domain"], op["op_type"])][name] = op["count"]
        for o in info["opset_import"]:
            opsets[(o["domain"], o["version"])].add(name)
    names = sorted(infos)
    attrs: dict = collections.defaultdict(set)
    for info in infos.values():
        for op, vals in info.get("onnx_op_attributes", {}).items():
            attrs[op].update(vals)
    lines = [
        "# Union of ONNX ops over the fixtures in test/models (generated by generate.py)",
        "# opset imports:",
    ]
    for (dom, ver), fx in sorted(opsets.items()):
        lines.append(f"#   {dom} {ver}: {', '.join(sorted(fx))}")
    lines.append("# columns: domain op_type then node count per fixture (" + ", ".join(names) + ")")
    for (dom, op), per in sorted(union.items()):
        lines.append(f"{dom}\t{op}\t" + "\t".join(f"{n}={per.get(n, 0)}" for n in names if per.get(n, 0)))
    lines.append("")
    lines.append("# attribute values seen per op (union over fixtures)")
    for op, vals in sorted(attrs.items()):
        lines.append(f"{op}\t" + ("  ".join(sorted(vals)) if vals else "-"))
    lines.append("")
    lines.append("# no If/Loop/Scan, no custom domains, no ONNX local functions in any fixture" if not any(
        i.get("contains_control_flow") or i.get("local_functions") or any(o["domain"] != "ai.onnx" for o in i["onnx_ops"])
        for i in infos.values()) else "# WARNING: control flow / custom domains / local functions present, see fixture.json")
    with open(os.path.join(out_root, "ops_summary.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--only", nargs="*", choices=sorted(FIXTURES), help="regenerate only these fixtures")
    a = ap.parse_args()
    torch.set_num_threads(1)
    transformers.logging.set_verbosity_error()
    names = a.only or list(FIXTURES)
    for name in names:
        make_fixture(name, a.out)
    # the summary always covers every fixture present on disk
    infos = {}
    for name in FIXTURES:
        p = os.path.join(a.out, name, "fixture.json")
        if os.path.exists(p):
            with open(p) as f:
                infos[name] = json.load(f)
    write_ops_summary(a.out, infos)
    return 0


if __name__ == "__main__":
    sys.exit(main())
