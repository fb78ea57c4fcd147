"""Multiple-choice oracle: a task file scored the way lm-evaluation-harness
scores it, written from lm-eval's own code (lm_eval/api/task.py
construct_requests / process_results, lm_eval/models/huggingface.py
_encode_pair / _loglikelihood_tokens, and each task's YAML + utils.py), on
the independent PyTorch model of torch_ref.py.

The tokenizer of the test models is byte-level with no merges (ids 0..255 =
the bytes, 256 = <|endoftext|>), so tokenising is s.encode("utf-8") here,
independently of freelunch's BPE code. With MC_REF_HF=NODE_PREFIX:TOKDIR in
the environment, a real tokenizer.json is used instead, through HF's own
JavaScript encoder (hf_tokenizer_ref.mjs --lines: encode without special
tokens, as HFLM.tok_encode does by default), and an empty context becomes
the config's bos_token_id (HFLM.prefix_token_id).

usage: mc_ref.py MODEL_DIR WINDOW FORMAT FILE OUT.json [FORMAT FILE OUT.json]...
writes to each OUT.json {"loglik": [[per choice] per item], "greedy": [[...]], "gold": [...],
        "acc": ..., "acc_norm": ..., "ppl": ...} as JSON."""
import csv
import json
import math
import os
import re
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_ref import load_hf, Ref  # noqa: E402

EOT = 256
HF = None  # the node encoder's pipes, with MC_REF_HF


def encode(s):
    if HF is None:
        return list(s.encode("utf-8"))
    HF.stdin.write(json.dumps(s) + "\n")
    HF.stdin.flush()
    return json.loads(HF.stdout.readline())


def hs_preprocess(text):  # lm_eval/tasks/hellaswag/utils.py
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def docs(fmt, path):
    if fmt == "rte" and path.endswith(".tsv"):
        with open(path, newline="") as f:
            yield from csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        return
    for line in open(path, encoding="utf-8"):
        if line.strip():
            yield json.loads(line)


def ai2(doc, stem_key):
    q = doc.get("question")
    if isinstance(q, dict):
        stem, ch = q["stem"], q["choices"]
        return stem, [c["text"] for c in ch], [c["label"] for c in ch]
    return doc[stem_key], doc["choices"]["text"], doc["choices"]["label"]


def build(fmt, doc):
    """(contexts or None, context, choices, continuation target or None, gold)"""
    if fmt == "boolq":
        label = doc["label"] if "label" in doc else doc["answer"]
        return None, f"{doc['passage']}\nQuestion: {doc['question']}?\nAnswer:", ["no", "yes"], None, int(label)
    if fmt == "rte":
        a, b = (doc["sentence1"], doc["sentence2"]) if "sentence1" in doc else (doc["premise"], doc["hypothesis"])
        lab = doc["label"]
        lab = {"entailment": 0, "not_entailment": 1}.get(lab, lab)
        return None, f"{a}\nQuestion: {b} True or False?\nAnswer:", ["True", "False"], None, int(lab)
    if fmt == "hellaswag":
        ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
        return (None, hs_preprocess(doc["activity_label"] + ": " + ctx), [hs_preprocess(e) for e in doc["endings"]],
                None, int(doc["label"]))
    if fmt == "winogrande":
        idx = doc["sentence"].index("_")
        choices = [doc["sentence"][:idx] + o for o in (doc["option1"], doc["option2"])]
        target = doc["sentence"][idx + 1:].strip()
        return choices, None, choices, target, {"1": 0, "2": 1}[doc["answer"]]
    if fmt in ("arc_easy", "arc_challenge"):
        stem, text, labels = ai2(doc, "question")
        return None, f"Question: {stem}\nAnswer:", text, None, labels.index(doc["answerKey"])
    if fmt == "openbookqa":
        stem, text, labels = ai2(doc, "question_stem")
        return None, stem, text, None, labels.index(doc["answerKey"].lstrip())
    if fmt == "lambada":
        t = doc["text"]
        return None, " ".join(t.split(" ")[:-1]), None, " " + t.split(" ")[-1], 0
    if fmt == "mc":
        return None, doc["context"], doc["choices"], None, int(doc["label"])
    raise SystemExit("unknown format " + fmt)


def encode_pair(context, continuation):  # HFLM._encode_pair
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = encode(context + continuation)
    ctx = encode(context)
    return ctx, whole[len(ctx):]


def loglik(model, context, continuation, window):
    if context == "":
        ctx, cont = [EOT], encode(continuation)
    else:
        ctx, cont = encode_pair(context, continuation)
    inp = torch.tensor((ctx + cont)[-(window + 1):][:-1])[None]
    with torch.no_grad():
        lg = F.log_softmax(model.logits(inp)[0].double(), dim=-1)
    n = inp.shape[1]
    lg = lg[n - len(cont):n]
    tgt = torch.tensor(cont)
    return lg.gather(1, tgt[:, None]).sum().item(), bool((lg.argmax(-1) == tgt).all())


def main():
    global HF, EOT
    d, window = sys.argv[1], int(sys.argv[2])
    if os.environ.get("MC_REF_HF"):
        import subprocess
        prefix, tokdir = os.environ["MC_REF_HF"].split(":", 1)
        mjs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hf_tokenizer_ref.mjs")
        HF = subprocess.Popen(["node", mjs, "--lines", prefix, tokdir], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, encoding="utf-8")
        with open(os.path.join(d, "config.json")) as f:
            EOT = json.load(f)["bos_token_id"]
    cfg, sd = load_hf(d)
    model = Ref(cfg, sd)
    a = sys.argv[3:]
    for i in range(0, len(a), 3):
        with open(a[i + 2], "w") as f:
            f.write(score(model, a[i], a[i + 1], window) + "\n")


def score(model, fmt, path, window):
    out = {"loglik": [], "greedy": [], "gold": []}
    acc = accn = sll = 0.0
    n = 0
    for doc in docs(fmt, path):
        ctxs, ctx, choices, target, gold = build(fmt, doc)
        if fmt == "lambada":
            reqs = [(ctx, target)]
        elif ctxs is not None:
            reqs = [(c, " " + target) for c in ctxs]
        else:
            reqs = [(ctx, " " + c) for c in choices]
        res = [loglik(model, c, k, window) for c, k in reqs]
        lls = [r[0] for r in res]
        out["loglik"].append(lls)
        out["greedy"].append([r[1] for r in res])
        out["gold"].append(gold)
        if fmt == "lambada":
            acc += res[0][1]
            sll += lls[0]
        else:
            t = torch.tensor(lls)
            lens = torch.tensor([float(len(c)) for c in choices], dtype=torch.float64)
            acc += int(t.argmax()) == gold
            accn += int((t / lens).argmax()) == gold
        n += 1
    out["acc"] = acc / n
    out["acc_norm"] = accn / n
    out["ppl"] = math.exp(-sll / n) if fmt == "lambada" else None
    return json.dumps(out)


main()
