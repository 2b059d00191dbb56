#!/usr/bin/env python3
"""PyTorch + PEFT figures for the shapes vlora-bench-kernels times, measured
in the same run by scripts/gpu-check:

  * the frozen bf16 linear layer, forward + input gradient, and the same layer
    with a PEFT LoRA adapter (r=16), fp32 adapters under bf16 autocast (PEFT's
    usual mixed-precision setup) and all-bf16;
  * scaled_dot_product_attention on the flash backend, head dim 128,
    seq 4096, causal, bf16, forward and forward + backward;
  * a device-to-device copy, the bandwidth ceiling.

Times are medians of CUDA-event timings over fresh random inputs.

    gpu-torch-reference.py OUT.json
"""
import json
import statistics
import sys


def main():
    import torch
    import torch.nn.functional as F

    res = {"torch": torch.__version__}
    dev = "cuda"

    def timed(fn, warmup=3, iters=15):
        for _ in range(warmup):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(iters):
            s = torch.cuda.Event(enable_timing=True)
            e = torch.cuda.Event(enable_timing=True)
            s.record()
            fn()
            e.record()
            e.synchronize()
            times.append(s.elapsed_time(e))
        return statistics.median(times)

    n = 1 << 28  # 1 GiB of fp32
    src = torch.randn(n, device=dev)
    dst = torch.empty_like(src)
    ms = timed(lambda: dst.copy_(src))
    res["copy_GBps"] = 2 * 4 * n / (ms * 1e-3) / 1e9
    del src, dst

    try:
        import peft
        from peft import LoraConfig, get_peft_model
        res["peft"] = peft.__version__
    except Exception as exc:  # PEFT missing: frozen figures only
        get_peft_model = None
        res["peft_error"] = repr(exc)

    for m, k, n_out in [(8192, 4096, 4096), (8192, 1280, 1280)]:
        tag = f"m{m}_k{k}_n{n_out}_r16"
        x = torch.randn(m, k, device=dev, dtype=torch.bfloat16, requires_grad=True)
        gy = torch.randn(m, n_out, device=dev, dtype=torch.bfloat16)
        lin = torch.nn.Linear(k, n_out, bias=False, device=dev, dtype=torch.bfloat16)
        lin.weight.requires_grad_(False)

        def frozen():
            x.grad = None
            lin(x).backward(gy)

        frozen_ms = timed(frozen)
        res[f"torch_frozen_fwd_bwd_ms_{tag}"] = frozen_ms
        res[f"torch_frozen_tflops_{tag}"] = 4.0 * m * k * n_out / (frozen_ms * 1e-3) / 1e12
        if get_peft_model is None:
            continue
        for mode in ("fp32_adapters_autocast", "bf16"):
            model = torch.nn.Sequential(
                torch.nn.Linear(k, n_out, bias=False, device=dev, dtype=torch.bfloat16))
            model[0].weight.data.copy_(lin.weight.data)
            pm = get_peft_model(model, LoraConfig(r=16, lora_alpha=32,
                                                  target_modules=["0"],
                                                  lora_dropout=0.0))
            for name, p in pm.named_parameters():
                if p.requires_grad:
                    torch.nn.init.normal_(p, std=0.02)
                    p.data = p.data.float() if mode != "bf16" else p.data.bfloat16()

            def step():
                x.grad = None
                pm.zero_grad(set_to_none=True)
                if mode == "bf16":
                    y = pm(x)
                else:
                    with torch.autocast("cuda", dtype=torch.bfloat16):
                        y = pm(x)
                y.backward(gy)

            ms = timed(step)
            res[f"peft_{mode}_fwd_bwd_ms_{tag}"] = ms
            res[f"peft_{mode}_overhead_ratio_{tag}"] = ms / frozen_ms
        del x, gy, lin

    b, h, s, d = 1, 16, 4096, 128
    q, k_, v = (torch.randn(b, h, s, d, device=dev, dtype=torch.bfloat16,
                            requires_grad=True) for _ in range(3))
    go = torch.randn(b, h, s, d, device=dev, dtype=torch.bfloat16)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def both():
        q.grad = k_.grad = v.grad = None
        F.scaled_dot_product_attention(q, k_, v, is_causal=True).backward(go)

    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        fwd = timed(lambda: F.scaled_dot_product_attention(q, k_, v, is_causal=True))
        fb = timed(both)
    flops = 4.0 * b * h * s * s * d / 2  # causal forward
    res["sdpa_flash_hd128_s4096_causal_fwd_ms"] = fwd
    res["sdpa_flash_hd128_s4096_causal_fwd_tflops"] = flops / (fwd * 1e-3) / 1e12
    res["sdpa_flash_hd128_s4096_causal_fwd_bwd_ms"] = fb
    res["sdpa_flash_hd128_s4096_causal_fwd_bwd_tflops"] = 3.5 * flops / (fb * 1e-3) / 1e12
    return res


if __name__ == "__main__":
    try:
        result = main()
    except Exception as exc:  # keep what the caller can use: the error
        result = {"error": repr(exc)}
    json.dump(result, open(sys.argv[1], "w"), indent=1)
    print(json.dumps(result, indent=1))
