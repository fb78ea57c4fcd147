"""Perplexity oracle: the SparseGPT/Wanda protocol (and HF's sliding-window
variant) computed with the independent PyTorch model of torch_ref.py.

usage: ppl_ref.py MODEL_DIR TOKENS.bin SEQLEN STRIDE MAX_WINDOWS
prints {"nll": mean NLL, "tokens": predicted tokens} as JSON."""
import json, os, sys
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ref import load_hf, read_tokens, Ref  # noqa: E402


d, tokf, seqlen, stride, maxw = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
cfg, sd = load_hf(d)
model = Ref(cfg, sd)
ids = read_tokens(tokf)
if stride <= 0 or stride > seqlen:
    stride = seqlen
nll_sum, count, prev_end, w = 0.0, 0, 0, 0
# HF's recipe: window [begin, begin+seqlen); labels of tokens already
# predicted are masked; non-overlapping windows (stride == seqlen) then give
# SparseGPT's protocol, where each window's first token is never predicted.
for begin in range(0, len(ids) - seqlen + 1, stride):
    if maxw > 0 and w >= maxw:
        break
    end = begin + seqlen
    x = ids[begin:end][None]
    with torch.no_grad():
        lg = model.logits(x)[0]
    tgt = x[0, 1:].clone()
    if stride < seqlen and w > 0:
        new = end - prev_end            # tokens not predicted before
        tgt[: seqlen - 1 - new] = -100
    nll = F.cross_entropy(lg[:-1].double(), tgt, ignore_index=-100, reduction="sum")
    nll_sum += nll.item()
    count += int((tgt != -100).sum())
    prev_end = end
    w += 1
print(json.dumps({"nll": nll_sum / count, "tokens": count}))
