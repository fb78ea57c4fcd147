/* sparseswaps[:warm=SPEC,budget=N] (Zimmer et al., "SparseSwaps: Tractable
 * LLM Pruning Mask Refinement at Scale", arXiv 2512.10922): refine another
 * criterion's mask (the warm start, wanda by default, with its own options)
 * by 1-swaps that lower the layer-wise pruning error.
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
 * (a 1-swap local optimum) or `budget` swaps are spent. Kept weights are not
 * updated: this criterion only chooses the mask.
 *
 * Search for the best swap (d = row width, k = kept count):
 *  - N:M: only pairs inside a group of M, all of them: O(d (M-N) N / M)
 *    per swap, plus the O(d) update.
 *  - row / matrix patterns: all pairs would be O(k (d-k)) per swap (2.4M
 *    for d = 3072 at 50%), and G (37 MB at d = 3072) does not fit in cache.
 *    A candidate search first takes the K = 64 kept weights with the
 *    smallest a_p and the K pruned weights with the smallest b_u and finds
 *    the best partner of each among ALL weights of the other kind: one
 *    contiguous row of G each (G_pu = G_up), a float SIMD pass and, near the
 *    best, an exact double pass. That is O(K d) per swap with streaming
 *    memory access, and covers every pair with p or u among the candidates.
 *    Only when it finds no improving pair does an exact search run over all
 *    pairs, pruned by a bound from |G_pu| <= sqrt(G_pp G_uu) (G is PSD):
 *    min_u delta(p, u) >= a_p + min_u (b_u - 2 s_u s_p), s = |w| sqrt(diag G),
 *    a lower envelope of lines evaluated at s_p; kept p are visited in
 *    increasing bound until the bound cannot beat the best pair found;
 *    worst case O(k d). So a swap costs O(K d + d), and every row that stops
 *    before its budget ends with one exact search certifying it 1-swap
 *    optimal (the swap applied is the best among the candidates' pairs, and
 *    the exact best when the candidates have none).
 *  - matrix pattern: the warm start's per-row kept counts are kept.
 * One GEMM (rows x d x d) gives c for all rows at the start; rows then run
 * in parallel (OpenMP), each with O(d) workspace. Results do not depend on
 * the thread count. G is used as symmetric: X^T X from sgemm may differ from
 * its transpose in the last bits, which only perturbs errors at ~1e-7. */
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
    return (size_t)d * (3 * sizeof(double) + 3 * sizeof(float) + 2 * sizeof(fl_kv) + 2 * sizeof(double)) + 256;
}

/* Lower envelope of the lines y = q + k x (for the bound in exact_best). */
typedef struct { double k, q; } line_t;
static int line_cmp(const void *x, const void *y) {   /* slope descending, then intercept ascending */
    const line_t *a = x, *b = y;
    if (a->k != b->k) return a->k > b->k ? -1 : 1;
    return (a->q > b->q) - (a->q < b->q);
}
static int hull_build(line_t *l, int n) {
    qsort(l, (size_t)n, sizeof *l, line_cmp);
    int h = 0;
    for (int i = 0; i < n; i++) {
        if (h > 0 && l[h - 1].k == l[i].k) continue;   /* same slope: the first has the lower intercept */
        while (h >= 2) {   /* drop the last line while it is nowhere strictly below the others */
            const line_t *a = &l[h - 2], *b = &l[h - 1], *c = &l[i];
            if ((c->q - a->q) * (a->k - b->k) <= (b->q - a->q) * (a->k - c->k)) h--;
            else break;
        }
        l[h++] = l[i];
    }
    return h;
}
static double hull_min(const line_t *l, int h, double x) {
    int lo = 0, hi = h - 1;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (l[mid].q + l[mid].k * x >= l[mid + 1].q + l[mid + 1].k * x) lo = mid + 1;
        else hi = mid;
    }
    return l[lo].q + l[lo].k * x;
}

/* Per-swap view of a row: a_p (kept p), b_u (pruned u) in double, the same
 * in float with +inf for the other role, and scales for float slack. */
typedef struct {
    const float *w, *G, *sgd;   /* sgd[j] = sqrt(G_jj) */
    const uint8_t *mask;
    const double *a, *b;
    const float *af, *bf;
    int d;
    double aabs, babs, skmax, spmax;   /* max |a|, |b|, |w| sqrt(G_jj) over kept / pruned */
} row_view;

static inline int pair_better(double v, int p, int u, double best, int bp, int bu) {
    return v < best || (v == best && bp >= 0 && (p < bp || (p == bp && u < bu)));
}

/* The best partner of index i (kept: over pruned u; pruned: over kept p),
 * from row i of G, contiguous: a float SIMD pass for the minimum, then, if
 * that comes within float rounding of the best so far, a double pass. */
static double scan_partner(const row_view *rv, int i, double best, int *bp, int *bu) {
    const int d = rv->d, kept = rv->mask[i];
    const float *Gi = rv->G + (int64_t)i * d, *x = kept ? rv->bf : rv->af, *w = rv->w;
    const double ai = kept ? rv->a[i] : rv->b[i], *xd = kept ? rv->b : rv->a;
    const float cf = (float)(-2.0 * w[i]);
    float mf = INFINITY;
    #pragma omp simd reduction(min : mf)
    for (int j = 0; j < d; j++) {
        float v = x[j] + cf * w[j] * Gi[j];      /* x[j] = +inf for j of i's own role */
        mf = v < mf ? v : mf;
    }
    const double slack = 1e-5 * (fabs(ai) + (kept ? rv->babs : rv->aabs) +
                                 2.0 * fabs((double)w[i]) * rv->sgd[i] * (kept ? rv->spmax : rv->skmax)) + 1e-300;
    if (!(ai + mf < best + slack)) return best;
    const double ci = -2.0 * w[i];
    for (int j = 0; j < d; j++) {
        if (rv->mask[j] == kept) continue;
        double v = ai + xd[j] + ci * w[j] * Gi[j];
        int p = kept ? i : j, u = kept ? j : i;
        if (pair_better(v, p, u, best, *bp, *bu)) { best = v; *bp = p; *bu = u; }
    }
    return best;
}

/* Exact best swap over all pairs of the row (branch and bound).
 * delta(p, u) = a_p + b_u - 2 w_p w_u G_pu >= a_p + b_u - 2 s_p s_u with
 * s = |w| sqrt(diag G) (|G_pu| <= sqrt(G_pp G_uu), G PSD), so
 * min_u delta(p, u) >= a_p + h(s_p), h(x) = min_u (b_u - 2 s_u x), the lower
 * envelope of one line per pruned u (built in O(d log d), queried in
 * O(log d)). Kept p are visited in increasing bound, each with scan_partner. */
static double exact_best(const row_view *rv, fl_kv *kv, line_t *hull, double best, int *bp, int *bu) {
    const int d = rv->d;
    int nl = 0;
    for (int u = 0; u < d; u++)
        if (!rv->mask[u]) hull[nl++] = (line_t){ -2.0 * fabs((double)rv->w[u]) * rv->sgd[u], rv->b[u] };
    if (!nl) return best;
    const int h = hull_build(hull, nl);
    int n = 0;
    for (int p = 0; p < d; p++)
        if (rv->mask[p]) {
            double sp = fabs((double)rv->w[p]) * rv->sgd[p];
            double lb = rv->a[p] + hull_min(hull, h, sp * (1.0 + 1e-5));   /* slack for float G */
            if (lb < best) kv[n++] = (fl_kv){ -lb, p };
        }
    qsort(kv, (size_t)n, sizeof *kv, kv_cmp);        /* increasing bound */
    for (int i = 0; i < n && -kv[i].v < best; i++) best = scan_partner(rv, (int)kv[i].i, best, bp, bu);
    return best;
}

int fl_swaps_row(const float *w, const float *G, const float *gd, int d, uint8_t *mask,
                 const float *c0, const fl_swaps_opts *o, double err[2], double *trace, int trace_cap,
                 int *optimal, void *work) {
    double *c = work, *a = c + d, *b = a + d;
    float *af = (float *)(b + d), *bf = af + d, *sgd = bf + d;
    fl_kv *kv1 = (fl_kv *)(((uintptr_t)(sgd + d) + 15) & ~(uintptr_t)15), *kv2 = kv1 + d;
    line_t *hull = (line_t *)(kv2 + d);
    const int K = o->cand < 0 ? 0 : o->cand;
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
    for (int j = 0; j < d; j++) {
        if (!mask[j]) E += (double)w[j] * c[j];
        sgd[j] = gd[j] > 0 ? sqrtf(gd[j]) : 0.0f;
    }
    if (trace && trace_cap > 0) trace[0] = E;
    if (err) err[0] = err[1] = E;
    if (optimal) *optimal = 1;
    if (!(E > 0)) return 0;           /* nothing pruned carries error: optimal */
    const double tol = 1e-10 * E;     /* a swap must lower E by more than this */
    const int limit = o->budget > 0 ? o->budget : 100 * d;
    const int M = o->group;
    row_view rv = { .w = w, .G = G, .sgd = sgd, .mask = mask, .a = a, .b = b, .af = af, .bf = bf, .d = d };
    int nsw = 0;
    while (nsw < limit) {
        rv.aabs = rv.babs = rv.skmax = rv.spmax = 0;
        for (int j = 0; j < d; j++) {
            const double wj = w[j], g = wj * (double)gd[j], sj = fabs(wj) * sgd[j];
            if (mask[j]) {
                a[j] = 2.0 * wj * c[j] + wj * g; b[j] = INFINITY;
                af[j] = (float)a[j]; bf[j] = INFINITY;
                if (fabs(a[j]) > rv.aabs) rv.aabs = fabs(a[j]);
                if (sj > rv.skmax) rv.skmax = sj;
            } else {
                b[j] = wj * g - 2.0 * wj * c[j]; a[j] = INFINITY;
                bf[j] = (float)b[j]; af[j] = INFINITY;
                if (fabs(b[j]) > rv.babs) rv.babs = fabs(b[j]);
                if (sj > rv.spmax) rv.spmax = sj;
            }
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
                        if (pair_better(v, p, u, best, bp, bu)) { best = v; bp = p; bu = u; }
                    }
                }
        } else {
            if (K > 0) {   /* candidates: all partners of the K cheapest p and the K best u */
                int nk = 0, np = 0;
                for (int j = 0; j < d; j++) {
                    if (mask[j]) kv1[nk++] = (fl_kv){ -a[j], j };
                    else kv2[np++] = (fl_kv){ -b[j], j };
                }
                const int K1 = nk < K ? nk : K, K2 = np < K ? np : K;
                fl_kv_top(kv1, nk, K1);
                fl_kv_top(kv2, np, K2);
                for (int t = 0; t < K1; t++) best = scan_partner(&rv, (int)kv1[t].i, best, &bp, &bu);
                for (int t = 0; t < K2; t++) best = scan_partner(&rv, (int)kv2[t].i, best, &bp, &bu);
            }
            if (bp < 0) best = exact_best(&rv, kv1, hull, best, &bp, &bu);
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
    fl_warm warm;   /* first: fl_warm_uninit closes it */
    int budget;
} swaps_opts;

static const fl_option swaps_options[] = {
    { .name = "warm", .help = "the criterion whose mask is refined, with its own options", .type = FL_OPT_SPEC,
      .offset = offsetof(swaps_opts, warm.spec), .def_str = SWAPS_DEFAULT_WARM },
    { .name = "budget", .help = "most swaps per row (0: until no swap improves)", .type = FL_OPT_INT,
      .offset = offsetof(swaps_opts, budget), .def = SWAPS_DEFAULT_BUDGET, .min = 0, .max = 100000000 },
    { .name = NULL },
};

int fl_warm_open(const char *who, fl_warm *w) {
    if (fl_criterion_open(w->spec, &w->inst) == 0) return 0;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", fl_errmsg());
    return fl_err("criterion %s: warm start: %s", who, msg);
}

void fl_warm_uninit(void *priv) {
    fl_criterion_close(&((fl_warm *)priv)->inst);
}

int fl_warm_run(const char *who, const fl_warm *w, const fl_prune_job *j, float *tmp) {
    memcpy(tmp, j->W, sizeof(float) * (size_t)((int64_t)j->rows * j->cols));
    fl_prune_job wj = *j;
    wj.W = tmp;
    wj.verbose = 0;
    if (fl_criterion_run(&w->inst, &wj) == 0) return 0;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", fl_errmsg());
    return fl_err("%s: warm start %s: %s", who, w->spec, msg);
}

static int swaps_init(void *priv) {
    swaps_opts *o = priv;
    return fl_warm_open("sparseswaps", &o->warm);
}

static int swaps_prune(fl_prune_job *j) {
    const swaps_opts *sa = j->priv;
    if (!j->st || !j->st->gram) return fl_err("sparseswaps: needs the Gram matrix X^T X of the inputs");
    const int R = j->rows, D = j->cols;
    const int64_t n = (int64_t)R * D;
    const float *G = j->st->gram;

    /* warm start on a copy of W, so W is left as it is */
    float *tmp = fl_allocf((size_t)n);
    double t0 = omp_get_wtime();
    if (fl_warm_run("sparseswaps", &sa->warm, j, tmp) != 0) {
        fl_free(tmp);
        return -1;
    }
    /* c = G r for every row: one GEMM, R = W o (1 - mask) */
    for (int64_t i = 0; i < n; i++) tmp[i] = j->mask[i] ? 0.0f : j->W[i];
    float *Cm = fl_allocf((size_t)n);
    double t1 = omp_get_wtime();
    fl_gemm(0, 0, R, D, D, 1.0f, tmp, D, G, D, 0.0f, Cm, D);
    fl_free(tmp);
    float *gd = fl_allocf((size_t)D);
    for (int i = 0; i < D; i++) gd[i] = G[(int64_t)i * D + i];
    fl_swaps_opts o = { .budget = sa->budget, .cand = SWAPS_CAND,
                        .group = j->pat.kind == FL_PAT_NM ? j->pat.m : 0 };
    double e0 = 0, e1 = 0;
    long long tot = 0;
    int nopt = 0, maxsw = 0;
    double t2 = omp_get_wtime();
    #pragma omp parallel reduction(+ : e0, e1, tot, nopt) reduction(max : maxsw)
    {
        void *work = fl_alloc(fl_swaps_work_bytes(D));
        #pragma omp for schedule(dynamic, 4)
        for (int r = 0; r < R; r++) {
            int opt = 0;
            double er[2];
            int s = fl_swaps_row(j->W + (int64_t)r * D, G, gd, D, j->mask + (int64_t)r * D,
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
                "error %.6g -> %.6g (%.1f%% lower); seconds: warm start %.2f, G r %.2f, swaps %.2f\n", sa->warm.spec,
                sa->budget, R, D, (double)tot / R, maxsw, nopt, R, e0, e1, e0 > 0 ? 100.0 * (1.0 - e1 / e0) : 0.0,
                t1 - t0, t2 - t1, omp_get_wtime() - t2);
    fl_free(gd);
    fl_free(Cm);
    return 0;
}

const fl_criterion fl_crit_sparseswaps = {
    .name = "sparseswaps",
    .desc = "SparseSwaps: refine the warm start's mask by error-lowering 1-swaps, at most budget per row",
    .stats = FL_STATS_GRAM, .options = swaps_options, .priv_size = sizeof(swaps_opts),
    .init = swaps_init, .uninit = fl_warm_uninit, .prune = swaps_prune,
};
