/* LoRA and MaskLoRA retraining (issue 5, "Retraining baselines"): with
 * B = 0 the first forward is the pruned model's; the adapter gradients
 * dA, dB match finite differences of the loss; MaskLoRA keeps every pruned
 * weight exactly 0 and lowers the calibration cross-entropy; LoRA lowers it
 * too (its merged weights are dense); the tracked memory is all given back;
 * the option parser. */
#include "tests/testutil.h"
#include "model/adamw.h"
#include "model/alloc.h"
#include "model/err.h"
#include "reconstructors/lora.h"

static fl_model g_m;
static float *g_dense;          /* the trained dense weights (all of g_m.data) */
#define NWIN 16
#define TT 32
static int32_t g_tok[NWIN * TT];

/* Mostly t[i] = t[i-2], sometimes random: needs attention to predict. */
static void markov(int32_t *t, int64_t n, uint64_t seed) {
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = tu_rng(&s) % 100;
        t[i] = (i < 2 || r >= 85) ? (int32_t)(tu_rng(&s) % 48) : t[i - 2];
    }
}

static int setup(void **st) {
    (void)st;
    fl_config c = { 0 };
    fl_config_family_defaults(&c, FL_LLAMA);
    c.vocab = 48; c.d = 32; c.n_layer = 2; c.n_head = 4; c.n_kv_head = 2; c.head_dim = 8; c.d_ff = 64; c.max_pos = 32;
    if (fl_model_create(&g_m, &c) != 0) return -1;
    fl_model_init_random(&g_m, 3);
    /* a little training so the model has something pruning destroys */
    int64_t n = 8000;
    int32_t *t = malloc(sizeof(int32_t) * n);
    markov(t, n, 1);
    fl_model_set_all_trainable(&g_m, 1);
    fl_adamw_cfg oc = fl_adamw_defaults();
    oc.lr = 1e-2f; oc.total_steps = 120; oc.warmup_steps = 10; oc.sched = FL_SCHED_LINEAR;
    fl_adamw o;
    fl_adamw_init(&o, &g_m, &oc);
    fl_acts *acts = fl_acts_new();
    int32_t in[8 * 32], tg[8 * 32];
    uint64_t s = 9;
    for (int step = 0; step < 120; step++) {
        for (int b = 0; b < 8; b++) {
            int64_t off = (int64_t)(tu_rng(&s) % (uint64_t)(n - 40));
            for (int i = 0; i < 32; i++) { in[b * 32 + i] = t[off + i]; tg[b * 32 + i] = t[off + i + 1]; }
        }
        fl_fwd a = { .B = 8, .T = 32, .tokens = in, .targets = tg };
        fl_forward(&g_m, fl_range_whole(&g_m), &a, acts);
        fl_backward(&g_m, fl_range_whole(&g_m), acts, NULL, NULL);
        fl_adamw_step(&o);
    }
    fl_acts_free(acts);
    fl_adamw_free(&o);
    fl_model_set_all_trainable(&g_m, 0);
    free(t);
    g_dense = malloc(sizeof(float) * g_m.n_floats);
    memcpy(g_dense, g_m.data, sizeof(float) * g_m.n_floats);
    markov(g_tok, NWIN * TT, 77);   /* the calibration windows */
    return 0;
}

static int teardown(void **st) {
    (void)st;
    fl_model_free(&g_m);
    free(g_dense);
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
        /* LoRA detaches the masks during training, MaskLoRA keeps them */
        assert_true(masked ? g_m.layers[0].q_w->mask == mask0 : g_m.layers[0].q_w->mask == NULL);
        assert_true(g_m.layers[0].q_w->trainable && g_m.layers[0].q_w->g);
        assert_false(g_m.embed->trainable);
        /* W0 copy per linear, and A, B with a gradient and two moments each */
        size_t want = 0;
        for (int i = 0; i < L.n; i++)
            want += sizeof(float) * ((size_t)L.s[i].p->n + 4 * (size_t)L.rank * (L.s[i].in + L.s[i].out));
        assert_true(fl_lora_bytes(&L) >= want && fl_lora_bytes(&L) <= want + want / 10);
        fl_lora_compose(&L);
        double l1 = ce(NWIN, TT, got);
        assert_memory_equal(got, ref, sizeof(float) * nl);
        assert_true(l1 == l0);
        fl_lora_detach(&L, 0);
        assert_memory_equal(g_m.data, w_before, sizeof(float) * g_m.n_floats);
        assert_true(g_m.layers[0].q_w->mask == mask0);
        assert_false(g_m.layers[0].q_w->trainable);
        assert_null(g_m.layers[0].q_w->g);
        assert_int_equal(fl_mem_live(), live0);
    }
    free(ref); free(got); free(w_before);
}

/* ---- adapter gradients against finite differences ----------------------- */

static double loss_small(int B, int T) {
    int32_t tg[4 * 8];
    for (int w = 0; w < B; w++)
        for (int t = 0; t < T; t++) tg[w * T + t] = t + 1 < T ? g_tok[w * T + t + 1] : -1;
    fl_fwd a = { .B = B, .T = T, .tokens = g_tok, .targets = tg };
    assert_int_equal(fl_forward(&g_m, fl_range_whole(&g_m), &a, NULL), 0);
    return a.loss;
}

static double fd_check(fl_lora *L, float *x, const float *g, int64_t n, int B, int T) {
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
        x[i] = x0 + h; fl_lora_compose(L); double lp = loss_small(B, T);
        x[i] = x0 - h; fl_lora_compose(L); double lm = loss_small(B, T);
        x[i] = x0;
        double fd = (lp - lm) / (2.0 * h), err = fabs(fd - g[i]) / gmax;
        if (err > worst) worst = err;
    }
    fl_lora_compose(L);
    return worst;
}

static void test_grad_fd(void **st) {
    (void)st;
    prune50();
    const int B = 2, T = 8;
    for (int masked = 0; masked < 2; masked++) {
        fl_lora L;
        assert_int_equal(fl_lora_attach(&L, &g_m, masked, 4, 8.0f, 11), 0);
        /* a nonzero B so that dA is not zero */
        for (int i = 0; i < L.n; i++) tu_fill(L.s[i].B, (size_t)L.s[i].out * L.rank, 0.05f, 100 + i);
        fl_lora_compose(&L);
        int32_t tg[4 * 8];
        for (int w = 0; w < B; w++)
            for (int t = 0; t < T; t++) tg[w * T + t] = t + 1 < T ? g_tok[w * T + t + 1] : -1;
        fl_acts *acts = fl_acts_new();
        fl_fwd a = { .B = B, .T = T, .tokens = g_tok, .targets = tg };
        assert_int_equal(fl_forward(&g_m, fl_range_whole(&g_m), &a, acts), 0);
        assert_int_equal(fl_backward(&g_m, fl_range_whole(&g_m), acts, NULL, NULL), 0);
        fl_acts_free(acts);
        fl_lora_grads(&L, 1.0f);
        /* the dW buffers were consumed */
        for (int64_t q = 0; q < L.s[0].p->n; q++) assert_true(L.s[0].p->g[q] == 0.0f);
        /* q of block 0, o of block 0, down of block 1 */
        int slots[3] = { 0, 3, L.n - 1 };
        for (int k = 0; k < 3; k++) {
            fl_lora_slot *s = &L.s[slots[k]];
            int64_t na = (int64_t)L.rank * s->in, nb = (int64_t)s->out * L.rank;
            float *gA = malloc(sizeof(float) * na), *gB = malloc(sizeof(float) * nb);
            memcpy(gA, s->gA, sizeof(float) * na);
            memcpy(gB, s->gB, sizeof(float) * nb);
            double eA = fd_check(&L, s->A, gA, na, B, T), eB = fd_check(&L, s->B, gB, nb, B, T);
            if (getenv("FL_VERBOSE") || eA > 0.03 || eB > 0.03)
                print_error("%s %s: dA err %.4f, dB err %.4f (of the gradient scale)\n", masked ? "masklora" : "lora",
                            s->p->name, eA, eB);
            assert_true(eA <= 0.03);
            assert_true(eB <= 0.03);
            free(gA); free(gB);
        }
        fl_lora_detach(&L, 0);
    }
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
    int rc = fl_retrain_lora(&g_m, 1, 8, 16.0f, g_tok, NWIN, TT, &o, &rep);
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
    assert_int_equal(fl_retrain_lora(&g_m, 1, 8, 16.0f, g_tok, NWIN, TT, &o, &rep2), 0);
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
    int rc = fl_retrain_lora(&g_m, 0, 8, 16.0f, g_tok, NWIN, TT, &o, &rep);
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

static void test_bad_rank(void **st) {
    (void)st;
    prune50();
    fl_recon_opts o = opts(1e-2f);
    fl_unit_report rep = { 0 };
    assert_int_equal(fl_retrain_lora(&g_m, 1, 0, 16.0f, g_tok, NWIN, TT, &o, &rep), -1);
    assert_non_null(strstr(fl_errmsg(), "rank"));
    /* nothing was left behind */
    assert_non_null(g_m.layers[0].q_w->mask);
    assert_false(g_m.layers[0].q_w->trainable);
}

static void test_parse(void **st) {
    (void)st;
    int mk = -1, r = -1;
    float a = -1;
    assert_int_equal(fl_lora_parse_arg(NULL, &mk, &r, &a), 0);
    assert_int_equal(fl_lora_parse_arg("full", &mk, &r, &a), 0);
    assert_int_equal(fl_lora_parse_arg("bias-norm", &mk, &r, &a), 0);
    assert_int_equal(fl_lora_parse_arg("loraX", &mk, &r, &a), 0);
    assert_int_equal(fl_lora_parse_arg("lora", &mk, &r, &a), 1);
    assert_int_equal(mk, 0); assert_int_equal(r, 8); assert_true(a == 16.0f);
    assert_int_equal(fl_lora_parse_arg("masklora", &mk, &r, &a), 1);
    assert_int_equal(mk, 1); assert_int_equal(r, 8); assert_true(a == 16.0f);
    assert_int_equal(fl_lora_parse_arg("masklora:rank=16,alpha=32", &mk, &r, &a), 1);
    assert_int_equal(mk, 1); assert_int_equal(r, 16); assert_true(a == 32.0f);
    assert_int_equal(fl_lora_parse_arg("lora,r=4:a=2.5", &mk, &r, &a), 1);
    assert_int_equal(mk, 0); assert_int_equal(r, 4); assert_true(a == 2.5f);
    assert_int_equal(fl_lora_parse_arg("lora:rank=0", &mk, &r, &a), -1);
    assert_int_equal(fl_lora_parse_arg("lora:rank=x", &mk, &r, &a), -1);
    assert_int_equal(fl_lora_parse_arg("lora:alpha=-1", &mk, &r, &a), -1);
    assert_int_equal(fl_lora_parse_arg("lora:beta=1", &mk, &r, &a), -1);
    assert_non_null(strstr(fl_errmsg(), "unknown LoRA option"));
    assert_int_equal(fl_lora_parse_arg("lora:", &mk, &r, &a), -1);
    assert_int_equal(fl_lora_parse_arg("lora:rank=", &mk, &r, &a), -1);
    assert_int_equal(fl_lora_parse_arg("masklora", NULL, NULL, NULL), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_identity_at_init),
        cmocka_unit_test(test_grad_fd),
        cmocka_unit_test(test_masklora),
        cmocka_unit_test(test_lora),
        cmocka_unit_test(test_bad_rank),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
