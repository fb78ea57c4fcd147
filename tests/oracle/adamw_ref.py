"""AdamW and SGD oracle: torch.optim.AdamW, or torch.optim.SGD with momentum
(dampening 0, no nesterov: torch's defaults, as the paper's code builds it),
with a LambdaLR schedule written from the documented formula (freelunch's
model/adamw.h), global-norm clipping, weight decay on the matrix only, and a
mask re-applied after every step.

usage: adamw_ref.py DIR  (DIR/in.bin written by tests/test_adamw.c)
in.bin: int32 [rows, cols, vec, steps, warmup, sched(0 const,1 lin,2 cos), optim(0 adamw,1 sgd)],
        float32 [lr, b1, b2, eps, wd, clip, minfrac, momentum], then float32 W[rows*cols],
        bvec[vec], mask[rows*cols] (0/1), then per step grads W, grads bvec.
out.bin: float32 W, bvec after all steps."""
import math, struct, sys
import torch

d = sys.argv[1]
raw = open(d + "/in.bin", "rb").read()
rows, cols, vec, steps, warmup, sched, optim = struct.unpack_from("<7i", raw, 0)
lr, b1, b2, eps, wd, clip, minfrac, mom = struct.unpack_from("<8f", raw, 28)
f = torch.frombuffer(bytearray(raw[60:]), dtype=torch.float32).double()
nW = rows * cols
W = f[:nW].clone().reshape(rows, cols).requires_grad_(True)
bv = f[nW:nW + vec].clone().requires_grad_(True)
mask = f[nW + vec:2 * nW + vec].reshape(rows, cols)
g = f[2 * nW + vec:]

def factor(t):  # t is 1-based
    if t <= warmup:
        return t / warmup
    fac = 1.0
    if steps > warmup and sched != 0:
        span = steps - warmup
        k = min(t - warmup - 1, span - 1)
        fac = (span - k) / span if sched == 1 else 0.5 * (1 + math.cos(math.pi * k / span))
    return minfrac + (1 - minfrac) * fac

groups = [{"params": [W], "weight_decay": wd}, {"params": [bv], "weight_decay": 0.0}]
if optim == 1:
    opt = torch.optim.SGD(groups, lr=lr, momentum=mom, dampening=0, nesterov=False)
else:
    opt = torch.optim.AdamW(groups, lr=lr, betas=(b1, b2), eps=eps)
sch = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: factor(k + 1))
off = 0
for s in range(steps):
    W.grad = g[off:off + nW].reshape(rows, cols).clone(); off += nW
    bv.grad = g[off:off + vec].clone(); off += vec
    if clip > 0:
        torch.nn.utils.clip_grad_norm_([W, bv], clip)
    opt.step()
    sch.step()
    with torch.no_grad():
        W.mul_(mask)
out = torch.cat([W.detach().reshape(-1), bv.detach()]).float()
open(d + "/out.bin", "wb").write(out.numpy().tobytes())
