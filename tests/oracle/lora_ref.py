#!/usr/bin/python3
"""LoRA / MaskLoRA oracle: the loss of a whole model with low-rank adapters
on every block linear, and the adapters' gradients, by autograd in float64.

usage: lora_ref.py MODEL_DIR IN.safetensors OUT.safetensors
IN (written by tests/test_lora.c): "tokens", "targets" [B, T] (-1: not
counted), "meta" [scale, masked], optional "soft" [B*T, V] (the loss is
then the cross-entropy to these probabilities), and for each adapted linear
(canonical name, e.g. layers.0.q.weight) "A.<name>" [r, in], "B.<name>"
[out, r], "M.<name>" [out, in] (0/1).
The effective weight is W0 + s (B A), or with masked W0 + s (M o (B A)):
written from the definitions, not from freelunch's kernels.
OUT: "loss" [1], "gA.<name>", "gB.<name>"."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ref as R  # noqa: E402

mdir, inp, outp = sys.argv[1:4]
cfg, sd = R.load_hf(mdir)
t = R.st_read(inp)
scale, masked = float(t["meta"][0]), bool(t["meta"][1] > 0.5)
hf_of = {c: (h, tr) for c, h, tr in R.canon_map(cfg)}
ad = {}
for k in t:
    if k.startswith("A."):
        name = k[2:]
        h, tr = hf_of[name]
        assert tr == "id", "adapters are checked on llama-layout linears only"
        ad[h] = (name, t["A." + name].clone().requires_grad_(True), t["B." + name].clone().requires_grad_(True),
                 t["M." + name])


class LoraRef(R.Ref):
    def W(self, name):
        w = super().W(name)
        if name not in ad:
            return w
        _, A, B, M = ad[name]
        upd = B @ A
        return w + scale * (M * upd if masked else upd)


tok = t["tokens"].round().long()
tg = t["targets"].round().long()
logits = LoraRef(cfg, sd).logits(tok)
V = logits.shape[-1]
lg = logits.reshape(-1, V)
if "soft" in t:
    keep = tg.reshape(-1) >= 0
    p = t["soft"].reshape(-1, V)
    loss = -(p[keep] * torch.log_softmax(lg[keep], -1)).sum(-1).mean()
else:
    loss = R.ce_loss(logits, tg)
loss.backward()
out = {"loss": loss.detach().reshape(1)}
for h, (name, A, B, M) in ad.items():
    out["gA." + name] = A.grad
    out["gB." + name] = B.grad
R.st_write(outp, out)
