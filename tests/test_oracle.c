/* PyTorch oracle tests: freelunch's forward and backward against an
 * independent float64 PyTorch implementation of the four families
 * (tests/oracle/torch_ref.py), on random small HF model directories made by
 * tests/oracle/gen_cases.py (gpt2 with and without the "transformer." prefix,
 * fp16; opt; llama with GQA untied, llama tied bf16; qwen2; llama with
 * Llama-3.1's rope_scaling and head_dim != hidden/heads; qwen2 with linear
 * rope_scaling; opt-350m's post-LN OPT with project_in/out).
 *
 *   full_<case>   whole model: logits, mean loss and the gradient of every
 *                 parameter, within 1e-4 relative (max abs diff / max abs ref).
 *   subs_<case>   submodels (one linear, attention and MLP of block 1, block
 *                 0, blocks 0..1) with loss = sum(out * R): out, dX and the
 *                 gradients of the trainable subset; masked weights are zero
 *                 and have exactly zero gradient; frozen parameters get none.
 *   save_roundtrip  freelunch saves each model (fl_model_save) and
 *                 torch_ref.py loads the HF directory: same logits.
 *
 * Needs /usr/bin/python3 with torch (Debian python3-torch); run from the
 * repository root (the tests/oracle scripts are found relative to it).
 * FL_KEEP_ORACLE=1 keeps the generated cases and prints where. */
#include "tests/testutil.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "model/model.h"
#include "model/safetensors.h"
#include <cjson/cJSON.h>
#include <sys/stat.h>

#define TOL 1e-4
#define PY "/usr/bin/python3"
#define GEN "tests/oracle/gen_cases.py"
#define REF "tests/oracle/torch_ref.py"

static const char *CASES[] = { "gpt2_a", "gpt2_b_f16", "opt", "llama_gqa", "llama_tied_bf16", "qwen2", "llama3_rope",
                                "qwen2_linear_rope", "opt_postln_proj" };
#define NCASES ((int)(sizeof CASES / sizeof *CASES))

static char g_tmp[2048], g_cases[2200];
static char g_gen_err[8192];   /* non-empty: case generation failed */
static double g_worst;       /* worst relative error over the whole run */

/* ---- helpers ------------------------------------------------------------ */

static void require_cases(void) {
    if (g_gen_err[0]) fail_msg("%s", g_gen_err);
}

static void load_model(fl_model *m, const char *dir) {
    if (fl_model_load(m, dir) != 0) fail_msg("fl_model_load(%s): %s", dir, fl_errmsg());
}

static void open_st(fl_st_file *f, const char *path) {
    if (fl_st_open(f, path) != 0) fail_msg("fl_st_open(%s): %s", path, fl_errmsg());
}

/* The tensor `name` of f as fp32 (malloc'd); *numel and shape when asked. */
static float *st_get(const fl_st_file *f, const char *name, int64_t *numel, int64_t *shape0, int64_t *shape1) {
    const fl_st_tensor *t = fl_st_find(f, name);
    if (!t) fail_msg("%s: reference tensor %s missing", f->path, name);
    float *x = malloc(sizeof(float) * (size_t)(t->numel > 0 ? t->numel : 1));
    assert_non_null(x);
    if (fl_st_read_f32(f, t, x) != 0) fail_msg("fl_st_read_f32(%s): %s", name, fl_errmsg());
    if (numel) *numel = t->numel;
    if (shape0) *shape0 = t->ndim > 0 ? t->shape[0] : 1;
    if (shape1) *shape1 = t->ndim > 1 ? t->shape[1] : 1;
    return x;
}

static int32_t *to_i32(const float *x, int64_t n) {
    int32_t *o = malloc(sizeof(int32_t) * (size_t)n);
    assert_non_null(o);
    for (int64_t i = 0; i < n; i++) o[i] = (int32_t)lrintf(x[i]);
    return o;
}

/* Asserts relerr(got, ref) <= TOL (max abs diff / max(max |ref|, floor_))
 * and returns it; on failure names the tensor and its worst entry. */
static double check(const char *what, const char *tensor, const float *got, const float *ref, int64_t n, double floor_) {
    double e = tu_relerr(got, ref, (size_t)n, floor_);
    if (e > g_worst) g_worst = e;
    if (!(e <= TOL)) {
        int64_t worst = 0;
        double wd = -1;
        for (int64_t i = 0; i < n; i++) {
            double d = fabs((double)got[i] - ref[i]);
            if (d != d || d > wd) { wd = d != d ? INFINITY : d; worst = i; }
        }
        fail_msg("%s: %s differs from the PyTorch reference: relative error %.3g > %g "
                 "(worst at flat index %lld: freelunch %.9g, reference %.9g)",
                 what, tensor, e, TOL, (long long)worst, got[worst], ref[worst]);
    }
    return e;
}

static double max_abs(const float *x, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s = fmax(s, fabs(x[i]));
    return s;
}

/* Largest |x| over the "grad." tensors of a reference file. */
static double grad_scale(const fl_st_file *f) {
    double s = 0;
    for (int i = 0; i < f->n; i++) {
        if (strncmp(f->t[i].name, "grad.", 5) != 0) continue;
        int64_t n;
        float *x = st_get(f, f->t[i].name, &n, NULL, NULL);
        s = fmax(s, max_abs(x, n));
        free(x);
    }
    return s;
}

/* A gradient against its reference. Some gradients are analytically zero (a
 * key bias in gpt2/opt cannot change the softmax): the float64 reference
 * holds ~1e-17 there and float32 rounding would be a huge ratio, so such a
 * tensor (max |ref| < 1e-9 of `scale`, the largest reference gradient) is
 * compared on `scale` instead: its absolute error must be below TOL * scale.
 * Returns the error and sets *zero for those. */
static double check_grad(const char *what, const char *tensor, const float *got, const float *ref, int64_t n,
                         double scale, int *zero) {
    *zero = max_abs(ref, n) < 1e-9 * scale;
    return check(what, tensor, got, ref, n, *zero ? scale : 1e-12);
}

/* ---- group setup: generate the cases ----------------------------------- */

static int setup(void **state) {
    (void)state;
    tu_tmpdir(g_tmp, sizeof g_tmp);
    snprintf(g_cases, sizeof g_cases, "%s/cases", g_tmp);
    if (access(GEN, R_OK) != 0 || access(REF, R_OK) != 0) {
        snprintf(g_gen_err, sizeof g_gen_err, "%s not found: run the oracle tests from the repository root", GEN);
        return 0;
    }
    if (access(PY, X_OK) != 0) {
        snprintf(g_gen_err, sizeof g_gen_err, "%s missing: the oracle needs Debian's python3-torch (make deps)", PY);
        return 0;
    }
    char cmd[4600];
    snprintf(cmd, sizeof cmd, "%s %s '%s'", PY, GEN, g_cases);
    int rc = system(cmd);
    if (rc != 0)
        snprintf(g_gen_err, sizeof g_gen_err, "`%s` failed (status %d): no oracle cases", cmd, rc);
    return 0;   /* each test then fails with g_gen_err */
}

static int teardown(void **state) {
    (void)state;
    printf("oracle: worst relative error over all checks %.3g (tolerance %g)\n", g_worst, TOL);
    if (getenv("FL_KEEP_ORACLE")) printf("oracle: cases kept in %s\n", g_cases);
    else tu_rmrf(g_tmp);
    return 0;
}

/* ---- whole model ---------------------------------------------------------- */

static void test_full(void **state) {
    const char *name = *state;
    require_cases();
    char dir[2400], path[2600];
    snprintf(dir, sizeof dir, "%s/%s", g_cases, name);
    snprintf(path, sizeof path, "%s/ref.safetensors", dir);
    fl_model m;
    load_model(&m, dir);
    fl_st_file ref;
    open_st(&ref, path);
    int64_t nt, B, T, nl, V;
    float *tokf = st_get(&ref, "tokens", &nt, &B, &T);
    float *tgf = st_get(&ref, "targets", NULL, NULL, NULL);
    float *ref_logits = st_get(&ref, "logits", &nl, NULL, &V);
    float *ref_loss = st_get(&ref, "loss", NULL, NULL, NULL);
    assert_int_equal(V, m.cfg.vocab);
    assert_int_equal(nl, nt * V);
    int32_t *tok = to_i32(tokf, nt), *tg = to_i32(tgf, nt);
    int64_t counted = 0;
    for (int64_t i = 0; i < nt; i++) counted += tg[i] >= 0;

    fl_model_set_all_trainable(&m, 1);
    fl_model_zero_grad(&m);
    float *logits = calloc((size_t)nl, sizeof(float));
    fl_acts *acts = fl_acts_new();
    fl_fwd a = { .B = (int)B, .T = (int)T, .tokens = tok, .targets = tg, .logits = logits };
    fl_range r = fl_range_whole(&m);
    if (fl_forward(&m, r, &a, acts) != 0) fail_msg("%s: fl_forward: %s", name, fl_errmsg());
    if (fl_backward(&m, r, acts, NULL, NULL) != 0) fail_msg("%s: fl_backward: %s", name, fl_errmsg());

    double e_logits = check(name, "logits", logits, ref_logits, nl, 1e-12);
    assert_int_equal(a.n_targets, counted);
    double e_loss = fabs(a.loss - ref_loss[0]) / fabs(ref_loss[0]);
    if (e_loss > g_worst) g_worst = e_loss;
    if (!(e_loss <= TOL)) fail_msg("%s: loss %.9g, reference %.9g (relative error %.3g)", name, a.loss, ref_loss[0], e_loss);

    /* every parameter has a reference gradient, and vice versa */
    int n_ref_grads = 0;
    for (int i = 0; i < ref.n; i++) n_ref_grads += strncmp(ref.t[i].name, "grad.", 5) == 0;
    if (n_ref_grads != m.n_params)
        fail_msg("%s: freelunch has %d parameters, the reference %d gradients", name, m.n_params, n_ref_grads);
    double scale = grad_scale(&ref), e_grad = 0, e_zero = 0;
    const char *worst_name = "";
    int n_zero = 0;
    for (int i = 0; i < m.n_params; i++) {
        fl_param *p = &m.params[i];
        char gn[96];
        snprintf(gn, sizeof gn, "grad.%s", p->name);
        int64_t n;
        float *g = st_get(&ref, gn, &n, NULL, NULL);
        if (n != p->n) fail_msg("%s: %s has %lld values, its reference gradient %lld", name, p->name, (long long)p->n, (long long)n);
        assert_non_null(p->g);
        int zero;
        double e = check_grad(name, gn, p->g, g, n, scale, &zero);
        if (zero) { n_zero++; e_zero = fmax(e_zero, e); }
        else if (e > e_grad) { e_grad = e; worst_name = p->name; }
        free(g);
    }
    printf("full %-16s logits %.2e  loss %.2e  grads %.2e (worst %s, %d tensors)",
           name, e_logits, e_loss, e_grad, worst_name, m.n_params);
    if (n_zero) printf("; %d analytically zero gradients: abs error %.2e of the gradient scale", n_zero, e_zero);
    printf("\n");

    fl_acts_free(acts);
    free(logits); free(tok); free(tg); free(tokf); free(tgf); free(ref_logits); free(ref_loss);
    fl_st_close(&ref);
    fl_model_free(&m);
}

/* ---- submodels ------------------------------------------------------------ */

static int json_int(const cJSON *o, const char *k) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(j)) fail_msg("subs.json: \"%s\" missing", k);
    return j->valueint;
}

static const char *json_str(const cJSON *o, const char *k) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsString(j)) fail_msg("subs.json: \"%s\" missing", k);
    return j->valuestring;
}

static int in_list(const cJSON *arr, const char *name) {
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) if (cJSON_IsString(e) && strcmp(e->valuestring, name) == 0) return 1;
    return 0;
}

static fl_param *find(fl_model *m, const char *name, const char *sub) {
    fl_param *p = fl_model_find(m, name);
    if (!p) fail_msg("%s: freelunch has no parameter %s", sub, name);
    return p;
}

/* One submodel case: returns the worst relative error. */
static double run_sub(const char *dir, const cJSON *spec, const char *what, double *zero_err) {
    const char *kind = json_str(spec, "kind");
    const cJSON *masks = cJSON_GetObjectItemCaseSensitive(spec, "masks");
    const cJSON *trainable = cJSON_GetObjectItemCaseSensitive(spec, "trainable");
    const int B = json_int(spec, "B"), T = json_int(spec, "T"), N = B * T;
    char path[2600];
    snprintf(path, sizeof path, "%s/%s", dir, json_str(spec, "file"));
    fl_model m;
    load_model(&m, dir);
    fl_st_file st;
    open_st(&st, path);
    double worst = 0;

    /* masks first (they zero the pruned weights), then the trainable set */
    const cJSON *e;
    cJSON_ArrayForEach(e, masks) {
        fl_param *p = find(&m, e->valuestring, what);
        char mn[96];
        snprintf(mn, sizeof mn, "mask.%s", p->name);
        int64_t n;
        float *mf = st_get(&st, mn, &n, NULL, NULL);
        assert_int_equal(n, p->n);
        uint8_t *mk = malloc((size_t)n);
        for (int64_t i = 0; i < n; i++) mk[i] = mf[i] != 0.0f;
        if (fl_param_set_mask(p, mk) != 0) fail_msg("%s: fl_param_set_mask(%s): %s", what, p->name, fl_errmsg());
        for (int64_t i = 0; i < n; i++)
            if (!mk[i] && p->w[i] != 0.0f) fail_msg("%s: %s[%lld] masked but not zeroed", what, p->name, (long long)i);
        free(mk); free(mf);
    }
    cJSON_ArrayForEach(e, trainable) fl_param_set_trainable(find(&m, e->valuestring, what), 1);

    int64_t nx, nout, xin, oc;
    float *x = st_get(&st, "x", &nx, NULL, &xin);
    float *R = st_get(&st, "r", &nout, NULL, &oc);
    float *out_ref = st_get(&st, "out", NULL, NULL, NULL);
    float *dx_ref = st_get(&st, "dx", NULL, NULL, NULL);
    assert_int_equal(nx, (int64_t)N * xin);
    float *out = calloc((size_t)nout, sizeof(float)), *dx = calloc((size_t)nx, sizeof(float));
    int is_range = strcmp(kind, "linear") != 0;
    fl_range r = { 0 };
    fl_acts *acts = NULL;

    if (!is_range) {
        char wn[96], bn[96];
        const char *pn = json_str(spec, "param");
        snprintf(wn, sizeof wn, "%s.weight", pn);
        snprintf(bn, sizeof bn, "%s.bias", pn);
        fl_param *w = find(&m, wn, what), *b = fl_model_find(&m, bn);
        assert_int_equal(w->cols, xin);
        assert_int_equal(w->rows, oc);
        fl_linear_forward(w, b, x, out, N);
        fl_linear_backward(w, b, x, R, dx, N);
    } else {
        if (strcmp(kind, "attn") == 0) r = fl_range_attn(json_int(spec, "layer"));
        else if (strcmp(kind, "mlp") == 0) r = fl_range_mlp(json_int(spec, "layer"));
        else r = fl_range_blocks(json_int(spec, "first"), json_int(spec, "last"));
        assert_int_equal(r.s0, json_int(spec, "s0"));
        assert_int_equal(r.s1, json_int(spec, "s1"));
        assert_int_equal(xin, m.cfg.d);
        acts = fl_acts_new();
        fl_fwd a = { .B = B, .T = T, .x_in = x, .x_out = out };
        if (fl_forward(&m, r, &a, acts) != 0) fail_msg("%s: fl_forward: %s", what, fl_errmsg());
        if (fl_backward(&m, r, acts, R, dx) != 0) fail_msg("%s: fl_backward: %s", what, fl_errmsg());
    }
    worst = fmax(worst, check(what, "out", out, out_ref, nout, 1e-12));
    worst = fmax(worst, check(what, "dx", dx, dx_ref, nx, 1e-12));
    const double gscale = grad_scale(&st);

    /* Trainable gradients against the reference; masked entries exactly 0;
     * frozen parameters without gradient. */
    for (int pass = 0; pass < (is_range ? 2 : 1); pass++) {
        if (pass == 1) {
            /* Again without dx_in: backward may stop below the lowest
             * trainable parameter, the gradients must not change. */
            fl_model_zero_grad(&m);
            fl_fwd a = { .B = B, .T = T, .x_in = x, .x_out = out };
            if (fl_forward(&m, r, &a, acts) != 0) fail_msg("%s: fl_forward: %s", what, fl_errmsg());
            if (fl_backward(&m, r, acts, R, NULL) != 0) fail_msg("%s: fl_backward without dx: %s", what, fl_errmsg());
        }
        for (int i = 0; i < m.n_params; i++) {
            fl_param *p = &m.params[i];
            if (!in_list(trainable, p->name)) {
                if (p->g)
                    for (int64_t j = 0; j < p->n; j++)
                        if (p->g[j] != 0.0f) fail_msg("%s: frozen %s got a gradient", what, p->name);
                continue;
            }
            char gn[96];
            snprintf(gn, sizeof gn, "grad.%s", p->name);
            int64_t n;
            float *g = st_get(&st, gn, &n, NULL, NULL);
            assert_int_equal(n, p->n);
            if (!p->g) fail_msg("%s: trainable %s has no gradient buffer", what, p->name);
            char tn[128];
            snprintf(tn, sizeof tn, "%s%s", gn, pass ? " (backward without dx_in)" : "");
            int zero;
            double eg = check_grad(what, tn, p->g, g, n, gscale, &zero);
            if (zero) *zero_err = fmax(*zero_err, eg);
            else worst = fmax(worst, eg);
            if (p->mask)
                for (int64_t j = 0; j < p->n; j++)
                    if (!p->mask[j] && p->g[j] != 0.0f)
                        fail_msg("%s: masked %s[%lld] has gradient %g", what, p->name, (long long)j, p->g[j]);
            free(g);
        }
    }
    if (worst > g_worst) g_worst = worst;
    fl_acts_free(acts);
    free(x); free(R); free(out_ref); free(dx_ref); free(out); free(dx);
    fl_st_close(&st);
    fl_model_free(&m);
    return worst;
}

static void test_subs(void **state) {
    const char *name = *state;
    require_cases();
    char dir[2400], path[2600];
    snprintf(dir, sizeof dir, "%s/%s", g_cases, name);
    snprintf(path, sizeof path, "%s/subs.json", dir);
    char *js = tu_read_all(path);
    cJSON *arr = cJSON_Parse(js);
    if (!cJSON_IsArray(arr)) fail_msg("%s: not a JSON array", path);
    int n = 0;
    const cJSON *spec;
    cJSON_ArrayForEach(spec, arr) {
        char what[160];
        snprintf(what, sizeof what, "%s/%s", name, json_str(spec, "name"));
        double ez = 0, e = run_sub(dir, spec, what, &ez);
        const cJSON *tr = cJSON_GetObjectItemCaseSensitive(spec, "trainable");
        const cJSON *mk = cJSON_GetObjectItemCaseSensitive(spec, "masks");
        printf("sub  %-26s out/dx/grads %.2e  (%d trainable, %d masked)", what, e,
               cJSON_GetArraySize(tr), cJSON_GetArraySize(mk));
        if (ez > 0) printf("; analytically zero gradients: abs error %.2e of the gradient scale", ez);
        printf("\n");
        n++;
    }
    assert_true(n >= 5);
    cJSON_Delete(arr);
    free(js);
}

/* ---- save, then load in PyTorch ------------------------------------------- */

static void test_save_roundtrip(void **state) {
    (void)state;
    require_cases();
    char cmd[16384];
    int k = snprintf(cmd, sizeof cmd, "%s %s logits", PY, REF);
    float *c_logits[NCASES];
    int64_t nlog[NCASES];
    char saved[2200];
    snprintf(saved, sizeof saved, "%s/saved", g_tmp);
    mkdir(saved, 0755);
    for (int c = 0; c < NCASES; c++) {
        char dir[2400], path[2600], out[2600], tpath[2600];
        snprintf(dir, sizeof dir, "%s/%s", g_cases, CASES[c]);
        snprintf(path, sizeof path, "%s/ref.safetensors", dir);
        fl_model m;
        load_model(&m, dir);
        fl_st_file ref;
        open_st(&ref, path);
        int64_t nt, B, T;
        float *tokf = st_get(&ref, "tokens", &nt, &B, &T);
        float *tgf = st_get(&ref, "targets", NULL, NULL, NULL);
        float *ref_logits = st_get(&ref, "logits", &nlog[c], NULL, NULL);
        int32_t *tok = to_i32(tokf, nt), *tg = to_i32(tgf, nt);
        /* freelunch's own logits, on the inference path (no saved activations) */
        c_logits[c] = calloc((size_t)nlog[c], sizeof(float));
        fl_fwd a = { .B = (int)B, .T = (int)T, .tokens = tok, .targets = tg, .logits = c_logits[c] };
        if (fl_forward(&m, fl_range_whole(&m), &a, NULL) != 0) fail_msg("%s: fl_forward: %s", CASES[c], fl_errmsg());
        char what[128];
        snprintf(what, sizeof what, "%s (inference forward)", CASES[c]);
        check(what, "logits", c_logits[c], ref_logits, nlog[c], 1e-12);

        snprintf(out, sizeof out, "%s/%s", saved, CASES[c]);
        if (fl_model_save(&m, out) != 0) fail_msg("fl_model_save(%s): %s", out, fl_errmsg());
        snprintf(tpath, sizeof tpath, "%s/%s.tokens.safetensors", saved, CASES[c]);
        fl_st_out t = { "tokens", tokf, 2, { B, T } };
        if (fl_st_write(tpath, &t, 1) != 0) fail_msg("fl_st_write(%s): %s", tpath, fl_errmsg());
        k += snprintf(cmd + k, sizeof cmd - k, " '%s' '%s' '%s/%s.logits.safetensors'", out, tpath, saved, CASES[c]);
        assert_true(k < (int)sizeof cmd);
        free(tok); free(tg); free(tokf); free(tgf); free(ref_logits);
        fl_st_close(&ref);
        fl_model_free(&m);
    }
    int rc = system(cmd);
    if (rc != 0) fail_msg("`%s` failed (status %d): PyTorch could not load the saved models", cmd, rc);
    for (int c = 0; c < NCASES; c++) {
        char path[2600];
        snprintf(path, sizeof path, "%s/%s.logits.safetensors", saved, CASES[c]);
        fl_st_file st;
        open_st(&st, path);
        int64_t n;
        float *lg = st_get(&st, "logits", &n, NULL, NULL);
        assert_int_equal(n, nlog[c]);
        char what[128];
        snprintf(what, sizeof what, "%s saved by freelunch, loaded by PyTorch", CASES[c]);
        double e = check(what, "logits", lg, c_logits[c], n, 1e-12);
        printf("save %-16s PyTorch logits of the saved model vs freelunch %.2e\n", CASES[c], e);
        free(lg);
        free(c_logits[c]);
        fl_st_close(&st);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        { "full_gpt2_a", test_full, NULL, NULL, (void *)"gpt2_a" },
        { "full_gpt2_b_f16", test_full, NULL, NULL, (void *)"gpt2_b_f16" },
        { "full_opt", test_full, NULL, NULL, (void *)"opt" },
        { "full_llama_gqa", test_full, NULL, NULL, (void *)"llama_gqa" },
        { "full_llama_tied_bf16", test_full, NULL, NULL, (void *)"llama_tied_bf16" },
        { "full_qwen2", test_full, NULL, NULL, (void *)"qwen2" },
        { "full_llama3_rope", test_full, NULL, NULL, (void *)"llama3_rope" },
        { "full_qwen2_linear_rope", test_full, NULL, NULL, (void *)"qwen2_linear_rope" },
        { "full_opt_postln_proj", test_full, NULL, NULL, (void *)"opt_postln_proj" },
        { "subs_gpt2_a", test_subs, NULL, NULL, (void *)"gpt2_a" },
        { "subs_llama_gqa", test_subs, NULL, NULL, (void *)"llama_gqa" },
        { "subs_opt_postln_proj", test_subs, NULL, NULL, (void *)"opt_postln_proj" },
        { "save_roundtrip", test_save_roundtrip, NULL, NULL, NULL },
    };
    return cmocka_run_group_tests_name("oracle", tests, setup, teardown);
}
