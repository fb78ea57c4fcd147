#!/usr/bin/python3
"""An independent PyTorch reference for freelunch's four model families.

Written from the semantics of the Hugging Face model definitions, without
importing transformers: the forward pass works on the HF checkpoint tensors
themselves, in HF's own layout (GPT-2's Conv1D weights [in, out] and its
fused c_attn), so that freelunch's name and layout mapping is checked too.
Gradients are taken with autograd in float64 and then mapped to freelunch's
canonical parameter names ("layers.0.q.weight", ..., torch nn.Linear
[out, in] layout).

  gpt2  : learned positions, LayerNorm(eps = layer_norm_epsilon), GELU tanh
          ("gelu_new"), biases, head tied to wte.
  opt   : pre-LN (do_layer_norm_before), ReLU, positions looked up at
          position + 2, q scaled by hd^-0.5 after its bias, final LayerNorm
          model.decoder.final_layer_norm, head tied to embed_tokens.
  llama : RMSNorm x * rsqrt(mean(x^2) + eps) * w, RoPE with rotate_half,
          SwiGLU down(silu(gate(x)) * up(x)), grouped-query attention, no
          biases unless attention_bias (q/k/v/o) or mlp_bias (gate/up/down),
          lm_head tied or not.
  qwen2 : llama with q/k/v biases.

Command line:
  torch_ref.py logits DIR TOKENS.safetensors OUT.safetensors [DIR TOK OUT]...
      loads the HF model directory DIR, reads "tokens" ([B, T], any float
      or integer-valued dtype) and writes "logits" [B*T, V] as F32 to OUT.
  torch_ref.py selftest
      internal consistency checks of this reference.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

DT = torch.float64

# ---------------------------------------------------------------- safetensors

_ST_NP = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "F64": np.float64,
          "I32": np.int32, "I64": np.int64}


def st_read(path):
    """All tensors of a safetensors file as float64 torch tensors."""
    with open(path, "rb") as f:
        raw = f.read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        dt = info["dtype"]
        a = np.frombuffer(raw[base + b:base + e], dtype=_ST_NP[dt])
        if dt == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = torch.from_numpy(a.astype(np.float64)).reshape(info["shape"])
    return out


def round_to(t, dtype):
    """Round a tensor to what storing it as dtype (F32/F16/BF16) keeps, in float64."""
    torch_dt = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}[dtype]
    return t.detach().to(torch_dt).to(DT)


def st_write(path, tensors, dtype="F32"):
    """Write {name: tensor} (in order) as dtype F32, F16 or BF16."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        if dtype == "F32":
            b = t.to(torch.float32).numpy().astype("<f4").tobytes()
        elif dtype == "F16":
            b = t.to(torch.float16).numpy().astype("<f2").tobytes()
        elif dtype == "BF16":
            b = t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            raise ValueError(dtype)
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# --------------------------------------------------------------------- config

def config_from_hf(hf):
    """Normalise an HF config.json dict to the sizes this reference needs."""
    mt = hf["model_type"]
    c = {"family": mt}
    if mt == "gpt2":
        d = hf["n_embd"]
        c.update(V=hf["vocab_size"], d=d, L=hf["n_layer"], H=hf["n_head"], KV=hf["n_head"],
                 F=hf.get("n_inner") or 4 * d, P=hf["n_positions"],
                 eps=hf.get("layer_norm_epsilon", 1e-5), tied=True,
                 # freelunch's key for a model whose heads were removed
                 # (HF's GPT2Attention knows only n_embd // n_head)
                 hd=hf.get("head_dim") or d // hf["n_head"])
        assert hf.get("activation_function", "gelu_new") == "gelu_new"
    elif mt == "opt":
        d = hf["hidden_size"]
        assert hf.get("activation_function", "relu") == "relu"
        E = hf.get("word_embed_proj_dim", d)
        # opt-350m: post-LN blocks without a final norm, embeddings of width
        # word_embed_proj_dim mapped by project_in / project_out
        c.update(V=hf["vocab_size"], d=d, L=hf["num_hidden_layers"], H=hf["num_attention_heads"],
                 KV=hf["num_attention_heads"], F=hf["ffn_dim"], P=hf["max_position_embeddings"],
                 eps=1e-5, tied=hf.get("tie_word_embeddings", True),
                 post_ln=not hf.get("do_layer_norm_before", True), proj=E if E != d else 0,
                 hd=hf.get("head_dim") or d // hf["num_attention_heads"])   # as for gpt2
    elif mt in ("llama", "qwen2"):
        d = hf["hidden_size"]
        H = hf["num_attention_heads"]
        c.update(V=hf["vocab_size"], d=d, L=hf["num_hidden_layers"], H=H,
                 KV=hf.get("num_key_value_heads") or H, F=hf["intermediate_size"],
                 P=hf["max_position_embeddings"], eps=hf["rms_norm_eps"],
                 theta=hf.get("rope_theta", 10000.0), tied=hf.get("tie_word_embeddings", False),
                 hd=hf.get("head_dim") or d // H, rope_scaling=hf.get("rope_scaling"),
                 # LlamaConfig: attention_bias gives q/k/v/o biases, mlp_bias
                 # gate/up/down ones; qwen2 always has q/k/v biases only
                 attn_bias=mt == "llama" and bool(hf.get("attention_bias", False)),
                 mlp_bias=mt == "llama" and bool(hf.get("mlp_bias", False)))
    else:
        raise ValueError("unknown model_type %r" % mt)
    c.setdefault("hd", c["d"] // c["H"])
    # freelunch's per-layer sizes (FLAP's global ratio): key/value heads
    # (heads where there are no groups) and MLP channels of every block;
    # the config's own values are the largest
    L = c["L"]
    c["LKV"] = list(hf.get("layer_num_key_value_heads") or [c["KV"]] * L)
    c["LF"] = list(hf.get("layer_intermediate_size") or [c["F"]] * L)
    assert len(c["LKV"]) == L and len(c["LF"]) == L
    return c


def layer_heads(cfg, l):
    """(query heads, key/value heads, MLP channels) of block l."""
    kv = cfg["LKV"][l] if "LKV" in cfg else cfg["KV"]
    return kv * (cfg["H"] // cfg["KV"]), kv, cfg["LF"][l] if "LF" in cfg else cfg["F"]


def hf_prefix_fix(cfg, sd):
    """Bring checkpoint names to the *ForCausalLM module names and drop buffers."""
    out = {}
    for k, v in sd.items():
        if k.endswith(".attn.bias") or k.endswith(".attn.masked_bias") or k.endswith("rotary_emb.inv_freq"):
            continue  # buffers (causal mask, RoPE frequencies), not parameters
        if cfg["family"] == "gpt2" and not k.startswith("transformer.") and k != "lm_head.weight":
            k = "transformer." + k
        if cfg["family"] == "opt" and k.startswith("decoder."):
            k = "model." + k
        out[k] = v
    if cfg["tied"]:
        out.pop("lm_head.weight", None)
    return out


def load_hf(d):
    with open(os.path.join(d, "config.json")) as f:
        hf = json.load(f)
    cfg = config_from_hf(hf)
    sd = {}
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
        for fn in files:
            sd.update(st_read(os.path.join(d, fn)))
    else:
        sd.update(st_read(os.path.join(d, "model.safetensors")))
    sd = hf_prefix_fix(cfg, sd)
    # Exactly the tensors an HF *ForCausalLM of this config has, in HF shapes.
    want = canon_to_hf(cfg, {n: torch.zeros(s, dtype=DT) for n, s in canon_shapes(cfg).items()})
    missing, extra = sorted(set(want) - set(sd)), sorted(set(sd) - set(want))
    if missing or extra:
        raise ValueError("%s: missing tensors %s, unexpected tensors %s" % (d, missing[:5], extra[:5]))
    for k, t in want.items():
        if tuple(sd[k].shape) != tuple(t.shape):
            raise ValueError("%s: %s has shape %s, HF expects %s" % (d, k, list(sd[k].shape), list(t.shape)))
    return cfg, sd


# ------------------------------------------------- canonical <-> HF mapping

def canon_map(cfg):
    """[(canonical name, HF name, transform)] in freelunch's registry order.
    transform: "id", "T" (Conv1D [in,out] -> [out,in]), ("T3", i) (column
    block i of the fused c_attn weight, transposed), ("b3", i) (block i of
    its bias)."""
    fam, L = cfg["family"], cfg["L"]
    m = []
    if fam == "gpt2":
        p = "transformer."
        m += [("embed.weight", p + "wte.weight", "id"), ("pos.weight", p + "wpe.weight", "id")]
        for l in range(L):
            h, c = "%sh.%d." % (p, l), "layers.%d." % l
            m += [(c + "attn_norm.weight", h + "ln_1.weight", "id"), (c + "attn_norm.bias", h + "ln_1.bias", "id")]
            for i, n in enumerate("qkv"):
                m += [(c + n + ".weight", h + "attn.c_attn.weight", ("T3", i)),
                      (c + n + ".bias", h + "attn.c_attn.bias", ("b3", i))]
            m += [(c + "o.weight", h + "attn.c_proj.weight", "T"), (c + "o.bias", h + "attn.c_proj.bias", "id"),
                  (c + "mlp_norm.weight", h + "ln_2.weight", "id"), (c + "mlp_norm.bias", h + "ln_2.bias", "id"),
                  (c + "fc1.weight", h + "mlp.c_fc.weight", "T"), (c + "fc1.bias", h + "mlp.c_fc.bias", "id"),
                  (c + "fc2.weight", h + "mlp.c_proj.weight", "T"), (c + "fc2.bias", h + "mlp.c_proj.bias", "id")]
        m += [("final_norm.weight", p + "ln_f.weight", "id"), ("final_norm.bias", p + "ln_f.bias", "id")]
    elif fam == "opt":
        p = "model.decoder."
        m += [("embed.weight", p + "embed_tokens.weight", "id")]
        if cfg.get("proj"):
            m += [("project_in.weight", p + "project_in.weight", "id")]
        m += [("pos.weight", p + "embed_positions.weight", "id")]
        for l in range(L):
            h, c = "%slayers.%d." % (p, l), "layers.%d." % l
            m += [(c + "attn_norm.weight", h + "self_attn_layer_norm.weight", "id"),
                  (c + "attn_norm.bias", h + "self_attn_layer_norm.bias", "id")]
            for n, hn in (("q", "q_proj"), ("k", "k_proj"), ("v", "v_proj"), ("o", "out_proj")):
                m += [(c + n + ".weight", h + "self_attn." + hn + ".weight", "id"),
                      (c + n + ".bias", h + "self_attn." + hn + ".bias", "id")]
            m += [(c + "mlp_norm.weight", h + "final_layer_norm.weight", "id"),
                  (c + "mlp_norm.bias", h + "final_layer_norm.bias", "id"),
                  (c + "fc1.weight", h + "fc1.weight", "id"), (c + "fc1.bias", h + "fc1.bias", "id"),
                  (c + "fc2.weight", h + "fc2.weight", "id"), (c + "fc2.bias", h + "fc2.bias", "id")]
        if not cfg.get("post_ln"):
            m += [("final_norm.weight", p + "final_layer_norm.weight", "id"),
                  ("final_norm.bias", p + "final_layer_norm.bias", "id")]
        if cfg.get("proj"):
            m += [("project_out.weight", p + "project_out.weight", "id")]
    else:
        qb, ob, mb = fam == "qwen2" or cfg.get("attn_bias"), cfg.get("attn_bias"), cfg.get("mlp_bias")
        m += [("embed.weight", "model.embed_tokens.weight", "id")]
        for l in range(L):
            h, c = "model.layers.%d." % l, "layers.%d." % l
            m += [(c + "attn_norm.weight", h + "input_layernorm.weight", "id")]
            for n in "qkv":
                m += [(c + n + ".weight", h + "self_attn.%s_proj.weight" % n, "id")]
                if qb:
                    m += [(c + n + ".bias", h + "self_attn.%s_proj.bias" % n, "id")]
            m += [(c + "o.weight", h + "self_attn.o_proj.weight", "id")]
            if ob:
                m += [(c + "o.bias", h + "self_attn.o_proj.bias", "id")]
            m += [(c + "mlp_norm.weight", h + "post_attention_layernorm.weight", "id")]
            for cn, hn in (("fc1", "gate_proj"), ("up", "up_proj"), ("fc2", "down_proj")):
                m += [(c + cn + ".weight", h + "mlp.%s.weight" % hn, "id")]
                if mb:
                    m += [(c + cn + ".bias", h + "mlp.%s.bias" % hn, "id")]
        m += [("final_norm.weight", "model.norm.weight", "id")]
    if not cfg["tied"]:
        m += [("lm_head.weight", "lm_head.weight", "id")]
    return m


def qwidth(cfg, cname):
    """The width of q (= k = v) in GPT-2's fused c_attn of canonical name's block."""
    return layer_heads(cfg, int(cname.split(".")[1]))[0] * cfg["hd"] if cname.startswith("layers.") else cfg["d"]


def hf_to_canon(t, tr, d):
    """The canonical view of HF tensor t (differentiable; d = the width of
    one of q, k, v in GPT-2's fused c_attn: heads x head size)."""
    if tr == "id":
        return t
    if tr == "T":
        return t.t()
    kind, i = tr
    if kind == "T3":
        return t[:, i * d:(i + 1) * d].t()
    return t[i * d:(i + 1) * d]


def canon_to_hf_mask(cfg, sd, masks):
    """{HF name: 0/1 float64 mask in HF layout} from {canonical name: mask}."""
    by_c = {c: (h, tr) for c, h, tr in canon_map(cfg)}
    out = {}
    for cname, mk in masks.items():
        h, tr = by_c[cname]
        hm = out.setdefault(h, torch.ones_like(sd[h]))
        hf_to_canon(hm, tr, qwidth(cfg, cname)).copy_(mk.to(DT))
    return out


def canon_tensors(cfg, sd, what="data"):
    """{canonical name: tensor} of the parameters (what="data") or of their
    gradients (what="grad"; None where autograd gave none)."""
    out = {}
    for c, h, tr in canon_map(cfg):
        t = sd[h] if what == "data" else sd[h].grad
        out[c] = None if t is None else hf_to_canon(t.detach(), tr, qwidth(cfg, c)).clone()
    return out


def canon_shapes(cfg):
    """{canonical name: shape} in registry order (freelunch's model.h)."""
    d, hd, V, P = cfg["d"], cfg["hd"], cfg["V"], cfg["P"]

    def lins(l):
        H, KV, Fd = layer_heads(cfg, l)
        return {"q": (H * hd, d), "k": (KV * hd, d), "v": (KV * hd, d), "o": (d, H * hd),
                "fc1": (Fd, d), "up": (Fd, d), "fc2": (d, Fd)}
    out = {}
    for c, _, _ in canon_map(cfg):
        parts = c.split(".")
        lin = lins(int(parts[1])) if parts[0] == "layers" else {}
        E = cfg.get("proj") or d
        if parts[0] in ("embed", "lm_head"):
            out[c] = (V, E)
        elif parts[0] == "project_in":
            out[c] = (d, E)
        elif parts[0] == "project_out":
            out[c] = (E, d)
        elif parts[0] == "pos":
            out[c] = (P + (2 if cfg["family"] == "opt" else 0), d)
        elif parts[0] == "layers" and parts[2] in lin:
            out[c] = lin[parts[2]] if parts[3] == "weight" else (lin[parts[2]][0],)
        else:
            out[c] = (d,)
    return out


def canon_to_hf(cfg, cz):
    """{HF name: tensor} in HF layout from {canonical name: tensor}."""
    out = {}
    d = cfg["d"]
    for c, h, tr in canon_map(cfg):
        t = cz[c].detach()
        qd = layer_heads(cfg, int(c.split(".")[1]))[0] * cfg["hd"] if c.startswith("layers.") else d
        if tr == "id":
            out[h] = t.clone()
        elif tr == "T":
            out[h] = t.t().contiguous()
        else:
            kind, i = tr
            if h not in out:
                out[h] = torch.zeros((d, 3 * qd) if kind == "T3" else (3 * qd,), dtype=t.dtype)
            hf_to_canon(out[h], tr, qd).copy_(t)
    return out


# --------------------------------------------------------------------- model

def gelu_new(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def scaled_inv_freq(inv_freq, rs):
    """RoPE frequency scaling as the Llama 3.1 release and HF define it:
    "linear" divides every frequency by the factor; "llama3" divides the
    frequencies whose wavelength exceeds orig/low_freq_factor, keeps those
    below orig/high_freq_factor and interpolates linearly in orig/wavelength
    between the two."""
    if not rs:
        return inv_freq
    kind = rs.get("rope_type", rs.get("type"))
    f = rs["factor"]
    if kind == "linear":
        return inv_freq / f
    assert kind == "llama3", kind
    lo, hi, orig = rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
    out = []
    for w in inv_freq.tolist():
        wl = 2 * math.pi / w
        if wl < orig / hi:
            out.append(w)
        elif wl > orig / lo:
            out.append(w / f)
        else:
            t = (orig / wl - lo) / (hi - lo)
            out.append((1 - t) * w / f + t * w)
    return torch.tensor(out, dtype=DT)


def rope_cos_sin(T, hd, theta, pos0=0, rs=None):
    inv_freq = scaled_inv_freq(1.0 / (theta ** (torch.arange(0, hd, 2, dtype=DT) / hd)), rs)
    pos = torch.arange(pos0, pos0 + T, dtype=DT)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()        # [T, hd]


def causal_attention(q, k, v, scale=None):
    """q [B,H,T,hd], k/v [B,KV,T,hd] -> [B,H,T,hd]; GQA: head h uses kv head h // (H/KV)."""
    H, KV, T, hd = q.shape[1], k.shape[1], q.shape[2], q.shape[3]
    if KV != H:
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
    s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd) if scale is None else scale)
    mask = torch.ones(T, T, dtype=torch.bool).triu(1)
    s = s.masked_fill(mask, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def read_tokens(path):
    """An llm.c token file (datasets/tokfile.h) as a long tensor."""
    raw = open(path, "rb").read()
    magic, version, count = struct.unpack_from("<3i", raw, 0)
    width = {20240520: 2, 20240801: 4}[magic]
    fmt = "<%d%s" % (count, "H" if width == 2 else "I")
    return torch.tensor(struct.unpack_from(fmt, raw, 1024), dtype=torch.long)


class Ref:
    """HF-semantics forward on an HF state dict of float64 tensors. masks:
    {HF name: 0/1 tensor}; a masked weight is used as W * mask, so its
    values are the zeroed weights and its gradient is grad * mask."""

    def __init__(self, cfg, sd, hf_masks=None):
        self.cfg, self.sd, self.masks = cfg, sd, hf_masks or {}

    def W(self, name):
        w = self.sd[name]
        m = self.masks.get(name)
        return w if m is None else w * m

    def embed(self, tokens, pos0=0):
        c, W = self.cfg, self.W
        B, T = tokens.shape
        fam = c["family"]
        if fam == "gpt2":
            return W("transformer.wte.weight")[tokens] + W("transformer.wpe.weight")[pos0:pos0 + T][None]
        if fam == "opt":
            # OPTLearnedPositionalEmbedding: positions from the attention mask
            # cumsum (all ones here) minus 1, then offset by 2.
            pos = torch.arange(pos0, pos0 + T) + 2
            e = W("model.decoder.embed_tokens.weight")[tokens]
            if c.get("proj"):
                e = F.linear(e, W("model.decoder.project_in.weight"))
            return e + W("model.decoder.embed_positions.weight")[pos][None]
        return W("model.embed_tokens.weight")[tokens]

    def _split(self, x, n):
        B, T, _ = x.shape
        return x.view(B, T, n, -1).transpose(1, 2)

    def attn(self, l, x, pos0=0):
        c, W = self.cfg, self.W
        B, T, d = x.shape
        H, KV, _ = layer_heads(c, l)
        hd, fam = c["hd"], c["family"]
        if fam == "gpt2":
            p = "transformer.h.%d." % l
            h = F.layer_norm(x, (d,), W(p + "ln_1.weight"), W(p + "ln_1.bias"), c["eps"])
            qkv = h @ W(p + "attn.c_attn.weight") + W(p + "attn.c_attn.bias")   # Conv1D
            q, k, v = qkv.split(H * hd, dim=2)
            o = causal_attention(self._split(q, H), self._split(k, H), self._split(v, H))
            o = o.transpose(1, 2).reshape(B, T, H * hd)
            return x + o @ W(p + "attn.c_proj.weight") + W(p + "attn.c_proj.bias")
        if fam == "opt":
            p = "model.decoder.layers.%d." % l
            ln = lambda z: F.layer_norm(z, (d,), W(p + "self_attn_layer_norm.weight"), W(p + "self_attn_layer_norm.bias"), c["eps"])
            h = x if c.get("post_ln") else ln(x)
            a = p + "self_attn."
            q = F.linear(h, W(a + "q_proj.weight"), W(a + "q_proj.bias")) * hd ** -0.5
            k = F.linear(h, W(a + "k_proj.weight"), W(a + "k_proj.bias"))
            v = F.linear(h, W(a + "v_proj.weight"), W(a + "v_proj.bias"))
            o = causal_attention(self._split(q, H), self._split(k, H), self._split(v, H), scale=1.0)
            o = o.transpose(1, 2).reshape(B, T, H * hd)
            z = x + F.linear(o, W(a + "out_proj.weight"), W(a + "out_proj.bias"))
            return ln(z) if c.get("post_ln") else z
        p = "model.layers.%d." % l
        h = rms_norm(x, W(p + "input_layernorm.weight"), c["eps"])
        a = p + "self_attn."
        ab = fam == "qwen2" or c.get("attn_bias")
        bias = (lambda n: W(a + n + "_proj.bias")) if ab else (lambda n: None)
        q = self._split(F.linear(h, W(a + "q_proj.weight"), bias("q")), H)
        k = self._split(F.linear(h, W(a + "k_proj.weight"), bias("k")), KV)
        v = self._split(F.linear(h, W(a + "v_proj.weight"), bias("v")), KV)
        cos, sin = rope_cos_sin(T, hd, c["theta"], pos0, c.get("rope_scaling"))
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        o = causal_attention(q, k, v).transpose(1, 2).reshape(B, T, H * hd)
        return x + F.linear(o, W(a + "o_proj.weight"), W(a + "o_proj.bias") if c.get("attn_bias") else None)

    def mlp(self, l, x):
        c, W = self.cfg, self.W
        d, fam = x.shape[-1], c["family"]
        if fam == "gpt2":
            p = "transformer.h.%d." % l
            h = F.layer_norm(x, (d,), W(p + "ln_2.weight"), W(p + "ln_2.bias"), c["eps"])
            h = gelu_new(h @ W(p + "mlp.c_fc.weight") + W(p + "mlp.c_fc.bias"))
            return x + h @ W(p + "mlp.c_proj.weight") + W(p + "mlp.c_proj.bias")
        if fam == "opt":
            p = "model.decoder.layers.%d." % l
            ln = lambda z: F.layer_norm(z, (d,), W(p + "final_layer_norm.weight"), W(p + "final_layer_norm.bias"), c["eps"])
            h = x if c.get("post_ln") else ln(x)
            h = torch.relu(F.linear(h, W(p + "fc1.weight"), W(p + "fc1.bias")))
            z = x + F.linear(h, W(p + "fc2.weight"), W(p + "fc2.bias"))
            return ln(z) if c.get("post_ln") else z
        p = "model.layers.%d." % l
        h = rms_norm(x, W(p + "post_attention_layernorm.weight"), c["eps"])
        mb = (lambda n: W(p + "mlp.%s.bias" % n)) if c.get("mlp_bias") else (lambda n: None)
        g = F.linear(h, W(p + "mlp.gate_proj.weight"), mb("gate_proj"))
        u = F.linear(h, W(p + "mlp.up_proj.weight"), mb("up_proj"))
        return x + F.linear(F.silu(g) * u, W(p + "mlp.down_proj.weight"), mb("down_proj"))

    def sublayer(self, s, x, pos0=0):
        return self.attn(s // 2, x, pos0) if s % 2 == 0 else self.mlp(s // 2, x)

    def head(self, x):
        c, W, d = self.cfg, self.W, x.shape[-1]
        fam = c["family"]
        if fam == "gpt2":
            h = F.layer_norm(x, (d,), W("transformer.ln_f.weight"), W("transformer.ln_f.bias"), c["eps"])
            emb = "transformer.wte.weight"
        elif fam == "opt":
            h = x if c.get("post_ln") else F.layer_norm(x, (d,), W("model.decoder.final_layer_norm.weight"),
                                                        W("model.decoder.final_layer_norm.bias"), c["eps"])
            if c.get("proj"):
                h = F.linear(h, W("model.decoder.project_out.weight"))
            emb = "model.decoder.embed_tokens.weight"
        else:
            h = rms_norm(x, W("model.norm.weight"), c["eps"])
            emb = "model.embed_tokens.weight"
        return h @ W(emb if c["tied"] else "lm_head.weight").t()

    def logits(self, tokens, pos0=0):
        x = self.embed(tokens, pos0)
        for s in range(2 * self.cfg["L"]):
            x = self.sublayer(s, x, pos0)
        return self.head(x)


def ce_loss(logits, targets):
    """Mean next-token NLL over targets >= 0."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-1)


# ------------------------------------------------------------------ commands

def cmd_logits(args):
    if len(args) == 0 or len(args) % 3:
        sys.exit("usage: torch_ref.py logits DIR TOKENS.safetensors OUT.safetensors [...]")
    for i in range(0, len(args), 3):
        d, tokf, outf = args[i:i + 3]
        cfg, sd = load_hf(d)
        tok = st_read(tokf)["tokens"]
        if tok.dim() == 1:
            tok = tok[None]
        with torch.no_grad():
            lg = Ref(cfg, sd).logits(tok.round().long())
        st_write(outf, {"logits": lg.reshape(-1, cfg["V"])})


def _rand_sd(cfg, seed):
    """Random HF state dict for cfg (selftest only; gen_cases has its own)."""
    g = torch.Generator().manual_seed(seed)
    cz = {}
    for n, s in canon_shapes(cfg).items():
        base = 1.0 if ("norm" in n and n.endswith("weight")) else 0.0
        cz[n] = base + 0.2 * torch.randn(s, generator=g, dtype=DT)
    return canon_to_hf(cfg, cz)


def cmd_selftest():
    ok = True

    def check(what, cond):
        nonlocal ok
        print(("ok   " if cond else "FAIL ") + what)
        ok = ok and bool(cond)

    torch.manual_seed(0)
    x = torch.randn(50, dtype=DT) * 3
    check("gelu_new equals torch gelu(approximate='tanh')",
          torch.allclose(gelu_new(x), F.gelu(x, approximate="tanh"), atol=1e-14))
    # RoPE: <R(m) q, R(n) k> depends only on m - n.
    hd = 8
    cos, sin = rope_cos_sin(20, hd, 10000.0)
    q, k = torch.randn(hd, dtype=DT), torch.randn(hd, dtype=DT)
    rq = lambda v, p: v * cos[p] + rotate_half(v) * sin[p]
    check("RoPE is relative", abs(rq(q, 7) @ rq(k, 3) - rq(q, 14) @ rq(k, 10)) < 1e-12)
    check("RoPE at position 0 is identity", torch.allclose(rq(q, 0), q))
    # RoPE rotate-half pairs (i, i + hd/2) with angle pos * theta^(-2i/hd).
    i, p = 1, 5
    ang = p * 10000.0 ** (-2 * i / hd)
    y = rq(q, p)
    check("RoPE pairs i, i+hd/2", abs(y[i] - (q[i] * math.cos(ang) - q[i + hd // 2] * math.sin(ang))) < 1e-12
          and abs(y[i + hd // 2] - (q[i + hd // 2] * math.cos(ang) + q[i] * math.sin(ang))) < 1e-12)
    cfgs = [
        {"family": "gpt2", "V": 50, "d": 16, "L": 2, "H": 4, "KV": 4, "hd": 4, "F": 24, "P": 16, "eps": 1e-5, "tied": True},
        {"family": "opt", "V": 50, "d": 16, "L": 2, "H": 4, "KV": 4, "hd": 4, "F": 24, "P": 16, "eps": 1e-5, "tied": True},
        {"family": "llama", "V": 50, "d": 16, "L": 2, "H": 4, "KV": 2, "hd": 4, "F": 24, "P": 16, "eps": 1e-6,
         "theta": 10000.0, "tied": False},
        {"family": "qwen2", "V": 50, "d": 16, "L": 2, "H": 4, "KV": 1, "hd": 4, "F": 24, "P": 16, "eps": 1e-6,
         "theta": 1e6, "tied": True},
    ]
    for cfg in cfgs:
        fam = cfg["family"]
        sd = _rand_sd(cfg, 1)
        ref = Ref(cfg, sd)
        tok = torch.randint(0, cfg["V"], (2, 9))
        lg = ref.logits(tok)
        tok2 = tok.clone()
        tok2[:, 6:] = (tok2[:, 6:] + 1) % cfg["V"]
        lg2 = ref.logits(tok2)
        check(fam + ": causal (future tokens do not change earlier logits)",
              torch.allclose(lg[:, :6], lg2[:, :6], atol=1e-12) and not torch.allclose(lg[:, 6:], lg2[:, 6:]))
        # A row's logits do not depend on the other rows of the batch.
        check(fam + ": rows independent", torch.allclose(ref.logits(tok[1:2]), lg[1:2], atol=1e-12))
        # canonical round trip: canonical linears reproduce the HF-layout attention.
        cz = canon_tensors(cfg, sd)
        check(fam + ": canonical map covers every HF tensor", set(h for _, h, _ in canon_map(cfg)) == set(sd))
        rt = canon_to_hf(cfg, cz)
        check(fam + ": canonical <-> HF round trip", all(torch.equal(rt[h], sd[h]) for h in sd))
        x = torch.randn(2, 5, cfg["d"], dtype=DT)
        if fam in ("gpt2", "opt"):
            ln = F.layer_norm(x, (cfg["d"],), cz["layers.0.attn_norm.weight"], cz["layers.0.attn_norm.bias"], cfg["eps"])
            H = cfg["H"]
            sp = lambda t: t.view(2, 5, H, -1).transpose(1, 2)
            q = F.linear(ln, cz["layers.0.q.weight"], cz["layers.0.q.bias"])
            k = F.linear(ln, cz["layers.0.k.weight"], cz["layers.0.k.bias"])
            v = F.linear(ln, cz["layers.0.v.weight"], cz["layers.0.v.bias"])
            o = causal_attention(sp(q), sp(k), sp(v)).transpose(1, 2).reshape(2, 5, -1)
            y = x + F.linear(o, cz["layers.0.o.weight"], cz["layers.0.o.bias"])
            check(fam + ": canonical q/k/v/o reproduce the HF attention", torch.allclose(y, ref.attn(0, x), atol=1e-12))
        else:
            # GQA equals MHA with each kv head repeated H/KV times.
            rep = cfg["H"] // cfg["KV"]
            cfg2 = dict(cfg, KV=cfg["H"])
            sd2 = dict(sd)
            for n in "kv":
                for suf in ("weight", "bias"):
                    key = "model.layers.0.self_attn.%s_proj.%s" % (n, suf)
                    if key in sd:
                        t = sd[key].view(cfg["KV"], cfg["hd"], *sd[key].shape[1:])
                        sd2[key] = t.repeat_interleave(rep, dim=0).reshape(cfg["H"] * cfg["hd"], *sd[key].shape[1:])
            check(fam + ": GQA equals MHA with repeated kv heads",
                  torch.allclose(Ref(cfg2, sd2).attn(0, x), ref.attn(0, x), atol=1e-12))
    # Cross-entropy ignores -1 and averages over the rest.
    lg = torch.randn(2, 3, 7, dtype=DT)
    tg = torch.tensor([[1, -1, 3], [0, 6, -1]])
    man = -sum(torch.log_softmax(lg[b, t], -1)[tg[b, t]] for b in range(2) for t in range(3) if tg[b, t] >= 0) / 4
    check("cross-entropy mean over counted targets", abs(ce_loss(lg, tg) - man) < 1e-12)
    # A hand-computed 1-layer, d=2, one-head attention: T=2, output of the
    # second position is the softmax-weighted mean of v over both positions.
    q = torch.tensor([[[[1.0, 0.0], [0.5, 1.0]]]], dtype=DT)
    k = torch.tensor([[[[2.0, 1.0], [0.0, 1.0]]]], dtype=DT)
    v = torch.tensor([[[[1.0, 2.0], [3.0, -1.0]]]], dtype=DT)
    out = causal_attention(q, k, v)
    s0, s1 = (0.5 * 2 + 1 * 1) / math.sqrt(2), (0 + 1) / math.sqrt(2)
    a0 = math.exp(s0) / (math.exp(s0) + math.exp(s1))
    check("attention by hand", torch.allclose(out[0, 0, 0], v[0, 0, 0])
          and torch.allclose(out[0, 0, 1], a0 * v[0, 0, 0] + (1 - a0) * v[0, 0, 1]))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "logits":
        cmd_logits(sys.argv[2:])
    elif len(sys.argv) >= 2 and sys.argv[1] == "selftest":
        cmd_selftest()
    else:
        sys.exit(__doc__)
