"""SparseGPT oracle: a PyTorch implementation of the published algorithm
(Frantar & Alistarh, ICML 2023, Algorithm 1; the reference code's
SparseGPT.fasterprune in IST-DASLab/sparsegpt), used by tests/test_sparsegpt.c
(correctness, float64) and bench/bench_criteria.c (speed, float32).

The algorithm, for W [rows, cols] and calibration inputs X [n, cols]:
  H = 2/n X^T X; dead inputs (H_ii == 0): H_ii = 1, W[:, i] = 0;
  H += 1% of mean(diag H) * I; Hinv = upper Cholesky factor of H^-1;
  for each block of `blocksize` columns: choose the block's mask, then for
  each column i: q = w masked, err = (w - q) / Hinv_ii, the remaining
  columns of the block absorb err * Hinv[i, i:]; after the block the
  columns to its right absorb Err1 @ Hinv[i1:i2, i2:].

Mask selection, by the OBS score w^2 / Hinv_cc^2 (w as updated so far):
  nm      the reference's prune_n/prune_m rule: at the first column of each
          group of m, per row, prune the m-n smallest scores of the group.
          The block size is a multiple of m (128, or the next multiple of m
          above it) so that groups never straddle blocks.
  matrix  the reference thresholds the block's scores over all rows at the
          sparsity's quantile; here each block prunes exactly its share
          K*i2//cols - K*i1//cols of the matrix's count K = round(s*rows*cols),
          its smallest scores over the whole block.
  row     the same per row: row r prunes k*i2//cols - k*i1//cols of the
          block's columns, its smallest scores in the block, k = round(s*cols).
  The shares telescope to exactly k per row (K per matrix).

usage: sparsegpt_ref.py DIR ROWS COLS N PATTERN [--dtype float64|float32]
                        [--threads T] [--bench REPS]
  PATTERN: row:S | matrix:S | nm:N:M
  reads DIR/W.f32 (float32 [ROWS, COLS]) and DIR/X.f32 (float32 [N, COLS]);
  writes DIR/W_ref.f32 (the pruned and updated W, float32) and
  DIR/mask_ref.u8 (1 = kept). With --bench, times the Hessian
  (H = 2/n X^T X) and the pruning REPS times each and prints
      RESULT torch-sparsegpt h_ms=<median> prune_ms=<median>
"""
import argparse
import math
import statistics
import sys
import time

import torch


def hessian(X):
    return (2.0 / X.shape[0]) * (X.t() @ X)


def sparsegpt(W, H, pattern, blocksize=128, percdamp=0.01):
    """Returns (pruned and updated W, keep mask). H is consumed."""
    kind = pattern[0]
    W = W.clone()
    rows, cols = W.shape

    dead = torch.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0
    damp = percdamp * torch.mean(torch.diag(H))
    diag = torch.arange(cols)
    H[diag, diag] += damp
    H = torch.linalg.cholesky(H)
    H = torch.cholesky_inverse(H)
    Hinv = torch.linalg.cholesky(H, upper=True)

    if kind == "nm":
        keep_n, m = pattern[1], pattern[2]
        prune_n = m - keep_n
        if blocksize % m:
            blocksize = -(-blocksize // m) * m
    elif kind == "row":
        k_row = math.floor(pattern[1] * cols + 0.5)
    else:
        k_mat = math.floor(pattern[1] * rows * cols + 0.5)

    pruned = torch.zeros(rows, cols, dtype=torch.bool)
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        count = i2 - i1
        W1 = W[:, i1:i2].clone()
        Q1 = torch.zeros_like(W1)
        Err1 = torch.zeros_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        d1 = torch.diag(Hinv1)

        mask1 = torch.zeros_like(W1, dtype=torch.bool)   # True = prune
        if kind == "row":
            kb = k_row * i2 // cols - k_row * i1 // cols
            if kb > 0:
                score = W1 ** 2 / d1.reshape(1, -1) ** 2
                mask1.scatter_(1, torch.topk(score, kb, dim=1, largest=False)[1], True)
        elif kind == "matrix":
            kb = k_mat * i2 // cols - k_mat * i1 // cols
            if kb > 0:
                score = (W1 ** 2 / d1.reshape(1, -1) ** 2).flatten()
                mask1.view(-1)[torch.topk(score, kb, largest=False)[1]] = True

        for i in range(count):
            w = W1[:, i]
            d = Hinv1[i, i]
            if kind == "nm" and i % m == 0:
                tmp = W1[:, i:i + m] ** 2 / d1[i:i + m].reshape(1, -1) ** 2
                mask1.scatter_(1, i + torch.topk(tmp, prune_n, dim=1, largest=False)[1], True)
            q = w.clone()
            q[mask1[:, i]] = 0
            Q1[:, i] = q
            err1 = (w - q) / d
            W1[:, i:] -= err1.unsqueeze(1).matmul(Hinv1[i, i:].unsqueeze(0))
            Err1[:, i] = err1

        W[:, i1:i2] = Q1
        pruned[:, i1:i2] = mask1
        W[:, i2:] -= Err1.matmul(Hinv[i1:i2, i2:])
    return W, ~pruned


def parse_pattern(s):
    p = s.split(":")
    if p[0] in ("row", "matrix") and len(p) == 2:
        return (p[0], float(p[1]))
    if p[0] == "nm" and len(p) == 3:
        return ("nm", int(p[1]), int(p[2]))
    sys.exit(f"sparsegpt_ref.py: pattern '{s}': expected row:S, matrix:S or nm:N:M")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("rows", type=int)
    ap.add_argument("cols", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("pattern")
    ap.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--bench", type=int, default=0)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    dt = torch.float64 if a.dtype == "float64" else torch.float32
    pattern = parse_pattern(a.pattern)

    def load(name, n):
        t = torch.from_file(f"{a.dir}/{name}", size=n, dtype=torch.float32)
        return t.to(dt)

    W = load("W.f32", a.rows * a.cols).reshape(a.rows, a.cols)
    X = load("X.f32", a.n * a.cols).reshape(a.n, a.cols)

    if a.bench > 0:
        th, tp = [], []
        for _ in range(a.bench):
            t0 = time.perf_counter()
            H = hessian(X)
            t1 = time.perf_counter()
            Wp, keep = sparsegpt(W, H, pattern)
            t2 = time.perf_counter()
            th.append(t1 - t0)
            tp.append(t2 - t1)
        print(f"RESULT torch-sparsegpt threads={torch.get_num_threads()} dtype={a.dtype} "
              f"h_ms={1e3 * statistics.median(th):.2f} prune_ms={1e3 * statistics.median(tp):.2f}")
    else:
        Wp, keep = sparsegpt(W, hessian(X), pattern)
    Wp.to(torch.float32).contiguous().numpy().tofile(f"{a.dir}/W_ref.f32")
    keep.to(torch.uint8).contiguous().numpy().tofile(f"{a.dir}/mask_ref.u8")


if __name__ == "__main__":
    main()
