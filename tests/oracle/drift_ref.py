"""Activation-drift oracle (eval/drift.h) in float64, with the independent
model of torch_ref.py: a pruned and a dense HF model directory run on the
same windows, each on its own activations; every linear's input is caught
as torch_ref's sublayers call F.linear on it (opt and llama/qwen2 call it
once per linear, in fl_layer_linears order: q, k, v, o, then fc1, fc2 or
gate, up, down).

usage: drift_ref.py PRUNED_DIR DENSE_DIR TOKENS.bin T
prints {"entries": [{"name", "accumulated", "local"?}...], "mean", "max", "out"}
as JSON, the entries in depth order, each block's output after its linears."""
import json, os, sys
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ref import load_hf, read_tokens, Ref  # noqa: E402

LIN = F.linear


def run(model, tokens):
    """Per sublayer: the (x, W, b) of each linear call, and the stream after each block."""
    calls, streams = [], []
    def catch(x, w, b=None):
        calls[-1].append((x, w, b))
        return LIN(x, w, b)
    x = model.embed(tokens)
    F.linear = catch
    try:
        for s in range(2 * model.cfg["L"]):
            calls.append([])
            x = model.sublayer(s, x)
            if s % 2:
                streams.append(x)
    finally:
        F.linear = LIN
    return calls, streams


def sq(t):
    return float((t * t).sum())


pruned_dir, dense_dir, tokf, T = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
pm, dm = [Ref(*load_hf(d)) for d in (pruned_dir, dense_dir)]
ids = read_tokens(tokf)
tokens = ids[: len(ids) // T * T].view(-1, T)
with torch.no_grad():
    pc, ps = run(pm, tokens)
    dc, ds = run(dm, tokens)
names = {6: ["q", "k", "v", "o", "fc1", "fc2"], 7: ["q", "k", "v", "o", "gate", "up", "down"]}
per_block = sum(len(pc[s]) for s in range(2))
entries, linears = [], []
for l in range(pm.cfg["L"]):
    i = 0
    for s in (2 * l, 2 * l + 1):
        for (xp, wp, bp), (xd, wd, bd) in zip(pc[s], dc[s]):
            yp, yd, ydp = LIN(xp, wp, bp), LIN(xd, wd, bd), LIN(xp, wd, bd)
            e = {"name": "layers.%d.%s" % (l, names[per_block][i]),
                 "accumulated": sq(yp - yd) / sq(yd), "local": sq(yp - ydp) / sq(ydp)}
            entries.append(e)
            linears.append(e["accumulated"])
            i += 1
    entries.append({"name": "layers.%d" % l, "accumulated": sq(ps[l] - ds[l]) / sq(ds[l])})
print(json.dumps({"entries": entries, "mean": sum(linears) / len(linears), "max": max(linears),
                  "out": entries[-1]["accumulated"]}))
