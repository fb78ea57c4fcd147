/* SparseGPT against tests/oracle/sparsegpt_ref.py, a float64 PyTorch
 * implementation of the published algorithm with the same pattern handling
 * (N:M as the reference; row and matrix: each 128-column block prunes its
 * exact share of the count by the OBS score, see criteria/sparsegpt.c).
 *
 * For each case, a random layer W [rows, cols] and correlated inputs
 * X [n, cols] (uniform noise times a random mixing matrix, with column
 * scales spread over e^0..e^2, and in one case dead inputs) are written to a
 * temp dir as raw float32; the script prunes them; freelunch's mask must
 * equal the reference's exactly and its W be within TOL relative error
 * (max |diff| / max |ref|). Widths not a multiple of 128 exercise the short
 * last block; 3:5 exercises the block size rounded to a multiple of M.
 *
 * Needs /usr/bin/python3 with torch (Debian python3-torch); run from the
 * repository root. FL_KEEP_ORACLE=1 keeps the temp dirs. */
#include "tests/testutil.h"
#include "criteria/criterion.h"
#include "model/alloc.h"
#include "model/err.h"
#include "model/gemm.h"

#define TOL 1e-4
#define PY "/usr/bin/python3"
#define REF "tests/oracle/sparsegpt_ref.py"

typedef struct {
    const char *name;
    int rows, cols, n;
    const char *sparsity, *kind;   /* fl_pattern_parse arguments */
    const char *pyarg;             /* the script's PATTERN */
    int dead;                      /* inputs that are zero on every token */
    uint64_t seed;
} sg_case;

static const sg_case CASES[] = {
    { "row_0.5",        96, 320, 2048, "0.5", "row",    "row:0.5",    0, 11 },
    { "row_0.6",        64, 256, 1024, "0.6", "row",    "row:0.6",    0, 12 },
    { "matrix_0.5",     96, 320, 2048, "0.5", "matrix", "matrix:0.5", 0, 13 },
    { "2:4",            96, 320, 2048, "2:4", NULL,     "nm:2:4",     0, 14 },
    { "4:8",            64, 256, 1024, "4:8", NULL,     "nm:4:8",     0, 15 },
    { "3:5",            48, 320, 1024, "3:5", NULL,     "nm:3:5",     0, 16 },
    { "row_0.5_dead",   64, 200, 1024, "0.5", "row",    "row:0.5",    5, 17 },
};
#define NCASES ((int)(sizeof CASES / sizeof *CASES))

static double g_worst_w;
static int g_worst_mask;

static void write_raw(const char *path, const void *p, size_t bytes) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, bytes, f) != bytes || fclose(f) != 0) fail_msg("cannot write %s", path);
}

static void read_raw(const char *path, void *p, size_t bytes) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("the oracle wrote no %s", path);
    size_t got = fread(p, 1, bytes, f);
    char extra;
    int more = fread(&extra, 1, 1, f) == 1;
    fclose(f);
    if (got != bytes || more) fail_msg("%s: expected %zu bytes", path, bytes);
}

static void test_case(void **state) {
    const sg_case *k = *state;
    if (access(REF, R_OK) != 0) fail_msg("%s not found: run the tests from the repository root", REF);
    if (access(PY, X_OK) != 0) fail_msg("%s missing: the oracle needs Debian's python3-torch (make deps)", PY);
    const int R = k->rows, C = k->cols, N = k->n;
    float *W = fl_allocf((size_t)R * C), *W0 = fl_allocf((size_t)R * C), *X = fl_allocf((size_t)N * C);
    float *Wref = fl_allocf((size_t)R * C);
    uint8_t *mask = fl_alloc((size_t)R * C), *mref = fl_alloc((size_t)R * C);
    tu_fill(W0, (size_t)R * C, 1.0f, k->seed);
    memcpy(W, W0, sizeof(float) * R * C);
    tu_correlated_inputs(X, N, C, k->dead, k->seed);

    char dir[1024], path[1200], cmd[4096];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/W.f32", dir);
    write_raw(path, W0, sizeof(float) * R * C);
    snprintf(path, sizeof path, "%s/X.f32", dir);
    write_raw(path, X, sizeof(float) * N * C);
    snprintf(cmd, sizeof cmd, "%s %s '%s' %d %d %d %s", PY, REF, dir, R, C, N, k->pyarg);
    int rc = system(cmd);
    if (rc != 0) fail_msg("%s: `%s` failed (status %d)", k->name, cmd, rc);
    snprintf(path, sizeof path, "%s/W_ref.f32", dir);
    read_raw(path, Wref, sizeof(float) * R * C);
    snprintf(path, sizeof path, "%s/mask_ref.u8", dir);
    read_raw(path, mref, (size_t)R * C);

    fl_stats st;
    fl_stats_init(&st, FL_STATS_GRAM, C);
    fl_stats_add(&st, X, N);
    fl_crit_inst crit;
    assert_int_equal(fl_criterion_open("sparsegpt", &crit), 0);
    fl_prune_job job = { .W = W, .rows = R, .cols = C, .st = &st, .mask = mask, .seed = 1 };
    if (fl_pattern_parse(k->sparsity, k->kind, &job.pat) != 0) fail_msg("%s", fl_errmsg());
    if (fl_criterion_run(&crit, &job) != 0) fail_msg("%s: %s", k->name, fl_errmsg());
    fl_criterion_close(&crit);
    if (fl_mask_check(mref, R, C, &job.pat, "reference mask") != 0) fail_msg("%s: %s", k->name, fl_errmsg());

    int mism = 0;
    for (int64_t i = 0; i < (int64_t)R * C; i++) mism += mask[i] != mref[i];
    double e = tu_relerr(W, Wref, (size_t)R * C, 1e-12);
    printf("sparsegpt %-13s %3dx%-4d n=%d: mask mismatches %d of %d, W relative error %.3g\n",
           k->name, R, C, N, mism, R * C, e);
    if (e > g_worst_w) g_worst_w = e;
    if (mism > g_worst_mask) g_worst_mask = mism;
    if (k->dead)
        for (int r = 0; r < R; r++)
            for (int c = 1; c < C; c += C / k->dead) assert_true(W[(int64_t)r * C + c] == 0.0f);
    if (getenv("FL_KEEP_ORACLE")) printf("kept %s\n", dir);
    else tu_rmrf(dir);
    fl_stats_free(&st);
    fl_free(W); fl_free(W0); fl_free(X); fl_free(Wref); fl_free(mask); fl_free(mref);
    if (mism) fail_msg("%s: %d mask entries differ from the PyTorch reference", k->name, mism);
    if (!(e <= TOL)) fail_msg("%s: W differs from the PyTorch reference: relative error %.3g > %g", k->name, e, TOL);
}

static int teardown(void **state) {
    (void)state;
    printf("sparsegpt oracle: worst W relative error %.3g (tolerance %g), worst mask mismatches %d\n",
           g_worst_w, TOL, g_worst_mask);
    return 0;
}

int main(void) {
    fl_threads_init(0);
    struct CMUnitTest t[NCASES];
    for (int i = 0; i < NCASES; i++)
        t[i] = (struct CMUnitTest){ CASES[i].name, test_case, NULL, NULL, (void *)&CASES[i] };
    return _cmocka_run_group_tests("sparsegpt_oracle", t, NCASES, NULL, teardown);
}
