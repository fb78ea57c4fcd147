/* libFuzzer target: grid specs (harness/grid.c) and the number parser they
 * share with the command line (harness/settings.c).
 *
 * An input is INI text (with [grid.NAME] variants); after a NUL byte, each further NUL-separated piece
 * is a `--set key=value[,value]` assignment (at most 4). The grid is parsed,
 * the assignments applied, checked, and, when the product of its value
 * counts is small or past the cell limit, made into cells. Besides the
 * sanitizers it checks what the rest of the study relies on: no empty,
 * overlong value or control character in a value, one cell per combination, well-formed
 * ids and directory names, and the number parser's results within their
 * bounds. Seeds: tests/fuzz/corpus/grid/. */
#include "harness/grid.h"
#include "harness/settings.h"
#include <ctype.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "fuzz_grid: %s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

/* The cell count as fl_grid_cells must see it before it merges repeats:
 * the main product plus each variant's (its keys replacing the grid's),
 * saturating instead of overflowing. */
static long long cell_count(const fl_grid *g) {
    long long total = 0;
    for (int p = 0; p <= g->nvar; p++) {
        const fl_grid_variant *v = p ? &g->var[p - 1] : NULL;
        long long n = 1;
        for (int i = 0; i < g->ndims + (v ? v->ndims : 0); i++) {
            const fl_dim *d = i < g->ndims ? &g->dims[i] : &v->dims[i - g->ndims];
            if (v && i < g->ndims)
                for (int k = 0; k < v->ndims; k++)
                    if (!strcmp(v->dims[k].key, d->key)) d = &v->dims[k];
            if (v && i >= g->ndims && fl_grid_get(g, d->key)) continue;   /* replaced above */
            const fl_setting *s = fl_setting_find(d->key);
            CHECK(s);
            if (s->type == FL_SET_LIST) continue;
            n *= d->nvals;
            if (total + n > FL_GRID_MAX_CELLS) return FL_GRID_MAX_CELLS + 1LL;
        }
        total += n;
    }
    return total;
}

static void check_values(const fl_grid *g) {
    CHECK(g->ndims >= 0 && g->ndims <= FL_GRID_MAX_DIMS);
    for (int i = 0; i < g->ndims; i++) {
        const fl_dim *d = &g->dims[i];
        CHECK(fl_setting_find(d->key));
        CHECK(d->nvals >= 1);
        for (int j = 0; j < d->nvals; j++) {
            const char *v = d->vals[j];
            CHECK(*v && strlen(v) < FL_GRID_MAX_VALUE);
            for (const char *p = v; *p; p++) CHECK((unsigned char)*p >= ' ' || *p == '\t');
        }
        for (int k = 0; k < i; k++) CHECK(strcmp(d->key, g->dims[k].key));
    }
}

static int cmp_id(const void *a, const void *b) { return strcmp(((const fl_cell_spec *)a)->id, ((const fl_cell_spec *)b)->id); }

/* checked: the grid passed fl_grid_check, so no key repeats a value */
static void check_cells(fl_grid *g, int checked) {
    long long want = cell_count(g);
    if (want > 512 && want <= FL_GRID_MAX_CELLS) return;   /* valid but slow to make at fuzzing speed */
    /* [tune]: each cell that trains adds one sub-cell per combination */
    const long long K = g->tune.ndims ? fl_tune_ncombos(g) : 0;
    if (K && (K > 64 || want > FL_GRID_MAX_CELLS || want * (K + 1) > 512)) return;
    fl_cell_spec *c = NULL;
    int n = -1;
    int rc = fl_grid_cells(g, &c, &n);
    if (want > FL_GRID_MAX_CELLS) { CHECK(rc == -1); return; }
    if (K && rc != 0) return;   /* an unchecked [tune] may be refused */
    /* variants' cells that repeat a cell are merged: never more, and exact without variants */
    CHECK(rc == 0 && (g->nvar || K ? n <= want * (K + 1) && n >= 1 : n == want));
    for (int i = 0; i < n; i++) {
        CHECK(c[i].role == FL_ROLE_FINAL || c[i].role == FL_ROLE_TUNE);
        if (c[i].role == FL_ROLE_TUNE) CHECK(!strcmp(fl_cell_get(&c[i], "eval"), fl_grid_select(g)));
        for (int k = 0; k < c[i].ntune; k++) {   /* the sub-cells a final waits for are cells of the study */
            fl_cell_spec sub;
            CHECK(fl_cell_tune_sub(g, &c[i], k, &sub) == 0);
            int found = 0;
            for (int j = 0; j < n && !found; j++) found = !strcmp(c[j].id, sub.id) && c[j].role == FL_ROLE_TUNE;
            CHECK(found);
        }
    }
    for (int i = 0; i < n; i++) {
        CHECK(c[i].nkeys >= g->ndims && c[i].nkeys <= FL_GRID_MAX_DIMS);
        CHECK(strlen(c[i].id) == 12);
        for (const char *p = c[i].id; *p; p++) CHECK(isxdigit((unsigned char)*p));
        for (const char *p = c[i].name; *p; p++) CHECK(isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '_');
        /* every grid key, but a tuning sub-cell scores no zero-shot task
         * (grid.c fl_cell_tune_sub drops eval-task and its limit) */
        for (int k = 0; k < g->ndims; k++)
            CHECK(fl_cell_get(&c[i], g->dims[k].key) ||
                  (c[i].role == FL_ROLE_TUNE && !strncmp(g->dims[k].key, "eval-task", 9)));
    }
    /* a checked grid's cells are distinct combinations, so distinct ids: a
     * repeated id would make a study skip a cell as done (with variants,
     * repeats are merged, so always) */
    if (checked || g->nvar || K) {
        qsort(c, (size_t)n, sizeof *c, cmp_id);
        for (int i = 1; i < n; i++) CHECK(strcmp(c[i - 1].id, c[i].id));
    }
    free(c);
}

/* The shared number parser: what it accepts is decimal and within bounds. */
static void check_numbers(const char *s) {
    long long i;
    if (fl_parse_int(s, -5, FL_INT_MAX, &i) == 0) {
        CHECK(i >= -5 && i <= FL_INT_MAX);
        for (const char *p = s + (*s == '-'); *p; p++) CHECK(isdigit((unsigned char)*p));
    }
    double x;
    if (fl_parse_num(s, -FL_NUM_MAX, FL_NUM_MAX, &x) == 0) {
        CHECK(isfinite(x) && fabs(x) <= FL_NUM_MAX);
        for (const char *p = s; *p; p++) CHECK(isdigit((unsigned char)*p) || strchr("-+.eE", *p));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > (1 << 20)) return 0;
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    const char *sets[4];
    int nsets = 0;
    for (size_t at = strlen(buf) + 1; at < size + 1 && nsets < 4; at += strlen(buf + at) + 1) sets[nsets++] = buf + at;
    fl_grid g;
    if (fl_grid_parse_string(buf, "fuzz.ini", &g) == 0) {
        CHECK(g.source && !strcmp(g.source, "fuzz.ini"));
        for (int i = 0; i < nsets; i++) fl_grid_set(&g, sets[i]);   /* a refused one leaves the grid as it was */
        check_values(&g);
        int checked = fl_grid_check(&g) == 0;
        if (checked) CHECK(fl_grid_get(&g, "criterion") && fl_grid_get(&g, "sparsity"));
        check_cells(&g, checked);
        for (int i = 0; i < g.ndims && i < 4; i++) check_numbers(g.dims[i].vals[0]);
        fl_grid_free(&g);
    }
    for (int i = 0; i < nsets; i++) check_numbers(sets[i]);
    free(buf);
    return 0;
}
