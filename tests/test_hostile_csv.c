/* A results.csv is input like any other: it may come from elsewhere or be
 * edited by hand. Its values reach gnuplot scripts (which can run shell
 * commands), Markdown, HTML and fixed-size labels. Here every text column the
 * plots and the report show holds hostile values: newlines followed by
 * gnuplot commands, quotes, backticks, $(...), a trailing backslash, HTML,
 * very long strings and invalid UTF-8. Plots and report must succeed, run
 * nothing, and keep every value inside a string, a comment or a data field.
 *
 * Run as `test_hostile_csv --write-csv PATH MARKER_DIR` it only writes that
 * results.csv, for tests/cli_hostile.sh to feed the command line. */
#include "tests/testutil.h"
#include "harness/results.h"
#include "model/err.h"
#include "plots/plots.h"
#include "plots/sbuf.h"
#include "plots/summary.h"
#include "reports/report.h"
#include <ctype.h>
#include <dirent.h>
#include <sys/stat.h>

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The payloads, each naming the file it would create in MARK if it ran. */
static void payloads(const char *mark, char out[][6000], int *n) {
    int k = 0;
    snprintf(out[k++], 6000, "0.5\nsystem('touch %s/PWNED')\n", mark);
    snprintf(out[k++], 6000, "x'\nsystem('touch %s/PWNED')\nprint '", mark);
    snprintf(out[k++], 6000, "x\"\n!touch %s/PWNED\n", mark);
    snprintf(out[k++], 6000, "`touch %s/PWNED`", mark);
    snprintf(out[k++], 6000, "$(touch %s/PWNED)", mark);
    snprintf(out[k++], 6000, "ends in a backslash\\");   /* continues a gnuplot comment line */
    snprintf(out[k++], 6000, "<script>alert(1)</script>\r\n# heading\n| a | b |");
    snprintf(out[k++], 6000, "bad utf-8 \xff\xfe \xc0\x80 \xe2\x82 \xed\xa0\x80 tail");
    char *p = out[k++];
    memset(p, 'A', 5000);   /* longer than every fixed buffer */
    p[5000] = 0;
    *n = k;
}

/* Every payload in every text column the plots and the report show. */
static void write_hostile(const char *csv, const char *mark) {
    static char pay[9][6000];
    int np;
    payloads(mark, pay, &np);
    fl_table t = { 0 };
    int id = 0;
    /* every payload once as a sparsity (a panel each); a second model and
     * pattern for the first only, so that the labels name them */
    for (int i = 0; i < np; i++)
        for (int m = 0; m < (i ? 1 : 2); m++)
            for (int seed = 0; seed < 2; seed++) {
                int r = fl_table_add_row(&t);
                fl_table_setf(&t, r, "cell_id", "c%d", id++);
                fl_table_set(&t, r, "status", "ok");
                fl_table_setf(&t, r, "model", "%s/%s%d", mark, pay[(i + 7) % np], m);
                fl_table_set(&t, r, "sparsity", pay[i]);
                fl_table_set(&t, r, "pattern", m ? pay[(i + 1) % np] : "row");
                fl_table_set(&t, r, "criterion", i % 2 ? pay[i] : "wanda");
                fl_table_set(&t, r, "reconstruct", seed ? pay[(i + 2) % np] : "sublayer");
                fl_table_set(&t, r, "eval_set", pay[(i + 3) % np]);
                fl_table_set(&t, r, "calib", pay[(i + 4) % np]);
                fl_table_set(&t, r, "machine", pay[(i + 5) % np]);
                /* a structure names its panel, ladder and report rows too */
                fl_table_set(&t, r, "structure", i % 3 ? pay[(i + 8) % np] : "none");
                fl_table_setf(&t, r, "seed", "%d", seed);
                fl_table_setf(&t, r, "ppl", "%d", 20 + seed + i);
                fl_table_set(&t, r, "working_bytes", "1000000");
                fl_table_set(&t, r, "recovery_peak_bytes", "2000000");
                fl_table_set(&t, r, "recovery_wall_s", "3");
                fl_table_setf(&t, r, "unit_names", "%s;%s", pay[i], pay[(i + 6) % np]);
                fl_table_set(&t, r, "unit_loss_before", "0.5;0.4");
                fl_table_set(&t, r, "unit_loss_after", "0.05;0.04");
                /* the drift plot's linear names and its block tics */
                fl_table_setf(&t, r, "drift_names", "layers.0.%s;layers.1%s;%s", pay[i], pay[(i + 6) % np], pay[(i + 2) % np]);
                fl_table_set(&t, r, "drift_accumulated", "0.01;0.1;1");
            }
    int r = fl_table_add_row(&t);
    fl_table_set(&t, r, "cell_id", "failed");
    fl_table_set(&t, r, "status", "error");
    fl_table_set(&t, r, "message", pay[6]);
    fl_table_set(&t, r, "criterion", pay[0]);
    fl_table_pareto(&t);
    assert_int_equal(fl_table_write(csv, &t), 0);
    fl_table_free(&t);
}

/* Every line of a generated script is one the plot code writes: a comment,
 * a `set`, a `plot` and its continuations, `replot`. A value that broke out of
 * its string would start a line of its own. */
static void check_script(const char *path) {
    char *s = tu_read_all(path);
    static const char *const OK[] = { "# freelunch: ", "# Re-draw with ", "set ", "plot ", "    '", "     '", "replot", NULL };
    for (char *line = s; *line; line += strcspn(line, "\n") + (line[strcspn(line, "\n")] == '\n')) {
        size_t len = strcspn(line, "\n");
        if (!len) continue;
        int ok = 0;
        for (int i = 0; OK[i] && !ok; i++) ok = !strncmp(line, OK[i], strlen(OK[i]));
        if (!ok) fail_msg("%s: unexpected line: %.*s", path, (int)(len > 200 ? 200 : len), line);
        if (line[len - 1] == '\\' && strncmp(line, "plot ", 5) && strncmp(line, "    ", 4))
            fail_msg("%s: a line other than a plot continues: %.*s", path, (int)(len > 200 ? 200 : len), line);
        for (size_t i = 0; i < len; i++)
            if (line[i] == '`' && strncmp(line, "# Re-draw with `gnuplot ", 24)) fail_msg("%s: backtick: %.200s", path, line);
    }
    free(s);
}

/* Checks every .gp in DIR; returns how many. */
static int check_scripts(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int n = 0;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 3 || strcmp(e->d_name + len - 3, ".gp")) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        check_script(path);
        n++;
    }
    closedir(d);
    return n;
}

static void check_text_clean(const char *path) {
    char *s = tu_read_all(path);
    for (const char *p = s; *p;) {
        int n = fl_utf8_len(p);
        if (!n) fail_msg("%s: invalid UTF-8 at byte %ld", path, (long)(p - s));
        p += n;
    }
    for (char *p = s; *p; p++) *p = (char)tolower((unsigned char)*p);
    if (strstr(path, ".html") && strstr(s, "<script")) fail_msg("%s: raw <script>", path);
    /* Markdown: '<' only inside `code`, where a viewer shows it as it is */
    int code = 0;
    for (const char *p = s; *p; p++) {
        if (*p == '`') code = !code;
        if (*p == '\n' && p[1] == '\n') code = 0;   /* a span never crosses a blank line */
        if (strstr(path, ".md") && !code && *p == '<') fail_msg("%s: raw '<' at byte %ld", path, (long)(p - s));
    }
    free(s);
}

static void test_plots_and_report_hostile(void **state) {
    (void)state;
    char dir[512], csv[700], out[700], plots[800], path[900];
    tu_tmpdir(dir, sizeof dir);
    snprintf(csv, sizeof csv, "%s/results.csv", dir);
    write_hostile(csv, dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(plots, sizeof plots, "%s/plots", out);
    snprintf(path, sizeof path, "%s/PWNED", dir);

    /* what `freelunch report` and the study run: gnuplot draws every script
     * (`freelunch plot` alone: tests/cli_hostile.sh) */
    if (fl_report_make(csv, out) != 0) fail_msg("report: %s", fl_errmsg());
    assert_false(exists(path));
    assert_true(check_scripts(plots) > 0);
    char drift[900];
    snprintf(drift, sizeof drift, "ls %s/drift_*.gp >/dev/null 2>&1", plots);
    assert_int_equal(system(drift), 0);   /* the drift plots were among them */
    char md[900], html[900];
    snprintf(md, sizeof md, "%s/report.md", out);
    snprintf(html, sizeof html, "%s/report.html", out);
    check_text_clean(md);
    check_text_clean(html);
    char *m = tu_read_all(md);
    /* no value opens a heading or a line of its own in the Markdown */
    assert_null(strstr(m, "\n# heading"));
    assert_null(strstr(m, "\nsystem("));
    assert_non_null(strstr(m, "&lt;script&gt;"));   /* shown, as text */
    free(m);
    tu_rmrf(dir);
}

/* A label was built with snprintf and its return value used as the next
 * offset: a sparsity longer than the label, with two models and two
 * patterns, wrote past it. Under ASan the write is caught when it lands in
 * the redzone just past the panel (labels of about 610 to 640 bytes); longer
 * ones write further up the stack. Two sparsities differ only past every cut. */
static void test_long_panel_label(void **state) {
    (void)state;
    static const int LEN[] = { 500, 503, 600, 605, 610, 615, 620, 625, 630, 2999, 2999 };
    enum { NV = sizeof LEN / sizeof *LEN };
    static char sps[NV][3000];
    for (int v = 0; v < NV; v++) {
        memset(sps[v], '5', (size_t)LEN[v]);
        sps[v][LEN[v]] = 0;
    }
    sps[NV - 1][LEN[NV - 1] - 1] = '6';
    fl_table t = { 0 };
    for (int s = 0; s < NV; s++)
        for (int m = 0; m < 2; m++) {
            int r = fl_table_add_row(&t);
            fl_table_set(&t, r, "status", "ok");
            fl_table_set(&t, r, "model", m ? "/a/model-one" : "/b/model-two");
            fl_table_set(&t, r, "pattern", m ? "row" : "2:4");
            fl_table_set(&t, r, "sparsity", sps[s]);
            fl_table_set(&t, r, "criterion", "wanda");
            fl_table_set(&t, r, "reconstruct", "sublayer");
            fl_table_set(&t, r, "ppl", "20");
            fl_table_set(&t, r, "working_bytes", "1000");
        }
    fl_panel *ps;
    int np = fl_panels(&t, &ps);
    assert_int_equal(np, 2 * NV);
    for (int i = 0; i < np; i++) {
        assert_true(strlen(ps[i].label) < sizeof ps[i].label);
        assert_true(strlen(ps[i].tag) < sizeof ps[i].tag);
        for (int j = 0; j < i; j++) assert_string_not_equal(ps[i].tag, ps[j].tag);
    }
    free(ps);
    char dir[512];
    tu_tmpdir(dir, sizeof dir);
    if (fl_report_build(&t, "results.csv", dir, 0) != 0) fail_msg("%s", fl_errmsg());
    char plots[700];
    snprintf(plots, sizeof plots, "%s/plots", dir);
    assert_true(check_scripts(plots) > 0);
    tu_rmrf(dir);
    fl_table_free(&t);
}

/* fl_bprintf never passes its buffer and never cuts a character in two. */
static void test_bprintf(void **state) {
    (void)state;
    char b[8];
    size_t n = fl_bprintf(b, sizeof b, 0, "%s", "abcdefghij");
    assert_int_equal(n, 7);
    assert_string_equal(b, "abcdefg");
    n = fl_bprintf(b, sizeof b, n, "%s", "xyz");
    assert_int_equal(n, 7);
    n = fl_bprintf(b, sizeof b, 0, "abcde%s", "±");   /* 2 bytes: fits exactly */
    assert_int_equal(n, 7);
    n = fl_bprintf(b, sizeof b, 0, "abcdef%s", "±");   /* would be cut in two */
    assert_int_equal(n, 6);
    assert_string_equal(b, "abcdef");
    n = fl_bprintf(b, sizeof b, 100, "x");   /* an offset past the end is clamped */
    assert_int_equal(n, 7);
}

static void test_clean(void **state) {
    (void)state;
    char s[] = "a\nb\tc`d\xff" "e\xc2\x85" "f±g\xe2\x82";
    fl_sum_clean(s);
    assert_string_equal(s, "a b c?d?e  f±g??");
    char ok[] = "models/tiny_gpt2-1.5 retrain:lora 2:4 0.5";
    fl_sum_clean(ok);
    assert_string_equal(ok, "models/tiny_gpt2-1.5 retrain:lora 2:4 0.5");
}

int main(int argc, char **argv) {
    if (argc == 4 && !strcmp(argv[1], "--write-csv")) {
        write_hostile(argv[2], argv[3]);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bprintf),
        cmocka_unit_test(test_clean),
        cmocka_unit_test(test_long_panel_label),
        cmocka_unit_test(test_plots_and_report_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
