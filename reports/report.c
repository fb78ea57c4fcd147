/* report.md and report.html; see report.h. Every section is emitted once
 * through a small document writer (doc_*) that appends Markdown and HTML
 * side by side, so the two files always say the same thing. */
#include "report.h"
#include "plots/plots.h"
#include "plots/sbuf.h"
#include "plots/summary.h"
#include "harness/settings.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "model/fileio.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the document writer -------------------------------------------------- */

/* Text given to the writer may hold two marks of inline markup, `code` and
 * **bold**: Markdown keeps them, HTML gets <code> and <strong>. */
typedef struct {
    fl_sbuf md, html;
    int in_table, in_list;
} doc;

static void html_text(fl_sbuf *b, const char *s) {
    int code = 0, bold = 0;
    for (; *s; s++) {
        if (*s == '`') { fl_sb_puts(b, code ? "</code>" : "<code>"); code = !code; }
        else if (!code && s[0] == '*' && s[1] == '*') { fl_sb_puts(b, bold ? "</strong>" : "<strong>"); bold = !bold; s++; }
        else if (*s == '&') fl_sb_puts(b, "&amp;");
        else if (*s == '<') fl_sb_puts(b, "&lt;");
        else if (*s == '>') fl_sb_puts(b, "&gt;");
        else if (*s == '"') fl_sb_puts(b, "&quot;");
        else fl_sb_putn(b, s, 1);
    }
    if (code) fl_sb_puts(b, "</code>");
    if (bold) fl_sb_puts(b, "</strong>");
}

/* Markdown of the writer's text. Values from results.csv are in it, and a
 * Markdown viewer renders raw HTML and links: outside `code` (where
 * everything is literal) '<', '>' and '&' become entities and '[', ']' and
 * '\\' are escaped, so no value turns into a tag (<script>) or a link; a
 * newline (a new block) becomes a space. In a table cell (CELL) a '|' would
 * end the cell. Values carry no backtick (fl_sum_clean), so the code spans
 * are the writer's own and the state tracked here is the viewer's. */
static void md_text(fl_sbuf *b, const char *s, int cell) {
    int code = 0;
    for (; *s; s++) {
        char c = *s;
        if (c == '`') code = !code;
        if (cell && c == '|') fl_sb_puts(b, "\\|");
        else if (c == '\n' || c == '\r') fl_sb_puts(b, " ");
        else if (!code && c == '<') fl_sb_puts(b, "&lt;");
        else if (!code && c == '>') fl_sb_puts(b, "&gt;");
        else if (!code && c == '&') fl_sb_puts(b, "&amp;");
        else if (!code && (c == '[' || c == ']' || c == '\\')) { fl_sb_puts(b, "\\"); fl_sb_putn(b, s, 1); }
        else fl_sb_putn(b, s, 1);
    }
}

static void doc_close(doc *d) {
    if (d->in_table) { fl_sb_puts(&d->md, "\n"); fl_sb_puts(&d->html, "</table>\n"); }
    if (d->in_list) { fl_sb_puts(&d->md, "\n"); fl_sb_puts(&d->html, "</ul>\n"); }
    d->in_table = d->in_list = 0;
}

static void doc_h(doc *d, int level, const char *text) {
    doc_close(d);
    fl_sb_printf(&d->md, "%.*s ", level, "######");
    md_text(&d->md, text, 0);
    fl_sb_puts(&d->md, "\n\n");
    fl_sb_printf(&d->html, "<h%d>", level);
    html_text(&d->html, text);
    fl_sb_printf(&d->html, "</h%d>\n", level);
}

static void doc_vtext(doc *d, int item, const char *fmt, va_list ap) {
    char *s;
    if (vasprintf(&s, fmt, ap) < 0) return;
    if (item && !d->in_list) { doc_close(d); d->in_list = 1; fl_sb_puts(&d->html, "<ul>\n"); }
    if (!item) doc_close(d);
    fl_sb_puts(&d->md, item ? "- " : "");
    md_text(&d->md, s, 0);
    fl_sb_puts(&d->md, item ? "\n" : "\n\n");
    fl_sb_puts(&d->html, item ? "<li>" : "<p>");
    html_text(&d->html, s);
    fl_sb_puts(&d->html, item ? "</li>\n" : "</p>\n");
    free(s);
}

__attribute__((format(printf, 2, 3))) static void doc_p(doc *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    doc_vtext(d, 0, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 2, 3))) static void doc_li(doc *d, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    doc_vtext(d, 1, fmt, ap);
    va_end(ap);
}

/* A table row; the first row after anything else is the header. */
static void doc_row(doc *d, int n, char *const *cells) {
    int head = !d->in_table;
    if (head) { doc_close(d); d->in_table = 1; fl_sb_puts(&d->html, "<table>\n"); }
    fl_sb_puts(&d->md, "|");
    fl_sb_puts(&d->html, "<tr>");
    for (int i = 0; i < n; i++) {
        fl_sb_puts(&d->md, " ");
        md_text(&d->md, cells[i], 1);
        fl_sb_puts(&d->md, " |");
        fl_sb_puts(&d->html, head ? "<th>" : "<td>");
        html_text(&d->html, cells[i]);
        fl_sb_puts(&d->html, head ? "</th>" : "</td>");
    }
    fl_sb_puts(&d->md, "\n");
    fl_sb_puts(&d->html, "</tr>\n");
    if (head) {
        fl_sb_puts(&d->md, "|");
        for (int i = 0; i < n; i++) fl_sb_puts(&d->md, "---|");
        fl_sb_puts(&d->md, "\n");
    }
}

/* A plot: Markdown links the files in plots/; HTML carries the SVG itself
 * as a data: URI (an <img> keeps each SVG's ids to itself, which inlined
 * <svg> elements from one gnuplot would not: they all define gpPt0...). */
static int doc_plot(doc *d, const char *out_dir, const fl_plot *p, int draw) {
    doc_close(d);
    /* the name is made of file-safe characters only (summary.c) */
    fl_sb_puts(&d->md, "![");
    md_text(&d->md, p->title, 0);
    fl_sb_printf(&d->md, "](plots/%s.svg)\n\n*", p->name);
    md_text(&d->md, p->title, 0);
    fl_sb_printf(&d->md, "* (files: `plots/%s.png`, `.svg`, `.gp`, `.dat`)\n\n", p->name);
    if (!draw) {
        fl_sb_puts(&d->html, "<figure><figcaption>");
        html_text(&d->html, p->title);
        fl_sb_puts(&d->html, "</figcaption></figure>\n");
        return 0;
    }
    char path[4400];
    snprintf(path, sizeof path, "%.4000s/plots/%.128s.svg", out_dir, p->name);
    FILE *f = fopen(path, "rb");
    if (!f) return fl_err("%s: cannot read the plot just drawn", path);
    fl_sbuf svg = { 0 };
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) fl_sb_putn(&svg, buf, n);
    int bad = ferror(f);
    fclose(f);
    if (bad || !svg.len) { fl_sb_free(&svg); return fl_err("%s: cannot read the plot just drawn", path); }
    unsigned char *b64 = malloc(4 * ((svg.len + 2) / 3) + 1);
    EVP_EncodeBlock(b64, (const unsigned char *)svg.s, (int)svg.len);
    fl_sb_puts(&d->html, "<figure><img alt=\"");
    html_text(&d->html, p->title);
    fl_sb_printf(&d->html, "\" src=\"data:image/svg+xml;base64,%s\"><figcaption>", (const char *)b64);
    html_text(&d->html, p->title);
    fl_sb_puts(&d->html, "</figcaption></figure>\n");
    free(b64);
    fl_sb_free(&svg);
    return 0;
}

/* ---- numbers as text ---------------------------------------------------------- */

/* "20.10 ± 0.30 (2)"; "20.10 (1)" with one value (no std); "–" with none. */
static void fmt_stat(char *out, size_t n, fl_stat s, double scale) {
    if (!s.n) snprintf(out, n, "–");
    else if (s.n < 2) snprintf(out, n, "%.2f (1)", s.mean * scale);
    else snprintf(out, n, "%.2f ± %.2f (%d)", s.mean * scale, s.std * scale, s.n);
}

/* The mean alone: "2.40", or "–" without a value. */
static void fmt_mean(char *out, size_t n, fl_stat s, double scale) {
    if (s.n) snprintf(out, n, "%.2f", s.mean * scale);
    else snprintf(out, n, "–");
}

/* Distinct values of a column, joined by ", " ("–" when none). */
static void joined(char *out, size_t n, const fl_table *t, const char *col, int all_rows) {
    fl_names v;
    fl_names_of(t, col, all_rows, &v);
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < v.n; i++) len = fl_bprintf(out, n, len, "%s%s", i ? ", " : "", v.v[i]);
    if (!v.n) snprintf(out, n, "–");
    fl_names_free(&v);
}

/* ---- set-up ------------------------------------------------------------------ */

static cJSON *read_json(const char *path) {
    char *text;
    if (fl_read_file(path, &text, NULL) != 0) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

static void setup_model(doc *d, const char *dir) {
    fl_config c;
    if (fl_config_load(&c, dir) != 0) {
        doc_li(d, "Model `%s`: its config.json cannot be read here (%s)", dir, fl_errmsg());
        fl_err_clear();
        return;
    }
    char prov[600] = "";
    char path[4200];
    snprintf(path, sizeof path, "%.4000s/freelunch.json", dir);
    cJSON *j = read_json(path);
    const cJSON *kind = cJSON_GetObjectItem(j, "kind"), *preset = cJSON_GetObjectItem(j, "preset"),
                *corpus = cJSON_GetObjectItem(j, "corpus"), *vp = cJSON_GetObjectItem(j, "val_ppl");
    if (cJSON_IsString(kind))
        snprintf(prov, sizeof prov, "; freelunch.json: %s%s%.100s%s%.100s", kind->valuestring,
                 cJSON_IsString(preset) ? ", preset " : "", cJSON_IsString(preset) ? preset->valuestring : "",
                 cJSON_IsString(corpus) ? " on " : "", cJSON_IsString(corpus) ? corpus->valuestring : "");
    if (cJSON_IsNumber(vp)) fl_bprintf(prov, sizeof prov, strlen(prov), ", validation perplexity %.2f", vp->valuedouble);
    cJSON_Delete(j);
    fl_sum_clean(prov);   /* freelunch.json is as untrusted as results.csv */
    doc_li(d, "Model `%s`: family %s, %d blocks, hidden size %d, %d attention heads (%d key/value), MLP width %d, "
              "vocabulary %d, context %d%s",
           dir, fl_family_name(c.family), c.n_layer, c.d, c.n_head, c.n_kv_head, c.d_ff, c.vocab, c.max_pos, prov);
    snprintf(path, sizeof path, "%.4000s/vocab.json", dir);
    j = read_json(path);
    if (cJSON_IsObject(j)) {
        char merges[4200];
        snprintf(merges, sizeof merges, "%.4000s/merges.txt", dir);
        FILE *f = fopen(merges, "rb");
        doc_li(d, "Tokenizer: byte-level BPE from the model directory, `vocab.json` with %d entries%s", cJSON_GetArraySize(j),
               f ? " and `merges.txt`" : " (no `merges.txt` beside it)");
        if (f) fclose(f);
    } else doc_li(d, "Tokenizer: no readable `vocab.json` in `%s`", dir);
    cJSON_Delete(j);
}

/* The cell parameters: the settings' results.csv columns, in the settings
 * table's order, but the model (its own item) and where a cell ran (the
 * machine item). PARAMS is NULL-terminated. */
static const char *PARAMS[64];
static void params_init(void) {
    int n = 0;
    for (int i = 0; i < FL_NSETTINGS && n < 63; i++) {
        const fl_setting *s = &FL_SETTINGS[i];
        int dup = 0;
        for (int k = 0; k < n; k++) dup |= s->csv && !strcmp(PARAMS[k], s->csv);
        if (s->csv && !dup && s->type != FL_SET_COMMON && strcmp(s->key, "model")) PARAMS[n++] = s->csv;
    }
    PARAMS[n] = NULL;
}

/* Parameters that take two values inside one table cell (panel, criterion,
 * reconstructor): the tables pool them with the seeds, the reader must know. */
static void pooled(const fl_table *t, char *out, size_t n) {
    params_init();
    static const char *const KEY[] = { "model", "sparsity", "pattern", "criterion", "reconstruct", "seed" };
    size_t len = 0;
    out[0] = 0;
    for (int k = 0; PARAMS[k]; k++) {
        int is_key = 0;
        for (size_t q = 0; q < sizeof KEY / sizeof *KEY; q++) is_key |= !strcmp(KEY[q], PARAMS[k]);
        int varies = 0;
        for (int a = 0; a < t->nrows && !is_key && !varies; a++)
            for (int b = a + 1; b < t->nrows && !varies; b++) {
                if (!fl_sum_ok(t, a) || !fl_sum_ok(t, b)) continue;
                int same = 1;
                for (int q = 0; q < 5 && same; q++) same = !strcmp(fl_table_get(t, a, KEY[q]), fl_table_get(t, b, KEY[q]));
                varies = same && strcmp(fl_table_get(t, a, PARAMS[k]), fl_table_get(t, b, PARAMS[k]));
            }
        if (varies) len = fl_bprintf(out, n, len, "%s`%s`", len ? ", " : "", PARAMS[k]);
    }
}

static void setup(doc *d, const fl_table *t, const char *csv) {
    int ok = 0, nw = 0;
    double wall = 0;
    for (int r = 0; r < t->nrows; r++) {
        ok += fl_sum_ok(t, r);
        double w = fl_table_num(t, r, "wall_s");
        if (isfinite(w)) { wall += w; nw++; }
    }
    char v[4096], v2[4096], v3[4096];
    doc_h(d, 2, "Set-up");
    doc_li(d, "Results: `%s`, %d cells: %d ok, %d failed; total wall time %.1f s (%.2f h, the sum of `wall_s` over the %d cells that report it)",
           csv, t->nrows, ok, t->nrows - ok, wall, wall / 3600, nw);
    fl_names models;
    fl_names_of(t, "model", 1, &models);
    for (int i = 0; i < models.n; i++) setup_model(d, models.v[i]);
    fl_names_free(&models);
    joined(v, sizeof v, t, "calib", 1);
    joined(v2, sizeof v2, t, "calib_samples", 1);
    joined(v3, sizeof v3, t, "seqlen", 1);
    doc_li(d, "Calibration: %s; %s windows of %s tokens, drawn per cell from its seed", v, v2, v3);
    joined(v, sizeof v, t, "eval_set", 1);
    joined(v2, sizeof v2, t, "eval_windows", 1);
    doc_li(d, "Evaluation: perplexity (`ppl`) on %s, %s%s; the columns `ppl_sotu_test`, `ppl_moby_test`, "
              "`ppl_kjv_test` and `ppl_all` of results.csv hold the other sets", v, strcmp(v2, "–") ? "windows per cell: " : "every window", strcmp(v2, "–") ? v2 : "");
    joined(v, sizeof v, t, "machine", 1);
    joined(v2, sizeof v2, t, "backend", 1);
    joined(v3, sizeof v3, t, "threads", 1);
    doc_li(d, "Machine: %s; GEMM backend %s; threads %s", v, v2, v3);
    joined(v, sizeof v, t, "commit", 1);
    doc_li(d, "Commit: %s", v);
    doc_p(d, "Grid (values over every row):");
    params_init();
    char *hdr[2] = { "parameter", "values" };
    doc_row(d, 2, hdr);
    for (int k = 0; PARAMS[k]; k++) {
        char name[64];
        snprintf(name, sizeof name, "`%s`", PARAMS[k]);
        joined(v, sizeof v, t, PARAMS[k], 1);
        if (!strcmp(v, "–")) continue;   /* not recorded (e.g. no optimiser for `none`) */
        char *row[2] = { name, v };
        doc_row(d, 2, row);
    }
    pooled(t, v, sizeof v);
    if (v[0]) doc_p(d, "**Note**: %s vary within a table cell (same sparsity, criterion and reconstructor) and are pooled "
                       "with the seeds in every mean and std below.", v);
}

/* ---- tables --------------------------------------------------------------------- */

static void ppl_tables(doc *d, const fl_table *t, const fl_panel *ps, int np) {
    doc_h(d, 2, "Perplexity");
    char ev[1024];
    joined(ev, sizeof ev, t, "eval_set", 0);
    doc_p(d, "Perplexity on %s: mean ± sample standard deviation over seeds (number of seeds); a single seed shows its "
             "value and (1). Best mean per criterion in bold. Failed cells are left out.", ev);
    fl_names crits, recs;
    fl_names_of(t, "criterion", 0, &crits);
    fl_names_of(t, "reconstruct", 0, &recs);
    char **row = malloc(sizeof(char *) * (size_t)(crits.n + 1));
    for (int c = 0; c <= crits.n; c++) row[c] = malloc(256);
    for (int i = 0; i < np; i++) {
        char h[600];
        snprintf(h, sizeof h, "%s", ps[i].label);
        h[0] = (char)toupper((unsigned char)h[0]);
        doc_h(d, 3, h);
        snprintf(row[0], 256, "reconstructor");
        for (int c = 0; c < crits.n; c++) snprintf(row[c + 1], 256, "%s", crits.v[c]);
        doc_row(d, crits.n + 1, row);
        for (int k = 0; k < recs.n; k++) {
            if (!fl_stat_of(t, &ps[i], NULL, recs.v[k], "ppl").n) continue;
            snprintf(row[0], 256, "%s", recs.v[k]);
            for (int c = 0; c < crits.n; c++) {
                fl_stat s = fl_stat_of(t, &ps[i], crits.v[c], recs.v[k], "ppl");
                int best = s.n > 0;
                for (int q = 0; q < recs.n && best; q++) {
                    fl_stat o = fl_stat_of(t, &ps[i], crits.v[c], recs.v[q], "ppl");
                    best = !(o.n && o.mean < s.mean);
                }
                char cell[128];
                fmt_stat(cell, sizeof cell, s, 1);
                snprintf(row[c + 1], 256, best ? "**%s**" : "%s", cell);
            }
            doc_row(d, crits.n + 1, row);
        }
    }
    for (int c = 0; c <= crits.n; c++) free(row[c]);
    free(row);
    fl_names_free(&crits);

    doc_h(d, 2, "Memory and time per reconstructor");
    doc_p(d, "Means over every ok cell of the reconstructor (all criteria, sparsities and seeds). Working set: the "
             "recovery's own tensors for its largest submodel; recovery peak: every tracked byte live during the "
             "recovery phase, the model included. MB = 10^6 bytes.");
    char *hdr[5] = { "reconstructor", "cells", "working set (MB)", "recovery peak (MB)", "recovery time (s)" };
    doc_row(d, 5, hdr);
    for (int k = 0; k < recs.n; k++) {
        char n[16], w[64], pk[64], s[64];
        fl_stat sw = fl_stat_of(t, NULL, NULL, recs.v[k], "working_bytes");
        fl_stat sp = fl_stat_of(t, NULL, NULL, recs.v[k], "recovery_peak_bytes");
        fl_stat ss = fl_stat_of(t, NULL, NULL, recs.v[k], "recovery_wall_s");
        int cells = 0;
        for (int r = 0; r < t->nrows; r++) cells += fl_row_matches(t, r, NULL, NULL, recs.v[k]);
        snprintf(n, sizeof n, "%d", cells);
        fmt_mean(w, sizeof w, sw, 1e-6);
        fmt_mean(pk, sizeof pk, sp, 1e-6);
        fmt_mean(s, sizeof s, ss, 1);
        char *row5[5] = { recs.v[k], n, w, pk, s };
        doc_row(d, 5, row5);
    }
    fl_names_free(&recs);
}

/* ---- verdicts ------------------------------------------------------------------- */

/* The lowest mean perplexity among the reconstructors of (panel, criterion),
 * "none" skipped when skip_none; its index in recs, or -1 without cells. */
static int best_of(const fl_table *t, const fl_panel *p, const char *crit, const fl_names *recs, int skip_none,
                   fl_stat *out) {
    int best = -1;
    for (int k = 0; k < recs->n; k++) {
        if (skip_none && !strcmp(recs->v[k], "none")) continue;
        fl_stat s = fl_stat_of(t, p, crit, recs->v[k], "ppl");
        if (s.n && (best < 0 || s.mean < out->mean)) { best = k; *out = s; }
    }
    return best;
}

static void fmt_named(char *out, size_t n, const char *crit, const char *rec, fl_stat s) {
    char v[128];
    fmt_stat(v, sizeof v, s, 1);
    snprintf(out, n, "%s%s%s %s", crit ? crit : "", crit ? "+" : "", rec, v);
}

/* The references of the free-lunch claim: one block, all blocks at once,
 * and retraining the whole model. */
static const char *const MEM_REFS[] = { "block", "blocks:all", "retrain:full" };
#define NREFS 3

/* "sublayer 1.20 MB = 0.50× block (2.40 MB), ..." for one memory column;
 * *below: sublayer's mean under every reference present; *nref: how many. */
static void mem_ratios(char *out, size_t n, const fl_table *t, const fl_panel *p, const char *crit, const char *col,
                       int *below, int *nref) {
    fl_stat sub = fl_stat_of(t, p, crit, "sublayer", col);
    size_t len = fl_bprintf(out, n, 0, "sublayer %.2f MB", sub.mean * 1e-6);
    *below = 1;
    *nref = 0;
    for (int i = 0; i < NREFS; i++) {
        fl_stat r = fl_stat_of(t, p, crit, MEM_REFS[i], col);
        const char *sep = i ? ", " : " = ";
        if (!r.n) len = fl_bprintf(out, n, len, "%sno %s cell", sep, MEM_REFS[i]);
        else if (r.mean <= 0) len = fl_bprintf(out, n, len, "%s%s %.2f MB (no ratio)", sep, MEM_REFS[i], r.mean * 1e-6);
        else len = fl_bprintf(out, n, len, "%s%.2f× %s (%.2f MB)", sep, sub.mean / r.mean, MEM_REFS[i], r.mean * 1e-6);
        if (r.n) { (*nref)++; *below &= sub.mean < r.mean; }
    }
    if (!sub.n) snprintf(out, n, "no sublayer value");
}

/* Verdict 1 for one (panel, criterion): 1 within the best's spread (or the
 * best), 0 not, -1 cannot judge; *why receives the sentence. */
static int sublayer_within(const fl_table *t, const fl_panel *p, const char *crit, const fl_names *recs, char *why,
                           size_t n) {
    fl_stat sub = fl_stat_of(t, p, crit, "sublayer", "ppl"), best = { 0 };
    int b = best_of(t, p, crit, recs, 0, &best);
    char bs[300], ss[300];
    if (!sub.n) { snprintf(why, n, "no sublayer cell. Sublayer within the best's spread: **cannot judge**"); return -1; }
    fmt_named(bs, sizeof bs, NULL, recs->v[b], best);
    fmt_named(ss, sizeof ss, NULL, "sublayer", sub);
    if (!strcmp(recs->v[b], "sublayer")) {
        snprintf(why, n, "the best mean is sublayer's, %s. Sublayer within the best's spread: **yes** (it is the best)", ss);
        return 1;
    }
    double gap = sub.mean - best.mean;
    if (best.n < 2) {
        snprintf(why, n, "best %s, %s, %.2f higher. Sublayer within the best's spread: **cannot judge** (the best has one "
                 "seed, so no spread)", bs, ss, gap);
        return -1;
    }
    int in = gap <= best.std;
    snprintf(why, n, "best %s, %s. Sublayer within the best's spread: **%s** (%.2f − %.2f = %.2f %s %.2f, the best's std)",
             bs, ss, in ? "yes" : "no", sub.mean, best.mean, gap, in ? "≤" : ">", best.std);
    return in;
}

/* Verdict 2: does Wanda (w) match or beat SparseGPT (s)? The rule is the
 * one of verdict 1 with the better of the two as the reference. */
static void wanda_vs(char *out, size_t n, fl_stat w, fl_stat s) {
    const char *q = "Wanda matches or beats SparseGPT:";
    if (!w.n || !s.n) { snprintf(out, n, "%s **cannot judge** (no %s cell)", q, !w.n ? "wanda" : "sparsegpt"); return; }
    double gap = w.mean - s.mean;
    if (gap <= 0) {
        if (w.n < 2) snprintf(out, n, "%s **yes** (lower mean by %.2f; one Wanda seed, so whether that exceeds the seeds' spread cannot be judged)", q, -gap);
        else if (-gap > w.std) snprintf(out, n, "%s **yes**, beats it (lower by %.2f > Wanda's std %.2f)", q, -gap, w.std);
        else snprintf(out, n, "%s **yes**, matches it (lower by %.2f ≤ Wanda's std %.2f)", q, -gap, w.std);
    } else {
        if (s.n < 2) snprintf(out, n, "%s **cannot judge** (higher by %.2f; one SparseGPT seed, so no spread)", q, gap);
        else if (gap <= s.std) snprintf(out, n, "%s **yes**, matches it (higher by %.2f ≤ SparseGPT's std %.2f)", q, gap, s.std);
        else snprintf(out, n, "%s **no** (higher by %.2f > SparseGPT's std %.2f)", q, gap, s.std);
    }
}

static void verdicts(doc *d, const fl_table *t, const fl_panel *ps, int np) {
    fl_names crits, recs;
    fl_names_of(t, "criterion", 0, &crits);
    fl_names_of(t, "reconstruct", 0, &recs);
    doc_h(d, 2, "Verdicts");
    doc_p(d, "Computed from the tables above by these rules. **std** is the sample standard deviation (n − 1) of a "
             "cell's perplexities over its seeds; it is undefined for one seed. **Within the spread**: a mean B is within "
             "the spread of a better (lower) mean A iff B − A ≤ std(A), the std of the better one's seeds. When A has one "
             "seed, that cannot be judged.");
    doc_li(d, "**Sublayer vs the best** (per criterion and sparsity): the best is the reconstructor with the lowest mean "
              "perplexity (`none` included); sublayer passes if it is the best or within the best's spread.");
    doc_li(d, "**Memory**: sublayer's mean working set and mean recovery peak over the same cells, as ratios to block, "
              "blocks:all and retrain:full.");
    doc_li(d, "**Free lunch** holds for a (criterion, sparsity) pair iff sublayer passes the first rule and its mean "
              "recovery peak is below that of every one of block, blocks:all and retrain:full present; it cannot be "
              "judged when the first rule cannot, or none of the three was run.");
    doc_li(d, "**Wanda vs SparseGPT** (per sparsity): each criterion with its best reconstruction (lowest mean, `none` "
              "excluded), then both with sublayer. Wanda matches or beats SparseGPT iff its mean is lower, or higher "
              "but within SparseGPT's spread; \"beats\" when lower by more than Wanda's own std.");

    doc_h(d, 3, "Is sublayer within the seeds' spread of the best, and at what memory?");
    int holds = 0, judged = 0, undecided = 0;
    for (int i = 0; i < np; i++)
        for (int c = 0; c < crits.n; c++) {
            if (!fl_stat_of(t, &ps[i], crits.v[c], NULL, "ppl").n) continue;
            char why[1024], wm[1024], pk[1024];
            int in = sublayer_within(t, &ps[i], crits.v[c], &recs, why, sizeof why);
            int below, nref, below_pk, nref_pk;
            mem_ratios(wm, sizeof wm, t, &ps[i], crits.v[c], "working_bytes", &below, &nref);
            mem_ratios(pk, sizeof pk, t, &ps[i], crits.v[c], "recovery_peak_bytes", &below_pk, &nref_pk);
            if (in < 0 || !nref_pk || !fl_stat_of(t, &ps[i], crits.v[c], "sublayer", "recovery_peak_bytes").n) undecided++;
            else { judged++; holds += in == 1 && below_pk; }
            if (in < 0 && !fl_stat_of(t, &ps[i], crits.v[c], "sublayer", "ppl").n) doc_li(d, "%s, %s: %s.", crits.v[c], ps[i].label, why);
            else doc_li(d, "%s, %s: %s. Working set: %s. Recovery peak: %s.", crits.v[c], ps[i].label, why, wm, pk);
        }
    doc_p(d, "**Free lunch** (the rule above): holds in %d of %d judged (criterion, sparsity) pairs; %d cannot be judged.",
          holds, judged, undecided);

    doc_h(d, 3, "Does Wanda with reconstruction match or beat SparseGPT with reconstruction?");
    for (int i = 0; i < np; i++) {
        fl_stat w = { 0 }, s = { 0 };
        int bw = best_of(t, &ps[i], "wanda", &recs, 1, &w), bs = best_of(t, &ps[i], "sparsegpt", &recs, 1, &s);
        char a[300], b[300], v[600];
        fmt_named(a, sizeof a, "wanda", bw >= 0 ? recs.v[bw] : "(none)", w);
        fmt_named(b, sizeof b, "sparsegpt", bs >= 0 ? recs.v[bs] : "(none)", s);
        wanda_vs(v, sizeof v, w, s);
        doc_li(d, "%s, best reconstruction: %s vs %s. %s.", ps[i].label, a, b, v);
        w = fl_stat_of(t, &ps[i], "wanda", "sublayer", "ppl");
        s = fl_stat_of(t, &ps[i], "sparsegpt", "sublayer", "ppl");
        fmt_named(a, sizeof a, "wanda", "sublayer", w);
        fmt_named(b, sizeof b, "sparsegpt", "sublayer", s);
        wanda_vs(v, sizeof v, w, s);
        doc_li(d, "%s, both with sublayer: %s vs %s. %s.", ps[i].label, a, b, v);
    }
    fl_names_free(&crits);
    fl_names_free(&recs);
}

/* ---- failed cells and the whole report ----------------------------------------- */

static void failures(doc *d, const fl_table *t) {
    doc_h(d, 2, "Failed cells");
    static const char *const COLS[] = { "cell_id", "criterion", "sparsity", "reconstruct", "seed", "status", "message" };
    int n = 0;
    for (int r = 0; r < t->nrows; r++) {
        if (fl_sum_ok(t, r)) continue;
        if (!n++) doc_row(d, 7, (char *[]){ "cell", "criterion", "sparsity", "reconstructor", "seed", "status", "message" });
        char *cells[7];
        for (int c = 0; c < 7; c++) cells[c] = (char *)fl_table_get(t, r, COLS[c]);
        doc_row(d, 7, cells);
    }
    if (!n) doc_p(d, "None: every cell finished with status ok.");
}

static const char *HTML_HEAD =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>freelunch report</title>\n<style>\n"
    "body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }\n"
    "table { border-collapse: collapse; margin: 1em 0; }\n"
    "th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }\n"
    "code { background: #f3f3f3; padding: 0 0.2em; }\n"
    "figure { margin: 1.5em 0; } img { max-width: 100%; height: auto; }\n"
    "figcaption { font-style: italic; }\n</style>\n</head>\n<body>\n";

int fl_report_build(const fl_table *t, const char *results_csv, const char *out_dir, int draw) {
    fl_plot_list plots;
    if ((draw ? fl_plots_build : fl_plots_scripts)(t, out_dir, &plots) != 0) return -1;
    doc d = { 0 };
    fl_sb_puts(&d.html, HTML_HEAD);
    doc_h(&d, 1, "freelunch: pruning and recovery study");
    doc_p(&d, "A reproduction of \"A Free Lunch in LLM Compression: Revisiting Retraining after Pruning\" (Wagner, Roux, "
              "Zimmer, Pokutta, arXiv 2510.14444), made by `freelunch report` from `%s`. Every number below is computed "
              "from that file.", results_csv);
    setup(&d, t, results_csv);
    fl_panel *ps;
    int np = fl_panels(t, &ps);
    verdicts(&d, t, ps, np);
    ppl_tables(&d, t, ps, np);
    free(ps);
    doc_h(&d, 2, "Plots");
    int rc = 0;
    for (int i = 0; i < plots.n && !rc; i++) rc = doc_plot(&d, out_dir, &plots.v[i], draw);
    if (!rc) {
        failures(&d, t);
        doc_close(&d);
        fl_sb_puts(&d.html, "</body>\n</html>\n");
        char path[4200];
        snprintf(path, sizeof path, "%.4000s/report.md", out_dir);
        rc = fl_write_file_atomic(path, fl_sb_str(&d.md), d.md.len);
        snprintf(path, sizeof path, "%.4000s/report.html", out_dir);
        if (!rc) rc = fl_write_file_atomic(path, fl_sb_str(&d.html), d.html.len);
    }
    fl_sb_free(&d.md);
    fl_sb_free(&d.html);
    fl_plot_list_free(&plots);
    return rc;
}

int fl_report_make(const char *results_csv, const char *out_dir) {
    fl_table t;
    if (fl_sum_load(results_csv, &t) != 0) return -1;
    int rc = fl_report_build(&t, results_csv, out_dir, 1);
    fl_table_free(&t);
    return rc;
}
