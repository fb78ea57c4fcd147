/* Sparsity patterns: parsing, exact checks, and mask selection from scores. */
#include "criterion.h"
#include "model/alloc.h"
#include "model/err.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int fl_pattern_parse(const char *sparsity, const char *kind, fl_pattern *out) {
    memset(out, 0, sizeof *out);
    const char *colon = strchr(sparsity, ':');
    if (colon) {
        char *e1, *e2;
        long n = strtol(sparsity, &e1, 10), m = strtol(colon + 1, &e2, 10);
        if (e1 != colon || *e2 || n < 1 || m <= 0 || n >= m || m > 4096)
            return fl_err("sparsity '%s': N:M needs integers 1 <= N < M (e.g. 2:4, 4:8)", sparsity);
        out->kind = FL_PAT_NM; out->n = (int)n; out->m = (int)m;
        out->sparsity = (double)(m - n) / m;
        return 0;
    }
    char *e;
    double s = strtod(sparsity, &e);
    if (e == sparsity || *e || !(s > 0 && s < 1))
        return fl_err("sparsity '%s': expected a fraction in (0, 1) such as 0.5, or N:M such as 2:4", sparsity);
    out->sparsity = s;
    if (!kind || !strcmp(kind, "row")) out->kind = FL_PAT_ROW;
    else if (!strcmp(kind, "matrix")) out->kind = FL_PAT_MATRIX;
    else return fl_err("pattern '%s': expected row or matrix (N:M is given as the sparsity)", kind);
    return 0;
}

int fl_pattern_check(const fl_pattern *p, int rows, int cols, const char *what) {
    if (rows <= 0 || cols <= 0) return fl_err("%s: empty matrix", what);
    if (p->kind == FL_PAT_NM && cols % p->m)
        return fl_err("%s: N:M with M=%d does not divide the input width %d", what, p->m, cols);
    return 0;
}

int64_t fl_pattern_row_pruned(const fl_pattern *p, int cols) {
    if (p->kind == FL_PAT_NM) return (int64_t)(cols / p->m) * (p->m - p->n);
    return (int64_t)llround(p->sparsity * cols);
}

static int64_t matrix_pruned(const fl_pattern *p, int rows, int cols) {
    return (int64_t)llround(p->sparsity * (double)rows * cols);
}

int fl_mask_check(const uint8_t *mask, int rows, int cols, const fl_pattern *p, const char *what) {
    int64_t total = 0;
    for (int r = 0; r < rows; r++) {
        const uint8_t *mr = mask + (int64_t)r * cols;
        int64_t z = 0;
        for (int c = 0; c < cols; c++) {
            if (mr[c] > 1) return fl_err("%s: mask entry %d at row %d is not 0/1", what, mr[c], r);
            z += !mr[c];
        }
        if (p->kind == FL_PAT_ROW && z != fl_pattern_row_pruned(p, cols))
            return fl_err("%s: row %d has %lld pruned weights, the pattern needs %lld", what, r, (long long)z,
                          (long long)fl_pattern_row_pruned(p, cols));
        if (p->kind == FL_PAT_NM)
            for (int g = 0; g < cols; g += p->m) {
                int kept = 0;
                for (int c = g; c < g + p->m; c++) kept += mr[c];
                if (kept != p->n)
                    return fl_err("%s: row %d, group at column %d keeps %d of %d, the pattern needs %d",
                                  what, r, g, kept, p->m, p->n);
            }
        total += z;
    }
    if (p->kind == FL_PAT_MATRIX && total != matrix_pruned(p, rows, cols))
        return fl_err("%s: %lld pruned weights, the pattern needs %lld", what, (long long)total,
                      (long long)matrix_pruned(p, rows, cols));
    return 0;
}

double fl_mask_sparsity(const uint8_t *mask, int64_t n) {
    int64_t z = 0;
    for (int64_t i = 0; i < n; i++) z += !mask[i];
    return n ? (double)z / n : 0.0;
}

/* Sort indices by ascending score, ties by descending index, so that the
 * first k are pruned and among equal scores the lower index is kept. */
typedef struct { float s; int64_t i; } si_t;
static int cmp_si(const void *a, const void *b) {
    const si_t *x = a, *y = b;
    if (x->s < y->s) return -1;
    if (x->s > y->s) return 1;
    return (x->i < y->i) - (x->i > y->i);
}

static void prune_lowest(const float *scores, int64_t n, int64_t stride, int64_t k, uint8_t *mask, si_t *buf) {
    for (int64_t j = 0; j < n; j++) {
        float s = scores[j * stride];
        buf[j] = (si_t){ s != s ? -INFINITY : s, j };   /* NaN scores are pruned first */
        mask[j * stride] = 1;
    }
    qsort(buf, (size_t)n, sizeof *buf, cmp_si);
    for (int64_t j = 0; j < k && j < n; j++) mask[buf[j].i * stride] = 0;
}

void fl_mask_from_scores(const float *scores, int rows, int cols, const fl_pattern *p, uint8_t *mask) {
    if (p->kind == FL_PAT_MATRIX) {
        int64_t n = (int64_t)rows * cols;
        si_t *buf = malloc(sizeof(si_t) * n);
        prune_lowest(scores, n, 1, matrix_pruned(p, rows, cols), mask, buf);
        free(buf);
        return;
    }
    #pragma omp parallel
    {
        si_t *buf = malloc(sizeof(si_t) * cols);
        #pragma omp for schedule(static)
        for (int r = 0; r < rows; r++) {
            const float *sr = scores + (int64_t)r * cols;
            uint8_t *mr = mask + (int64_t)r * cols;
            if (p->kind == FL_PAT_ROW) prune_lowest(sr, cols, 1, fl_pattern_row_pruned(p, cols), mr, buf);
            else
                for (int g = 0; g < cols; g += p->m) prune_lowest(sr + g, p->m, 1, p->m - p->n, mr + g, buf);
        }
        free(buf);
    }
}

/* ---- statistics --------------------------------------------------------- */

#include "model/gemm.h"

int fl_stats_init(fl_stats *s, fl_stats_kind kind, int cols) {
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->cols = cols;
    if (kind == FL_STATS_NONE) return 0;
    s->sqnorm = fl_alloc(sizeof(double) * cols);
    if (kind == FL_STATS_GRAM) s->gram = fl_allocf((size_t)cols * cols);
    return 0;
}

void fl_stats_add(fl_stats *s, const float *X, int N) {
    if (s->kind == FL_STATS_NONE || N <= 0) return;
    const int C = s->cols;
    double *sq = s->sqnorm;
    /* Each thread owns a slice of 64 columns and walks the rows: contiguous
     * reads (walking one column down all rows was 3 s at 32768 x 3072). */
    #pragma omp parallel for schedule(static)
    for (int j0 = 0; j0 < C; j0 += 64) {
        int j1 = j0 + 64 < C ? j0 + 64 : C;
        double a[64] = { 0 };
        for (int n = 0; n < N; n++) {
            const float *x = X + (int64_t)n * C;
            for (int j = j0; j < j1; j++) a[j - j0] += (double)x[j] * x[j];
        }
        for (int j = j0; j < j1; j++) sq[j] += a[j - j0];
    }
    if (s->kind == FL_STATS_GRAM) fl_gemm(1, 0, C, C, N, 1.0f, X, C, X, C, 1.0f, s->gram, C);
    s->nsamples += N;
}

void fl_stats_free(fl_stats *s) {
    fl_free(s->sqnorm);
    fl_free(s->gram);
    memset(s, 0, sizeof *s);
}
