/* ria[:alpha=A] (Zhang et al., "Plug-and-Play", ICLR 2024): relative
 * importance and activations,
 *
 *   score_ij = (|W_ij| / sum_i' |W_i'j| + |W_ij| / sum_j' |W_ij'|) * ||X_j||_2^alpha
 *
 * the first sum over the output rows of input column j, the second over the
 * inputs of output row i; alpha in [0, 2], 0.5 by default (the paper's).
 * A row or column whose |W| sums to zero contributes 0 (its entries are all
 * zero anyway). No weight update. */
#include "criterion.h"
#include "model/alloc.h"
#include <math.h>
#include <stddef.h>

typedef struct { double alpha; } ria_opts;

static const fl_option ria_options[] = {
    { .name = "alpha", .help = "exponent of the input norm ||X_j||", .type = FL_OPT_FLOAT,
      .offset = offsetof(ria_opts, alpha), .def = 0.5, .min = 0, .max = 2 },
    { .name = NULL },
};

static int ria_prune(fl_prune_job *j) {
    const double alpha = ((const ria_opts *)j->priv)->alpha;
    const int R = j->rows, C = j->cols;
    double *colsum = fl_alloc(sizeof(double) * C);   /* over rows i, per input j */
    double *rowsum = fl_alloc(sizeof(double) * R);   /* over inputs j, per row i */
    float *act = fl_allocf((size_t)C);
    float *s = fl_allocf((size_t)R * C);
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++) {
        const float *w = j->W + (int64_t)r * C;
        double a = 0;
        for (int c = 0; c < C; c++) a += fabsf(w[c]);
        rowsum[r] = a;
    }
    for (int r = 0; r < R; r++) {   /* serial: a fixed summation order */
        const float *w = j->W + (int64_t)r * C;
        for (int c = 0; c < C; c++) colsum[c] += fabsf(w[c]);
    }
    for (int c = 0; c < C; c++) act[c] = (float)pow(sqrt(j->st->sqnorm[c]), alpha);
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++) {
        const float *w = j->W + (int64_t)r * C;
        float *sr = s + (int64_t)r * C;
        double ir = rowsum[r] > 0 ? 1.0 / rowsum[r] : 0.0;
        for (int c = 0; c < C; c++) {
            double a = fabsf(w[c]), ic = colsum[c] > 0 ? 1.0 / colsum[c] : 0.0;
            sr[c] = (float)((a * ic + a * ir) * act[c]);
        }
    }
    fl_mask_from_scores(s, R, C, &j->pat, j->mask);
    fl_free(s);
    fl_free(act);
    fl_free(rowsum);
    fl_free(colsum);
    return 0;
}

const fl_criterion fl_crit_ria = {
    .name = "ria", .desc = "RIA: relative importance (|W|/column sum + |W|/row sum) * ||X_j||^alpha",
    .stats = FL_STATS_NORMS, .options = ria_options, .priv_size = sizeof(ria_opts), .prune = ria_prune,
};
