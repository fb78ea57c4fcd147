/* The generic half of structured pruning (criterion.h, "structured
 * pruning"): names, counts, per-channel moments and the uniform selection
 * every width criterion shares. */
#include "criterion.h"
#include "model/err.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAMES[] = { "none", "heads", "channels", "layers" };

int fl_structure_parse(const char *s, fl_structure *out) {
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, NAMES[i])) { *out = (fl_structure)i; return 0; }
    return fl_err("structure '%.64s' is not one of none, heads, channels, layers", s ? s : "");
}

const char *fl_structure_name(fl_structure s) { return s >= 0 && s <= FL_STRUCT_LAYERS ? NAMES[s] : "?"; }

int fl_chan_stats_init(fl_chan_stats *s, int cols) {
    s->cols = cols;
    s->n = 0;
    s->sum = calloc((size_t)cols, sizeof(double));
    s->sumsq = calloc((size_t)cols, sizeof(double));
    if (!s->sum || !s->sumsq) { fl_chan_stats_free(s); return fl_err("structured statistics: out of memory"); }
    return 0;
}

void fl_chan_stats_add(fl_chan_stats *s, const float *X, int N) {
    for (int n = 0; n < N; n++) {
        const float *x = X + (int64_t)n * s->cols;
        for (int j = 0; j < s->cols; j++) { s->sum[j] += x[j]; s->sumsq[j] += (double)x[j] * x[j]; }
    }
    s->n += N;
}

void fl_chan_stats_free(fl_chan_stats *s) {
    free(s->sum);
    free(s->sumsq);
    s->sum = s->sumsq = NULL;
}

double fl_chan_mean(const fl_chan_stats *s, int j) { return s->n ? s->sum[j] / s->n : 0.0; }

double fl_chan_var(const fl_chan_stats *s, int j) {
    if (!s->n) return 0.0;
    double m = s->sum[j] / s->n, v = s->sumsq[j] / s->n - m * m;
    return v > 0 ? v : 0.0;
}

int fl_structure_count(const fl_config *c, fl_structure s) {
    return s == FL_STRUCT_HEADS ? c->n_kv_head : s == FL_STRUCT_CHANNELS ? c->d_ff : s == FL_STRUCT_LAYERS ? c->n_layer : 0;
}

int fl_structure_removed(int n, double frac, fl_structure s, int *k) {
    static const char *what[] = { "", "key/value head groups", "MLP channels", "blocks" };
    if (!(frac >= 0 && frac < 1)) return fl_err("--sparsity %g: the fraction of %s removed must be in [0, 1)", frac, what[s]);
    *k = (int)floor(frac * n + 0.5);
    /* a removal of nothing would be a dense model labelled pruned */
    if (*k == 0)
        return fl_err("--sparsity %g with --structure %s removes none of the %d %s %s (round half up); the least that "
                      "removes one is %g", frac, fl_structure_name(s), n, what[s], s == FL_STRUCT_LAYERS ? "of the model" : "of a block",
                      0.5 / n);
    if (*k >= n)
        return fl_err("--sparsity %g with --structure %s removes all %d %s %s; keep at least one", frac,
                      fl_structure_name(s), n, what[s], s == FL_STRUCT_LAYERS ? "of the model" : "of a block");
    return 0;
}

void fl_structure_keep_lowest(const double *score, int n, int k, uint8_t *keep) {
    for (int i = 0; i < n; i++) keep[i] = 1;
    for (int r = 0; r < k; r++) {
        int lo = -1;
        for (int i = 0; i < n; i++)   /* <=: the higher index wins a tie */
            if (keep[i] && (lo < 0 || score[i] <= score[lo])) lo = i;
        keep[lo] = 0;
    }
}

const fl_param *fl_width_proj(const fl_config *c, const fl_layer *y, fl_structure kind, int *per) {
    const int heads = kind == FL_STRUCT_HEADS;
    *per = heads ? c->n_head / c->n_kv_head * c->head_dim : 1;
    return heads ? y->o_w : y->fc2_w;
}

typedef struct { double s; int i; } scored;

static int cmp_scored(const void *a, const void *b) {
    const scored *x = a, *y = b;
    if (x->s != y->s) return x->s < y->s ? -1 : 1;
    return (x->i < y->i) - (x->i > y->i);   /* the higher index first */
}

int fl_structure_keep_lowest_global(const double *score, int L, int n, int k, uint8_t *keep) {
    const int64_t N = (int64_t)L * n;
    if (k < 0 || (int64_t)k > (int64_t)L * (n - 1))
        return fl_err("removing %d of %d structures would leave a block with none (at most %lld: one kept per block)", k,
                      (int)N, (long long)L * (n - 1));
    scored *o = malloc(sizeof *o * (size_t)N);
    int *gone = calloc((size_t)L, sizeof(int));
    if (!o || !gone) { free(o); free(gone); return fl_err("structured pruning: out of memory"); }
    for (int64_t i = 0; i < N; i++) { o[i].s = score[i]; o[i].i = (int)i; keep[i] = 1; }
    /* qsort (libc) over (score, index): a total order, so the result does
     * not depend on the sort's stability */
    qsort(o, (size_t)N, sizeof *o, cmp_scored);
    for (int64_t r = 0, done = 0; r < N && done < k; r++) {
        const int l = o[r].i / n;
        if (gone[l] == n - 1) continue;   /* its last structure stays */
        keep[o[r].i] = 0;
        gone[l]++;
        done++;
    }
    free(o);
    free(gone);
    return 0;
}
