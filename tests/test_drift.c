/* Activation drift (eval/drift.c) against a float64 PyTorch computation
 * (tests/oracle/drift_ref.py, on the independent model of torch_ref.py):
 * a random micro model, a copy magnitude-pruned per linear and perturbed
 * where recovery would change it (embedding, a norm, kept weights), both
 * run on the same windows in batches that do not divide them; every
 * linear's accumulated and local drift, every block output's drift and the
 * summaries within 1e-4 relative. Needs /usr/bin/python3 with torch (make
 * deps); run from the repository root. */
#include "tests/testutil.h"
#include "datasets/tokfile.h"
#include "eval/drift.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include <cjson/cJSON.h>

#define TOL 1e-4

static char g_dir[256];

static void make_dense(fl_family f, fl_model *m) {
    fl_config c = { 0 };
    fl_config_family_defaults(&c, f);
    c.vocab = 97; c.d = 32; c.n_layer = 3; c.n_head = 4; c.n_kv_head = f == FL_LLAMA ? 2 : 4; c.head_dim = 8;
    c.d_ff = 48; c.max_pos = 40;
    assert_int_equal(fl_model_create(m, &c), 0);
    fl_model_init_random(m, 7);
    /* non-trivial norms and biases: init leaves them 1 and 0 */
    for (int i = 0; i < m->n_params; i++) {
        fl_param *p = &m->params[i];
        if (p->kind == FL_PK_NORM_W || p->kind == FL_PK_NORM_B || p->kind == FL_PK_LINEAR_B) {
            tu_fill(p->w, (size_t)p->n, 0.2f, (uint64_t)i + 1);
            if (p->kind == FL_PK_NORM_W) for (int64_t j = 0; j < p->n; j++) p->w[j] += 1.0f;
        }
    }
}

static int by_abs(const void *a, const void *b) {
    float x = fabsf(*(const float *)a), y = fabsf(*(const float *)b);
    return (x > y) - (x < y);
}

/* Magnitude pruning of 40% of each block linear, then what recovery or
 * retraining would change: the embedding, a norm, the kept weights of one
 * linear. */
static void prune_and_perturb(fl_model *m) {
    for (int l = 0; l < m->cfg.n_layer; l++) {
        fl_param *lw[7];
        int k = fl_layer_linears(m, l, lw, NULL, NULL);
        for (int i = 0; i < k; i++) {
            fl_param *p = lw[i];
            float *s = malloc(sizeof(float) * (size_t)p->n);
            memcpy(s, p->w, sizeof(float) * (size_t)p->n);
            qsort(s, (size_t)p->n, sizeof(float), by_abs);
            float thr = fabsf(s[p->n * 2 / 5]);
            uint8_t *mask = malloc((size_t)p->n);
            for (int64_t j = 0; j < p->n; j++) mask[j] = fabsf(p->w[j]) >= thr;
            assert_int_equal(fl_param_set_mask(p, mask), 0);
            free(mask);
            free(s);
        }
    }
    for (int64_t j = 0; j < m->embed->n; j++) m->embed->w[j] *= 1.05f;
    fl_param *nw = m->layers[1].mlp_norm_w;
    for (int64_t j = 0; j < nw->n; j++) nw->w[j] *= 0.9f;
    fl_param *o = m->layers[2].o_w;
    for (int64_t j = 0; j < o->n; j++) if (o->w[j] != 0.0f) o->w[j] *= 1.1f;
}

static int close_to(double got, double ref) { return fabs(got - ref) <= TOL * fabs(ref) + 1e-12; }

static double jnum(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v)) fail_msg("oracle output: no number '%s'", k);
    return v->valuedouble;
}

static void check_family(fl_family f) {
    char dd[400], pd[400], tp[400], out[400], cmd[2000];
    snprintf(dd, sizeof dd, "%s/%s_dense", g_dir, fl_family_name(f));
    snprintf(pd, sizeof pd, "%s/%s_pruned", g_dir, fl_family_name(f));
    snprintf(tp, sizeof tp, "%s/tok.bin", g_dir);
    snprintf(out, sizeof out, "%s/ref.json", g_dir);
    fl_model dense, pruned;
    make_dense(f, &dense);
    assert_int_equal(fl_model_save(&dense, dd), 0);
    assert_int_equal(fl_model_load(&pruned, dd), 0);
    prune_and_perturb(&pruned);
    assert_int_equal(fl_model_save(&pruned, pd), 0);
    const int nwin = 5, T = 12;
    int32_t tok[5 * 12];
    uint64_t s = 3;
    for (int i = 0; i < nwin * T; i++) tok[i] = (int32_t)(tu_rng(&s) % 97);
    assert_int_equal(fl_tokfile_write(tp, tok, nwin * T), 0);

    fl_drift_result r;
    if (fl_drift_measure(&pruned, &dense, tok, nwin, T, 2, &r) != 0) fail_msg("fl_drift_measure: %s", fl_errmsg());
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 tests/oracle/drift_ref.py %s %s %s %d > %s", pd, dd, tp, T, out);
    assert_int_equal(system(cmd), 0);
    char *text = tu_read_all(out);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    const cJSON *es = cJSON_GetObjectItemCaseSensitive(j, "entries");
    const int k = f == FL_LLAMA ? 7 : 6;
    assert_int_equal(r.n, dense.cfg.n_layer * (k + 1));
    assert_int_equal(cJSON_GetArraySize(es), r.n);
    assert_int_equal(r.tokens, nwin * T);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, es) {
        const fl_drift_entry *g = &r.e[i++];
        assert_string_equal(g->name, cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring);
        double acc = jnum(e, "accumulated");
        if (!close_to(g->accumulated, acc)) fail_msg("%s: accumulated drift %.9g, oracle %.9g", g->name, g->accumulated, acc);
        assert_true(acc > 1e-6);   /* the perturbations reach every entry */
        if (cJSON_GetObjectItemCaseSensitive(e, "local")) {
            assert_false(g->block);
            double loc = jnum(e, "local");
            if (!close_to(g->local, loc)) fail_msg("%s: local error %.9g, oracle %.9g", g->name, g->local, loc);
        } else {
            assert_true(g->block);
            assert_true(isnan(g->local));
        }
    }
    if (!close_to(r.mean, jnum(j, "mean")) || !close_to(r.max, jnum(j, "max")) || !close_to(r.out, jnum(j, "out")))
        fail_msg("summaries: mean %.9g max %.9g out %.9g; oracle %.9g %.9g %.9g", r.mean, r.max, r.out, jnum(j, "mean"),
                 jnum(j, "max"), jnum(j, "out"));
    /* llama's layer 0 q reads the embedding through RMSNorm: only the
     * embedding's scale differs, which the norm removes (up to its eps), so
     * what reaches q is q's own error */
    if (f == FL_LLAMA) assert_true(fabs(r.e[0].accumulated - r.e[0].local) <= 1e-3 * r.e[0].local);
    cJSON_Delete(j);
    fl_drift_free(&r);

    /* the dense model against itself: no drift anywhere */
    fl_model twin;
    assert_int_equal(fl_model_load(&twin, dd), 0);
    assert_int_equal(fl_drift_measure(&twin, &dense, tok, nwin, T, 3, &r), 0);
    for (int q = 0; q < r.n; q++) {
        assert_true(r.e[q].accumulated == 0.0);
        if (!r.e[q].block) assert_true(r.e[q].local == 0.0);
    }
    assert_true(r.mean == 0.0 && r.max == 0.0 && r.out == 0.0);
    fl_drift_free(&r);
    /* no windows: an empty result */
    assert_int_equal(fl_drift_measure(&twin, &dense, tok, 0, T, 3, &r), 0);
    assert_int_equal(r.n, 0);
    fl_model_free(&twin);
    fl_model_free(&pruned);
    fl_model_free(&dense);
}

static void test_drift_llama(void **st) { (void)st; check_family(FL_LLAMA); }
static void test_drift_opt(void **st) { (void)st; check_family(FL_OPT); }

/* Models of different shapes are refused with one message. */
static void test_drift_mismatch(void **st) {
    (void)st;
    fl_model a, b;
    make_dense(FL_LLAMA, &a);
    make_dense(FL_OPT, &b);
    int32_t tok[12] = { 0 };
    fl_drift_result r;
    assert_int_equal(fl_drift_measure(&a, &b, tok, 1, 12, 1, &r), -1);
    assert_non_null(strstr(fl_errmsg(), "architecture"));
    fl_model_free(&a);
    fl_model_free(&b);
}

static int setup(void **st) { (void)st; tu_tmpdir(g_dir, sizeof g_dir); return 0; }
static int teardown(void **st) { (void)st; tu_rmrf(g_dir); return 0; }

int main(void) {
    fl_threads_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drift_llama), cmocka_unit_test(test_drift_opt), cmocka_unit_test(test_drift_mismatch),
    };
    return cmocka_run_group_tests_name("drift", tests, setup, teardown);
}
