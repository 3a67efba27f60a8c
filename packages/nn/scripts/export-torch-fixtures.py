"""
Golden values for @webattn/nn's tests, computed by PyTorch (float64 on the CPU from float32-representable inputs).

Run where PyTorch is installed:  python3 packages/nn/scripts/export-torch-fixtures.py OUT_DIR
It writes OUT_DIR/torch-nn.json (layers, losses, optimizers, gradient clipping) and, for the safetensors
loader, OUT_DIR/encoder.safetensors: the state_dict of a TransformerEncoder saved exactly as a PyTorch user would
(`safetensors.torch.save_file(model.state_dict(), path)`; when the `safetensors` package is missing the same bytes
are written by `write_safetensors` below, which follows the format: u64 little-endian header length, JSON header,
raw little-endian data).
"""
import base64
import json
import struct
import sys

import torch

torch.manual_seed(1234)
OUT = sys.argv[1] if len(sys.argv) > 1 else "."


def enc(t):
    t = t.detach().cpu()
    if t.dtype == torch.bool:
        return {"shape": list(t.shape), "dtype": "bool", "b64": base64.b64encode(t.to(torch.uint8).numpy().tobytes()).decode()}
    if t.dtype in (torch.int64, torch.int32):
        return {"shape": list(t.shape), "dtype": "i32", "b64": base64.b64encode(t.to(torch.int32).numpy().tobytes()).decode()}
    if t.dtype == torch.float64:
        return {"shape": list(t.shape), "dtype": "f64", "b64": base64.b64encode(t.numpy().tobytes()).decode()}
    return {"shape": list(t.shape), "dtype": "f32", "b64": base64.b64encode(t.to(torch.float32).numpy().tobytes()).decode()}


def f32(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def state(module):
    return {k: enc(v.to(torch.float32)) for k, v in module.state_dict().items()}


def quantize(module):
    """Makes every parameter float32-representable, then float64 for the computation."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.to(torch.float32).to(torch.float64))
    return module


cases = []

# --- MultiheadAttention variants not covered by shared/fixtures ---
for name, kwargs, fwd in [
    ("mha_kdim_vdim_bias_kv_zero_attn", dict(embed_dim=24, num_heads=3, kdim=10, vdim=14, add_bias_kv=True, add_zero_attn=True, batch_first=True), dict(average_attn_weights=False)),
    ("mha_seq_first_float_masks", dict(embed_dim=16, num_heads=2, batch_first=False), dict(average_attn_weights=True)),
    ("mha_no_bias_causal", dict(embed_dim=16, num_heads=4, bias=False, batch_first=True), dict(average_attn_weights=True)),
]:
    mha = quantize(torch.nn.MultiheadAttention(**kwargs, dtype=torch.float64)).eval()
    B, L, S = 2, 5, 7
    E = kwargs["embed_dim"]
    kd = kwargs.get("kdim", E)
    vd = kwargs.get("vdim", E)
    if name == "mha_no_bias_causal":
        S = L
    bf = kwargs["batch_first"]
    q = f32(B, L, E) if bf else f32(L, B, E)
    k = f32(B, S, kd) if bf else f32(S, B, kd)
    v = f32(B, S, vd) if bf else f32(S, B, vd)
    inputs = {"query": enc(q), "key": enc(k), "value": enc(v)}
    call = dict(need_weights=True, **fwd)
    if name == "mha_kdim_vdim_bias_kv_zero_attn":
        kpm = torch.zeros(B, S, dtype=torch.bool)
        kpm[0, -2:] = True
        kpm[1, 0] = True
        call["key_padding_mask"] = kpm
        inputs["key_padding_mask"] = enc(kpm)
    if name == "mha_seq_first_float_masks":
        kpm = torch.randn(B, S, dtype=torch.float32).to(torch.float64)
        am = torch.randn(L, S, dtype=torch.float32).to(torch.float64)
        call["key_padding_mask"] = kpm
        call["attn_mask"] = am
        inputs["key_padding_mask"] = enc(kpm.float())
        inputs["attn_mask"] = enc(am.float())
    if name == "mha_no_bias_causal":
        am = torch.nn.Transformer.generate_square_subsequent_mask(L, dtype=torch.float64) != 0
        call["attn_mask"] = am
        call["is_causal"] = True
    out, w = mha(q.double(), k.double(), v.double(), **call)
    cases.append({"name": name, "op": "multihead_attention", "params": {**kwargs, **fwd}, "inputs": inputs, "state_dict": state(mha),
                  "expected": {"attn_output": enc(out), "attn_weights": enc(w)}})

# --- TransformerEncoderLayer / TransformerEncoder (dropout 0, eval) ---
for name, kwargs in [
    ("encoder_layer_post_norm_relu", dict(d_model=16, nhead=4, dim_feedforward=32, dropout=0.0, batch_first=True)),
    ("encoder_layer_pre_norm_gelu", dict(d_model=16, nhead=2, dim_feedforward=24, dropout=0.0, batch_first=True, norm_first=True, activation="gelu", layer_norm_eps=1e-6)),
]:
    layer = quantize(torch.nn.TransformerEncoderLayer(**kwargs, dtype=torch.float64)).eval()
    x = f32(2, 6, kwargs["d_model"])
    kpm = torch.zeros(2, 6, dtype=torch.bool)
    kpm[1, -2:] = True
    with torch.no_grad():
        torch.nn.init.normal_(layer.norm1.weight)
        torch.nn.init.normal_(layer.norm2.bias)
        quantize(layer)
    out = layer(x.double(), src_key_padding_mask=kpm)
    cases.append({"name": name, "op": "transformer_encoder_layer", "params": kwargs,
                  "inputs": {"src": enc(x), "src_key_padding_mask": enc(kpm)}, "state_dict": state(layer), "expected": {"output": enc(out)}})

enc_layer = torch.nn.TransformerEncoderLayer(d_model=16, nhead=4, dim_feedforward=32, dropout=0.0, batch_first=True, dtype=torch.float64)
encoder = quantize(torch.nn.TransformerEncoder(enc_layer, num_layers=2, norm=torch.nn.LayerNorm(16, dtype=torch.float64), enable_nested_tensor=False)).eval()
encoder_input = f32(2, 5, 16)
causal = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
encoder_output = encoder(encoder_input.double(), mask=causal, is_causal=True)
cases.append({"name": "encoder_two_layers_causal", "op": "transformer_encoder", "params": {"d_model": 16, "nhead": 4, "dim_feedforward": 32, "num_layers": 2, "final_norm": True},
              "inputs": {"src": enc(encoder_input)}, "state_dict": state(encoder), "expected": {"output": enc(encoder_output)}})

# --- losses ---
logits = f32(6, 5).double().requires_grad_()
target = torch.tensor([0, 4, 2, -100, 1, 3])
ce = torch.nn.functional.cross_entropy(logits, target, ignore_index=-100)
ce.backward()
ce_ls = torch.nn.functional.cross_entropy(logits.detach(), target, ignore_index=-100, label_smoothing=0.1)
pred = f32(3, 4).double().requires_grad_()
goal = f32(3, 4).double()
mse = torch.nn.functional.mse_loss(pred, goal)
mse.backward()
cases.append({"name": "losses", "op": "losses", "params": {},
              "inputs": {"logits": enc(logits), "target": enc(target), "prediction": enc(pred), "goal": enc(goal)},
              "expected": {"cross_entropy": enc(ce.reshape(1)), "cross_entropy_grad": enc(logits.grad), "cross_entropy_label_smoothing": enc(ce_ls.reshape(1)),
                           "mse": enc(mse.reshape(1)), "mse_grad": enc(pred.grad)}})

# --- optimizers: Linear(4, 3), MSE on fixed data, 4 steps each ---
x = f32(8, 4).double()
y = f32(8, 3).double()
base = quantize(torch.nn.Linear(4, 3, dtype=torch.float64))
for name, make in [
    ("sgd_momentum", lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.01)),
    ("sgd_nesterov", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.8, nesterov=True, dampening=0.0)),
    ("adam", lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.9, 0.99), eps=1e-8, weight_decay=0.01)),
    ("adamw", lambda p: torch.optim.AdamW(p, lr=0.02, weight_decay=0.1)),
]:
    model = torch.nn.Linear(4, 3, dtype=torch.float64)
    model.load_state_dict(base.state_dict())
    opt = make(model.parameters())
    steps = []
    for _ in range(4):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        steps.append({k: enc(v) for k, v in model.state_dict().items()})
    g = opt.param_groups[0]
    cases.append({"name": name, "op": "optimizer", "params": {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "params" and isinstance(v, (int, float, bool, tuple))},
                  "inputs": {"x": enc(x.float()), "y": enc(y.float())}, "state_dict": state(base), "expected": {"steps": steps}})

# --- gradient clipping ---
model = torch.nn.Linear(4, 3, dtype=torch.float64)
model.load_state_dict(base.state_dict())
torch.nn.functional.mse_loss(model(x), y).backward()
total = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=0.05)
cases.append({"name": "clip_grad_norm", "op": "clip_grad_norm", "params": {"max_norm": 0.05},
              "inputs": {"x": enc(x.float()), "y": enc(y.float())}, "state_dict": state(base),
              "expected": {"total_norm": enc(total.reshape(1)), "weight_grad": enc(model.weight.grad), "bias_grad": enc(model.bias.grad)}})

with open(f"{OUT}/torch-nn.json", "w") as fh:
    json.dump({"torch": torch.__version__, "cases": cases}, fh)

# --- safetensors: a TransformerEncoder state_dict as PyTorch users save it, plus its output on one input ---


def write_safetensors(tensors, path):
    header, blobs, offset = {}, [], 0
    names = {torch.float32: "F32", torch.float16: "F16", torch.float64: "F64", torch.bool: "BOOL", torch.int64: "I64"}
    for key in sorted(tensors):
        t = tensors[key].contiguous()
        data = t.numpy().tobytes()
        header[key] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


sd = {k: v.to(torch.float32).contiguous() for k, v in encoder.state_dict().items()}
try:
    from safetensors.torch import save_file

    save_file(sd, f"{OUT}/encoder.safetensors")
    writer = "safetensors.torch.save_file"
except ImportError:
    write_safetensors(sd, f"{OUT}/encoder.safetensors")
    writer = "write_safetensors (safetensors package not installed)"
with open(f"{OUT}/encoder-safetensors.json", "w") as fh:
    json.dump({"torch": torch.__version__, "writer": writer, "inputs": {"src": enc(encoder_input)}, "params": {"d_model": 16, "nhead": 4, "dim_feedforward": 32, "num_layers": 2, "final_norm": True, "is_causal": True},
               "expected": {"output": enc(encoder_output)}}, fh)
print("wrote", OUT, writer)
