/* report.md and report.html; see report.h. Every section is emitted once
 * through a small document writer (doc_*) that appends Markdown and HTML
 * side by side, so the two files always say the same thing. */
#include "report.h"
#include "paired.h"
#include "plots/plots.h"
#include "plots/sbuf.h"
#include "plots/summary.h"
#include "plots/ladder.h"
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
/* The SVG of plot NAME in OUT_DIR/plots as a data: URI appended to B (the
 * report is one self-contained file). */
static int svg_uri(fl_sbuf *b, const char *out_dir, const char *name) {
    char path[4400];
    snprintf(path, sizeof path, "%.4000s/plots/%.128s.svg", out_dir, name);
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
    fl_sb_printf(b, "data:image/svg+xml;base64,%s", (const char *)b64);
    free(b64);
    fl_sb_free(&svg);
    return 0;
}

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
    fl_sbuf uri = { 0 };
    if (svg_uri(&uri, out_dir, p->name) != 0) { fl_sb_free(&uri); return -1; }
    fl_sb_printf(&d->html, "<figure id=\"plot-%s\"><img alt=\"", p->name);
    html_text(&d->html, p->title);
    fl_sb_printf(&d->html, "\" src=\"%s\"><figcaption>", fl_sb_str(&uri));
    html_text(&d->html, p->title);
    fl_sb_puts(&d->html, "</figcaption></figure>\n");
    fl_sb_free(&uri);
    return 0;
}

/* The summary's figures: for each claim the first plot whose name starts
 * with its prefix, side by side and small (class thumb), so the summary
 * still fits one screen; each links to its full figure under Plots. */
static int doc_thumbs(doc *d, const char *out_dir, const fl_plot_list *pl, const char *const *prefix,
                      const char *const *claim, int n, int draw) {
    doc_close(d);
    int any = 0;
    for (int k = 0; k < n; k++) {
        const fl_plot *p = NULL;
        for (int i = 0; i < pl->n && !p; i++)
            if (!strncmp(pl->v[i].name, prefix[k], strlen(prefix[k]))) p = &pl->v[i];
        if (!p) continue;
        fl_sb_printf(&d->md, "%s![%s: ", any ? " " : "", claim[k]);
        md_text(&d->md, p->title, 0);
        fl_sb_printf(&d->md, "](plots/%s.svg)", p->name);
        if (!draw) { any = 1; continue; }
        fl_sbuf uri = { 0 };
        if (svg_uri(&uri, out_dir, p->name) != 0) { fl_sb_free(&uri); return -1; }
        fl_sb_printf(&d->html, "%s<figure><a href=\"#plot-%s\"><img class=\"thumb\" alt=\"", any ? "" : "<div class=\"thumbs\">",
                     p->name);
        html_text(&d->html, p->title);
        fl_sb_printf(&d->html, "\" src=\"%s\"></a><figcaption>%s: ", fl_sb_str(&uri), claim[k]);
        html_text(&d->html, p->title);
        fl_sb_puts(&d->html, "</figcaption></figure>");
        fl_sb_free(&uri);
        any = 1;
    }
    if (any) {
        fl_sb_puts(&d->md, "\n\n");
        if (draw) fl_sb_puts(&d->html, "</div>\n");
    }
    return 0;
}

/* ---- numbers as text ---------------------------------------------------------- */

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

/* Distinct values of a column over the rows of reconstructor REC (all
 * rows, failed ones included, as the grid table), joined by ", ". */
static void joined_of(char *out, size_t n, const fl_table *t, const char *col, const char *rec) {
    fl_names v = { 0 };
    v.v = malloc(sizeof(char *) * (size_t)(t->nrows + 1));
    size_t len = 0;
    out[0] = 0;
    for (int r = 0; r < t->nrows; r++) {
        const char *x = fl_table_get(t, r, col);
        if (strcmp(fl_table_get(t, r, "reconstruct"), rec) || !*x || fl_names_index(&v, x) >= 0) continue;
        int i = v.n++;
        while (i > 0 && fl_value_cmp(v.v[i - 1], x) > 0) { v.v[i] = v.v[i - 1]; i--; }
        v.v[i] = strdup(x);
    }
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

/* The model's item; appends to DENSE what its freelunch.json records of the
 * dense model's perplexity. */
static void setup_model(doc *d, const char *dir, char *dense, size_t dn) {
    fl_config c;
    if (fl_config_load(&c, dir) != 0) {
        doc_li(d, "Model `%s`: its config.json cannot be read here (%s)", dir, fl_errmsg());
        fl_err_clear();
        size_t len = strlen(dense);
        fl_bprintf(dense, dn, len, "%s`%.300s` unknown (its directory cannot be read here)", len ? "; " : "", dir);
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
    {
        const char *base = strrchr(dir, '/');
        base = base && base[1] ? base + 1 : dir;
        size_t len = strlen(dense);
        if (cJSON_IsNumber(vp))
            fl_bprintf(dense, dn, len, "%s`%.300s` %.2f (`val_ppl` of its freelunch.json: perplexity on the "
                       "pretraining's validation split, not on the evaluation set of the tables)", len ? "; " : "", base, vp->valuedouble);
        else
            fl_bprintf(dense, dn, len, "%s`%.300s` unknown (its freelunch.json records no `val_ppl`)", len ? "; " : "", base);
    }
    cJSON_Delete(j);
    fl_sum_clean(prov);   /* freelunch.json is as untrusted as results.csv */
    doc_li(d, "Model `%s`: family %s, %d blocks, hidden size %d, %d attention heads (%d key/value), MLP width %d, "
              "vocabulary %d, context %d%s",
           dir, fl_family_name(c.family), c.n_layer, c.d, c.n_head, c.n_kv_head, c.d_ff, c.vocab, c.max_pos, prov);
    snprintf(path, sizeof path, "%.4000s/tokenizer.json", dir);
    FILE *tf = fopen(path, "rb");
    if (tf) { /* what fl_bpe_load takes first */
        fclose(tf);
        doc_li(d, "Tokenizer: HF `tokenizer.json` from the model directory (its normalizer, pre-tokenizer, added tokens "
                  "and BOS template, as HF encodes)");
        return;
    }
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

/* The columns that tell table cells apart (the seed: the rows of one cell). */
static const char *const KEYS[] = { "model", "sparsity", "pattern", "criterion", "reconstruct", "seed" };
#define NKEYS 6

static int is_key(const char *col) {
    for (int q = 0; q < NKEYS; q++)
        if (!strcmp(KEYS[q], col)) return 1;
    return 0;
}

/* Parameters that take two values inside one table cell (panel, criterion,
 * reconstructor): the tables pool them with the seeds, the reader must know. */
static void pooled(const fl_table *t, char *out, size_t n) {
    params_init();
    size_t len = 0;
    out[0] = 0;
    for (int k = 0; PARAMS[k]; k++) {
        int varies = 0;
        for (int a = 0; a < t->nrows && !is_key(PARAMS[k]) && !varies; a++)
            for (int b = a + 1; b < t->nrows && !varies; b++) {
                if (!fl_sum_ok(t, a) || !fl_sum_ok(t, b)) continue;
                int same = 1;
                for (int q = 0; q < NKEYS - 1 && same; q++) same = !strcmp(fl_table_get(t, a, KEYS[q]), fl_table_get(t, b, KEYS[q]));
                varies = same && strcmp(fl_table_get(t, a, PARAMS[k]), fl_table_get(t, b, PARAMS[k]));
            }
        if (varies) len = fl_bprintf(out, n, len, "%s`%s`", len ? ", " : "", PARAMS[k]);
    }
}

static void setup(doc *d, const fl_table *t, const char *csv, char *dense, size_t dn) {
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
    for (int i = 0; i < models.n; i++) setup_model(d, models.v[i], dense, dn);
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
    doc_p(d, "Grid (values over every row; settings that differ between reconstructors are in the next table):");
    params_init();
    fl_names recs;
    fl_names_of(t, "reconstruct", 1, &recs);
    const char *per[64];
    int nper = 0;
    doc_row(d, 2, (char *[]){ "parameter", "values" });
    for (int k = 0; PARAMS[k]; k++) {
        char name[64];
        snprintf(name, sizeof name, "`%s`", PARAMS[k]);
        joined(v, sizeof v, t, PARAMS[k], 1);
        if (!strcmp(v, "–")) continue;   /* not recorded (e.g. no optimiser for `none`) */
        int by_rec = 0;
        for (int i = 0; i < recs.n && !is_key(PARAMS[k]) && !by_rec; i++) {
            joined_of(v2, sizeof v2, t, PARAMS[k], recs.v[i]);
            by_rec = strcmp(v2, "–") && strcmp(v, v2);
        }
        if (by_rec) { per[nper++] = PARAMS[k]; continue; }
        doc_row(d, 2, (char *[]){ name, v });
    }
    if (nper) {
        doc_p(d, "Settings per reconstructor (values over its rows; – where it does not record the setting):");
        char *row[65];
        row[0] = "reconstructor";
        for (int k = 0; k < nper; k++) { row[k + 1] = malloc(64); snprintf(row[k + 1], 64, "`%s`", per[k]); }
        doc_row(d, nper + 1, row);
        for (int k = 0; k < nper; k++) free(row[k + 1]);
        for (int i = 0; i < recs.n; i++) {
            row[0] = recs.v[i];
            for (int k = 0; k < nper; k++) {
                row[k + 1] = malloc(1024);
                joined_of(row[k + 1], 1024, t, per[k], recs.v[i]);
            }
            doc_row(d, nper + 1, row);
            for (int k = 0; k < nper; k++) free(row[k + 1]);
        }
    }
    fl_names_free(&recs);
    pooled(t, v, sizeof v);
    if (v[0]) doc_p(d, "**Note**: %s vary within a table cell (same sparsity, criterion and reconstructor) and are pooled "
                       "with the seeds in every mean and std below.", v);
}

/* ---- configurations and paired comparisons ---------------------------------- */

/* A configuration is a reconstructor with the settings its rows carry
 * beside the table's keys (lr, epochs, propagation, retrain_samples, ...):
 * rows of one reconstructor that differ there are different configurations,
 * never pooled in a comparison. SIG is that rest of the settings, joined. */
typedef struct {
    const char *rec, *sig;
    int row;            /* a row of it, for its settings */
    char label[600];    /* "sublayer", or "retrain:masklora (retrain_samples 320)" */
} cfg;

typedef struct {
    const fl_table *t;
    char **sig;          /* per row */
    cfg *c;
    int nc;
    fl_names crits;
    const fl_panel *ps;
    int np;
    double dense;        /* the dense model's recorded perplexity, NAN if unknown */
    const char *metric;  /* what the claims compare, lower better: "ppl", or ZS_ERR */
} ctx;

/* The claims' second metric (issue 17): zero-shot error, 100 − acc_mean in
 * percent. Lower is better, as perplexity is, so every rule, pairing and
 * verdict word of the claims applies to it unchanged ("A better" = A has
 * the higher accuracy), and its differences read in accuracy points. */
static const char ZS_ERR[] = "zs_err";

static double metric_of(const fl_table *t, int r, const char *col) {
    if (strcmp(col, ZS_ERR)) return fl_table_num(t, r, col);
    double a = fl_table_num(t, r, "acc_mean");
    return isfinite(a) ? 100 * (1 - a) : NAN;
}

/* A setting that takes different values at different seeds of one
 * (model, sparsity, pattern, criterion, reconstructor) — e.g. a learning
 * rate chosen per cell by tuning — names no configuration of its own: the
 * seeds of such a configuration still pair. A setting crossed as a grid
 * dimension gives every seed the same set of values, so it does identify
 * configurations. Rows are grouped by GID (their model ... reconstructor;
 * -1 for failed rows), MEMBERS[g] listing group g's rows, SID their seeds. */
static int chosen_per_seed(const fl_table *t, const int *gid, const int *sid, int *const *members, const int *nmem,
                           const char *col) {
    for (int a = 0; a < t->nrows; a++) {
        if (gid[a] < 0) continue;
        const int *m = members[gid[a]], nm = nmem[gid[a]];
        const char *va = fl_table_get(t, a, col);
        for (int i = 0; i < nm; i++) {
            if (sid[m[i]] == sid[a]) continue;
            /* does the seed of m[i] have a row of a's value? */
            int found = 0;
            for (int j = 0; j < nm && !found; j++)
                found = sid[m[j]] == sid[m[i]] && !strcmp(fl_table_get(t, m[j], col), va);
            if (!found) return 1;
        }
    }
    return 0;
}

/* The identifying settings: IDENT[k] for PARAMS[k]. X->sig holds each row's
 * (model ... reconstructor), joined. */
static void identifying(const ctx *x, int *ident) {
    const fl_table *t = x->t;
    int n = t->nrows, ng = 0;
    int *gid = malloc(sizeof(int) * (size_t)(n + 1)), *sid = malloc(sizeof(int) * (size_t)(n + 1));
    int *rep = malloc(sizeof(int) * (size_t)(n + 1)), *nmem = calloc((size_t)n + 1, sizeof(int));
    int **members = malloc(sizeof(int *) * (size_t)(n + 1));
    fl_names seeds;
    fl_names_of(t, "seed", 1, &seeds);
    for (int r = 0; r < n; r++) {
        sid[r] = fl_names_index(&seeds, fl_table_get(t, r, "seed"));
        gid[r] = -1;
        if (!fl_sum_ok(t, r)) continue;
        for (int g = 0; g < ng && gid[r] < 0; g++)
            if (!strcmp(x->sig[rep[g]], x->sig[r])) gid[r] = g;
        if (gid[r] < 0) { rep[ng] = r; gid[r] = ng++; }
        nmem[gid[r]]++;
    }
    for (int g = 0; g < ng; g++) { members[g] = malloc(sizeof(int) * (size_t)nmem[g]); nmem[g] = 0; }
    for (int r = 0; r < n; r++)
        if (gid[r] >= 0) members[gid[r]][nmem[gid[r]]++] = r;
    for (int k = 0; PARAMS[k]; k++)
        ident[k] = !is_key(PARAMS[k]) && !chosen_per_seed(t, gid, sid, members, nmem, PARAMS[k]);
    for (int g = 0; g < ng; g++) free(members[g]);
    free(members);
    free(gid);
    free(sid);
    free(rep);
    free(nmem);
    fl_names_free(&seeds);
}

static void ctx_init(ctx *x, const fl_table *t, const fl_panel *ps, int np) {
    memset(x, 0, sizeof *x);
    x->t = t;
    x->ps = ps;
    x->np = np;
    x->dense = NAN;
    x->metric = "ppl";
    params_init();
    x->sig = malloc(sizeof(char *) * (size_t)(t->nrows + 1));
    for (int r = 0; r < t->nrows; r++) {
        fl_sbuf b = { 0 };
        for (int q = 0; q < NKEYS - 1; q++) { fl_sb_puts(&b, fl_table_get(t, r, KEYS[q])); fl_sb_puts(&b, "\x1f"); }
        x->sig[r] = strdup(fl_sb_str(&b));
        fl_sb_free(&b);
    }
    int ident[64] = { 0 };
    identifying(x, ident);
    for (int r = 0; r < t->nrows; r++) {
        fl_sbuf b = { 0 };
        for (int k = 0; PARAMS[k]; k++)
            if (ident[k]) { fl_sb_puts(&b, fl_table_get(t, r, PARAMS[k])); fl_sb_puts(&b, "\x1f"); }
        free(x->sig[r]);
        x->sig[r] = strdup(fl_sb_str(&b));
        fl_sb_free(&b);
    }
    fl_names recs;
    fl_names_of(t, "reconstruct", 0, &recs);
    fl_names_of(t, "criterion", 0, &x->crits);
    x->c = malloc(sizeof(cfg) * (size_t)(t->nrows + 1));
    for (int k = 0; k < recs.n; k++) {
        int first = x->nc;
        for (int r = 0; r < t->nrows; r++) {
            if (!fl_row_matches(t, r, NULL, NULL, recs.v[k])) continue;
            int seen = 0;
            for (int i = first; i < x->nc && !seen; i++) seen = !strcmp(x->c[i].sig, x->sig[r]);
            if (seen) continue;
            cfg *c = &x->c[x->nc++];
            c->rec = fl_table_get(t, r, "reconstruct");
            c->sig = x->sig[r];
            c->row = r;
        }
        /* the label names what sets this configuration apart from the
         * reconstructor's others */
        for (int i = first; i < x->nc; i++) {
            cfg *c = &x->c[i];
            size_t len = fl_bprintf(c->label, sizeof c->label, 0, "%s", c->rec);
            int nd = 0;
            for (int p = 0; PARAMS[p] && x->nc - first > 1; p++) {
                if (!ident[p]) continue;
                int differs = 0;
                for (int j = first; j < x->nc && !differs; j++)
                    differs = strcmp(fl_table_get(t, c->row, PARAMS[p]), fl_table_get(t, x->c[j].row, PARAMS[p])) != 0;
                if (!differs) continue;
                const char *v = fl_table_get(t, c->row, PARAMS[p]);
                len = fl_bprintf(c->label, sizeof c->label, len, "%s%s %s", nd++ ? ", " : " (", PARAMS[p], *v ? v : "unset");
            }
            if (nd) fl_bprintf(c->label, sizeof c->label, len, ")");
        }
    }
    fl_names_free(&recs);
}

static void ctx_free(ctx *x) {
    for (int r = 0; r < x->t->nrows; r++) free(x->sig[r]);
    free(x->sig);
    free(x->c);
    fl_names_free(&x->crits);
}

static int in_cfg(const ctx *x, int r, const fl_panel *p, const char *crit, const cfg *c) {
    return fl_row_matches(x->t, r, p, crit, c->rec) && !strcmp(x->sig[r], c->sig);
}

/* COL over the rows of (panel, criterion, configuration). */
static fl_stat cstat(const ctx *x, const fl_panel *p, const char *crit, const cfg *c, const char *col) {
    fl_stat s = { NAN, NAN, 0 };
    double sum = 0, ss = 0;
    for (int r = 0; r < x->t->nrows; r++) {
        double v = metric_of(x->t, r, col);
        if (in_cfg(x, r, p, crit, c) && isfinite(v)) { sum += v; s.n++; }
    }
    if (!s.n) return s;
    s.mean = sum / s.n;
    for (int r = 0; r < x->t->nrows; r++) {
        double v = metric_of(x->t, r, col);
        if (in_cfg(x, r, p, crit, c) && isfinite(v)) ss += (v - s.mean) * (v - s.mean);
    }
    if (s.n > 1) s.std = sqrt(ss / (s.n - 1));
    return s;
}

/* The perplexity of (panel, criterion, configuration) at SEED: the mean of
 * its rows with that seed (one row in a grid), NAN without one. */
static double at_seed(const ctx *x, const fl_panel *p, const char *crit, const cfg *c, const char *seed) {
    double sum = 0;
    int n = 0;
    for (int r = 0; r < x->t->nrows; r++) {
        double v = metric_of(x->t, r, x->metric);
        if (in_cfg(x, r, p, crit, c) && isfinite(v) && !strcmp(fl_table_get(x->t, r, "seed"), seed)) { sum += v; n++; }
    }
    return n ? sum / n : NAN;
}

/* A term of a paired comparison: COEF times the perplexity of (criterion, configuration). */
typedef struct { const char *crit; const cfg *c; double coef; } term;

/* The sum of the terms, per seed, over the seeds every term has; A − B is
 * { A, +1 }, { B, −1 }. */
static fl_paired pair_terms(const ctx *x, const fl_panel *p, const term *tm, int nt) {
    fl_names seeds;
    fl_names_of(x->t, "seed", 0, &seeds);
    double *d = malloc(sizeof(double) * (size_t)(seeds.n + 1));
    int n = 0;
    for (int s = 0; s < seeds.n; s++) {
        double sum = 0;
        int all = 1;
        for (int i = 0; i < nt && all; i++) {
            double v = at_seed(x, p, tm[i].crit, tm[i].c, seeds.v[s]);
            all = isfinite(v);
            sum += tm[i].coef * v;
        }
        if (all) d[n++] = sum;
    }
    fl_paired r = fl_paired_of(d, n);
    free(d);
    fl_names_free(&seeds);
    return r;
}

static fl_paired pair2(const ctx *x, const fl_panel *p, const char *ca, const cfg *a, const char *cb, const cfg *b) {
    term tm[2] = { { ca, a, 1 }, { cb, b, -1 } };
    return pair_terms(x, p, tm, 2);
}

/* "-1.20 ± 0.50 (3)"; "-1.20 (one seed: no interval)"; "no common seed". */
static void fmt_pair(char *out, size_t n, fl_paired r) {
    if (r.v == FL_PAIR_EMPTY) fl_bprintf(out, n, 0, "no common seed");
    else if (r.v == FL_PAIR_ONE) fl_bprintf(out, n, 0, "%.2f (one seed: no interval)", r.mean);
    else fl_bprintf(out, n, 0, "%.2f ± %.2f (%d)", r.mean, r.half, r.n);
}

/* The verdict on A − B in words. */
static const char *pair_word(fl_paired r, const char *a, const char *b, char *buf, size_t n) {
    switch (r.v) {
    case FL_PAIR_A: fl_bprintf(buf, n, 0, "**%s better**", a); break;
    case FL_PAIR_B: fl_bprintf(buf, n, 0, "**%s better**", b); break;
    case FL_PAIR_SAME: fl_bprintf(buf, n, 0, "no difference detected"); break;
    case FL_PAIR_ONE: fl_bprintf(buf, n, 0, "one seed: no interval"); break;
    default: fl_bprintf(buf, n, 0, "no common seed"); break;
    }
    return buf;
}

/* A configuration's mean perplexity with the 95% half-width of that mean
 * over its seeds: "98.10 ± 0.42 (3)", "98.10 (1)", "–". */
static void fmt_ci(char *out, size_t n, fl_stat s) {
    if (!s.n) fl_bprintf(out, n, 0, "–");
    else if (s.n < 2) fl_bprintf(out, n, 0, "%.2f (1)", s.mean);
    else fl_bprintf(out, n, 0, "%.2f ± %.2f (%d)", s.mean, fl_t_quantile(0.975, s.n - 1) * s.std / sqrt((double)s.n), s.n);
}

static void fmt_mb(char *out, size_t n, fl_stat s) {
    if (s.n) fl_bprintf(out, n, 0, "%.2f", s.mean * 1e-6);
    else fl_bprintf(out, n, 0, "–");
}

/* A / B of two means, "unknown" when either is missing. */
static void fmt_ratio(char *out, size_t n, fl_stat a, fl_stat b, double *lo, double *hi) {
    if (!a.n || !b.n) { fl_bprintf(out, n, 0, "unknown"); return; }
    if (b.mean <= 0) { fl_bprintf(out, n, 0, "– (baseline 0)"); return; }
    double q = a.mean / b.mean;
    fl_bprintf(out, n, 0, "%.3g×", q);
    if (q < *lo) *lo = q;
    if (q > *hi) *hi = q;
}

static int is_nonlinear(const char *r) { return !strcmp(r, "sublayer") || !strcmp(r, "block") || !strncmp(r, "blocks", 6); }
static int is_matrix(const char *r) { return !strcmp(r, "matrix") || !strcmp(r, "matrix-ls"); }
static int is_local(const char *r) { return is_matrix(r) || is_nonlinear(r); }
static int is_retrain(const char *r) { return !strncmp(r, "retrain", 7); }

/* The configuration with the lowest mean perplexity among those KIND
 * accepts, for (panel, criterion); -1 without one. */
static int best_cfg(const ctx *x, const fl_panel *p, const char *crit, int (*kind)(const char *), fl_stat *out) {
    int best = -1;
    for (int i = 0; i < x->nc; i++) {
        if (!kind(x->c[i].rec)) continue;
        fl_stat s = cstat(x, p, crit, &x->c[i], x->metric);
        if (s.n && (best < 0 || s.mean < out->mean)) { best = i; *out = s; }
    }
    return best;
}

static int any_cfg(const ctx *x, int (*kind)(const char *)) {
    for (int i = 0; i < x->nc; i++)
        if (kind(x->c[i].rec)) return 1;
    return 0;
}

/* "Wanda, sparsity 0.5 (dense model 94.52)": a panel's heading carries the
 * reference every perplexity under it is read against (issue 19). */
static void heading_of(char *h, size_t n, const fl_table *t, const char *crit, const fl_panel *p) {
    size_t k = crit ? fl_bprintf(h, n, 0, "%s, %s", crit, p->label) : fl_bprintf(h, n, 0, "%s", p->label);
    double dn = fl_panel_dense(t, p, "ppl");
    if (isfinite(dn)) fl_bprintf(h, n, k, " (dense model %.2f)", dn);
    h[0] = (char)toupper((unsigned char)h[0]);
}

/* What a claim's section concludes: its state and one sentence. */
enum { NOT_TESTABLE, SUPPORTED, NOT_SUPPORTED };
typedef struct { int state; char s[2048]; } claim;

static const char *state_word(int s) {
    return s == SUPPORTED ? "**supported**" : s == NOT_SUPPORTED ? "**not supported**" : "**not testable with this grid**";
}

/* The comparisons' counts by verdict; judged = with an interval. */
typedef struct { int a, b, same, one, empty; } tally;
static void count(tally *c, fl_paired r) {
    if (r.v == FL_PAIR_A) c->a++;
    else if (r.v == FL_PAIR_B) c->b++;
    else if (r.v == FL_PAIR_SAME) c->same++;
    else if (r.v == FL_PAIR_ONE) c->one++;
    else c->empty++;
}
static int judged(const tally *c) { return c->a + c->b + c->same; }

static const char *STATS_RULE =
    "Every comparison of two configurations A and B (same model, sparsity, pattern and criterion unless the "
    "comparison is between criteria) is paired over seeds: a seed fixes the calibration windows, so for each seed "
    "both ran on the same data. The report takes the per-seed differences ppl_A − ppl_B over the seeds both have, "
    "and gives their mean ± the 95% Student-t half-width t(0.975, n − 1) · sd / √n (n pairs, sd their sample "
    "standard deviation; t from the regularized incomplete beta function, reports/paired.c). **A better** only "
    "when the whole interval lies below 0, **B better** only above 0, otherwise **no difference detected**. With "
    "one seed there is no interval, and it says so. Each interval is at 95% on its own: over m comparisons, about "
    "0.05·m of them can show a difference by chance alone (no correction for multiple comparisons is made).";

/* ---- claim 1: local reconstruction vs retraining -------------------------------- */

static claim claim1(doc *d, const ctx *x) {
    claim cl = { NOT_TESTABLE, "" };
    doc_h(d, 2, "Claim 1 — reconstruction vs retraining");
    doc_p(d, "*The paper*: local reconstruction matches post-pruning retraining (PEFT included) with over an order of "
             "magnitude less data and compute. **Rule**: for each (criterion, sparsity), the best local reconstructor "
             "(lowest mean perplexity among matrix, matrix-ls, sublayer, block, blocks:K, blocks:all) is compared, "
             "paired over seeds, with each retraining baseline present (retrain:full, retrain:masklora, retrain:lora, "
             "retrain:bias-norm, each at its own data budget, `retrain_samples`). The claim is **supported** when no "
             "baseline is better in any comparison with an interval, **not supported** when one is. Ratios: mean "
             "`recovery_tokens` and mean `recovery_flops` of the local reconstructor over the baseline's. The best "
             "local reconstructor is chosen on the same numbers it is compared on, which favours it slightly.");
    int has_local = any_cfg(x, is_local), has_rt = any_cfg(x, is_retrain);
    tally c = { 0 };
    double tlo = INFINITY, thi = -INFINITY, flo = INFINITY, fhi = -INFINITY;
    for (int i = 0; i < x->np && has_local && has_rt; i++) {
        const fl_panel *p = &x->ps[i];
        char h[700];
        heading_of(h, sizeof h, x->t, NULL, p);
        doc_h(d, 3, h);
        int rows = 0;
        for (int k = 0; k < x->crits.n; k++) {
            const char *crit = x->crits.v[k];
            fl_stat bs = { 0 };
            int b = best_cfg(x, p, crit, is_local, &bs);
            if (b < 0) continue;
            for (int j = 0; j < x->nc; j++) {
                const cfg *rt = &x->c[j];
                fl_stat rs = cstat(x, p, crit, rt, x->metric);
                if (!is_retrain(rt->rec) || !rs.n) continue;
                if (!rows++)
                    doc_row(d, 9, (char *[]){ "criterion", "best local", "baseline", "retrain_samples", "baseline ppl",
                                              "local − baseline (95%, n)", "verdict", "tokens local/baseline",
                                              "FLOPs local/baseline" });
                fl_paired r = pair2(x, p, crit, &x->c[b], crit, rt);
                count(&c, r);
                char loc[700], bl[128], diff[128], verdict[700], samp[256], tok[64], fl[64];
                char lm[128];
                fmt_ci(lm, sizeof lm, bs);
                fl_bprintf(loc, sizeof loc, 0, "%s %s", x->c[b].label, lm);
                fmt_ci(bl, sizeof bl, rs);
                fmt_pair(diff, sizeof diff, r);
                pair_word(r, "local", "baseline", verdict, sizeof verdict);
                const char *sv = fl_table_get(x->t, rt->row, "retrain_samples");
                fl_bprintf(samp, sizeof samp, 0, "%s", *sv ? sv : "unknown");
                fmt_ratio(tok, sizeof tok, cstat(x, p, crit, &x->c[b], "recovery_tokens"), cstat(x, p, crit, rt, "recovery_tokens"), &tlo, &thi);
                fmt_ratio(fl, sizeof fl, cstat(x, p, crit, &x->c[b], "recovery_flops"), cstat(x, p, crit, rt, "recovery_flops"), &flo, &fhi);
                doc_row(d, 9, (char *[]){ (char *)crit, loc, (char *)rt->label, samp, bl, diff, verdict, tok, fl });
            }
        }
        if (!rows) doc_p(d, "No criterion has both a local reconstructor and a retraining baseline here.");
    }
    int n = judged(&c) + c.one + c.empty;
    char ratios[400] = "";
    size_t rl = 0;
    char tr[64], fr[64];   /* "0.1×", or "0.1–1×" when the comparisons differ */
    snprintf(tr, sizeof tr, tlo == thi ? "%.3g" : "%.3g–%.3g", tlo, thi);
    snprintf(fr, sizeof fr, flo == fhi ? "%.3g" : "%.3g–%.3g", flo, fhi);
    if (thi >= tlo) rl = fl_bprintf(ratios, sizeof ratios, rl, "; the local reconstructor used %s× the baseline's recovery tokens", tr);
    else rl = fl_bprintf(ratios, sizeof ratios, rl, "; recovery tokens unknown (no `recovery_tokens` in this file)");
    if (fhi >= flo) fl_bprintf(ratios, sizeof ratios, rl, "%s %s× %s recovery FLOPs", thi >= tlo ? " and" : "; the local reconstructor used",
                               fr, thi >= tlo ? "its" : "the baseline's");
    if (!has_local || !has_rt)
        fl_bprintf(cl.s, sizeof cl.s, 0, "%s (missing cells: %s)", state_word(NOT_TESTABLE),
                 !has_local ? "no local reconstructor: reconstruct = matrix, sublayer, block, blocks:K or blocks:all"
                            : "no retraining baseline: reconstruct = retrain:full, retrain:masklora, retrain:lora or retrain:bias-norm");
    else if (!n)
        fl_bprintf(cl.s, sizeof cl.s, 0, "%s (missing cells: no criterion and sparsity has both a local reconstructor and a "
                 "retraining baseline)", state_word(NOT_TESTABLE));
    else if (!judged(&c))
        fl_bprintf(cl.s, sizeof cl.s, 0, "%s: none of the %d comparisons has an interval (%s)", state_word(NOT_TESTABLE), n,
                 c.one ? "one seed per cell: add seeds" : "no seed common to both sides");
    else {
        cl.state = c.b ? NOT_SUPPORTED : SUPPORTED;
        fl_bprintf(cl.s, sizeof cl.s, 0, "%s: of %d comparisons, the best local reconstructor is better in %d, no difference "
                 "is detected in %d and the retraining baseline is better in %d%s%s",
                 state_word(cl.state), n, c.a, c.same, c.b, c.one + c.empty ? " (the rest have no interval)" : "", ratios);
    }
    doc_p(d, "**Claim 1**: %s.", cl.s);
    return cl;
}

/* ---- claim 2: granularity -------------------------------------------------------- */

static claim claim2(doc *d, const ctx *x) {
    claim cl = { NOT_TESTABLE, "" };
    int drift = fl_result_col("drift_out") >= 0;
    doc_h(d, 2, "Claim 2 — granularity");
    doc_p(d, "*The paper*: as long as the reconstructed unit contains a nonlinearity, final quality is largely "
             "insensitive to its size, so granularity can be chosen by memory; reconstructing single matrices "
             "underperforms. **Rule**, per (criterion, sparsity): (a) among the reconstructors whose unit holds a "
             "nonlinearity (sublayer, block, blocks:K, blocks:all) every pair is compared, paired over seeds, and the "
             "spread of their means is shown; (b) matrix and matrix-ls are each compared with the best of them. "
             "**Supported** when no pair in (a) differs and matrix (and matrix-ls) is worse in every comparison of "
             "(b) that has an interval; **not supported** when a pair of (a) differs or a comparison of (b) does not "
             "show matrix worse. Memory: mean recovery peak and working set%s.",
          drift ? "; drift: mean `drift_out`, the activation drift at the last block" : "");
    tally pa = { 0 }, mb = { 0 };
    int groups = 0, mats = 0;
    double spread_max = 0;
    char differ[1200] = "";
    size_t dl = 0;
    for (int i = 0; i < x->np; i++)
        for (int k = 0; k < x->crits.n; k++) {
            const fl_panel *p = &x->ps[i];
            const char *crit = x->crits.v[k];
            fl_stat bs = { 0 };
            int b = best_cfg(x, p, crit, is_nonlinear, &bs);
            int nn = 0;
            for (int j = 0; j < x->nc; j++) nn += (is_local(x->c[j].rec)) && cstat(x, p, crit, &x->c[j], x->metric).n;
            if (b < 0 && !nn) continue;
            char h[700];
            heading_of(h, sizeof h, x->t, crit, p);
            doc_h(d, 3, h);
            const char *hdr[7] = { "reconstructor", "ppl (95%, n)", "− best nonlinear (95%, n)", "verdict",
                                   "recovery peak (MB)", "working set (MB)", "drift at last block" };
            doc_row(d, drift ? 7 : 6, (char **)hdr);
            double lo = INFINITY, hi = -INFINITY;
            int nl = 0;
            for (int j = 0; j < x->nc; j++) {
                const cfg *c = &x->c[j];
                fl_stat s = cstat(x, p, crit, c, x->metric);
                if (!is_local(c->rec) || !s.n) continue;
                char ppl[128], diff[128] = "–", verdict[700] = "–", pk[64], ws[64], dr[64];
                fmt_ci(ppl, sizeof ppl, s);
                if (is_nonlinear(c->rec)) {
                    nl++;
                    if (s.mean < lo) lo = s.mean;
                    if (s.mean > hi) hi = s.mean;
                }
                if (j == b) fl_bprintf(verdict, sizeof verdict, 0, "(the best nonlinear)");
                else if (b >= 0) {
                    fl_paired r = pair2(x, p, crit, c, crit, &x->c[b]);
                    fmt_pair(diff, sizeof diff, r);
                    pair_word(r, c->label, x->c[b].label, verdict, sizeof verdict);
                    if (is_matrix(c->rec)) { count(&mb, r); mats++; }
                }
                fmt_mb(pk, sizeof pk, cstat(x, p, crit, c, "recovery_peak_bytes"));
                fmt_mb(ws, sizeof ws, cstat(x, p, crit, c, "working_bytes"));
                fl_stat ds = cstat(x, p, crit, c, "drift_out");
                if (ds.n) fl_bprintf(dr, sizeof dr, 0, "%.4g", ds.mean);
                else fl_bprintf(dr, sizeof dr, 0, "–");
                doc_row(d, drift ? 7 : 6, (char *[]){ (char *)c->label, ppl, diff, verdict, pk, ws, dr });
            }
            if (nl < 2) {
                doc_p(d, "Fewer than two nonlinear reconstructors here: no pair to compare.");
                continue;
            }
            groups++;
            tally here = { 0 };
            char list[800] = "";
            size_t ll = 0;
            for (int a = 0; a < x->nc; a++)
                for (int e = a + 1; e < x->nc; e++) {
                    if (!is_nonlinear(x->c[a].rec) || !is_nonlinear(x->c[e].rec)) continue;
                    if (!cstat(x, p, crit, &x->c[a], x->metric).n || !cstat(x, p, crit, &x->c[e], x->metric).n) continue;
                    fl_paired r = pair2(x, p, crit, &x->c[a], crit, &x->c[e]);
                    count(&here, r);
                    count(&pa, r);
                    if (r.v == FL_PAIR_A || r.v == FL_PAIR_B) {
                        char v[128];
                        fmt_pair(v, sizeof v, r);
                        ll = fl_bprintf(list, sizeof list, ll, "%s%s − %s = %s", ll ? "; " : "", x->c[a].label, x->c[e].label, v);
                        if (pa.a + pa.b <= 3)
                            dl = fl_bprintf(differ, sizeof differ, dl, "%s%s, %s: %s vs %s", dl ? "; " : "", crit, p->label,
                                            x->c[a].label, x->c[e].label);
                    }
                }
            if (hi - lo > spread_max) spread_max = hi - lo;
            doc_p(d, "Nonlinear units: spread of the means %.2f (%.2f to %.2f); pairs that differ: %d of %d%s%s%s.", hi - lo,
                  lo, hi, here.a + here.b, here.a + here.b + here.same + here.one + here.empty,
                  here.one ? " (one seed: no intervals)" : "", ll ? ": " : "", list);
        }
    int ja = judged(&pa), jb = judged(&mb);
    int fail_a = pa.a + pa.b > 0, fail_b = mb.a + mb.same > 0;
    char parts[1800];
    fl_bprintf(parts, sizeof parts, 0, "(a) %d of %d pairs of nonlinear units differ (largest spread of means %.2f)%s%s; "
             "(b) matrix or matrix-ls is worse than the best nonlinear unit in %d of %d comparisons with an interval",
             pa.a + pa.b, ja, spread_max, dl ? ", e.g. " : "", differ, mb.b, jb);
    if ((ja && fail_a) || (jb && fail_b)) cl.state = NOT_SUPPORTED;
    else if (ja && jb) cl.state = SUPPORTED;
    if (cl.state != NOT_TESTABLE) fl_bprintf(cl.s, sizeof cl.s, 0, "%s: %s", state_word(cl.state), parts);
    else {
        char miss[600];
        size_t ml = 0;
        miss[0] = 0;
        if (!groups) ml = fl_bprintf(miss, sizeof miss, ml, "fewer than two of sublayer, block, blocks:K, blocks:all");
        if (!mats) ml = fl_bprintf(miss, sizeof miss, ml, "%sno matrix or matrix-ls cells", ml ? "; " : "");
        if ((groups && !ja) || (mats && !jb)) fl_bprintf(miss, sizeof miss, ml, "%sone seed per cell: no intervals", ml ? "; " : "");
        fl_bprintf(cl.s, sizeof cl.s, 0, "%s (%s); so far %s", state_word(NOT_TESTABLE), miss, parts);
    }
    doc_p(d, "**Claim 2**: %s.", cl.s);
    return cl;
}

/* ---- claim 3: criteria ------------------------------------------------------------ */

static int is_none(const char *r) { return !strcmp(r, "none"); }

/* The criterion with the lowest mean perplexity under its own best
 * configuration of KIND; its index in crits and that configuration. */
static int best_crit(const ctx *x, const fl_panel *p, int (*kind)(const char *), int *cfg_out, fl_stat *out) {
    int best = -1;
    for (int k = 0; k < x->crits.n; k++) {
        fl_stat s = { 0 };
        int c = best_cfg(x, p, x->crits.v[k], kind, &s);
        if (c >= 0 && (best < 0 || s.mean < out->mean)) { best = k; *cfg_out = c; *out = s; }
    }
    return best;
}

static const char *const SIMPLE[] = { "wanda", "magnitude" };

static void model_params(char *out, size_t n, const char *dir) {
    fl_config c;
    if (fl_config_load(&c, dir) != 0) { fl_bprintf(out, n, 0, "unknown (no readable config.json)"); fl_err_clear(); return; }
    fl_bprintf(out, n, 0, "%.3gM", (double)fl_config_num_params(&c) * 1e-6);
}

static claim claim3(doc *d, const ctx *x) {
    claim cl = { NOT_TESTABLE, "" };
    fl_names models;
    fl_names_of(x->t, "model", 0, &models);
    int several = models.n > 1;
    doc_h(d, 2, "Claim 3 — criteria");
    doc_p(d, "*The paper*: with reconstruction the pruning criterion matters less: the gaps between sophisticated "
             "criteria and simple baselines shrink (and shrink with model size). **Rule**, per sparsity (and model): "
             "the best criterion is the one with the lowest mean perplexity, once without reconstruction (`none`) "
             "and once each with its best local reconstructor. For each simpler criterion S (wanda, magnitude), the "
             "gap without reconstruction is S − best (both `none`), the gap with reconstruction S with its best "
             "reconstructor − the best with its own, both paired over seeds, and the change is gap without − gap "
             "with, paired over the seeds all four have (above 0: the gap is smaller with reconstruction). "
             "**Supported** when, in every comparison with an interval, the gap is smaller with reconstruction or S "
             "is itself the best criterion with reconstruction; **not supported** otherwise. Gaps are in perplexity "
             "points.");
    tally ch = { 0 };
    int rows_all = 0, best_simple = 0, nosimple = 1, has_none = any_cfg(x, is_none), has_local = any_cfg(x, is_local);
    for (int i = 0; i < x->np && has_none && has_local; i++) {
        const fl_panel *p = &x->ps[i];
        int c0c = -1, c1c = -1;
        fl_stat s0 = { 0 }, s1 = { 0 };
        int c0 = best_crit(x, p, is_none, &c0c, &s0), c1 = best_crit(x, p, is_local, &c1c, &s1);
        if (c0 < 0 || c1 < 0) continue;
        char h[700], params[128];
        heading_of(h, sizeof h, x->t, NULL, p);
        doc_h(d, 3, h);
        model_params(params, sizeof params, p->model);
        if (several) doc_p(d, "Model `%s`: %s parameters.", p->model, params);
        int rows = 0;
        for (int q = 0; q < 2; q++) {
            const char *s = SIMPLE[q];
            if (fl_names_index(&x->crits, s) < 0) continue;
            nosimple = 0;
            fl_stat ss = { 0 };
            int sc = best_cfg(x, p, s, is_local, &ss);
            int sn = -1;
            for (int j = 0; j < x->nc && sn < 0; j++)
                if (is_none(x->c[j].rec) && cstat(x, p, s, &x->c[j], x->metric).n) sn = j;
            if (sc < 0 || sn < 0) continue;
            if (!rows++)
                doc_row(d, 8, (char *[]){ "simple criterion", "its best reconstructor", "best without reconstruction",
                                          "gap without (95%, n)", "best with reconstruction", "gap with (95%, n)",
                                          "gap without − gap with (95%, n)", "verdict" });
            rows_all++;
            const char *b0 = x->crits.v[c0], *b1 = x->crits.v[c1];
            fl_paired g0 = pair2(x, p, s, &x->c[sn], b0, &x->c[c0c]);
            fl_paired g1 = pair2(x, p, s, &x->c[sc], b1, &x->c[c1c]);
            term tm[4] = { { s, &x->c[sn], 1 }, { b0, &x->c[c0c], -1 }, { s, &x->c[sc], -1 }, { b1, &x->c[c1c], 1 } };
            fl_paired dd = pair_terms(x, p, tm, 4);
            char a[128], b[128], e[128], v[256], with[1000];
            fmt_pair(a, sizeof a, g0);
            fmt_pair(b, sizeof b, g1);
            fmt_pair(e, sizeof e, dd);
            if (!strcmp(s, b1) && (g0.v == FL_PAIR_ONE || g0.v == FL_PAIR_EMPTY)) {
                fl_bprintf(v, sizeof v, 0, "%s is the best criterion with reconstruction (%s)", s,
                         g0.v == FL_PAIR_ONE ? "one seed: no interval" : "no common seed");
                count(&ch, g0);
            } else if (!strcmp(s, b1)) {
                fl_bprintf(v, sizeof v, 0, "**%s is the best criterion with reconstruction**", s);
                best_simple++;
            }
            else {
                count(&ch, dd);
                fl_bprintf(v, sizeof v, 0, "%s", dd.v == FL_PAIR_B ? "**gap smaller with reconstruction**"
                                          : dd.v == FL_PAIR_A ? "**gap larger with reconstruction**"
                                          : dd.v == FL_PAIR_SAME ? "no change detected"
                                          : dd.v == FL_PAIR_ONE ? "one seed: no interval" : "no common seed");
            }
            fl_bprintf(with, sizeof with, 0, "%s + %s", b1, x->c[c1c].label);
            doc_row(d, 8, (char *[]){ (char *)s, (char *)x->c[sc].label, (char *)b0, a, with, b, e, v });
        }
        if (!rows) doc_p(d, "Neither wanda nor magnitude has both a `none` cell and a local reconstructor here.");
    }
    int j = judged(&ch);
    if (!has_none || !has_local || nosimple || !rows_all)
        fl_bprintf(cl.s, sizeof cl.s, 0, "%s (missing cells: %s)", state_word(NOT_TESTABLE),
                 !has_none ? "reconstruct = none" : !has_local ? "a local reconstructor"
                 : nosimple ? "criterion = wanda or magnitude" : "a simple criterion with both none and a local reconstructor");
    else if (!j && !best_simple)
        fl_bprintf(cl.s, sizeof cl.s, 0, "%s: one seed per cell, no intervals", state_word(NOT_TESTABLE));
    else {
        cl.state = ch.a + ch.same ? NOT_SUPPORTED : SUPPORTED;
        fl_bprintf(cl.s, sizeof cl.s, 0, "%s: of %d comparisons, the gap is smaller with reconstruction in %d, no change is "
                 "detected in %d, it is larger in %d, and the simple criterion is the best with reconstruction in %d%s",
                 state_word(cl.state), rows_all, ch.b, ch.same, ch.a, best_simple,
                 ch.one + ch.empty ? " (the rest have no interval)" : "");
    }
    if (several) {
        doc_p(d, "Gap against model size: the tables above give each model's parameter count beside its gaps.");
        fl_bprintf(cl.s, sizeof cl.s, strlen(cl.s), "; %d models: read the gap against size in the tables", models.n);
    } else
        fl_bprintf(cl.s, sizeof cl.s, strlen(cl.s), "; the gap against model size is not testable with one `model`");
    doc_p(d, "**Claim 3**: %s.", cl.s);
    fl_names_free(&models);
    return cl;
}

/* ---- tables --------------------------------------------------------------------- */

/* ---- the ladder: the scale claims across model size (plots/ladder.h) ------- */

/* "grows", "shrinks" or "shows no clear direction": both the fitted slope
 * and the ends must agree (a single noisy rung does not make a trend). */
static int trend_dir(double slope, double first, double last) {
    if (!isfinite(slope) || !isfinite(first) || !isfinite(last)) return 0;
    if (slope > 0 && last > first) return 1;
    if (slope < 0 && last < first) return -1;
    return 0;
}
static const char *trend_word(int d) { return d > 0 ? "grows" : d < 0 ? "shrinks" : "shows no clear direction"; }

/* Whether the two ends' values differ beyond their seeds' spread: Welch's
 * t-test, two-sided at 95% (the ends are different models, so their seeds
 * are not paired). With two rungs, the slope and the ends always agree, so
 * this is what stops a difference the seeds alone could make from being
 * read as a trend. Ends without an interval (one seed) cannot be judged
 * and count as apart, as before. ma, mb: the means; va, vb: their squared
 * standard errors; da, db: their degrees of freedom (< 1: no interval). */
static int ends_apart(double ma, double va, int da, double mb, double vb, int db) {
    if (da < 1 || db < 1 || !isfinite(va) || !isfinite(vb)) return 1;
    double se = sqrt(va + vb);
    if (se == 0) return ma != mb;
    double df = (va + vb) * (va + vb) / (va * va / da + vb * vb / db);   /* Welch-Satterthwaite */
    int idf = df >= 1 ? (int)df : 1;   /* floor: the conservative side */
    return fabs(mb - ma) > fl_t_quantile(0.975, idf) * se;
}
/* A gap's ends: the per-seed differences' mean, std and count. */
static int gap_ends_apart(fl_stat a, fl_stat b) {
    return ends_apart(a.mean, a.std * a.std / a.n, a.n - 1, b.mean, b.std * b.std / b.n, b.n - 1);
}
/* Drift's ends: the spread within a criterion, not across (fl_rung). */
static int drift_ends_apart(const fl_rung *a, const fl_rung *b, int k) {
    return ends_apart(a->drift[k].mean, a->drift_sw[k] * a->drift_sw[k] / a->drift[k].n, a->drift_df[k], b->drift[k].mean,
                      b->drift_sw[k] * b->drift_sw[k] / b->drift[k].n, b->drift_df[k]);
}
#define NOISE_WORDS ", but the two ends differ by less than their seeds' spread (Welch's t, 95%)"   /* an argument, not a format */

static void fmt_gap(char *out, size_t n, fl_stat s) {
    if (!s.n || !isfinite(s.mean)) snprintf(out, n, "–");
    else if (s.n > 1 && isfinite(s.std)) snprintf(out, n, "%.2f ± %.2f", s.mean, s.std);
    else snprintf(out, n, "%.2f", s.mean);
}

static void ladder_claim3(doc *d, const fl_ladder *L) {
    static const char *const CN[2] = { "magnitude", "wanda" };
    double x[FL_LADDER_MAX_RUNGS], y[FL_LADDER_MAX_RUNGS];
    for (int i = 0; i < L->nr; i++) x[i] = L->r[i].nonemb;
    for (int w = 1; w >= 0; w--)
        for (int k = 0; k < 2; k++) {
            int first = -1, last = -1;
            for (int i = 0; i < L->nr; i++) {
                y[i] = L->r[i].gap[k][w].mean;
                if (isfinite(y[i])) { if (first < 0) first = i; last = i; }
            }
            if (first < 0) {   /* the grid lacks the criterion or sparsegpt (or its recovery) */
                doc_li(d, "ppl(%s) − ppl(sparsegpt) %s: not measured (no rung has ok rows of both criteria%s).", CN[k],
                       w ? "with the best reconstruction" : "without reconstruction",
                       w ? " with a reconstruction" : " with `none`");
                continue;
            }
            if (first == last) {
                doc_li(d, "ppl(%s) − ppl(sparsegpt) %s: only one rung has it, no trend.", CN[k],
                       w ? "with the best reconstruction" : "without reconstruction");
                continue;
            }
            double sl = fl_ladder_slope(x, y, L->nr, 1);
            int dir = trend_dir(sl, y[first], y[last]);
            int noise = dir && !gap_ends_apart(L->r[first].gap[k][w], L->r[last].gap[k][w]);
            doc_li(d, "**Claim 3**, ppl(%s) − ppl(sparsegpt) %s: %.2f at %.3gM non-embedding parameters, %.2f at %.3gM "
                      "(fitted slope %+.2f ppl per decade of size): the gap %s with size%s%s.",
                   CN[k], w ? "with each criterion's best reconstruction" : "without reconstruction", y[first],
                   x[first] / 1e6, y[last], x[last] / 1e6, sl, trend_word(dir), noise ? NOISE_WORDS : "",
                   noise || !dir ? ", so the ladder neither supports nor refutes it"
                   : dir < 0     ? ", so the ladder supports the claim's direction"
                                 : ", so the ladder does not support the claim");
        }
}

static void ladder_claim2(doc *d, const fl_ladder *L, const fl_names *recons) {
    double x[FL_LADDER_MAX_RUNGS], y[FL_LADDER_MAX_RUNGS];
    int nk = recons->n < FL_LADDER_MAX_RECONS ? recons->n : FL_LADDER_MAX_RECONS;
    for (int i = 0; i < L->nr; i++) x[i] = L->r[i].layers;
    for (int k = 0; k < nk; k++) {
        int first = -1, last = -1;
        for (int i = 0; i < L->nr; i++) {
            y[i] = L->r[i].drift[k].mean;
            if (isfinite(y[i]) && x[i] > 0) { if (first < 0) first = i; last = i; }
        }
        if (first < 0 || first == last || x[first] == x[last]) continue;
        double sl = fl_ladder_slope(x, y, L->nr, 0);
        int dir = trend_dir(sl, y[first], y[last]);
        int noise = dir && !drift_ends_apart(&L->r[first], &L->r[last], k);
        doc_li(d, "**Claim 2**, drift at the last block with `%s`: %.4g at %d layers, %.4g at %d layers (slope %+.3g per "
                  "layer): it %s with depth%s%s.",
               recons->v[k], y[first], (int)x[first], y[last], (int)x[last], sl, trend_word(dir), noise ? NOISE_WORDS : "",
               noise   ? ", so the ladder neither supports nor refutes accumulation over depth"
               : dir > 0 ? ", so the ladder supports errors accumulating over depth"
               : dir < 0 ? ", so the ladder does not support accumulation over depth" : "");
    }
    /* the claim's other half: single matrices do worse than the units that hold a nonlinearity */
    int m = fl_names_index(recons, "matrix"), worse = 0, judged_rungs = 0;
    if (m < 0 || m >= nk) return;
    for (int i = 0; i < L->nr; i++) {
        double bn = INFINITY;
        for (int k = 0; k < nk; k++)
            if (is_nonlinear(recons->v[k]) && isfinite(L->r[i].rel[k])) bn = fmin(bn, L->r[i].rel[k]);
        if (!isfinite(bn) || !isfinite(L->r[i].rel[m])) continue;
        judged_rungs++;
        worse += L->r[i].rel[m] > bn;
    }
    if (judged_rungs)
        doc_li(d, "**Claim 2**, single matrices against the best unit with a nonlinearity (ppl relative to the rung's best): "
                  "`matrix` is worse at %d of %d rungs%s.",
               worse, judged_rungs, worse == judged_rungs ? ", as the claim says" : worse ? "" : ", against the claim");
}

static void ladder_section(doc *d, const fl_table *t) {
    fl_ladder *ls;
    fl_names recons;
    int nl = fl_ladders(t, &ls, &recons);
    if (!nl) { fl_names_free(&recons); return; }
    doc_h(d, 2, "The ladder: the scale claims across model size");
    double lo = INFINITY, hi = 0;
    for (int l = 0; l < nl; l++)
        for (int i = 0; i < ls[l].nr; i++) { lo = fmin(lo, ls[l].r[i].nonemb); hi = fmax(hi, ls[l].r[i].nonemb); }
    doc_p(d, "These results hold several models (rungs). The ladder spans %.2fM to %.2fM non-embedding parameters, "
             "millions, while the paper's models span 0.125 to 72 billion: it tests the direction of each trend, not its "
             "size. Gaps are paired over seeds (mean ± sample std of the per-seed differences); a trend is stated only when "
             "the least-squares slope (against log10 of the size, or against layers for drift) and the two ends agree, "
             "and the two ends differ by more than their seeds' spread (Welch's t, 95%%).",
          lo / 1e6, hi / 1e6);
    int regimes[2] = { 0, 0 };
    for (int l = 0; l < nl; l++) regimes[ls[l].trained] = 1;
    if (regimes[0] && regimes[1])
        doc_p(d, "Rungs pretrained on %.0f or more tokens per non-embedding parameter (as real LLMs) form ladders of "
                 "their own, apart from the others (fewer tokens, or none recorded): a trend from an undertrained rung to "
                 "a trained one would measure training, not size.",
              FL_LADDER_TRAINED);
    doc_h(d, 3, "Rungs");
    char *hd[5] = { "model", "non-embedding parameters", "layers", "pretraining tokens per non-embedding parameter", "regime" };
    doc_row(d, 5, hd);
    /* every model once, in the order the ladders hold them */
    int total = 0;
    for (int l = 0; l < nl; l++) total += ls[l].nr;
    const char **seen = malloc(sizeof *seen * (size_t)(total ? total : 1));
    int ns = 0;
    for (int l = 0; l < nl; l++)
        for (int i = 0; i < ls[l].nr; i++) {
            const fl_rung *r = &ls[l].r[i];
            int dup = 0;
            for (int q = 0; q < ns && !dup; q++) dup = !strcmp(seen[q], r->model);
            if (dup) continue;
            seen[ns++] = r->model;
            char a[32], b[16], c[32];
            /* the results' record (model_train_tokens), as the ladders read it;
             * never the model directory here, which need not be the one measured */
            double tp = r->train_tokens / r->nonemb;
            snprintf(a, sizeof a, "%.0f", r->nonemb);
            snprintf(b, sizeof b, "%d", r->layers);
            if (isfinite(tp)) snprintf(c, sizeof c, "%.1f", tp);
            else snprintf(c, sizeof c, "–");
            char *row[5] = { (char *)r->model, a, b, c,
                             !isfinite(tp) ? "not recorded (not pretrained by freelunch, or results from before model_train_tokens)"
                             : tp >= FL_LADDER_TRAINED ? "20+ tokens per parameter (as real LLMs)"
                                                       : "undertrained (below 20 tokens per parameter)" };
            doc_row(d, 5, row);
        }
    /* a sized model that is in no ladder (the only one of its regime) is
     * named, not dropped in silence */
    {
        fl_names models;
        fl_names_of(t, "model", 0, &models);
        char left[2048] = "";
        int nleft = 0;
        for (int k = 0; k < models.n; k++) {
            int in = 0;
            for (int q = 0; q < ns && !in; q++) in = !strcmp(seen[q], models.v[k]);
            double ne = NAN;
            for (int r = 0; r < t->nrows && !isfinite(ne); r++)
                if (!strcmp(fl_table_get(t, r, "model"), models.v[k])) ne = fl_table_num(t, r, "model_nonemb_params");
            if (in || !isfinite(ne)) continue;
            fl_bprintf(left, sizeof left, strlen(left), "%s`%s`", nleft++ ? ", " : "", models.v[k]);
        }
        int dropped = 0;
        for (int l = 0; l < nl; l++) dropped += ls[l].dropped;
        char why[64] = "";
        if (dropped) snprintf(why, sizeof why, ", or beyond a ladder's first %d rungs", FL_LADDER_MAX_RUNGS);
        if (nleft)
            doc_p(d, "In no ladder (the only model of its training regime at each sparsity, so no trend runs through "
                     "it%s): %s.", why, left);
        fl_names_free(&models);
    }
    free(seen);
    for (int l = 0; l < nl; l++) {
        const fl_ladder *L = &ls[l];
        doc_h(d, 3, L->label);
        int rec = 0;
        for (int i = 0; i < L->nr; i++) rec += isfinite(L->r[i].train_tokens);
        if (rec && rec < L->nr)   /* an HF model beside undertrained presets, say */
            doc_p(d, "Caveat: %d of these %d rungs %s no pretraining record (not pretrained by freelunch), so %s "
                     "regime is unknown; beside rungs of known, fewer than %.0f tokens per parameter, a trend here may "
                     "be one of training as much as of size.",
                  L->nr - rec, L->nr, L->nr - rec == 1 ? "has" : "have", L->nr - rec == 1 ? "its" : "their",
                  FL_LADDER_TRAINED);
        if (L->dropped)
            doc_p(d, "Left out: %d more rungs beyond the first %d this ladder holds (`FL_LADDER_MAX_RUNGS`); the trends "
                     "below are over those %d only.",
                  L->dropped, FL_LADDER_MAX_RUNGS, L->nr);
        char *h2[7] = { "model", "non-emb. params", "layers", "magnitude − sparsegpt, none", "wanda − sparsegpt, none",
                        "magnitude − sparsegpt, best recon.", "wanda − sparsegpt, best recon." };
        doc_row(d, 7, h2);
        for (int i = 0; i < L->nr; i++) {
            const fl_rung *r = &L->r[i];
            char a[32], b[16], g[4][64];
            snprintf(a, sizeof a, "%.0f", r->nonemb);
            snprintf(b, sizeof b, "%d", r->layers);
            for (int w = 0; w < 2; w++)
                for (int k = 0; k < 2; k++) fmt_gap(g[2 * w + k], sizeof g[0], r->gap[k][w]);
            char *row[7] = { (char *)r->model, a, b, g[0], g[1], g[2], g[3] };
            doc_row(d, 7, row);
        }
        ladder_claim3(d, L);
        ladder_claim2(d, L, &recons);
        /* (d): how recovery memory scales, measured */
        int nk = recons.n < FL_LADDER_MAX_RECONS ? recons.n : FL_LADDER_MAX_RECONS;
        const fl_rung *a = &L->r[0], *z = &L->r[L->nr - 1];
        for (int k = 0; k < nk; k++)
            if (isfinite(a->peak[k].mean) && isfinite(z->peak[k].mean) && a->peak[k].mean > 0)
                doc_li(d, "Recovery peak of `%s`: %.1f MB at the smallest rung, %.1f MB at the largest (%.1fx, for %.1fx the "
                          "non-embedding parameters).",
                       recons.v[k], a->peak[k].mean / 1e6, z->peak[k].mean / 1e6, z->peak[k].mean / a->peak[k].mean,
                       z->nonemb / a->nonemb);
    }
    doc_close(d);
    free(ls);
    fl_names_free(&recons);
}

static void ppl_tables(doc *d, const fl_table *t, const fl_panel *ps, int np, const char *dense) {
    doc_h(d, 2, "Perplexity");
    char ev[1024];
    joined(ev, sizeof ev, t, "eval_set", 0);
    doc_p(d, "Perplexity on %s: mean ± the 95%% Student-t half-width of that mean over seeds, t(0.975, n − 1) · sd / √n "
             "(number of seeds); a single seed shows its value and (1). Best mean per criterion in bold. Failed cells "
             "are left out. The first row of each table, in italics, is the dense model (nothing pruned) on the same "
             "windows, where the results have its reference row. Dense model: %s.", ev, dense);
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
        double dn = fl_panel_dense(t, &ps[i], "ppl");
        if (isfinite(dn)) {   /* the reference: the same unpruned model under every criterion */
            snprintf(row[0], 256, "*dense model*");
            for (int c = 0; c < crits.n; c++) snprintf(row[c + 1], 256, "*%.2f*", dn);
            doc_row(d, crits.n + 1, row);
        }
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
                fmt_ci(cell, sizeof cell, s);
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

/* ---- zero-shot accuracy beside perplexity (eval-task) ----------------------------- */

/* The dense reference's COL for panel P: a dense row of the model of the
 * panel's first ok row that holds COL, measured with that row's item limit
 * (eval_task_limit: the accuracy of 200 items is not that of all). */
static double dense_acc(const fl_table *t, const fl_panel *p, const char *col) {
    for (int r = 0; r < t->nrows; r++) {
        if (!fl_sum_ok(t, r) || !fl_in_panel(t, r, p)) continue;
        for (int q = t->nrows; q < t->nrows + t->nref; q++)
            if (fl_sum_ok(t, q) && !strcmp(fl_table_get(t, q, "model"), fl_table_get(t, r, "model")) &&
                !strcmp(fl_table_get(t, q, "eval_task_limit"), fl_table_get(t, r, "eval_task_limit")) &&
                isfinite(fl_table_num(t, q, col)))
                return fl_table_num(t, q, col);
        return NAN;
    }
    return NAN;
}

/* Per panel, one row per (criterion, reconstructor) with its perplexity,
 * the acc (or acc_norm) of every task some final row has, and acc_mean;
 * nothing when no cell ran an eval-task. */
static void acc_tables(doc *d, const fl_table *t, const fl_panel *ps, int np) {
    const char *cols[64];
    int nc = 0;
    for (int i = 0; i < FL_RESULT_NCOLS && nc < 62; i++) {
        const char *c = FL_RESULT_COLS[i];
        if (strncmp(c, "acc_", 4) || !strcmp(c, "acc_mean")) continue;
        for (int r = 0; r < t->nrows; r++)
            if (fl_row_final(t, r) && isfinite(fl_table_num(t, r, c))) { cols[nc++] = c; break; }
    }
    if (!nc) return;
    cols[nc++] = "acc_mean";
    doc_h(d, 2, "Zero-shot accuracy");
    doc_p(d, "Accuracy of the `eval-task` tasks (`freelunch eval --task`, scored as lm-evaluation-harness scores "
             "them: `acc` the argmax of the choices' log-likelihoods, `acc_norm` of log-likelihood / characters), "
             "beside the perplexity of the same cells: mean ± the 95%% Student-t half-width over seeds (number of "
             "seeds), in percent. `acc_mean` is the mean acc over the tasks a cell ran. Higher is better; the best "
             "mean of each column in bold; the first row, in italics, the dense model's, measured by the study "
             "with the same items.");
    fl_names crits, recs;
    fl_names_of(t, "criterion", 0, &crits);
    fl_names_of(t, "reconstruct", 0, &recs);
    int w = nc + 3;
    char **row = malloc(sizeof(char *) * (size_t)w);
    for (int c = 0; c < w; c++) row[c] = malloc(256);
    for (int i = 0; i < np; i++) {
        char h[600];
        snprintf(h, sizeof h, "%s", ps[i].label);
        h[0] = (char)toupper((unsigned char)h[0]);
        doc_h(d, 3, h);
        snprintf(row[0], 256, "criterion");
        snprintf(row[1], 256, "reconstructor");
        snprintf(row[2], 256, "ppl");
        for (int c = 0; c < nc; c++) snprintf(row[c + 3], 256, "`%s`", cols[c]);
        doc_row(d, w, row);
        int any = 0;   /* the dense reference's accuracy, where it was measured */
        for (int c = 0; c < nc; c++) {
            double v = dense_acc(t, &ps[i], cols[c]);
            any |= isfinite(v);
            if (isfinite(v)) snprintf(row[c + 3], 256, "*%.2f*", 100 * v);
            else snprintf(row[c + 3], 256, "–");
        }
        if (any) {
            double dp = fl_panel_dense(t, &ps[i], "ppl");
            snprintf(row[0], 256, "*dense model*");
            snprintf(row[1], 256, "–");
            if (isfinite(dp)) snprintf(row[2], 256, "*%.2f*", dp);
            else snprintf(row[2], 256, "–");
            doc_row(d, w, row);
        }
        for (int a = 0; a < crits.n; a++)
            for (int k = 0; k < recs.n; k++) {
                fl_stat m = fl_stat_of(t, &ps[i], crits.v[a], recs.v[k], "acc_mean");
                if (!m.n) continue;
                snprintf(row[0], 256, "%s", crits.v[a]);
                snprintf(row[1], 256, "%s", recs.v[k]);
                fmt_ci(row[2], 256, fl_stat_of(t, &ps[i], crits.v[a], recs.v[k], "ppl"));
                for (int c = 0; c < nc; c++) {
                    fl_stat s = fl_stat_of(t, &ps[i], crits.v[a], recs.v[k], cols[c]);
                    int best = s.n > 0;
                    for (int a2 = 0; a2 < crits.n && best; a2++)
                        for (int k2 = 0; k2 < recs.n && best; k2++) {
                            fl_stat o = fl_stat_of(t, &ps[i], crits.v[a2], recs.v[k2], cols[c]);
                            best = !(o.n && o.mean > s.mean);
                        }
                    char cell[128];
                    s.mean *= 100, s.std *= 100;
                    fmt_ci(cell, sizeof cell, s);
                    snprintf(row[c + 3], 256, best ? "**%s**" : "%s", cell);
                }
                doc_row(d, w, row);
            }
    }
    for (int c = 0; c < w; c++) free(row[c]);
    free(row);
    fl_names_free(&crits);
    fl_names_free(&recs);
}

/* ---- structured pruning (issue 15) ------------------------------------------------ */

/* The recovery of a row as one label: the reconstructor, "+distill" and
 * "+hidden W" when set. */
static void recovery_label(const fl_table *t, int r, char *out, size_t n) {
    const char *rc = fl_table_get(t, r, "reconstruct"), *di = fl_table_get(t, r, "distill"), *hd = fl_table_get(t, r, "hidden_distill");
    snprintf(out, n, "%s%s%s%s", rc ? rc : "?", di && !strcmp(di, "true") ? " +distill" : "", hd && *hd ? " +hidden " : "",
             hd && *hd ? hd : "");
}

/* One group of the structured table: a structure, criterion, fraction and
 * recovery, its means over seeds. */
typedef struct {
    const char *s, *cr, *sp;
    char lab[300];
    int row, n;                 /* a row of it (its model and evaluation), seeds */
    double ppl, rem, spd, mem;  /* mem: inference peak over the dense model's */
    double params;              /* the saved model's parameters (NAN without the column) */
    int nmem;
} sgroup;

static int is_local_label(const char *lab) { return is_local(lab) && !strchr(lab, ' '); }

/* Groups a and b removed the same structure at the same fraction of the same model. */
static int same_removal(const fl_table *t, const sgroup *a, const sgroup *b) {
    return !strcmp(a->s, b->s) && !strcmp(a->sp, b->sp) && !strcmp(fl_table_get(t, a->row, "model"), fl_table_get(t, b->row, "model"));
}

/* One table over the ok final rows that removed structures: ppl, the
 * parameters removed and the measured inference speedup, means over seeds,
 * per structure, criterion, fraction and recovery; then the section's two
 * questions answered from it (claim 1 above judges local reconstruction
 * against retraining with seeds paired, one panel per structure):
 *   local vs retraining: per structure and fraction, the best local
 *     recovery's mean ppl against the best retraining one's (distillation
 *     included);
 *   ppl per unit of speedup: per structure and fraction, the best recovered
 *     ppl's excess over the dense model's, divided by the speedup gained
 *     (speedup − 1, the mean over every row of that structure and fraction
 *     with the best one's parameter count: the same shapes, whatever the
 *     criterion or recovery, so pooling them averages the timing noise; a
 *     global ratio or FLAP's added biases give other counts and are left
 *     out); the lowest is the structure that buys speed cheapest.
 * Rows of weight pruning are left to the sections above. */
static void structured_section(doc *d, const fl_table *t) {
    int any = 0;
    for (int r = 0; r < t->nrows && !any; r++) {
        const char *s = fl_table_get(t, r, "structure");
        any = s && *s && strcmp(s, "none");
    }
    if (!any) return;
    doc_h(d, 2, "Structured pruning");
    doc_p(d, "Cells that removed whole key/value head groups, MLP channels or blocks (README \"Structured pruning\"): "
             "the saved model is smaller. Means over seeds of the ok rows: perplexity on the first evaluation set, the "
             "fraction of parameters removed, and forward tokens/s against the dense model's measured in the same process "
             "(infer_speedup; on a shared machine a noisy figure), and the same passes' memory over the dense model's "
             "(infer_peak_bytes / infer_peak_dense_bytes: parameters and the forward's tracked peak). Each structure is its own panel in the claims above, "
             "so claim 1 judges local reconstruction against retraining per structure with seeds paired.");
    char *hdr[9] = { "structure", "criterion", "sparsity", "recovery", "seeds", "ppl", "params removed", "speedup",
                     "inference peak / dense" };
    doc_row(d, 9, hdr);
    int *done = calloc((size_t)t->nrows, sizeof(int)), ng = 0;
    sgroup *g = calloc((size_t)t->nrows + 1, sizeof(sgroup));
    for (int r = 0; r < t->nrows; r++) {
        const char *s = fl_table_get(t, r, "structure"), *st = fl_table_get(t, r, "status");
        if (done[r] || !s || !*s || !strcmp(s, "none") || !st || strcmp(st, "ok") || !fl_row_final(t, r)) continue;
        sgroup *x = &g[ng++];
        recovery_label(t, r, x->lab, sizeof x->lab);
        x->s = s;
        x->cr = fl_table_get(t, r, "criterion");
        x->sp = fl_table_get(t, r, "sparsity");
        x->row = r;
        for (int q = r; q < t->nrows; q++) {
            const char *s2 = fl_table_get(t, q, "structure"), *st2 = fl_table_get(t, q, "status");
            char lab2[300];
            if (done[q] || !s2 || strcmp(s2, s) || !st2 || strcmp(st2, "ok") || !fl_row_final(t, q)) continue;
            recovery_label(t, q, lab2, sizeof lab2);
            if (strcmp(x->lab, lab2) || strcmp(x->cr, fl_table_get(t, q, "criterion")) || strcmp(x->sp, fl_table_get(t, q, "sparsity")) ||
                strcmp(fl_table_get(t, r, "model"), fl_table_get(t, q, "model")))
                continue;
            done[q] = 1;
            x->ppl += fl_table_num(t, q, "ppl");
            x->rem += fl_table_num(t, q, "achieved_sparsity");
            x->spd += fl_table_num(t, q, "infer_speedup");
            x->params = fl_table_num(t, q, "params");
            x->n++;
            const double pm = fl_table_num(t, q, "infer_peak_bytes"), pd = fl_table_num(t, q, "infer_peak_dense_bytes");
            if (pm > 0 && pd > 0) { x->mem += pm / pd; x->nmem++; }
        }
        x->ppl /= x->n; x->rem /= x->n; x->spd /= x->n;
        char ns[16], ps[64], rs[64], ss[64], ms[64];
        if (x->nmem) snprintf(ms, sizeof ms, "%.3f", x->mem / x->nmem);
        else snprintf(ms, sizeof ms, "–");
        snprintf(ns, sizeof ns, "%d", x->n);
        snprintf(ps, sizeof ps, "%.3f", x->ppl);
        snprintf(rs, sizeof rs, "%.1f%%", 100 * x->rem);
        snprintf(ss, sizeof ss, "%.2fx", x->spd);
        char *row[9] = { (char *)s, (char *)x->cr, (char *)x->sp, x->lab, ns, ps, rs, ss, ms };
        doc_row(d, 9, row);
    }
    /* per (model, structure, fraction): the best local, the best retraining
     * and the best of all, and the ppl paid per unit of speedup gained */
    int *seen = calloc((size_t)ng + 1, sizeof(int)), best_k = -1;
    double best_cost = INFINITY;
    for (int i = 0; i < ng; i++) {
        if (seen[i]) continue;
        int bl = -1, br = -1, ba = -1, ns = 0;
        for (int j = i; j < ng; j++) {
            if (!same_removal(t, &g[i], &g[j])) continue;
            seen[j] = 1;
            if (!isfinite(g[j].ppl)) continue;
            if (is_local_label(g[j].lab) && (bl < 0 || g[j].ppl < g[bl].ppl)) bl = j;
            if (is_retrain(g[j].lab) && (br < 0 || g[j].ppl < g[br].ppl)) br = j;
            if (ba < 0 || g[j].ppl < g[ba].ppl) ba = j;
        }
        if (ba < 0) continue;
        /* the speedup: every group of the best one's shapes */
        double spd = 0;
        for (int j = i; j < ng; j++) {
            const int same_n = g[j].params == g[ba].params || (isnan(g[j].params) && isnan(g[ba].params));
            if (same_removal(t, &g[i], &g[j]) && same_n && isfinite(g[j].spd)) { spd += g[j].spd * g[j].n; ns += g[j].n; }
        }
        const int dr = fl_sum_dense_row(t, fl_table_get(t, g[ba].row, "model"), fl_table_get(t, g[ba].row, "eval_set"),
                                        fl_table_get(t, g[ba].row, "eval_windows"));
        const double dense = dr < 0 ? NAN : fl_table_num(t, dr, "ppl");
        char lr[900] = "", cost[300];
        if (bl >= 0 && br >= 0)
            fl_bprintf(lr, sizeof lr, 0, "best local %s + %s %.2f against best retraining %s + %s %.2f: %s; ", g[bl].cr, g[bl].lab,
                       g[bl].ppl, g[br].cr, g[br].lab, g[br].ppl,
                       g[bl].ppl <= g[br].ppl ? "local is lower" : "retraining is lower");
        else fl_bprintf(lr, sizeof lr, 0, "no %s recovery to compare; ", bl < 0 ? "local" : "retraining");
        spd = ns ? spd / ns : NAN;
        if (!isfinite(dense)) fl_bprintf(cost, sizeof cost, 0, "no dense reference, so no cost per speedup");
        else if (!(spd > 1)) fl_bprintf(cost, sizeof cost, 0, "no measured speedup (%.2fx over its %d rows)", spd, ns);
        else {
            const double c = (g[ba].ppl - dense) / (spd - 1);
            fl_bprintf(cost, sizeof cost, 0, "the best, %s + %s, costs %.2f ppl over the dense %.2f for %.2fx (the mean "
                       "speedup of the %d rows of its shapes, every criterion and recovery): %.2f ppl per +1x of speed", g[ba].cr, g[ba].lab, g[ba].ppl - dense,
                       dense, spd, ns, c);
            if (c < best_cost) { best_cost = c; best_k = ba; }
        }
        doc_li(d, "**%s at %s**: %s%s.", g[i].s, g[i].sp, lr, cost);
    }
    if (best_k >= 0)
        doc_p(d, "Per unit of measured speedup, **%s at %s** (%s + %s) loses the least perplexity: %.2f ppl per +1x.",
              g[best_k].s, g[best_k].sp, g[best_k].cr, g[best_k].lab, best_cost);
    else doc_p(d, "No structure shows a measured speedup over the dense model with a dense reference: no cost per speedup.");
    free(seen);
    free(g);
    free(done);
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
    ".thumbs { display: flex; gap: 1em; } .thumbs figure { flex: 1; margin: 0.5em 0; min-width: 0; }\n"
    ".thumbs figcaption { font-size: 0.8em; }\n"
    "figcaption { font-style: italic; }\n</style>\n</head>\n<body>\n";

/* "Figures (in Plots below): `peak_s0.5`, `peak_s2-4`." for the plots whose
 * name starts with PREFIX; "" without one. */
static void figures(char *out, size_t n, const fl_plot_list *pl, const char *prefix) {
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < pl->n; i++)
        if (!strncmp(pl->v[i].name, prefix, strlen(prefix)))
            len = fl_bprintf(out, n, len, "%s`%s`", len ? ", " : "Figures (in Plots below): ", pl->v[i].name);
    if (len) fl_bprintf(out, n, len, ".");
}

/* The dense references (role dense rows) measured on the evaluation sets,
 * put before what SETUP found in the models' freelunch.json (their
 * validation perplexity); without any, that is all there is, and it says so. */
static void dense_refs(const fl_table *t, char *dense, size_t dn) {
    char refs[2048] = "";
    size_t k = 0;
    for (int r = t->nrows; r < t->nrows + t->nref; r++) {
        if (!fl_sum_ok(t, r)) continue;
        const char *m = fl_table_get(t, r, "model"), *base = strrchr(m, '/'), *w = fl_table_get(t, r, "eval_windows");
        base = base && base[1] ? base + 1 : m;
        k = fl_bprintf(refs, sizeof refs, k, "%s`%.200s` **%.2f** on %s (%s%s, the dense reference row of the results)",
                       k ? "; " : "", base, fl_table_num(t, r, "ppl"), fl_table_get(t, r, "eval_set"), *w ? w : "every",
                       *w ? " windows" : " window");
    }
    char rest[2048];
    snprintf(rest, sizeof rest, "%s", dense);
    if (k) fl_bprintf(dense, dn, 0, "%s; pretraining's own record: %s", refs, rest);
    else fl_bprintf(dense, dn, 0, "%s; no dense reference row in the results (a study before they were measured): the tables "
                             "and plots carry no dense line", rest);
}

/* The tasks behind acc_mean in final rows, "`lambada_sotu`, `cloze_sotu`"
 * into OUT; 0 when no final row has an accuracy. */
static int zs_tasks(const fl_table *t, char *out, size_t n) {
    int any = 0;
    for (int r = 0; r < t->nrows && !any; r++) any = fl_row_final(t, r) && isfinite(fl_table_num(t, r, "acc_mean"));
    size_t len = 0;
    out[0] = 0;
    for (int i = 0; i < FL_RESULT_NCOLS && any; i++) {
        const char *c = FL_RESULT_COLS[i];
        if (strncmp(c, "acc_", 4) || !strncmp(c, "acc_norm_", 9) || !strcmp(c, "acc_mean")) continue;
        for (int r = 0; r < t->nrows; r++)
            if (fl_row_final(t, r) && isfinite(fl_table_num(t, r, c))) {
                len = fl_bprintf(out, n, len, "%s%s", len ? ", " : "", c + 4);
                break;
            }
    }
    return any;
}

/* Claim K's verdict on the second metric (A), under its verdict on
 * perplexity (P). */
static void acc_verdict(doc *d, int k, const claim *p, const claim *a, const char *tasks) {
    doc_p(d, "**Claim %d on zero-shot accuracy** (the same rule and pairing on the zero-shot error, 100 − `acc_mean` "
             "in %%, lower is better: \"better\" is higher accuracy, differences in accuracy points; `acc_mean` over "
             "%s): %s. %s", k, tasks, a->s,
          a->state == p->state ? "The same verdict as on perplexity."
          : "**A different verdict from perplexity's**: the two metrics disagree here.");
}

int fl_report_build(const fl_table *t, const char *results_csv, const char *out_dir, int draw) {
    fl_plot_list plots;
    if ((draw ? fl_plots_build : fl_plots_scripts)(t, out_dir, &plots) != 0) return -1;
    doc d = { 0 };
    fl_sb_puts(&d.html, HTML_HEAD);
    doc_h(&d, 1, "freelunch: pruning and recovery study");
    doc_p(&d, "A reproduction of \"A Free Lunch in LLM Compression: Revisiting Retraining after Pruning\" (Wagner, Roux, "
              "Zimmer, Pokutta, arXiv 2510.14444), made by `freelunch report` from `%s`. Every number below is computed "
              "from that file.", results_csv);
    /* the summary comes first but is made of what the sections find:
     * they are written to BODY, then appended after it */
    doc body = { 0 };
    char dense[2048] = "";
    setup(&body, t, results_csv, dense, sizeof dense);
    if (!dense[0]) snprintf(dense, sizeof dense, "unknown (no model directory named in the results)");
    dense_refs(t, dense, sizeof dense);
    fl_panel *ps;
    int np = fl_panels(t, &ps);
    ctx x;
    ctx_init(&x, t, ps, np);
    doc_h(&body, 2, "How configurations are compared");
    doc_p(&body, "%s", STATS_RULE);
    /* the claims on the second metric first, into a scratch document: only
     * their verdicts are shown, each under its claim's own */
    claim a[3] = { { NOT_TESTABLE, "" }, { NOT_TESTABLE, "" }, { NOT_TESTABLE, "" } };
    char tasks[1024] = "";
    int has_acc = zs_tasks(t, tasks, sizeof tasks);
    if (has_acc) {
        ctx xa = x;   /* shares x's allocations: freed once, with x */
        xa.metric = ZS_ERR;
        doc scratch = { 0 };
        a[0] = claim1(&scratch, &xa);
        a[1] = claim2(&scratch, &xa);
        a[2] = claim3(&scratch, &xa);
        fl_sb_free(&scratch.md);
        fl_sb_free(&scratch.html);
    }
    claim c1 = claim1(&body, &x);
    if (has_acc) acc_verdict(&body, 1, &c1, &a[0], tasks);
    claim c2 = claim2(&body, &x);
    if (has_acc) acc_verdict(&body, 2, &c2, &a[1], tasks);
    claim c3 = claim3(&body, &x);
    if (has_acc) acc_verdict(&body, 3, &c3, &a[2], tasks);
    char as[3][64] = { "", "", "" };
    for (int i = 0; i < 3 && has_acc; i++)
        snprintf(as[i], sizeof as[i], " (zero-shot accuracy: %s)", state_word(a[i].state));
    ladder_section(&body, t);
    doc_close(&body);
    char f1[600], f2[600], f3[600];
    figures(f1, sizeof f1, &plots, "time_");
    figures(f2, sizeof f2, &plots, "peak_");
    figures(f3, sizeof f3, &plots, "bars_");
    doc_h(&d, 2, "Summary");
    doc_li(&d, "**Dense model**: %s.", dense);
    doc_li(&d, "**Claim 1 — local reconstruction matches retraining** with far less data and compute: %s%s. %s", c1.s,
           as[0], f1);
    doc_li(&d, "**Claim 2 — granularity does not matter once the unit holds a nonlinearity**, single matrices do worse: "
               "%s%s. %s", c2.s, as[1], f2);
    doc_li(&d, "**Claim 3 — with reconstruction, simple criteria close the gap** to the best: %s%s. %s", c3.s, as[2], f3);
    doc_p(&d, "Comparisons are paired over seeds with 95%% Student-t intervals (\"How configurations are compared\" "
              "below); each claim's section gives its rule and the tables behind its verdict.");
    static const char *const TPRE[] = { "time_", "peak_", "bars_" }, *const TCLAIM[] = { "Claim 1", "Claim 2", "Claim 3" };
    if (doc_thumbs(&d, out_dir, &plots, TPRE, TCLAIM, 3, draw) != 0) {
        fl_sb_free(&d.md); fl_sb_free(&d.html); fl_sb_free(&body.md); fl_sb_free(&body.html);
        ctx_free(&x); free(ps); fl_plot_list_free(&plots);
        return -1;
    }
    doc_close(&d);
    fl_sb_putn(&d.md, fl_sb_str(&body.md), body.md.len);
    fl_sb_putn(&d.html, fl_sb_str(&body.html), body.html.len);
    fl_sb_free(&body.md);
    fl_sb_free(&body.html);
    ppl_tables(&d, t, ps, np, dense);
    acc_tables(&d, t, ps, np);
    structured_section(&d, t);
    ctx_free(&x);
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
