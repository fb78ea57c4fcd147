/* The perplexity evaluator against a PyTorch computation (tests/oracle/
 * ppl_ref.py, using the independent model of torch_ref.py) on the same
 * checkpoint and windows: non-overlapping (SparseGPT/Wanda protocol) and
 * sliding-window, within 1e-4 relative. */
#include "tests/testutil.h"
#include "datasets/tokfile.h"
#include "eval/ppl.h"
#include "model/checkpoint.h"
#include "model/gemm.h"

static char g_dir[256];

static void make_model(fl_family f, const char *sub, char *out, size_t n) {
    fl_config c = { 0 };
    fl_config_family_defaults(&c, f);
    c.vocab = 97; c.d = 32; c.n_layer = 2; c.n_head = 4; c.n_kv_head = f == FL_LLAMA ? 2 : 4; c.head_dim = 8;
    c.d_ff = 48; c.max_pos = 40;
    fl_model m;
    assert_int_equal(fl_model_create(&m, &c), 0);
    fl_model_init_random(&m, 11);
    /* larger weights than the init so predictions are far from uniform */
    for (int i = 0; i < m.n_params; i++) for (int64_t j = 0; j < m.params[i].n; j++) m.params[i].w[j] *= m.params[i].kind == FL_PK_NORM_W ? 1.0f : 8.0f;
    snprintf(out, n, "%s/%s", g_dir, sub);
    assert_int_equal(fl_model_save(&m, out), 0);
    fl_model_free(&m);
}

static void check(fl_family f, int seqlen, int stride, int maxw) {
    char mdir[300], tpath[300], cmd[1200];
    make_model(f, fl_family_name(f), mdir, sizeof mdir);
    int64_t n = 333;
    int32_t *tok = malloc(sizeof(int32_t) * n);
    uint64_t s = 5;
    for (int64_t i = 0; i < n; i++) tok[i] = (int32_t)(tu_rng(&s) % 97);
    snprintf(tpath, sizeof tpath, "%s/tok.bin", g_dir);
    assert_int_equal(fl_tokfile_write(tpath, tok, n), 0);
    fl_model m;
    assert_int_equal(fl_model_load(&m, mdir), 0);
    fl_ppl_result r;
    assert_int_equal(fl_eval_ppl(&m, tok, n, seqlen, stride, maxw, 3, 0, &r), 0);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/oracle/ppl_ref.py %s %s %d %d %d > %s/ref.json",
             mdir, tpath, seqlen, stride, maxw, g_dir);
    assert_int_equal(system(cmd), 0);
    char rp[300];
    snprintf(rp, sizeof rp, "%s/ref.json", g_dir);
    FILE *fp = fopen(rp, "r");
    double nll = 0;
    long long cnt = 0;
    assert_int_equal(fscanf(fp, "{\"nll\": %lf, \"tokens\": %lld}", &nll, &cnt), 2);
    fclose(fp);
    if (fabs(r.nll - nll) > 1e-4 * fabs(nll) || r.tokens != cnt)
        print_error("freelunch nll %.8f over %lld, torch %.8f over %lld\n", r.nll, (long long)r.tokens, nll, cnt);
    assert_int_equal(r.tokens, cnt);
    assert_true(fabs(r.nll - nll) <= 1e-4 * fabs(nll));
    assert_true(fabs(r.ppl - exp(nll)) <= 1e-4 * exp(nll));
    fl_model_free(&m);
    free(tok);
}

static void test_ppl_llama(void **st) { (void)st; check(FL_LLAMA, 40, 0, 0); }
static void test_ppl_gpt2_maxw(void **st) { (void)st; check(FL_GPT2, 32, 0, 5); }
static void test_ppl_opt_stride(void **st) { (void)st; check(FL_OPT, 32, 8, 0); }
static void test_ppl_llama_stride(void **st) { (void)st; check(FL_LLAMA, 40, 13, 0); }

/* Window accounting of the non-overlapping protocol: windows * (seqlen-1). */
static void test_ppl_counts(void **st) {
    (void)st;
    fl_config c = { 0 };
    fl_config_family_defaults(&c, FL_LLAMA);
    c.vocab = 10; c.d = 8; c.n_layer = 1; c.n_head = 2; c.n_kv_head = 1; c.head_dim = 4; c.d_ff = 8; c.max_pos = 16;
    fl_model m;
    assert_int_equal(fl_model_create(&m, &c), 0);   /* all-zero weights: uniform predictions */
    int32_t tok[100];
    for (int i = 0; i < 100; i++) tok[i] = i % 10;
    fl_ppl_result r;
    assert_int_equal(fl_eval_ppl(&m, tok, 100, 16, 0, 0, 4, 0, &r), 0);
    assert_int_equal(r.windows, 6);
    assert_int_equal(r.tokens, 6 * 15);
    assert_true(fabs(r.ppl - 10.0) < 1e-4);   /* uniform over 10 tokens */
    assert_int_equal(fl_eval_ppl(&m, tok, 10, 16, 0, 0, 4, 0, &r), -1);  /* shorter than a window */
    assert_int_equal(fl_eval_ppl(&m, tok, 100, 17, 0, 0, 4, 0, &r), -1); /* beyond the context */
    fl_model_free(&m);
}

/* The inference head computes logits only where a target is counted (a
 * multiple-choice continuation): its NLL there, its argmax, and the mean
 * must be those of the path that computes every row's logits; uncounted
 * rows get NLL 0 and argmax -1. More than one chunk of 256 counted rows,
 * with gaps, so the gathering crosses chunk boundaries. */
static void test_head_counted_rows(void **st) {
    (void)st;
    for (int fam = 0; fam < 2; fam++) {
        fl_config c = { 0 };
        fl_config_family_defaults(&c, fam ? FL_OPT : FL_LLAMA);
        c.vocab = 97; c.d = 32; c.n_layer = 2; c.n_head = 4; c.n_kv_head = fam ? 4 : 2; c.head_dim = 8; c.d_ff = 48; c.max_pos = 40;
        fl_model m;
        assert_int_equal(fl_model_create(&m, &c), 0);
        fl_model_init_random(&m, 5);
        for (int i = 0; i < m.n_params; i++) for (int64_t j = 0; j < m.params[i].n; j++) m.params[i].w[j] *= m.params[i].kind == FL_PK_NORM_W ? 1.0f : 8.0f;
        enum { B = 12, T = 40, N = B * T };
        int32_t tok[N], tg[N], am[N];
        float nll[N], ref[N], *lg = malloc(sizeof(float) * N * 97);
        uint64_t s = 17;
        for (int i = 0; i < N; i++) { tok[i] = (int32_t)(tu_rng(&s) % 97); tg[i] = tu_rng(&s) % 3 ? (int32_t)(tu_rng(&s) % 97) : -1; }
        fl_fwd full = { .B = B, .T = T, .tokens = tok, .targets = tg, .nll = ref, .logits = lg };
        assert_int_equal(fl_forward(&m, fl_range_whole(&m), &full, NULL), 0);
        fl_fwd part = { .B = B, .T = T, .tokens = tok, .targets = tg, .nll = nll, .argmax = am };
        assert_int_equal(fl_forward(&m, fl_range_whole(&m), &part, NULL), 0);
        assert_true(full.n_targets > 256 && part.n_targets == full.n_targets);
        assert_true(fabs(part.loss - full.loss) <= 1e-6 * fabs(full.loss));
        for (int i = 0; i < N; i++) {
            if (tg[i] < 0) { assert_true(nll[i] == 0.0f); assert_int_equal(am[i], -1); continue; }
            assert_true(fabsf(nll[i] - ref[i]) <= 1e-5f * (1 + fabsf(ref[i])));
            int best = 0;
            for (int v = 1; v < 97; v++) if (lg[(size_t)i * 97 + v] > lg[(size_t)i * 97 + best]) best = v;
            assert_int_equal(am[i], best);
        }
        free(lg);
        fl_model_free(&m);
    }
}

static int setup(void **st) { (void)st; tu_tmpdir(g_dir, sizeof g_dir); return 0; }
static int teardown(void **st) { (void)st; tu_rmrf(g_dir); return 0; }

int main(void) {
    fl_threads_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ppl_counts), cmocka_unit_test(test_ppl_llama), cmocka_unit_test(test_ppl_gpt2_maxw),
        cmocka_unit_test(test_ppl_opt_stride), cmocka_unit_test(test_ppl_llama_stride),
        cmocka_unit_test(test_head_counted_rows),
    };
    return cmocka_run_group_tests_name("eval", tests, setup, teardown);
}
