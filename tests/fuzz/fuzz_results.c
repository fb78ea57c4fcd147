/* libFuzzer target: arbitrary bytes as a results.csv, through the reader
 * (fl_sum_load), the Pareto fronts, the panels and their statistics, and the
 * generation of every plot script and of the report (fl_report_build with
 * draw 0: gnuplot is never run, the scripts are only written). Besides
 * crashes and sanitizer reports it traps when a value escapes into a script
 * (a line the plot code does not write) or into the report as markup (raw
 * '<' outside `code` in the Markdown, a <script> tag in the HTML), or when
 * the documents are not valid UTF-8.
 *
 * The first byte picks the input's shape: odd, the bytes follow our header
 * (so the fuzzer spends its time on rows, not on matching 84 column names);
 * even, they are the whole file. Seed corpus: tests/fuzz/corpus/results/.
 * Built with clang -fsanitize=fuzzer,address,undefined against the library
 * sources compiled with -fsanitize=fuzzer-no-link,address,undefined (make
 * fuzz). Point TMPDIR at a tmpfs (/dev/shm): every run writes the scripts
 * and the report, and their fsyncs dominate the time otherwise. */
#include "harness/results.h"
#include "model/err.h"
#include "plots/sbuf.h"
#include "plots/summary.h"
#include "reports/report.h"
#include <ctype.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[256], csv[300], out[300], plots[320];

static void setup(void) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/flfuzz.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(dir)) { perror("mkdtemp"); abort(); }
    snprintf(csv, sizeof csv, "%s/results.csv", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(plots, sizeof plots, "%s/plots", out);
}

/* Removes every file of D (no subdirectories are made there but plots). */
static void clear(const char *d) {
    DIR *h = opendir(d);
    if (!h) return;
    struct dirent *e;
    char path[1024];
    while ((e = readdir(h)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(path, sizeof path, "%s/%s", d, e->d_name);
            if (unlink(path) != 0) rmdir(path);
        }
    closedir(h);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fl_sbuf b = { 0 };
    char buf[65536];
    size_t k;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) fl_sb_putn(&b, buf, k);
    fclose(f);
    *n = b.len;
    if (!b.s) return calloc(1, 1);
    return b.s;
}

static void check_utf8(const char *s, const char *what) {
    for (const char *p = s; *p;) {
        int n = fl_utf8_len(p);
        if (!n) { fprintf(stderr, "%s: invalid UTF-8 at byte %ld\n", what, (long)(p - s)); __builtin_trap(); }
        p += n;
    }
}

/* Every line of a script is a comment, a `set`, a `plot` or its
 * continuation, or `replot`: a value that broke out of its string would
 * start a line of its own. */
static void check_script(const char *path) {
    size_t n;
    char *s = slurp(path, &n);
    if (!s) return;
    if (strlen(s) != n) { fprintf(stderr, "%s: NUL in script\n", path); __builtin_trap(); }
    static const char *const OK[] = { "# freelunch: ", "# Re-draw with ", "set ", "plot ", "    '", "     '", "replot", NULL };
    for (char *line = s; *line;) {
        size_t len = strcspn(line, "\n");
        int ok = !len;
        for (int i = 0; OK[i] && !ok; i++) ok = !strncmp(line, OK[i], strlen(OK[i]));
        if (ok && len && line[len - 1] == '\\') ok = !strncmp(line, "plot ", 5) || !strncmp(line, "    ", 4);
        if (!ok) { fprintf(stderr, "%s: line from a value: %.*s\n", path, (int)(len > 200 ? 200 : len), line); __builtin_trap(); }
        line += len + (line[len] == '\n');
    }
    check_utf8(s, path);
    free(s);
}

static void check_outputs(void) {
    DIR *h = opendir(plots);
    if (h) {
        struct dirent *e;
        char path[1024];
        while ((e = readdir(h))) {
            size_t len = strlen(e->d_name);
            if (len < 3 || strcmp(e->d_name + len - 3, ".gp")) continue;
            snprintf(path, sizeof path, "%s/%s", plots, e->d_name);
            check_script(path);
        }
        closedir(h);
    }
    char path[400];
    size_t n;
    snprintf(path, sizeof path, "%s/report.md", out);
    char *md = slurp(path, &n);
    if (md) {
        check_utf8(md, path);
        int code = 0;
        for (const char *p = md; *p; p++) {
            if (*p == '`') code = !code;
            if (*p == '\n' && p[1] == '\n') code = 0;
            if (!code && *p == '<') { fprintf(stderr, "report.md: raw '<' at %ld\n", (long)(p - md)); __builtin_trap(); }
        }
        free(md);
    }
    snprintf(path, sizeof path, "%s/report.html", out);
    char *html = slurp(path, &n);
    if (html) {
        check_utf8(html, path);
        for (char *p = html; *p; p++) *p = (char)tolower((unsigned char)*p);
        if (strstr(html, "<script")) { fprintf(stderr, "report.html: <script>\n"); __builtin_trap(); }
        free(html);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!dir[0]) setup();
    if (!size) return 0;
    FILE *f = fopen(csv, "wb");
    if (!f) abort();
    if (data[0] & 1)
        for (int c = 0; c < FL_RESULT_NCOLS; c++) fprintf(f, "%s%s", c ? "," : "", FL_RESULT_COLS[c]);
    if (data[0] & 1) fputc('\n', f);
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);

    fl_table t;
    if (fl_sum_load(csv, &t) == 0) {
        fl_table_pareto(&t);
        fl_panel *ps;
        int np = fl_panels(&t, &ps);
        for (int i = 0; i < np; i++) (void)fl_stat_of(&t, &ps[i], NULL, NULL, "ppl");
        free(ps);
        if (fl_report_build(&t, csv, out, 0) == 0) check_outputs();
        fl_table_free(&t);
    }
    fl_err_clear();
    clear(plots);
    clear(out);
    return 0;
}
