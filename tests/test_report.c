/* Plots and report from a results.csv made here by code: 2 criteria x 4
 * reconstructors x 2 sparsities x 2 seeds and one failed cell, with
 * perplexities chosen so that every verdict goes one way in one place and
 * the other way elsewhere. Expected numbers are computed here, not read
 * back from the report. */
#include "tests/testutil.h"
#include "harness/results.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "plots/plots.h"
#include "reports/report.h"
#include <openssl/evp.h>
#include <sys/stat.h>

static const char *CRIT[2] = { "wanda", "sparsegpt" };
static const char *REC[4] = { "none", "sublayer", "block", "retrain:full" };
static const char *SPARSITY[2] = { "0.5", "0.6" };
/* PPL[sparsity][criterion][reconstructor][seed]. At 0.5, wanda's sublayer
 * (20.2) is within block's spread (20.1 ± 0.28) and sparsegpt's (25.1) is
 * not (23.1 ± 0.14); at 0.6 wanda's sublayer is not, sparsegpt's is the best.
 * Wanda's best beats SparseGPT's at 0.5 (20.1 vs 23.1), loses at 0.6. */
static const double PPL[2][2][4][2] = {
    { { { 40, 42 }, { 20.0, 20.4 }, { 19.9, 20.3 }, { 22, 22.5 } },
      { { 30, 31 }, { 25.0, 25.2 }, { 23.0, 23.2 }, { 24, 24.4 } } },
    { { { 90, 95 }, { 35.0, 35.6 }, { 34.0, 34.2 }, { 40, 41 } },
      { { 60, 62 }, { 28.0, 28.2 }, { 28.3, 28.5 }, { 30, 30.5 } } },
};
static const double WORKING[4] = { 0, 1e6, 2e6, 8e6 }, PEAK[4] = { 5e6, 6e6, 7e6, 20e6 }, SECS[4] = { 0, 3, 4, 10 };
static const char *FAILED_MSG = "blocks:all: reconstruction diverged at step 7 (loss nan)";

/* A model directory the report can describe: config.json and vocab.json. */
static void make_model(const char *dir) {
    mkdir(dir, 0755);
    fl_config c;
    memset(&c, 0, sizeof c);
    fl_config_family_defaults(&c, FL_GPT2);
    c.vocab = 300; c.d = 64; c.n_layer = 2; c.n_head = 4; c.n_kv_head = 4; c.head_dim = 16; c.d_ff = 256; c.max_pos = 128;
    c.tied = 1;
    char path[800];
    snprintf(path, sizeof path, "%s/config.json", dir);
    assert_int_equal(fl_config_save(&c, path), 0);
    snprintf(path, sizeof path, "%s/vocab.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"a\": 0, \"b\": 1, \"c\": 2}", f);
    fclose(f);
}

/* Units and their losses per reconstructor (none has none). */
static const char *UNITS[4][3] = {
    { "", "", "" },
    { "layers.0.attn;layers.0.mlp;layers.1.attn;layers.1.mlp", "0.5;0.4;0.3;0.2", "0.05;0.04;0.03;0.02" },
    { "layers.0;layers.1", "0.9;0.6", "0.02;0.01" },
    { "model (retrain:full)", "4.1", "3.2" },
};

/* A row with the cell's identity; the caller adds its metrics. */
static int add_cell(fl_table *t, const char *id, const char *status, const char *model, const char *crit,
                    const char *sparsity, const char *rec, int seed) {
    int r = fl_table_add_row(t);
    fl_table_set(t, r, "cell_id", id);
    fl_table_set(t, r, "status", status);
    fl_table_set(t, r, "model", model);
    fl_table_set(t, r, "criterion", crit);
    fl_table_set(t, r, "sparsity", sparsity);
    fl_table_set(t, r, "pattern", "row");
    fl_table_set(t, r, "reconstruct", rec);
    fl_table_setf(t, r, "seed", "%d", seed);
    return r;
}

/* results.csv in dir with `seeds` seeds per cell (1 or 2). */
static void make_results(const char *dir, int seeds, char *csv, size_t n) {
    char model[700], id[16];
    snprintf(model, sizeof model, "%s/model", dir);
    make_model(model);
    fl_table t = { 0 };
    int nid = 0;
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < 2; c++)
            for (int k = 0; k < 4; k++)
                for (int seed = 0; seed < seeds; seed++) {
                    snprintf(id, sizeof id, "c%03d", nid++);
                    int r = add_cell(&t, id, "ok", model, CRIT[c], SPARSITY[s], REC[k], seed);
                    fl_table_set(&t, r, "calib", "sotu-train");
                    fl_table_set(&t, r, "calib_samples", "16");
                    fl_table_set(&t, r, "seqlen", "128");
                    fl_table_set(&t, r, "eval_set", "sotu-test");
                    fl_table_setf(&t, r, "ppl", "%.17g", PPL[s][c][k][seed]);
                    fl_table_setf(&t, r, "working_bytes", "%.0f", WORKING[k]);
                    fl_table_setf(&t, r, "recovery_peak_bytes", "%.0f", PEAK[k]);
                    fl_table_setf(&t, r, "recovery_wall_s", "%g", SECS[k] + 0.1 * seed);
                    fl_table_setf(&t, r, "wall_s", "%g", 10 + SECS[k]);
                    fl_table_set(&t, r, "unit_names", UNITS[k][0]);
                    fl_table_set(&t, r, "unit_loss_before", UNITS[k][1]);
                    fl_table_set(&t, r, "unit_loss_after", UNITS[k][2]);
                    fl_table_set(&t, r, "threads", "2");
                    fl_table_set(&t, r, "backend", "openblas");
                    fl_table_set(&t, r, "machine", "testbox");
                    fl_table_set(&t, r, "commit", "abc1234");
                }
    int r = add_cell(&t, "failed01", "diverged", model, "wanda", "0.6", "blocks:all", 0);
    fl_table_set(&t, r, "message", FAILED_MSG);
    fl_table_set(&t, r, "wall_s", "5");
    fl_table_pareto(&t);
    snprintf(csv, n, "%s/results.csv", dir);
    assert_int_equal(fl_table_write(csv, &t), 0);
    fl_table_free(&t);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The line of text starting with `prefix`, copied into out. */
static void line_of(const char *text, const char *prefix, char *out, size_t n) {
    for (const char *p = text; p; p = strchr(p, '\n')) {
        if (*p == '\n') p++;
        if (!strncmp(p, prefix, strlen(prefix))) {
            size_t len = strcspn(p, "\n");
            snprintf(out, n, "%.*s", (int)len, p);
            return;
        }
    }
    fail_msg("no line starting with \"%s\"", prefix);
}

#define ASSERT_HAS(text, s) do { if (!strstr((text), (s))) fail_msg("expected \"%s\" in:\n%.600s", (s), (text)); } while (0)
#define ASSERT_LACKS(text, s) do { if (strstr((text), (s))) fail_msg("did not expect \"%s\"", (s)); } while (0)

/* Writes T to CSV (and frees it), reports into DIR, returns report.md's text. */
static char *report_of(fl_table *t, const char *csv, const char *dir) {
    char path[1024];
    assert_int_equal(fl_table_write(csv, t), 0);
    fl_table_free(t);
    assert_int_equal(fl_report_make(csv, dir), 0);
    snprintf(path, sizeof path, "%s/report.md", dir);
    return tu_read_all(path);
}

/* The line starting with `prefix` holds `needle`. */
static void line_has(const char *text, const char *prefix, const char *needle) {
    char line[2048];
    line_of(text, prefix, line, sizeof line);
    if (!strstr(line, needle)) fail_msg("expected \"%s\" in:\n%s", needle, line);
}

/* mean ± 95% half-width of two values, as the report formats it:
 * t(0.975, 1) = 12.7062047361747 (R's qt) times sd / sqrt(2) */
static void two_seeds(char *out, size_t n, const double v[2]) {
    double m = (v[0] + v[1]) / 2, sd = fabs(v[0] - v[1]) / sqrt(2.0);
    snprintf(out, n, "%.2f ± %.2f (2)", m, 12.7062047361747 * sd / sqrt(2.0));
}

static void test_plots_and_report(void **state) {
    (void)state;
    char dir[512], csv[600], path[1024];
    tu_tmpdir(dir, sizeof dir);
    make_results(dir, 2, csv, sizeof csv);
    assert_int_equal(fl_plots_make(csv, dir), 0);
    assert_int_equal(fl_report_make(csv, dir), 0);

    /* every plot, both formats, real PNG and SVG, with its script and data */
    static const char *KINDS[] = { "bars", "mem", "peak", "time" };
    static const char *TAGS[] = { "s0.5", "s0.6" };
    char names[16][64];
    int nn = 0;
    for (int s = 0; s < 2; s++) {
        for (int k = 0; k < 4; k++) snprintf(names[nn++], 64, "%s_%s", KINDS[k], TAGS[s]);
        for (int c = 0; c < 2; c++) snprintf(names[nn++], 64, "depth_%s_%s", TAGS[s], CRIT[c]);
    }
    for (int i = 0; i < nn; i++) {
        snprintf(path, sizeof path, "%s/plots/%.60s.png", dir, names[i]);
        char *png = tu_read_all(path);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        if (st.st_size < 8 || memcmp(png, "\x89PNG\r\n\x1a\n", 8)) fail_msg("%s is not a PNG", path);
        free(png);
        snprintf(path, sizeof path, "%s/plots/%.60s.svg", dir, names[i]);
        char *svg = tu_read_all(path);
        if (!strstr(svg, "<svg")) fail_msg("%s is not an SVG", path);
        free(svg);
        snprintf(path, sizeof path, "%s/plots/%.60s.gp", dir, names[i]);
        assert_true(exists(path));
        snprintf(path, sizeof path, "%s/plots/%.60s.dat", dir, names[i]);
        assert_true(exists(path));
    }
    /* the Pareto front is drawn from the flags: at 0.5 memory, none (0 MB,
     * ppl 30) and wanda+sublayer... are on it; the data file says so */
    snprintf(path, sizeof path, "%s/plots/mem_s0.5.dat", dir);
    char *dat = tu_read_all(path);
    ASSERT_HAS(dat, "# Pareto front");
    free(dat);
    /* nothing staged is left behind */
    snprintf(path, sizeof path, "ls -a '%s' | grep -q '^\\.plots\\.'", dir);
    assert_int_not_equal(system(path), 0);

    snprintf(path, sizeof path, "%s/report.md", dir);
    char *md = tu_read_all(path);
    snprintf(path, sizeof path, "%s/report.html", dir);
    char *html = tu_read_all(path);
    char want[256], line[2048];

    /* without a dense reference row there is no dense line, and it says so */
    ASSERT_HAS(md, "no dense reference row in the results");
    ASSERT_LACKS(md, "*dense model*");
    /* tables: mean ± std computed here */
    two_seeds(want, sizeof want, PPL[0][0][1]);
    ASSERT_HAS(md, want);
    ASSERT_HAS(html, want);
    two_seeds(want, sizeof want, PPL[1][1][3]);
    ASSERT_HAS(md, want);
    char best[300];
    two_seeds(want, sizeof want, PPL[0][0][2]);        /* block is wanda's best at 0.5: bold */
    snprintf(best, sizeof best, "**%s**", want);
    ASSERT_HAS(md, best);
    line_of(md, "| sublayer |", line, sizeof line);    /* one row per reconstructor, a column per criterion */
    ASSERT_HAS(line, "| 20.20 ± 2.54 (2) |");
    snprintf(want, sizeof want, "| retrain:full | 8 | %.2f | %.2f | %.2f |", WORKING[3] * 1e-6, PEAK[3] * 1e-6, SECS[3] + 0.05);
    ASSERT_HAS(md, want);

    /* set-up from the CSV and the model directory */
    ASSERT_HAS(md, "family gpt2, 2 blocks, hidden size 64");
    ASSERT_HAS(md, "`vocab.json` with 3 entries");
    ASSERT_HAS(md, "33 cells: 32 ok, 1 failed");
    ASSERT_HAS(md, "testbox");
    ASSERT_HAS(md, "abc1234");

    /* the summary opens the report, one line per claim, then the sections;
     * the verdicts' rules are tested on hand-made tables below */
    const char *sum = strstr(md, "## Summary"), *c1 = strstr(md, "## Claim 1"), *setup = strstr(md, "## Set-up");
    assert_non_null(sum);
    assert_non_null(c1);
    assert_true(sum < setup && setup < c1);
    line_has(md, "- **Dense model**", "unknown (its freelunch.json records no `val_ppl`)");
    line_has(md, "- **Claim 1", "of 4 comparisons");
    /* sublayer and block only, no matrix: part (a) alone decides, and it fails:
     * wanda's sublayer − block at 0.5 is 0.1 at both seeds, an interval of
     * width ~0 above 0 */
    line_has(md, "- **Claim 2", "**not supported**: (a) 3 of 4 pairs of nonlinear units differ");
    line_has(md, "- **Claim 2", "in 0 of 0 comparisons");
    line_has(md, "- **Claim 3", "of 2 comparisons");
    /* each claim names the plots behind it */
    line_has(md, "- **Claim 1", "Figures (in Plots below): `time_s0.5`, `time_s0.6`.");
    line_has(md, "- **Claim 2", "`peak_s0.5`, `peak_s0.6`");
    line_has(md, "- **Claim 3", "`bars_s0.5`, `bars_s0.6`");
    ASSERT_HAS(md, "## Claim 2 — granularity");
    ASSERT_HAS(md, "## Claim 3 — criteria");
    /* two seeds: the differences' intervals use t(0.975, 1) */
    line_of(md, "| wanda | block 20.10", line, sizeof line);
    {
        double d0 = PPL[0][0][2][0] - PPL[0][0][3][0], d1 = PPL[0][0][2][1] - PPL[0][0][3][1];
        double m = (d0 + d1) / 2, half = 12.7062047361747 * fabs(d0 - d1) / sqrt(2.0) / sqrt(2.0);
        snprintf(want, sizeof want, "| %.2f ± %.2f (2) |", m, half);
        ASSERT_HAS(line, want);
    }

    /* failed cell with its message, in both files */
    ASSERT_HAS(md, FAILED_MSG);
    ASSERT_HAS(html, FAILED_MSG);
    ASSERT_HAS(md, "failed01");

    /* HTML is self-contained: every src is a data: URI holding an SVG, no links */
    ASSERT_HAS(html, "src=\"data:image/svg+xml;base64,");
    int imgs = 0;
    for (const char *p = strstr(html, "src=\""); p; p = strstr(p + 1, "src=\"")) {
        if (strncmp(p + 5, "data:image/svg+xml;base64,", 26)) fail_msg("external source: %.60s", p);
        imgs++;
    }
    assert_int_equal(imgs, nn + 3);   /* and the summary's one small copy per claim */
    int thumbs = 0;
    for (const char *p = strstr(html, "class=\"thumb\""); p; p = strstr(p + 1, "class=\"thumb\"")) thumbs++;
    assert_int_equal(thumbs, 3);
    /* its only links: from a summary figure to its full size, in the page */
    for (const char *p = strstr(html, "href=\""); p; p = strstr(p + 1, "href=\"")) {
        char id[200];
        if (strncmp(p + 6, "#plot-", 6)) fail_msg("a link out of the page: %.60s", p);
        snprintf(id, sizeof id, "id=\"%.*s\"", (int)strcspn(p + 7, "\""), p + 7);
        ASSERT_HAS(html, id);
    }
    ASSERT_LACKS(html, "<link");
    ASSERT_LACKS(html, "url(");
    const char *b64 = strstr(html, "base64,") + 7;
    size_t len = strcspn(b64, "\"");
    unsigned char *svg = malloc(len + 1);
    int dn = EVP_DecodeBlock(svg, (const unsigned char *)b64, (int)len);
    assert_true(dn > 0);
    svg[dn] = 0;
    ASSERT_HAS((char *)svg, "<svg");
    free(svg);
    ASSERT_HAS(html, "<table>");
    ASSERT_HAS(html, "<strong>supported</strong>");
    free(md);
    free(html);
    /* FL_TEST_KEEP=1 keeps the directory to look at the plots and report */
    if (getenv("FL_TEST_KEEP")) printf("kept %s\n", dir);
    else tu_rmrf(dir);
}

/* One seed: no interval anywhere, and every claim says so. */
static void test_one_seed_cannot_judge(void **state) {
    (void)state;
    char dir[512], csv[600], path[1024];
    tu_tmpdir(dir, sizeof dir);
    make_results(dir, 1, csv, sizeof csv);
    assert_int_equal(fl_report_make(csv, dir), 0);
    snprintf(path, sizeof path, "%s/report.md", dir);
    char *md = tu_read_all(path);
    char want[64];
    snprintf(want, sizeof want, "| %.2f (1) |", PPL[0][0][1][0]);
    ASSERT_HAS(md, want);
    ASSERT_HAS(md, "one seed: no interval");
    line_has(md, "- **Claim 1", "**not testable with this grid**: none of the 4 comparisons has an interval (one seed per cell");
    line_has(md, "- **Claim 3", "**not testable with this grid**: one seed per cell");
    free(md);
    tu_rmrf(dir);
}

/* The dense references (role dense rows, cmd_study.c): the one measured
 * as the panel's rows were (model, eval_set, eval_windows) is the first row
 * of every perplexity table, in every panel heading and the summary, and a
 * dashed line of every perplexity plot; one measured otherwise, or failed,
 * is not; none of them is a cell, on a front, or in a verdict. */
static void test_dense_reference(void **state) {
    (void)state;
    char dir[512], csv[600], path[1024];
    tu_tmpdir(dir, sizeof dir);
    make_results(dir, 2, csv, sizeof csv);
    fl_table t;
    assert_int_equal(fl_table_read(csv, &t), 0);
    const int cells = t.nrows;
    const char *model = fl_table_get(&t, 0, "model");
    char m[700];
    snprintf(m, sizeof m, "%s", model);
    const struct { const char *id, *status, *windows; double ppl; } D[] = {
        { "dense2", "ok", "40", 77.25 },     /* other windows: not theirs (first, so a match
                                                that ignored the windows would take it) */
        { "dense1", "ok", "", 18.5 },        /* as the cells were evaluated: every window */
        { "dense3", "error", "", 66.5 },     /* failed: never drawn */
    };
    for (int i = 0; i < 3; i++) {
        int r = add_cell(&t, D[i].id, D[i].status, m, "dense", "0", "", 0);
        fl_table_set(&t, r, "role", "dense");
        fl_table_set(&t, r, "seed", "");
        fl_table_set(&t, r, "pattern", "");
        fl_table_set(&t, r, "eval_set", "sotu-test");
        fl_table_set(&t, r, "eval_windows", D[i].windows);
        fl_table_setf(&t, r, "ppl", "%.17g", D[i].ppl);
    }
    fl_table_pareto(&t);
    for (int r = cells; r < t.nrows; r++) assert_string_equal(fl_table_get(&t, r, "pareto_mem"), "");
    char *md = report_of(&t, csv, dir);
    ASSERT_HAS(md, "| *dense model* | *18.50* | *18.50* |");
    ASSERT_HAS(md, "### Wanda, sparsity 0.5 (dense model 18.50)");
    ASSERT_HAS(md, "### Sparsity 0.6 (dense model 18.50)");
    line_has(md, "- **Dense model**", "**18.50** on sotu-test (every window, the dense reference row of the results)");
    /* the summary lists every reference measured; the tables use their own */
    line_has(md, "- **Dense model**", "**77.25** on sotu-test (40 windows");
    for (const char *q = strstr(md, "77.25"); q; q = strstr(q + 1, "77.25")) {
        const char *bol = q;
        while (bol > md && bol[-1] != '\n') bol--;
        if (!strncmp(bol, "|", 1) || !strncmp(bol, "#", 1) || strncmp(q, "77.25** on sotu-test (40 windows", 32))
            fail_msg("the other windows' reference used in: %.200s", bol);
    }
    ASSERT_LACKS(md, "66.50");
    char want[64];
    snprintf(want, sizeof want, ", %d cells: %d ok", cells, cells - 1);   /* the references are not cells */
    ASSERT_HAS(md, want);
    free(md);
    const char *plots[] = { "bars_s0.5", "bars_s0.6", "mem_s0.5", "peak_s0.6", "time_s0.5" };
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "%s/plots/%s.gp", dir, plots[i]);
        char *gp = tu_read_all(path);
        ASSERT_HAS(gp, "18.5 with lines dt 2 lw 2 lc rgb '#444444' title 'dense model (18.50)'");
        free(gp);
    }
    tu_rmrf(dir);
}

/* Zero-shot accuracy as the claims' second metric (issue 17): each claim's
 * rule applied to 100 − acc_mean, its verdict under the perplexity one and
 * in the summary. Accuracy here follows perplexity (acc = 0.30 − ppl/1000)
 * except for wanda's retrain:full at 0.5, given the best accuracy of all:
 * on accuracy that baseline beats the best local reconstructor, so claim 1
 * flips to not supported (err = 70 + ppl/10 elsewhere: a linear map, so
 * the other comparisons keep their perplexity verdicts: local better at
 * three, no difference at sparsegpt 0.5, whose seeds' differences −1.0 and
 * −1.2 give −1.10 ± 1.27), while claim 2 keeps its verdict. */
static void test_accuracy_second_metric(void **state) {
    (void)state;
    char dir[512], csv[600], path[1024];
    tu_tmpdir(dir, sizeof dir);
    make_results(dir, 2, csv, sizeof csv);
    assert_int_equal(fl_report_make(csv, dir), 0);   /* first without accuracy */
    snprintf(path, sizeof path, "%s/report.md", dir);
    char *md = tu_read_all(path);
    ASSERT_LACKS(md, "zero-shot accuracy");
    ASSERT_LACKS(md, "on zero-shot accuracy");
    free(md);
    fl_table t;
    assert_int_equal(fl_table_read(csv, &t), 0);
    for (int r = 0; r < t.nrows; r++) {
        double ppl = fl_table_num(&t, r, "ppl");
        if (!isfinite(ppl)) continue;
        int flip = !strcmp(fl_table_get(&t, r, "criterion"), "wanda") && !strcmp(fl_table_get(&t, r, "sparsity"), "0.5") &&
                   !strcmp(fl_table_get(&t, r, "reconstruct"), "retrain:full");
        double a = flip ? 0.40 + 0.01 * atoi(fl_table_get(&t, r, "seed")) : 0.30 - ppl / 1000;
        fl_table_setf(&t, r, "acc_lambada_sotu", "%.17g", a - 0.05);
        fl_table_setf(&t, r, "acc_cloze_sotu", "%.17g", a + 0.05);
        fl_table_setf(&t, r, "acc_mean", "%.17g", a);
    }
    assert_int_equal(fl_table_write(csv, &t), 0);
    fl_table_free(&t);
    assert_int_equal(fl_report_make(csv, dir), 0);
    md = tu_read_all(path);
    line_has(md, "**Claim 1 on zero-shot accuracy**", "`acc_mean` over lambada_sotu, cloze_sotu): **not supported**: of 4 "
             "comparisons, the best local reconstructor is better in 2, no difference is detected in 1 and the retraining "
             "baseline is better in 1");
    line_has(md, "**Claim 1 on zero-shot accuracy**", "**A different verdict from perplexity's**");
    line_has(md, "**Claim 2 on zero-shot accuracy**", "**not supported**: (a) 3 of 4 pairs of nonlinear units differ");
    line_has(md, "**Claim 2 on zero-shot accuracy**", "The same verdict as on perplexity.");
    ASSERT_HAS(md, "**Claim 3 on zero-shot accuracy**");
    /* perplexity's verdicts are unchanged, the accuracy one beside them */
    line_has(md, "- **Claim 1", "**supported**: of 4 comparisons, the best local reconstructor is better in 3, no "
             "difference is detected in 1 and the retraining baseline is better in 0");
    line_has(md, "- **Claim 1", "(zero-shot accuracy: **not supported**)");
    line_has(md, "- **Claim 2", "(zero-shot accuracy: **not supported**)");
    /* each verdict under its own claim's section */
    const char *s1 = strstr(md, "## Claim 1"), *a1 = strstr(md, "**Claim 1 on zero-shot"), *s2 = strstr(md, "## Claim 2"),
               *a2 = strstr(md, "**Claim 2 on zero-shot"), *s3 = strstr(md, "## Claim 3"), *a3 = strstr(md, "**Claim 3 on zero-shot");
    assert_true(s1 && a1 && s2 && a2 && s3 && a3);
    assert_true(s1 < a1 && a1 < s2 && s2 < a2 && a2 < s3 && s3 < a3);
    free(md);
    tu_rmrf(dir);
}

/* Two structures at one fraction and criterion: heads, where retraining
 * beats local reconstruction, and channels, where local reconstruction
 * is best of all. Pooled in one panel, the channels' local rows would be
 * "the best local reconstructor" against the heads' baseline; each
 * structure is its own panel, so claim 1 finds the heads' baseline
 * better, and the Pareto fronts never mix the two. */
static void test_structures_apart(void **state) {
    (void)state;
    char dir[512], csv[600], model[700], id[16];
    tu_tmpdir(dir, sizeof dir);
    snprintf(model, sizeof model, "%s/model", dir);
    make_model(model);
    fl_table t = { 0 };
    static const char *st[2] = { "heads", "channels" }, *rec[3] = { "none", "block", "retrain:full" };
    /* [structure][recovery][seed] */
    static const double ppl[2][3][3] = { { { 130, 131, 132 }, { 120, 121.5, 122 }, { 110, 110.5, 111 } },
                                         { { 105, 106, 107 }, { 100, 100.5, 101 }, { 103, 104, 104.5 } } };
    int nid = 0;
    for (int a = 0; a < 2; a++)
        for (int k = 0; k < 3; k++)
            for (int seed = 0; seed < 3; seed++) {
                snprintf(id, sizeof id, "s%03d", nid++);
                int r = add_cell(&t, id, "ok", model, "magnitude-sp", "0.5", rec[k], seed);
                fl_table_set(&t, r, "structure", st[a]);
                fl_table_set(&t, r, "eval_set", "sotu-test");
                fl_table_setf(&t, r, "ppl", "%.17g", ppl[a][k][seed]);
                fl_table_setf(&t, r, "working_bytes", "%d", k ? 1000 * (k + 1) : 0);
                fl_table_setf(&t, r, "recovery_peak_bytes", "%d", k ? 2000 * (k + 1) : 0);
                fl_table_setf(&t, r, "recovery_wall_s", "%d", k);
                /* the best recovery timed fastest: the cost uses the mean of all */
                fl_table_setf(&t, r, "infer_speedup", "%g", (a ? 1.2 : 1.4) + 0.1 * (k - 1));
                fl_table_setf(&t, r, "achieved_sparsity", "%g", a ? 0.3 : 0.2);
                fl_table_setf(&t, r, "infer_peak_bytes", "%d", a ? 900 : 800);
                fl_table_setf(&t, r, "params", "%d", a ? 700 : 800);
                fl_table_set(&t, r, "infer_peak_dense_bytes", "1000");
            }
    /* a third criterion on heads whose removal kept more parameters (as
     * FLAP's added biases do) and timed 9x: not pooled into heads' speedup */
    for (int seed = 0; seed < 3; seed++) {
        snprintf(id, sizeof id, "f%03d", seed);
        int r = add_cell(&t, id, "ok", model, "flap", "0.5", "none", seed);
        fl_table_set(&t, r, "structure", "heads");
        fl_table_set(&t, r, "eval_set", "sotu-test");
        fl_table_setf(&t, r, "ppl", "%d", 140 + seed);
        fl_table_set(&t, r, "infer_speedup", "9");
        fl_table_set(&t, r, "params", "810");
    }
    const int dr = add_cell(&t, "dense", "ok", model, "dense", "0", "", 0);
    fl_table_set(&t, dr, "role", "dense");
    fl_table_set(&t, dr, "seed", "");
    fl_table_set(&t, dr, "eval_set", "sotu-test");
    fl_table_set(&t, dr, "ppl", "100");
    fl_table_pareto(&t);
    /* channels' block (100 at 4000 bytes) would dominate the heads'
     * retrain:full (110 at 6000): apart, the latter's best seed is on its
     * structure's front (its other seeds are dominated by that one) */
    int on = 0;
    for (int r = 0; r < t.nrows; r++)
        if (!strcmp(fl_table_get(&t, r, "structure"), "heads") && !strcmp(fl_table_get(&t, r, "reconstruct"), "retrain:full"))
            on += !strcmp(fl_table_get(&t, r, "pareto_peak_all"), "1") && !strcmp(fl_table_get(&t, r, "seed"), "0");
    assert_int_equal(on, 1);
    snprintf(csv, sizeof csv, "%s/results.csv", dir);
    char *md = report_of(&t, csv, dir);
    ASSERT_HAS(md, "### Sparsity 0.5, structure heads");
    ASSERT_HAS(md, "### Sparsity 0.5, structure channels");
    /* the table: means over seeds, the inference peak over the dense one's */
    ASSERT_HAS(md, "| heads | magnitude-sp | 0.5 | none | 3 | 131.000 | 20.0% | 1.30x | 0.800 |");
    ASSERT_HAS(md, "| channels | magnitude-sp | 0.5 | retrain:full | 3 | 103.833 | 30.0% | 1.30x | 0.900 |");
    line_has(md, "- **Claim 1", "**not supported**: of 2 comparisons, the best local reconstructor is better in 1, no "
             "difference is detected in 0 and the retraining baseline is better in 1");
    /* the structured section's answers, from the means over seeds: heads'
     * block 121.17 against retrain:full 110.50, which costs 10.50 over the
     * dense 100 for 1.4x (26.25 a +1x); channels' block 100.50 against
     * 103.83, costing 0.50 for 1.2x (2.50 a +1x): channels buy speed cheapest */
    line_has(md, "- **heads at 0.5**", "best local magnitude-sp + block 121.17 against best retraining magnitude-sp + "
             "retrain:full 110.50: retraining is lower; the best, magnitude-sp + retrain:full, costs 10.50 ppl over the "
             "dense 100.00 for 1.40x (the mean speedup of the 9 rows of its shapes, every criterion and recovery): 26.25 ppl per +1x of speed.");
    line_has(md, "- **channels at 0.5**", "block 100.50 against best retraining magnitude-sp + retrain:full 103.83: local is "
             "lower; the best, magnitude-sp + block, costs 0.50 ppl over the dense 100.00 for 1.20x (the mean speedup of "
             "the 9 rows of its shapes, every criterion and recovery): 2.50 ppl per +1x");
    ASSERT_HAS(md, "Per unit of measured speedup, **channels at 0.5** (magnitude-sp + block) loses the least perplexity: "
                   "2.50 ppl per +1x.");
    free(md);
    tu_rmrf(dir);
}

static void expect_err(int rc, const char *a, const char *b) {
    const char *msg = fl_errmsg();
    if (rc != -1) fail_msg("expected failure, got %d", rc);
    if (strchr(msg, '\n')) fail_msg("not one line: %s", msg);
    if (!strstr(msg, a) || (b && !strstr(msg, b))) fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", msg, a, b ? b : "");
}

static void test_bad_input(void **state) {
    (void)state;
    char dir[512], csv[600], path[1024];
    tu_tmpdir(dir, sizeof dir);
    snprintf(csv, sizeof csv, "%s/results.csv", dir);
    /* missing */
    expect_err(fl_plots_make(csv, dir), csv, "No such file");
    expect_err(fl_report_make(csv, dir), csv, "No such file");
    /* wrong header */
    FILE *f = fopen(csv, "w");
    assert_non_null(f);
    fputs("cell_id,status,ppl\nc1,ok,12.5\n", f);
    fclose(f);
    expect_err(fl_plots_make(csv, dir), csv, "header");
    expect_err(fl_report_make(csv, dir), csv, "header");
    /* a proper header but no ok row */
    fl_table t = { 0 };
    int r = fl_table_add_row(&t);
    fl_table_set(&t, r, "cell_id", "x");
    fl_table_set(&t, r, "status", "error");
    fl_table_set(&t, r, "message", "boom");
    assert_int_equal(fl_table_write(csv, &t), 0);
    fl_table_free(&t);
    expect_err(fl_report_make(csv, dir), csv, "no cell with status ok");
    /* nothing half-written */
    snprintf(path, sizeof path, "%s/report.md", dir);
    assert_false(exists(path));
    snprintf(path, sizeof path, "%s/report.html", dir);
    assert_false(exists(path));
    snprintf(path, sizeof path, "%s/plots", dir);
    assert_false(exists(path));
    tu_rmrf(dir);
}

/* gnuplot missing: an error naming the script (kept in plots/ to re-run by
 * hand), and no report. */
static void test_gnuplot_missing(void **state) {
    (void)state;
    char dir[512], csv[600], path[1024];
    tu_tmpdir(dir, sizeof dir);
    make_results(dir, 2, csv, sizeof csv);
    char *old = strdup(getenv("PATH") ? getenv("PATH") : "");
    setenv("PATH", dir, 1);   /* a directory without gnuplot */
    int rc = fl_report_make(csv, dir);
    setenv("PATH", old, 1);
    free(old);
    expect_err(rc, "gnuplot not found", ".gp");
    const char *gp = strstr(fl_errmsg(), dir);
    assert_non_null(gp);
    snprintf(path, sizeof path, "%.*s", (int)strcspn(gp, ":"), gp);
    assert_true(exists(path));
    snprintf(path, sizeof path, "%s/report.md", dir);
    assert_false(exists(path));
    snprintf(path, sizeof path, "%s/report.html", dir);
    assert_false(exists(path));
    tu_rmrf(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plots_and_report),
        cmocka_unit_test(test_one_seed_cannot_judge),
        cmocka_unit_test(test_dense_reference),
        cmocka_unit_test(test_accuracy_second_metric),
        cmocka_unit_test(test_structures_apart),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_gnuplot_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
