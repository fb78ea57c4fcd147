/* Memory of recovery: for every reconstructor and propagation
 * mode, on a micro llama and a micro gpt2, the two figures a cell measures
 * with the tracked allocator (the largest unit's working set and the peak
 * of the recovery phase) agree within 10% with fl_recon_predict, which
 * counts them from the shapes alone. */
#include "tests/testutil.h"
#include "datasets/tokfile.h"
#include "harness/cell.h"
#include "harness/structured.h"
#include "model/alloc.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "model/gemm.h"

static char g_dir[256], g_calib[300], g_eval[300], g_llama[300], g_gpt2[300], g_opt[300];

enum { VOCAB = 48, SEQ = 16, NWIN = 6, RBATCH = 4 };

static int make_model_v(const char *dir, fl_family fam, int d_ff, uint64_t seed, int post_ln, int proj) {
    fl_config c = { 0 };
    fl_config_family_defaults(&c, fam);
    c.post_ln = post_ln; c.proj = proj;
    /* three blocks, so blocks:2 (units of 2 and 1 blocks) differs from
     * blocks:all; d_ff unlike d, kv heads unlike heads (llama), so a term
     * with the wrong width shows */
    c.vocab = VOCAB; c.d = 32; c.n_layer = 3; c.n_head = 4; c.n_kv_head = fam == FL_LLAMA ? 2 : 4; c.head_dim = 8;
    c.d_ff = d_ff; c.max_pos = SEQ;
    fl_model m;
    if (fl_model_create(&m, &c) != 0) return -1;
    fl_model_init_random(&m, seed);
    int rc = fl_model_save(&m, dir);
    fl_model_free(&m);
    return rc;
}
static int make_model(const char *dir, fl_family fam, int d_ff, uint64_t seed) { return make_model_v(dir, fam, d_ff, seed, 0, 0); }

static int setup(void **st) {
    (void)st;
    tu_tmpdir(g_dir, sizeof g_dir);
    snprintf(g_calib, sizeof g_calib, "%s/calib.bin", g_dir);
    snprintf(g_eval, sizeof g_eval, "%s/eval.bin", g_dir);
    snprintf(g_llama, sizeof g_llama, "%s/llama", g_dir);
    snprintf(g_gpt2, sizeof g_gpt2, "%s/gpt2", g_dir);
    snprintf(g_opt, sizeof g_opt, "%s/opt", g_dir);
    int32_t t[4000];
    uint64_t s = 5;
    for (int i = 0; i < 4000; i++) t[i] = (int32_t)(tu_rng(&s) % VOCAB);
    if (fl_tokfile_write(g_calib, t, 4000) != 0 || fl_tokfile_write(g_eval, t, 200) != 0) return -1;
    if (make_model(g_llama, FL_LLAMA, 48, 3) != 0) return -1;
    /* opt-350m's variant: post-LN, embeddings of 16 projected to 32 */
    if (make_model_v(g_opt, FL_OPT, 64, 5, 1, 16) != 0) return -1;
    return make_model(g_gpt2, FL_GPT2, 80, 4);
}

static int teardown(void **st) { (void)st; tu_rmrf(g_dir); return 0; }

typedef struct { const char *recon, *prop; int bias_norm; const char *ps; } cell_t;

static double ratio(size_t measured, size_t predicted) { return predicted ? (double)measured / predicted : NAN; }

/* The settings every cell here shares: NWIN windows of SEQ, one epoch, one
 * evaluation window, propagation and prune stream sparse. */
static fl_cell_cfg cell_cfg(const char *model, const char *out, const char *crit, const char *sparsity, const char *recon) {
    fl_cell_cfg c = { .model_dir = model, .criterion = crit, .sparsity = sparsity, .pattern = "row", .reconstruct = recon,
                      .propagation = "sparse", .prune_stream = "sparse", .trainable = "all", .calib_file = g_calib,
                      .calib_samples = NWIN, .seqlen = SEQ, .seed = 1, .n_evals = 1, .eval_max_windows = 1, .out_dir = out,
                      .cache = g_dir, .lr = 1e-3f, .epochs = 1, .recon_batch = RBATCH };
    c.evals[0] = g_eval;
    return c;
}

/* Runs the cell, predicts it, and checks both figures within [0.9, 1.1]. */
static void check_cell(const char *model, const char *fam, const cell_t *k, int idx) {
    char out[400];
    snprintf(out, sizeof out, "%s/%s_%d", g_dir, fam, idx);
    fl_cell_cfg c = cell_cfg(model, out, "magnitude", "0.5", k->recon);
    c.propagation = k->prop;
    if (k->ps) c.prune_stream = k->ps;
    c.trainable = k->bias_norm ? "bias-norm" : "all";
    fl_cell_result r;
    int rc = fl_cell_run(&c, &r);
    if (rc != 0) print_error("%s %s %s: %s\n", fam, k->recon, k->prop, fl_errmsg());
    assert_int_equal(rc, 0);
    fl_config cfg;
    assert_int_equal(fl_config_load(&cfg, model), 0);
    fl_recon_predict_out p;
    size_t live = fl_mem_live();
    fl_recon_predict_args a = { .reconstruct = k->recon, .propagation = k->prop, .prune_stream = k->ps,
                                .trainable_bias_norm = k->bias_norm, .nwin = NWIN, .T = SEQ, .batch = RBATCH };
    rc = fl_recon_predict(&cfg, &a, &p);
    if (rc != 0) print_error("predict %s: %s\n", k->recon, fl_errmsg());
    assert_int_equal(rc, 0);
    assert_true(fl_mem_live() == live);   /* from the shapes: nothing allocated */
    double rw = ratio(r.working_bytes, p.working_bytes), rp = ratio(r.peak_recover_bytes, p.peak_recover_bytes);
    print_message("%-5s %-18s %-12s %-6s %-9s working %8zu / %8zu = %.4f (%s)  peak %8zu / %8zu = %.4f\n", fam, k->recon,
                  k->prop, k->ps ? k->ps : "sparse", k->bias_norm ? "bias-norm" : "all", r.working_bytes, p.working_bytes, rw, p.unit,
                  r.peak_recover_bytes, p.peak_recover_bytes, rp);
    /* the FLOPs of the pruning pass and recovery, and the pruning pass's
     * peak (its statistics pass and the pruning of each linear) */
    const uint64_t mf = r.prof.ph[FL_PH_STATS].flops + r.prof.ph[FL_PH_PRUNE].flops + r.prof.ph[FL_PH_RECOVER].flops;
    size_t mpp = fl_mem_phase_peak("statistics");
    if (r.peak_prune_bytes > mpp) mpp = r.peak_prune_bytes;
    double rf = p.flops ? (double)mf / p.flops : NAN, rpp = ratio(mpp, p.peak_prune_bytes);
    print_message("%-5s %-18s %-12s flops %12llu / %12llu = %.4f  pruning-pass peak %8zu / %8zu = %.4f\n", fam, k->recon,
                  k->prop, (unsigned long long)mf, (unsigned long long)p.flops, rf, mpp, p.peak_prune_bytes, rpp);
    assert_true(rf >= 0.9 && rf <= 1.1);
    assert_true(rpp >= 0.9 && rpp <= 1.1);
    /* the cell's whole tracked peak: the largest of every phase's, against
     * the largest of the predicted pruning pass, recovery, drift (8 windows
     * by default, one batch of 8) and evaluation (one window of SEQ) */
    size_t mt = 0, pt = p.peak_prune_bytes > p.peak_recover_bytes ? p.peak_prune_bytes : p.peak_recover_bytes;
    for (int i = 0; i < FL_NPHASES; i++) mt = r.prof.ph[i].peak_bytes > mt ? r.prof.ph[i].peak_bytes : mt;
    const size_t pe = fl_pred_eval_bytes(&cfg, 1, SEQ), pd = fl_pred_drift_bytes(&cfg, 8, SEQ);
    pt = pe > pt ? pe : pt;
    pt = pd > pt ? pd : pt;
    const double rt = ratio(mt, pt), re = ratio(r.prof.ph[FL_PH_EVAL].peak_bytes, pe), rd = ratio(r.prof.ph[FL_PH_DRIFT].peak_bytes, pd);
    print_message("%-5s %-18s total peak %8zu / %8zu = %.4f  evaluation %.4f  drift %.4f\n", fam, k->recon, mt, pt, rt, re, rd);
    assert_true(rt >= 0.9 && rt <= 1.1);
    assert_true(re >= 0.9 && re <= 1.1);
    assert_true(rd >= 0.9 && rd <= 1.1);
    if (!strcmp(k->recon, "none")) {   /* no recovery phase at all */
        assert_true(r.working_bytes == 0 && p.working_bytes == 0);
        assert_true(r.peak_recover_bytes == 0 && p.peak_recover_bytes == 0);
    } else {
        assert_true(rw >= 0.9 && rw <= 1.1);
        assert_true(rp >= 0.9 && rp <= 1.1);
        /* the peak holds the working set (its parameters are the model's) */
        assert_true(p.peak_recover_bytes > p.working_bytes);
    }
    fl_cell_result_free(&r);
}

static void check_family(const char *model, const char *fam, int has_bias) {
    static const char *local[] = { "matrix", "matrix-ls", "sublayer", "block", "blocks:2", "blocks:all" };
    static const char *props[] = { "sparse", "dense", "dense-target" };
    cell_t cells[48];
    int n = 0;
    cells[n++] = (cell_t){ "none", "sparse", 0, NULL };
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 3; j++) cells[n++] = (cell_t){ local[i], props[j], 0, NULL };
    /* --trainable bias-norm: a linear alone has only its bias to train */
    if (has_bias) cells[n++] = (cell_t){ "matrix", "sparse", 1, NULL };
    cells[n++] = (cell_t){ "sublayer", "sparse", 1, NULL };
    cells[n++] = (cell_t){ "blocks:2", "dense", 1, NULL };
    /* statistics on the dense model's activations: the prune stream is held too */
    for (int i = 0; i < 6; i++) cells[n++] = (cell_t){ local[i], "sparse", 0, "dense" };
    cells[n++] = (cell_t){ "block", "dense", 0, "dense" };
    cells[n++] = (cell_t){ "retrain:full", "sparse", 0, NULL };
    cells[n++] = (cell_t){ "retrain:bias-norm", "sparse", 0, NULL };
    cells[n++] = (cell_t){ "retrain:lora", "sparse", 0, NULL };
    cells[n++] = (cell_t){ "retrain:masklora:rank=4", "sparse", 0, NULL };
    for (int i = 0; i < n; i++) check_cell(model, fam, &cells[i], i);
}

static void test_llama(void **s) { (void)s; check_family(g_llama, "llama", 0); }
static void test_gpt2(void **s) { (void)s; check_family(g_gpt2, "gpt2", 1); }
/* post-LN OPT with projected embeddings: one cell of each kind of unit */
static void test_opt_postln(void **s) {
    (void)s;
    static const cell_t cells[] = { { "none", "sparse", 0, NULL }, { "matrix", "sparse", 0, NULL }, { "sublayer", "dense", 0, NULL },
                                    { "blocks:2", "sparse", 0, NULL }, { "retrain:full", "sparse", 0, NULL },
                                    { "retrain:bias-norm", "sparse", 0, NULL }, { "retrain:lora", "sparse", 0, NULL } };
    for (int i = 0; i < (int)(sizeof cells / sizeof *cells); i++) check_cell(g_opt, "opt", &cells[i], i);
}

/* A structured cell: the smaller model fl_struct_config predicts (its
 * parameter count is the saved model's), recovered beside the dense one;
 * the working set and the recovery peak within 10%. */
static void check_struct_cell(const char *model, const char *fam, const char *structure, const char *crit, const char *frac,
                              const char *recon, int idx) {
    char out[400];
    snprintf(out, sizeof out, "%s/%s_s%d", g_dir, fam, idx);
    fl_cell_cfg c = cell_cfg(model, out, crit, frac, recon);
    c.structure = structure;
    fl_cell_result r;
    int rc = fl_cell_run(&c, &r);
    if (rc != 0) print_error("%s %s %s %s: %s\n", fam, structure, crit, recon, fl_errmsg());
    assert_int_equal(rc, 0);
    fl_config dense, small;
    assert_int_equal(fl_config_load(&dense, model), 0);
    fl_crit_inst ci;
    fl_structure kind;
    assert_int_equal(fl_structure_parse(structure, &kind), 0);
    assert_int_equal(fl_criterion_open(crit, &ci), 0);
    rc = fl_struct_config(&dense, &ci, kind, atof(frac), &small);
    fl_criterion_close(&ci);
    assert_int_equal(rc, 0);
    assert_true(fl_config_num_params(&small) == r.params);
    assert_true(r.params < r.params_dense);
    fl_recon_predict_out p;
    size_t live = fl_mem_live();
    fl_recon_predict_args a = { .reconstruct = recon, .nwin = NWIN, .T = SEQ, .batch = RBATCH, .dense = &dense };
    rc = fl_recon_predict(&small, &a, &p);
    if (rc != 0) print_error("predict %s: %s\n", recon, fl_errmsg());
    assert_int_equal(rc, 0);
    assert_true(fl_mem_live() == live);
    double rw = ratio(r.working_bytes, p.working_bytes), rp = ratio(r.peak_recover_bytes, p.peak_recover_bytes);
    print_message("%-5s %-8s %-15s %-5s %-13s working %8zu / %8zu = %.4f  peak %8zu / %8zu = %.4f\n", fam, structure, crit, frac,
                  recon, r.working_bytes, p.working_bytes, rw, r.peak_recover_bytes, p.peak_recover_bytes, rp);
    assert_true(rw >= 0.9 && rw <= 1.1);
    assert_true(rp >= 0.9 && rp <= 1.1);
    assert_true(p.peak_prune_bytes == 0);   /* the removal's pass: not predicted */
    fl_cell_result_free(&r);
}

static void test_structured(void **s) {
    (void)s;
    static const char *recon[] = { "sublayer", "block", "blocks:2", "blocks:all", "retrain:full", "retrain:lora" };
    int n = 0;
    for (int i = 0; i < 6; i++) check_struct_cell(g_llama, "llama", "channels", "magnitude-sp", "0.25", recon[i], n++);
    /* one key/value group of two; FLAP's compensation adds o's bias (and,
     * llama's attention_bias, q/k/v's) */
    check_struct_cell(g_llama, "llama", "heads", "wanda-sp", "0.5", "block", n++);
    check_struct_cell(g_llama, "llama", "heads", "flap", "0.5", "sublayer", n++);
    check_struct_cell(g_llama, "llama", "channels", "flap", "0.25", "blocks:all", n++);
    /* one block of three removed: the unit before the gap spans it */
    check_struct_cell(g_llama, "llama", "layers", "block-influence", "0.3", "block", n++);
    check_struct_cell(g_llama, "llama", "layers", "angular", "0.3", "retrain:full", n++);
    check_struct_cell(g_gpt2, "gpt2", "channels", "flap", "0.25", "block", n++);
    check_struct_cell(g_gpt2, "gpt2", "heads", "magnitude-sp", "0.25", "sublayer", n++);
    check_struct_cell(g_opt, "opt", "channels", "wanda-sp", "0.25", "blocks:2", n++);
}

/* What a structured prediction refuses: a linear unit (no dense linear of
 * the new shape), a global ratio (its sizes depend on the scores). */
static void test_structured_refuses(void **s) {
    (void)s;
    fl_config dense, small;
    assert_int_equal(fl_config_load(&dense, g_llama), 0);
    fl_crit_inst ci;
    assert_int_equal(fl_criterion_open("flap:ratio=global", &ci), 0);
    assert_int_equal(fl_struct_config(&dense, &ci, FL_STRUCT_CHANNELS, 0.25, &small), -1);
    assert_non_null(strstr(fl_errmsg(), "global ratio"));
    fl_criterion_close(&ci);
    assert_int_equal(fl_criterion_open("magnitude-sp", &ci), 0);
    assert_int_equal(fl_struct_config(&dense, &ci, FL_STRUCT_HEADS, 0.75, &small), -1);   /* both groups */
    assert_int_equal(fl_struct_config(&dense, &ci, FL_STRUCT_LAYERS, 0.3, &small), -1);   /* a width criterion */
    assert_int_equal(fl_struct_config(&dense, &ci, FL_STRUCT_CHANNELS, 0.25, &small), 0);
    assert_int_equal(small.d_ff, 36);
    assert_int_equal(small.n_layer, 3);
    fl_criterion_close(&ci);
    fl_recon_predict_out p;
    assert_int_equal(fl_recon_predict(&small, &(fl_recon_predict_args){ .reconstruct = "matrix", .nwin = NWIN, .T = SEQ,
                                                                       .dense = &dense }, &p), -1);
    assert_non_null(strstr(fl_errmsg(), "new shape"));
}

/* What the prediction refuses, with a message, like the cell would. */
static void test_predict_refuses(void **s) {
    (void)s;
    fl_config cfg;
    assert_int_equal(fl_config_load(&cfg, g_llama), 0);
    fl_recon_predict_out p;
#define PRED(r, prop, bn, t) fl_recon_predict(&cfg, &(fl_recon_predict_args){ .reconstruct = r, .propagation = prop, \
                                              .trainable_bias_norm = bn, .nwin = NWIN, .T = t, .batch = RBATCH }, &p)
    assert_int_equal(PRED("retrain:lora:rank=0", NULL, 0, SEQ), -1);
    assert_int_equal(PRED("matrix", NULL, 1, SEQ), -1);   /* llama linears: no bias */
    assert_non_null(strstr(fl_errmsg(), "bias-norm"));
    assert_int_equal(PRED("blocks:0", NULL, 0, SEQ), -1);
    assert_int_equal(PRED("block", "sideways", 0, SEQ), -1);
    assert_int_equal(fl_recon_predict(&cfg, &(fl_recon_predict_args){ .reconstruct = "block", .prune_stream = "up",
                                                                     .nwin = NWIN, .T = SEQ }, &p), -1);
    assert_non_null(strstr(fl_errmsg(), "prune stream"));
    assert_int_equal(PRED("block", NULL, 0, SEQ + 1), -1);
#undef PRED
    assert_non_null(strstr(fl_errmsg(), "context"));
}

int main(void) {
    fl_threads_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_predict_refuses), cmocka_unit_test(test_llama), cmocka_unit_test(test_gpt2), cmocka_unit_test(test_opt_postln),
        cmocka_unit_test(test_structured), cmocka_unit_test(test_structured_refuses),
    };
    return cmocka_run_group_tests_name("recon_mem", tests, setup, teardown);
}
