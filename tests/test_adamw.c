/* AdamW and SGD with momentum and their schedule against torch.optim.AdamW
 * and torch.optim.SGD + LambdaLR (oracle in tests/oracle/adamw_ref.py), and
 * the mask invariant under both. */
#include "tests/testutil.h"
#include "model/adamw.h"
#include "model/alloc.h"
#include "model/gemm.h"

/* A model is the easiest holder of parameters: use one linear and one bias. */
static void make_model(fl_model *m) {
    fl_config c = { 0 };
    fl_config_family_defaults(&c, FL_GPT2);
    c.vocab = 11; c.d = 8; c.n_layer = 1; c.n_head = 2; c.n_kv_head = 2; c.head_dim = 4; c.d_ff = 12; c.max_pos = 8;
    assert_int_equal(fl_model_create(m, &c), 0);
    fl_model_init_random(m, 3);
}

static void run_case(fl_optim optim, fl_sched sched, float wd, float clip, int use_mask) {
    fl_model m;
    make_model(&m);
    fl_param *W = m.layers[0].fc1_w, *b = m.layers[0].fc1_b;
    tu_fill(b->w, b->n, 0.5f, 4);
    uint8_t *mk = malloc(W->n);
    for (int64_t i = 0; i < W->n; i++) mk[i] = use_mask ? (i % 4 != 1) : 1;
    if (use_mask) fl_param_set_mask(W, mk);
    fl_param_set_trainable(W, 1);
    fl_param_set_trainable(b, 1);
    fl_adamw_cfg c = fl_adamw_defaults();
    c.lr = 0.05f; c.weight_decay = wd; c.clip_norm = clip; c.total_steps = 7; c.warmup_steps = 2; c.sched = sched;
    c.min_lr_frac = 0.1f; c.optim = optim;
    char dir[256], path[300];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/in.bin", dir);
    FILE *f = fopen(path, "wb");
    int32_t hdr[7] = { W->rows, W->cols, (int)b->n, c.total_steps, c.warmup_steps, (int)sched, (int)optim };
    float hp[8] = { c.lr, c.beta1, c.beta2, c.eps, c.weight_decay, c.clip_norm, c.min_lr_frac, c.momentum };
    fwrite(hdr, 4, 7, f); fwrite(hp, 4, 8, f);
    fwrite(W->w, 4, W->n, f); fwrite(b->w, 4, b->n, f);
    for (int64_t i = 0; i < W->n; i++) { float v = mk[i]; fwrite(&v, 4, 1, f); }
    fl_adamw o;
    assert_int_equal(fl_adamw_init(&o, &m, &c), 0);
    assert_int_equal(o.n, 2);
    /* SGD: one buffer per float, none for the second moment */
    assert_true(fl_adamw_bytes(&o) == (size_t)fl_optim_states(optim) * (fl_alloc_size(W->m) + fl_alloc_size(b->m)));
    if (optim == FL_OPTIM_SGD) assert_null(W->v);
    for (int s = 0; s < c.total_steps; s++) {
        tu_fill(W->g, W->n, 1.0f, 100 + s);
        tu_fill(b->g, b->n, 1.0f, 200 + s);
        for (int64_t i = 0; i < W->n; i++) if (!mk[i]) W->g[i] = 0.0f;  /* as backward leaves them */
        fwrite(W->g, 4, W->n, f); fwrite(b->g, 4, b->n, f);
        fl_adamw_step(&o);
        for (int64_t i = 0; i < W->n; i++) assert_true(W->g[i] == 0.0f);  /* grads zeroed */
    }
    fclose(f);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/oracle/adamw_ref.py %s", dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/out.bin", dir);
    f = fopen(path, "rb");
    assert_non_null(f);
    float *ref = malloc(4 * (W->n + b->n));
    assert_int_equal(fread(ref, 4, W->n + b->n, f), W->n + b->n);
    fclose(f);
    double eW = tu_relerr(W->w, ref, W->n, 1e-6), eb = tu_relerr(b->w, ref + W->n, b->n, 1e-6);
    if (eW > 1e-5 || eb > 1e-5) print_error("%s vs torch: W %g, b %g\n", fl_optim_name(optim), eW, eb);
    assert_true(eW < 1e-5 && eb < 1e-5);
    for (int64_t i = 0; i < W->n; i++) if (!mk[i]) assert_true(W->w[i] == 0.0f);
    free(ref); free(mk);
    fl_adamw_free(&o);
    fl_model_free(&m);
    tu_rmrf(dir);
}

static void test_adamw_linear(void **s) { (void)s; run_case(FL_OPTIM_ADAMW, FL_SCHED_LINEAR, 0.1f, 0.0f, 0); }
static void test_adamw_cosine_clip(void **s) { (void)s; run_case(FL_OPTIM_ADAMW, FL_SCHED_COSINE, 0.0f, 0.5f, 0); }
static void test_adamw_mask(void **s) { (void)s; run_case(FL_OPTIM_ADAMW, FL_SCHED_CONSTANT, 0.1f, 1.0f, 1); }
/* SGD, momentum 0.9, as recovery runs it: linear schedule with warm-up;
 * coupled weight decay with clipping; pruned weights stay exactly 0 */
static void test_sgd_linear(void **s) { (void)s; run_case(FL_OPTIM_SGD, FL_SCHED_LINEAR, 0.0f, 0.0f, 0); }
static void test_sgd_decay_clip(void **s) { (void)s; run_case(FL_OPTIM_SGD, FL_SCHED_COSINE, 0.1f, 0.5f, 0); }
static void test_sgd_mask(void **s) { (void)s; run_case(FL_OPTIM_SGD, FL_SCHED_LINEAR, 0.1f, 1.0f, 1); }

static void test_optim_parse(void **s) {
    (void)s;
    fl_optim o;
    assert_int_equal(fl_optim_parse("sgd", &o), 0);
    assert_int_equal(o, FL_OPTIM_SGD);
    assert_string_equal(fl_optim_name(o), "sgd");
    assert_int_equal(fl_optim_parse("adamw", &o), 0);
    assert_int_equal(o, FL_OPTIM_ADAMW);
    assert_int_equal(fl_optim_parse("adam", &o), -1);
    assert_int_equal(fl_optim_states(FL_OPTIM_ADAMW), 2);
    assert_int_equal(fl_optim_states(FL_OPTIM_SGD), 1);
}

static void test_schedule_values(void **s) {
    (void)s;
    fl_adamw_cfg c = fl_adamw_defaults();
    c.total_steps = 10; c.warmup_steps = 2; c.sched = FL_SCHED_LINEAR;
    assert_true(fabs(fl_lr_factor(&c, 1) - 0.5) < 1e-12);
    assert_true(fabs(fl_lr_factor(&c, 2) - 1.0) < 1e-12);
    assert_true(fabs(fl_lr_factor(&c, 3) - 1.0) < 1e-12);     /* first decay step: full lr */
    assert_true(fabs(fl_lr_factor(&c, 10) - 1.0 / 8) < 1e-12); /* last step: one span-th */
    c.sched = FL_SCHED_COSINE;
    assert_true(fabs(fl_lr_factor(&c, 3) - 1.0) < 1e-12);
    assert_true(fl_lr_factor(&c, 10) < 0.05 && fl_lr_factor(&c, 10) > 0);
    for (int t = 3; t < 10; t++) assert_true(fl_lr_factor(&c, t + 1) < fl_lr_factor(&c, t));
    fl_sched sc;
    assert_int_equal(fl_sched_parse("cosine", &sc), 0);
    assert_int_equal(sc, FL_SCHED_COSINE);
    assert_int_equal(fl_sched_parse("bogus", &sc), -1);
}

int main(void) {
    fl_threads_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_values), cmocka_unit_test(test_adamw_linear),
        cmocka_unit_test(test_adamw_cosine_clip), cmocka_unit_test(test_adamw_mask),
        cmocka_unit_test(test_sgd_linear), cmocka_unit_test(test_sgd_decay_clip), cmocka_unit_test(test_sgd_mask),
        cmocka_unit_test(test_optim_parse),
    };
    return cmocka_run_group_tests_name("adamw", tests, NULL, NULL);
}
