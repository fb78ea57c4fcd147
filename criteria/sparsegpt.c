/* sparsegpt (Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be
 * Accurately Pruned in One-Shot", ICML 2023), following the reference
 * implementation's fasterprune (IST-DASLab/sparsegpt, sparsegpt.py):
 *
 *   H = 2/n X^T X (n = calibration tokens; only the dampening and dead
 *       inputs see the scale); dead inputs (H_ii = 0) get H_ii = 1 and
 *       W[:, i] = 0; H += 1% of mean(diag H) on the diagonal;
 *   Hinv = the upper Cholesky factor U of H^-1 (H^-1 = U^T U), through
 *       LAPACK: spotrf (H = L L^T), spotri (H^-1), spotrf again;
 *   for each block of 128 columns [i1, i2), with W1 = W[:, i1:i2]:
 *       choose the block's mask (below) by the OBS score w^2 / Hinv_cc^2;
 *       for each column i of the block, per row: q = w or 0 by the mask,
 *       err = (w - q) / Hinv_ii, W1[:, i:] -= err * Hinv[i, i:]  (the
 *       kept weights to the right absorb the error: OBS compensation);
 *       then the lazy update W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:] (fl_gemm).
 *
 * Mask selection ("adaptive mask selection" per block):
 *   - N:M: as the reference with prune_n = M-N, prune_m = M: at the first
 *     column of each group of M, in each row, prune the M-N smallest scores
 *     of the group, computed from the weights as updated so far. Groups are
 *     the absolute groups of M input columns: the block size is 128 when M
 *     divides 128, else the smallest multiple of M above 128.
 *   - unstructured: the reference thresholds the whole block matrix (all
 *     rows x 128 columns) at the sparsity's quantile, so rows and the
 *     matrix only get the requested sparsity approximately. freelunch's
 *     patterns are exact, so each block gets its exact share of the count,
 *     chosen by the OBS score at the block's start:
 *       FL_PAT_ROW:    row r prunes k_b = floor(k*i2/C) - floor(k*i1/C) of
 *                      the block's columns (k = the row's count), its k_b
 *                      smallest scores in the block;
 *       FL_PAT_MATRIX: the K_b = floor(K*i2/C) - floor(K*i1/C) smallest
 *                      scores over the whole block matrix (K = the matrix's
 *                      count): the reference's rule with an exact count.
 *     Shares telescope, so every row (resp. the matrix) ends with exactly
 *     its count. Ties keep the lower index (fl_mask_from_scores).
 *
 * Everything is float32 like the reference. Rows are independent within a
 * block, so the per-column loop runs row-parallel; the lazy update is one
 * GEMM per block. */
#include "criterion.h"
#include "model/alloc.h"
#include "model/err.h"
#include "model/gemm.h"
#include "model/lapack.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double sgpt_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

#define SGPT_BLOCK 128
#define SGPT_PERCDAMP 0.01

/* Reverses the n*n floats of a: for a row-major square matrix this is
 * J A J (J = the exchange matrix: rows and columns in reverse order). */
static void flip(float *a, int64_t nn) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < nn / 2; i++) {
        float t = a[i];
        a[i] = a[nn - 1 - i];
        a[nn - 1 - i] = t;
    }
}

/* H (row-major, symmetric positive definite) := U, the upper Cholesky factor
 * of H^-1 (H^-1 = U^T U, U upper with a positive diagonal), in the upper
 * triangle; the strict lower triangle is zeroed.
 *
 * The reference computes it as cholesky(cholesky_inverse(cholesky(H)),
 * upper=True), i.e. potrf, potri (= trtri + lauum), potrf: 4/3 n^3 flops.
 * The same factor comes from one Cholesky and one triangular inverse of the
 * reversed matrix (2/3 n^3): with J H J = R^T R (R upper),
 *     H^-1 = J R^-1 R^-T J = (J R^-1 J)(J R^-1 J)^T,
 * and J R^-1 J is lower with a positive diagonal, so by uniqueness
 * U = (J R^-1 J)^T. In memory: a row-major symmetric matrix is its own
 * column-major image, and flipping the array is J.J; LAPACK's column-major
 * upper triangle is our row-major lower one, so after spotrf('U'),
 * strtri('U') and a second flip, our row-major upper triangle holds
 * (J R^-1 J)^T = U. tests/test_sparsegpt.c checks the result against
 * PyTorch's three-step path in float64. */
static int upper_cholesky_of_inverse(float *H, int C) {
    int n = C, info = 0;
    const int64_t nn = (int64_t)C * C;
    flip(H, nn);
    spotrf_("U", &n, H, &n, &info, 1);
    if (info != 0)
        return fl_err("criterion sparsegpt: the dampened Hessian 2/n X^T X + damp*I is not positive definite "
                      "(LAPACK spotrf info %d): non-finite calibration statistics?", info);
    strtri_("U", "N", &n, H, &n, &info, 1, 1);
    if (info != 0)
        return fl_err("criterion sparsegpt: the Hessian's Cholesky factor is singular (LAPACK strtri info %d)", info);
    flip(H, nn);
    #pragma omp parallel for schedule(static)
    for (int r = 1; r < C; r++) memset(H + (int64_t)r * C, 0, sizeof(float) * r);
    fl_flops_add((uint64_t)(2.0 / 3.0 * (double)C * C * C));   /* potrf n^3/3, trtri n^3/3 */
    return 0;
}

/* Keeps all of s[0..n) but its k lowest entries (NaN counts as lowest):
 * keep[i] = 0 for those, 1 for the rest. Among equal scores the higher index
 * is pruned first (the lower kept), as fl_mask_from_scores does. O(n):
 * quickselect the k-th lowest value v, prune everything below v, then the
 * highest-indexed entries equal to v. buf: n floats of scratch. */
static inline float score_key(float x) { return x != x ? -INFINITY : x; }

static void prune_k_lowest(const float *s, int64_t n, int64_t k, uint8_t *keep, float *buf) {
    if (n <= 0) return;
    if (k <= 0) { memset(keep, 1, (size_t)n); return; }
    if (k >= n) { memset(keep, 0, (size_t)n); return; }
    for (int64_t i = 0; i < n; i++) buf[i] = score_key(s[i]);
    int64_t lo = 0, hi = n - 1, want = k - 1;
    while (lo < hi) {   /* Hoare partition around the median of three */
        int64_t mid = lo + (hi - lo) / 2;
        float a = buf[lo], b = buf[mid], c = buf[hi];
        float piv = a < b ? (b < c ? b : a < c ? c : a) : (a < c ? a : b < c ? c : b);
        int64_t i = lo, j = hi;
        while (i <= j) {
            while (buf[i] < piv) i++;
            while (buf[j] > piv) j--;
            if (i <= j) { float t = buf[i]; buf[i] = buf[j]; buf[j] = t; i++; j--; }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break;   /* buf[j+1 .. i-1] all equal the pivot */
    }
    const float v = buf[want];
    int64_t below = 0;
    for (int64_t i = 0; i < n; i++) below += score_key(s[i]) < v;
    int64_t at = k - below;   /* how many entries equal to v are pruned */
    for (int64_t i = n - 1; i >= 0; i--) {
        float x = score_key(s[i]);
        if (x < v) keep[i] = 0;
        else if (x == v && at > 0) { keep[i] = 0; at--; }
        else keep[i] = 1;
    }
}

static int sparsegpt_prune(fl_prune_job *j) {
    const int R = j->rows, C = j->cols;
    const fl_pattern *p = &j->pat;
    const int nm = p->kind == FL_PAT_NM, M = nm ? p->m : 0, NP = nm ? p->m - p->n : 0;
    float *W = j->W;

    /* ---- H, dead inputs, dampening, Hinv ---- */
    double t0 = sgpt_now(), t_sel = 0, t_cols = 0, t_gemm = 0;
    float *H = fl_allocf((size_t)C * C);
    const float scale = j->st->nsamples > 0 ? (float)(2.0 / (double)j->st->nsamples) : 1.0f;
    const float *G = j->st->gram;
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < C; r++)
        for (int c = 0; c < C; c++) H[(int64_t)r * C + c] = scale * G[(int64_t)r * C + c];
    int ndead = 0;
    double dsum = 0;
    for (int c = 0; c < C; c++) {
        float *h = H + (int64_t)c * C + c;
        if (*h == 0.0f) {
            *h = 1.0f;
            ndead++;
            for (int r = 0; r < R; r++) W[(int64_t)r * C + c] = 0.0f;
        }
        dsum += *h;
    }
    const float damp = (float)(SGPT_PERCDAMP * dsum / C);
    for (int c = 0; c < C; c++) H[(int64_t)c * C + c] += damp;
    if (upper_cholesky_of_inverse(H, C) != 0) { fl_free(H); return -1; }
    const float *Hinv = H;
    const double t_hinv = sgpt_now() - t0;

    /* ---- blocks ---- */
    int bs = SGPT_BLOCK;
    if (nm && SGPT_BLOCK % M) bs = (SGPT_BLOCK + M - 1) / M * M;
    const int64_t krow = fl_pattern_row_pruned(p, C);
    const int64_t kmat = llround(p->sparsity * (double)R * C);
    float *Err = fl_allocf((size_t)R * bs);
    uint8_t *keep = fl_alloc((size_t)R * bs);
    float *score = p->kind == FL_PAT_MATRIX ? fl_allocf((size_t)R * bs) : NULL;
    float *sbuf = p->kind == FL_PAT_MATRIX ? fl_allocf((size_t)R * bs) : NULL;
    double loss = 0;

    for (int i1 = 0; i1 < C; i1 += bs) {
        const int i2 = i1 + bs < C ? i1 + bs : C, cnt = i2 - i1;
        const int64_t kb = p->kind == FL_PAT_ROW ? krow * i2 / C - krow * i1 / C : 0;
        double ta = sgpt_now();
        if (p->kind == FL_PAT_MATRIX) {   /* the block's share of the matrix's count, over all rows */
            #pragma omp parallel for schedule(static)
            for (int r = 0; r < R; r++)
                for (int c = 0; c < cnt; c++) {
                    float w = W[(int64_t)r * C + i1 + c], d = Hinv[(int64_t)(i1 + c) * C + i1 + c];
                    score[(int64_t)r * cnt + c] = w * w / (d * d);
                }
            prune_k_lowest(score, (int64_t)R * cnt, kmat * i2 / C - kmat * i1 / C, keep, sbuf);
        }
        double tb = sgpt_now();
        #pragma omp parallel reduction(+:loss)
        {
            float *w1 = malloc(sizeof(float) * bs * 3), *sc = w1 + bs, *tmp = w1 + 2 * bs;
            #pragma omp for schedule(static)
            for (int r = 0; r < R; r++) {
                float *wr = W + (int64_t)r * C + i1;
                float *er = Err + (int64_t)r * cnt;
                uint8_t *kr = keep + (int64_t)r * cnt;
                memcpy(w1, wr, sizeof(float) * cnt);
                if (p->kind == FL_PAT_ROW) {   /* the block's share of the row's count */
                    for (int c = 0; c < cnt; c++) {
                        float d = Hinv[(int64_t)(i1 + c) * C + i1 + c];
                        sc[c] = w1[c] * w1[c] / (d * d);
                    }
                    prune_k_lowest(sc, cnt, kb, kr, tmp);
                }
                for (int i = 0; i < cnt; i++) {
                    const float *hrow = Hinv + (int64_t)(i1 + i) * C + i1;
                    if (nm && i % M == 0) {   /* this group's M-N, by the scores as updated so far */
                        for (int c = 0; c < M; c++) {
                            float d = Hinv[(int64_t)(i1 + i + c) * C + i1 + i + c];
                            sc[c] = w1[i + c] * w1[i + c] / (d * d);
                        }
                        prune_k_lowest(sc, M, NP, kr + i, tmp);
                    }
                    const float w = w1[i], d = hrow[i];
                    const float q = kr[i] ? w : 0.0f;
                    const float e = (w - q) / d;
                    er[i] = e;
                    if (e != 0.0f) {
                        loss += (double)e * e / 2;
                        for (int c = i + 1; c < cnt; c++) w1[c] -= e * hrow[c];
                    }
                    w1[i] = q;
                }
                memcpy(wr, w1, sizeof(float) * cnt);
                memcpy(j->mask + (int64_t)r * C + i1, kr, (size_t)cnt);
            }
            free(w1);
        }
        fl_flops_add((uint64_t)R * cnt * cnt);
        double tc = sgpt_now();
        if (i2 < C)   /* lazy update: W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:] */
            fl_gemm(0, 0, R, C - i2, cnt, -1.0f, Err, cnt, Hinv + (int64_t)i1 * C + i2, C, 1.0f, W + i2, C);
        t_sel += tb - ta;
        t_cols += tc - tb;
        t_gemm += sgpt_now() - tc;
    }
    if (j->verbose)
        fprintf(stderr, "sparsegpt: %dx%d, %d dead inputs, damp %.4g, OBS error %.6g; "
                "seconds: H^-1 %.3f, matrix masks %.3f, columns %.3f, lazy GEMM %.3f\n",
                R, C, ndead, damp, loss, t_hinv, t_sel, t_cols, t_gemm);
    fl_free(sbuf);
    fl_free(score);
    fl_free(keep);
    fl_free(Err);
    fl_free(H);
    return 0;
}

const fl_criterion fl_crit_sparsegpt = {
    .name = "sparsegpt",
    .desc = "SparseGPT: OBS pruning in lazy 128-column blocks; updates the kept weights",
    .stats = FL_STATS_GRAM, .prune = sparsegpt_prune,
};
