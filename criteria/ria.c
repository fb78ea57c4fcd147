/* ria[:alpha] (Zhang et al., "Plug-and-Play", ICLR 2024): relative
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
#include "model/err.h"
#include <math.h>
#include <stdlib.h>

#define RIA_ALPHA_DEFAULT 0.5

static int parse_alpha(const char *arg, double *alpha) {
    if (!arg) { *alpha = RIA_ALPHA_DEFAULT; return 0; }
    char *e;
    double a = strtod(arg, &e);
    if (!*arg || e == arg || *e || !(a >= 0.0 && a <= 2.0))
        return fl_err("criterion ria: argument '%s' is not a valid alpha: expected a number in [0, 2] "
                      "(e.g. ria:0.5; plain ria means alpha = 0.5)", arg);
    *alpha = a;
    return 0;
}

static int ria_check_arg(const char *arg) {
    double a = RIA_ALPHA_DEFAULT;
    return parse_alpha(arg, &a);
}

static int ria_prune(fl_prune_job *j) {
    double alpha = RIA_ALPHA_DEFAULT;
    if (parse_alpha(j->arg, &alpha) != 0) return -1;
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
    .name = "ria", .desc = "RIA[:alpha]: relative importance (|W|/column sum + |W|/row sum) * ||X_j||^alpha, alpha=0.5",
    .stats = FL_STATS_NORMS, .check_arg = ria_check_arg, .prune = ria_prune,
};
