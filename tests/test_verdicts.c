/* The report's three claims on hand-made results tables: for each claim,
 * tables whose numbers put the paired intervals below 0, above 0, across 0,
 * or leave one seed, and the verdict each must give. The report is built
 * without gnuplot (fl_report_build, draw 0) and read back as Markdown. */
#include "tests/testutil.h"
#include "harness/results.h"
#include "model/checkpoint.h"
#include "reports/report.h"
#include <sys/stat.h>

#define ASSERT_HAS(text, s) do { if (!strstr((text), (s))) fail_msg("expected \"%s\" in:\n%s", (s), (text)); } while (0)
#define ASSERT_LACKS(text, s) do { if (strstr((text), (s))) fail_msg("did not expect \"%s\" in:\n%s", (s), (text)); } while (0)

static int next_id;

/* One ok row per seed of (model, criterion, sparsity 0.5, reconstructor),
 * the perplexities PPL[0..n-1] at seeds 0..n-1; returns the first row. */
static int cells(fl_table *t, const char *model, const char *crit, const char *rec, const double *ppl, int n) {
    int first = t->nrows;
    for (int s = 0; s < n; s++) {
        int r = fl_table_add_row(t);
        fl_table_setf(t, r, "cell_id", "v%05d", next_id++);
        fl_table_set(t, r, "status", "ok");
        fl_table_set(t, r, "model", model);
        fl_table_set(t, r, "criterion", crit);
        fl_table_set(t, r, "sparsity", "0.5");
        fl_table_set(t, r, "pattern", "row");
        fl_table_set(t, r, "reconstruct", rec);
        fl_table_setf(t, r, "seed", "%d", s);
        fl_table_set(t, r, "eval_set", "sotu-test");
        fl_table_setf(t, r, "ppl", "%.17g", ppl[s]);
        fl_table_set(t, r, "working_bytes", "1000000");
        fl_table_set(t, r, "recovery_peak_bytes", "2000000");
    }
    return first;
}

static void set_all(fl_table *t, int first, int n, const char *col, const char *v) {
    for (int r = first; r < first + n; r++) fl_table_set(t, r, col, v);
}

/* The report of T (freed), as Markdown (the caller frees). */
static char *report(fl_table *t) {
    char dir[512], path[700];
    tu_tmpdir(dir, sizeof dir);
    assert_int_equal(fl_report_build(t, "hand-made.csv", dir, 0), 0);
    snprintf(path, sizeof path, "%s/report.md", dir);
    char *md = tu_read_all(path);
    if (getenv("FL_TEST_DUMP")) { FILE *f = fopen(getenv("FL_TEST_DUMP"), "a"); fputs(md, f); fclose(f); }
    tu_rmrf(dir);
    fl_table_free(t);
    return md;
}

/* The summary's line of claim K holds NEEDLE. */
static void claim_says(const char *md, int k, const char *needle) {
    char prefix[32];
    snprintf(prefix, sizeof prefix, "- **Claim %d", k);
    const char *p = strstr(md, prefix);
    if (!p) fail_msg("no summary line for claim %d", k);
    size_t len = strcspn(p, "\n");
    char *line = strndup(p, len);
    if (!strstr(line, needle)) fail_msg("claim %d: expected \"%s\" in:\n%s", k, needle, line);
    free(line);
}

/* ---- claim 1 ---- */

static const double LOCAL[3] = { 10.0, 10.2, 9.9 };

static char *claim1_with(const double *retrain, int n) {
    fl_table t = { 0 };
    int l = cells(&t, "m", "wanda", "sublayer", LOCAL, n);
    set_all(&t, l, n, "recovery_tokens", "8192");
    set_all(&t, l, n, "recovery_flops", "1e9");
    int r = cells(&t, "m", "wanda", "retrain:full", retrain, n);
    set_all(&t, r, n, "retrain_samples", "320");
    set_all(&t, r, n, "recovery_tokens", "81920");
    set_all(&t, r, n, "recovery_flops", "4e9");
    return report(&t);
}

static void test_claim1(void **state) {
    (void)state;
    /* local − retrain = -1.0, -0.9, -1.1: the interval lies below 0 */
    const double worse[3] = { 11.0, 11.1, 11.0 };
    char *md = claim1_with(worse, 3);
    claim_says(md, 1, "**supported**: of 1 comparisons, the best local reconstructor is better in 1");
    claim_says(md, 1, "0.1× the baseline's recovery tokens and 0.25× its recovery FLOPs");
    ASSERT_HAS(md, "| wanda | sublayer 10.03 ± 0.38 (3) | retrain:full | 320 | 11.03 ± 0.14 (3) | -1.00 ± 0.25 (3) | **local better** | 0.1× | 0.25× |");
    free(md);
    /* 1.0, 1.0, 1.1: above 0, the baseline is better */
    const double better[3] = { 9.0, 9.2, 8.8 };
    md = claim1_with(better, 3);
    claim_says(md, 1, "**not supported**");
    claim_says(md, 1, "the retraining baseline is better in 1");
    ASSERT_HAS(md, "**baseline better**");
    free(md);
    /* -0.5, 0.5, -0.2: across 0 */
    const double close[3] = { 10.5, 9.7, 10.1 };
    md = claim1_with(close, 3);
    claim_says(md, 1, "**supported**: of 1 comparisons, the best local reconstructor is better in 0, no difference is detected in 1");
    ASSERT_HAS(md, "| no difference detected |");
    free(md);
    /* one seed */
    md = claim1_with(worse, 1);
    claim_says(md, 1, "**not testable with this grid**: none of the 1 comparisons has an interval (one seed per cell");
    ASSERT_HAS(md, "| -1.00 (one seed: no interval) | one seed: no interval |");
    free(md);
    /* no baseline at all */
    fl_table t = { 0 };
    cells(&t, "m", "wanda", "sublayer", LOCAL, 3);
    md = report(&t);
    claim_says(md, 1, "**not testable with this grid** (missing cells: no retraining baseline");
    free(md);
    /* both kinds, but never for the same criterion */
    fl_table v = { 0 };
    cells(&v, "m", "wanda", "sublayer", LOCAL, 3);
    cells(&v, "m", "sparsegpt", "retrain:full", worse, 3);
    md = report(&v);
    claim_says(md, 1, "**not testable with this grid** (missing cells: no criterion and sparsity has both");
    free(md);
    /* the best local reconstructor is the lowest mean among the local ones;
     * an older file without recovery_tokens says unknown */
    fl_table u = { 0 };
    const double blk[3] = { 9.5, 9.6, 9.4 };
    cells(&u, "m", "wanda", "sublayer", LOCAL, 3);
    cells(&u, "m", "wanda", "block", blk, 3);
    cells(&u, "m", "wanda", "retrain:masklora", worse, 3);
    md = report(&u);
    ASSERT_HAS(md, "| wanda | block 9.50 ± 0.25 (3) | retrain:masklora | unknown |");
    claim_says(md, 1, "recovery tokens unknown");
    free(md);
}

/* ---- claim 2 ---- */

static const double SUB[3] = { 10.0, 10.3, 9.8 };

static char *claim2_with(const double *block, const double *matrix) {
    fl_table t = { 0 };
    cells(&t, "m", "wanda", "sublayer", SUB, 3);
    if (block) cells(&t, "m", "wanda", "block", block, 3);
    if (matrix) cells(&t, "m", "wanda", "matrix", matrix, 3);
    return report(&t);
}

static void test_claim2(void **state) {
    (void)state;
    /* sublayer − block = -0.1, 0.1, -0.1: no difference; matrix − sublayer =
     * 1.0, 1.0, 1.1: matrix worse */
    const double same[3] = { 10.1, 10.2, 9.9 }, bad_matrix[3] = { 11.0, 11.3, 10.9 };
    char *md = claim2_with(same, bad_matrix);
    claim_says(md, 2, "**supported**: (a) 0 of 1 pairs of nonlinear units differ (largest spread of means 0.03)");
    claim_says(md, 2, "(b) matrix or matrix-ls is worse than the best nonlinear unit in 1 of 1");
    ASSERT_HAS(md, "| matrix | 11.07 ± 0.52 (3) | 1.03 ± 0.14 (3) | **sublayer better** |");
    ASSERT_HAS(md, "spread of the means 0.03 (10.03 to 10.07); pairs that differ: 0 of 1.");
    free(md);
    /* sublayer − block = -1, -1, -1 (exactly, up to rounding): a pair differs */
    const double worse[3] = { 11.0, 11.3, 10.8 };
    md = claim2_with(worse, bad_matrix);
    claim_says(md, 2, "**not supported**: (a) 1 of 1 pairs of nonlinear units differ");
    claim_says(md, 2, "e.g. wanda, sparsity 0.5: sublayer vs block");
    free(md);
    /* matrix − sublayer = 0.1, -0.2, 0.1: across 0, so matrix is not shown worse */
    const double good_matrix[3] = { 10.1, 10.1, 9.9 };
    md = claim2_with(same, good_matrix);
    claim_says(md, 2, "**not supported**: (a) 0 of 1 pairs");
    claim_says(md, 2, "worse than the best nonlinear unit in 0 of 1");
    free(md);
    /* one nonlinear unit, no matrix */
    md = claim2_with(NULL, NULL);
    claim_says(md, 2, "**not testable with this grid** (fewer than two of sublayer, block, blocks:K, blocks:all; no matrix or matrix-ls cells)");
    free(md);
    /* the memory of each is in its table; no drift column in this build's
     * results.csv (or an old file): no drift column in the table */
    md = claim2_with(same, bad_matrix);
    ASSERT_HAS(md, "| sublayer | 10.03 ± 0.63 (3) | – | (the best nonlinear) | 2.00 | 1.00 |");
    if (fl_result_col("drift_out") < 0) ASSERT_LACKS(md, "drift at last block");
    free(md);
}

/* ---- claim 3 ---- */

static const double WN[3] = { 20.0, 20.5, 19.8 }, SN[3] = { 15.0, 15.3, 14.9 }, SR[3] = { 11.5, 11.8, 11.4 };

static char *claim3_with(const double *wanda_rec, int n, const char *model2) {
    fl_table t = { 0 };
    const char *models[2] = { "m", model2 };
    for (int m = 0; m < 2 && models[m]; m++) {
        cells(&t, models[m], "wanda", "none", WN, n);
        cells(&t, models[m], "sparsegpt", "none", SN, n);
        cells(&t, models[m], "wanda", "sublayer", wanda_rec, n);
        cells(&t, models[m], "sparsegpt", "sublayer", SR, n);
    }
    return report(&t);
}

static void test_claim3(void **state) {
    (void)state;
    /* gap without: 5, 5.2, 4.9; with: 0.5, 0.4, 0.5; change 4.5, 4.8, 4.4 > 0 */
    const double close[3] = { 12.0, 12.2, 11.9 };
    char *md = claim3_with(close, 3, NULL);
    claim_says(md, 3, "**supported**: of 1 comparisons, the gap is smaller with reconstruction in 1");
    claim_says(md, 3, "the gap against model size is not testable with one `model`");
    ASSERT_HAS(md, "| wanda | sublayer | sparsegpt | 5.03 ± 0.38 (3) | sparsegpt + sublayer | 0.47 ± 0.14 (3) | 4.57 ± 0.52 (3) | **gap smaller with reconstruction** |");
    free(md);
    /* with: 6.5, 6.8, 6.3: the gap grows */
    const double far[3] = { 18.0, 18.6, 17.7 };
    md = claim3_with(far, 3, NULL);
    claim_says(md, 3, "**not supported**");
    claim_says(md, 3, "it is larger in 1");
    ASSERT_HAS(md, "**gap larger with reconstruction**");
    free(md);
    /* with: 5.2, 4.8, 5.0 against 5, 5.2, 4.9 without: no change detected */
    const double same[3] = { 16.7, 16.6, 16.4 };
    md = claim3_with(same, 3, NULL);
    claim_says(md, 3, "**not supported**: of 1 comparisons, the gap is smaller with reconstruction in 0, no change is detected in 1");
    free(md);
    /* wanda beats sparsegpt with reconstruction */
    const double best[3] = { 11.0, 11.2, 10.9 };
    md = claim3_with(best, 3, NULL);
    claim_says(md, 3, "**supported**");
    claim_says(md, 3, "the simple criterion is the best with reconstruction in 1");
    ASSERT_HAS(md, "**wanda is the best criterion with reconstruction**");
    free(md);
    /* one seed */
    md = claim3_with(close, 1, NULL);
    claim_says(md, 3, "**not testable with this grid**: one seed per cell, no intervals");
    free(md);
    /* two models: their parameter counts beside their gaps */
    char dir[512], m2[600];
    tu_tmpdir(dir, sizeof dir);
    snprintf(m2, sizeof m2, "%s/big", dir);
    mkdir(m2, 0755);
    fl_config c;
    memset(&c, 0, sizeof c);
    fl_config_family_defaults(&c, FL_GPT2);
    c.vocab = 300; c.d = 64; c.n_layer = 2; c.n_head = 4; c.n_kv_head = 4; c.head_dim = 16; c.d_ff = 256; c.max_pos = 128;
    c.tied = 1;
    char path[700], want[800];
    snprintf(path, sizeof path, "%s/config.json", m2);
    assert_int_equal(fl_config_save(&c, path), 0);
    md = claim3_with(close, 3, m2);
    snprintf(want, sizeof want, "Model `%s`: %.3gM parameters.", m2, (double)fl_config_num_params(&c) * 1e-6);
    ASSERT_HAS(md, want);
    ASSERT_HAS(md, "Model `m`: unknown (no readable config.json) parameters.");
    claim_says(md, 3, "of 2 comparisons, the gap is smaller with reconstruction in 2");
    claim_says(md, 3, "2 models: read the gap against size in the tables");
    free(md);
    tu_rmrf(dir);
}

/* Settings that differ by reconstructor are shown per reconstructor. */
static void test_settings_per_reconstructor(void **state) {
    (void)state;
    fl_table t = { 0 };
    int a = cells(&t, "m", "wanda", "sublayer", SUB, 3), b = cells(&t, "m", "wanda", "block", SUB, 3);
    set_all(&t, a, 3, "lr", "0.003");
    set_all(&t, b, 3, "lr", "0.001");
    set_all(&t, a, 3, "epochs", "1");
    set_all(&t, b, 3, "epochs", "1");
    char *md = report(&t);
    ASSERT_HAS(md, "| reconstructor | `lr` |");
    ASSERT_HAS(md, "| sublayer | 0.003 |");
    ASSERT_HAS(md, "| block | 0.001 |");
    ASSERT_LACKS(md, "\n| `lr` |");        /* not in the pooled grid table */
    ASSERT_HAS(md, "| `epochs` | 1 |");   /* the same for both: the grid table */
    free(md);
    /* a learning rate chosen per seed (as tuning does) still pairs the seeds:
     * sublayer is one configuration, not three of one seed each */
    fl_table u = { 0 };
    const double blk[3] = { 11.0, 11.3, 10.8 };
    a = cells(&u, "m", "wanda", "sublayer", SUB, 3);
    b = cells(&u, "m", "wanda", "block", blk, 3);
    fl_table_set(&u, a, "lr", "0.003");
    set_all(&u, a + 1, 2, "lr", "0.001");
    set_all(&u, b, 3, "lr", "0.001");
    md = report(&u);
    ASSERT_HAS(md, "| sublayer | 0.001, 0.003 |");
    ASSERT_HAS(md, "| block | 11.03 ± 0.63 (3) | 1.00 ± 0.00 (3) | **sublayer better** |");
    free(md);
    /* a learning rate crossed as a grid dimension makes two configurations */
    fl_table w = { 0 };
    a = cells(&w, "m", "wanda", "sublayer", SUB, 3);
    b = cells(&w, "m", "wanda", "sublayer", blk, 3);
    set_all(&w, a, 3, "lr", "0.003");
    set_all(&w, b, 3, "lr", "0.001");
    md = report(&w);
    ASSERT_HAS(md, "| sublayer (lr 0.001) | 11.03 ± 0.63 (3) | 1.00 ± 0.00 (3) | **sublayer (lr 0.003) better** |");
    free(md);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claim1),
        cmocka_unit_test(test_claim2),
        cmocka_unit_test(test_claim3),
        cmocka_unit_test(test_settings_per_reconstructor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
