"""PyTorch side of the freelunch speed benchmark (bench/bench_speed.c).

Run by Debian's /usr/bin/python3 (python3-torch 1.13), fp32, on the CPU,
with torch.set_num_threads(--threads). Prints one line per case:

    RESULT torch <case> tok_s=<tokens/s> ms=<median ms/step> ... tokens=<per step>
           times=<every timed step, ms, in run order>

The same cases (names, shapes, work) as bench_speed.c's CASES. A step is:
set every .grad to None (optimizer.zero_grad(set_to_none=True)), forward,
backward. Every parameter requires grad. Block cases: random x [B,T,d]
(requires_grad=False, like freelunch's dx_in=NULL) and y.backward(dy) with a
random dy. Model cases: embedding (+ learned positions for gpt2), blocks,
final norm, LM head (tied to the embedding for gpt2 and tiny), mean
cross-entropy. The pretraining case (tiny-pretrain) adds what `freelunch
pretrain` does after backward: clip_grad_norm_ and an AdamW step.

The implementation is plain and idiomatic: nn.Linear, F.layer_norm, a
manual RMSNorm (torch 1.13 has no nn.RMSNorm), HF-style rotate-half RoPE,
GQA by repeat_interleave of k/v heads, F.gelu(approximate="tanh"),
F.silu(gate) * up. Attention is matmul + masked softmax + matmul over the
full T x T scores: torch 1.13 has no F.scaled_dot_product_attention (it
arrived in 2.0), so there is no fused/flash path to use.
"""
import argparse
import math
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# name, family, d, L, H, KV, F, V, B, T, whole, tied, pretrain  -- keep in
# sync with bench_speed.c. pretrain: the AdamW step of `freelunch pretrain`
# on the preset (lr, weight decay on matrices, clipping, betas), as
# (lr, weight_decay, clip); tiny-pretrain is the `tiny` preset's exact
# configuration (harness/presets.c; bench_speed.c checks its literals).
CASES = [
    ("llama-small-block", "llama", 256, 4, 4, 2, 688, 4096, 8, 256, False, False, None),
    ("llama-small-model", "llama", 256, 4, 4, 2, 688, 4096, 8, 256, True, False, None),
    ("gpt2-small-block", "gpt2", 256, 4, 4, 4, 1024, 4096, 8, 256, False, True, None),
    ("gpt2-small-model", "gpt2", 256, 4, 4, 4, 1024, 4096, 8, 256, True, True, None),
    ("gpt2-124m-block", "gpt2", 768, 1, 12, 12, 3072, 4096, 2, 1024, False, True, None),
    ("tiny-pretrain", "llama", 192, 4, 6, 2, 512, 4096, 8, 256, True, True, (3e-3, 0.1, 1.0)),
]

# Attention alone (bench/bench_attn.c's CASES): name, B, T, H, hd
ATTN_CASES = [
    ("attn-T256", 2, 256, 12, 64),
    ("attn-T1024", 2, 1024, 12, 64),
    ("attn-T2048", 2, 2048, 12, 64),
]


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class LayerNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d))
        self.eps = eps

    def forward(self, x):
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


class Block(nn.Module):
    def __init__(self, fam, d, H, KV, Fd, T):
        super().__init__()
        self.fam, self.H, self.KV, self.hd = fam, H, KV, d // H
        llama = fam == "llama"
        eps = 1e-6 if llama else 1e-5
        norm = (lambda: RMSNorm(d, eps)) if llama else (lambda: LayerNorm(d, eps))
        bias = not llama
        self.attn_norm = norm()
        self.q = nn.Linear(d, H * self.hd, bias=bias)
        self.k = nn.Linear(d, KV * self.hd, bias=bias)
        self.v = nn.Linear(d, KV * self.hd, bias=bias)
        self.o = nn.Linear(H * self.hd, d, bias=bias)
        self.mlp_norm = norm()
        self.fc1 = nn.Linear(d, Fd, bias=bias)
        if llama:
            self.up = nn.Linear(d, Fd, bias=False)
        self.fc2 = nn.Linear(Fd, d, bias=bias)
        self.register_buffer("mask", torch.triu(torch.ones(T, T, dtype=torch.bool), 1), persistent=False)
        if llama:
            inv = 1.0 / (10000.0 ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd))
            ang = torch.outer(torch.arange(T, dtype=torch.float32), inv)
            emb = torch.cat((ang, ang), dim=-1)
            self.register_buffer("cos", emb.cos(), persistent=False)
            self.register_buffer("sin", emb.sin(), persistent=False)

    def forward(self, x):
        B, T, d = x.shape
        H, KV, hd = self.H, self.KV, self.hd
        h = self.attn_norm(x)
        q = self.q(h).view(B, T, H, hd).transpose(1, 2)
        k = self.k(h).view(B, T, KV, hd).transpose(1, 2)
        v = self.v(h).view(B, T, KV, hd).transpose(1, 2)
        if self.fam == "llama":
            cos, sin = self.cos[:T], self.sin[:T]
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
        if KV != H:
            k = k.repeat_interleave(H // KV, dim=1)
            v = v.repeat_interleave(H // KV, dim=1)
        s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        s = s.masked_fill(self.mask[:T, :T], float("-inf"))
        a = torch.softmax(s, dim=-1) @ v
        x = x + self.o(a.transpose(1, 2).reshape(B, T, H * hd))
        h = self.mlp_norm(x)
        if self.fam == "llama":
            h = F.silu(self.fc1(h)) * self.up(h)
        else:
            h = F.gelu(self.fc1(h), approximate="tanh")
        return x + self.fc2(h)


class Model(nn.Module):
    def __init__(self, fam, d, L, H, KV, Fd, V, T, tied):
        super().__init__()
        self.fam = fam
        self.embed = nn.Embedding(V, d)
        if fam == "gpt2":
            self.pos = nn.Embedding(T, d)
        self.blocks = nn.ModuleList([Block(fam, d, H, KV, Fd, T) for _ in range(L)])
        self.final_norm = RMSNorm(d, 1e-6) if fam == "llama" else LayerNorm(d, 1e-5)
        self.lm_head = None if tied else nn.Linear(d, V, bias=False)

    def forward(self, tok, tgt):
        x = self.embed(tok)
        if self.fam == "gpt2":
            x = x + self.pos(torch.arange(tok.shape[1]))
        for b in self.blocks:
            x = b(x)
        x = self.final_norm(x)
        logits = F.linear(x, self.embed.weight) if self.lm_head is None else self.lm_head(x)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), tgt.view(-1))


def init(module):
    g = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for n, p in module.named_parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)


def bench(case, args):
    name, fam, d, L, H, KV, Fd, V, B, T, whole, tied, pretrain = case
    torch.manual_seed(0)
    if whole:
        mod = Model(fam, d, L, H, KV, Fd, V, T, tied)
        tok = torch.randint(0, V, (B, T))
        tgt = torch.randint(0, V, (B, T))
        if pretrain:
            lr, wd, clip = pretrain
            mats = [p for p in mod.parameters() if p.dim() == 2]   # decay on matrices only, as freelunch
            rest = [p for p in mod.parameters() if p.dim() != 2]
            opt = torch.optim.AdamW([{"params": mats, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}],
                                    lr=lr, betas=(0.9, 0.95), eps=1e-8)

            def step():
                opt.zero_grad(set_to_none=True)
                mod(tok, tgt).backward()
                torch.nn.utils.clip_grad_norm_(mod.parameters(), clip)
                opt.step()
        else:
            def step():
                for p in mod.parameters():
                    p.grad = None
                mod(tok, tgt).backward()
    else:
        mod = Block(fam, d, H, KV, Fd, T)
        x = torch.rand(B, T, d) * 2 - 1
        dy = (torch.rand(B, T, d) * 2 - 1) * 1e-3

        def step():
            for p in mod.parameters():
                p.grad = None
            mod(x).backward(dy)
    init(mod)
    step()
    t0 = time.perf_counter()
    step()
    tw = time.perf_counter() - t0
    reps = max(args.min_reps, min(args.max_reps, int(args.seconds / tw)))
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    med = statistics.median(ts)
    N = B * T
    times = ",".join(f"{1e3 * t:.2f}" for t in ts)
    print(f"RESULT torch {name} tok_s={N / med:.1f} ms={1e3 * med:.2f} min_ms={1e3 * min(ts):.2f} reps={reps} "
          f"tokens={N} times={times}", flush=True)


def maxrss_bytes():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def bench_attn(case, args):
    """Causal attention fwd+bwd as Block.forward does it (matmul, masked
    softmax, matmul). peak: the growth of the process's peak RSS over the
    first step, above the inputs q, k, v, dout (already allocated and
    touched): the output, autograd's saved tensors, the gradients and every
    temporary, like bench_attn.c's tracked peak. Run one case per process
    (bench/run.sh does), else a later case's peak hides under an earlier
    one's."""
    name, B, T, H, hd = case
    g = torch.Generator().manual_seed(0)
    q = (torch.rand(B, H, T, hd, generator=g) * 2 - 1).requires_grad_()
    k = (torch.rand(B, H, T, hd, generator=g) * 2 - 1).requires_grad_()
    v = (torch.rand(B, H, T, hd, generator=g) * 2 - 1).requires_grad_()
    dout = torch.rand(B, H, T, hd, generator=g) * 2 - 1
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)

    def step():
        q.grad = k.grad = v.grad = None
        s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        s = s.masked_fill(mask, float("-inf"))
        (torch.softmax(s, dim=-1) @ v).backward(dout)

    r0 = maxrss_bytes()
    step()
    peak = maxrss_bytes() - r0
    t0 = time.perf_counter()
    step()
    tw = time.perf_counter() - t0
    reps = max(args.min_reps, min(args.max_reps, int(args.seconds / tw)))
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        ts.append(time.perf_counter() - t0)
    times = ",".join(f"{1e3 * t:.2f}" for t in ts)
    print(f"RESULT torch-attn {name} ms={1e3 * statistics.median(ts):.2f} peak={peak} reps={reps} times={times}",
          flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--min-reps", type=int, default=5)
    ap.add_argument("--max-reps", type=int, default=15)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("cases", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"TORCH version={torch.__version__} threads={torch.get_num_threads()} "
          f"sdpa={'yes' if hasattr(F, 'scaled_dot_product_attention') else 'no'}", flush=True)
    names = {c[0] for c in CASES} | {c[0] for c in ATTN_CASES}
    for c in args.cases:
        if c not in names:
            print(f"torch_bench.py: unknown case {c}", file=sys.stderr)
            return 2
    for c in CASES:
        if not args.cases or c[0] in args.cases:
            bench(c, args)
    for c in ATTN_CASES:   # only when asked for: see bench_attn
        if c[0] in args.cases:
            bench_attn(c, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
