/* sparseswaps[:WARM[:BUDGET]] (Zimmer et al., "SparseSwaps: Tractable LLM
 * Pruning Mask Refinement at Scale", arXiv 2512.10922): refine another
 * criterion's mask by 1-swaps that lower the layer-wise pruning error.
 *
 * With equal sparsity per row the layer error ||X W^T - X W'^T||^2 splits
 * into independent row errors E = r^T G r, r = w o (1 - m) the pruned part
 * of the row and G = X^T X. Keep c = G r up to date. Pruning a kept weight
 * p (r_p: 0 -> w_p) and restoring a pruned weight u (r_u: w_u -> 0) changes
 * r by w_p e_p - w_u e_u, hence
 *   delta(p, u) = a_p + b_u - 2 w_p w_u G_pu,
 *   a_p = 2 w_p c_p + w_p^2 G_pp     (prune p alone),
 *   b_u = -2 w_u c_u + w_u^2 G_uu    (restore u alone),
 * each O(1) from c; after the swap c += w_p G[:,p] - w_u G[:,u], O(d).
 * The row repeatedly applies the best improving swap until none improves
 * (a 1-swap local optimum) or BUDGET swaps are spent. Kept weights are not
 * updated: this criterion only chooses the mask.
 *
 * Search for the best swap (d = row width, k = kept count):
 *  - N:M: only pairs inside a group of M, all of them: O(d (M-N) N / M)
 *    per swap, plus the O(d) update.
 *  - row / matrix patterns: all pairs would be O(k (d-k)) per swap (2.4M
 *    for d = 3072 at 50%). Instead, a candidate search first takes the
 *    K = 64 kept weights with the smallest a_p and the K pruned weights with
 *    the smallest b_u and evaluates those K^2 pairs exactly: O(d + K^2).
 *    Only when that finds no improving pair does an exact search run over
 *    all pairs, pruned by the bound |G_pu| <= sqrt(G_pp G_uu) (G is PSD):
 *    delta(p, .) >= a_p + min_u b_u - 2 |w_p| sqrt(G_pp) max_u |w_u| sqrt(G_uu),
 *    visiting kept p in increasing order of that bound and stopping once it
 *    cannot beat the best pair found; worst case O(k (d-k)). So a swap costs
 *    O(d + K^2) and every row that stops before its budget ends with one exact
 *    search that certifies it 1-swap optimal.
 *  - matrix pattern: the warm start's per-row kept counts are kept.
 * One GEMM (rows x d x d) gives c for all rows at the start; rows then run
 * in parallel (OpenMP), each with O(d) workspace. Results do not depend on
 * the thread count. */
#include "criterion.h"
#include "swaps_fw.h"
#include "model/alloc.h"
#include "model/err.h"
#include "model/gemm.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SWAPS_DEFAULT_WARM "wanda"
#define SWAPS_DEFAULT_BUDGET 100
#define SWAPS_CAND 64

/* ---- shared helpers ------------------------------------------------------ */

double fl_row_error(const float *w, const float *G, int d, const uint8_t *mask) {
    double e = 0;
    for (int i = 0; i < d; i++) {
        if (mask[i]) continue;
        const float *Gi = G + (int64_t)i * d;
        double s = 0;
        for (int j = 0; j < d; j++)
            if (!mask[j]) s += (double)Gi[j] * w[j];
        e += s * w[i];
    }
    return e;
}

double fl_layer_error(const float *W, int rows, int d, const float *G, const uint8_t *mask) {
    /* one GEMM: P = W o (1 - mask), E = sum(P o (P G)) */
    const int64_t n = (int64_t)rows * d;
    float *P = fl_allocf((size_t)n), *PG = fl_allocf((size_t)n);
    for (int64_t i = 0; i < n; i++) P[i] = mask[i] ? 0.0f : W[i];
    fl_gemm(0, 0, rows, d, d, 1.0f, P, d, G, d, 0.0f, PG, d);
    double e = 0;
    for (int64_t i = 0; i < n; i++) e += (double)P[i] * PG[i];
    fl_free(P);
    fl_free(PG);
    return e;
}

static inline int kv_above(const fl_kv *x, const fl_kv *y) {
    return x->v > y->v || (x->v == y->v && x->i < y->i);
}

void fl_kv_top(fl_kv *a, int64_t n, int64_t k) {
    if (k <= 0 || k >= n) return;
    int64_t lo = 0, hi = n - 1;     /* the k-th ranked entry lies in a[lo..hi] */
    while (hi > lo) {
        /* median of three as pivot, moved to a[hi] */
        int64_t mid = lo + (hi - lo) / 2;
        fl_kv t;
        if (kv_above(&a[mid], &a[lo])) { t = a[mid]; a[mid] = a[lo]; a[lo] = t; }
        if (kv_above(&a[hi], &a[lo])) { t = a[hi]; a[hi] = a[lo]; a[lo] = t; }
        if (kv_above(&a[mid], &a[hi])) { t = a[mid]; a[mid] = a[hi]; a[hi] = t; }
        fl_kv piv = a[hi];
        int64_t s = lo;
        for (int64_t i = lo; i < hi; i++)
            if (kv_above(&a[i], &piv)) { t = a[i]; a[i] = a[s]; a[s] = t; s++; }
        t = a[s]; a[s] = a[hi]; a[hi] = t;     /* a[lo..s) above pivot, a[s] = pivot */
        if (s == k || s == k - 1) return;
        if (s > k) hi = s - 1;
        else lo = s + 1;
    }
}

static int kv_cmp(const void *x, const void *y) {
    return kv_above(x, y) ? -1 : kv_above(y, x) ? 1 : 0;
}

/* ---- one row ------------------------------------------------------------- */

size_t fl_swaps_work_bytes(int d) {
    return (size_t)d * (3 * sizeof(double) + 2 * sizeof(fl_kv)) + 64;
}

/* Exact best swap over all pairs of the row (branch and bound, see the top). */
static double exact_best(const float *w, const float *G, const float *sg, int d, const uint8_t *mask,
                         const double *a, const double *b, fl_kv *kv, double best, int *bp, int *bu) {
    double bmin = INFINITY, smax = 0;
    for (int u = 0; u < d; u++)
        if (!mask[u]) {
            if (b[u] < bmin) bmin = b[u];
            double s = fabs((double)w[u]) * sg[u];
            if (s > smax) smax = s;
        }
    int n = 0;
    for (int p = 0; p < d; p++)
        if (mask[p]) {
            double cs = 2.0 * fabs((double)w[p]) * sg[p] * smax;
            double lb = a[p] + bmin - cs * (1.0 + 1e-5);   /* slack for float G */
            if (lb < best) kv[n++] = (fl_kv){ -lb, p };
        }
    qsort(kv, (size_t)n, sizeof *kv, kv_cmp);        /* increasing bound */
    for (int i = 0; i < n; i++) {
        if (-kv[i].v >= best) break;
        int p = (int)kv[i].i;
        const float *Gp = G + (int64_t)p * d;
        const double cp = -2.0 * w[p];
        double m = INFINITY;
        int mu = -1;
        for (int u = 0; u < d; u++) {
            double v = b[u] + cp * w[u] * Gp[u];     /* b[u] = +inf for kept u */
            if (v < m) { m = v; mu = u; }
        }
        if (mu >= 0 && a[p] + m < best) { best = a[p] + m; *bp = p; *bu = mu; }
    }
    return best;
}

int fl_swaps_row(const float *w, const float *G, const float *sg, int d, uint8_t *mask,
                 const float *c0, const fl_swaps_opts *o, double err[2], double *trace, int trace_cap,
                 int *optimal, void *work) {
    double *c = work, *a = c + d, *b = a + d;
    fl_kv *kv1 = (fl_kv *)(b + d), *kv2 = kv1 + d;
    if (c0)
        for (int j = 0; j < d; j++) c[j] = c0[j];
    else
        for (int j = 0; j < d; j++) {
            const float *Gj = G + (int64_t)j * d;
            double s = 0;
            for (int i = 0; i < d; i++)
                if (!mask[i]) s += (double)Gj[i] * w[i];
            c[j] = s;
        }
    double E = 0;
    for (int j = 0; j < d; j++)
        if (!mask[j]) E += (double)w[j] * c[j];
    if (trace && trace_cap > 0) trace[0] = E;
    if (err) err[0] = err[1] = E;
    if (optimal) *optimal = 1;
    if (!(E > 0)) return 0;           /* nothing pruned carries error: optimal */
    const double tol = 1e-10 * E;     /* a swap must lower E by more than this */
    const int limit = o->budget > 0 ? o->budget : 100 * d;
    const int M = o->group;
    int nsw = 0;
    while (nsw < limit) {
        for (int j = 0; j < d; j++) {
            double wj = w[j], g = wj * (double)G[(int64_t)j * d + j];
            if (mask[j]) { a[j] = 2.0 * wj * c[j] + wj * g; b[j] = INFINITY; }
            else { b[j] = wj * g - 2.0 * wj * c[j]; a[j] = INFINITY; }
        }
        double best = -tol;
        int bp = -1, bu = -1;
        if (M > 0) {
            for (int g0 = 0; g0 < d; g0 += M)
                for (int p = g0; p < g0 + M; p++) {
                    if (!mask[p]) continue;
                    const float *Gp = G + (int64_t)p * d;
                    for (int u = g0; u < g0 + M; u++) {
                        if (mask[u]) continue;
                        double v = a[p] + b[u] - 2.0 * w[p] * w[u] * Gp[u];
                        if (v < best) { best = v; bp = p; bu = u; }
                    }
                }
        } else {
            if (o->cand > 0) {
                int nk = 0, np = 0;
                for (int j = 0; j < d; j++) {
                    if (mask[j]) kv1[nk++] = (fl_kv){ -a[j], j };
                    else kv2[np++] = (fl_kv){ -b[j], j };
                }
                int K1 = nk < o->cand ? nk : o->cand, K2 = np < o->cand ? np : o->cand;
                fl_kv_top(kv1, nk, K1);
                fl_kv_top(kv2, np, K2);
                for (int i = 0; i < K1; i++) {
                    int p = (int)kv1[i].i;
                    const float *Gp = G + (int64_t)p * d;
                    for (int j = 0; j < K2; j++) {
                        int u = (int)kv2[j].i;
                        double v = a[p] + b[u] - 2.0 * w[p] * w[u] * Gp[u];
                        if (v < best || (v == best && bp >= 0 && (p < bp || (p == bp && u < bu)))) {
                            best = v; bp = p; bu = u;
                        }
                    }
                }
            }
            if (bp < 0) best = exact_best(w, G, sg, d, mask, a, b, kv1, best, &bp, &bu);
        }
        if (bp < 0) break;            /* 1-swap optimal */
        /* apply: prune bp, restore bu */
        const double wp = w[bp], wu = w[bu];
        const float *Gp = G + (int64_t)bp * d, *Gu = G + (int64_t)bu * d;
        for (int j = 0; j < d; j++) c[j] += wp * Gp[j] - wu * Gu[j];
        mask[bp] = 0;
        mask[bu] = 1;
        nsw++;
        if (nsw % 64 == 0) {          /* resync E with c */
            E = 0;
            for (int j = 0; j < d; j++)
                if (!mask[j]) E += (double)w[j] * c[j];
        } else E += best;
        if (trace && nsw < trace_cap) trace[nsw] = E;
    }
    if (nsw == limit && optimal) *optimal = 0;
    if (err) {                        /* E from c, without the running sum's rounding */
        E = 0;
        for (int j = 0; j < d; j++)
            if (!mask[j]) E += (double)w[j] * c[j];
        err[1] = E;
    }
    return nsw;
}

/* ---- the criterion ------------------------------------------------------- */

typedef struct {
    char warm[64];
    int budget;
} swaps_args;

#define SWAPS_USAGE "sparseswaps[:WARM[:BUDGET]]: WARM is the criterion whose mask is refined " \
                    "(default " SWAPS_DEFAULT_WARM "), BUDGET the most swaps per row, a whole " \
                    "number >= 0 (default %d; 0 = until no swap improves)"

static int swaps_parse(const char *arg, swaps_args *sa, const fl_criterion **warm) {
    snprintf(sa->warm, sizeof sa->warm, "%s", SWAPS_DEFAULT_WARM);
    sa->budget = SWAPS_DEFAULT_BUDGET;
    if (arg) {
        const char *colon = strchr(arg, ':');
        size_t len = colon ? (size_t)(colon - arg) : strlen(arg);
        if (len >= sizeof sa->warm) return fl_err("sparseswaps: warm start '%.*s' is too long; " SWAPS_USAGE,
                                                  (int)len, arg, SWAPS_DEFAULT_BUDGET);
        if (len) { memcpy(sa->warm, arg, len); sa->warm[len] = 0; }
        if (colon) {
            char *e;
            long v = strtol(colon + 1, &e, 10);
            if (e == colon + 1 || *e || v < 0 || v > 100000000)
                return fl_err("sparseswaps: budget '%s' is not a whole number >= 0; " SWAPS_USAGE, colon + 1,
                              SWAPS_DEFAULT_BUDGET);
            sa->budget = (int)v;
        }
    }
    const char *warg;
    if (fl_criterion_find(sa->warm, warm, &warg) != 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", fl_errmsg());
        return fl_err("sparseswaps: warm start: %s", msg);
    }
    return 0;
}

static int swaps_check_arg(const char *arg) {
    swaps_args sa;
    const fl_criterion *w;
    return swaps_parse(arg, &sa, &w);
}

static fl_stats_kind swaps_stats_for(const char *arg) {
    (void)arg;
    return FL_STATS_GRAM;
}

static int swaps_prune(fl_prune_job *j) {
    swaps_args sa;
    const fl_criterion *warm;
    if (swaps_parse(j->arg, &sa, &warm) != 0) return -1;
    if (!j->st || !j->st->gram) return fl_err("sparseswaps: needs the Gram matrix X^T X of the inputs");
    const int R = j->rows, D = j->cols;
    const int64_t n = (int64_t)R * D;
    const float *G = j->st->gram;

    /* warm start on a copy of W, so W is left as it is */
    float *tmp = fl_allocf((size_t)n);
    memcpy(tmp, j->W, sizeof(float) * n);
    fl_prune_job wj = *j;
    wj.arg = NULL;
    wj.W = tmp;
    wj.verbose = 0;
    if (fl_criterion_run(warm, &wj) != 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", fl_errmsg());
        fl_free(tmp);
        return fl_err("sparseswaps: warm start %s: %s", sa.warm, msg);
    }
    /* c = G r for every row: one GEMM, R = W o (1 - mask) */
    for (int64_t i = 0; i < n; i++) tmp[i] = j->mask[i] ? 0.0f : j->W[i];
    float *Cm = fl_allocf((size_t)n);
    fl_gemm(0, 0, R, D, D, 1.0f, tmp, D, G, D, 0.0f, Cm, D);
    fl_free(tmp);
    float *sg = fl_allocf((size_t)D);
    for (int i = 0; i < D; i++) {
        float g = G[(int64_t)i * D + i];
        sg[i] = g > 0 ? sqrtf(g) : 0.0f;
    }
    fl_swaps_opts o = { .budget = sa.budget, .cand = SWAPS_CAND,
                        .group = j->pat.kind == FL_PAT_NM ? j->pat.m : 0 };
    double e0 = 0, e1 = 0;
    long long tot = 0;
    int nopt = 0, maxsw = 0;
    #pragma omp parallel reduction(+ : e0, e1, tot, nopt) reduction(max : maxsw)
    {
        void *work = fl_alloc(fl_swaps_work_bytes(D));
        #pragma omp for schedule(dynamic, 4)
        for (int r = 0; r < R; r++) {
            int opt = 0;
            double er[2];
            int s = fl_swaps_row(j->W + (int64_t)r * D, G, sg, D, j->mask + (int64_t)r * D,
                                 Cm + (int64_t)r * D, &o, er, NULL, 0, &opt, work);
            e0 += er[0];
            e1 += er[1];
            tot += s;
            nopt += opt;
            if (s > maxsw) maxsw = s;
        }
        fl_free(work);
    }
    if (j->verbose)
        fprintf(stderr, "sparseswaps(%s, budget %d): %dx%d, %.1f swaps/row (max %d), %d/%d rows 1-swap optimal, "
                "error %.6g -> %.6g (%.1f%% lower)\n", sa.warm, sa.budget, R, D, (double)tot / R, maxsw, nopt, R,
                e0, e1, e0 > 0 ? 100.0 * (1.0 - e1 / e0) : 0.0);
    fl_free(sg);
    fl_free(Cm);
    return 0;
}

const fl_criterion fl_crit_sparseswaps = {
    .name = "sparseswaps",
    .desc = "SparseSwaps: refine a warm-start mask (default wanda) by error-lowering 1-swaps per row (Gram matrix)",
    .stats = FL_STATS_GRAM, .stats_for = swaps_stats_for, .check_arg = swaps_check_arg, .prune = swaps_prune,
};
