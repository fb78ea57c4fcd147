/* SparseSwaps and SparseFW (criteria/sparseswaps.c, criteria/sparsefw.c):
 * swaps never raise a row's error, end 1-swap optimal (brute force on small
 * rows), stay inside N:M groups, and beat their warm start; Frank-Wolfe's
 * relaxed objective never rises, ends below the warm start's, and its
 * rounded mask beats the warm start's layer error; every pattern gives exact
 * sparsity; bad arguments give one clear error. */
#include "tests/testutil.h"
#include "criteria/criterion.h"
#include "criteria/swaps_fw.h"
#include "model/alloc.h"
#include "model/err.h"
#include "model/gemm.h"
#include <omp.h>

/* The warm start the tests use: wanda once it is registered, else magnitude. */
static const char *warm_name(void) {
    return fl_criterion_find("wanda", NULL) ? "wanda" : "magnitude";
}

/* Correlated inputs: X = Z (I + U V^T) diag(scale), Z uniform, U V^T of rank
 * 4 with columns about as large as the identity's, per-feature scales spread
 * over ~1.5 decades (outlier features as in LLM activations). Returns stats
 * with the Gram matrix. */
static void make_stats(fl_stats *st, int D, int N, uint64_t seed) {
    float *Z = fl_allocf((size_t)N * D), *A = fl_allocf((size_t)D * D), *X = fl_allocf((size_t)N * D);
    float *U = fl_allocf((size_t)D * 4), *V = fl_allocf((size_t)D * 4), *sc = fl_allocf(D);
    tu_fill(Z, (size_t)N * D, 1.0f, seed);
    tu_fill(U, (size_t)D * 4, 3.0f / sqrtf((float)D), seed + 1);
    tu_fill(V, (size_t)D * 4, 0.6f, seed + 2);
    tu_fill(sc, D, 1.0f, seed + 3);
    fl_gemm(0, 1, D, D, 4, 1.0f, U, 4, V, 4, 0.0f, A, D);
    for (int j = 0; j < D; j++) A[(int64_t)j * D + j] += 1.0f;
    for (int j = 0; j < D; j++) {
        float s = powf(10.0f, 0.75f * sc[j]);
        for (int i = 0; i < D; i++) A[(int64_t)i * D + j] *= s;
    }
    fl_gemm(0, 0, N, D, D, 1.0f, Z, D, A, D, 0.0f, X, D);
    assert_int_equal(fl_stats_init(st, FL_STATS_GRAM, D), 0);
    fl_stats_add(st, X, N);
    /* sgemm's X^T X need not be bitwise symmetric; the row algebra assumes
     * G = G^T, so make it exact here to test the bookkeeping to 1e-9 */
    for (int i = 0; i < D; i++)
        for (int j = 0; j < i; j++) {
            float v = 0.5f * (st->gram[(int64_t)i * D + j] + st->gram[(int64_t)j * D + i]);
            st->gram[(int64_t)i * D + j] = st->gram[(int64_t)j * D + i] = v;
        }
    fl_free(Z); fl_free(A); fl_free(X); fl_free(U); fl_free(V); fl_free(sc);
}

static void gram_diag(const float *G, int D, float *gd) {
    for (int j = 0; j < D; j++) gd[j] = G[(int64_t)j * D + j];
}

/* A mask for one row keeping k of d at random (a bad start: many swaps). */
static void random_row_mask(uint8_t *m, int d, int k, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int j = 0; j < d; j++) m[j] = j < k;
    for (int j = d - 1; j > 0; j--) {
        int i = (int)(tu_rng(&s) % (uint64_t)(j + 1));
        uint8_t t = m[i]; m[i] = m[j]; m[j] = t;
    }
}

/* Brute force: the best delta over all 1-swaps of the row (inside groups of
 * M if M > 0), from scratch. */
static double brute_best_delta(const float *w, const float *G, int d, uint8_t *m, int M) {
    double E = fl_row_error(w, G, d, m), best = INFINITY;
    for (int p = 0; p < d; p++) {
        if (!m[p]) continue;
        for (int u = 0; u < d; u++) {
            if (m[u] || (M > 0 && p / M != u / M)) continue;
            m[p] = 0; m[u] = 1;
            double e = fl_row_error(w, G, d, m);
            m[p] = 1; m[u] = 0;
            if (e - E < best) best = e - E;
        }
    }
    return best;
}

/* One row, all sizes 16..32, exact and candidate searches, row and N:M. */
static void row_case(int d, int k, int M, int cand, uint64_t seed) {
    fl_stats st;
    make_stats(&st, d, 4 * d, seed);
    float *w = fl_allocf(d), *sg = fl_allocf(d);
    tu_fill(w, d, 1.0f, seed + 10);
    gram_diag(st.gram, d, sg);
    uint8_t m[64], m1[64];
    if (M > 0) {   /* N:M: random k per group */
        for (int g = 0; g < d; g += M) random_row_mask(m + g, M, k, seed + 20 + g);
    } else random_row_mask(m, d, k, seed + 20);
    memcpy(m1, m, d);
    fl_swaps_opts o = { .budget = 0, .cand = cand, .group = M };
    void *work = fl_alloc(fl_swaps_work_bytes(d));
    double trace[4096], err[2];
    int opt = -1;
    double e0 = fl_row_error(w, st.gram, d, m);
    int ns = fl_swaps_row(w, st.gram, sg, d, m, NULL, &o, err, trace, 4096, &opt, work);
    assert_true(ns < 4096);
    assert_int_equal(opt, 1);
    double e1 = fl_row_error(w, st.gram, d, m);
    assert_true(fabs(err[0] - e0) <= 1e-9 * e0);
    if (!(fabs(err[1] - e1) <= 1e-9 * e0)) fail_msg("d %d k %d M %d cand %d: e0 %.17g tracked %.17g e1 %.17g ns %d", d, k, M, cand, e0, err[1], e1, ns);
    /* the tracked error never rises, and each swap lowers it */
    for (int i = 0; i < ns; i++) assert_true(trace[i + 1] < trace[i]);
    /* counts preserved: per row, and per group for N:M */
    int kept = 0;
    for (int j = 0; j < d; j++) kept += m[j];
    assert_int_equal(kept, M > 0 ? k * (d / M) : k);
    if (M > 0)
        for (int g = 0; g < d; g += M) {
            int kg = 0;
            for (int j = g; j < g + M; j++) kg += m[j];
            assert_int_equal(kg, k);
        }
    /* 1-swap optimal by brute force */
    double bd = brute_best_delta(w, st.gram, d, m, M);
    assert_true(bd >= -1e-9 * e0);
    if (e0 > 0 && ns > 0) assert_true(e1 < e0);

    /* the same, one swap at a time, checking the true error after each swap */
    fl_swaps_opts o1 = o;
    o1.budget = 1;
    double prev = fl_row_error(w, st.gram, d, m1);
    for (int it = 0; it < 4 * d * d; it++) {
        int opt1;
        int s = fl_swaps_row(w, st.gram, sg, d, m1, NULL, &o1, NULL, NULL, 0, &opt1, work);
        double e = fl_row_error(w, st.gram, d, m1);
        assert_true(e <= prev + 1e-12 * e0);
        prev = e;
        if (s == 0) { assert_int_equal(opt1, 1); break; }
    }
    assert_true(brute_best_delta(w, st.gram, d, m1, M) >= -1e-9 * e0);
    fl_free(work); fl_free(w); fl_free(sg);
    fl_stats_free(&st);
}

static void test_swaps_rows(void **state) {
    (void)state;
    int nswaps_seen = 0;
    for (int d = 16; d <= 32; d += 8)
        for (int seed = 1; seed <= 4; seed++) {
            for (int cand = 0; cand <= 4; cand += 4) {
                row_case(d, d / 2, 0, cand, 100 * d + seed);
                row_case(d, d / 4, 0, cand, 200 * d + seed);
                row_case(d, 3 * d / 4, 0, cand, 300 * d + seed);
            }
            nswaps_seen++;
        }
    assert_true(nswaps_seen > 0);
}

static void test_swaps_nm_rows(void **state) {
    (void)state;
    for (int seed = 1; seed <= 4; seed++) {
        row_case(16, 2, 4, 0, 500 + seed);    /* 2:4 */
        row_case(32, 4, 8, 0, 600 + seed);    /* 4:8 */
        row_case(24, 1, 3, 0, 700 + seed);    /* 1:3 */
    }
}

/* Budget: stops after exactly `budget` swaps when more would help. */
static void test_swaps_budget(void **state) {
    (void)state;
    const int d = 32;
    fl_stats st;
    make_stats(&st, d, 128, 77);
    float w[32], sg[32];
    tu_fill(w, d, 1.0f, 78);
    gram_diag(st.gram, d, sg);
    uint8_t m[32];
    random_row_mask(m, d, 16, 79);
    void *work = fl_alloc(fl_swaps_work_bytes(d));
    fl_swaps_opts o = { .budget = 2, .cand = 8, .group = 0 };
    int opt = -1;
    int ns = fl_swaps_row(w, st.gram, sg, d, m, NULL, &o, NULL, NULL, 0, &opt, work);
    assert_int_equal(ns, 2);
    assert_int_equal(opt, 0);
    fl_free(work);
    fl_stats_free(&st);
}

/* ---- whole layers through the registry ------------------------------------ */

typedef struct { int R, D, N; } shape;

/* Runs `spec` on a copy of W; returns its layer error; checks the mask
 * conforms and (mask-only criteria) the kept weights are untouched. */
static double run_spec(const char *spec, const float *W, int R, int D, const fl_stats *st, const fl_pattern *p,
                       uint8_t *mask, int mask_only) {
    fl_crit_inst c;
    if (fl_criterion_open(spec, &c) != 0) fail_msg("%s: %s", spec, fl_errmsg());
    float *Wc = fl_allocf((size_t)R * D);
    memcpy(Wc, W, sizeof(float) * R * D);
    fl_prune_job j = { .W = Wc, .rows = R, .cols = D, .st = st, .pat = *p, .mask = mask, .seed = 1 };
    if (fl_criterion_run(&c, &j) != 0) fail_msg("%s: %s", spec, fl_errmsg());
    fl_criterion_close(&c);
    assert_int_equal(fl_mask_check(mask, R, D, p, spec), 0);
    if (mask_only)
        for (int64_t i = 0; i < (int64_t)R * D; i++) assert_true(Wc[i] == (mask[i] ? W[i] : 0.0f));
    fl_free(Wc);
    return fl_layer_error(W, R, D, st->gram, mask);
}

static void layer_setup(float **W, fl_stats *st, int R, int D, int N, uint64_t seed) {
    *W = fl_allocf((size_t)R * D);
    tu_fill(*W, (size_t)R * D, 0.1f, seed);
    make_stats(st, D, N, seed + 5);
}

static void test_swaps_layer(void **state) {
    (void)state;
    const int R = 48, D = 128, N = 256;
    float *W;
    fl_stats st;
    layer_setup(&W, &st, R, D, N, 11);
    const char *pats[][2] = { { "0.5", "row" }, { "0.7", "row" }, { "0.6", "matrix" }, { "2:4", NULL }, { "4:8", NULL } };
    uint8_t *mw = malloc((size_t)R * D), *ms = malloc((size_t)R * D);
    char spec[64];
    for (size_t t = 0; t < sizeof pats / sizeof pats[0]; t++) {
        fl_pattern p;
        assert_int_equal(fl_pattern_parse(pats[t][0], pats[t][1], &p), 0);
        double ew = run_spec(warm_name(), W, R, D, &st, &p, mw, 1);
        snprintf(spec, sizeof spec, "sparseswaps:%s:0", warm_name());
        double es = run_spec(spec, W, R, D, &st, &p, ms, 1);
        print_message("sparseswaps %-7s %-6s: layer error %.5g vs %s %.5g (%.1f%% lower)\n", pats[t][0],
                      pats[t][1] ? pats[t][1] : "", es, warm_name(), ew, 100 * (1 - es / ew));
        assert_true(es < 0.97 * ew);
        if (p.kind == FL_PAT_MATRIX)   /* per-row counts of the warm start kept */
            for (int r = 0; r < R; r++) {
                int a = 0, b = 0;
                for (int c = 0; c < D; c++) { a += mw[r * D + c]; b += ms[r * D + c]; }
                assert_int_equal(a, b);
            }
        /* a small budget still helps, and never hurts */
        snprintf(spec, sizeof spec, "sparseswaps:%s:3", warm_name());
        double eb = run_spec(spec, W, R, D, &st, &p, ms, 1);
        assert_true(eb <= ew * (1 + 1e-6) && eb >= es * (1 - 1e-6));
    }
    /* other warm starts, including one that updates weights (on its copy only) */
    fl_pattern p;
    assert_int_equal(fl_pattern_parse("0.5", "row", &p), 0);
    const char *warms[] = { "magnitude", "random", "ria", "sparsegpt" };
    for (size_t t = 0; t < sizeof warms / sizeof warms[0]; t++) {
        if (!fl_criterion_find(warms[t], NULL)) continue;
        double ew = run_spec(warms[t], W, R, D, &st, &p, mw, 0);
        snprintf(spec, sizeof spec, "sparseswaps:%s", warms[t]);
        double es = run_spec(spec, W, R, D, &st, &p, ms, 1);
        print_message("sparseswaps:%-9s 0.5 row: %.5g vs mask of %s %.5g\n", warms[t], es, warms[t], ew);
        assert_true(es < ew);
    }
    free(mw); free(ms);
    fl_free(W);
    fl_stats_free(&st);
}

/* Same mask with 1 thread and with several. */
static void test_threads_deterministic(void **state) {
    (void)state;
    const int R = 24, D = 64;
    float *W;
    fl_stats st;
    layer_setup(&W, &st, R, D, 128, 21);
    fl_pattern p;
    assert_int_equal(fl_pattern_parse("0.5", "row", &p), 0);
    uint8_t *a = malloc(R * D), *b = malloc(R * D);
    const char *specs[] = { "sparseswaps", "sparsefw:magnitude:0.3:20" };
    for (int s = 0; s < 2; s++) {
        int nt = omp_get_max_threads();
        omp_set_num_threads(1);
        run_spec(specs[s], W, R, D, &st, &p, a, 1);
        omp_set_num_threads(nt > 1 ? nt : 3);
        run_spec(specs[s], W, R, D, &st, &p, b, 1);
        omp_set_num_threads(nt);
        assert_memory_equal(a, b, R * D);
    }
    free(a); free(b);
    fl_free(W);
    fl_stats_free(&st);
}

/* ---- SparseFW ------------------------------------------------------------- */

static void fw_case(const char *sp, const char *kind, double alpha, int iters) {
    const int R = 32, D = 96, N = 256;
    float *W;
    fl_stats st;
    layer_setup(&W, &st, R, D, N, 31);
    fl_pattern p;
    assert_int_equal(fl_pattern_parse(sp, kind, &p), 0);
    uint8_t *mask = malloc(R * D), *warm = malloc(R * D);
    double ew = run_spec(warm_name(), W, R, D, &st, &p, warm, 1);
    memcpy(mask, warm, R * D);
    double *trace = malloc(sizeof(double) * (iters + 1)), *gap = malloc(sizeof(double) * iters);
    fl_fw_opts o = { .iters = iters, .alpha = alpha, .verbose = 0 };
    fl_fw_report rep = { .trace = trace, .gap = gap };
    assert_int_equal(fl_sparsefw_run(W, R, D, st.gram, &p, mask, &o, &rep), 0);
    assert_int_equal(fl_mask_check(mask, R, D, &p, "sparsefw"), 0);
    /* the relaxed objective starts at the warm start's error, never rises */
    assert_true(fabs(trace[0] - ew) <= 1e-4 * ew);
    for (int t = 0; t < iters; t++) {
        assert_true(trace[t + 1] <= trace[t] + 1e-7 * trace[0]);   /* up to float G v */
        assert_true(gap[t] >= -1e-9 * trace[0]);
        /* the FW gap bounds the distance to the optimum: f_t - f* <= gap_t */
        assert_true(trace[t] - gap[t] <= trace[iters] * (1 + 1e-9) + 1e-12);
    }
    assert_true(trace[iters] < 0.9 * trace[0]);
    /* fixed entries: the alpha-fraction of the warm start's kept weights with
     * the largest saliency stay kept */
    if (alpha > 0 && p.kind == FL_PAT_ROW)
        for (int r = 0; r < R; r++) {
            int k = 0;
            for (int c = 0; c < D; c++) k += warm[r * D + c];
            int kf = (int)floor(alpha * k), kept_top = 0;
            /* rank warm-kept by saliency */
            for (int c = 0; c < D; c++) {
                if (!warm[r * D + c]) continue;
                float sc = fabsf(W[r * D + c]) * sqrtf(st.gram[(int64_t)c * D + c]);
                int above = 0;
                for (int c2 = 0; c2 < D; c2++)
                    if (warm[r * D + c2] && fabsf(W[r * D + c2]) * sqrtf(st.gram[(int64_t)c2 * D + c2]) > sc) above++;
                if (above < kf) { assert_int_equal(mask[r * D + c], 1); kept_top++; }
            }
            assert_true(kept_top <= kf);
        }
    double ef = fl_layer_error(W, R, D, st.gram, mask);
    assert_true(fabs(rep.final_err - ef) <= 1e-9 * ef);
    print_message("sparsefw %-4s %-6s alpha %.1f: relaxed %.5g -> %.5g, rounded %.5g vs %s %.5g (%.1f%% lower)\n", sp,
                  kind ? kind : "", alpha, trace[0], trace[iters], ef, warm_name(), ew, 100 * (1 - ef / ew));
    assert_true(ef < ew);
    free(mask); free(warm); free(trace); free(gap);
    fl_free(W);
    fl_stats_free(&st);
}

static void test_fw_patterns(void **state) {
    (void)state;
    for (int a = 0; a < 2; a++) {
        double alpha = a ? 0.5 : 0.0;
        fw_case("0.5", "row", alpha, 60);
        fw_case("0.6", "matrix", alpha, 60);
        fw_case("2:4", NULL, alpha, 60);
        fw_case("4:8", NULL, alpha, 60);
    }
}

static void test_fw_registry(void **state) {
    (void)state;
    const int R = 24, D = 64;
    float *W;
    fl_stats st;
    layer_setup(&W, &st, R, D, 192, 41);
    uint8_t *m = malloc(R * D);
    const char *pats[][2] = { { "0.5", "row" }, { "0.4", "matrix" }, { "2:4", NULL } };
    for (int t = 0; t < 3; t++) {
        fl_pattern p;
        assert_int_equal(fl_pattern_parse(pats[t][0], pats[t][1], &p), 0);
        double ew = run_spec(warm_name(), W, R, D, &st, &p, m, 1);
        double e1 = run_spec("sparsefw", W, R, D, &st, &p, m, 1);
        double em = run_spec("magnitude", W, R, D, &st, &p, m, 1);
        double e2 = run_spec("sparsefw:magnitude:0.9:30", W, R, D, &st, &p, m, 1);
        double e3 = run_spec("sparsefw::0.5", W, R, D, &st, &p, m, 1);
        double e0 = run_spec("sparsefw:wanda:0:0", W, R, D, &st, &p, m, 1);   /* 0 iterations: the warm start */
        if (!strcmp(warm_name(), "wanda")) assert_true(fabs(e0 - ew) <= 1e-9 * ew);
        assert_true(e1 < ew && e3 < ew && e2 < em);
    }
    free(m);
    fl_free(W);
    fl_stats_free(&st);
}

/* ---- arguments -------------------------------------------------------------- */

static void bad(const char *spec, const char *needle) {
    fl_crit_inst c;
    fl_err_clear();
    assert_int_equal(fl_criterion_open(spec, &c), -1);
    assert_null(c.crit);
    const char *msg = fl_errmsg();
    if (!strstr(msg, needle)) fail_msg("'%s': message '%s' lacks '%s'", spec, msg, needle);
    assert_null(strchr(msg, '\n'));
}

static fl_stats_kind stats_of(const char *spec) {
    fl_crit_inst c;
    if (fl_criterion_open(spec, &c) != 0) fail_msg("%s: %s", spec, fl_errmsg());
    fl_stats_kind k = fl_criterion_stats(&c);
    fl_criterion_close(&c);
    return k;
}

/* Runs spec on a fixed small layer (row 0.5 and 2:4); the masks and
 * weights of both runs, for comparing two spellings of one setting. */
static void run_small(const char *spec, uint8_t *mask, float *W) {
    const int R = 16, D = 64;
    static float *W0;
    static fl_stats st;
    if (!W0) layer_setup(&W0, &st, R, D, 128, 77);
    const char *pats[][2] = { { "0.5", "row" }, { "2:4", NULL } };
    for (int t = 0; t < 2; t++) {
        fl_pattern p;
        assert_int_equal(fl_pattern_parse(pats[t][0], pats[t][1], &p), 0);
        fl_crit_inst c;
        if (fl_criterion_open(spec, &c) != 0) fail_msg("%s: %s", spec, fl_errmsg());
        float *Wt = W + (int64_t)t * R * D;
        memcpy(Wt, W0, sizeof(float) * R * D);
        fl_prune_job j = { .W = Wt, .rows = R, .cols = D, .st = &st, .pat = p, .mask = mask + (int64_t)t * R * D,
                           .seed = 1 };
        if (fl_criterion_run(&c, &j) != 0) fail_msg("%s: %s", spec, fl_errmsg());
        fl_criterion_close(&c);
    }
}

/* a and b prune identically (same = 1), or not (same = 0) */
static void same(const char *a, const char *b, int same) {
    enum { N = 2 * 16 * 64 };
    uint8_t ma[N], mb[N];
    float wa[N], wb[N];
    run_small(a, ma, wa);
    run_small(b, mb, wb);
    int eq = !memcmp(ma, mb, sizeof ma) && !memcmp(wa, wb, sizeof wa);
    if (eq != same) fail_msg("'%s' and '%s' should prune %s", a, b, same ? "identically" : "differently");
}

static void test_args(void **state) {
    (void)state;
    bad("sparseswaps:nosuch", "magnitude");
    bad("sparseswaps:warm=nosuch", "warm start: unknown criterion 'nosuch' (valid:");
    bad("sparseswaps:wanda:-1", "budget: -1 is out of range [0, 100000000]");
    bad("sparseswaps:wanda:x", "whole number");
    bad("sparseswaps:wanda:10:3", "too many values");
    bad("sparseswaps:budget=5,budget=6", "given twice");
    bad("sparseswaps:warm=ria:alpha=3", "criterion sparseswaps: warm start: criterion ria: alpha: 3 is out of range");
    bad("sparseswaps:warm=(ria:alpha=1", "'(' without ')'");
    bad("sparsefw:nosuch", "valid:");
    bad("sparsefw:wanda:1", "[0, 1)");
    bad("sparsefw:alpha=1", "[0, 1)");
    bad("sparsefw:wanda:-0.1", "out of range");
    bad("sparsefw:wanda:abc", "alpha: 'abc' is not a number");
    bad("sparsefw:wanda:0.5:x", "iters: 'x' is not a whole number");
    bad("sparsefw:wanda:0.5:10:1", "too many values");
    bad("sparsefw:iter=5", "unknown option 'iter'; options: warm=wanda");
    bad("sparsefw:warm=(ria:alpha=1),iters=5,alpha=0.5,x", "too many values");
    bad("sparsefw:warm=(sparseswaps:warm=(ria:alpha=9))", "warm start: criterion sparseswaps: warm start: criterion ria");
    assert_int_equal(stats_of("sparseswaps:magnitude:7"), FL_STATS_GRAM);
    assert_int_equal(stats_of("sparsefw:random:0.25:5"), FL_STATS_GRAM);
    assert_int_equal(stats_of("sparsefw"), FL_STATS_GRAM);
    assert_int_equal(stats_of("sparseswaps"), FL_STATS_GRAM);
    /* the named forms prune exactly as the legacy positional ones they spell out */
    same("sparseswaps", "sparseswaps:", 1);
    same("sparseswaps", "sparseswaps:wanda:100", 1);
    same("sparseswaps:ria:1", "sparseswaps:warm=ria,budget=1", 1);
    same("sparseswaps:ria:1", "sparseswaps:budget=1,warm=ria:alpha=0.5", 1);
    same("sparseswaps::1", "sparseswaps:budget=1", 1);
    same("sparseswaps:ria:1", "sparseswaps:wanda:1", 0);
    same("sparseswaps:ria:1", "sparseswaps:warm=ria:alpha=1,budget=1", 0);   /* the warm start's own option counts */
    same("sparseswaps:(ria:1):1", "sparseswaps:warm=ria:alpha=1,budget=1", 1);
    same("sparseswaps:ria:alpha=1,budget=1", "sparseswaps:warm=ria:alpha=1,budget=1", 1);
    same("sparsefw", "sparsefw:wanda:0:100", 1);
    same("sparsefw:wanda:0.5:3", "sparsefw:warm=wanda,alpha=0.5,iters=3", 1);
    same("sparsefw:wanda:0.5:3", "sparsefw:iters=3,alpha=0.5", 1);
    same("sparsefw:wanda,0.5,3", "sparsefw:wanda:0.5:3", 1);
    same("sparsefw:ria::3", "sparsefw:warm=ria,iters=3", 1);
    same("sparsefw:ria::3", "sparsefw:warm=ria:alpha=0,iters=3", 0);
    same("sparsefw:(ria:0)::3", "sparsefw:warm=(ria:alpha=0),iters=3", 1);
    same("sparsefw:sparseswaps:0.3:3", "sparsefw:warm=(sparseswaps:warm=wanda,budget=100),alpha=0.3,iters=3", 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_swaps_rows),
        cmocka_unit_test(test_swaps_nm_rows),
        cmocka_unit_test(test_swaps_budget),
        cmocka_unit_test(test_swaps_layer),
        cmocka_unit_test(test_threads_deterministic),
        cmocka_unit_test(test_fw_patterns),
        cmocka_unit_test(test_fw_registry),
        cmocka_unit_test(test_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
