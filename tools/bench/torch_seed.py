#!/usr/bin/env python3
"""PyTorch twin of `pnpm bench seed`, for side-by-side numbers on the same GPU.

The same model (y = head(LayerNorm(x + attention(x))), MSE to a fixed random target, Adam 1e-3, f32), the same
variants and option sets, one warm-up step, then --steps timed steps reading loss.item() every step as the
webattn command does. "flash" forces SDPBackend.EFFICIENT_ATTENTION: PyTorch's flash kernel has no f32 path.

Usage: python3 tools/bench/torch_seed.py [--steps 100] [--batch 32] [--seq 500] [--embed 128] [--heads 8] [--json FILE]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

OPTION_SETS = {
    "none": dict(padding=False, band=False, dropout=0.0, causal=False),
    "key-padding": dict(padding=True, band=False, dropout=0.0, causal=False),
    "bool-mask": dict(padding=False, band=True, dropout=0.0, causal=False),
    "dropout": dict(padding=False, band=False, dropout=0.1, causal=False),
    "mask+dropout": dict(padding=True, band=False, dropout=0.1, causal=False),
    "causal": dict(padding=False, band=False, dropout=0.0, causal=True),
}


class Custom(nn.Module):
    def __init__(self, e, h, naive, backend=None):
        super().__init__()
        self.q, self.k, self.v, self.out = (nn.Linear(e, e) for _ in range(4))
        self.h, self.naive, self.backend = h, naive, backend

    def forward(self, x, opt, masks):
        b, l, e = x.shape
        q, k, v = (layer(x).view(b, l, self.h, e // self.h).transpose(1, 2) for layer in (self.q, self.k, self.v))
        p = opt["dropout"] if self.training else 0.0
        if self.naive:
            scores = q @ k.transpose(-1, -2) / (e // self.h) ** 0.5
            mask = masks["pad_add"] if opt["padding"] else masks["band_add"] if opt["band"] else masks["causal_add"] if opt["causal"] else None
            if mask is not None:
                scores = scores + mask
            o = F.dropout(scores.softmax(-1), p) @ v
        else:
            mask = masks["pad_allow"] if opt["padding"] else masks["band_allow"] if opt["band"] else None
            call = lambda: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, is_causal=opt["causal"])
            if self.backend is None:
                o = call()
            else:
                with sdpa_kernel([self.backend]):
                    o = call()
        return self.out(o.transpose(1, 2).reshape(b, l, e))


class Layer(nn.Module):
    def __init__(self, e, h, dropout):
        super().__init__()
        self.mha = nn.MultiheadAttention(e, h, dropout=dropout, batch_first=True)

    def forward(self, x, opt, masks):
        l = x.shape[1]
        attn_mask = masks["band_masked"] if opt["band"] else (masks["causal_masked"] if opt["causal"] else None)
        return self.mha(x, x, x, key_padding_mask=masks["pad_masked"] if opt["padding"] else None, attn_mask=attn_mask,
                        need_weights=False, is_causal=opt["causal"])[0]


class Model(nn.Module):
    def __init__(self, attention, e):
        super().__init__()
        self.attention, self.norm, self.head = attention, nn.LayerNorm(e), nn.Linear(e, e)

    def forward(self, x, opt, masks):
        return self.head(self.norm(x + self.attention(x, opt, masks)))


def masks_for(b, l, device):
    g = torch.Generator().manual_seed(1234)
    lengths = torch.randint((l + 1) // 2, l + 1, (b,), generator=g)
    pad = (torch.arange(l)[None, :] >= lengths[:, None]).to(device)
    i = torch.arange(l)
    band = ((i[:, None] - i[None, :]).abs() > max(1, l // 8)).to(device)
    causal = torch.triu(torch.ones(l, l, dtype=torch.bool), 1).to(device)
    add = lambda m: torch.zeros(m.shape, device=device).masked_fill(m, float("-inf"))
    return {"pad_masked": pad, "pad_allow": ~pad[:, None, None, :], "pad_add": add(pad)[:, None, None, :],
            "band_masked": band, "band_allow": ~band, "band_add": add(band), "causal_masked": causal, "causal_add": add(causal)}


def main():
    ap = argparse.ArgumentParser()
    for name, default in [("steps", 100), ("batch", 32), ("seq", 500), ("embed", 128), ("heads", 8)]:
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--json")
    a = ap.parse_args()
    dev = "cuda"
    torch.manual_seed(0)
    x = torch.randn(a.batch, a.seq, a.embed, device=dev)
    target = torch.randn(a.batch, a.seq, a.embed, device=dev)
    masks = masks_for(a.batch, a.seq, dev)
    rows = []
    print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}: batch {a.batch}, seq {a.seq}, embed {a.embed}, heads {a.heads}, {a.steps} steps, f32, Adam")
    for opt_name, opt in OPTION_SETS.items():
        naive_ms = None
        for variant in ["naive", "mha", "sdpa", "flash"]:
            torch.manual_seed(1)
            attention = {
                "naive": lambda: Custom(a.embed, a.heads, True),
                "mha": lambda: Layer(a.embed, a.heads, opt["dropout"]),
                "sdpa": lambda: Custom(a.embed, a.heads, False),
                "flash": lambda: Custom(a.embed, a.heads, False, SDPBackend.EFFICIENT_ATTENTION),
            }[variant]()
            model = Model(attention, a.embed).to(dev)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

            def step():
                optimizer.zero_grad()
                loss = F.mse_loss(model(x, opt, masks), target)
                loss.backward()
                optimizer.step()
                return loss.item()

            try:
                step()
                start = time.perf_counter()
                for _ in range(a.steps):
                    last = step()
                ms = (time.perf_counter() - start) * 1000 / a.steps
                error = None
            except Exception as exc:  # e.g. a forced backend that cannot run these options
                ms, last, error = None, None, str(exc).splitlines()[0][:100]
            if variant == "naive":
                naive_ms = ms
            ratio = naive_ms / ms if naive_ms and ms else None
            rows.append({"options": opt_name, "variant": variant, "msPerStep": ms, "speedupVsNaive": ratio, "lastLoss": last, "error": error})
            print(f"{opt_name:13} {variant:6} {'failed' if ms is None else f'{ms:8.2f} ms/step'}  {'' if ratio is None else f'{ratio:.2f}x vs naive'} {error or ''}")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump({"torch": torch.__version__, "device": torch.cuda.get_device_name(), "config": vars(a), "results": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
