#!/usr/bin/python3
"""Oracle for structurally pruned models (issue 15).

  struct_ref.py DENSE_DIR REMOVAL.json SMALL_DIR TOKENS.safetensors OUT.safetensors

REMOVAL.json: {"layers": [dense block kept, ...], "kv": [[kept key/value
groups] per kept block], "ch": [[kept MLP channels] per kept block]} and
optionally "comp_o" / "comp_fc2": [[d floats] per kept block], FLAP's bias
compensation, added to the attention output / MLP output projection's bias;
a model without that bias gets it (zero, plus the biases the HF config key
brings along: llama's attention_bias q/k/v/o, mlp_bias gate/up/down).
Applies that removal to the dense model's HF tensors here, independently of
freelunch (rows of q/k/v and gate/up/fc1, columns of o and down/fc2, blocks
renumbered, in HF's own layouts: GPT-2's Conv1D is [in, out]), and runs the
torch_ref forward on it ("removed"); also loads SMALL_DIR, freelunch's saved
smaller model, with torch_ref's loader, which checks every tensor has the
shape an HF model of its config.json has ("saved"). Writes both logits.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ref as R  # noqa: E402


def remove(cfg, sd, rm):
    fam, hd, G = cfg["family"], cfg["hd"], cfg["H"] // cfg["KV"]
    pre = {"gpt2": "transformer.h.%d.", "opt": "model.decoder.layers.%d.", "llama": "model.layers.%d.",
           "qwen2": "model.layers.%d."}[fam]
    out = {k: v for k, v in sd.items() if not k.startswith(pre.split("%")[0])}
    for i, l in enumerate(rm["layers"]):
        kv = torch.tensor([r for g in rm["kv"][i] for r in range(g * hd, (g + 1) * hd)], dtype=torch.long)
        q = torch.tensor([r for g in rm["kv"][i] for r in range(g * G * hd, (g + 1) * G * hd)], dtype=torch.long)
        f = torch.tensor(rm["ch"][i], dtype=torch.long)
        src, dst = pre % l, pre % i
        for k, v in sd.items():
            if not k.startswith(src):
                continue
            n = k[len(src):]
            if fam in ("llama", "qwen2"):
                if n in ("self_attn.q_proj.weight", "self_attn.q_proj.bias"):
                    v = v[q]
                elif n.startswith("self_attn.k_proj.") or n.startswith("self_attn.v_proj."):
                    v = v[kv]
                elif n == "self_attn.o_proj.weight":
                    v = v[:, q]
                elif n.startswith("mlp.gate_proj.") or n.startswith("mlp.up_proj."):
                    v = v[f]
                elif n == "mlp.down_proj.weight":
                    v = v[:, f]
            elif fam == "gpt2":
                # c_attn is Conv1D [in, q|k|v]: a head's columns in each of
                # the three blocks (width H*hd each); c_proj [in, out] its rows
                qd = cfg["H"] * hd
                cols = torch.cat([q, q + qd, q + 2 * qd])
                if n == "attn.c_attn.weight":
                    v = v[:, cols]
                elif n == "attn.c_attn.bias":
                    v = v[cols]
                elif n == "attn.c_proj.weight":
                    v = v[q]
                elif n in ("mlp.c_fc.weight",):
                    v = v[:, f]
                elif n == "mlp.c_fc.bias":
                    v = v[f]
                elif n == "mlp.c_proj.weight":
                    v = v[f]
            else:  # opt
                if n.startswith("self_attn.q_proj.") or n.startswith("self_attn.k_proj.") or n.startswith("self_attn.v_proj."):
                    v = v[q]
                elif n == "self_attn.out_proj.weight":
                    v = v[:, q]
                elif n in ("fc1.weight", "fc1.bias"):
                    v = v[f]
                elif n == "fc2.weight":
                    v = v[:, f]
            out[dst + n] = v
    c = dict(cfg)
    # blocks may keep different counts (FLAP's global ratio): the config's
    # own sizes are the largest, the per-layer lists every block's
    lkv, lf = [len(k) for k in rm["kv"]], [len(f) for f in rm["ch"]]
    c.update(L=len(rm["layers"]), KV=max(lkv), H=max(lkv) * G, F=max(lf), LKV=lkv, LF=lf)
    # FLAP's compensation, in HF's names; the biases a missing one brings
    names = {"gpt2": ("attn.c_proj.bias", "mlp.c_proj.bias"), "opt": ("self_attn.out_proj.bias", "fc2.bias"),
             "llama": ("self_attn.o_proj.bias", "mlp.down_proj.bias")}.get(fam)
    for j, key in enumerate(("comp_o", "comp_fc2")):
        if key not in rm:
            continue
        assert names, "no compensation for %s" % fam
        if fam == "llama":
            c["attn_bias" if j == 0 else "mlp_bias"] = True
        for i in range(c["L"]):
            p = pre % i
            if fam == "llama":
                comp = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj") if j == 0 \
                    else ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
                for n in comp:
                    out.setdefault(p + n + ".bias", torch.zeros(out[p + n + ".weight"].shape[0], dtype=R.DT))
            out[p + names[j]] = out[p + names[j]] + torch.tensor(rm[key][i], dtype=R.DT)
    return c, out


def main(a):
    if len(a) != 5:
        sys.exit(__doc__)
    dense, rmf, small, tokf, outf = a
    cfg, sd = R.load_hf(dense)
    with open(rmf) as f:
        rm = json.load(f)
    tok = R.st_read(tokf)["tokens"]
    if tok.dim() == 1:
        tok = tok[None]
    tok = tok.round().long()
    rc, rsd = remove(cfg, sd, rm)
    scfg, ssd = R.load_hf(small)
    for k in ("L", "KV", "H", "F", "hd", "attn_bias", "mlp_bias", "LKV", "LF"):
        assert scfg.get(k) == rc.get(k), "saved config %s = %s, the removal gives %s" % (k, scfg.get(k), rc.get(k))
    with torch.no_grad():
        lr = R.Ref(rc, rsd).logits(tok)
        ls = R.Ref(scfg, ssd).logits(tok)
    R.st_write(outf, {"removed": lr.reshape(-1, cfg["V"]), "saved": ls.reshape(-1, cfg["V"])})


if __name__ == "__main__":
    main(sys.argv[1:])
