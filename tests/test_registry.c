/* Every registered reconstructor, through the generic interface only: its
 * descriptor is complete, its plan is valid, and a cell with it on a micro
 * model runs, keeps the masks exactly (unless it declares that it
 * densifies), lowers (never raises) the loss of every unit it recovers,
 * and uses exactly the bytes its predict() says. A new reconstructor is
 * tested here from its first build, without a line added. */
#include "tests/testutil.h"
#include "datasets/corpus.h"
#include "datasets/tokfile.h"
#include "harness/cell.h"
#include "model/alloc.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "model/gemm.h"
#include "model/fileio.h"
#include "datasets/calib.h"
#include <cjson/cJSON.h>

static char g_dir[256], g_calib[300], g_eval[300], g_model[300];

enum { VOCAB = 48, SEQ = 16, NWIN = 6, RBATCH = 4 };

static int setup(void **st) {
    (void)st;
    tu_tmpdir(g_dir, sizeof g_dir);
    snprintf(g_calib, sizeof g_calib, "%s/calib.bin", g_dir);
    snprintf(g_eval, sizeof g_eval, "%s/eval.bin", g_dir);
    snprintf(g_model, sizeof g_model, "%s/model", g_dir);
    /* a learnable token stream (each token mostly follows from the one
     * before), so training lowers the loss */
    int32_t t[4000];
    uint64_t s = 5;
    t[0] = 1;
    for (int i = 1; i < 4000; i++) t[i] = tu_rng(&s) % 4 ? (t[i - 1] * 7 + 3) % VOCAB : (int32_t)(tu_rng(&s) % VOCAB);
    if (fl_tokfile_write(g_calib, t, 4000) != 0 || fl_tokfile_write(g_eval, t, 200) != 0) return -1;
    fl_config c = { 0 };
    fl_config_family_defaults(&c, FL_QWEN2);   /* q/k/v biases: every unit kind has something to train */
    c.vocab = VOCAB; c.d = 32; c.n_layer = 3; c.n_head = 4; c.n_kv_head = 2; c.head_dim = 8; c.d_ff = 48; c.max_pos = SEQ;
    fl_model m;
    if (fl_model_create(&m, &c) != 0) return -1;
    fl_model_init_random(&m, 11);
    int rc = fl_model_save(&m, g_model);
    fl_model_free(&m);
    return rc;
}

static int teardown(void **st) { (void)st; tu_rmrf(g_dir); return 0; }

/* The descriptor alone: every field generic code relies on. */
static void test_descriptors(void **st) {
    (void)st;
    int n = 0;
    fl_config cfg;
    assert_int_equal(fl_config_load(&cfg, g_model), 0);
    for (int i = 0; FL_RECONSTRUCTORS[i]; i++, n++) {
        const fl_reconstructor *r = FL_RECONSTRUCTORS[i];
        assert_non_null(r->name);
        assert_true(r->desc && strlen(r->desc) > 10 && !strchr(r->desc, '\n'));
        assert_non_null(r->plan);
        assert_true((r->recover == NULL) == (r->predict == NULL));
        assert_true((r->options == NULL) == (r->priv_size == 0));
        for (const fl_option *o = r->options; o && o->name; o++) assert_true(o->help && o->help[0]);
        for (int j = 0; j < i; j++) assert_string_not_equal(FL_RECONSTRUCTORS[j]->name, r->name);
        /* opens by its own name with every option at its default, and plans */
        fl_recon_inst in;
        assert_int_equal(fl_recon_open(r->name, &in), 0);
        assert_ptr_equal(in.r, r);
        fl_plan p;
        assert_int_equal(fl_recon_plan(&in, &cfg, &p), 0);
        assert_true(p.n > 0);
        int recovers = 0;
        for (int k = 0; k < p.n; k++) recovers += p.u[k].recover;
        assert_true((recovers > 0) == (r->recover != NULL));
        fl_plan_free(&p);
        fl_recon_close(&in);
    }
    assert_true(n >= 10);
    /* unknown names list every reconstructor */
    fl_recon_inst in;
    assert_int_equal(fl_recon_open("frobnicate:3", &in), -1);
    for (int i = 0; FL_RECONSTRUCTORS[i]; i++) assert_non_null(strstr(fl_errmsg(), FL_RECONSTRUCTORS[i]->name));
    assert_int_equal(fl_recon_open("matrix:3", &in), -1);   /* no options */
    assert_non_null(strstr(fl_errmsg(), "takes no options"));
}

/* fl_config_linears (what plans and predictions count with) describes the
 * linears fl_model_create makes, in every family. */
static void test_shapes(void **st) {
    (void)st;
    const fl_family fams[] = { FL_GPT2, FL_OPT, FL_LLAMA, FL_QWEN2 };
    for (int f = 0; f < 4; f++) {
        fl_config c = { 0 };
        fl_config_family_defaults(&c, fams[f]);
        c.vocab = 40; c.d = 16; c.n_layer = 2; c.n_head = 4; c.n_kv_head = fams[f] >= FL_LLAMA ? 2 : 4;
        c.head_dim = 4; c.d_ff = 24; c.max_pos = 8;
        fl_model m;
        assert_int_equal(fl_model_create(&m, &c), 0);
        fl_linear_shape sh[7];
        const int k = fl_config_linears(&c, sh);
        for (int l = 0; l < c.n_layer; l++) {
            fl_param *w[7], *b[7];
            const char *nm[7];
            assert_int_equal(fl_layer_linears(&m, l, w, b, nm), k);
            for (int i = 0; i < k; i++) {
                assert_string_equal(nm[i], sh[i].name);
                assert_int_equal(w[i]->rows, sh[i].rows);
                assert_int_equal(w[i]->cols, sh[i].cols);
                assert_int_equal(b[i] != NULL, sh[i].bias);
                assert_int_equal(fl_param_sublayer(w[i]), 2 * l + sh[i].sub);
            }
        }
        fl_model_free(&m);
    }
}

/* fl_plan_add_pruning puts each block's pruning just before the first
 * unit reaching into it; fl_plan_check refuses plans that leave a block
 * unpruned, prune one twice or out of order, recover a unit before its
 * block is pruned, or walk backwards. */
static int n_prunes_before(const fl_plan *p, int j) {
    int n = 0;
    for (int i = 0; i < j; i++) n += p->u[i].prune;
    return n;
}
static void test_plan_check(void **st) {
    (void)st;
    fl_config cfg;
    assert_int_equal(fl_config_load(&cfg, g_model), 0);
    const int L = cfg.n_layer;
    fl_plan p = { 0 };
    /* matrix: prune block l, then its seven... linears */
    assert_int_equal(fl_plan_linears(&p, &cfg), 0);
    const int per = p.n / L;
    assert_int_equal(fl_plan_add_pruning(&p, &cfg), 0);
    assert_int_equal(p.n, L * (per + 1));
    for (int l = 0; l < L; l++) {
        const fl_plan_unit *u = &p.u[l * (per + 1)];
        assert_true(u->prune && !u->recover && u->s0 == 2 * l && u->s1 == 2 * l + 2);
        for (int i = 1; i <= per; i++) assert_true(!p.u[l * (per + 1) + i].prune && p.u[l * (per + 1) + i].layer == l);
    }
    assert_int_equal(fl_plan_check(&p, &cfg, "t"), 0);
    /* a recovery unit moved before its block's pruning */
    fl_plan_unit t = p.u[per + 1];
    p.u[per + 1] = p.u[per + 2];
    p.u[per + 2] = t;
    assert_int_equal(fl_plan_check(&p, &cfg, "t"), -1);
    assert_non_null(strstr(fl_errmsg(), "before layers.1 is pruned"));
    fl_plan_free(&p);
    /* blocks:all: every block pruned, then the one unit; a model unit: all pruned first */
    assert_int_equal(fl_plan_range(&p, &cfg, 0, 2 * L), 0);
    assert_int_equal(fl_plan_add_pruning(&p, &cfg), 0);
    assert_int_equal(p.n, L + 1);
    assert_int_equal(n_prunes_before(&p, L), L);
    assert_int_equal(fl_plan_check(&p, &cfg, "t"), 0);
    fl_plan_free(&p);
    assert_int_equal(fl_plan_model(&p, "model"), 0);
    assert_int_equal(fl_plan_add_pruning(&p, &cfg), 0);
    assert_int_equal(p.n, L + 1);
    assert_true(p.u[L].kind == FL_UNIT_MODEL);
    assert_int_equal(fl_plan_check(&p, &cfg, "t"), 0);
    /* a model unit before the last block's pruning */
    t = p.u[L];
    p.u[L] = p.u[L - 1];
    p.u[L - 1] = t;
    assert_int_equal(fl_plan_check(&p, &cfg, "t"), -1);
    fl_plan_free(&p);
    /* none: nothing to recover, every block still pruned; a recovery unit
     * only for the last MLP gets every block pruned before it */
    assert_int_equal(fl_plan_add_pruning(&p, &cfg), 0);
    assert_int_equal(p.n, L);
    assert_int_equal(fl_plan_check(&p, &cfg, "t"), 0);
    fl_plan_free(&p);
    assert_int_equal(fl_plan_range(&p, &cfg, 2 * L - 1, 2 * L), 0);
    assert_int_equal(fl_plan_add_pruning(&p, &cfg), 0);
    assert_int_equal(n_prunes_before(&p, p.n - 1), L);
    assert_int_equal(fl_plan_check(&p, &cfg, "t"), 0);
    /* a block left unpruned, pruned twice, out of order, or half a block */
    p.u[1].prune = 0;
    p.u[1].recover = 1;
    assert_int_equal(fl_plan_check(&p, &cfg, "t"), -1);
    p.u[1] = p.u[0];
    assert_int_equal(fl_plan_check(&p, &cfg, "t"), -1);
    assert_non_null(strstr(fl_errmsg(), "out of order"));
    p.u[1] = p.u[2];
    p.u[1].s1 = p.u[1].s0 + 1;
    assert_int_equal(fl_plan_check(&p, &cfg, "t"), -1);
    fl_plan_free(&p);
    /* sublayers then linears: backwards */
    assert_int_equal(fl_plan_ranges(&p, &cfg, 1), 0);
    assert_int_equal(fl_plan_linears(&p, &cfg), 0);
    assert_int_equal(fl_plan_add_pruning(&p, &cfg), 0);
    assert_int_equal(fl_plan_check(&p, &cfg, "t"), -1);
    fl_plan_free(&p);
}

/* Rows of the saved model's block linears that do not lose exactly half
 * their weights (the row pattern at 0.5). */
static int rows_off_pattern(const char *dir) {
    fl_model m;
    assert_int_equal(fl_model_load(&m, dir), 0);
    int bad = 0;
    for (int l = 0; l < m.cfg.n_layer; l++) {
        fl_param *w[7];
        int k = fl_layer_linears(&m, l, w, NULL, NULL);
        for (int i = 0; i < k; i++)
            for (int r = 0; r < w[i]->rows; r++) {
                int z = 0;
                for (int c = 0; c < w[i]->cols; c++) z += w[i]->w[(int64_t)r * w[i]->cols + c] == 0.0f;
                bad += z != w[i]->cols / 2;
            }
    }
    fl_model_free(&m);
    return bad;
}

/* Runs one cell and returns its mask hash in hash[65], after checking it
 * is the SHA-256 of the masks.bin the cell wrote. */
static void run_one(const char *spec, int idx, const char *prune_stream, const char *optimizer, char *hash) {
    char out[400];
    snprintf(out, sizeof out, "%s/cell_%d", g_dir, idx);
    fl_recon_inst in;
    assert_int_equal(fl_recon_open(spec, &in), 0);
    const int densifies = (in.r->flags & FL_REC_DENSIFIES) != 0, recovers = in.r->recover != NULL;
    fl_recon_close(&in);
    fl_cell_cfg c = { .model_dir = g_model, .criterion = "wanda", .sparsity = "0.5", .pattern = "row",
                      .reconstruct = spec, .calib_file = g_calib, .calib_samples = NWIN, .seqlen = SEQ, .seed = 1,
                      .n_evals = 1, .eval_max_windows = 1, .out_dir = out, .cache = g_dir, .lr = 1e-4f, .epochs = 2,
                      .recon_batch = RBATCH, .prune_stream = prune_stream, .optimizer = optimizer };
    c.evals[0] = g_eval;
    fl_cell_result r;
    int rc = fl_cell_run(&c, &r);
    if (rc != 0) print_error("%s: %s\n", spec, fl_errmsg());
    assert_int_equal(rc, 0);
    /* the masks hold: every row of every linear exactly half zeros */
    int off = rows_off_pattern(out);
    print_message("%-24s units %2d  rows off the pattern %d  sparsity %.4f\n", spec, r.n_units, off, r.sparsity);
    if (densifies) assert_true(off > 0 && r.sparsity < 0.5);   /* it says so, and it does */
    else {
        assert_int_equal(off, 0);
        assert_true(r.sparsity == 0.5);
    }
    /* one report per recovering unit; none rises */
    assert_true((r.n_units > 0) == recovers);
    for (int i = 0; i < r.n_units; i++) {
        const fl_unit_report *u = &r.units[i];
        if (!(u->loss_after <= u->loss_before)) print_error("%s %s: loss %g -> %g\n", spec, u->name, u->loss_before, u->loss_after);
        assert_true(u->loss_after <= u->loss_before);
        assert_true(u->steps > 0 && u->working_bytes > 0);
        assert_true(u->tokens > 0 && u->tokens <= r.recovery_tokens);
    }
    /* recovery_tokens: one pass over the windows per epoch (2 here),
     * whatever the number of units; matrix-ls solves from one pass */
    const int64_t pass = (int64_t)NWIN * SEQ;
    assert_true(r.recovery_tokens == (!recovers ? 0 : !strcmp(spec, "matrix-ls") ? pass : 2 * pass));
    /* predict() = what the tracked allocator measured, exactly */
    fl_config cfg;
    assert_int_equal(fl_config_load(&cfg, g_model), 0);
    fl_recon_predict_out p;
    fl_recon_predict_args a = { .reconstruct = spec, .prune_stream = prune_stream, .nwin = NWIN, .T = SEQ, .batch = RBATCH };
    assert_int_equal(fl_optim_parse(optimizer, &a.optim), 0);
    assert_int_equal(fl_recon_predict(&cfg, &a, &p), 0);
    print_message("%-5s %-24s working %zu / predicted %zu, recovery peak %zu / predicted %zu\n", optimizer, spec, r.working_bytes,
                  p.working_bytes, r.peak_recover_bytes, p.peak_recover_bytes);
    assert_true(r.working_bytes == p.working_bytes);
    assert_true(r.peak_recover_bytes == p.peak_recover_bytes);
    /* the hash is that of the masks written beside the model, one byte per weight */
    char path[500];
    snprintf(path, sizeof path, "%s/masks.bin", out);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static unsigned char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    int64_t weights = 0;
    for (int l = 0; l < cfg.n_layer; l++) {
        fl_linear_shape sh[7];
        int k = fl_config_linears(&cfg, sh);
        for (int i = 0; i < k; i++) weights += (int64_t)sh[i].rows * sh[i].cols;
    }
    assert_int_equal(n, weights);
    int64_t kept = 0;
    for (size_t q = 0; q < n; q++) { assert_true(buf[q] <= 1); kept += buf[q]; }
    assert_int_equal(kept, weights / 2);
    unsigned char md[32];
    assert_int_equal(fl_sha256(buf, n, md), 0);
    char hex[65];
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    assert_string_equal(hex, r.mask_sha256);
    memcpy(hash, r.mask_sha256, 65);
    fl_cell_result_free(&r);
}

/* The cell's freelunch.json, parsed. */
static cJSON *cell_json(const char *out) {
    char path[500], *text = NULL;
    snprintf(path, sizeof path, "%s/freelunch.json", out);
    assert_int_equal(fl_read_file(path, &text, NULL), 0);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    return j;
}

static fl_cell_cfg small_cell(const char *spec, const char *out) {
    fl_cell_cfg c = { .model_dir = g_model, .criterion = "wanda", .sparsity = "0.5", .pattern = "row",
                      .reconstruct = spec, .calib_file = g_calib, .calib_samples = NWIN, .seqlen = SEQ, .seed = 1,
                      .n_evals = 1, .eval_max_windows = 1, .out_dir = out, .cache = g_dir, .lr = 1e-4f, .epochs = 2,
                      .recon_batch = RBATCH };
    c.evals[0] = g_eval;
    return c;
}

/* What the model unit was handed, for the test below. */
static int32_t g_seen[64 * SEQ];
static int g_seen_nwin;
static int record_tokens(const fl_recover_job *j, fl_unit_report *rep) {
    assert_int_equal(j->u->kind, FL_UNIT_MODEL);
    assert_true(j->nwin <= 64);
    g_seen_nwin = j->nwin;
    memcpy(g_seen, j->tok, sizeof(int32_t) * (size_t)j->nwin * j->T);
    snprintf(rep->name, sizeof rep->name, "recorded");
    rep->steps = 1;
    return 0;
}

/* --retrain-samples N: the retraining baselines train on N windows, the
 * calibration windows (calib.bin) first, then the same seed's next draws;
 * recovery_tokens counts them; local reconstructors ignore it. */
static void test_retrain_samples(void **st) {
    (void)st;
    enum { NRET = 14 };
    char out[400];
    /* the windows handed over: calib.bin's first, then the sampler's next */
    snprintf(out, sizeof out, "%s/rs_tokens", g_dir);
    fl_cell_cfg c = small_cell("retrain:full", out);
    c.retrain_samples = NRET;
    c.recover_override = record_tokens;
    fl_cell_result r;
    assert_int_equal(fl_cell_run(&c, &r), 0);
    fl_cell_result_free(&r);
    assert_int_equal(g_seen_nwin, NRET);
    char path[500];
    snprintf(path, sizeof path, "%s/calib.bin", out);
    int32_t *cb;
    int64_t ncb;
    assert_int_equal(fl_tokfile_read(path, VOCAB, &cb, &ncb), 0);
    assert_int_equal(ncb, NWIN * SEQ);   /* calib.bin: the calibration windows only */
    assert_memory_equal(g_seen, cb, sizeof(int32_t) * NWIN * SEQ);
    free(cb);
    fl_calib cal;
    assert_int_equal(fl_calib_sample_file(g_calib, VOCAB, NRET, SEQ, 1, &cal), 0);
    assert_memory_equal(g_seen, cal.tokens, sizeof(int32_t) * NRET * SEQ);
    fl_calib_free(&cal);

    /* the real retraining: tokens counted, recorded in freelunch.json, and
     * the predictor still exact (b = min(batch, windows) is the same here) */
    snprintf(out, sizeof out, "%s/rs_full", g_dir);
    c = small_cell("retrain:full", out);
    c.retrain_samples = NRET;
    assert_int_equal(fl_cell_run(&c, &r), 0);
    assert_true(r.recovery_tokens == (int64_t)NRET * SEQ * 2);
    fl_config cfg;
    assert_int_equal(fl_config_load(&cfg, g_model), 0);
    fl_recon_predict_out p;
    assert_int_equal(fl_recon_predict(&cfg, &(fl_recon_predict_args){ .reconstruct = "retrain:full", .nwin = NWIN, .T = SEQ,
                                                                     .batch = RBATCH }, &p), 0);
    assert_true(r.working_bytes == p.working_bytes);
    assert_true(r.peak_recover_bytes == p.peak_recover_bytes);
    fl_cell_result_free(&r);
    cJSON *j = cell_json(out), *cell = cJSON_GetObjectItemCaseSensitive(j, "cell");
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(cell, "retrain_samples")->valueint, NRET);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(cell, "calib_samples")->valueint, NWIN);
    assert_true(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "profile"), "recovery_tokens")->valuedouble ==
                (double)NRET * SEQ * 2);
    cJSON_Delete(j);

    /* fewer retraining windows than a batch: the model unit's batch
     * shrinks, and fl_recon_predict follows it exactly */
    snprintf(out, sizeof out, "%s/rs_few", g_dir);
    c = small_cell("retrain:masklora", out);
    c.retrain_samples = 2;
    assert_int_equal(fl_cell_run(&c, &r), 0);
    assert_true(r.recovery_tokens == (int64_t)2 * SEQ * 2);
    assert_int_equal(fl_recon_predict(&cfg, &(fl_recon_predict_args){ .reconstruct = "retrain:masklora", .nwin = NWIN,
                                                                     .retrain_nwin = 2, .T = SEQ, .batch = RBATCH }, &p), 0);
    assert_true(r.working_bytes == p.working_bytes);
    assert_true(r.peak_recover_bytes == p.peak_recover_bytes);
    fl_cell_result_free(&r);

    /* unset: the calibration windows, recorded as such */
    snprintf(out, sizeof out, "%s/rs_default", g_dir);
    c = small_cell("retrain:full", out);
    c.recover_override = record_tokens;
    assert_int_equal(fl_cell_run(&c, &r), 0);
    fl_cell_result_free(&r);
    assert_int_equal(g_seen_nwin, NWIN);
    j = cell_json(out);
    assert_int_equal(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "cell"), "retrain_samples")->valueint, NWIN);
    cJSON_Delete(j);

    /* a local reconstructor trains on the calibration windows alone and
     * does not record the setting */
    snprintf(out, sizeof out, "%s/rs_local", g_dir);
    c = small_cell("sublayer", out);
    c.retrain_samples = NRET;
    assert_int_equal(fl_cell_run(&c, &r), 0);
    assert_true(r.recovery_tokens == (int64_t)NWIN * SEQ * 2);
    fl_cell_result_free(&r);
    j = cell_json(out);
    assert_null(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "cell"), "retrain_samples"));
    cJSON_Delete(j);
}

/* Is every float of param i of a the same in b? */
static int same_param(const fl_model *a, const fl_model *b, int i) {
    return !memcmp(a->params[i].w, b->params[i].w, sizeof(float) * (size_t)a->params[i].n);
}

/* retrain:masklora's defaults (the authors'): biases and norms train
 * beside the adapters, embeddings do not, pruned weights stay zero;
 * bias-norm=0 trains the adapters alone. */
static void test_masklora_bias_norm(void **st) {
    (void)st;
    fl_model dense;
    assert_int_equal(fl_model_load(&dense, g_model), 0);
    for (int bn = 1; bn >= 0; bn--) {
        char out[400];
        snprintf(out, sizeof out, "%s/mlbn_%d", g_dir, bn);
        fl_cell_cfg c = small_cell(bn ? "retrain:masklora" : "retrain:masklora:bias-norm=0", out);
        c.lr = 1e-2f;
        fl_cell_result r;
        assert_int_equal(fl_cell_run(&c, &r), 0);
        fl_cell_result_free(&r);
        assert_int_equal(rows_off_pattern(out), 0);
        fl_model m;
        assert_int_equal(fl_model_load(&m, out), 0);
        assert_int_equal(m.n_params, dense.n_params);
        int n_bn = 0;
        for (int i = 0; i < m.n_params; i++) {
            const fl_param *p = &m.params[i];
            int is_bn = p->kind == FL_PK_NORM_W || p->kind == FL_PK_NORM_B || p->kind == FL_PK_LINEAR_B;
            if (is_bn) {
                n_bn++;
                if (same_param(&m, &dense, i) == bn) print_error("bias-norm=%d: %s\n", bn, p->name);
                assert_int_equal(same_param(&m, &dense, i), !bn);
            } else if (!(p->kind == FL_PK_LINEAR_W && p->layer >= 0)) {
                assert_true(same_param(&m, &dense, i));   /* embeddings, head: frozen */
            }
        }
        assert_true(n_bn > 3 * 3);   /* qwen2: q/k/v biases and two norms per block, the final norm */
        fl_model_free(&m);
    }
    fl_model_free(&dense);
}

static void test_every_reconstructor(void **st) {
    (void)st;
    int i = 0;
    char h[16][65], hd[16][65], hs[16][65];
    for (; FL_RECONSTRUCTORS[i]; i++) run_one(FL_RECONSTRUCTORS[i]->name, i, NULL, "adamw", h[i]);
    /* a last unit shorter than the others; options; the whole decoder */
    const char *more[] = { "blocks:2", "retrain:masklora:rank=4,alpha=8", "blocks:all" };
    for (int j = 0; j < 3; j++, i++) run_one(more[j], i, NULL, "adamw", h[i]);
    /* with the sparse prune stream, the masks of the plans that recover
     * nothing before the last block is pruned are one and the same; a
     * plan recovering in between prunes from what it recovered */
    for (int j = 0; j < i; j++) {
        const char *nm = j < i - 3 ? FL_RECONSTRUCTORS[j]->name : more[j - (i - 3)];
        if (strstr(nm, "retrain:") == nm || !strcmp(nm, "blocks:all")) assert_string_equal(h[j], h[0]);
        if (!strcmp(nm, "matrix") || !strcmp(nm, "block") || !strcmp(nm, "sublayer")) assert_string_not_equal(h[j], h[0]);
    }
    /* with the dense one, every reconstructor's masks are the same */
    int n = 0;
    for (; FL_RECONSTRUCTORS[n]; n++) run_one(FL_RECONSTRUCTORS[n]->name, 20 + n, "dense", "adamw", hd[n]);
    for (int j = 0; j < 3; j++, n++) run_one(more[j], 20 + n, "dense", "adamw", hd[n]);
    for (int j = 0; j < n; j++) assert_string_equal(hd[j], hd[0]);
    assert_string_not_equal(hd[0], h[0]);   /* the dense model's statistics are not the pruned one's */
    /* SGD keeps one buffer where AdamW keeps two moments: the prediction
     * follows, and the masks hold under its update too */
    for (int k = 0; FL_RECONSTRUCTORS[k]; k++) run_one(FL_RECONSTRUCTORS[k]->name, 40 + k, NULL, "sgd", hs[k]);
}

int main(void) {
    fl_threads_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptors),
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_plan_check),
        cmocka_unit_test(test_every_reconstructor),
        cmocka_unit_test(test_retrain_samples),
        cmocka_unit_test(test_masklora_bias_norm),
    };
    return cmocka_run_group_tests_name("registry", tests, setup, teardown);
}
