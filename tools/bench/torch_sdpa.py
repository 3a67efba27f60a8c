#!/usr/bin/env python3
"""PyTorch's own SDPA backends timed on the same GPU as webattn's kernels, for side-by-side ratios.

Usage: python3 tools/bench/torch_sdpa.py [--shape B,H,N,D ...] [--dtype f32 f16] [--options none,padding,dropout,causal]
                                          [--json FILE]
Prints one table row (and one JSON record) per shape, dtype, option set, backend and pass (forward/backward)
with ms and TFLOP/s. FLOPs: 4*B*H*N*N*D forward, 2.5x that backward, halved for causal — the same count as
`pnpm bench kernel`.
"""
import argparse
import json
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {
    "FLASH": SDPBackend.FLASH_ATTENTION,
    "EFFICIENT": SDPBackend.EFFICIENT_ATTENTION,
    "MATH": SDPBackend.MATH,
}
DTYPES = {"f32": torch.float32, "f16": torch.float16}


def time_ms(fn, warmup=3, iters=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def run_case(b, h, n, d, dtype, option, backend):
    torch.manual_seed(0)
    q, k, v = (torch.randn(b, h, n, d, device="cuda", dtype=DTYPES[dtype], requires_grad=True) for _ in range(3))
    mask = None
    dropout = 0.0
    causal = False
    if option == "padding":
        lengths = torch.randint(n // 2, n + 1, (b,), device="cuda")
        mask = (torch.arange(n, device="cuda")[None, :] < lengths[:, None])[:, None, None, :]
    elif option == "dropout":
        dropout = 0.1
    elif option == "causal":
        causal = True
    grad = torch.randn(b, h, n, d, device="cuda", dtype=DTYPES[dtype])

    def forward():
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout, is_causal=causal)

    with sdpa_kernel([BACKENDS[backend]]):
        try:
            forward_ms = time_ms(lambda: forward())
            out = forward()
            backward_ms = time_ms(lambda: torch.autograd.grad(out, (q, k, v), grad, retain_graph=True))
        except RuntimeError as error:
            return {"error": str(error).splitlines()[0][:120]}
    flops = 4 * b * h * n * n * d * (0.5 if causal else 1.0)
    return {
        "forward_ms": forward_ms,
        "backward_ms": backward_ms,
        "forward_tflops": flops / forward_ms / 1e9,
        "backward_tflops": 2.5 * flops / backward_ms / 1e9,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", action="append", help="B,H,N,D (repeatable)")
    parser.add_argument("--dtype", nargs="+", default=["f32", "f16"], choices=list(DTYPES))
    parser.add_argument("--options", default="none,padding,dropout,causal")
    parser.add_argument("--backends", default="FLASH,EFFICIENT,MATH")
    parser.add_argument("--json", help="write records to this file")
    args = parser.parse_args()
    shapes = [tuple(int(x) for x in s.split(",")) for s in (args.shape or ["1,4,1024,64", "4,16,4096,64", "32,8,500,16"])]
    records = []
    print(f"device: {torch.cuda.get_device_name()} torch {torch.__version__}")
    print(f"{'shape':>18} {'dtype':>5} {'option':>8} {'backend':>9} {'fwd ms':>9} {'fwd TF/s':>9} {'bwd ms':>9} {'bwd TF/s':>9}")
    for (b, h, n, d) in shapes:
        for dtype in args.dtype:
            for option in args.options.split(","):
                for backend in args.backends.split(","):
                    if backend == "MATH" and b * h * n * n * 4 > 8 * 2**30:
                        result = {"error": "skipped: the N x N matrix would not fit"}
                    else:
                        result = run_case(b, h, n, d, dtype, option, backend)
                    record = {"shape": [b, h, n, d], "dtype": dtype, "option": option, "backend": backend, **result}
                    records.append(record)
                    if "error" in result:
                        print(f"{str((b, h, n, d)):>18} {dtype:>5} {option:>8} {backend:>9}  unavailable: {result['error']}")
                    else:
                        print(
                            f"{str((b, h, n, d)):>18} {dtype:>5} {option:>8} {backend:>9} {result['forward_ms']:9.3f}"
                            f" {result['forward_tflops']:9.2f} {result['backward_ms']:9.3f} {result['backward_tflops']:9.2f}"
                        )
                    sys.stdout.flush()
                    torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), "torch": torch.__version__, "records": records}, f, indent=1)


if __name__ == "__main__":
    main()
