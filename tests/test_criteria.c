/* Pruning criteria and sparsity patterns.
 *
 *   patterns_<criterion>  every criterion of FL_CRITERIA (later ones are
 *                 covered automatically) x row 0.5, row 0.6, matrix 0.5,
 *                 2:4, 4:8 on a random layer with statistics from random
 *                 correlated X: the mask is 0/1 with the exact count per
 *                 row / matrix / group of M (checked here, independently of
 *                 fl_mask_check), pruned weights are zero, criteria
 *                 other than sparsegpt leave the kept weights untouched,
 *                 and every tracked byte allocated is freed.
 *   reference_masks  magnitude, wanda, ria, ria:0, ria:1.3 against scores
 *                 computed here in double (masks equal, except entries whose
 *                 reference score is within 1e-5 relative of the cut).
 *   errors        malformed criterion names and arguments, sparsities
 *                 outside (0,1), N >= M, M not dividing the width, missing
 *                 statistics: -1 and a message naming what is valid.
 *   sparsegpt_beats  SparseGPT's layer error ||XW^T - XW'^T||^2/||XW^T||^2
 *                 is below magnitude's and Wanda's on random layers with
 *                 correlated inputs, for row, matrix and 2:4. */
#include "tests/testutil.h"
#include "criteria/criterion.h"
#include "model/alloc.h"
#include "model/err.h"
#include "model/gemm.h"

static const struct { const char *sparsity, *kind; } PATS[] = {
    { "0.5", "row" }, { "0.6", "row" }, { "0.5", "matrix" }, { "2:4", NULL }, { "4:8", NULL },
};
#define NPATS ((int)(sizeof PATS / sizeof *PATS))

typedef struct {
    int R, C, N;
    float *W, *X;
    fl_stats norms, gram;
} layer;

static void layer_make(layer *L, int R, int C, int N, uint64_t seed) {
    L->R = R; L->C = C; L->N = N;
    L->W = fl_allocf((size_t)R * C);
    L->X = fl_allocf((size_t)N * C);
    tu_fill(L->W, (size_t)R * C, 1.0f, seed);
    tu_correlated_inputs(L->X, N, C, 0, seed + 1000);
    fl_stats_init(&L->norms, FL_STATS_NORMS, C);
    fl_stats_add(&L->norms, L->X, N);
    fl_stats_init(&L->gram, FL_STATS_GRAM, C);
    fl_stats_add(&L->gram, L->X, N);
}

static void layer_free(layer *L) {
    fl_free(L->W); fl_free(L->X);
    fl_stats_free(&L->norms); fl_stats_free(&L->gram);
}

/* Runs `spec` on a copy of L->W; returns 0 or -1 (message in fl_errmsg). */
static int run_spec(const layer *L, const char *spec, const fl_pattern *p, float *Wout, uint8_t *mask) {
    fl_crit_inst c;
    if (fl_criterion_open(spec, &c) != 0) return -1;
    memcpy(Wout, L->W, sizeof(float) * L->R * L->C);
    fl_stats_kind k = fl_criterion_stats(&c);
    fl_prune_job job = { .W = Wout, .rows = L->R, .cols = L->C, .pat = *p, .mask = mask, .seed = 7,
                         .st = k == FL_STATS_NONE ? NULL : k == FL_STATS_NORMS ? &L->norms : &L->gram };
    int rc = fl_criterion_run(&c, &job);
    fl_criterion_close(&c);
    return rc;
}

static void parse_pat(int i, fl_pattern *p) {
    if (fl_pattern_parse(PATS[i].sparsity, PATS[i].kind, p) != 0) fail_msg("%s", fl_errmsg());
}

static const char *pat_name(int i, char *buf, size_t n) {
    snprintf(buf, n, "%s%s%s", PATS[i].kind ? PATS[i].kind : "", PATS[i].kind ? " " : "", PATS[i].sparsity);
    return buf;
}

/* ---- exact sparsity for every criterion x pattern ------------------------ */

static void test_patterns(void **state) {
    const fl_criterion *crit = *state;
    const size_t live0 = fl_mem_live();
    layer L;
    layer_make(&L, 48, 256, 256, 42);
    float *W = fl_allocf((size_t)L.R * L.C);
    uint8_t *mask = fl_alloc((size_t)L.R * L.C);
    for (int pi = 0; pi < NPATS; pi++) {
        char pn[32];
        pat_name(pi, pn, sizeof pn);
        fl_pattern p;
        parse_pat(pi, &p);
        memset(mask, 7, (size_t)L.R * L.C);
        if (run_spec(&L, crit->name, &p, W, mask) != 0) fail_msg("%s, %s: %s", crit->name, pn, fl_errmsg());
        int64_t total = 0;
        for (int r = 0; r < L.R; r++) {
            int64_t z = 0;
            for (int c = 0; c < L.C; c++) {
                int64_t i = (int64_t)r * L.C + c;
                if (mask[i] > 1) fail_msg("%s, %s: mask[%d,%d] = %d", crit->name, pn, r, c, mask[i]);
                if (!mask[i] && W[i] != 0.0f) fail_msg("%s, %s: pruned W[%d,%d] = %g", crit->name, pn, r, c, W[i]);
                if (mask[i] && strcmp(crit->name, "sparsegpt") && W[i] != L.W[i])
                    fail_msg("%s, %s: kept W[%d,%d] changed", crit->name, pn, r, c);
                z += !mask[i];
            }
            if (p.kind == FL_PAT_ROW && z != llround(p.sparsity * L.C))
                fail_msg("%s, %s: row %d prunes %lld of %d", crit->name, pn, r, (long long)z, L.C);
            if (p.kind == FL_PAT_NM)
                for (int g = 0; g < L.C; g += p.m) {
                    int kept = 0;
                    for (int c = g; c < g + p.m; c++) kept += mask[(int64_t)r * L.C + c];
                    if (kept != p.n) fail_msg("%s, %s: row %d group %d keeps %d", crit->name, pn, r, g, kept);
                }
            total += z;
        }
        int64_t want = p.kind == FL_PAT_MATRIX ? llround(p.sparsity * L.R * L.C)
                     : p.kind == FL_PAT_ROW ? L.R * llround(p.sparsity * L.C)
                     : (int64_t)L.R * L.C / p.m * (p.m - p.n);
        if (total != want) fail_msg("%s, %s: %lld pruned, expected %lld", crit->name, pn, (long long)total, (long long)want);
        assert_true(fabs(fl_mask_sparsity(mask, (int64_t)L.R * L.C) - (double)want / (L.R * L.C)) < 1e-12);
    }
    fl_free(W); fl_free(mask);
    layer_free(&L);
    if (fl_mem_live() != live0)
        fail_msg("%s: %lld tracked bytes not freed", crit->name, (long long)(fl_mem_live() - live0));
}

/* ---- magnitude, wanda, ria against a direct reference ------------------ */

typedef struct { double s; int64_t i; } dsi;
static int cmp_dsi(const void *a, const void *b) {
    const dsi *x = a, *y = b;
    return x->s < y->s ? -1 : x->s > y->s ? 1 : (x->i > y->i) - (x->i < y->i);
}

/* Prunes the k lowest of the n entries at idx[]; cut[idx] := the midpoint
 * between the highest pruned and the lowest kept score. */
static void select_unit(const double *score, const int64_t *idx, int64_t n, int64_t k, uint8_t *mask, double *cut, dsi *buf) {
    for (int64_t j = 0; j < n; j++) buf[j] = (dsi){ score[idx[j]], idx[j] };
    qsort(buf, (size_t)n, sizeof *buf, cmp_dsi);
    double lo = k > 0 ? buf[k - 1].s : buf[0].s, hi = k < n ? buf[k].s : buf[n - 1].s;
    for (int64_t j = 0; j < n; j++) {
        mask[buf[j].i] = j >= k;
        cut[buf[j].i] = 0.5 * (lo + hi);
    }
}

static void ref_mask(const double *score, int R, int C, const fl_pattern *p, uint8_t *mask, double *cut) {
    int64_t n = (int64_t)R * C;
    int64_t *idx = malloc(sizeof(int64_t) * n);
    dsi *buf = malloc(sizeof(dsi) * n);
    if (p->kind == FL_PAT_MATRIX) {
        for (int64_t i = 0; i < n; i++) idx[i] = i;
        select_unit(score, idx, n, llround(p->sparsity * R * C), mask, cut, buf);
    } else
        for (int r = 0; r < R; r++) {
            int w = p->kind == FL_PAT_ROW ? C : p->m;
            int64_t k = p->kind == FL_PAT_ROW ? llround(p->sparsity * C) : p->m - p->n;
            for (int g = 0; g < C; g += w) {
                for (int c = 0; c < w; c++) idx[c] = (int64_t)r * C + g + c;
                select_unit(score, idx, w, k, mask, cut, buf);
            }
        }
    free(idx); free(buf);
}

static void ref_scores(const layer *L, const char *spec, double *s) {
    const int R = L->R, C = L->C;
    const float *W = L->W;
    if (!strcmp(spec, "magnitude")) {
        for (int64_t i = 0; i < (int64_t)R * C; i++) s[i] = fabs(W[i]);
        return;
    }
    if (!strcmp(spec, "wanda")) {
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++) {
                double x = 0;   /* ||X_j||_2 straight from X */
                for (int n = 0; n < L->N; n++) x += (double)L->X[(int64_t)n * C + c] * L->X[(int64_t)n * C + c];
                s[(int64_t)r * C + c] = fabs(W[(int64_t)r * C + c]) * sqrt(x);
            }
        return;
    }
    if (!strcmp(spec, "obs")) {
        /* H = X^T X + 1% of its mean diagonal, inverted in double by
         * Gauss-Jordan (independent of the LAPACK path under test) */
        double *H = calloc((size_t)C * C, sizeof(double)), *I = calloc((size_t)C * C, sizeof(double)), md = 0;
        for (int n = 0; n < L->N; n++)
            for (int a = 0; a < C; a++)
                for (int b = 0; b < C; b++) H[(int64_t)a * C + b] += (double)L->X[(int64_t)n * C + a] * L->X[(int64_t)n * C + b];
        for (int a = 0; a < C; a++) md += H[(int64_t)a * C + a] / C;
        for (int a = 0; a < C; a++) { H[(int64_t)a * C + a] += 0.01 * md + 1e-8; I[(int64_t)a * C + a] = 1; }
        for (int p = 0; p < C; p++) {   /* SPD: no pivoting needed */
            double d = H[(int64_t)p * C + p];
            for (int b = 0; b < C; b++) { H[(int64_t)p * C + b] /= d; I[(int64_t)p * C + b] /= d; }
            for (int a = 0; a < C; a++) {
                if (a == p) continue;
                double f = H[(int64_t)a * C + p];
                for (int b = 0; b < C; b++) { H[(int64_t)a * C + b] -= f * H[(int64_t)p * C + b]; I[(int64_t)a * C + b] -= f * I[(int64_t)p * C + b]; }
            }
        }
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++) s[(int64_t)r * C + c] = (double)W[(int64_t)r * C + c] * W[(int64_t)r * C + c] / I[(int64_t)c * C + c];
        free(H); free(I);
        return;
    }
    double alpha = !strcmp(spec, "ria") ? 0.5 : atof(spec + 4);
    double *col = calloc(C, sizeof(double)), *row = calloc(R, sizeof(double)), *xn = calloc(C, sizeof(double));
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            col[c] += fabs(W[(int64_t)r * C + c]);
            row[r] += fabs(W[(int64_t)r * C + c]);
        }
    for (int c = 0; c < C; c++) {
        for (int n = 0; n < L->N; n++) xn[c] += (double)L->X[(int64_t)n * C + c] * L->X[(int64_t)n * C + c];
        xn[c] = pow(sqrt(xn[c]), alpha);
    }
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            double a = fabs(W[(int64_t)r * C + c]);
            s[(int64_t)r * C + c] = (a / col[c] + a / row[r]) * xn[c];
        }
    free(col); free(row); free(xn);
}

static void test_reference_masks(void **state) {
    (void)state;
    static const char *SPECS[] = { "magnitude", "wanda", "ria", "ria:0", "ria:1.3", "obs" };
    layer L;
    layer_make(&L, 40, 192, 256, 7);
    const int64_t n = (int64_t)L.R * L.C;
    double *score = malloc(sizeof(double) * n), *cut = malloc(sizeof(double) * n);
    uint8_t *mref = malloc(n), *mask = fl_alloc(n);
    float *W = fl_allocf(n);
    for (size_t si = 0; si < sizeof SPECS / sizeof *SPECS; si++) {
        ref_scores(&L, SPECS[si], score);
        for (int pi = 0; pi < NPATS; pi++) {
            char pn[32];
            pat_name(pi, pn, sizeof pn);
            fl_pattern p;
            parse_pat(pi, &p);
            ref_mask(score, L.R, L.C, &p, mref, cut);
            if (run_spec(&L, SPECS[si], &p, W, mask) != 0) fail_msg("%s, %s: %s", SPECS[si], pn, fl_errmsg());
            int mism = 0;
            for (int64_t i = 0; i < n; i++) {
                if (mask[i] == mref[i]) continue;
                mism++;
                if (fabs(score[i] - cut[i]) > 1e-5 * fabs(cut[i]))
                    fail_msg("%s, %s: mask differs from the reference at %lld (score %.9g, cut %.9g): not a tie",
                             SPECS[si], pn, (long long)i, score[i], cut[i]);
            }
            if (mism) printf("%s, %s: %d near-tie mask differences\n", SPECS[si], pn, mism);
        }
    }
    free(score); free(cut); free(mref);
    fl_free(mask); fl_free(W);
    layer_free(&L);
}

/* ---- errors ---------------------------------------------------------------- */

static void expect_err(int rc, const char *what, const char *needle1, const char *needle2) {
    if (rc != -1) fail_msg("%s: expected an error, got %d", what, rc);
    const char *m = fl_errmsg();
    if (!strstr(m, needle1) || (needle2 && !strstr(m, needle2)))
        fail_msg("%s: message '%s' should mention '%s'%s%s", what, m, needle1, needle2 ? " and " : "", needle2 ? needle2 : "");
    printf("  %-22s -> %s\n", what, m);
}

static void test_errors(void **state) {
    (void)state;
    fl_crit_inst c;
    /* unknown names list every criterion */
    for (const char *const *s = (const char *const[]){ "nosuch", "Wanda", "", "wand", ":0.5", NULL }; *s; s++) {
        expect_err(fl_criterion_open(*s, &c), *s, "unknown criterion", "valid:");
        for (int i = 0; FL_CRITERIA[i]; i++) assert_non_null(strstr(fl_errmsg(), FL_CRITERIA[i]->name));
        assert_null(fl_criterion_find(*s, NULL));
    }
    /* criteria without options refuse any; "name:" with nothing after is the defaults */
    expect_err(fl_criterion_open("wanda:2", &c), "wanda:2", "criterion wanda: takes no options", "options: none");
    expect_err(fl_criterion_open("obs:alpha=1", &c), "obs:alpha=1", "criterion obs: takes no options", NULL);
    assert_int_equal(fl_criterion_open("magnitude:", &c), 0);
    fl_criterion_close(&c);
    for (const char *const *s = (const char *const[]){ "ria:abc", "ria:3", "ria:-0.1", "ria:0.5x", "ria:nan", "ria:inf",
                                                       "ria:alpha=", "ria:alpha=3", "ria:beta=1", "ria:1,2",
                                                       "ria:alpha=1,alpha=1", "ria:(1", NULL }; *s; s++)
        expect_err(fl_criterion_open(*s, &c), *s, "criterion ria: ", "options: alpha=0.5 (in [0, 2])");
    const char *text;
    const fl_criterion *cr = fl_criterion_find("ria:1.5", &text);
    assert_non_null(cr);
    assert_string_equal(cr->name, "ria");
    assert_string_equal(text, "1.5");
    assert_non_null(fl_criterion_find("ria", &text));
    assert_null(text);
    for (const char *const *s = (const char *const[]){ "ria", "ria:", "ria:1.5", "ria:2", "ria:0", "ria:alpha=1",
                                                       "ria:(0.5)", NULL }; *s; s++) {
        if (fl_criterion_open(*s, &c) != 0) fail_msg("%s: %s", *s, fl_errmsg());
        assert_ptr_equal(c.crit, cr);
        fl_criterion_close(&c);
        assert_null(c.crit);
        fl_criterion_close(&c);   /* twice is harmless */
    }
    assert_int_equal(fl_criterion_open("sparsegpt", &c), 0);
    assert_string_equal(c.crit->name, "sparsegpt");
    assert_int_equal(fl_criterion_stats(&c), FL_STATS_GRAM);
    fl_criterion_close(&c);

    fl_pattern p;
    for (const char *const *s = (const char *const[]){ "0", "1", "1.5", "-0.2", "abc", "", "0.5.1", NULL }; *s; s++)
        expect_err(fl_pattern_parse(*s, "row", &p), *s, "(0, 1)", "N:M");
    for (const char *const *s = (const char *const[]){ "4:4", "5:4", "0:4", "2:x", "a:4", "2:-4", NULL }; *s; s++)
        expect_err(fl_pattern_parse(*s, NULL, &p), *s, "1 <= N < M", "2:4");
    expect_err(fl_pattern_parse("0.5", "column", &p), "pattern column", "row or matrix", NULL);

    /* M not dividing the width, through a real run */
    layer L;
    layer_make(&L, 8, 100, 64, 3);
    float *W = fl_allocf(800);
    uint8_t *mask = fl_alloc(800);
    assert_int_equal(fl_pattern_parse("3:8", NULL, &p), 0);
    expect_err(fl_pattern_check(&p, 8, 100, "fc1"), "3:8 on width 100", "does not divide the input width 100", NULL);
    for (int i = 0; FL_CRITERIA[i]; i++)   /* the weight criteria; structured ones: test_structured.c */
        if (!FL_CRITERIA[i]->structures)
            expect_err(run_spec(&L, FL_CRITERIA[i]->name, &p, W, mask), FL_CRITERIA[i]->name, "M=8", "width 100");
    /* statistics missing */
    assert_int_equal(fl_pattern_parse("0.5", "row", &p), 0);
    fl_prune_job job = { .W = W, .rows = 8, .cols = 100, .pat = p, .mask = mask };
    assert_int_equal(fl_criterion_open("wanda", &c), 0);
    expect_err(fl_criterion_run(&c, &job), "wanda without stats", "statistics missing", NULL);
    fl_criterion_close(&c);
    job.st = &L.norms;
    assert_int_equal(fl_criterion_open("sparsegpt", &c), 0);
    expect_err(fl_criterion_run(&c, &job), "sparsegpt with norms", "statistics missing", NULL);
    fl_criterion_close(&c);
    fl_free(W); fl_free(mask);
    layer_free(&L);
}

/* ---- SparseGPT's layer error below magnitude's and Wanda's ------------- */

static double layer_err(const layer *L, const float *Wp) {
    const int R = L->R, C = L->C, N = L->N;
    float *D = fl_allocf((size_t)R * C), *Y = fl_allocf((size_t)N * R), *Y0 = fl_allocf((size_t)N * R);
    for (int64_t i = 0; i < (int64_t)R * C; i++) D[i] = L->W[i] - Wp[i];
    fl_gemm(0, 1, N, R, C, 1.0f, L->X, C, D, C, 0.0f, Y, R);
    fl_gemm(0, 1, N, R, C, 1.0f, L->X, C, L->W, C, 0.0f, Y0, R);
    double num = 0, den = 0;
    for (int64_t i = 0; i < (int64_t)N * R; i++) { num += (double)Y[i] * Y[i]; den += (double)Y0[i] * Y0[i]; }
    fl_free(D); fl_free(Y); fl_free(Y0);
    return num / den;
}

static void test_sparsegpt_beats(void **state) {
    (void)state;
    static const struct { int R, C, N; uint64_t seed; } SHAPES[] = {
        { 64, 256, 1024, 101 }, { 128, 384, 2048, 202 }, { 200, 136, 512, 303 },
    };
    static const char *SPECS[] = { "magnitude", "wanda", "sparsegpt" };
    static const struct { const char *sparsity, *kind; } P3[] = { { "0.5", "row" }, { "0.5", "matrix" }, { "2:4", NULL } };
    for (size_t si = 0; si < sizeof SHAPES / sizeof *SHAPES; si++) {
        layer L;
        layer_make(&L, SHAPES[si].R, SHAPES[si].C, SHAPES[si].N, SHAPES[si].seed);
        float *W = fl_allocf((size_t)L.R * L.C);
        uint8_t *mask = fl_alloc((size_t)L.R * L.C);
        for (int pi = 0; pi < 3; pi++) {
            fl_pattern p;
            assert_int_equal(fl_pattern_parse(P3[pi].sparsity, P3[pi].kind, &p), 0);
            double e[3];
            for (int k = 0; k < 3; k++) {
                if (run_spec(&L, SPECS[k], &p, W, mask) != 0) fail_msg("%s: %s", SPECS[k], fl_errmsg());
                e[k] = layer_err(&L, W);
            }
            printf("layer %dx%d n=%d %s %s: error magnitude %.4f, wanda %.4f, sparsegpt %.4f\n", L.R, L.C, L.N,
                   P3[pi].kind ? P3[pi].kind : "nm", P3[pi].sparsity, e[0], e[1], e[2]);
            if (!(e[2] < e[0] && e[2] < e[1]))
                fail_msg("sparsegpt's layer error %.4g is not below magnitude's %.4g and wanda's %.4g", e[2], e[0], e[1]);
        }
        fl_free(W); fl_free(mask);
        layer_free(&L);
    }
}

int main(void) {
    fl_threads_init(0);
    /* every weight criterion of the registry; the structured ones (which
     * remove whole heads, channels or blocks) are test_structured.c's */
    int nall = 0, nc = 0;
    while (FL_CRITERIA[nall]) nall++;
    struct CMUnitTest *t = calloc(nall + 3, sizeof *t);
    char (*names)[64] = calloc(nall, 64);
    for (int i = 0; i < nall; i++) {
        if (FL_CRITERIA[i]->structures) continue;
        snprintf(names[nc], 64, "patterns_%s", FL_CRITERIA[i]->name);
        t[nc] = (struct CMUnitTest){ names[nc], test_patterns, NULL, NULL, (void *)FL_CRITERIA[i] };
        nc++;
    }
    t[nc] = (struct CMUnitTest){ "reference_masks", test_reference_masks, NULL, NULL, NULL };
    t[nc + 1] = (struct CMUnitTest){ "errors", test_errors, NULL, NULL, NULL };
    t[nc + 2] = (struct CMUnitTest){ "sparsegpt_beats", test_sparsegpt_beats, NULL, NULL, NULL };
    int rc = _cmocka_run_group_tests("criteria", t, nc + 3, NULL, NULL);
    free(t); free(names);
    return rc;
}
