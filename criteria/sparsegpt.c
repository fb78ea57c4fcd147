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

/* LAPACK (Fortran interface; Debian's OpenBLAS exports it). The trailing
 * size_t is gfortran's hidden length of the character argument. */
extern void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t uplo_len);
extern void spotri_(const char *uplo, const int *n, float *a, const int *lda, int *info, size_t uplo_len);

#define SGPT_BLOCK 128
#define SGPT_PERCDAMP 0.01

/* Hinv (row-major, upper triangle) := upper Cholesky factor of H^-1, from
 * the dampened H in the same buffer. A row-major symmetric matrix is its own
 * column-major transpose, and LAPACK's column-major lower triangle is our
 * row-major upper one: spotrf('L') gives H = L L^T, spotri('L') H^-1 in that
 * triangle, spotrf('L') again H^-1 = L' L'^T, and L'^T read row-major is the
 * upper factor U with H^-1 = U^T U. The strict lower part is zeroed. */
static int upper_cholesky_of_inverse(float *H, int C) {
    int n = C, info = 0;
    spotrf_("L", &n, H, &n, &info, 1);
    if (info != 0)
        return fl_err("criterion sparsegpt: the dampened Hessian 2/n X^T X + damp*I is not positive definite "
                      "(LAPACK spotrf info %d): non-finite calibration statistics?", info);
    spotri_("L", &n, H, &n, &info, 1);
    if (info != 0) return fl_err("criterion sparsegpt: the Hessian's inverse failed (LAPACK spotri info %d)", info);
    spotrf_("L", &n, H, &n, &info, 1);
    if (info != 0)
        return fl_err("criterion sparsegpt: the inverse Hessian is not positive definite in float32 "
                      "(LAPACK spotrf info %d): the calibration inputs are too ill-conditioned", info);
    #pragma omp parallel for schedule(static)
    for (int r = 1; r < C; r++) memset(H + (int64_t)r * C, 0, sizeof(float) * r);
    double c3 = (double)C * C * C;
    fl_flops_add((uint64_t)(4.0 / 3.0 * c3));   /* potrf n^3/3, potri 2n^3/3, potrf n^3/3 */
    return 0;
}

typedef struct { float s; int i; } sgpt_si;
static int cmp_sgpt_si(const void *a, const void *b) {   /* ascending, ties: higher index first */
    const sgpt_si *x = a, *y = b;
    if (x->s < y->s) return -1;
    if (x->s > y->s) return 1;
    return (x->i < y->i) - (x->i > y->i);
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
    float *score = nm ? NULL : fl_allocf((size_t)R * bs);
    uint8_t *keep = fl_alloc((size_t)R * bs);
    double loss = 0;

    for (int i1 = 0; i1 < C; i1 += bs) {
        const int i2 = i1 + bs < C ? i1 + bs : C, cnt = i2 - i1;
        double ta = sgpt_now();
        if (!nm) {
            #pragma omp parallel for schedule(static)
            for (int r = 0; r < R; r++)
                for (int c = 0; c < cnt; c++) {
                    float w = W[(int64_t)r * C + i1 + c], d = Hinv[(int64_t)(i1 + c) * C + i1 + c];
                    score[(int64_t)r * cnt + c] = w * w / (d * d);
                }
            /* This block's exact share of the row's / matrix's count, as a
             * fraction whose product with the block size rounds back to it. */
            fl_pattern sub = *p;
            if (p->kind == FL_PAT_ROW)
                sub.sparsity = (double)(krow * i2 / C - krow * i1 / C) / cnt;
            else
                sub.sparsity = (double)(kmat * i2 / C - kmat * i1 / C) / ((double)R * cnt);
            fl_mask_from_scores(score, R, cnt, &sub, keep);
        }
        double tb = sgpt_now();
        #pragma omp parallel reduction(+:loss)
        {
            float *w1 = malloc(sizeof(float) * bs);
            sgpt_si *grp = nm ? malloc(sizeof(sgpt_si) * M) : NULL;
            #pragma omp for schedule(static)
            for (int r = 0; r < R; r++) {
                float *wr = W + (int64_t)r * C + i1;
                float *er = Err + (int64_t)r * cnt;
                uint8_t *kr = keep + (int64_t)r * cnt;
                memcpy(w1, wr, sizeof(float) * cnt);
                for (int i = 0; i < cnt; i++) {
                    const float *hrow = Hinv + (int64_t)(i1 + i) * C + i1;
                    if (nm && i % M == 0) {
                        for (int c = 0; c < M; c++) {
                            float dd = Hinv[(int64_t)(i1 + i + c) * C + i1 + i + c];
                            grp[c] = (sgpt_si){ w1[i + c] * w1[i + c] / (dd * dd), c };
                            if (grp[c].s != grp[c].s) grp[c].s = -INFINITY;
                        }
                        qsort(grp, (size_t)M, sizeof *grp, cmp_sgpt_si);
                        memset(kr + i, 1, (size_t)M);
                        for (int c = 0; c < NP; c++) kr[i + grp[c].i] = 0;
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
            free(grp);
            free(w1);
        }
        fl_flops_add((uint64_t)R * cnt * cnt);
        double tc = sgpt_now();
        if (i2 < C)
            fl_gemm(0, 0, R, C - i2, cnt, -1.0f, Err, cnt, Hinv + (int64_t)i1 * C + i2, C, 1.0f, W + i2, C);
        t_sel += tb - ta;
        t_cols += tc - tb;
        t_gemm += sgpt_now() - tc;
    }
    if (j->verbose)
        fprintf(stderr, "sparsegpt: %dx%d, %d dead inputs, damp %.4g, OBS error %.6g; "
                "seconds: H^-1 %.3f, masks %.3f, columns %.3f, lazy GEMM %.3f\n",
                R, C, ndead, damp, loss, t_hinv, t_sel, t_cols, t_gemm);
    fl_free(keep);
    fl_free(score);
    fl_free(Err);
    fl_free(H);
    return 0;
}

const fl_criterion fl_crit_sparsegpt = {
    .name = "sparsegpt",
    .desc = "SparseGPT: OBS pruning with lazy 128-column blocks, updates the kept weights (Gram matrix)",
    .stats = FL_STATS_GRAM, .prune = sparsegpt_prune,
};
