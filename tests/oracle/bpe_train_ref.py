"""A naive reference for fl_bpe_train, for tests/test_bpe.c.

    python3 bpe_train_ref.py VOCAB_SIZE OUT_MERGES FILE...

Trains byte-level BPE the slow, obvious way on ASCII text: GPT-2's
pre-tokenisation (for ASCII, \\p{L} is [A-Za-z] and \\p{N} is [0-9], and
JavaScript's \\s is Python's ASCII \\s), unique pieces counted, then at every
step ALL pair counts recomputed from scratch and the most frequent pair merged
(ties: the lexicographically smallest (left bytes, right bytes)), until the
vocabulary holds VOCAB_SIZE - 1 tokens (then <|endoftext|>). A merge whose
string is already a token adds no token. Writes merges.txt in HF's byte-level
form ("#version: 0.2" then "LEFT RIGHT" lines), as fl_bpe_save does."""
import collections
import re
import sys

PAT = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""", re.ASCII)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def main():
    vocab_size, out, files = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    counts = collections.Counter()
    for f in files:
        text = open(f, "rb").read().decode("ascii")
        for m in PAT.finditer(text):
            if len(m.group(0)) >= 2:
                counts[m.group(0).encode()] += 1
    words = [[bytes([c]) for c in w] for w in counts]
    freq = list(counts.values())
    vocab = {bytes([b]) for b in range(256)}
    merges = []
    while len(vocab) < vocab_size - 1:
        pc = collections.Counter()
        for w, c in zip(words, freq):
            for i in range(len(w) - 1):
                pc[(w[i], w[i + 1])] += c
        if not pc:
            sys.exit("corpus too small")
        a, b = min(pc, key=lambda p: (-pc[p], p[0], p[1]))
        merges.append((a, b))
        vocab.add(a + b)
        for w in words:
            i = 0
            while i < len(w) - 1:
                if w[i] == a and w[i + 1] == b:
                    w[i:i + 2] = [a + b]
                i += 1
    m = bytes_to_unicode()
    name = lambda t: "".join(m[x] for x in t)
    with open(out, "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(f"{name(a)} {name(b)}\n")


main()
