/* The ladder of model sizes (issue 14): every rung's configuration (shapes,
 * parameter counts counted here by hand), one pretraining step of the
 * largest rung, and the multi-model plots and report on hand-made
 * results.csv files: one whose trends go the paper's way and one where they
 * reverse, so every verdict's wording must flip. */
#include "tests/testutil.h"
#include "harness/presets.h"
#include "harness/results.h"
#include "model/adamw.h"
#include "model/err.h"
#include "plots/ladder.h"
#include "plots/plots.h"
#include "reports/report.h"
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const RUNGS[] = { "ladder-2", "tiny", "ladder-6", "ladder-8" };

/* llama: q and o d x d, k and v d x (kv heads x 32), SwiGLU 3 x d x d_ff, two
 * RMSNorms a block, a final norm; the tied embedding vocab x d */
static long long hand_nonemb(int d, int L, int kv, int dff) { return (long long)L * (2LL * d * d + 2LL * d * kv * 32 + 3LL * d * dff + 2 * d) + d; }

static void test_rung_configs(void **st) {
    (void)st;
    static const int LAY[] = { 2, 4, 6, 8 }, D[] = { 128, 192, 256, 288 }, KV[] = { 2, 2, 2, 3 }, FF[] = { 352, 512, 688, 768 };
    double lo = 0, hi = 0, prev = 0;
    for (int i = 0; i < 4; i++) {
        const fl_preset *p = fl_preset_find(RUNGS[i]);
        assert_non_null(p);
        assert_int_equal(p->family, FL_LLAMA);
        assert_int_equal(p->n_layer, LAY[i]);
        assert_int_equal(p->d, D[i]);
        assert_int_equal(p->vocab, 4096);              /* one tokenizer for every rung */
        assert_int_equal(p->seqlen, 256);
        assert_int_equal(fl_preset_tokens(p), 2457600); /* one token budget */
        assert_int_equal(p->d % p->n_head, 0);
        assert_int_equal(p->d / p->n_head, 32);
        assert_int_equal(p->n_head % p->n_kv_head, 0);
        fl_config c;
        fl_preset_config(p, &c);
        assert_int_equal(fl_config_validate(&c, RUNGS[i]), 0);
        fl_model m;
        assert_int_equal(fl_model_create(&m, &c), 0);
        int64_t ne, all = fl_preset_params(p, &ne);
        assert_int_equal(all, fl_model_num_params(&m));
        assert_int_equal(ne, hand_nonemb(D[i], LAY[i], KV[i], FF[i]));
        assert_int_equal(all - ne, 4096LL * D[i]);
        /* shapes of the first block's linears */
        assert_int_equal(m.layers[0].q_w->rows, D[i]);
        assert_int_equal(m.layers[0].k_w->rows, KV[i] * 32);
        assert_int_equal(m.layers[0].up_w->rows, FF[i]);
        fl_model_free(&m);
        assert_true((double)ne > prev);   /* in size order */
        prev = (double)ne;
        if (!i) lo = (double)ne;
        hi = (double)ne;
        /* the learning-rate rule: 3e-3 x 192/d; reconstruction rates tiny's x 192/d */
        assert_true(fabsf(p->lr - 3e-3f * 192.0f / D[i]) < 1e-9f);
        assert_true(fabsf(fl_preset_lr(p, "sublayer") - 3e-3f * 192.0f / D[i]) < 1e-9f);
        assert_true(fabsf(fl_preset_lr(p, "blocks:all") - 1e-3f * 192.0f / D[i]) < 1e-9f);
        assert_true(fabsf(fl_preset_lr(p, "retrain:masklora") - 1e-4f * 192.0f / D[i]) < 1e-10f);
    }
    assert_true(hi / lo >= 16);
    int64_t n2, n8;
    fl_preset_params(fl_preset_find("ladder-2"), &n2);
    fl_preset_params(fl_preset_find("ladder-8"), &n8);
    assert_true((double)n8 / (double)n2 >= 16);
    /* tiny unchanged: the earlier results stay comparable */
    int64_t nt;
    assert_int_equal(fl_preset_params(fl_preset_find("tiny"), &nt), 2361024);
    assert_int_equal(nt, 1574592);
    /* the high-token variants: the same shapes, 20+ tokens per non-embedding parameter */
    static const char *const LONG[][2] = { { "ladder-2-long", "ladder-2" }, { "tiny-long", "tiny" } };
    for (int i = 0; i < 2; i++) {
        const fl_preset *a = fl_preset_find(LONG[i][0]), *b = fl_preset_find(LONG[i][1]);
        assert_non_null(a);
        int64_t ne;
        assert_int_equal(fl_preset_params(a, &ne), fl_preset_params(b, NULL));
        assert_true((double)fl_preset_tokens(a) / (double)ne >= 20);
        assert_true(a->d == b->d && a->n_layer == b->n_layer && a->d_ff == b->d_ff);
    }
    assert_null(fl_preset_find("tiny-gpt2"));   /* removed: never trained or checked */
}

/* One pretraining step (forward, backward, AdamW) of the largest rung on a
 * full-context batch: the loss starts near ln(vocab) and the step lowers it
 * on the same batch. */
static void test_largest_rung_step(void **st) {
    (void)st;
    const fl_preset *big = NULL;
    int64_t bn = 0;
    for (int i = 0; i < FL_N_PRESETS; i++) {
        int64_t ne;
        fl_preset_params(&FL_PRESETS[i], &ne);
        if (ne > bn) { bn = ne; big = &FL_PRESETS[i]; }
    }
    assert_string_equal(big->name, "ladder-8");
    fl_config c;
    fl_preset_config(big, &c);
    fl_model m;
    assert_int_equal(fl_model_create(&m, &c), 0);
    fl_model_init_random(&m, big->seed);
    fl_model_set_all_trainable(&m, 1);
    fl_adamw_cfg oc = fl_adamw_defaults();
    oc.lr = big->lr; oc.total_steps = 10; oc.warmup_steps = 0;
    fl_adamw o;
    assert_int_equal(fl_adamw_init(&o, &m, &oc), 0);
    const int T = big->seqlen;
    int32_t *in = malloc(sizeof(int32_t) * T), *tg = malloc(sizeof(int32_t) * T);
    uint64_t s = 5;
    for (int i = 0; i < T; i++) { in[i] = (int32_t)(tu_rng(&s) % 64); tg[i] = (in[i] + 1) % 64; }
    fl_acts *acts = fl_acts_new();
    double loss[2];
    for (int k = 0; k < 2; k++) {
        fl_fwd a = { .B = 1, .T = T, .tokens = in, .targets = tg };
        assert_int_equal(fl_forward(&m, fl_range_whole(&m), &a, acts), 0);
        loss[k] = a.loss;
        if (k) break;
        assert_int_equal(fl_backward(&m, fl_range_whole(&m), acts, NULL, NULL), 0);
        fl_adamw_step(&o);
    }
    assert_true(isfinite(loss[0]) && fabs(loss[0] - log(4096.0)) < 1.0);
    assert_true(loss[1] < loss[0]);
    fl_acts_free(acts);
    fl_adamw_free(&o);
    fl_model_free(&m);
    free(in); free(tg);
}

/* ---- the multi-model plots and report ----------------------------------------- */

static const char *CRIT[3] = { "magnitude", "wanda", "sparsegpt" };
static const char *REC[3] = { "none", "matrix", "block" };
static const double NE[3] = { 4e5, 1.6e6, 7e6 };
static const int LAYERS[3] = { 2, 4, 8 };

/* ppl of (rung i, criterion c, reconstructor k, seed s). With WAY 1 the
 * paper's way: the criterion gaps shrink with size, drift grows with depth,
 * matrix is worse than block; WAY -1 reverses the size and depth trends. */
static double ppl_of(int way, int i, int c, int k, int s) {
    int ii = way > 0 ? i : 2 - i;
    double base = 200.0 - 40 * i;                       /* larger rungs are better models */
    double gap = c == 2 ? 0 : (c == 0 ? 30.0 : 10.0) / (1 + 2 * ii) / (k ? 3 : 1);
    double rec = k == 0 ? 20 : k == 1 ? 8 : 5;
    return base + gap + rec + 0.1 * s + 0.01 * c;
}

/* A new final row of T: cell ID, model DIR/rungI, sparsity 0.5 (row), on
 * sotu-test; the caller sets the measurements. */
static int new_row(fl_table *t, int id, const char *dir, int i, const char *crit, const char *rec, int seed) {
    int r = fl_table_add_row(t);
    fl_table_setf(t, r, "cell_id", "%012d", id);
    fl_table_set(t, r, "status", "ok");
    fl_table_set(t, r, "role", "final");
    fl_table_setf(t, r, "model", "%s/rung%d", dir, i);
    fl_table_set(t, r, "criterion", crit);
    fl_table_set(t, r, "sparsity", "0.5");
    fl_table_set(t, r, "pattern", "row");
    fl_table_set(t, r, "reconstruct", rec);
    fl_table_setf(t, r, "seed", "%d", seed);
    fl_table_set(t, r, "eval_set", "sotu-test");
    return r;
}

static void make_csv(const char *dir, int way, char *csv, size_t n) {
    fl_table t = { 0 };
    int id = 0;
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < 3; k++)
                for (int s = 0; s < 3; s++) {
                    int r = new_row(&t, ++id, dir, i, CRIT[c], REC[k], s);
                    int ii = way > 0 ? i : 2 - i;
                    fl_table_setf(&t, r, "ppl", "%.17g", ppl_of(way, i, c, k, s));
                    fl_table_setf(&t, r, "drift_out", "%.17g", (k == 0 ? 0.1 : 0.03) * (1 + LAYERS[ii]) + 0.001 * s);
                    fl_table_setf(&t, r, "recovery_peak_bytes", "%.0f", k ? NE[i] * 40 * k : 0);
                    fl_table_setf(&t, r, "model_nonemb_params", "%.0f", NE[i]);
                    fl_table_setf(&t, r, "model_params", "%.0f", NE[i] + 5e5);
                    fl_table_setf(&t, r, "model_layers", "%d", LAYERS[i]);
                }
    snprintf(csv, n, "%s/results.csv", dir);
    assert_int_equal(fl_table_write(csv, &t), 0);
    fl_table_free(&t);
}

/* make_csv's table with each row passed through edit(t, row, dir), then
 * loaded as the report loads it into *t. */
static void edited_csv(char *dir, size_t dn, char *csv, size_t cn, void (*edit)(fl_table *, int, const char *),
                       fl_table *t) {
    tu_tmpdir(dir, dn);
    make_csv(dir, 1, csv, cn);
    assert_int_equal(fl_table_read(csv, t), 0);
    for (int r = 0; r < t->nrows; r++) edit(t, r, dir);
    assert_int_equal(fl_table_write(csv, t), 0);
    fl_table_free(t);
    assert_int_equal(fl_sum_load(csv, t), 0);
}

/* DIR/NAME's whole text (the caller frees it). */
static char *read_out(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = tu_read_all(path);
    assert_non_null(text);
    return text;
}

/* The number of lines of DIR/plots/NAME.dat (a header and one per rung). */
static int dat_lines(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/plots/%s.dat", dir, name);
    char *dat = tu_read_all(path);
    assert_non_null(dat);
    int lines = 0;
    for (char *c = dat; *c; c++) lines += *c == '\n';
    free(dat);
    return lines;
}

static void check_way(int way) {
    char dir[512], csv[600];
    tu_tmpdir(dir, sizeof dir);
    make_csv(dir, way, csv, sizeof csv);
    fl_table t;
    assert_int_equal(fl_sum_load(csv, &t), 0);
    /* the numbers: gap of (rung 0, wanda, none) is the hand formula's, paired over seeds */
    fl_ladder *ls;
    fl_names rec;
    assert_int_equal(fl_ladders(&t, &ls, &rec), 1);
    assert_int_equal(ls[0].nr, 3);
    assert_true(ls[0].r[0].nonemb == 4e5 && ls[0].r[2].layers == 8);
    double want = ppl_of(way, 0, 1, 0, 0) - ppl_of(way, 0, 2, 0, 0);
    assert_true(fabs(ls[0].r[0].gap[1][0].mean - want) < 1e-9);
    assert_string_equal(ls[0].r[0].best[1], "block");
    assert_true(fabs(ls[0].r[0].gap[1][1].mean - (ppl_of(way, 0, 1, 2, 0) - ppl_of(way, 0, 2, 2, 0))) < 1e-9);
    /* relative ppl: block is the best (1), none worse */
    int kb = fl_names_index(&rec, "block"), kn = fl_names_index(&rec, "none");
    assert_true(fabs(ls[0].r[1].rel[kb] - 1) < 1e-12 && ls[0].r[1].rel[kn] > 1);
    free(ls);
    fl_names_free(&rec);
    assert_int_equal(fl_report_build(&t, csv, dir, 0), 0);
    fl_table_free(&t);
    static const char *const P[] = { "ladder_gap_s0.5", "ladder_rel_s0.5", "ladder_drift_s0.5", "ladder_peak_s0.5" };
    for (int i = 0; i < 4; i++) assert_int_equal(dat_lines(dir, P[i]), 4);   /* a header and three rungs */
    char *md = read_out(dir, "report.md");
    assert_non_null(strstr(md, "## The ladder: the scale claims across model size"));
    assert_non_null(strstr(md, "0.125 to 72 billion"));
    assert_non_null(strstr(md, "0.40M to 7.00M non-embedding parameters"));
    if (way > 0) {
        assert_non_null(strstr(md, "the gap shrinks with size, so the ladder supports the claim's direction"));
        assert_null(strstr(md, "the gap grows with size"));
        assert_non_null(strstr(md, "it grows with depth, so the ladder supports errors accumulating over depth"));
    } else {
        assert_non_null(strstr(md, "the gap grows with size, so the ladder does not support the claim"));
        assert_null(strstr(md, "the gap shrinks with size"));
        assert_non_null(strstr(md, "it shrinks with depth, so the ladder does not support accumulation over depth"));
    }
    assert_non_null(strstr(md, "`matrix` is worse at 3 of 3 rungs, as the claim says"));
    assert_non_null(strstr(md, "Recovery peak of `block`: 32.0 MB at the smallest rung, 560.0 MB at the largest (17.5x, for 17.5x"));
    free(md);
    tu_rmrf(dir);
}

static void test_ladder_report_trend(void **st) { (void)st; check_way(1); }
static void test_ladder_report_reversed(void **st) { (void)st; check_way(-1); }

/* A row's rung, criterion, reconstructor and seed indices (make_csv's). */
static void row_ids(const fl_table *t, int r, int *i, int *c, int *k, int *s) {
    const char *m = fl_table_get(t, r, "model"), *cr = fl_table_get(t, r, "criterion"), *re = fl_table_get(t, r, "reconstruct");
    *i = m[strlen(m) - 1] - '0';
    *c = *k = -1;
    for (int q = 0; q < 3; q++) {
        if (!strcmp(cr, CRIT[q])) *c = q;
        if (!strcmp(re, REC[q])) *k = q;
    }
    *s = atoi(fl_table_get(t, r, "seed"));
    assert_true(*i >= 0 && *i < 3 && *c >= 0 && *k >= 0);
}

/* Magnitude's gap to sparsegpt grows by 0.4 over the ladder while the
 * seeds move it by +-3, and drift grows with depth while the seeds move it
 * by +-1: the slope and the ends agree, but no trend may be stated. */
static void seed_noise(fl_table *t, int r, const char *dir) {
    (void)dir;
    int i, c, k, s;
    row_ids(t, r, &i, &c, &k, &s);
    if (c == 0) fl_table_setf(t, r, "ppl", "%.17g", ppl_of(1, i, 2, k, s) + 0.2 * i + 3.0 * (s - 1));
    fl_table_setf(t, r, "drift_out", "%.17g", fl_table_num(t, r, "drift_out") + 1.0 * (s - 1));
}

/* Drift differs a lot between criteria (by 1.0 each) but little between
 * seeds: that spread is not noise, and drift's growth with depth is still
 * stated. */
static void criterion_offsets(fl_table *t, int r, const char *dir) {
    (void)dir;
    int i, c, k, s;
    row_ids(t, r, &i, &c, &k, &s);
    fl_table_setf(t, r, "drift_out", "%.17g", fl_table_num(t, r, "drift_out") + 1.0 * c);
}

/* Whether the line of MD that begins with START holds WANT. */
static int line_has(const char *md, const char *start, const char *want) {
    const char *m = strstr(md, start);
    if (!m) return 0;
    const char *eol = strchr(m, '\n'), *w = strstr(m, want);
    return w && (!eol || w < eol);
}

static void test_trend_within_noise(void **st) {
    (void)st;
    char dir[512], csv[600];
    fl_table t;
    edited_csv(dir, sizeof dir, csv, sizeof csv, seed_noise, &t);
    assert_int_equal(fl_report_build(&t, csv, dir, 0), 0);
    fl_table_free(&t);
    char *md = read_out(dir, "report.md");
    const char *noise = "but the two ends differ by less than their seeds' spread (Welch's t, 95%)";
    const char *mag = "**Claim 3**, ppl(magnitude) − ppl(sparsegpt) without reconstruction",
               *wan = "**Claim 3**, ppl(wanda) − ppl(sparsegpt) without reconstruction",
               *drift = "**Claim 2**, drift at the last block with `matrix`";
    assert_true(line_has(md, mag, "the gap grows with size, but the two ends differ by less than their seeds' spread"));
    assert_true(line_has(md, mag, "so the ladder neither supports nor refutes it."));
    assert_true(line_has(md, wan, "so the ladder supports the claim's direction"));   /* wanda's gap is untouched */
    assert_true(line_has(md, drift, noise));
    assert_true(line_has(md, drift, "neither supports nor refutes accumulation over depth"));
    free(md);
    tu_rmrf(dir);

    edited_csv(dir, sizeof dir, csv, sizeof csv, criterion_offsets, &t);
    assert_int_equal(fl_report_build(&t, csv, dir, 0), 0);
    fl_table_free(&t);
    md = read_out(dir, "report.md");
    assert_null(strstr(md, noise));
    assert_true(line_has(md, drift, "it grows with depth, so the ladder supports errors accumulating over depth"));
    free(md);
    tu_rmrf(dir);
}

/* One model: no ladder, no section. */
static void one_model(fl_table *t, int r, const char *dir) {
    fl_table_setf(t, r, "model", "%s/rung0", dir);
    fl_table_set(t, r, "model_nonemb_params", "400000");
}

static void test_one_model_no_ladder(void **st) {
    (void)st;
    char dir[512], csv[600];
    fl_table t;
    edited_csv(dir, sizeof dir, csv, sizeof csv, one_model, &t);
    fl_ladder *ls;
    fl_names rec;
    assert_int_equal(fl_ladders(&t, &ls, &rec), 0);
    assert_null(ls);
    fl_names_free(&rec);
    fl_table_free(&t);
    tu_rmrf(dir);
}

/* A ladder grid of one criterion (a learning-rate check on wanda alone,
 * say): no criterion gap can be formed, so the gap plot is left out
 * (gnuplot refuses a plot of nothing but undefined points) and the report
 * says the gaps were not measured; the other ladder plots stay. */
static void wanda_only(fl_table *t, int r, const char *dir) {
    (void)dir;
    if (strcmp(fl_table_get(t, r, "criterion"), "wanda")) {
        fl_table_set(t, r, "status", "failed");
        fl_table_set(t, r, "message", "left out: one criterion");
    }
}

static void test_one_criterion_ladder(void **st) {
    (void)st;
    char dir[512], csv[600], path[1024];
    fl_table t;
    edited_csv(dir, sizeof dir, csv, sizeof csv, wanda_only, &t);
    assert_int_equal(fl_report_build(&t, csv, dir, 0), 0);
    fl_table_free(&t);
    snprintf(path, sizeof path, "%s/plots/ladder_gap_s0.5.gp", dir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof path, "%s/plots/ladder_rel_s0.5.gp", dir);
    assert_int_equal(access(path, F_OK), 0);
    char *md = read_out(dir, "report.md");
    assert_non_null(strstr(md, "ppl(wanda) − ppl(sparsegpt) without reconstruction: not measured (no rung has ok rows of both criteria with `none`)"));
    assert_null(strstr(md, "**Claim 3**, ppl("));
    assert_null(strstr(md, "ladder_gap_s0.5"));
    assert_non_null(strstr(md, "ladder_rel_s0.5"));
    free(md);
    tu_rmrf(dir);
}

/* Two regimes at the same sizes: rungs 0 and 1 again as "-long" models
 * pretrained on 25 tokens per non-embedding parameter (the rest on 2, or
 * none recorded for rung 2), with gaps three times as large. The trained
 * copies form a ladder of their own (tag _t20); mixed into one ladder, the
 * two rungs of one size would make a trend of training. */
static void test_ladder_regimes(void **st) {
    (void)st;
    char dir[512], csv[600];
    tu_tmpdir(dir, sizeof dir);
    make_csv(dir, 1, csv, sizeof csv);
    fl_table t;
    assert_int_equal(fl_table_read(csv, &t), 0);
    int n0 = t.nrows, id = 100000;
    for (int r = 0; r < n0; r++) {
        const char *m = fl_table_get(&t, r, "model");
        int i = m[strlen(m) - 1] - '0';
        if (i < 2) fl_table_setf(&t, r, "model_train_tokens", "%.0f", 2 * NE[i]);
        if (i == 2) continue;   /* rung 2: no record, so with the undertrained ones */
        int q = fl_table_add_row(&t);
        for (int c = 0; c < FL_RESULT_NCOLS; c++) fl_table_set(&t, q, FL_RESULT_COLS[c], fl_table_get(&t, r, FL_RESULT_COLS[c]));
        fl_table_setf(&t, q, "model", "%s-long", m);
        fl_table_setf(&t, q, "cell_id", "%012d", ++id);
        fl_table_setf(&t, q, "model_train_tokens", "%.0f", 25 * NE[i]);
        double p = fl_table_num(&t, r, "ppl");
        const char *c = fl_table_get(&t, r, "criterion");
        if (strcmp(c, "sparsegpt")) {   /* three times sparsegpt's distance */
            int s = atoi(fl_table_get(&t, r, "seed"));
            const char *k = fl_table_get(&t, r, "reconstruct");
            int ki = !strcmp(k, "none") ? 0 : !strcmp(k, "matrix") ? 1 : 2;
            double base = ppl_of(1, i, 2, ki, s);
            p = base + 3 * (p - base);
        }
        fl_table_setf(&t, q, "ppl", "%.17g", p);
    }
    assert_int_equal(fl_table_write(csv, &t), 0);
    fl_table_free(&t);
    assert_int_equal(fl_sum_load(csv, &t), 0);
    fl_ladder *ls;
    fl_names rec;
    assert_int_equal(fl_ladders(&t, &ls, &rec), 2);
    int lt = ls[0].trained ? 0 : 1, lu = 1 - lt;
    assert_true(ls[lt].trained && !ls[lu].trained);
    assert_int_equal(ls[lu].nr, 3);
    assert_int_equal(ls[lt].nr, 2);
    assert_string_equal(ls[lt].tag, "s0.5_t20");
    assert_string_equal(ls[lu].tag, "s0.5");
    assert_string_equal(ls[lt].label, "sparsity 0.5, 20+ tokens per parameter");
    for (int i = 0; i < 2; i++) {
        assert_non_null(strstr(ls[lt].r[i].model, "-long"));
        assert_null(strstr(ls[lu].r[i].model, "-long"));
        assert_true(fabs(ls[lt].r[i].train_tokens - 25 * NE[i]) < 0.5);
    }
    assert_true(isnan(ls[lu].r[2].train_tokens));
    /* the trained ladder's gaps are its own rows': three times the other's */
    assert_true(fabs(ls[lt].r[0].gap[0][0].mean - 3 * ls[lu].r[0].gap[0][0].mean) < 1e-9);
    free(ls);
    fl_names_free(&rec);
    assert_int_equal(fl_report_build(&t, csv, dir, 0), 0);
    fl_table_free(&t);
    static const char *const P[] = { "ladder_gap_s0.5_t20", "ladder_rel_s0.5_t20", "ladder_gap_s0.5" };
    static const int LINES[] = { 3, 3, 4 };   /* a header and a line per rung */
    for (int i = 0; i < 3; i++) assert_int_equal(dat_lines(dir, P[i]), LINES[i]);
    char *md = read_out(dir, "report.md");
    assert_non_null(strstr(md, "form ladders of their own, apart from the others"));
    assert_non_null(strstr(md, "### sparsity 0.5, 20+ tokens per parameter"));
    assert_non_null(strstr(md, "### sparsity 0.5\n"));
    /* the rungs table: each model once, with its regime from the results */
    char want[1200];
    snprintf(want, sizeof want, "| %s/rung0-long | 400000 | 2 | 25.0 | 20+ tokens per parameter (as real LLMs) |", dir);
    assert_non_null(strstr(md, want));
    snprintf(want, sizeof want, "| %s/rung0 | 400000 | 2 | 2.0 | undertrained (below 20 tokens per parameter) |", dir);
    assert_non_null(strstr(md, want));
    char *again = strstr(md, want);
    assert_null(strstr(again + 1, want));
    snprintf(want, sizeof want, "| %s/rung2 | 7000000 | 8 | – | not recorded", dir);
    assert_non_null(strstr(md, want));
    assert_null(strstr(md, "In no ladder"));   /* every model has a ladder here */
    /* rung 2 (no record) beside rungs 0 and 1 (2 tokens per parameter): said */
    assert_non_null(strstr(md, "Caveat: 1 of these 3 rungs has no pretraining record (not pretrained by freelunch), so its regime is unknown"));
    char *cav = strstr(md, "Caveat: ");
    assert_true(cav > strstr(md, "### sparsity 0.5\n"));
    assert_null(strstr(cav + 1, "Caveat: "));   /* not in the trained ladder, whose rungs all have one */
    free(md);
    tu_rmrf(dir);
}

/* One trained model beside an undertrained ladder: it forms no ladder of
 * its own (one rung), and the report names it instead of dropping it. */
static void rung0_trained(fl_table *t, int r, const char *dir) {
    const char *m = fl_table_get(t, r, "model");
    char want[600];
    snprintf(want, sizeof want, "%s/rung0", dir);
    fl_table_setf(t, r, "model_train_tokens", "%.0f", (strcmp(m, want) ? 2 : 25) * fl_table_num(t, r, "model_nonemb_params"));
}

static void test_lone_trained_rung(void **st) {
    (void)st;
    char dir[512], csv[600], want[1200];
    fl_table t;
    edited_csv(dir, sizeof dir, csv, sizeof csv, rung0_trained, &t);
    fl_ladder *ls;
    fl_names rec;
    assert_int_equal(fl_ladders(&t, &ls, &rec), 1);
    assert_int_equal(ls[0].nr, 2);
    assert_false(ls[0].trained);
    free(ls);
    fl_names_free(&rec);
    assert_int_equal(fl_report_build(&t, csv, dir, 0), 0);
    fl_table_free(&t);
    char *md = read_out(dir, "report.md");
    snprintf(want, sizeof want, "In no ladder (the only model of its training regime at each sparsity, so no trend runs "
                                "through it): `%s/rung0`.", dir);
    assert_non_null(strstr(md, want));
    free(md);
    tu_rmrf(dir);
}

/* More rungs than a ladder holds (FL_LADDER_MAX_RUNGS): the ladder keeps
 * the first ones and counts the rest, and the report says they were left
 * out rather than dropping them in silence. */
static void test_too_many_rungs(void **st) {
    (void)st;
    char dir[512], csv[600], want[1400];
    tu_tmpdir(dir, sizeof dir);
    fl_table t = { 0 };
    const int n = FL_LADDER_MAX_RUNGS + 2;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            int r = new_row(&t, 3 * i + c + 1, dir, i, CRIT[c], "none", 0);
            fl_table_setf(&t, r, "ppl", "%d", 100 + 2 * c + n - i);
            fl_table_setf(&t, r, "model_nonemb_params", "%d", 100000 * (i + 1));
            fl_table_setf(&t, r, "model_params", "%d", 100000 * (i + 2));
            fl_table_setf(&t, r, "model_layers", "%d", i + 1);
        }
    snprintf(csv, sizeof csv, "%s/results.csv", dir);
    assert_int_equal(fl_table_write(csv, &t), 0);
    fl_table_free(&t);
    assert_int_equal(fl_sum_load(csv, &t), 0);
    fl_ladder *ls;
    fl_names rec;
    assert_int_equal(fl_ladders(&t, &ls, &rec), 1);
    assert_int_equal(ls[0].nr, FL_LADDER_MAX_RUNGS);
    assert_int_equal(ls[0].dropped, 2);
    free(ls);
    fl_names_free(&rec);
    assert_int_equal(fl_report_build(&t, csv, dir, 0), 0);
    fl_table_free(&t);
    char *md = read_out(dir, "report.md");
    snprintf(want, sizeof want, "Left out: 2 more rungs beyond the first %d this ladder holds", FL_LADDER_MAX_RUNGS);
    assert_non_null(strstr(md, want));
    snprintf(want, sizeof want, "or beyond a ladder's first %d rungs): `%s/rung%d`, `%s/rung%d`.", FL_LADDER_MAX_RUNGS,
             dir, n - 2, dir, n - 1);
    assert_non_null(strstr(md, want));
    free(md);
    tu_rmrf(dir);
}

/* freelunch.json is input: fl_pretrain_record_read takes a pretraining's
 * record and nothing else, and never leaves an error behind. */
static void test_pretrain_record(void **st) {
    (void)st;
    static const struct { const char *json; int rc; const char *preset; double tokens; } C[] = {
        { "{\"kind\":\"pretrained\",\"preset\":\"tiny\",\"steps\":1200,\"batch\":8,\"seqlen\":256}", 0, "tiny", 2457600 },
        { "{\"kind\":\"pretrained\",\"preset\":\"nonesuch\",\"steps\":10,\"batch\":2,\"seqlen\":4}", 0, NULL, 80 },
        { "{\"kind\":\"pretrained\",\"preset\":\"tiny\",\"steps\":-5,\"batch\":8,\"seqlen\":256}", 0, "tiny", NAN },
        { "{\"kind\":\"pretrained\",\"steps\":1.5,\"batch\":8,\"seqlen\":256}", 0, NULL, NAN },
        { "{\"kind\":\"pretrained\",\"steps\":3e9,\"batch\":8,\"seqlen\":256}", 0, NULL, NAN },
        { "{\"kind\":\"pretrained\",\"steps\":\"100\",\"batch\":8,\"seqlen\":256}", 0, NULL, NAN },
        { "{\"kind\":\"cell\",\"preset\":\"tiny\",\"steps\":1200,\"batch\":8,\"seqlen\":256}", -1, NULL, NAN },
        { "[1, 2", -1, NULL, NAN },
        { "", -1, NULL, NAN },
        { NULL, -1, NULL, NAN },   /* no file at all (an HF model) */
    };
    char dir[512], path[600];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/freelunch.json", dir);
    for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) {
        remove(path);
        if (C[i].json) {
            FILE *f = fopen(path, "w");
            assert_non_null(f);
            fputs(C[i].json, f);
            fclose(f);
        }
        fl_pretrain_record r;
        assert_int_equal(fl_pretrain_record_read(dir, &r), C[i].rc);
        assert_string_equal(fl_errmsg(), "");
        if (C[i].preset) assert_string_equal(r.preset->name, C[i].preset);
        else assert_null(r.preset);
        if (isnan(C[i].tokens)) assert_true(isnan(r.train_tokens));
        else assert_true(r.train_tokens == C[i].tokens);
        assert_ptr_equal(fl_preset_of_model(dir), r.preset);
    }
    tu_rmrf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rung_configs), cmocka_unit_test(test_largest_rung_step),
        cmocka_unit_test(test_ladder_report_trend), cmocka_unit_test(test_ladder_report_reversed),
        cmocka_unit_test(test_one_model_no_ladder), cmocka_unit_test(test_one_criterion_ladder),
        cmocka_unit_test(test_ladder_regimes), cmocka_unit_test(test_lone_trained_rung),
        cmocka_unit_test(test_too_many_rungs), cmocka_unit_test(test_pretrain_record),
        cmocka_unit_test(test_trend_within_noise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
