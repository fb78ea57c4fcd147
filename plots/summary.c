/* Loading, ordering and aggregating results for plots and report; see summary.h. */
#include "summary.h"
#include "sbuf.h"
#include "model/err.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* One line of well-formed UTF-8 without control characters or backticks:
 * every byte of a value is replaced in place, never added, by a space (a
 * control character) or '?' (a byte that starts no character, a backtick). */
void fl_sum_clean(char *s) {
    while (*s) {
        unsigned char c = (unsigned char)*s;
        int n = fl_utf8_len(s);
        /* C1 controls (U+0080..U+009F) are two bytes, 0xc2 0x80..0x9f */
        if (n == 2 && c == 0xc2 && (unsigned char)s[1] < 0xa0) { s[0] = s[1] = ' '; s += 2; continue; }
        if (n > 1) { s += n; continue; }
        *s = !n || c == '`' ? '?' : c < 0x20 || c == 0x7f ? ' ' : (char)c;
        s++;
    }
}

int fl_sum_load(const char *csv, fl_table *t) {
    memset(t, 0, sizeof *t);
    struct stat st;
    /* fl_table_read treats a missing file as an empty study (the grid
     * runner's resume starts from it); here it is a mistake. */
    if (stat(csv, &st) != 0) return fl_err("%s: %s", csv, strerror(errno));
    if (fl_table_read(csv, t) != 0) return -1;
    /* tuning sub-cells (role tune) chose a final row's settings on a
     * validation split: the plots and the report show final rows only */
    /* the dense references (role dense) go after them, t->nref of them */
    int w = 0, nd = 0;
    char ***dense = malloc(sizeof *dense * (size_t)(t->nrows ? t->nrows : 1));
    if (!dense) { fl_table_free(t); return fl_err("%s: out of memory", csv); }
    for (int r = 0; r < t->nrows; r++) {
        if (fl_row_final(t, r)) { t->rows[w++] = t->rows[r]; continue; }
        if (!strcmp(fl_table_get(t, r, "role"), "dense")) { dense[nd++] = t->rows[r]; continue; }
        for (int c = 0; c < FL_RESULT_NCOLS; c++) free(t->rows[r][c]);
        free(t->rows[r]);
    }
    for (int k = 0; k < nd; k++) t->rows[w + k] = dense[k];
    free(dense);
    t->nrows = w;
    t->nref = nd;
    for (int r = 0; r < t->nrows + t->nref; r++)
        for (int c = 0; c < FL_RESULT_NCOLS; c++) fl_sum_clean(t->rows[r][c]);
    for (int r = 0; r < t->nrows; r++)
        if (fl_sum_ok(t, r)) return 0;
    int n = t->nrows;
    fl_table_free(t);
    return fl_err("%s: no cell with status ok (%s), nothing to plot or report", csv,
                  n ? "every row failed" : "no rows");
}

int fl_sum_ok(const fl_table *t, int r) { return !strcmp(fl_table_get(t, r, "status"), "ok"); }

/* ---- the dense references ------------------------------------------------ */

int fl_sum_dense_row(const fl_table *t, const char *model, const char *eval_set, const char *windows) {
    for (int r = t->nrows; r < t->nrows + t->nref; r++)
        if (fl_sum_ok(t, r) && !strcmp(fl_table_get(t, r, "model"), model) && !strcmp(fl_table_get(t, r, "eval_set"), eval_set) &&
            !strcmp(fl_table_get(t, r, "eval_windows"), windows))
            return r;
    return -1;
}

double fl_panel_dense(const fl_table *t, const fl_panel *p, const char *col) {
    /* the first ok row of the panel says how its perplexities were measured */
    for (int r = 0; r < t->nrows; r++) {
        if (!fl_sum_ok(t, r) || !fl_in_panel(t, r, p)) continue;
        int d = fl_sum_dense_row(t, fl_table_get(t, r, "model"), fl_table_get(t, r, "eval_set"), fl_table_get(t, r, "eval_windows"));
        return d < 0 ? NAN : fl_table_num(t, d, col);
    }
    return NAN;
}

/* ---- orders ------------------------------------------------------------- */

static const char *const RECON_ORDER[] = { "none", "matrix", "matrix-ls", "sublayer", "block", "blocks:2",
                                           "blocks:all", "retrain:full", "retrain:bias-norm", "retrain:lora",
                                           "retrain:masklora", NULL };
static const char *const CRIT_ORDER[] = { "magnitude", "random", "wanda", "ria", "sparsegpt", "sparseswaps",
                                          "sparsefw", NULL };

static int rank_in(const char *const *order, const char *s) {
    int i = 0;
    for (; order[i]; i++)
        if (!strcmp(order[i], s)) return i;
    return i;
}

static int listed_cmp(const char *const *order, const char *a, const char *b) {
    int ra = rank_in(order, a), rb = rank_in(order, b);
    return ra != rb ? (ra < rb ? -1 : 1) : strcmp(a, b);
}

int fl_recon_cmp(const char *a, const char *b) { return listed_cmp(RECON_ORDER, a, b); }
int fl_crit_cmp(const char *a, const char *b) { return listed_cmp(CRIT_ORDER, a, b); }

static int as_number(const char *s, double *v) {
    char *end;
    *v = strtod(s, &end);
    return *s && !*end;
}

int fl_value_cmp(const char *a, const char *b) {
    double x, y;
    int na = as_number(a, &x), nb = as_number(b, &y);
    if (na && nb && x != y) return x < y ? -1 : 1;
    if (na != nb) return na ? -1 : 1;
    return strcmp(a, b);
}

/* ---- distinct values ------------------------------------------------------ */

void fl_names_of(const fl_table *t, const char *col, int all_rows, fl_names *out) {
    int (*cmp)(const char *, const char *) = !strcmp(col, "reconstruct") ? fl_recon_cmp
                                           : !strcmp(col, "criterion") ? fl_crit_cmp : fl_value_cmp;
    memset(out, 0, sizeof *out);
    out->v = malloc(sizeof(char *) * (size_t)(t->nrows + 1));
    for (int r = 0; r < t->nrows; r++) {
        const char *v = fl_table_get(t, r, col);
        if (!*v || (!all_rows && !fl_sum_ok(t, r)) || fl_names_index(out, v) >= 0) continue;
        /* insertion sort: a grid has a handful of values per column */
        int i = out->n++;
        while (i > 0 && cmp(out->v[i - 1], v) > 0) { out->v[i] = out->v[i - 1]; i--; }
        out->v[i] = strdup(v);
    }
}

int fl_names_index(const fl_names *n, const char *v) {
    for (int i = 0; i < n->n; i++)
        if (!strcmp(n->v[i], v)) return i;
    return -1;
}

void fl_names_free(fl_names *n) {
    for (int i = 0; i < n->n; i++) free(n->v[i]);
    free(n->v);
    memset(n, 0, sizeof *n);
}

/* ---- panels --------------------------------------------------------------- */

static void file_safe(char *dst, size_t n, const char *src) {
    size_t i = 0;
    for (; src[i] && i + 1 < n; i++) {
        char c = src[i];
        dst[i] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ? c : '-';
    }
    dst[i] = 0;
}

/* A row's structure: "none" for weight pruning, also where the column is
 * empty (results.csv files from before structured pruning). */
static const char *structure_of(const fl_table *t, int r) {
    const char *s = fl_table_get(t, r, "structure");
    return *s ? s : "none";
}

int fl_panels(const fl_table *t, fl_panel **out) {
    fl_names models, sps, pats, sts;
    fl_names_of(t, "model", 0, &models);
    fl_names_of(t, "sparsity", 0, &sps);
    fl_names_of(t, "pattern", 0, &pats);
    fl_names_of(t, "structure", 0, &sts);
    int structured = 0;   /* any structure but none: panels name theirs */
    for (int i = 0; i < sts.n; i++) structured |= strcmp(sts.v[i], "none") != 0;
    *out = malloc(sizeof(fl_panel) * (size_t)(t->nrows + 1));
    int np = 0;
    /* Walk sparsities in order so panels come out sorted; within one, the
     * rows' own (model, pattern) pairs in first-seen order. */
    for (int s = 0; s < sps.n; s++)
        for (int r = 0; r < t->nrows; r++) {
            if (!fl_sum_ok(t, r) || strcmp(fl_table_get(t, r, "sparsity"), sps.v[s])) continue;
            fl_panel p = { .model = fl_table_get(t, r, "model"), .sparsity = fl_table_get(t, r, "sparsity"),
                           .pattern = fl_table_get(t, r, "pattern"), .structure = structure_of(t, r) };
            int seen = 0;
            for (int i = 0; i < np && !seen; i++) seen = fl_in_panel(t, r, &(*out)[i]);
            if (seen) continue;
            char sp[64];
            file_safe(sp, sizeof sp, p.sparsity);
            size_t len = fl_bprintf(p.label, sizeof p.label, 0, "sparsity %s", p.sparsity);
            size_t tl = fl_bprintf(p.tag, sizeof p.tag, 0, "s%s", sp);
            if (pats.n > 1) {
                char pt[32];
                file_safe(pt, sizeof pt, p.pattern);
                len = fl_bprintf(p.label, sizeof p.label, len, " (pattern %.64s)", p.pattern);
                tl = fl_bprintf(p.tag, sizeof p.tag, tl, "_%s", pt);
            }
            if (structured) {
                char st[32];
                file_safe(st, sizeof st, p.structure);
                len = fl_bprintf(p.label, sizeof p.label, len, ", structure %.32s", p.structure);
                tl = fl_bprintf(p.tag, sizeof p.tag, tl, "_%s", st);
            }
            if (models.n > 1) {
                const char *base = strrchr(p.model, '/');
                fl_bprintf(p.label, sizeof p.label, len, ", model %.300s", base && base[1] ? base + 1 : p.model);
                tl = fl_bprintf(p.tag, sizeof p.tag, tl, "_m%d", fl_names_index(&models, p.model) + 1);
            }
            /* Values that differ only in characters file names cannot hold
             * ("0,5" and "0-5"), or only past the cut, give one tag: the
             * panel's number keeps their files apart. */
            if (tl > sizeof p.tag - 16) tl = sizeof p.tag - 16;
            for (int k = np + 1;; k++) {
                int clash = 0;
                for (int i = 0; i < np && !clash; i++) clash = !strcmp((*out)[i].tag, p.tag);
                if (!clash) break;
                fl_bprintf(p.tag, sizeof p.tag, tl, "_p%d", k);
            }
            (*out)[np++] = p;
        }
    fl_names_free(&models);
    fl_names_free(&sts);
    fl_names_free(&sps);
    fl_names_free(&pats);
    return np;
}

int fl_in_panel(const fl_table *t, int r, const fl_panel *p) {
    return !p || (!strcmp(fl_table_get(t, r, "model"), p->model) && !strcmp(fl_table_get(t, r, "sparsity"), p->sparsity) &&
                  !strcmp(fl_table_get(t, r, "pattern"), p->pattern) &&
                  !strcmp(structure_of(t, r), p->structure ? p->structure : "none"));
}

/* ---- mean ± std ------------------------------------------------------------- */

int fl_row_matches(const fl_table *t, int r, const fl_panel *p, const char *crit, const char *recon) {
    return fl_sum_ok(t, r) && fl_in_panel(t, r, p) && (!crit || !strcmp(fl_table_get(t, r, "criterion"), crit)) &&
           (!recon || !strcmp(fl_table_get(t, r, "reconstruct"), recon));
}

fl_stat fl_stat_of(const fl_table *t, const fl_panel *p, const char *crit, const char *recon, const char *col) {
    /* two passes (mean, then squared deviations): exact enough for a few
     * seeds whatever the scale of the values */
    fl_stat s = { NAN, NAN, 0 };
    double sum = 0;
    for (int r = 0; r < t->nrows; r++) {
        double v = fl_table_num(t, r, col);
        if (fl_row_matches(t, r, p, crit, recon) && isfinite(v)) { sum += v; s.n++; }
    }
    if (s.n == 0) return s;
    s.mean = sum / s.n;
    if (s.n < 2) return s;
    double ss = 0;
    for (int r = 0; r < t->nrows; r++) {
        double v = fl_table_num(t, r, col);
        if (fl_row_matches(t, r, p, crit, recon) && isfinite(v)) ss += (v - s.mean) * (v - s.mean);
    }
    s.std = sqrt(ss / (s.n - 1));
    return s;
}
