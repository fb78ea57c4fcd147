#!/usr/bin/python3
"""Generates the PyTorch oracle cases for tests/test_oracle.c.

usage: gen_cases.py OUTDIR

For every case, OUTDIR/<case>/ is an HF model directory (config.json with
HF keys, model.safetensors with HF tensor names, random weights) plus
  ref.safetensors  "tokens", "targets" [B, T] (F32 holding integers; -1 =
                   not counted), "logits" [B*T, V], "loss" [1], and
                   "grad.<canonical name>" for every parameter: the gradient
                   of the mean next-token NLL, computed in float64.
For the cases with submodels, also
  subs.json        [{name, kind (linear|attn|mlp|blocks), param | layer |
                    first/last, s0/s1 (sublayers), masks: [...],
                    trainable: [...], B, T, file}]
  sub_<name>.safetensors
                   "x" input [B*T, in], "r" [B*T, out] (loss = sum(out * r),
                   so dOut = r), "out", "dx", "grad.<name>" for the trainable
                   parameters, "mask.<name>" (F32 0/1; the masked weights are
                   zeroed in the model before the forward pass).
OUTDIR/cases.json lists the cases.

The reference always reads the weights back from the file it wrote, so the
fp16/bf16 cases use the rounded weights.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_ref as R  # noqa: E402

DT = torch.float64
B, T = 2, 12

CASES = [
    # name, HF config (without the sizes added below), storage dtype, options
    dict(name="gpt2_a", dtype="F32", subs=True, prefix=True,
         hf=dict(model_type="gpt2", architectures=["GPT2LMHeadModel"], n_embd=32, n_layer=3, n_head=4,
                 n_positions=64, n_ctx=64, vocab_size=101, layer_norm_epsilon=1e-5, n_inner=96,
                 activation_function="gelu_new", bos_token_id=100, eos_token_id=100)),
    # No "transformer." prefix, the attn.bias causal-mask buffers of the
    # original GPT-2 checkpoints, fp16 storage, an unusual epsilon.
    dict(name="gpt2_b_f16", dtype="F16", subs=False, prefix=False, buffers=True,
         hf=dict(model_type="gpt2", architectures=["GPT2LMHeadModel"], n_embd=48, n_layer=2, n_head=4,
                 n_positions=64, vocab_size=157, layer_norm_epsilon=1e-2, n_inner=64,
                 activation_function="gelu_new", torch_dtype="float16")),
    dict(name="opt", dtype="F32", subs=False,
         hf=dict(model_type="opt", architectures=["OPTForCausalLM"], hidden_size=32, num_hidden_layers=2,
                 num_attention_heads=4, ffn_dim=80, max_position_embeddings=64, vocab_size=150,
                 activation_function="relu", do_layer_norm_before=True, word_embed_proj_dim=32,
                 enable_bias=True, layer_norm_elementwise_affine=True, tie_word_embeddings=True,
                 bos_token_id=2, eos_token_id=2, pad_token_id=1)),
    # opt-350m's variant: post-LN blocks without a final norm, embeddings
    # of width 16 through project_in / project_out, tied head
    dict(name="opt_postln_proj", dtype="F32", subs=True,
         hf=dict(model_type="opt", architectures=["OPTForCausalLM"], hidden_size=32, num_hidden_layers=2,
                 num_attention_heads=4, ffn_dim=48, max_position_embeddings=64, vocab_size=130,
                 activation_function="relu", do_layer_norm_before=False, word_embed_proj_dim=16,
                 enable_bias=True, layer_norm_elementwise_affine=True, tie_word_embeddings=True,
                 bos_token_id=2, eos_token_id=2, pad_token_id=1)),
    dict(name="llama_gqa", dtype="F32", subs=True,
         hf=dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=32, intermediate_size=72,
                 num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
                 rope_theta=10000.0, max_position_embeddings=64, vocab_size=211, tie_word_embeddings=False,
                 hidden_act="silu", attention_bias=False, bos_token_id=1, eos_token_id=2)),
    # Tied head, head_dim 10, bf16 storage with the rotary_emb.inv_freq
    # buffers of older checkpoints, an unusual epsilon and theta.
    dict(name="llama_tied_bf16", dtype="BF16", subs=False, buffers=True,
         hf=dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=40, intermediate_size=96,
                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4, rms_norm_eps=1e-2,
                 rope_theta=500000.0, max_position_embeddings=64, vocab_size=256, tie_word_embeddings=True,
                 hidden_act="silu", torch_dtype="bfloat16")),
    dict(name="qwen2", dtype="F32", subs=False,
         hf=dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], hidden_size=32, intermediate_size=64,
                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, rms_norm_eps=1e-6,
                 rope_theta=1000000.0, max_position_embeddings=64, vocab_size=180, tie_word_embeddings=True,
                 hidden_act="silu", use_sliding_window=False, sliding_window=64, max_window_layers=2)),
    # Llama-3.1's RoPE scaling ("llama3") with head_dim 12 unlike hidden/heads
    # (8): the wavelengths of head_dim 12 at theta 1e4 (6.3, 29, 135, ...)
    # fall in all three of its bands for an original context of 64 (kept
    # below 64/4, blended up to 64/1, divided by the factor beyond).
    dict(name="llama3_rope", dtype="F32", subs=False,
         hf=dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=32, intermediate_size=48,
                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=12, rms_norm_eps=1e-5,
                 rope_theta=10000.0, max_position_embeddings=256, vocab_size=97, tie_word_embeddings=False,
                 hidden_act="silu", rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                                      high_freq_factor=4.0, original_max_position_embeddings=64))),
    # linear RoPE scaling on qwen2 (q/k/v biases), factor 4
    dict(name="qwen2_linear_rope", dtype="F32", subs=False,
         hf=dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], hidden_size=32, intermediate_size=40,
                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
                 rope_theta=10000.0, max_position_embeddings=64, vocab_size=120, tie_word_embeddings=False,
                 hidden_act="silu", use_sliding_window=False, rope_scaling=dict(type="linear", factor=4.0))),
]


def random_canonical(cfg, g):
    """Random weights with non-trivial activations: norm weights ~1, biases
    non-zero, linears std 1/sqrt(in)."""
    cz = {}
    for n, s in R.canon_shapes(cfg).items():
        if n == "embed.weight":
            t = 0.3 * torch.randn(s, generator=g, dtype=DT)
        elif n == "pos.weight":
            t = 0.1 * torch.randn(s, generator=g, dtype=DT)
        elif n == "lm_head.weight":
            t = 0.25 * torch.randn(s, generator=g, dtype=DT)
        elif "norm" in n and n.endswith("weight"):
            t = 1.0 + 0.1 * torch.randn(s, generator=g, dtype=DT)
        elif n.endswith("bias"):
            t = 0.1 * torch.randn(s, generator=g, dtype=DT)
        else:
            t = torch.randn(s, generator=g, dtype=DT) / s[1] ** 0.5
        cz[n] = t
    return cz


def write_model(case, cdir, g):
    hf = dict(case["hf"])
    cfg = R.config_from_hf(hf)
    sd = R.canon_to_hf(cfg, random_canonical(cfg, g))
    fam = cfg["family"]
    if fam == "gpt2" and not case.get("prefix", True):
        sd = {k[len("transformer."):] if k.startswith("transformer.") else k: v for k, v in sd.items()}
    if case.get("buffers"):
        if fam == "gpt2":
            P = cfg["P"]
            for l in range(cfg["L"]):
                sd["h.%d.attn.bias" % l] = torch.ones(P, P, dtype=DT).tril().view(1, 1, P, P)
        else:
            inv = 1.0 / (cfg["theta"] ** (torch.arange(0, cfg["hd"], 2, dtype=DT) / cfg["hd"]))
            for l in range(cfg["L"]):
                sd["model.layers.%d.self_attn.rotary_emb.inv_freq" % l] = inv
    os.makedirs(cdir, exist_ok=True)
    with open(os.path.join(cdir, "config.json"), "w") as f:
        json.dump(hf, f, indent=2)
    R.st_write(os.path.join(cdir, "model.safetensors"), sd, case["dtype"])


def load_trainable(cdir):
    cfg, sd = R.load_hf(cdir)
    for t in sd.values():
        t.requires_grad_(True)
    return cfg, sd


def f32(t):
    return t.to(torch.float32).to(DT)


def full_reference(cdir, g):
    cfg, sd = load_trainable(cdir)
    V = cfg["V"]
    seq = torch.randint(0, V, (B, T + 1), generator=g)
    tokens, targets = seq[:, :T].clone(), seq[:, 1:].clone()
    for b, t in ((0, 3), (1, 0), (1, 7), (0, T - 1)):
        targets[b, t] = -1
    ref = R.Ref(cfg, sd)
    logits = ref.logits(tokens)
    loss = R.ce_loss(logits, targets)
    loss.backward()
    out = {"tokens": tokens.to(DT), "targets": targets.to(DT),
           "logits": logits.detach().reshape(B * T, V), "loss": loss.detach().reshape(1)}
    for n, gr in R.canon_tensors(cfg, sd, "grad").items():
        assert gr is not None, n
        out["grad." + n] = gr
    R.st_write(os.path.join(cdir, "ref.safetensors"), out)
    return float(loss)


def layer_params(cfg, l):
    return [n for n in R.canon_shapes(cfg) if n.startswith("layers.%d." % l)]


def sub_specs(cfg):
    fam = cfg["family"]
    lw = lambda l, names: ["layers.%d.%s.weight" % (l, n) for n in names]
    norms = lambda l: [n for n in layer_params(cfg, l) if "norm" in n]
    if fam == "gpt2":
        return [
            dict(name="lin_fc1", kind="linear", param="layers.0.fc1", masks=lw(0, ["fc1"]),
                 trainable=["layers.0.fc1.weight", "layers.0.fc1.bias"]),
            dict(name="lin_v", kind="linear", param="layers.1.v", masks=[], trainable=["layers.1.v.weight"]),
            dict(name="attn1", kind="attn", layer=1, masks=lw(1, ["q", "o"]), trainable=lw(1, ["q", "k", "v", "o"])),
            dict(name="mlp1", kind="mlp", layer=1, masks=lw(1, ["fc1", "fc2"]),
                 trainable=norms(1)[2:] + ["layers.1.fc1.bias", "layers.1.fc2.bias"]),
            dict(name="block0", kind="blocks", first=0, last=0, masks=lw(0, ["k", "fc2"]),
                 trainable=layer_params(cfg, 0)),
            dict(name="blocks01", kind="blocks", first=0, last=1,
                 masks=lw(0, ["q", "k", "v", "o", "fc1", "fc2"]) + lw(1, ["v", "fc1"]),
                 trainable=norms(0) + layer_params(cfg, 1)),
        ]
    if fam == "opt":   # two blocks, post-LN in opt_postln_proj: each norm inside its sublayer
        return [
            dict(name="lin_fc2", kind="linear", param="layers.1.fc2", masks=lw(1, ["fc2"]),
                 trainable=["layers.1.fc2.weight", "layers.1.fc2.bias"]),
            dict(name="attn1", kind="attn", layer=1, masks=lw(1, ["q", "o"]),
                 trainable=lw(1, ["q", "k", "v", "o"]) + norms(1)[:2]),
            dict(name="mlp0", kind="mlp", layer=0, masks=lw(0, ["fc1", "fc2"]),
                 trainable=norms(0)[2:] + ["layers.0.fc1.bias"]),
            dict(name="block0", kind="blocks", first=0, last=0, masks=lw(0, ["k", "fc1"]), trainable=layer_params(cfg, 0)),
            dict(name="blocks01", kind="blocks", first=0, last=1, masks=lw(0, ["q", "fc2"]) + lw(1, ["v", "fc1"]),
                 trainable=norms(0) + layer_params(cfg, 1)),
        ]
    return [
        dict(name="lin_k", kind="linear", param="layers.0.k", masks=lw(0, ["k"]), trainable=lw(0, ["k"])),
        dict(name="lin_down", kind="linear", param="layers.2.fc2", masks=lw(2, ["fc2"]), trainable=lw(2, ["fc2"])),
        dict(name="attn1", kind="attn", layer=1, masks=lw(1, ["q", "v"]), trainable=lw(1, ["q", "k", "v", "o"])),
        dict(name="mlp1", kind="mlp", layer=1, masks=lw(1, ["fc1", "up", "fc2"]), trainable=["layers.1.mlp_norm.weight"]),
        dict(name="block0", kind="blocks", first=0, last=0, masks=lw(0, ["k", "up"]), trainable=layer_params(cfg, 0)),
        dict(name="blocks01", kind="blocks", first=0, last=1,
             masks=lw(0, ["q", "k", "v", "o", "fc1", "up", "fc2"]) + lw(1, ["o"]),
             trainable=norms(0) + layer_params(cfg, 1)),
    ]


def sub_reference(cdir, cfg0, spec, g):
    cfg, sd = load_trainable(cdir)
    shapes = R.canon_shapes(cfg)
    for n in spec["trainable"] + spec["masks"]:
        assert n in shapes, n
    masks = {n: (torch.rand(shapes[n], generator=g) < 0.5).to(DT) for n in spec["masks"]}
    ref = R.Ref(cfg, sd, R.canon_to_hf_mask(cfg, sd, masks))
    by_c = {c: (h, tr) for c, h, tr in R.canon_map(cfg)}
    d, N = cfg["d"], B * T
    if spec["kind"] == "linear":
        h, tr = by_c[spec["param"] + ".weight"]
        Wc = R.hf_to_canon(ref.W(h), tr, d)
        bn = spec["param"] + ".bias"
        bc = R.hf_to_canon(ref.W(by_c[bn][0]), by_c[bn][1], d) if bn in by_c else None
        x = f32(torch.randn(N, Wc.shape[1], generator=g, dtype=DT)).requires_grad_(True)
        out = torch.nn.functional.linear(x, Wc, bc)
        rr = f32(torch.randn(out.shape, generator=g, dtype=DT))
    else:
        if spec["kind"] == "attn":
            s0, s1 = 2 * spec["layer"], 2 * spec["layer"] + 1
        elif spec["kind"] == "mlp":
            s0, s1 = 2 * spec["layer"] + 1, 2 * spec["layer"] + 2
        else:
            s0, s1 = 2 * spec["first"], 2 * spec["last"] + 2
        spec["s0"], spec["s1"] = s0, s1
        x = f32(torch.randn(B, T, d, generator=g, dtype=DT)).requires_grad_(True)
        y = x
        for s in range(s0, s1):
            y = ref.sublayer(s, y)
        out = y.reshape(N, d)
        rr = f32(torch.randn(N, d, generator=g, dtype=DT))
    (out * rr).sum().backward()
    grads = R.canon_tensors(cfg, sd, "grad")
    res = {"x": x.detach().reshape(N, -1), "r": rr, "out": out.detach(), "dx": x.grad.reshape(N, -1)}
    for n in spec["trainable"]:
        gr = grads[n]
        assert gr is not None, "%s gets no gradient in %s" % (n, spec["name"])
        res["grad." + n] = gr
    for n, mk in masks.items():
        res["mask." + n] = mk
        if grads[n] is not None:
            assert bool((grads[n][mk == 0] == 0).all()), n
    spec["B"], spec["T"] = B, T
    spec["file"] = "sub_%s.safetensors" % spec["name"]
    R.st_write(os.path.join(cdir, spec["file"]), res)
    return spec


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: gen_cases.py OUTDIR")
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    torch.set_num_threads(1)
    listing = []
    for i, case in enumerate(CASES):
        g = torch.Generator().manual_seed(1234 + i)
        cdir = os.path.join(outdir, case["name"])
        write_model(case, cdir, g)
        loss = full_reference(cdir, g)
        entry = {"name": case["name"], "family": case["hf"]["model_type"], "dtype": case["dtype"],
                 "loss": loss, "subs": None}
        if case["subs"]:
            cfg = R.config_from_hf(case["hf"])
            specs = [sub_reference(cdir, cfg, s, g) for s in sub_specs(cfg)]
            with open(os.path.join(cdir, "subs.json"), "w") as f:
                json.dump(specs, f, indent=1)
            entry["subs"] = "subs.json"
        listing.append(entry)
    with open(os.path.join(outdir, "cases.json"), "w") as f:
        json.dump(listing, f, indent=1)


if __name__ == "__main__":
    main()
