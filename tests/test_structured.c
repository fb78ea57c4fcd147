/* Structured pruning (issue 15): exact structure counts for every
 * criterion and fraction, FLAP's bias compensation against a direct
 * computation, bad input, and the saved smaller model against an oracle
 * that applies the same removal to the dense model in PyTorch
 * (tests/oracle/struct_ref.py) for llama with GQA, gpt2 and opt (heads,
 * channels, layers, FLAP's compensated biases).
 * Run from the repository root (the oracle script's path). */
#include "testutil.h"
#include "criteria/criterion.h"
#include "eval/drift.h"
#include "harness/structured.h"
#include "reconstructors/hidden.h"
#include "reconstructors/recon.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "model/model.h"
#include "model/safetensors.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PY "/usr/bin/python3"
#define REF "tests/oracle/struct_ref.py"
#define NWIN 3
#define TT 8

static void make_model(fl_model *m, fl_family fam, int L, int H, int KV, int F, uint64_t seed) {
    fl_config c;
    memset(&c, 0, sizeof c);
    fl_config_family_defaults(&c, fam);
    c.vocab = 97; c.d = 32; c.n_layer = L; c.n_head = H; c.n_kv_head = KV; c.head_dim = 32 / H; c.d_ff = F; c.max_pos = 16;
    assert_int_equal(fl_model_create(m, &c), 0);
    fl_model_init_random(m, seed);
    /* biases and norms away from their init, so every tensor matters */
    for (int i = 0; i < m->n_params; i++) {
        fl_param *p = &m->params[i];
        if (p->kind == FL_PK_LINEAR_B || p->kind == FL_PK_NORM_B) tu_fill(p->w, (size_t)p->n, 0.05f, seed + i);
        if (p->kind == FL_PK_NORM_W) for (int64_t j = 0; j < p->n; j++) p->w[j] = 1.0f + 0.1f * sinf((float)(j + i));
    }
}

static int32_t *tokens(int n, uint64_t seed) {
    int32_t *t = malloc(sizeof(int32_t) * (size_t)n);
    tu_markov(t, n, seed);
    for (int i = 0; i < n; i++) t[i] %= 97;
    return t;
}

/* the embeddings of the calibration windows: the input the driver takes */
static float *embed(fl_model *m, const int32_t *tok) {
    float *X = malloc(sizeof(float) * NWIN * TT * m->cfg.d);
    fl_fwd a = { .B = NWIN, .T = TT, .tokens = tok, .x_out = X };
    assert_int_equal(fl_forward(m, (fl_range){ 0, 0, 1, 0 }, &a, NULL), 0);
    return X;
}

static int open_crit(const char *name, fl_crit_inst *ci) { return fl_criterion_open(name, ci); }

/* ---- counts ------------------------------------------------------------- */

static void test_counts(void **state) {
    (void)state;
    const char *width[] = { "magnitude-sp", "wanda-sp", "flap" }, *depth[] = { "block-influence", "angular", "layer-ppl" };
    const double fr[] = { 0.125, 0.25, 0.375, 0.5, 0.7 };
    fl_model m;
    make_model(&m, FL_LLAMA, 4, 8, 4, 48, 11);   /* 4 groups of 2 query heads */
    int32_t *tok = tokens(NWIN * TT, 5);
    float *X = embed(&m, tok);
    for (int f = 0; f < 5; f++) {
        for (int c = 0; c < 3; c++)
            for (int s = FL_STRUCT_HEADS; s <= FL_STRUCT_CHANNELS; s++) {
                fl_crit_inst ci;
                assert_int_equal(open_crit(width[c], &ci), 0);
                fl_model out;
                fl_struct_report rep;
                const int n = s == FL_STRUCT_HEADS ? 4 : 48, k = (int)floor(fr[f] * n + 0.5);
                int rc = fl_struct_prune(&m, &ci, (fl_structure)s, fr[f], X, tok, NWIN, TT, 2, 0, &out, &rep);
                if (rc != 0) fail_msg("%s %s %g: %s", width[c], fl_structure_name((fl_structure)s), fr[f], fl_errmsg());
                assert_int_equal(rep.k, k);
                assert_int_equal(out.cfg.n_layer, 4);
                assert_int_equal((int)rep.nkeep, 4 * n);
                for (int l = 0; l < 4; l++) {   /* the selection itself: exactly k removed in every block */
                    int z = 0;
                    for (int i = 0; i < n; i++) z += !rep.keep[l * n + i];
                    assert_int_equal(z, k);
                }
                for (int l = 0; l < 4; l++) {
                    const fl_layer *y = &out.layers[l];
                    if (s == FL_STRUCT_HEADS) {
                        /* exactly k groups gone from every block: q, k, v rows and o columns */
                        assert_int_equal(y->q_w->rows, (4 - k) * 2 * 4);
                        assert_int_equal(y->k_w->rows, (4 - k) * 4);
                        assert_int_equal(y->v_w->rows, (4 - k) * 4);
                        assert_int_equal(y->o_w->cols, (4 - k) * 2 * 4);
                        assert_int_equal(y->fc1_w->rows, 48);
                    } else {
                        assert_int_equal(y->fc1_w->rows, 48 - k);
                        assert_int_equal(y->up_w->rows, 48 - k);
                        assert_int_equal(y->fc2_w->cols, 48 - k);
                        assert_int_equal(y->q_w->rows, 32);
                    }
                }
                assert_true(rep.params_after < rep.params_before || k == 0);
                assert_int_equal(rep.params_after, fl_config_num_params(&out.cfg));
                fl_model_free(&out);
                fl_struct_report_free(&rep);
                fl_criterion_close(&ci);
            }
        for (int c = 0; c < 3; c++) {
            fl_crit_inst ci;
            assert_int_equal(open_crit(depth[c], &ci), 0);
            fl_model out;
            fl_struct_report rep;
            const int k = (int)floor(fr[f] * 4 + 0.5);
            if (fl_struct_prune(&m, &ci, FL_STRUCT_LAYERS, fr[f], X, tok, NWIN, TT, 2, 0, &out, &rep) != 0)
                fail_msg("%s %g: %s", depth[c], fr[f], fl_errmsg());
            assert_int_equal(out.cfg.n_layer, 4 - k);
            int z = 0;
            for (int l = 0; l < 4; l++) z += !rep.keep[l];
            assert_int_equal(z, k);
            for (int i = 1; i < out.cfg.n_layer; i++) assert_true(rep.dense_block[i] > rep.dense_block[i - 1]);
            if (c == 1)   /* angular removes a consecutive run */
                for (int i = 1; i < out.cfg.n_layer; i++)
                    assert_true(rep.dense_block[i] - rep.dense_block[i - 1] == 1 || rep.dense_block[i] - rep.dense_block[i - 1] == k + 1);
            /* the kept blocks are the dense ones, unchanged */
            for (int i = 0; i < out.cfg.n_layer; i++)
                assert_memory_equal(out.layers[i].q_w->w, m.layers[rep.dense_block[i]].q_w->w, sizeof(float) * out.layers[i].q_w->n);
            fl_model_free(&out);
            fl_struct_report_free(&rep);
            fl_criterion_close(&ci);
        }
    }
    free(X);
    free(tok);
    fl_model_free(&m);
}

/* layer-ppl's greedy choice: the first block it removes is the one whose
 * removal alone gives the lowest calibration loss, found here by trying all */
static void test_layer_ppl_greedy(void **state) {
    (void)state;
    fl_model m;
    make_model(&m, FL_LLAMA, 4, 4, 2, 32, 3);
    int32_t *tok = tokens(NWIN * TT, 9);
    float *X = embed(&m, tok);
    double best = 1e30;
    int bl = -1;
    for (int l = 0; l < 4; l++) {
        uint8_t keep[4] = { 1, 1, 1, 1 };
        keep[l] = 0;
        fl_model sm;
        fl_struct_keep k = { .keep_layer = keep };
        assert_int_equal(fl_struct_build(&m, &k, &sm), 0);
        int32_t tg[NWIN * TT];
        for (int i = 0; i < NWIN * TT; i++) tg[i] = i % TT + 1 < TT ? tok[i + 1] : -1;
        fl_fwd a = { .B = NWIN, .T = TT, .tokens = tok, .targets = tg };
        assert_int_equal(fl_forward(&sm, fl_range_whole(&sm), &a, NULL), 0);
        if (a.loss < best) { best = a.loss; bl = l; }
        fl_model_free(&sm);
    }
    fl_crit_inst ci;
    assert_int_equal(open_crit("layer-ppl", &ci), 0);
    fl_model out;
    fl_struct_report rep;
    assert_int_equal(fl_struct_prune(&m, &ci, FL_STRUCT_LAYERS, 0.25, X, tok, NWIN, TT, 2, 0, &out, &rep), 0);
    assert_int_equal(out.cfg.n_layer, 3);
    for (int i = 0; i < 3; i++) assert_int_not_equal(rep.dense_block[i], bl);
    fl_model_free(&out);
    fl_struct_report_free(&rep);
    fl_criterion_close(&ci);
    free(X); free(tok);
    fl_model_free(&m);
}

/* ---- FLAP's compensation ------------------------------------------------- */

typedef struct { fl_site site; int layer; float *dst; } cap_t;
static void cap_hook(void *ctx, int layer, fl_site site, const float *x, int N, int cols) {
    cap_t *c = ctx;
    if (site == c->site && layer == c->layer) memcpy(c->dst, x, sizeof(float) * (size_t)N * cols);
}

/* mean over the calibration tokens of the output projection's output
 * (o for heads, fc2 for channels) at block 0 */
static void proj_mean(fl_model *m, const int32_t *tok, int heads, double *mean) {
    const fl_layer *y = &m->layers[0];
    const fl_param *W = heads ? y->o_w : y->fc2_w, *b = heads ? y->o_b : y->fc2_b;
    const int N = NWIN * TT;
    float *x = malloc(sizeof(float) * (size_t)N * W->cols), *o = malloc(sizeof(float) * (size_t)N * W->rows);
    cap_t c = { heads ? FL_SITE_O : FL_SITE_MLP_OUT, 0, x };
    fl_fwd a = { .B = NWIN, .T = TT, .tokens = tok, .x_out = NULL, .hook = cap_hook, .hook_ctx = &c };
    float *xo = malloc(sizeof(float) * (size_t)N * m->cfg.d);
    a.x_out = xo;
    assert_int_equal(fl_forward(m, (fl_range){ 0, 2, 1, 0 }, &a, NULL), 0);
    fl_linear_forward(W, b, x, o, N);
    for (int r = 0; r < W->rows; r++) {
        mean[r] = 0;
        for (int n = 0; n < N; n++) mean[r] += o[(int64_t)n * W->rows + r];
        mean[r] /= N;
    }
    free(x); free(o); free(xo);
}

static void test_flap_compensation(void **state) {
    (void)state;
    const fl_family fams[] = { FL_LLAMA, FL_GPT2 };
    for (int f = 0; f < 2; f++)
        for (int heads = 0; heads < 2; heads++) {
            fl_model m;
            make_model(&m, fams[f], 2, 4, fams[f] == FL_LLAMA ? 2 : 4, 40, 21 + f);
            int32_t *tok = tokens(NWIN * TT, 4);
            float *X = embed(&m, tok);
            fl_crit_inst ci;
            assert_int_equal(open_crit("flap", &ci), 0);
            fl_model out;
            fl_struct_report rep;
            if (fl_struct_prune(&m, &ci, heads ? FL_STRUCT_HEADS : FL_STRUCT_CHANNELS, 0.5, X, tok, NWIN, TT, 2, 0, &out, &rep) != 0)
                fail_msg("flap: %s", fl_errmsg());
            const int d = m.cfg.d;
            double md[64], mp[64], mz[64];
            proj_mean(&m, tok, heads, md);
            proj_mean(&out, tok, heads, mp);
            /* the compensated output's mean equals the dense one's */
            double scale = 0, err = 0, un = 0;
            for (int r = 0; r < d; r++) { scale = fmax(scale, fabs(md[r])); err = fmax(err, fabs(md[r] - mp[r])); }
            /* and without the compensation it would not: drop the bias added */
            fl_param *b = heads ? out.layers[0].o_b : out.layers[0].fc2_b, *b0 = heads ? m.layers[0].o_b : m.layers[0].fc2_b;
            assert_non_null(b);
            for (int r = 0; r < d; r++) b->w[r] = b0 ? b0->w[r] : 0.0f;
            proj_mean(&out, tok, heads, mz);
            for (int r = 0; r < d; r++) un = fmax(un, fabs(md[r] - mz[r]));
            if (err > 1e-4 * scale) fail_msg("flap %s: output mean off by %g (scale %g)", heads ? "heads" : "channels", err, scale);
            assert_true(un > 100 * err);
            fl_model_free(&out);
            fl_struct_report_free(&rep);
            fl_criterion_close(&ci);
            free(X); free(tok);
            fl_model_free(&m);
        }
}

/* ---- FLAP's global ratio ---------------------------------------------------- */

/* The expected selection computed here from its definition: per block,
 * m_c = Var(X_c) ||W_:,c||^2 over the output projection's input columns
 * (squared for heads), standardised over the block's columns with the
 * n - 1 std, a head's score the mean of its group's columns; then the k
 * lowest of the model, lowest first, a block's last structure never. */
static void global_expect(fl_model *m, const int32_t *tok, int heads, int k, uint8_t *keep, int *per_block) {
    const fl_config *c = &m->cfg;
    const int L = c->n_layer, N = NWIN * TT, n = heads ? c->n_kv_head : c->d_ff;
    const int per = heads ? c->n_head / c->n_kv_head * c->head_dim : 1;
    double *sc = calloc((size_t)L * n, sizeof(double));
    for (int l = 0; l < L; l++) {
        const fl_param *W = heads ? m->layers[l].o_w : m->layers[l].fc2_w;
        const int C = W->cols;
        float *x = malloc(sizeof(float) * (size_t)N * C), *xo = malloc(sizeof(float) * (size_t)N * c->d);
        cap_t cp = { heads ? FL_SITE_O : FL_SITE_MLP_OUT, l, x };
        fl_fwd a = { .B = NWIN, .T = TT, .tokens = tok, .x_out = xo, .hook = cap_hook, .hook_ctx = &cp };
        assert_int_equal(fl_forward(m, (fl_range){ 0, 2 * (l + 1), 1, 0 }, &a, NULL), 0);
        double *mc = calloc((size_t)C, sizeof(double)), mean = 0, var = 0;
        for (int col = 0; col < C; col++) {
            double mu = 0, v = 0, w2 = 0;
            for (int t = 0; t < N; t++) mu += x[(int64_t)t * C + col];
            mu /= N;
            for (int t = 0; t < N; t++) v += (x[(int64_t)t * C + col] - mu) * (x[(int64_t)t * C + col] - mu);
            v /= N;
            for (int r = 0; r < W->rows; r++) w2 += (double)W->w[(int64_t)r * C + col] * W->w[(int64_t)r * C + col];
            mc[col] = heads ? (v * w2) * (v * w2) : v * w2;
            mean += mc[col];
        }
        mean /= C;
        for (int col = 0; col < C; col++) var += (mc[col] - mean) * (mc[col] - mean);
        const double sd = sqrt(var / (C - 1));
        for (int i = 0; i < n; i++) {
            double t = 0;
            for (int col = i * per; col < (i + 1) * per; col++) t += (mc[col] - mean) / sd;
            sc[l * n + i] = t / per;
        }
        free(mc); free(x); free(xo);
    }
    for (int i = 0; i < L * n; i++) keep[i] = 1;
    for (int l = 0; l < L; l++) per_block[l] = 0;
    for (int r = 0; r < k; r++) {   /* the lowest still eligible, by selection: no sort to share with the code */
        int lo = -1;
        for (int i = 0; i < L * n; i++)
            if (keep[i] && per_block[i / n] < n - 1 && (lo < 0 || sc[i] <= sc[lo])) lo = i;
        keep[lo] = 0;
        per_block[lo / n]++;
    }
    free(sc);
}

static void test_flap_global(void **state) {
    (void)state;
    const double fr[] = { 0.125, 0.25, 0.375, 0.6 };
    int uneven = 0;
    for (int heads = 0; heads < 2; heads++)
        for (int f = 0; f < 4; f++) {
            fl_model m;
            make_model(&m, FL_LLAMA, 3, 8, 4, 24, 31 + f);   /* 4 groups of 2 heads, 24 channels, 3 blocks */
            int32_t *tok = tokens(NWIN * TT, 6 + f);
            float *X = embed(&m, tok);
            fl_crit_inst ci;
            assert_int_equal(open_crit("flap:ratio=global", &ci), 0);
            fl_model out;
            fl_struct_report rep;
            if (fl_struct_prune(&m, &ci, heads ? FL_STRUCT_HEADS : FL_STRUCT_CHANNELS, fr[f], X, tok, NWIN, TT, 2, 0, &out, &rep) != 0)
                fail_msg("flap global: %s", fl_errmsg());
            const int n = heads ? 4 : 24, k = (int)floor(fr[f] * 3 * n + 0.5);
            uint8_t want[3 * 24];
            int pb[3];
            global_expect(&m, tok, heads, k, want, pb);
            assert_int_equal(rep.k, k);
            assert_true(rep.global);
            assert_memory_equal(rep.keep, want, (size_t)3 * n);
            int tot = 0;
            for (int l = 0; l < 3; l++) {
                /* exact per-layer counts, in the report and in the model's shapes */
                assert_int_equal(rep.removed_block[l], pb[l]);
                assert_true(pb[l] <= n - 1);
                tot += pb[l];
                const fl_layer *y = &out.layers[l];
                if (heads) {
                    assert_int_equal(fl_layer_kv(&out.cfg, l), 4 - pb[l]);
                    assert_int_equal(y->q_w->rows, (4 - pb[l]) * 2 * 4);
                    assert_int_equal(y->k_w->rows, (4 - pb[l]) * 4);
                    assert_int_equal(y->o_w->cols, (4 - pb[l]) * 2 * 4);
                } else {
                    assert_int_equal(fl_layer_ff(&out.cfg, l), 24 - pb[l]);
                    assert_int_equal(y->fc1_w->rows, 24 - pb[l]);
                    assert_int_equal(y->up_w->rows, 24 - pb[l]);
                    assert_int_equal(y->fc2_w->cols, 24 - pb[l]);
                }
                if (pb[l] != pb[0]) uneven = 1;
            }
            assert_int_equal(tot, k);
            assert_int_equal(rep.params_after, fl_config_num_params(&out.cfg));
            assert_int_equal(fl_model_num_params(&out), fl_config_num_params(&out.cfg));
            fl_model_free(&out);
            fl_struct_report_free(&rep);
            fl_criterion_close(&ci);
            free(X); free(tok);
            fl_model_free(&m);
        }
    assert_true(uneven);   /* the global ratio did give blocks different counts */
    /* one kept per block at least: 0.9 of 12 groups would leave a block none */
    fl_model m;
    make_model(&m, FL_LLAMA, 3, 8, 4, 24, 1);
    int32_t *tok = tokens(NWIN * TT, 2);
    float *X = embed(&m, tok);
    fl_crit_inst ci;
    fl_model out;
    fl_struct_report rep;
    assert_int_equal(open_crit("flap:ratio=global", &ci), 0);
    assert_int_equal(fl_struct_prune(&m, &ci, FL_STRUCT_HEADS, 0.9, X, tok, NWIN, TT, 2, 0, &out, &rep), -1);
    assert_non_null(strstr(fl_errmsg(), "one kept per block"));
    assert_null(strchr(fl_errmsg(), '\n'));
    fl_struct_report_free(&rep);
    fl_criterion_close(&ci);
    assert_int_equal(open_crit("flap:ratio=local", &ci), -1);
    assert_non_null(strstr(fl_errmsg(), "uniform"));
    free(X); free(tok);
    fl_model_free(&m);
}

/* ---- activation drift of a structured model ----------------------------------- */

/* Block outputs against the dense stream after the span each block stands
 * for, computed here by whole forward passes; the linears listed are the
 * ones whose output kept its width, with a local drift where the input did */
static void test_struct_drift(void **state) {
    (void)state;
    fl_model m, sm;
    make_model(&m, FL_LLAMA, 3, 8, 4, 24, 41);
    uint8_t kl[3] = { 1, 0, 1 }, ch[3 * 24];
    for (int i = 0; i < 3 * 24; i++) ch[i] = i % 3 != 0;   /* 16 of 24 channels */
    fl_struct_keep k = { .keep_layer = kl, .keep_ch = ch };
    assert_int_equal(fl_struct_build(&m, &k, &sm), 0);
    const int db[2] = { 0, 2 }, end[2] = { 2, 3 };   /* block 0 stands for dense 0-1, block 1 for dense 2 */
    const int nw = 4, N = nw * TT, d = m.cfg.d;
    int32_t *tok = tokens(N, 8);
    fl_drift_result r;
    if (fl_drift_measure_mapped(&sm, &m, db, tok, nw, TT, 3, &r) != 0) fail_msg("%s", fl_errmsg());
    float *xp = malloc(sizeof(float) * (size_t)N * d), *xd = malloc(sizeof(float) * (size_t)N * d);
    int blocks = 0, lins = 0;
    for (int i = 0; i < r.n; i++) {
        const fl_drift_entry *e = &r.e[i];
        if (!e->block) {
            lins++;
            /* gate and up lost rows: never listed; down lost its input: no local */
            assert_null(strstr(e->name, ".gate"));
            assert_null(strstr(e->name, ".up"));
            if (strstr(e->name, ".down")) assert_true(isnan(e->local));
            else assert_false(isnan(e->local));
            continue;
        }
        const int b = blocks++;
        fl_fwd ap = { .B = nw, .T = TT, .tokens = tok, .x_out = xp }, ad = { .B = nw, .T = TT, .tokens = tok, .x_out = xd };
        assert_int_equal(fl_forward(&sm, (fl_range){ 0, 2 * (b + 1), 1, 0 }, &ap, NULL), 0);
        assert_int_equal(fl_forward(&m, (fl_range){ 0, 2 * end[b], 1, 0 }, &ad, NULL), 0);
        double num = 0, den = 0;
        for (int64_t t = 0; t < (int64_t)N * d; t++) { num += ((double)xp[t] - xd[t]) * ((double)xp[t] - xd[t]); den += (double)xd[t] * xd[t]; }
        printf("# structured drift, block %d: %.6g (direct %.6g)\n", b, e->accumulated, num / den);
        assert_true(fabs(e->accumulated - num / den) <= 1e-4 * (num / den) + 1e-9);
        assert_true(e->accumulated > 0);
    }
    assert_int_equal(blocks, 2);
    assert_int_equal(lins, 2 * 5);   /* q, k, v, o, down per block */
    assert_true(r.out == r.e[r.n - 1].accumulated);
    fl_drift_free(&r);
    /* a map out of order: one clear line */
    const int bad[2] = { 0, 5 };
    assert_int_equal(fl_drift_measure_mapped(&sm, &m, bad, tok, nw, TT, 3, &r), -1);
    assert_null(strchr(fl_errmsg(), '\n'));
    free(xp); free(xd); free(tok);
    fl_model_free(&sm);
    fl_model_free(&m);
}

/* ---- bad input ------------------------------------------------------------ */

static void test_bad_input(void **state) {
    (void)state;
    fl_model m;
    make_model(&m, FL_LLAMA, 2, 4, 2, 32, 1);
    int32_t *tok = tokens(NWIN * TT, 2);
    float *X = embed(&m, tok);
    fl_crit_inst ci;
    fl_model out;
    fl_struct_report rep;
    assert_int_equal(open_crit("flap", &ci), 0);
    assert_int_equal(fl_struct_prune(&m, &ci, FL_STRUCT_HEADS, 0.8, X, tok, NWIN, TT, 2, 0, &out, &rep), -1);
    assert_non_null(strstr(fl_errmsg(), "removes all 2 key/value head groups"));
    fl_struct_report_free(&rep);
    assert_null(strchr(fl_errmsg(), '\n'));
    assert_int_equal(fl_struct_prune(&m, &ci, FL_STRUCT_LAYERS, 0.5, X, tok, NWIN, TT, 2, 0, &out, &rep), -1);
    assert_non_null(strstr(fl_errmsg(), "removes heads, channels only"));
    /* a fraction that rounds to no structure at all: refused, not a dense
     * model labelled pruned (0.2 of 2 groups rounds to 0; 0.25 to 1) */
    assert_int_equal(fl_struct_prune(&m, &ci, FL_STRUCT_HEADS, 0.2, X, tok, NWIN, TT, 2, 0, &out, &rep), -1);
    assert_non_null(strstr(fl_errmsg(), "removes none of the 2 key/value head groups"));
    assert_non_null(strstr(fl_errmsg(), "the least that removes one is 0.25"));
    fl_struct_report_free(&rep);
    fl_criterion_close(&ci);
    /* the same with FLAP's global ratio: 0.005 of 2 blocks x 32 channels rounds to 0, 0.01 to 1 */
    assert_int_equal(open_crit("flap:ratio=global", &ci), 0);
    assert_int_equal(fl_struct_prune(&m, &ci, FL_STRUCT_CHANNELS, 0.005, X, tok, NWIN, TT, 2, 0, &out, &rep), -1);
    assert_non_null(strstr(fl_errmsg(), "removes none of the model's 64"));
    fl_struct_report_free(&rep);
    assert_int_equal(fl_struct_prune(&m, &ci, FL_STRUCT_CHANNELS, 0.01, X, tok, NWIN, TT, 2, 0, &out, &rep), 0);
    assert_int_equal(rep.k, 1);
    fl_model_free(&out);
    fl_struct_report_free(&rep);
    fl_criterion_close(&ci);
    assert_int_equal(open_crit("wanda", &ci), 0);
    assert_int_equal(fl_struct_prune(&m, &ci, FL_STRUCT_CHANNELS, 0.5, X, tok, NWIN, TT, 2, 0, &out, &rep), -1);
    assert_non_null(strstr(fl_errmsg(), "prunes single weights"));
    fl_criterion_close(&ci);
    assert_int_equal(open_crit("block-influence", &ci), 0);
    assert_int_equal(fl_struct_prune(&m, &ci, FL_STRUCT_LAYERS, 0.75, X, tok, NWIN, TT, 2, 0, &out, &rep), -1);
    assert_non_null(strstr(fl_errmsg(), "removes all 2 blocks of the model"));
    fl_struct_report_free(&rep);
    fl_criterion_close(&ci);
    fl_structure s;
    assert_int_equal(fl_structure_parse("rows", &s), -1);
    free(X); free(tok);
    fl_model_free(&m);
    /* a gpt2 / opt config.json whose freelunch "head_dim" does not describe
     * fewer heads of a size dividing the hidden size: one line naming it */
    char dir[256], cfgp[300];
    tu_tmpdir(dir, sizeof dir);
    snprintf(cfgp, sizeof cfgp, "%s/config.json", dir);
    const char *bad[] = {
        "{\"model_type\": \"gpt2\", \"n_embd\": 32, \"n_layer\": 1, \"n_head\": 2, \"n_positions\": 8, \"vocab_size\": 9, \"head_dim\": 5}",
        "{\"model_type\": \"gpt2\", \"n_embd\": 32, \"n_layer\": 1, \"n_head\": 4, \"n_positions\": 8, \"vocab_size\": 9, \"head_dim\": 16}",
        "{\"model_type\": \"opt\", \"hidden_size\": 32, \"num_hidden_layers\": 1, \"num_attention_heads\": 2, \"ffn_dim\": 8, "
        "\"max_position_embeddings\": 8, \"vocab_size\": 9, \"head_dim\": -1}",
    };
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(cfgp, "w");
        assert_non_null(f);
        fputs(bad[i], f);
        fclose(f);
        fl_config c;
        assert_int_equal(fl_config_load_file(&c, cfgp), -1);
        assert_non_null(strstr(fl_errmsg(), "\"head_dim\""));
        assert_non_null(strstr(fl_errmsg(), cfgp));
        assert_null(strchr(fl_errmsg(), '\n'));
    }
    tu_rmrf(dir);
}

/* ---- the smaller model against the oracle -------------------------------- */

/* comp: FLAP-style bias additions to o (when heads are removed) and fc2
 * (channels), which the oracle adds itself; a llama gets the biases of
 * attention_bias / mlp_bias that way, saved and reloaded */
static void oracle_case(fl_family fam, int H, int KV, const uint8_t *kl, const uint8_t *kkv, const uint8_t *kch, int comp,
                        const char *tag) {
    if (access(PY, X_OK) != 0) fail_msg("%s missing: the oracle needs Debian's python3-torch (make deps)", PY);
    if (access(REF, R_OK) != 0) fail_msg("%s not found: run from the repository root", REF);
    const int L = 3, F = 24;
    fl_model m;
    make_model(&m, fam, L, H, KV, F, 77);
    char dir[256], ddir[300], sdir[300], rmf[300], tokf[300], outf[300], cmd[2000];
    tu_tmpdir(dir, sizeof dir);
    snprintf(ddir, sizeof ddir, "%s/dense", dir);
    snprintf(sdir, sizeof sdir, "%s/small", dir);
    snprintf(rmf, sizeof rmf, "%s/rm.json", dir);
    snprintf(tokf, sizeof tokf, "%s/tok.safetensors", dir);
    snprintf(outf, sizeof outf, "%s/out.safetensors", dir);
    assert_int_equal(fl_model_save(&m, ddir), 0);
    fl_model sm;
    const int d = m.cfg.d;
    float co[3 * 32], cf[3 * 32];
    for (int i = 0; i < L * d; i++) { co[i] = 0.3f * sinf(0.7f * i + 1); cf[i] = 0.2f * cosf(1.3f * i); }
    fl_struct_keep k = { .keep_layer = kl, .keep_kv = kkv, .keep_ch = kch, .comp_o = comp && kkv ? co : NULL,
                         .comp_fc2 = comp && kch ? cf : NULL };
    assert_int_equal(fl_struct_build(&m, &k, &sm), 0);
    if (fl_model_save(&sm, sdir) != 0) fail_msg("%s: save: %s", tag, fl_errmsg());
    /* the removal, written for the oracle to apply itself */
    FILE *f = fopen(rmf, "w");
    assert_non_null(f);
    fprintf(f, "{\"layers\": [");
    int first = 1;
    for (int l = 0; l < L; l++) if (!kl || kl[l]) { fprintf(f, "%s%d", first ? "" : ",", l); first = 0; }
    for (int pass = 0; pass < 2; pass++) {
        const int n = pass ? F : KV;
        const uint8_t *keep = pass ? kch : kkv;
        fprintf(f, "], \"%s\": [", pass ? "ch" : "kv");
        first = 1;
        for (int l = 0; l < L; l++) {
            if (kl && !kl[l]) continue;
            fprintf(f, "%s[", first ? "" : ",");
            first = 0;
            int f1 = 1;
            for (int i = 0; i < n; i++) if (!keep || keep[l * n + i]) { fprintf(f, "%s%d", f1 ? "" : ",", i); f1 = 0; }
            fprintf(f, "]");
        }
    }
    fprintf(f, "]");
    for (int pass = 0; pass < 2; pass++) {
        const float *cv = pass ? k.comp_fc2 : k.comp_o;
        if (!cv) continue;
        fprintf(f, ", \"%s\": [", pass ? "comp_fc2" : "comp_o");
        first = 1;
        for (int l = 0; l < L; l++) {
            if (kl && !kl[l]) continue;
            fprintf(f, "%s[", first ? "" : ",");
            first = 0;
            for (int r = 0; r < d; r++) fprintf(f, "%s%.9g", r ? "," : "", (double)cv[l * d + r]);
            fprintf(f, "]");
        }
        fprintf(f, "]");
    }
    fprintf(f, "}\n");
    fclose(f);
    const int B = 2, T = 7, N = B * T, V = m.cfg.vocab;
    int32_t *tok = tokens(N, 3);
    float tf[2 * 7];
    for (int i = 0; i < N; i++) tf[i] = (float)tok[i];
    fl_st_out to = { "tokens", tf, 2, { B, T } };
    assert_int_equal(fl_st_write(tokf, &to, 1), 0);
    snprintf(cmd, sizeof cmd, "%s %s '%s' '%s' '%s' '%s' '%s'", PY, REF, ddir, rmf, sdir, tokf, outf);
    int rc = system(cmd);
    if (rc != 0) fail_msg("%s: `%s` failed (status %d)", tag, cmd, rc);
    /* freelunch's logits from the saved model, loaded back */
    fl_model ld;
    if (fl_model_load(&ld, sdir) != 0) fail_msg("%s: load: %s", tag, fl_errmsg());
    float *lg = malloc(sizeof(float) * (size_t)N * V);
    int32_t tg[14];
    for (int i = 0; i < N; i++) tg[i] = -1;
    fl_fwd a = { .B = B, .T = T, .tokens = tok, .targets = tg, .logits = lg };
    assert_int_equal(fl_forward(&ld, fl_range_whole(&ld), &a, NULL), 0);
    fl_st_file st;
    if (fl_st_open(&st, outf) != 0) fail_msg("%s", fl_errmsg());
    const char *names[] = { "removed", "saved" };
    for (int i = 0; i < 2; i++) {
        const fl_st_tensor *t = fl_st_find(&st, names[i]);
        assert_non_null(t);
        assert_int_equal(t->numel, (int64_t)N * V);
        float *ref = malloc(sizeof(float) * (size_t)t->numel);
        assert_int_equal(fl_st_read_f32(&st, t, ref), 0);
        double e = tu_relerr(lg, ref, (size_t)N * V, 1e-6);
        printf("# %s: logits vs oracle (%s): relative error %.3g\n", tag, names[i], e);
        if (e > 1e-4) fail_msg("%s: logits differ from the oracle's (%s) by %g", tag, names[i], e);
        free(ref);
    }
    fl_st_close(&st);
    free(lg); free(tok);
    fl_model_free(&ld);
    fl_model_free(&sm);
    fl_model_free(&m);
    tu_rmrf(dir);
}

static void test_oracle_llama_gqa(void **state) {
    (void)state;
    /* 8 query heads in 4 groups of 2; keep groups {0, 2} in every block,
     * 18 of 24 channels, and blocks 0 and 2 */
    uint8_t kv[3 * 4] = { 1, 0, 1, 0, 0, 1, 1, 0, 1, 1, 0, 0 }, ch[3 * 24], kl[3] = { 1, 0, 1 };
    /* a different set of 18 channels in each block (the counts agree: uniform) */
    for (int l = 0; l < 3; l++)
        for (int i = 0; i < 24; i++) ch[l * 24 + i] = (i * 7 + l) % 4 != 0;
    oracle_case(FL_LLAMA, 8, 4, NULL, kv, NULL, 0, "llama GQA heads");
    oracle_case(FL_LLAMA, 8, 4, NULL, NULL, ch, 0, "llama channels");
    oracle_case(FL_LLAMA, 8, 4, kl, NULL, NULL, 0, "llama layers");
    oracle_case(FL_LLAMA, 8, 4, kl, kv, ch, 0, "llama all three");
    /* FLAP's compensation: attention_bias (q/k/v/o) and mlp_bias
     * (gate/up/down) appear in the saved config and load back */
    oracle_case(FL_LLAMA, 8, 4, NULL, kv, NULL, 1, "llama GQA heads, o bias compensated");
    oracle_case(FL_LLAMA, 8, 4, NULL, NULL, ch, 1, "llama channels, down bias compensated");
    oracle_case(FL_LLAMA, 8, 4, kl, kv, ch, 1, "llama all three, both compensated");
    /* per-layer sizes (FLAP's global ratio): 1, 3 and 2 groups, 12, 24 and
     * 20 channels, saved with freelunch's layer_* keys */
    uint8_t kvu[3 * 4] = { 0, 0, 1, 0, 1, 1, 1, 0, 0, 1, 0, 1 }, chu[3 * 24];
    for (int l = 0; l < 3; l++)
        for (int i = 0; i < 24; i++) chu[l * 24 + i] = l == 0 ? i % 2 : l == 1 ? 1 : i % 6 != 1;
    oracle_case(FL_LLAMA, 8, 4, NULL, kvu, chu, 1, "llama per-layer heads and channels, compensated");
    oracle_case(FL_LLAMA, 8, 4, kl, kvu, NULL, 0, "llama per-layer heads, a block removed");
}

static void test_oracle_gpt2_opt(void **state) {
    (void)state;
    uint8_t ch[3 * 24], kl[3] = { 0, 1, 1 }, kv[3 * 4] = { 0, 1, 1, 0, 1, 0, 0, 1, 1, 1, 0, 0 };
    for (int l = 0; l < 3; l++)
        for (int i = 0; i < 24; i++) ch[l * 24 + i] = (i * 5 + l) % 3 != 0;
    /* heads: 2 of 4 in every block (a different pair each), from gpt2's
     * fused c_attn and OPT's q/k/v with biases; the config carries
     * freelunch's head_dim (HF's classes derive hidden / heads) */
    oracle_case(FL_GPT2, 4, 4, NULL, kv, NULL, 0, "gpt2 heads");
    oracle_case(FL_GPT2, 4, 4, kl, kv, ch, 1, "gpt2 all three, compensated");
    oracle_case(FL_OPT, 4, 4, NULL, kv, NULL, 1, "opt heads, compensated");
    uint8_t kvu[3 * 4] = { 1, 0, 0, 0, 1, 1, 1, 1, 0, 1, 1, 0 }, chu[3 * 24];
    for (int l = 0; l < 3; l++)
        for (int i = 0; i < 24; i++) chu[l * 24 + i] = l == 1 ? i < 5 : (i + l) % 4 != 0;
    oracle_case(FL_GPT2, 4, 4, NULL, kvu, chu, 1, "gpt2 per-layer heads and channels, compensated");
    oracle_case(FL_OPT, 4, 4, NULL, kvu, chu, 0, "opt per-layer heads and channels");
    oracle_case(FL_GPT2, 4, 4, NULL, NULL, ch, 0, "gpt2 channels");
    oracle_case(FL_GPT2, 4, 4, kl, NULL, ch, 1, "gpt2 layers+channels, compensated");
    oracle_case(FL_OPT, 4, 4, NULL, NULL, ch, 1, "opt channels, compensated");
    oracle_case(FL_OPT, 4, 4, kl, NULL, NULL, 0, "opt layers");
}


/* ---- hidden-state distillation's gradient ----------------------------------- */

typedef struct {
    fl_model *m;
    fl_hidden_run run;
    const int32_t *tok, *tg;
    const float *soft, *th;
    float w;
    int ce;
} hd_ctx;

static double hd_loss(hd_ctx *c) {
    double loss, mse;
    assert_int_equal(fl_hidden_forward(&c->run, c->m, c->tok, c->tg, c->soft, NWIN, TT, c->th, c->w, c->ce, &loss, &mse), 0);
    for (int i = 0; i <= c->run.L; i++) fl_acts_release(c->run.acts[i]);
    return loss;
}

/* central differences on ~16 coordinates of p, against the analytic
 * gradient: within 3% of the gradient's largest entry (tests/test_grad.c's
 * tolerance) */
static double fd_worst(hd_ctx *c, fl_param *p, float h) {
    double gmax = 1e-12, worst = 0;
    for (int64_t i = 0; i < p->n; i++) gmax = fmax(gmax, fabs(p->g[i]));
    int64_t step = p->n > 16 ? p->n / 16 : 1;
    for (int64_t i = step / 2; i < p->n; i += step) {
        float old = p->w[i];
        p->w[i] = old + h; double lp = hd_loss(c);
        p->w[i] = old - h; double lm = hd_loss(c);
        p->w[i] = old;
        worst = fmax(worst, fabs((lp - lm) / (2.0 * h) - p->g[i]) / gmax);
    }
    return worst;
}

static void test_hidden_distill_grad(void **state) {
    (void)state;
    fl_model dense, m;
    make_model(&dense, FL_LLAMA, 3, 4, 2, 32, 31);
    /* the student: block 1 removed, then perturbed so it differs from the teacher */
    uint8_t keep[3] = { 1, 0, 1 };
    fl_struct_keep k = { .keep_layer = keep };
    assert_int_equal(fl_struct_build(&dense, &k, &m), 0);
    for (int i = 0; i < m.n_params; i++) {
        float *t = malloc(sizeof(float) * (size_t)m.params[i].n);
        tu_fill(t, (size_t)m.params[i].n, 0.3f, 100 + i);
        for (int64_t j = 0; j < m.params[i].n; j++) m.params[i].w[j] *= 1.0f + t[j];
        free(t);
    }
    int32_t *tok = tokens(NWIN * TT, 8);
    int32_t tg[NWIN * TT];
    for (int i = 0; i < NWIN * TT; i++) tg[i] = i % TT + 1 < TT ? tok[i + 1] : -1;
    const int map[2] = { 2, 3 };   /* block 0 stands for dense blocks 0-1, block 1 for dense block 2 */
    float *th = malloc(sizeof(float) * 2 * NWIN * TT * 32);
    assert_int_equal(fl_hidden_teacher(&dense, tok, NWIN, TT, map, 2, th), 0);
    /* the teacher's states are its own forward's: block 2's output is the last one */
    {
        float *x = malloc(sizeof(float) * NWIN * TT * 32);
        fl_fwd a = { .B = NWIN, .T = TT, .tokens = tok, .x_out = x };
        assert_int_equal(fl_forward(&dense, (fl_range){ 0, 6, 1, 0 }, &a, NULL), 0);
        assert_true(tu_relerr(th + NWIN * TT * 32, x, NWIN * TT * 32, 1e-6) < 1e-6);
        free(x);
    }
    float *soft = malloc(sizeof(float) * NWIN * TT * 97);
    assert_int_equal(fl_retrain_soft_targets(&dense, tok, tg, NWIN, TT, soft), 0);
    fl_model_set_all_trainable(&m, 1);
    /* alone; added to cross-entropy with a weight that makes both count;
     * added to the KL of --distill */
    for (int mode = 0; mode < 3; mode++) {
        hd_ctx c = { .m = &m, .tok = tok, .tg = tg, .soft = mode == 2 ? soft : NULL, .th = th, .w = 1, .ce = mode > 0 };
        if (mode) {
            double loss, mse;
            assert_int_equal(fl_hidden_forward(&c.run, &m, tok, tg, c.soft, NWIN, TT, th, 1, 1, &loss, &mse), 0);
            for (int i = 0; i <= c.run.L; i++) fl_acts_release(c.run.acts[i]);
            assert_true(mse > 0);
            c.w = (float)((loss - mse) / mse);   /* the MSE term as large as the next-token loss */
        }
        fl_model_zero_grad(&m);
        double loss, mse;
        assert_int_equal(fl_hidden_forward(&c.run, &m, tok, tg, c.soft, NWIN, TT, th, c.w, c.ce, &loss, &mse), 0);
        assert_int_equal(fl_hidden_backward(&c.run, &m), 0);
        const char *names[] = { "embed.weight", "layers.0.q.weight", "layers.0.attn_norm.weight", "layers.0.fc2.weight",
                                "layers.1.v.weight", "layers.1.up.weight", "final_norm.weight" };
        for (int q = 0; q < 7; q++) {
            if (mode == 0 && !strcmp(names[q], "final_norm.weight")) continue;   /* alone: no head, no gradient */
            fl_param *p = fl_model_find(&m, names[q]);
            assert_non_null(p);
            double e = fd_worst(&c, p, 1e-2f);
            if (e > 3e-2) fail_msg("hidden distillation mode %d: %s gradient off by %.3g of its scale", mode, names[q], e);
        }
        fl_hidden_free(&c.run);
    }
    /* a map outside the teacher is one clear error */
    const int bad[2] = { 2, 4 };
    assert_int_equal(fl_hidden_teacher(&dense, tok, NWIN, TT, bad, 2, th), -1);
    free(soft); free(th); free(tok);
    fl_model_free(&m);
    fl_model_free(&dense);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts),
        cmocka_unit_test(test_layer_ppl_greedy),
        cmocka_unit_test(test_flap_compensation),
        cmocka_unit_test(test_flap_global),
        cmocka_unit_test(test_struct_drift),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_oracle_llama_gqa),
        cmocka_unit_test(test_oracle_gpt2_opt),
        cmocka_unit_test(test_hidden_distill_grad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
