/* Reconstruction: propagation modes against a direct computation,
 * masks kept exactly, losses and perplexity lowered, AdamW at matrix
 * granularity reaching the least-squares optimum, determinism, divergence,
 * and the order of working sets across granularities. */
#include "tests/testutil.h"
#include "datasets/tokfile.h"
#include "eval/ppl.h"
#include "harness/cell.h"
#include "model/adamw.h"
#include "model/alloc.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "model/fileio.h"
#include "model/gemm.h"
#include <cjson/cJSON.h>
#include "criteria/criterion.h"
#include <sys/stat.h>

static char g_dir[256], g_model[300], g_calib[300], g_eval[300];

static int setup(void **st) {
    (void)st;
    tu_tmpdir(g_dir, sizeof g_dir);
    snprintf(g_model, sizeof g_model, "%s/dense", g_dir);
    snprintf(g_calib, sizeof g_calib, "%s/calib_src.bin", g_dir);
    snprintf(g_eval, sizeof g_eval, "%s/eval.bin", g_dir);
    int64_t n = 20000;
    int32_t *t = malloc(sizeof(int32_t) * n);
    tu_markov(t, n, 1);
    if (fl_tokfile_write(g_calib, t, n) != 0) return -1;
    tu_markov(t, 2000, 2);
    if (fl_tokfile_write(g_eval, t, 2000) != 0) return -1;
    /* a small llama with 4 blocks, trained for a few seconds */
    fl_model m;
    tu_markov(t, n, 1);
    int rc = tu_trained_llama(&m, 4, 300, t, n);
    free(t);
    if (rc != 0) return -1;
    rc = fl_model_save(&m, g_model);
    fl_model_free(&m);
    return rc;
}

static int teardown(void **st) { (void)st; tu_rmrf(g_dir); return 0; }

static fl_cell_cfg base_cfg(const char *out, const char *recon) {
    static char outbuf[8][400];
    static int k;
    char *o = outbuf[k++ % 8];
    snprintf(o, 400, "%s/%s", g_dir, out);
    fl_cell_cfg c = { .model_dir = g_model, .criterion = "magnitude", .sparsity = "0.7", .pattern = "row",
                      .reconstruct = recon, .calib_file = g_calib, .calib_samples = 16, .seqlen = 32, .seed = 1,
                      .n_evals = 1, .out_dir = o, .cache = g_dir, .lr = 3e-3f, .epochs = 3, .recon_batch = 4 };
    c.evals[0] = g_eval;
    return c;
}

static double run_ppl(fl_cell_cfg *c, fl_cell_result *r) {
    int rc = fl_cell_run(c, r);
    if (rc != 0) print_error("cell failed: %s\n", fl_errmsg());
    assert_int_equal(rc, 0);
    return r->ppl[0];
}

/* ---- propagation modes: the X and Y each unit is given ------------------ */

static float *g_spyX[8], *g_spyY[8];
static int g_spyN;
static int spy(const fl_recover_job *j, fl_unit_report *rep) {
    (void)rep;
    const float *X = j->X, *Y = j->Y;
    size_t n = (size_t)j->nwin * j->T * j->u->in_w;
    g_spyX[g_spyN] = malloc(sizeof(float) * n); memcpy(g_spyX[g_spyN], X, sizeof(float) * n);
    g_spyY[g_spyN] = malloc(sizeof(float) * n); memcpy(g_spyY[g_spyN], Y, sizeof(float) * n);
    g_spyN++;
    return 0;   /* weights untouched: the saved model is the pruned one */
}

static void fwd_blocks(fl_model *m, int l0, int l1, const float *x, float *y, int nwin, int T) {
    fl_fwd a = { .B = nwin, .T = T, .x_in = x, .x_out = y };
    assert_int_equal(fl_forward(m, fl_range_blocks(l0, l1), &a, NULL), 0);
}

static void check_mode(const char *mode) {
    for (int i = 0; i < g_spyN; i++) { free(g_spyX[i]); free(g_spyY[i]); }
    g_spyN = 0;
    char out[64];
    snprintf(out, sizeof out, "modes_%s", mode);
    fl_cell_cfg c = base_cfg(out, "block");
    c.propagation = mode;
    c.recover_override = spy;
    fl_cell_result r;
    run_ppl(&c, &r);
    fl_cell_result_free(&r);
    assert_int_equal(g_spyN, 4);
    fl_model P, Dm;
    assert_int_equal(fl_model_load(&P, c.out_dir), 0);
    assert_int_equal(fl_model_load(&Dm, g_model), 0);
    char cp[500];
    snprintf(cp, sizeof cp, "%s/calib.bin", c.out_dir);
    int32_t *tok; int64_t n;
    assert_int_equal(fl_tokfile_read(cp, 48, &tok, &n), 0);
    const int T = 32, nw = (int)(n / T), d = 32;
    size_t sz = (size_t)n * d;
    float *E = malloc(sizeof(float) * sz), *xs = malloc(sizeof(float) * sz), *xd = malloc(sizeof(float) * sz);
    float *y = malloc(sizeof(float) * sz);
    fl_fwd a = { .B = nw, .T = T, .tokens = tok, .x_out = E };
    assert_int_equal(fl_forward(&Dm, (fl_range){ 0, 0, 1, 0 }, &a, NULL), 0);
    memcpy(xs, E, sizeof(float) * sz);
    memcpy(xd, E, sizeof(float) * sz);
    for (int l = 0; l < 4; l++) {
        const float *X = !strcmp(mode, "dense") ? xd : xs;
        double ex = tu_relerr(g_spyX[l], X, sz, 1e-6);
        if (!strcmp(mode, "dense-target")) fwd_blocks(&Dm, l, l, xd, y, nw, T);   /* the true dense stream */
        else fwd_blocks(&Dm, l, l, X, y, nw, T);                                 /* dense block on the input */
        double ey = tu_relerr(g_spyY[l], y, sz, 1e-6);
        if (ex > 1e-5 || ey > 1e-5) print_error("%s block %d: input err %g target err %g\n", mode, l, ex, ey);
        assert_true(ex < 1e-5 && ey < 1e-5);
        fwd_blocks(&P, l, l, xs, xs, nw, T);
        fwd_blocks(&Dm, l, l, xd, xd, nw, T);
    }
    /* the streams really differ, so the check above is not vacuous */
    assert_true(tu_relerr(xs, xd, sz, 1e-6) > 1e-3);
    free(E); free(xs); free(xd); free(y); free(tok);
    fl_model_free(&P); fl_model_free(&Dm);
}
static void test_mode_sparse(void **s) { (void)s; check_mode("sparse"); }
static void test_mode_dense(void **s) { (void)s; check_mode("dense"); }
static void test_mode_dense_target(void **s) { (void)s; check_mode("dense-target"); }

/* ---- masks, losses, perplexity ------------------------------------------ */

static void check_zeros(const char *dir, const fl_pattern *pat) {
    fl_model m;
    assert_int_equal(fl_model_load(&m, dir), 0);
    for (int l = 0; l < m.cfg.n_layer; l++) {
        fl_param *w[7];
        int k = fl_layer_linears(&m, l, w, NULL, NULL);
        for (int i = 0; i < k; i++) {
            uint8_t *nz = malloc((size_t)w[i]->n);
            for (int64_t j = 0; j < w[i]->n; j++) nz[j] = w[i]->w[j] != 0.0f;
            if (fl_mask_check(nz, w[i]->rows, w[i]->cols, pat, w[i]->name) != 0) print_error("%s\n", fl_errmsg());
            assert_int_equal(fl_mask_check(nz, w[i]->rows, w[i]->cols, pat, w[i]->name), 0);
            free(nz);
        }
    }
    fl_model_free(&m);
}

static void test_recon_lowers_loss_and_ppl(void **s) {
    (void)s;
    fl_cell_result r;
    fl_cell_cfg c = base_cfg("none", "none");
    double p_none = run_ppl(&c, &r);
    fl_cell_result_free(&r);
    fl_model dm;
    assert_int_equal(fl_model_load(&dm, g_model), 0);
    int32_t *et; int64_t en;
    assert_int_equal(fl_tokfile_read(g_eval, 48, &et, &en), 0);
    fl_ppl_result dp;
    assert_int_equal(fl_eval_ppl(&dm, et, en, 32, 0, 0, 8, 0, &dp), 0);
    free(et);
    fl_model_free(&dm);
    print_message("dense ppl %.4f, pruned (none) %.4f\n", dp.ppl, p_none);
    assert_true(p_none > dp.ppl * 1.02);   /* pruning hurts: something to recover */
    fl_pattern pat;
    fl_pattern_parse("0.7", "row", &pat);
    const char *recs[] = { "matrix", "matrix-ls", "sublayer", "block", "retrain:full" };
    for (int i = 0; i < 5; i++) {
        fl_cell_cfg cr = base_cfg(recs[i], recs[i]);
        double p = run_ppl(&cr, &r);
        print_message("%-12s ppl %.4f (none %.4f)\n", recs[i], p, p_none);
        assert_true(r.n_units > 0);
        for (int u = 0; u < r.n_units; u++) {
            if (!(r.units[u].loss_after < r.units[u].loss_before))
                print_error("%s %s: loss %g -> %g\n", recs[i], r.units[u].name, r.units[u].loss_before, r.units[u].loss_after);
            assert_true(r.units[u].loss_after < r.units[u].loss_before);
        }
        if (strcmp(recs[i], "retrain:full")) assert_true(p < p_none);
        fl_cell_result_free(&r);
        check_zeros(cr.out_dir, &pat);
    }
}

static void test_nm_zeros_after_block(void **s) {
    (void)s;
    fl_cell_cfg c = base_cfg("nm", "block");
    c.sparsity = "2:4";
    c.propagation = "dense-target";
    c.loss = "cosine";
    fl_cell_result r;
    run_ppl(&c, &r);
    fl_cell_result_free(&r);
    fl_pattern pat;
    fl_pattern_parse("2:4", NULL, &pat);
    check_zeros(c.out_dir, &pat);
    /* freelunch.json: the settings as run; N:M names no pattern (the grid
     * takes only row or matrix), the recovery's settings with their defaults */
    char path[500], *text = NULL;
    snprintf(path, sizeof path, "%s/freelunch.json", c.out_dir);
    assert_int_equal(fl_read_file(path, &text, NULL), 0);
    cJSON *j = cJSON_Parse(text), *cell = cJSON_GetObjectItemCaseSensitive(j, "cell");
    free(text);
    assert_non_null(cell);
    assert_null(cJSON_GetObjectItemCaseSensitive(cell, "pattern"));
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(cell, "sparsity")->valuestring, "2:4");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(cell, "model")->valuestring, g_model);
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(cell, "loss")->valuestring, "cosine");
    assert_string_equal(cJSON_GetObjectItemCaseSensitive(cell, "trainable")->valuestring, "all");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(cell, "grad_accum")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(cell, "seqlen")->valueint, 32);
    assert_null(cJSON_GetObjectItemCaseSensitive(cell, "distill"));   /* retraining only */
    cJSON_Delete(j);
}

/* Distillation: the retrained model keeps its sparsity and moves towards
 * the dense model (calibration cross-entropy falls), with adapters too. */
static void test_distill(void **s) {
    (void)s;
    const char *recs[] = { "retrain:full", "retrain:bias-norm", "retrain:masklora" };
    fl_pattern pat;
    fl_pattern_parse("0.7", "row", &pat);
    for (int i = 0; i < 3; i++) {
        fl_cell_cfg c = base_cfg("distill", recs[i]);
        c.distill = 1;
        fl_cell_result r;
        int rc = fl_cell_run(&c, &r);
        if (rc) print_error("%s: %s\n", recs[i], fl_errmsg());
        assert_int_equal(rc, 0);
        assert_true(isfinite(r.ppl[0]));
        assert_true(r.units[0].loss_after < r.units[0].loss_before);
        fl_cell_result_free(&r);
        check_zeros(c.out_dir, &pat);
    }
}

static void test_determinism(void **s) {
    (void)s;
    fl_cell_result r1, r2;
    fl_cell_cfg a = base_cfg("det1", "sublayer"), b = base_cfg("det2", "sublayer");
    double p1 = run_ppl(&a, &r1), p2 = run_ppl(&b, &r2);
    assert_true(p1 == p2);
    fl_cell_result_free(&r1);
    fl_cell_result_free(&r2);
}

static void test_divergence(void **s) {
    (void)s;
    fl_cell_cfg c = base_cfg("diverge", "block");
    c.lr = 1e12f;
    c.loss = "mse";
    fl_cell_result r;
    assert_int_equal(fl_cell_run(&c, &r), -1);
    assert_non_null(strstr(fl_errmsg(), "diverged"));
    char p[500];
    snprintf(p, sizeof p, "%s/model.safetensors", c.out_dir);
    struct stat st;
    assert_true(stat(p, &st) != 0);   /* no broken model written */
    fl_cell_result_free(&r);
}

/* Working sets order strictly with the size of the unit. */
static void test_working_set_order(void **s) {
    (void)s;
    const char *recs[] = { "matrix", "sublayer", "block", "blocks:2", "blocks:all", "retrain:full" };
    size_t prev = 0;
    for (int i = 0; i < 6; i++) {
        fl_cell_cfg c = base_cfg("ws", recs[i]);
        c.epochs = 1;
        fl_cell_result r;
        run_ppl(&c, &r);
        print_message("%-12s working set %zu bytes, recovery peak %zu\n", recs[i], r.working_bytes, r.peak_recover_bytes);
        assert_true(r.working_bytes > prev);
        prev = r.working_bytes;
        fl_cell_result_free(&r);
    }
}

/* AdamW on one linear converges to the masked least-squares optimum. */
static void test_adam_reaches_ls(void **s) {
    (void)s;
    fl_model m;
    fl_config c = { 0 };
    fl_config_family_defaults(&c, FL_GPT2);
    c.vocab = 8; c.d = 16; c.n_layer = 1; c.n_head = 2; c.n_kv_head = 2; c.head_dim = 8; c.d_ff = 24; c.max_pos = 8;
    assert_int_equal(fl_model_create(&m, &c), 0);
    fl_param *W = m.layers[0].fc1_w, *b = m.layers[0].fc1_b;
    tu_fill(W->w, W->n, 0.5f, 1);
    tu_fill(b->w, b->n, 0.5f, 2);
    const int nwin = 8, T = 8, N = nwin * T;
    float *X = malloc(sizeof(float) * N * 16), *Y = malloc(sizeof(float) * N * 24);
    tu_fill(X, (size_t)N * 16, 1.0f, 3);
    for (int n = 0; n < N; n++) X[n * 16 + 1] += 0.8f * X[n * 16];   /* correlated inputs */
    fl_linear_forward(W, b, X, Y, N);
    uint8_t mask[24 * 16];
    for (int i = 0; i < 24 * 16; i++) mask[i] = (i * 7 % 5) > 1;
    float *W0 = malloc(sizeof(float) * W->n), *b0 = malloc(sizeof(float) * b->n);
    fl_param_set_mask(W, mask);
    memcpy(W0, W->w, sizeof(float) * W->n);
    memcpy(b0, b->w, sizeof(float) * b->n);
    fl_unit u = { .kind = FL_UNIT_LINEAR, .w = W, .b = b, .in_w = 16, .out_w = 24 };
    snprintf(u.name, sizeof u.name, "fc1");
    fl_recon_opts o = { .lr = 2e-2f, .epochs = 600, .batch = 8, .seed = 1, .ls_damp = 1e-9f };
    fl_unit_report ra = { 0 }, rl = { 0 };
    fl_recover_job job = { .m = &m, .u = &u, .X = X, .Y = Y, .nwin = nwin, .T = T, .o = &o };
    assert_int_equal(fl_recover_ls(&job, &rl), 0);
    memcpy(W->w, W0, sizeof(float) * W->n);
    memcpy(b->w, b0, sizeof(float) * b->n);
    assert_int_equal(fl_recover_adam(&job, &ra), 0);
    print_message("loss before %.6g, least squares %.6g, adam %.6g\n", rl.loss_before, rl.loss_after, ra.loss_after);
    assert_true(rl.loss_after <= ra.loss_after * (1 + 1e-3) + 1e-7);   /* LS is the optimum */
    assert_true(ra.loss_after <= rl.loss_after * 1.02 + 1e-5);          /* Adam gets there */
    assert_true(rl.loss_after < 0.9 * rl.loss_before);
    for (int i = 0; i < 24 * 16; i++) if (!mask[i]) assert_true(W->w[i] == 0.0f);
    free(X); free(Y); free(W0); free(b0);
    fl_model_free(&m);
}

static void test_bad_options(void **s) {
    (void)s;
    fl_cell_result r;
    fl_cell_cfg c = base_cfg("bad", "blocks:0");
    assert_int_equal(fl_cell_run(&c, &r), -1);
    assert_non_null(strstr(fl_errmsg(), "reconstructor blocks"));
    assert_non_null(strstr(fl_errmsg(), "or all"));
    c = base_cfg("bad", "frobnicate");
    assert_int_equal(fl_cell_run(&c, &r), -1);
    assert_non_null(strstr(fl_errmsg(), "valid"));
    c = base_cfg("bad", "block");
    c.propagation = "sideways";
    assert_int_equal(fl_cell_run(&c, &r), -1);
    assert_non_null(strstr(fl_errmsg(), "dense-target"));
    c = base_cfg("bad", "block");
    c.loss = "l7";
    assert_int_equal(fl_cell_run(&c, &r), -1);
    assert_non_null(strstr(fl_errmsg(), "cosine"));
    c = base_cfg("bad", "block");
    c.optimizer = "adam";
    assert_int_equal(fl_cell_run(&c, &r), -1);
    assert_non_null(strstr(fl_errmsg(), "unknown optimizer 'adam' (valid: adamw, sgd)"));
    /* the paper's code's name of the normalised MSE is ours */
    fl_loss l;
    assert_int_equal(fl_loss_parse("mse_normalized", &l), 0);
    assert_int_equal(l, FL_LOSS_NMSE);
}

int main(void) {
    fl_threads_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam_reaches_ls), cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_mode_sparse), cmocka_unit_test(test_mode_dense), cmocka_unit_test(test_mode_dense_target),
        cmocka_unit_test(test_recon_lowers_loss_and_ppl), cmocka_unit_test(test_nm_zeros_after_block),
        cmocka_unit_test(test_distill), cmocka_unit_test(test_determinism), cmocka_unit_test(test_divergence), cmocka_unit_test(test_working_set_order),
    };
    return cmocka_run_group_tests_name("recon", tests, setup, teardown);
}
