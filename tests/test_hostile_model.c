/* Sizes that come from a user's input (a config, a file, an option) are
 * bounded before memory is taken, and running out of memory on such a path
 * is an error, not an abort. The config.json and shard cases are rows of
 * test_checkpoint.c's table; the calibration sampler's bound is in
 * test_corpus.c; this file has the rest. */
#include "tests/testutil.h"
#include "eval/ppl.h"
#include "model/alloc.h"
#include "model/err.h"
#include "model/model.h"

static fl_config cfg_of(fl_family f, int tied) {
    fl_config c;
    memset(&c, 0, sizeof c);
    fl_config_family_defaults(&c, f);
    c.vocab = 37; c.d = 16; c.n_layer = 2; c.n_head = 4; c.n_kv_head = f == FL_LLAMA || f == FL_QWEN2 ? 2 : 4;
    c.head_dim = 4; c.d_ff = 40; c.max_pos = 24; c.tied = tied;
    return c;
}

/* fl_config_num_params is what fl_model_load compares with the bytes the
 * weights hold, so it must count exactly what fl_model_create makes. */
static void test_num_params_matches_create(void **st) {
    (void)st;
    for (int f = FL_GPT2; f <= FL_QWEN2; f++)
        for (int tied = 0; tied < 2; tied++) {
            fl_config c = cfg_of((fl_family)f, tied);
            fl_model m;
            assert_int_equal(fl_model_create(&m, &c), 0);
            assert_int_equal(fl_config_num_params(&c), fl_model_num_params(&m));
            fl_model_free(&m);
        }
}

/* Every limit is accepted at its value and refused one above, naming it. */
static void test_limits(void **st) {
    (void)st;
    struct { int *field; int max; const char *name; } lim[6];
    fl_config c = cfg_of(FL_LLAMA, 0);
    lim[0].field = &c.vocab;   lim[0].max = FL_MAX_VOCAB;     lim[0].name = "vocabulary size";
    lim[1].field = &c.d;       lim[1].max = FL_MAX_HIDDEN;    lim[1].name = "hidden size";
    lim[2].field = &c.n_layer; lim[2].max = FL_MAX_LAYERS;    lim[2].name = "layer count";
    lim[3].field = &c.n_head;  lim[3].max = FL_MAX_HEADS;     lim[3].name = "attention head count";
    lim[4].field = &c.d_ff;    lim[4].max = FL_MAX_FFN;       lim[4].name = "MLP width";
    lim[5].field = &c.max_pos; lim[5].max = FL_MAX_POSITIONS; lim[5].name = "max positions";
    for (int i = 0; i < 6; i++) {
        c = cfg_of(FL_LLAMA, 0);
        int *fld = lim[i].field;   /* points into c, which the line above reset */
        *fld = lim[i].max;
        if (i == 3) c.n_kv_head = 1;
        assert_int_equal(fl_config_validate(&c, "cfg"), 0);
        *fld = lim[i].max + 1;
        assert_int_equal(fl_config_validate(&c, "cfg"), -1);
        if (!strstr(fl_errmsg(), lim[i].name) || !strstr(fl_errmsg(), "out of range"))
            fail_msg("limit %s: message \"%s\"", lim[i].name, fl_errmsg());
        *fld = 2147483647;   /* products of it would overflow an int */
        assert_int_equal(fl_config_validate(&c, "cfg"), -1);
    }
    /* RoPE tables are computed, so the weights cannot bound them */
    c = cfg_of(FL_LLAMA, 0);
    c.max_pos = FL_MAX_POSITIONS; c.n_head = 1; c.n_kv_head = 1; c.head_dim = 128;
    assert_int_equal(fl_config_validate(&c, "cfg"), 0);
    c.head_dim = 130;
    assert_int_equal(fl_config_validate(&c, "cfg"), -1);
    assert_non_null(strstr(fl_errmsg(), "RoPE tables"));
    /* within every limit but too many parameters together */
    c = cfg_of(FL_LLAMA, 0);
    c.n_layer = FL_MAX_LAYERS; c.d = FL_MAX_HIDDEN; c.d_ff = FL_MAX_FFN; c.n_head = 1024; c.n_kv_head = 1; c.head_dim = 64;
    assert_int_equal(fl_config_validate(&c, "cfg"), -1);
    assert_non_null(strstr(fl_errmsg(), "more than freelunch's limit"));
}

/* Sizes so large the header arithmetic would wrap: NULL, not a tiny block. */
static void test_try_alloc(void **st) {
    (void)st;
    assert_null(fl_try_alloc(SIZE_MAX));
    assert_null(fl_try_alloc(SIZE_MAX - 8));
    assert_null(fl_try_allocf(SIZE_MAX / 2));
    float *p = fl_try_allocf(16);
    assert_non_null(p);
    for (int i = 0; i < 16; i++) assert_true(p[i] == 0.0f);
    fl_free(p);
}

/* --batch 2^24 on 100 tokens: the buffers follow the 3 windows there are. */
static void test_eval_batch_by_data(void **st) {
    (void)st;
    fl_config c = cfg_of(FL_LLAMA, 0);
    fl_model m;
    assert_int_equal(fl_model_create(&m, &c), 0);
    fl_model_init_random(&m, 3);
    int32_t tok[100];
    for (int i = 0; i < 100; i++) tok[i] = (i * 7) % c.vocab;
    fl_ppl_result a, b;
    assert_int_equal(fl_eval_ppl(&m, tok, 100, 24, 0, 0, 4, 0, &a), 0);
    fl_mem_reset_peak();
    size_t live = fl_mem_live();
    assert_int_equal(fl_eval_ppl(&m, tok, 100, 24, 0, 0, 1 << 24, 0, &b), 0);
    assert_true(fl_mem_peak() - live < ((size_t)16 << 20));   /* 2^24 windows would be 3 GB */
    assert_int_equal(a.windows, 4);
    assert_int_equal(b.windows, 4);
    assert_true(fabs(a.nll - b.nll) < 1e-5);
    fl_model_free(&m);
}

int main(void) {
    const struct CMUnitTest t[] = {
        cmocka_unit_test(test_num_params_matches_create),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_try_alloc),
        cmocka_unit_test(test_eval_batch_by_data),
    };
    return cmocka_run_group_tests(t, NULL, NULL);
}
