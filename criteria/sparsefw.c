/* sparsefw[:warm=SPEC,alpha=A,iters=T] (Roux et al., "Don't Be Greedy, Just
 * Relax! Pruning LLMs via Frank-Wolfe", arXiv 2510.13713): solve the convex
 * relaxation of the layer-wise mask selection problem by Frank-Wolfe, then
 * round to a mask of the pattern.
 *
 *   minimise f(m) = sum_i r_i^T G r_i,  r_i = w_i o (1 - m_i),  G = X^T X,
 *   over m in [0,1]^(rows x d) with the pattern's budget: sum of m = the kept
 *   count in every row (row pattern), in every group of M (N:M), or over the
 *   whole matrix (matrix pattern).
 *
 * The gradient is df/dm_ij = -2 w_ij (G r_i)_j. The linear minimisation
 * oracle returns the vertex that keeps the k entries with the largest
 * 2 w_ij (G r_i)_j in each row / group / the matrix. With v = w o (1 - s)
 * the pruned part under the new vertex s and q = r - v = w o (s - m), the
 * objective along the segment is quadratic,
 *   f(m + g (s - m)) = f - 2 g q^T G r + g^2 q^T G q,
 * so the exact line search is g = q^T G r / q^T G q clipped to [0, 1]; with
 * c = G r and Gv = G v kept up to date, q^T G r = f - v.c and
 * q^T G q = f - 2 v.c + v.Gv are O(d), and the step is c <- (1-g) c + g Gv.
 * Gv moves with the vertex: when a row's vertex changes in a few entries
 * (at most d/64), each entering or leaving entry costs one O(d) axpy with a
 * row of G (exact, double); rows whose vertex changed more get Gv = G v from
 * one GEMM over all such rows. In practice the oracle's vertex jumps around
 * between iterations (at the relaxed optimum every fractional entry has the
 * same gradient), so an iteration costs about one GEMM, 2 rows d^2 flops:
 * iters x 14.5 GFLOP for a 768 x 3072 layer. The row and N:M budgets are
 * products over rows, so each row gets its own exact step; blocks of 64
 * rows run in parallel, each on one thread with its own single-threaded
 * GEMMs (no barrier per iteration; O(64 d) memory per block). The matrix
 * budget couples rows, so there the oracle is a top-K over the whole matrix,
 * one step size serves all rows, and the threads share each iteration
 * (O(rows d) doubles of state). c starts from one GEMM.
 *
 * alpha (default 0, in [0, 1)): the fraction of the warm start's kept weights
 * fixed to 1 (in each row / group / the matrix, floor(alpha k) of them) and
 * excluded from the oracle's budget. Criteria give masks, not scores, so the
 * warm start's kept weights are ranked by Wanda's saliency |W_ij| ||X_j||
 * (||X_j||^2 = G_jj); with warm = wanda that is the warm start's own order.
 * Frank-Wolfe starts at the warm-start mask, a vertex. iters (default 100):
 * iterations; a row stops early when its Frank-Wolfe gap falls below 1e-12 f.
 *
 * Rounding keeps, in each row / group / the matrix, the fixed entries and
 * then the largest m, ties broken by the warm start (kept first), then by
 * Wanda's saliency, then the lower index.
 *
 * Measured caveat (synthetic correlated inputs, d = 3072, 32768 tokens): with
 * exact line search from the warm vertex, the first step is below 1/2 and
 * later steps are small, so the warm vertex keeps the largest share of m and
 * at ALPHA = 0 rounding gives back the warm-start mask although the relaxed
 * objective has fallen by 2/3. ALPHA = 0.5 to 0.9 (the paper reports 0.9)
 * gives 35-40% less layer error than Wanda there. Jumping to the first
 * vertex (the open-loop rule's first step) avoids the collapse at ALPHA = 0
 * but is worse for ALPHA > 0, so it is not done.
 *
 * verbose: one line per linear (objective at the warm start and after
 * iterations 1, 2, 5, 10, 20, 50, 100, ..., and the errors before and after
 * rounding); verbose >= 2 prints the objective of every iteration. */
#include "criterion.h"
#include "swaps_fw.h"
#include "model/alloc.h"
#include "model/err.h"
#include "model/gemm.h"
#include <math.h>
#include <omp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FW_DEFAULT_WARM "wanda"
#define FW_DEFAULT_ALPHA 0.0
#define FW_DEFAULT_ITERS 100

/* ---- per-row pieces ------------------------------------------------------ */

/* Moves row state from vertex s to s_new: Gv += w_j G[j,:] for entries that
 * leave the vertex (v_j: 0 -> w_j), -= for entries that enter it. */
static void vertex_move(const float *w, const float *G, int d, uint8_t *s, const uint8_t *s_new, double *gv) {
    for (int j = 0; j < d; j++) {
        if (s[j] == s_new[j]) continue;
        const double a = s_new[j] ? -(double)w[j] : (double)w[j];
        s[j] = s_new[j];
        if (a == 0) continue;
        const float *Gj = G + (int64_t)j * d;
        for (int i = 0; i < d; i++) gv[i] += a * Gj[i];
    }
}

/* num = q^T G r = f - v.c, den = q^T G q = f - 2 v.c + v.Gv for the vertex s. */
static void ls_terms(const float *w, int d, const uint8_t *s, const double *c, const double *gv, double f,
                     double *num, double *den) {
    double vc = 0, vgv = 0;
    for (int j = 0; j < d; j++)
        if (!s[j]) { vc += (double)w[j] * c[j]; vgv += (double)w[j] * gv[j]; }
    *num = f - vc;
    *den = f - 2.0 * vc + vgv;
}

/* m <- m + g (s - m), c <- (1-g) c + g Gv; returns the new f = r.c */
static double fw_step(const float *w, int d, const uint8_t *s, double *m, double *c, const double *gv, double g) {
    double f = 0;
    for (int j = 0; j < d; j++) {
        if (g > 0) {
            m[j] += g * ((double)s[j] - m[j]);
            c[j] = (1.0 - g) * c[j] + g * gv[j];
        }
        f += (double)w[j] * (1.0 - m[j]) * c[j];
    }
    return f;
}

static double step_size(double num, double den) {
    if (!(num > 0)) return 0.0;
    if (!(den > 0)) return 1.0;
    double g = num / den;
    return g > 1.0 ? 1.0 : g;
}

/* Rounding order: fixed first, then larger m, then warm-kept, then larger
 * saliency, then lower index. */
typedef struct { double m; float sal; uint8_t fix, warm; int64_t i; } rk_t;
static int rk_cmp(const void *x, const void *y) {
    const rk_t *a = x, *b = y;
    if (a->fix != b->fix) return a->fix ? -1 : 1;
    if (a->m != b->m) return a->m > b->m ? -1 : 1;
    if (a->warm != b->warm) return a->warm ? -1 : 1;
    if (a->sal != b->sal) return a->sal > b->sal ? -1 : 1;
    return (a->i > b->i) - (a->i < b->i);
}

/* Keep the k first entries of the [n] scope in rounding order. */
static void round_scope(rk_t *rk, int64_t n, int64_t k, uint8_t *mask_base) {
    qsort(rk, (size_t)n, sizeof *rk, rk_cmp);
    for (int64_t t = 0; t < n; t++) mask_base[rk[t].i] = t < k;
}

/* Mark fixed = the floor(alpha k) warm-kept entries of highest saliency
 * within the scope idx0 + [0, n) (stride 1), k = the scope's kept count. */
static void choose_fixed(const uint8_t *warm, const float *sal, int64_t n, double alpha, uint8_t *fix, fl_kv *kv) {
    int64_t k = 0;
    for (int64_t t = 0; t < n; t++) {
        fix[t] = 0;
        if (warm[t]) kv[k++] = (fl_kv){ sal[t], t };
    }
    int64_t kf = (int64_t)floor(alpha * (double)k);
    if (kf <= 0) return;
    fl_kv_top(kv, k, kf);
    for (int64_t t = 0; t < kf; t++) fix[kv[t].i] = 1;
}

/* LMO inside one scope [n] (a row or a group): s = fixed + the kfree free
 * entries with the largest score 2 w c. */
static void lmo_scope(const float *w, const double *c, const uint8_t *fix, int n, int kfree, uint8_t *s, fl_kv *kv) {
    int nf = 0;
    for (int t = 0; t < n; t++) {
        s[t] = fix[t];
        if (!fix[t]) kv[nf++] = (fl_kv){ 2.0 * w[t] * c[t], t };
    }
    if (kfree > nf) kfree = nf;
    fl_kv_top(kv, nf, kfree);
    for (int t = 0; t < kfree; t++) s[kv[t].i] = 1;
}

/* ---- Frank-Wolfe on a block of rows ------------------------------------- */

#define FW_BLOCK_ROWS 64    /* rows per block for the row and N:M patterns */
#define FW_PAR_MIN 65536    /* matrix pattern: fewer weights than this, no threads */
#define FW_GEMM_MIN (1 << 22)   /* fewer flops for G v: a plain double loop instead of a GEMM */

/* Runs Frank-Wolfe on the B rows of W [B, D] (mask, Cm, sal, rtr, rgap start
 * at the block's first row) and rounds their masks. M: scope width for the
 * row (M = D) and N:M patterns; global: the matrix pattern, one oracle and one
 * step size over the whole block (then B = all rows). rtr [B, T+1] gets each
 * row's objective r^T G r per iteration, rgap [B, T] its share of the gap. */
static void fw_block(const float *W, int B, int D, const float *G, const float *sal, int M, int global, int par,
                     uint8_t *mask, const float *Cm, const fl_fw_opts *o, double *rtr, double *rgap,
                     long long *nrows_gemm, long long *naxpy) {
    const int T = o->iters, ng = D / M;
    const int64_t n = (int64_t)B * D;
    double *m = fl_alloc(sizeof(double) * n), *c = fl_alloc(sizeof(double) * n), *gv = fl_alloc(sizeof(double) * n);
    uint8_t *s = fl_alloc((size_t)n), *sn = fl_alloc((size_t)n), *fix = fl_alloc((size_t)n);
    float *Vf = fl_allocf((size_t)n), *GVf = fl_allocf((size_t)n);
    double *f = fl_alloc(sizeof(double) * B), *num = fl_alloc(sizeof(double) * B), *den = fl_alloc(sizeof(double) * B);
    int *done = fl_alloc(sizeof(int) * B), *big = fl_alloc(sizeof(int) * B), *list = fl_alloc(sizeof(int) * B);
    int *budget = fl_alloc(sizeof(int) * ((size_t)B * ng + 1));   /* free kept count per scope */
    fl_kv *kvg = global ? fl_alloc(sizeof(fl_kv) * n) : NULL;
    int64_t Kfree = 0;

    /* fixed entries, start at the warm-start vertex */
    if (global) {
        choose_fixed(mask, sal, n, o->alpha, fix, kvg);
        for (int64_t i = 0; i < n; i++) Kfree += mask[i] - fix[i];
    }
    #pragma omp parallel if (par)
    {
        fl_kv *kv = fl_alloc(sizeof(fl_kv) * D);
        #pragma omp for schedule(static)
        for (int r = 0; r < B; r++) {
            const int64_t o0 = (int64_t)r * D;
            const float *w = W + o0;
            if (!global)
                for (int gi = 0; gi < ng; gi++) {
                    const int64_t g0 = o0 + (int64_t)gi * M;
                    choose_fixed(mask + g0, sal + g0, M, o->alpha, fix + g0, kv);
                    int k = 0;
                    for (int t = 0; t < M; t++) k += mask[g0 + t] - fix[g0 + t];
                    budget[(int64_t)r * ng + gi] = k;
                }
            double fr = 0;
            for (int j = 0; j < D; j++) {
                m[o0 + j] = mask[o0 + j];
                s[o0 + j] = mask[o0 + j];
                c[o0 + j] = gv[o0 + j] = Cm[o0 + j];
                if (!mask[o0 + j]) fr += (double)w[j] * c[o0 + j];
            }
            f[r] = fr;
            rtr[(int64_t)r * (T + 1)] = fr;
            done[r] = 0;
        }
        fl_free(kv);
    }

    for (int t = 0; t < T; t++) {
        /* oracle: the new vertex sn */
        if (global) {
            #pragma omp parallel for schedule(static) if (par)
            for (int64_t i = 0; i < n; i++) kvg[i] = (fl_kv){ fix[i] ? -INFINITY : 2.0 * W[i] * c[i], i };
            fl_kv_top(kvg, n, Kfree);
            memcpy(sn, fix, (size_t)n);
            for (int64_t q = 0; q < Kfree; q++) sn[kvg[q].i] = 1;
        }
        /* Gv follows the vertex: a few changes by axpys with rows of G, many
         * (more than D/64) by one GEMM over those rows */
        #pragma omp parallel if (par)
        {
            fl_kv *kv = global ? NULL : fl_alloc(sizeof(fl_kv) * M);
            #pragma omp for schedule(dynamic, 4)
            for (int r = 0; r < B; r++) {
                big[r] = 0;
                if (done[r]) continue;
                const int64_t o0 = (int64_t)r * D;
                if (!global)
                    for (int gi = 0; gi < ng; gi++) {
                        const int64_t g0 = o0 + (int64_t)gi * M;
                        lmo_scope(W + g0, c + g0, fix + g0, M, budget[(int64_t)r * ng + gi], sn + g0, kv);
                    }
                int ch = 0;
                for (int j = 0; j < D; j++) ch += s[o0 + j] != sn[o0 + j];
                if (ch * 64 > D) big[r] = 1;
                else {
                    vertex_move(W + o0, G, D, s + o0, sn + o0, gv + o0);
                    #pragma omp atomic
                    *naxpy += ch;
                }
            }
            fl_free(kv);
        }
        int nl = 0;
        for (int r = 0; r < B; r++)
            if (big[r]) list[nl++] = r;
        #pragma omp atomic
        *nrows_gemm += nl;
        if (nl) {
            #pragma omp parallel for schedule(static) if (par)
            for (int i = 0; i < nl; i++) {
                const int64_t o0 = (int64_t)list[i] * D;
                for (int j = 0; j < D; j++) {
                    s[o0 + j] = sn[o0 + j];
                    Vf[(int64_t)i * D + j] = sn[o0 + j] ? 0.0f : W[o0 + j];
                }
            }
            if ((double)nl * D * D >= FW_GEMM_MIN) {   /* one thread when called from a parallel region */
                fl_gemm(0, 0, nl, D, D, 1.0f, Vf, D, G, D, 0.0f, GVf, D);
                #pragma omp parallel for schedule(static) if (par)
                for (int i = 0; i < nl; i++) {
                    const int64_t o0 = (int64_t)list[i] * D;
                    for (int j = 0; j < D; j++) gv[o0 + j] = GVf[(int64_t)i * D + j];
                }
            } else   /* small: in double, on this thread */
                for (int i = 0; i < nl; i++) {
                    const int64_t o0 = (int64_t)list[i] * D;
                    const float *v = Vf + (int64_t)i * D;
                    for (int j = 0; j < D; j++) {
                        const float *Gj = G + (int64_t)j * D;
                        double acc = 0;
                        for (int q = 0; q < D; q++) acc += (double)Gj[q] * v[q];
                        gv[o0 + j] = acc;
                    }
                }
        }
        /* exact line search: per row, or one step for the whole matrix */
        #pragma omp parallel for schedule(static) if (par)
        for (int r = 0; r < B; r++)
            if (!done[r]) {
                const int64_t o0 = (int64_t)r * D;
                ls_terms(W + o0, D, s + o0, c + o0, gv + o0, f[r], &num[r], &den[r]);
            } else num[r] = den[r] = 0;
        double gglob = 0;
        int stop = 0;
        if (global) {
            double a = 0, b = 0, ft = 0;
            for (int r = 0; r < B; r++) { a += num[r]; b += den[r]; ft += f[r]; }
            if (!(a > 1e-12 * ft)) stop = 1;
            else gglob = step_size(a, b);
        }
        int active = 0;
        #pragma omp parallel for schedule(static) reduction(+ : active) if (par)
        for (int r = 0; r < B; r++) {
            double *tr = rtr + (int64_t)r * (T + 1);
            rgap[(int64_t)r * T + t] = done[r] ? 0.0 : 2.0 * num[r];
            if (!done[r] && !global && !(num[r] > 1e-12 * f[r])) done[r] = 1;   /* converged */
            if (!done[r] && !stop) {
                const int64_t o0 = (int64_t)r * D;
                f[r] = fw_step(W + o0, D, s + o0, m + o0, c + o0, gv + o0, global ? gglob : step_size(num[r], den[r]));
                active++;
            }
            tr[t + 1] = f[r];
        }
        if (stop || !active) {
            for (int r = 0; r < B; r++)
                for (int u = t + 1; u < T; u++) {
                    rtr[(int64_t)r * (T + 1) + u + 1] = f[r];
                    rgap[(int64_t)r * T + u] = 0;
                }
            break;
        }
    }

    /* round: keep the fixed entries, then the largest m (ties: warm, saliency, index) */
    if (global) {
        int64_t K = 0;
        for (int64_t i = 0; i < n; i++) K += mask[i];
        fl_free(kvg);
        kvg = NULL;
        rk_t *rk = fl_alloc(sizeof(rk_t) * n);
        for (int64_t i = 0; i < n; i++) rk[i] = (rk_t){ m[i], sal[i], fix[i], mask[i], i };
        round_scope(rk, n, K, mask);
        fl_free(rk);
    } else {
        #pragma omp parallel if (par)
        {
            rk_t *rk = fl_alloc(sizeof(rk_t) * M);
            #pragma omp for schedule(static)
            for (int64_t g0 = 0; g0 < n; g0 += M) {
                int k = 0;
                for (int j = 0; j < M; j++) {
                    k += mask[g0 + j];
                    rk[j] = (rk_t){ m[g0 + j], sal[g0 + j], fix[g0 + j], mask[g0 + j], j };
                }
                round_scope(rk, M, k, mask + g0);
            }
            fl_free(rk);
        }
    }
    fl_free(m); fl_free(c); fl_free(gv); fl_free(s); fl_free(sn); fl_free(fix);
    fl_free(Vf); fl_free(GVf); fl_free(f); fl_free(num); fl_free(den);
    fl_free(done); fl_free(big); fl_free(list); fl_free(budget); fl_free(kvg);
}

/* ---- driver ----------------------------------------------------------------- */

int fl_sparsefw_run(const float *W, int rows, int cols, const float *G, const fl_pattern *pat,
                    uint8_t *mask, const fl_fw_opts *o, fl_fw_report *rep) {
    const int R = rows, D = cols, T = o->iters;
    const int64_t n = (int64_t)R * D;
    if (fl_pattern_check(pat, R, D, "sparsefw") != 0) return -1;
    if (T < 0 || !(o->alpha >= 0 && o->alpha < 1))
        return fl_err("sparsefw: alpha %g must be in [0, 1) and iterations %d >= 0", o->alpha, T);
    /* c = G r at the warm start: one GEMM */
    float *P = fl_allocf((size_t)n), *Cm = fl_allocf((size_t)n), *sal = fl_allocf((size_t)n);
    for (int64_t i = 0; i < n; i++) P[i] = mask[i] ? 0.0f : W[i];
    fl_gemm(0, 0, R, D, D, 1.0f, P, D, G, D, 0.0f, Cm, D);
    fl_free(P);
    for (int r = 0; r < R; r++)
        for (int j = 0; j < D; j++) {
            float g = G[(int64_t)j * D + j];
            sal[(int64_t)r * D + j] = fabsf(W[(int64_t)r * D + j]) * (g > 0 ? sqrtf(g) : 0.0f);
        }
    double *trace = fl_alloc(sizeof(double) * (T + 1)), *gap = fl_alloc(sizeof(double) * (T + 1));
    double *rtr = fl_alloc(sizeof(double) * (size_t)R * (T + 1)), *rgap = fl_alloc(sizeof(double) * ((size_t)R * T + 1));
    long long ngemm = 0, naxpy = 0;
    double t0 = omp_get_wtime();
    if (pat->kind == FL_PAT_MATRIX)
        fw_block(W, R, D, G, sal, D, 1, n >= FW_PAR_MIN, mask, Cm, o, rtr, rgap, &ngemm, &naxpy);
    else {   /* blocks of rows in parallel, each block on one thread: no barrier per iteration */
        #pragma omp parallel for schedule(dynamic, 1)
        for (int r0 = 0; r0 < R; r0 += FW_BLOCK_ROWS) {
            const int B = R - r0 < FW_BLOCK_ROWS ? R - r0 : FW_BLOCK_ROWS;
            const int64_t o0 = (int64_t)r0 * D;
            fw_block(W + o0, B, D, G, sal + o0, pat->kind == FL_PAT_NM ? pat->m : D, 0, 0, mask + o0, Cm + o0, o,
                     rtr + (int64_t)r0 * (T + 1), rgap + (int64_t)r0 * T, &ngemm, &naxpy);
        }
    }
    for (int t = 0; t <= T; t++) {
        double sm = 0, g = 0;
        for (int r = 0; r < R; r++) {
            sm += rtr[(int64_t)r * (T + 1) + t];
            if (t < T) g += rgap[(int64_t)r * T + t];
        }
        trace[t] = sm;
        if (t < T) gap[t] = g;
    }
    const double warm = trace[0];
    fl_free(rtr);
    fl_free(rgap);
    fl_free(Cm);
    fl_free(sal);
    double fin = (o->verbose || rep) ? fl_layer_error(W, R, D, G, mask) : 0;
    if (o->verbose) {
        fprintf(stderr, "sparsefw(alpha %g, %d iters): %dx%d, relaxed objective", o->alpha, T, R, D);
        for (int t = 0; t <= T; t++) {
            int show = o->verbose >= 2 || t == 0 || t == T;
            for (int p = 1; !show && p <= t; p *= 10)
                show = t == p || t == 2 * p || t == 5 * p;
            if (show) fprintf(stderr, " [%d] %.6g", t, trace[t]);
        }
        fprintf(stderr, "; layer error warm %.6g -> rounded %.6g (%.1f%% lower); G v: %lld row GEMMs, %lld axpys; "
                "%.2f s\n", warm, fin, warm > 0 ? 100.0 * (1.0 - fin / warm) : 0.0, ngemm, naxpy, omp_get_wtime() - t0);
    }
    if (rep) {
        if (rep->trace) memcpy(rep->trace, trace, sizeof(double) * (T + 1));
        if (rep->gap) memcpy(rep->gap, gap, sizeof(double) * T);
        rep->warm_err = warm;
        rep->final_err = fin;
    }
    fl_free(trace);
    fl_free(gap);
    return 0;
}

/* ---- the criterion ---------------------------------------------------------- */

typedef struct {
    fl_warm warm;   /* first: fl_warm_uninit closes it */
    double alpha;
    int iters;
} fw_opts;

static const fl_option fw_options[] = {
    { .name = "warm", .help = "the warm-start criterion, with its own options", .type = FL_OPT_SPEC,
      .offset = offsetof(fw_opts, warm.spec), .def_str = FW_DEFAULT_WARM },
    /* [0, 1): the table's range is inclusive, so fw_init refuses 1 itself */
    { .name = "alpha", .help = "fraction of the warm start's kept weights fixed, below 1", .type = FL_OPT_FLOAT,
      .offset = offsetof(fw_opts, alpha), .def = FW_DEFAULT_ALPHA, .min = 0, .max = 1 },
    { .name = "iters", .help = "Frank-Wolfe iterations", .type = FL_OPT_INT, .offset = offsetof(fw_opts, iters),
      .def = FW_DEFAULT_ITERS, .min = 0, .max = 1000000 },
    { .name = NULL },
};

static int fw_init(void *priv) {
    fw_opts *o = priv;
    if (!(o->alpha < 1)) {
        char opts[400];
        return fl_err("criterion sparsefw: alpha: %g is out of range [0, 1) (1 would fix every kept weight); "
                      "options: %s", o->alpha, fl_opts_describe(fw_options, opts, sizeof opts));
    }
    return fl_warm_open("sparsefw", &o->warm);
}

static int fw_prune(fl_prune_job *j) {
    const fw_opts *fa = j->priv;
    if (!j->st || !j->st->gram) return fl_err("sparsefw: needs the Gram matrix X^T X of the inputs");
    float *tmp = fl_allocf((size_t)j->rows * (size_t)j->cols);
    int rc = fl_warm_run("sparsefw", &fa->warm, j, tmp);
    fl_free(tmp);
    if (rc != 0) return -1;
    fl_fw_opts o = { .iters = fa->iters, .alpha = fa->alpha, .verbose = j->verbose };
    return fl_sparsefw_run(j->W, j->rows, j->cols, j->st->gram, &j->pat, j->mask, &o, NULL);
}

const fl_criterion fl_crit_sparsefw = {
    .name = "sparsefw",
    .desc = "SparseFW: Frank-Wolfe on the relaxed mask problem from the warm start, alpha of it fixed, rounded",
    .stats = FL_STATS_GRAM, .options = fw_options, .priv_size = sizeof(fw_opts),
    .init = fw_init, .uninit = fl_warm_uninit, .prune = fw_prune,
};
