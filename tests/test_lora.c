/* LoRA and MaskLoRA retraining (the paper's retraining baselines): the
 * low-rank linear kernels and a whole model with adapters against finite
 * differences (with and without masks, with --distill's soft targets) and
 * against PyTorch; with B = 0 the first forward is the pruned model's;
 * LoRA's training equals the old merged-weight formulation step for step;
 * MaskLoRA keeps every pruned weight exactly 0; both lower the calibration
 * cross-entropy; their working sets sit below full retraining and match
 * fl_lora_predict_working; the tracked memory is all given back; the
 * option parser. */
#include "tests/testutil.h"
#include "model/train.h"
#include "model/rng.h"
#include "model/adamw.h"
#include "model/alloc.h"
#include "model/err.h"
#include "reconstructors/lora.h"
#include "model/gemm.h"
#include "model/ops.h"
#include "model/safetensors.h"
#include "model/checkpoint.h"
#include <unistd.h>

static fl_model g_m;
static float *g_dense;          /* the trained dense weights (all of g_m.data) */
#define NWIN 16
#define TT 32
static int32_t g_tok[NWIN * TT];

static fl_model g_teacher;    /* the dense model, for --distill */
static float *g_soft;         /* its probabilities over the small batch */

static void small_targets(int32_t *tg, int B, int T) {
    for (int w = 0; w < B; w++)
        for (int t = 0; t < T; t++) tg[w * T + t] = t + 1 < T ? g_tok[w * T + t + 1] : -1;
}

static int setup(void **st) {
    (void)st;
    int64_t n = 8000;
    int32_t *t = malloc(sizeof(int32_t) * n);
    tu_markov(t, n, 1);
    int rc = tu_trained_llama(&g_m, 2, 120, t, n);
    free(t);
    if (rc != 0) return -1;
    const fl_config c = g_m.cfg;
    g_dense = malloc(sizeof(float) * g_m.n_floats);
    memcpy(g_dense, g_m.data, sizeof(float) * g_m.n_floats);
    tu_markov(g_tok, NWIN * TT, 77);   /* the calibration windows */
    /* the dense teacher for --distill, and its probabilities on the small batch */
    if (fl_model_create(&g_teacher, &c) != 0) return -1;
    memcpy(g_teacher.data, g_dense, sizeof(float) * g_m.n_floats);
    int32_t stg[2 * 8];
    small_targets(stg, 2, 8);
    g_soft = malloc(sizeof(float) * 2 * 8 * c.vocab);
    return fl_retrain_soft_targets(&g_teacher, g_tok, stg, 2, 8, g_soft);
}

static int teardown(void **st) {
    (void)st;
    fl_model_free(&g_m);
    fl_model_free(&g_teacher);
    free(g_dense);
    free(g_soft);
    return 0;
}

/* Dense weights back, then a 50% mask per row (the smallest |w|) on every
 * block linear. */
static void prune50(void) {
    for (int i = 0; i < g_m.n_params; i++) fl_param_set_mask(&g_m.params[i], NULL);
    memcpy(g_m.data, g_dense, sizeof(float) * g_m.n_floats);
    for (int l = 0; l < g_m.cfg.n_layer; l++) {
        fl_param *w[7];
        int k = fl_layer_linears(&g_m, l, w, NULL, NULL);
        for (int j = 0; j < k; j++) {
            fl_param *p = w[j];
            uint8_t *mk = malloc((size_t)p->n);
            for (int r = 0; r < p->rows; r++) {
                const float *row = p->w + (int64_t)r * p->cols;
                for (int c = 0; c < p->cols; c++) {
                    int rank = 0;   /* how many entries of the row are smaller (ties by index) */
                    for (int c2 = 0; c2 < p->cols; c2++) {
                        float a = fabsf(row[c2]), b = fabsf(row[c]);
                        rank += a < b || (a == b && c2 < c);
                    }
                    mk[(int64_t)r * p->cols + c] = rank >= p->cols / 2;
                }
            }
            assert_int_equal(fl_param_set_mask(p, mk), 0);
            free(mk);
        }
    }
}

static double ce(int nwin, int T, float *logits) {
    int32_t *tg = malloc(sizeof(int32_t) * nwin * T);
    for (int w = 0; w < nwin; w++)
        for (int t = 0; t < T; t++) tg[w * T + t] = t + 1 < T ? g_tok[w * T + t + 1] : -1;
    fl_fwd a = { .B = nwin, .T = T, .tokens = g_tok, .targets = tg, .logits = logits };
    assert_int_equal(fl_forward(&g_m, fl_range_whole(&g_m), &a, NULL), 0);
    free(tg);
    return a.loss;
}

/* Every block linear's pruned weights are exactly 0; returns how many are nonzero. */
static int64_t nonzero_pruned(void) {
    int64_t z = 0;
    for (int l = 0; l < g_m.cfg.n_layer; l++) {
        fl_param *w[7];
        int k = fl_layer_linears(&g_m, l, w, NULL, NULL);
        for (int j = 0; j < k; j++) {
            assert_non_null(w[j]->mask);
            for (int64_t q = 0; q < w[j]->n; q++) z += !w[j]->mask[q] && w[j]->w[q] != 0.0f;
        }
    }
    return z;
}

/* ---- the low-rank linear kernels ---------------------------------------- */

/* Loss of one linear: sum(y * R) so that dL/dy = R. */
static double lin_loss(fl_param *w, const float *x, const float *R, float *y, int N) {
    fl_linear_forward(w, NULL, x, y, N);
    double s = 0;
    for (int64_t i = 0; i < (int64_t)N * w->rows; i++) s += (double)y[i] * R[i];
    return s;
}

/* Central differences of lin_loss over every entry of v against g. */
static double lin_fd(fl_param *w, const float *x, const float *R, float *y, int N, float *v, const float *g, int64_t n) {
    double worst = 0, gmax = 1e-12;
    for (int64_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
    for (int64_t i = 0; i < n; i++) {
        float v0 = v[i], h = 1e-2f;
        v[i] = v0 + h; double lp = lin_loss(w, x, R, y, N);
        v[i] = v0 - h; double lm = lin_loss(w, x, R, y, N);
        v[i] = v0;
        worst = fmax(worst, fabs((lp - lm) / (2.0 * h) - g[i]) / gmax);
    }
    return worst;
}

static void test_linear_kernels(void **st) {
    (void)st;
    fl_config c = { 0 };
    fl_config_family_defaults(&c, FL_LLAMA);
    c.vocab = 8; c.d = 12; c.n_layer = 1; c.n_head = 2; c.n_kv_head = 2; c.head_dim = 6; c.d_ff = 20; c.max_pos = 8;
    fl_model m;
    assert_int_equal(fl_model_create(&m, &c), 0);
    fl_param *w = m.layers[0].fc1_w;   /* [20, 12] */
    const int N = 7, O = w->rows, I = w->cols, R = 3;
    tu_fill(w->w, (size_t)w->n, 0.5f, 1);
    uint8_t *mk = malloc((size_t)w->n);
    for (int64_t i = 0; i < w->n; i++) mk[i] = (i * 7 + 3) % 5 < 3;
    assert_int_equal(fl_param_set_mask(w, mk), 0);
    float *x = malloc(sizeof(float) * N * I), *Rr = malloc(sizeof(float) * N * O), *y = malloc(sizeof(float) * N * O);
    float *dx = malloc(sizeof(float) * N * I);
    tu_fill(x, (size_t)N * I, 1.0f, 2);
    tu_fill(Rr, (size_t)N * O, 1.0f, 3);
    fl_adapter ad = { .rank = R, .scale = 1.5f };
    ad.A = fl_allocf((size_t)R * I); ad.B = fl_allocf((size_t)O * R);
    ad.gA = fl_allocf((size_t)R * I); ad.gB = fl_allocf((size_t)O * R);
    ad.dense = fl_allocf((size_t)w->n);
    tu_fill(ad.A, (size_t)R * I, 0.4f, 4);
    tu_fill(ad.B, (size_t)O * R, 0.4f, 5);
    w->ad = &ad;
    for (int masked = 0; masked < 2; masked++) {
        ad.mask = masked ? w->mask : NULL;
        memset(ad.gA, 0, sizeof(float) * R * I); memset(ad.gB, 0, sizeof(float) * O * R);
        memset(dx, 0, sizeof(float) * N * I);
        /* forward equals x W_eff^T with W_eff built by hand */
        lin_loss(w, x, Rr, y, N);
        double emax = 0;
        for (int n = 0; n < N; n++)
            for (int o = 0; o < O; o++) {
                double acc = 0;
                for (int i = 0; i < I; i++) {
                    double ba = 0;
                    for (int r = 0; r < R; r++) ba += (double)ad.B[o * R + r] * ad.A[r * I + i];
                    if (masked && !w->mask[o * I + i]) ba = 0;
                    acc += ((double)w->w[o * I + i] + ad.scale * ba) * x[n * I + i];
                }
                emax = fmax(emax, fabs(acc - y[n * O + o]));
            }
        assert_true(emax < 1e-5);
        size_t live = fl_mem_live();
        fl_mem_reset_peak();
        fl_linear_backward(w, NULL, x, Rr, dx, N);
        /* LoRA's backward holds two [N, rank] temporaries and nothing [out, in] */
        if (!masked) assert_int_equal(fl_mem_peak() - live, sizeof(float) * 2 * N * R);
        else assert_int_equal(fl_mem_peak(), live);   /* MaskLoRA: only the caller's scratch */
        assert_null(w->g);
        double eA = lin_fd(w, x, Rr, y, N, ad.A, ad.gA, (int64_t)R * I);
        double eB = lin_fd(w, x, Rr, y, N, ad.B, ad.gB, (int64_t)O * R);
        double ex = lin_fd(w, x, Rr, y, N, x, dx, (int64_t)N * I);
        if (getenv("FL_VERBOSE") || eA > 1e-3 || eB > 1e-3 || ex > 1e-3)
            print_error("%s linear: dA %.2g dB %.2g dx %.2g\n", masked ? "masklora" : "lora", eA, eB, ex);
        assert_true(eA < 1e-3 && eB < 1e-3 && ex < 1e-3);
        if (masked) {
            /* the gradient of a pruned entry does not reach A, B: dB = s (M o G) A^T */
            double gb_mask = 0, gb_nomask = 0;
            float *G = malloc(sizeof(float) * O * I);
            fl_gemm(1, 0, O, I, N, 1.0f, Rr, O, x, I, 0.0f, G, I);
            for (int o = 0; o < O; o++)
                for (int r = 0; r < R; r++) {
                    double a1 = 0, a2 = 0;
                    for (int i = 0; i < I; i++) {
                        a1 += (w->mask[o * I + i] ? G[o * I + i] : 0.0) * ad.A[r * I + i];
                        a2 += G[o * I + i] * ad.A[r * I + i];
                    }
                    gb_mask = fmax(gb_mask, fabs(ad.scale * a1 - ad.gB[o * R + r]));
                    gb_nomask = fmax(gb_nomask, fabs(ad.scale * a2 - ad.gB[o * R + r]));
                }
            assert_true(gb_mask < 1e-4 && gb_nomask > 1e-2);
            free(G);
        }
    }
    w->ad = NULL;
    fl_free(ad.A); fl_free(ad.B); fl_free(ad.gA); fl_free(ad.gB); fl_free(ad.dense);
    free(x); free(Rr); free(y); free(dx); free(mk);
    fl_model_free(&m);
}

/* ---- B = 0: the first forward is the pruned model's --------------------- */

static void test_identity_at_init(void **st) {
    (void)st;
    prune50();
    const size_t nl = (size_t)NWIN * TT * 48;
    float *ref = malloc(sizeof(float) * nl), *got = malloc(sizeof(float) * nl);
    double l0 = ce(NWIN, TT, ref);
    float *w_before = malloc(sizeof(float) * g_m.n_floats);
    memcpy(w_before, g_m.data, sizeof(float) * g_m.n_floats);
    for (int masked = 0; masked < 2; masked++) {
        uint8_t *mask0 = g_m.layers[0].q_w->mask;
        size_t live0 = fl_mem_live();
        fl_lora L;
        assert_int_equal(fl_lora_attach(&L, &g_m, masked, 8, 16.0f, 5), 0);
        assert_int_equal(L.n, 2 * 7);
        assert_true(fabsf(L.scale - 2.0f) < 1e-7f);
        assert_true(g_m.layers[0].q_w->mask == mask0);
        assert_true(g_m.layers[0].q_w->ad == &L.s[0].ad);
        assert_true(masked ? L.s[0].ad.mask == mask0 : L.s[0].ad.mask == NULL);
        /* every weight frozen: no dense gradient anywhere */
        for (int i = 0; i < g_m.n_params; i++) { assert_false(g_m.params[i].trainable); assert_null(g_m.params[i].g); }
        /* A, B with a gradient and two moments each, and MaskLoRA's one
         * scratch for the largest linear; no copy of W0 */
        size_t want = 0, largest = 0;
        for (int i = 0; i < L.n; i++) {
            want += sizeof(float) * 4 * (size_t)L.rank * (L.s[i].in + L.s[i].out);
            if ((size_t)L.s[i].p->n > largest) largest = (size_t)L.s[i].p->n;
        }
        if (masked) want += sizeof(float) * largest;
        assert_int_equal(fl_lora_bytes(&L), want);
        assert_int_equal(fl_mem_live() - live0, want);
        double l1 = ce(NWIN, TT, got);
        assert_memory_equal(got, ref, sizeof(float) * nl);
        assert_true(l1 == l0);
        fl_lora_detach(&L, 0);
        assert_memory_equal(g_m.data, w_before, sizeof(float) * g_m.n_floats);
        assert_true(g_m.layers[0].q_w->mask == mask0);
        assert_null(g_m.layers[0].q_w->ad);
        assert_int_equal(fl_mem_live(), live0);
    }
    free(ref); free(got); free(w_before);
}

/* What fl_forward keeps for backward is what the planner predicts. */
static void test_acts_predict(void **st) {
    (void)st;
    prune50();
    int32_t tg[NWIN * TT];
    for (int i = 0; i < NWIN * TT; i++) tg[i] = i % TT + 1 < TT ? g_tok[i + 1] : -1;
    fl_range rs[3] = { fl_range_whole(&g_m), fl_range_blocks(0, 1), fl_range_mlp(1) };
    for (int k = 0; k < 3; k++) {
        fl_acts *acts = fl_acts_new();
        float *x = calloc((size_t)3 * TT * g_m.cfg.d, sizeof(float));
        fl_fwd a = { .B = 3, .T = TT, .tokens = g_tok, .targets = tg, .x_in = x };
        assert_int_equal(fl_forward(&g_m, rs[k], &a, acts), 0);
        assert_int_equal(fl_acts_bytes(acts), fl_acts_predict_bytes(&g_m.cfg, rs[k], 3, TT));
        fl_acts_free(acts);
        free(x);
    }
}

/* ---- adapter gradients of the whole model against finite differences ---- */

static double loss_small(int B, int T, const float *soft) {
    int32_t tg[4 * 8];
    small_targets(tg, B, T);
    fl_fwd a = { .B = B, .T = T, .tokens = g_tok, .targets = tg, .soft = soft };
    assert_int_equal(fl_forward(&g_m, fl_range_whole(&g_m), &a, NULL), 0);
    return a.loss;
}

static double fd_check(float *x, const float *g, int64_t n, int B, int T, const float *soft) {
    double gmax = 0;
    for (int64_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
    assert_true(gmax > 0);
    /* the three largest entries and five random ones */
    int64_t idx[8];
    for (int k = 0; k < 3; k++) {
        int64_t best = -1;
        for (int64_t i = 0; i < n; i++) {
            int taken = 0;
            for (int q = 0; q < k; q++) taken |= idx[q] == i;
            if (!taken && (best < 0 || fabs(g[i]) > fabs(g[best]))) best = i;
        }
        idx[k] = best;
    }
    uint64_t s = 1234 + (uint64_t)n;
    for (int k = 3; k < 8; k++) idx[k] = (int64_t)(tu_rng(&s) % (uint64_t)n);
    double worst = 0;
    for (int k = 0; k < 8; k++) {
        int64_t i = idx[k];
        float x0 = x[i], h = 2e-3f;
        x[i] = x0 + h; double lp = loss_small(B, T, soft);
        x[i] = x0 - h; double lm = loss_small(B, T, soft);
        x[i] = x0;
        double fd = (lp - lm) / (2.0 * h), err = fabs(fd - g[i]) / gmax;
        if (err > worst) worst = err;
    }
    return worst;
}

/* A nonzero B so that dA is not zero. */
static void adapters_nonzero(fl_lora *L) {
    for (int i = 0; i < L->n; i++) tu_fill(L->s[i].ad.B, (size_t)L->s[i].out * L->rank, 0.05f, 100 + i);
}

static void test_grad_fd(void **st) {
    (void)st;
    prune50();
    const int B = 2, T = 8;
    int32_t tg[4 * 8];
    small_targets(tg, B, T);
    for (int mode = 0; mode < 4; mode++) {   /* lora, masklora, each with hard and with soft targets */
        int masked = mode & 1, distill = mode >> 1;
        const float *soft = distill ? g_soft : NULL;
        fl_lora L;
        assert_int_equal(fl_lora_attach(&L, &g_m, masked, 4, 8.0f, 11), 0);
        adapters_nonzero(&L);
        fl_acts *acts = fl_acts_new();
        fl_fwd a = { .B = B, .T = T, .tokens = g_tok, .targets = tg, .soft = soft };
        assert_int_equal(fl_forward(&g_m, fl_range_whole(&g_m), &a, acts), 0);
        assert_int_equal(fl_backward(&g_m, fl_range_whole(&g_m), acts, NULL, NULL), 0);
        fl_acts_free(acts);
        /* q of block 0, o of block 0, down of block 1 */
        int slots[3] = { 0, 3, L.n - 1 };
        for (int k = 0; k < 3; k++) {
            fl_lora_slot *s = &L.s[slots[k]];
            int64_t na = (int64_t)L.rank * s->in, nb = (int64_t)s->out * L.rank;
            double eA = fd_check(s->ad.A, s->ad.gA, na, B, T, soft), eB = fd_check(s->ad.B, s->ad.gB, nb, B, T, soft);
            if (getenv("FL_VERBOSE") || eA > 0.03 || eB > 0.03)
                print_error("%s%s %s: dA err %.4f, dB err %.4f (of the gradient scale)\n", masked ? "masklora" : "lora",
                            distill ? " distill" : "", s->p->name, eA, eB);
            assert_true(eA <= 0.03);
            assert_true(eB <= 0.03);
        }
        fl_lora_detach(&L, 0);
    }
}

/* dx through the adapters: blocks 0..1 as a submodel, loss sum(x_out * R). */
static double blocks_loss(const float *x, const float *R, float *y, int N) {
    fl_fwd a = { .B = 2, .T = N / 2, .x_in = x, .x_out = y };
    assert_int_equal(fl_forward(&g_m, fl_range_blocks(0, 1), &a, NULL), 0);
    double s = 0;
    for (int64_t i = 0; i < (int64_t)N * g_m.cfg.d; i++) s += (double)y[i] * R[i];
    return s;
}

static void test_grad_dx_fd(void **st) {
    (void)st;
    prune50();
    const int N = 2 * 8, d = g_m.cfg.d;
    float *x = malloc(sizeof(float) * N * d), *R = malloc(sizeof(float) * N * d), *y = malloc(sizeof(float) * N * d);
    float *dx = calloc((size_t)N * d, sizeof(float));
    tu_fill(x, (size_t)N * d, 1.0f, 21);
    tu_fill(R, (size_t)N * d, 1.0f, 22);
    for (int masked = 0; masked < 2; masked++) {
        fl_lora L;
        assert_int_equal(fl_lora_attach(&L, &g_m, masked, 4, 8.0f, 12), 0);
        for (int i = 0; i < L.n; i++) tu_fill(L.s[i].ad.B, (size_t)L.s[i].out * L.rank, 0.3f, 200 + i);
        memset(dx, 0, sizeof(float) * N * d);
        fl_acts *acts = fl_acts_new();
        fl_fwd a = { .B = 2, .T = 8, .x_in = x };
        assert_int_equal(fl_forward(&g_m, fl_range_blocks(0, 1), &a, acts), 0);
        assert_int_equal(fl_backward(&g_m, fl_range_blocks(0, 1), acts, R, dx), 0);
        fl_acts_free(acts);
        /* the adapters changed dx: without them it would be a different number */
        double gmax = 0, worst = 0;
        for (int i = 0; i < N * d; i++) gmax = fmax(gmax, fabs(dx[i]));
        uint64_t s = 5;
        for (int k = 0; k < 12; k++) {
            int i = (int)(tu_rng(&s) % (uint64_t)(N * d));
            float x0 = x[i], h = 1e-2f;
            x[i] = x0 + h; double lp = blocks_loss(x, R, y, N);
            x[i] = x0 - h; double lm = blocks_loss(x, R, y, N);
            x[i] = x0;
            worst = fmax(worst, fabs((lp - lm) / (2.0 * h) - dx[i]) / gmax);
        }
        if (getenv("FL_VERBOSE") || worst > 0.01) print_error("%s blocks dx err %.4f\n", masked ? "masklora" : "lora", worst);
        assert_true(worst < 0.01);
        fl_lora_detach(&L, 0);
    }
    free(x); free(R); free(y); free(dx);
}

/* ---- against PyTorch (tests/oracle/lora_ref.py) ------------------------- */

static void test_oracle(void **st) {
    (void)st;
    if (access("/usr/bin/python3", X_OK) != 0) { print_error("/usr/bin/python3 missing (make deps)\n"); fail(); }
    prune50();
    const int B = 2, T = 8, V = g_m.cfg.vocab;
    char dir[256], mdir[300], in[300], out[300], cmd[1200];
    tu_tmpdir(dir, sizeof dir);
    snprintf(mdir, sizeof mdir, "%s/model", dir);
    snprintf(in, sizeof in, "%s/lora_in.safetensors", dir);
    snprintf(out, sizeof out, "%s/lora_out.safetensors", dir);
    assert_int_equal(fl_model_save(&g_m, mdir), 0);
    int32_t tg[4 * 8];
    small_targets(tg, B, T);
    float tokf[4 * 8], tgf[4 * 8];
    for (int i = 0; i < B * T; i++) { tokf[i] = (float)g_tok[i]; tgf[i] = (float)tg[i]; }
    for (int mode = 0; mode < 4; mode++) {
        int masked = mode & 1, distill = mode >> 1;
        fl_lora L;
        assert_int_equal(fl_lora_attach(&L, &g_m, masked, 4, 8.0f, 13), 0);
        adapters_nonzero(&L);
        fl_acts *acts = fl_acts_new();
        fl_fwd a = { .B = B, .T = T, .tokens = g_tok, .targets = tg, .soft = distill ? g_soft : NULL };
        assert_int_equal(fl_forward(&g_m, fl_range_whole(&g_m), &a, acts), 0);
        assert_int_equal(fl_backward(&g_m, fl_range_whole(&g_m), acts, NULL, NULL), 0);
        fl_acts_free(acts);
        /* inputs: tokens, targets, soft, meta, and per linear A, B, M */
        fl_st_out ts[5 + 3 * 14];
        float meta[2] = { L.scale, (float)masked };
        float *mk[14];
        char names[3 * 14][80];
        int n = 0;
        ts[n++] = (fl_st_out){ "tokens", tokf, 2, { B, T } };
        ts[n++] = (fl_st_out){ "targets", tgf, 2, { B, T } };
        ts[n++] = (fl_st_out){ "meta", meta, 1, { 2 } };
        if (distill) ts[n++] = (fl_st_out){ "soft", g_soft, 2, { B * T, V } };
        assert_int_equal(L.n, 14);
        for (int i = 0; i < L.n; i++) {
            fl_lora_slot *s = &L.s[i];
            mk[i] = malloc(sizeof(float) * s->p->n);
            for (int64_t q = 0; q < s->p->n; q++) mk[i][q] = s->p->mask[q];
            snprintf(names[3 * i], 80, "A.%s", s->p->name);
            snprintf(names[3 * i + 1], 80, "B.%s", s->p->name);
            snprintf(names[3 * i + 2], 80, "M.%s", s->p->name);
            ts[n++] = (fl_st_out){ names[3 * i], s->ad.A, 2, { L.rank, s->in } };
            ts[n++] = (fl_st_out){ names[3 * i + 1], s->ad.B, 2, { s->out, L.rank } };
            ts[n++] = (fl_st_out){ names[3 * i + 2], mk[i], 2, { s->out, s->in } };
        }
        assert_int_equal(fl_st_write(in, ts, n), 0);
        for (int i = 0; i < L.n; i++) free(mk[i]);
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/oracle/lora_ref.py '%s' '%s' '%s'", mdir, in, out);
        assert_int_equal(system(cmd), 0);
        fl_st_file f;
        assert_int_equal(fl_st_open(&f, out), 0);
        float ref_loss;
        assert_int_equal(fl_st_read_f32(&f, fl_st_find(&f, "loss"), &ref_loss), 0);
        double el = fabs(a.loss - ref_loss) / fabs(ref_loss), worst = 0;
        for (int i = 0; i < L.n; i++) {
            fl_lora_slot *s = &L.s[i];
            for (int k = 0; k < 2; k++) {
                char nm[90];
                snprintf(nm, sizeof nm, "g%s.%s", k ? "B" : "A", s->p->name);
                const fl_st_tensor *t = fl_st_find(&f, nm);
                assert_non_null(t);
                float *r = malloc(sizeof(float) * t->numel);
                assert_int_equal(fl_st_read_f32(&f, t, r), 0);
                assert_int_equal(t->numel, (int64_t)L.rank * (k ? s->out : s->in));
                double e = tu_relerr(k ? s->ad.gB : s->ad.gA, r, (size_t)t->numel, 1e-6);
                worst = fmax(worst, e);
                free(r);
            }
        }
        fl_st_close(&f);
        if (getenv("FL_VERBOSE") || el > 1e-5 || worst > 1e-5)
            print_error("%s%s vs torch: loss %.3g, adapter grads %.3g\n", masked ? "masklora" : "lora",
                        distill ? " distill" : "", el, worst);
        assert_true(el < 1e-5);
        assert_true(worst < 1e-5);
        fl_lora_detach(&L, 0);
    }
    tu_rmrf(dir);
}

/* ---- the retraining ----------------------------------------------------- */

static fl_recon_opts opts(float lr) {
    return (fl_recon_opts){ .lr = lr, .epochs = 3, .batch = 4, .seed = 7 };
}

static void test_masklora(void **st) {
    (void)st;
    prune50();
    uint8_t *mask0 = g_m.layers[1].fc2_w->mask;
    float *before = malloc(sizeof(float) * g_m.n_floats);
    memcpy(before, g_m.data, sizeof(float) * g_m.n_floats);
    double l0 = ce(NWIN, TT, NULL);
    size_t live0 = fl_mem_live();
    fl_recon_opts o = opts(1e-2f);
    fl_unit_report rep = { 0 };
    int rc = fl_retrain_lora(&g_m, 1, 8, 16.0f, 0, g_tok, NWIN, TT, &o, &rep);
    if (rc) print_error("%s\n", fl_errmsg());
    assert_int_equal(rc, 0);
    assert_int_equal(fl_mem_live(), live0);
    assert_int_equal(rep.steps, 3 * NWIN / 4);
    assert_true(fabs(rep.loss_before - l0) < 1e-5);
    double l1 = ce(NWIN, TT, NULL);
    assert_true(fabs(rep.loss_after - l1) < 1e-5);
    printf("masklora: CE %.4f -> %.4f, %d steps, working %zu B, %.2f s\n", rep.loss_before, rep.loss_after, rep.steps,
           rep.working_bytes, rep.seconds);
    assert_true(rep.loss_after < rep.loss_before - 0.02);
    assert_int_equal(nonzero_pruned(), 0);
    assert_true(g_m.layers[1].fc2_w->mask == mask0);
    assert_non_null(strstr(rep.name, "masklora"));
    /* only the block linears moved; their kept weights did */
    for (int i = 0; i < g_m.n_params; i++) {
        fl_param *p = &g_m.params[i];
        assert_false(p->trainable);
        assert_null(p->g);
        int64_t off = p->w - g_m.data;
        int same = !memcmp(p->w, before + off, sizeof(float) * p->n);
        if (p->kind == FL_PK_LINEAR_W && p->layer >= 0) assert_false(same);
        else assert_true(same);
    }
    size_t params = sizeof(float) * (size_t)fl_model_num_params(&g_m);
    assert_true(rep.working_bytes > params && rep.peak_bytes >= rep.working_bytes - params);
    /* same seed, same result */
    prune50();
    fl_unit_report rep2 = { 0 };
    assert_int_equal(fl_retrain_lora(&g_m, 1, 8, 16.0f, 0, g_tok, NWIN, TT, &o, &rep2), 0);
    assert_true(rep2.loss_after == rep.loss_after);
    free(before);
}

static void test_lora(void **st) {
    (void)st;
    prune50();
    uint8_t *mask0 = g_m.layers[0].v_w->mask;
    size_t live0 = fl_mem_live();
    fl_recon_opts o = opts(1e-2f);
    o.grad_accum = 2;
    fl_unit_report rep = { 0 };
    int rc = fl_retrain_lora(&g_m, 0, 8, 16.0f, 0, g_tok, NWIN, TT, &o, &rep);
    if (rc) print_error("%s\n", fl_errmsg());
    assert_int_equal(rc, 0);
    assert_int_equal(fl_mem_live(), live0);
    assert_int_equal(rep.steps, 3 * NWIN / 4 / 2);
    printf("lora: CE %.4f -> %.4f, %d steps, working %zu B\n", rep.loss_before, rep.loss_after, rep.steps, rep.working_bytes);
    assert_true(rep.loss_after < rep.loss_before - 0.02);
    assert_true(fabs(rep.loss_after - ce(NWIN, TT, NULL)) < 1e-5);
    /* masks restored, weights merged dense (not re-zeroed) */
    assert_true(g_m.layers[0].v_w->mask == mask0);
    assert_true(nonzero_pruned() > 0);
    assert_non_null(strstr(rep.name, "merged dense"));
}

/* ---- LoRA changed cost, not maths: the old merged formulation ----------- */

/* The old formulation's weights: p->w = W0 + s (BA), or W0 + s M o (BA). */
static void compose_merged(fl_lora *L, const float *w0, uint8_t *const *masks, int masked) {
    for (int i = 0; i < L->n; i++) {
        fl_lora_slot *s = &L->s[i];
        float *w = s->p->w;
        const float *base = w0 + (s->p->w - g_m.data);
        memcpy(w, base, sizeof(float) * s->p->n);
        fl_gemm(0, 0, s->out, s->in, L->rank, L->scale, s->ad.B, L->rank, s->ad.A, s->in, 1.0f, w, s->in);
        if (masked)
            for (int64_t q = 0; q < s->p->n; q++)
                if (!masks[i][q]) w[q] = base[q];
    }
}

/* The formulation fl_retrain_lora had before the adapters moved into the
 * linear kernels: every micro-batch W_eff = W0 + s (BA) (MaskLoRA:
 * W0 + s M o (BA)) is written into the weights, backward forms the dense
 * dW of every linear, and dA, dB are projected from it. Same batches, same
 * optimiser. Leaves the merged weights in g_m. */
static void merged_reference(int masked, int rank, float alpha, const fl_recon_opts *o) {
    const int batch = o->batch, accum = o->grad_accum > 0 ? o->grad_accum : 1, epochs = o->epochs;
    const int micro = (NWIN + batch - 1) / batch * epochs, steps = (micro + accum - 1) / accum;
    float *w0 = malloc(sizeof(float) * g_m.n_floats);
    memcpy(w0, g_m.data, sizeof(float) * g_m.n_floats);
    fl_lora L;
    assert_int_equal(fl_lora_attach(&L, &g_m, masked, rank, alpha, o->seed), 0);   /* the same A at init */
    uint8_t *masks[14];
    for (int i = 0; i < L.n; i++) {
        fl_param *p = L.s[i].p;
        p->ad = NULL;
        masks[i] = p->mask;
        if (!masked) p->mask = NULL;   /* LoRA's dW is not masked */
        fl_param_set_trainable(p, 1);
    }
    fl_adamw_cfg oc = fl_adamw_defaults();
    oc.lr = o->lr; oc.weight_decay = o->weight_decay; oc.total_steps = steps; oc.warmup_steps = steps / 10;
    oc.sched = FL_SCHED_LINEAR;
    int32_t *tg = fl_retrain_targets(g_tok, NWIN, TT), tb[NWIN * TT], gb[NWIN * TT];
    int perm[NWIN], mb = 0;
    for (int i = 0; i < NWIN; i++) perm[i] = i;
    uint64_t rs = o->seed * 0x9E3779B97F4A7C15ull + 5;
    fl_acts *acts = fl_acts_new();
    for (int ep = 0; ep <= epochs; ep++) {
        compose_merged(&L, w0, masks, masked);
        if (ep == epochs) break;
        fl_shuffle(perm, NWIN, fl_lcg31, &rs);
        for (int w0i = 0; w0i < NWIN; w0i += batch) {
            int B = NWIN - w0i < batch ? NWIN - w0i : batch;
            for (int b = 0; b < B; b++) {
                memcpy(tb + b * TT, g_tok + perm[w0i + b] * TT, sizeof(int32_t) * TT);
                memcpy(gb + b * TT, tg + perm[w0i + b] * TT, sizeof(int32_t) * TT);
            }
            fl_fwd a = { .B = B, .T = TT, .tokens = tb, .targets = gb };
            assert_int_equal(fl_forward(&g_m, fl_range_whole(&g_m), &a, acts), 0);
            assert_int_equal(fl_backward(&g_m, fl_range_whole(&g_m), acts, NULL, NULL), 0);
            for (int i = 0; i < L.n; i++) {   /* dB += s G A^T, dA += s B^T G from the dense G */
                fl_lora_slot *s = &L.s[i];
                float *G = s->p->g;
                fl_gemm(0, 1, s->out, L.rank, s->in, L.scale, G, s->in, s->ad.A, s->in, 1.0f, s->ad.gB, L.rank);
                fl_gemm(1, 0, L.rank, s->in, s->out, L.scale, s->ad.B, L.rank, G, s->in, 1.0f, s->ad.gA, s->in);
                memset(G, 0, sizeof(float) * s->p->n);
            }
            if (++mb % accum == 0 || mb == micro) {
                fl_lora_adamw_step(&L, &oc, 1.0f / accum);
                compose_merged(&L, w0, masks, masked);   /* after every step */
            }
        }
    }
    fl_acts_free(acts);
    for (int i = 0; i < L.n; i++) { L.s[i].p->mask = masks[i]; fl_param_set_trainable(L.s[i].p, 0); }
    fl_lora_detach(&L, 0);   /* the weights stay as composed */
    free(tg); free(w0);
}

static void test_matches_merged(void **st) {
    (void)st;
    float *w0 = malloc(sizeof(float) * g_m.n_floats), *got = malloc(sizeof(float) * g_m.n_floats);
    for (int masked = 0; masked < 2; masked++) {
        fl_recon_opts o = opts(1e-2f);
        o.grad_accum = 2;
        o.weight_decay = 0.01f;
        prune50();
        memcpy(w0, g_m.data, sizeof(float) * g_m.n_floats);
        fl_unit_report rep = { 0 };
        assert_int_equal(fl_retrain_lora(&g_m, masked, 8, 16.0f, 0, g_tok, NWIN, TT, &o, &rep), 0);
        memcpy(got, g_m.data, sizeof(float) * g_m.n_floats);
        prune50();
        merged_reference(masked, 8, 16.0f, &o);
        /* compare the updates W - W0 of every block linear */
        double dmax = 0, umax = 0;
        for (int i = 0; i < g_m.n_params; i++) {
            fl_param *p = &g_m.params[i];
            int64_t off = p->w - g_m.data;
            for (int64_t q = 0; q < p->n; q++) {
                double ug = (double)got[off + q] - w0[off + q], ur = (double)p->w[q] - w0[off + q];
                if (!(p->kind == FL_PK_LINEAR_W && p->layer >= 0)) { assert_true(ug == 0.0); continue; }
                dmax = fmax(dmax, fabs(ug - ur));
                umax = fmax(umax, fabs(ur));
            }
        }
        if (getenv("FL_VERBOSE") || dmax > 1e-3 * umax)
            print_error("%s: low-rank vs merged: max |dW| %.3g, max difference %.3g\n", masked ? "masklora" : "lora", umax, dmax);
        assert_true(umax > 1e-3);
        assert_true(dmax <= 1e-3 * umax);
    }
    free(w0); free(got);
}

/* ---- working set ---------------------------------------------------------- */

static void test_working_set(void **st) {
    (void)st;
    fl_recon_opts o = opts(1e-3f);
    o.epochs = 1;
    prune50();
    fl_unit_report full = { 0 };
    assert_int_equal(fl_retrain_full(&g_m, 0, g_tok, NWIN, TT, &o, &full), 0);
    for (int mode = 0; mode < 4; mode++) {
        int masked = mode & 1, distill = mode >> 1;
        prune50();
        o.teacher = distill ? &g_teacher : NULL;
        fl_unit_report rep = { 0 };
        assert_int_equal(fl_retrain_lora(&g_m, masked, 8, 16.0f, 0, g_tok, NWIN, TT, &o, &rep), 0);
        size_t pred = fl_lora_predict_working(&g_m.cfg, masked, 8, 0, distill, o.batch, TT);
        double ratio = (double)rep.working_bytes / pred;
        print_message("%s%s: working set %zu B, predicted %zu B (%.3f), retrain:full %zu B\n", masked ? "masklora" : "lora",
                      distill ? " distill" : "", rep.working_bytes, pred, ratio, full.working_bytes);
        assert_true(ratio > 0.9 && ratio < 1.1);
        if (!distill) assert_true(rep.working_bytes < full.working_bytes);
    }
    o.teacher = NULL;
}

/* --distill: KL to the dense model through the adapters */
static void test_distill(void **st) {
    (void)st;
    for (int masked = 0; masked < 2; masked++) {
        prune50();
        fl_recon_opts o = opts(1e-2f);
        o.teacher = &g_teacher;
        size_t live0 = fl_mem_live();
        fl_unit_report rep = { 0 };
        int rc = fl_retrain_lora(&g_m, masked, 8, 16.0f, 0, g_tok, NWIN, TT, &o, &rep);
        if (rc) print_error("%s\n", fl_errmsg());
        assert_int_equal(rc, 0);
        assert_int_equal(fl_mem_live(), live0);
        printf("%s distill: CE %.4f -> %.4f\n", masked ? "masklora" : "lora", rep.loss_before, rep.loss_after);
        assert_true(rep.loss_after < rep.loss_before - 0.02);
        assert_non_null(strstr(rep.name, "distilled"));
        if (masked) assert_int_equal(nonzero_pruned(), 0);
    }
}

static void test_bad_rank(void **st) {
    (void)st;
    prune50();
    fl_recon_opts o = opts(1e-2f);
    fl_unit_report rep = { 0 };
    assert_int_equal(fl_retrain_lora(&g_m, 1, 0, 16.0f, 0, g_tok, NWIN, TT, &o, &rep), -1);
    assert_non_null(strstr(fl_errmsg(), "rank"));
    /* nothing was left behind */
    assert_non_null(g_m.layers[0].q_w->mask);
    assert_false(g_m.layers[0].q_w->trainable);
}

/* Opens spec; on success returns its rank and alpha through the
 * descriptor's parsed options. */
static int open_lora(const char *spec, int *masked, int *rank, double *alpha) {
    fl_recon_inst in;
    if (fl_recon_open(spec, &in) != 0) return -1;
    const fl_lora_opts *o = in.priv;
    int ok = !strcmp(in.r->name, "retrain:lora") || !strcmp(in.r->name, "retrain:masklora");
    if (ok) { *masked = !strcmp(in.r->name, "retrain:masklora"); *rank = o->rank; *alpha = o->alpha; }
    fl_recon_close(&in);
    return ok;
}

static void test_parse(void **st) {
    (void)st;
    int mk = -1, r = -1;
    double a = -1;
    assert_int_equal(open_lora("retrain:full", &mk, &r, &a), 0);
    assert_int_equal(open_lora("retrain", &mk, &r, &a), 0);        /* retrain alone = retrain:full */
    assert_int_equal(open_lora("retrain:bias-norm", &mk, &r, &a), 0);
    assert_int_equal(open_lora("retrain:loraX", &mk, &r, &a), -1);
    assert_int_equal(open_lora("retrain:lora", &mk, &r, &a), 1);
    assert_int_equal(mk, 0); assert_int_equal(r, 8); assert_true(a == 16.0);
    assert_int_equal(open_lora("retrain:masklora", &mk, &r, &a), 1);   /* the authors' defaults (lora.h) */
    assert_int_equal(mk, 1); assert_int_equal(r, 16); assert_true(a == 32.0);
    assert_int_equal(open_lora("retrain:masklora:rank=16,alpha=32", &mk, &r, &a), 1);
    assert_int_equal(mk, 1); assert_int_equal(r, 16); assert_true(a == 32.0);
    assert_int_equal(open_lora("retrain:lora,r=4,a=2.5", &mk, &r, &a), 1);
    assert_int_equal(mk, 0); assert_int_equal(r, 4); assert_true(a == 2.5);
    assert_int_equal(open_lora("retrain:lora:4,2.5", &mk, &r, &a), 1);   /* positional: rank, alpha */
    assert_int_equal(r, 4); assert_true(a == 2.5);
    assert_int_equal(open_lora("retrain:lora:rank=0", &mk, &r, &a), -1);
    assert_int_equal(open_lora("retrain:lora:rank=x", &mk, &r, &a), -1);
    assert_int_equal(open_lora("retrain:lora:alpha=-1", &mk, &r, &a), -1);
    assert_int_equal(open_lora("retrain:lora:alpha=0", &mk, &r, &a), -1);
    assert_non_null(strstr(fl_errmsg(), "alpha must be positive"));
    assert_int_equal(open_lora("retrain:lora:beta=1", &mk, &r, &a), -1);
    assert_non_null(strstr(fl_errmsg(), "retrain:lora"));
    assert_non_null(strstr(fl_errmsg(), "rank"));
    assert_int_equal(open_lora("retrain:lora:rank=", &mk, &r, &a), -1);
    assert_int_equal(open_lora("retrain:lora:rank=4,rank=5", &mk, &r, &a), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_linear_kernels),
        cmocka_unit_test(test_identity_at_init),
        cmocka_unit_test(test_acts_predict),
        cmocka_unit_test(test_grad_fd),
        cmocka_unit_test(test_grad_dx_fd),
        cmocka_unit_test(test_oracle),
        cmocka_unit_test(test_masklora),
        cmocka_unit_test(test_lora),
        cmocka_unit_test(test_matches_merged),
        cmocka_unit_test(test_working_set),
        cmocka_unit_test(test_distill),
        cmocka_unit_test(test_bad_rank),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
