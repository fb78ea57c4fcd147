/* flap (An et al., AAAI 2024, "Fluctuation-based Adaptive Structured
 * Pruning"): the fluctuation metric of an input channel j of the output
 * projection is the variance of X_j over the calibration tokens times the
 * squared norm of its weight column, Var(X_j) * ||W_:,j||^2: a channel
 * that barely fluctuates is well replaced by its mean. A structure's score
 * sums its channels' (a key/value group's o columns; one fc2/down
 * column). After removal the mean contribution W_:,removed * mean(X_removed)
 * is folded into the projection's bias (bias_compensation; a model
 * without that bias gets one, as FLAP does): harness/structured.c.
 *
 * flap:ratio=global is FLAP's adaptive structure (the authors' AL-MM for
 * the one structure a cell removes): the fluctuation metric of every
 * output-projection column, squared for attention as the authors square
 * it, is standardised within its block, (m - mean) / std over the block's
 * columns (std with n - 1, as torch.std), a head's score is the mean over
 * its group's columns, and the lowest of the whole model go, every block
 * keeping at least one (harness/structured.c; a block's counts then
 * differ, and the config records per-layer sizes). The authors' AL-AM
 * ranks heads and channels together, a head weighted as 4 hd / 3
 * channels; a freelunch cell removes one structure, so that joint ranking
 * does not arise. ratio=uniform (the default) removes the same count from
 * every block. */
#include "criterion.h"
#include "model/alloc.h"
#include <math.h>
#include <stddef.h>
#include <string.h>

typedef struct { char ratio[FL_OPT_STRLEN]; } flap_opts;

static const fl_option flap_options[] = {
    { .name = "ratio", .help = "uniform: every block loses the same count; global: FLAP's adaptive ratio (standardised scores, "
                               "the lowest of the model, one kept per block)",
      .type = FL_OPT_STRING, .offset = offsetof(flap_opts, ratio), .def_str = "uniform", .choices = "uniform|global" },
    { .name = NULL },
};

static int flap_global(const void *priv) { return priv && !strcmp(((const flap_opts *)priv)->ratio, "global"); }

/* Var(X_c) * ||W_:,c||^2 of column c of the output projection W */
static double wifv(const fl_width_job *j, const fl_param *W, int c) {
    double col = 0;
    for (int r = 0; r < W->rows; r++) { double v = W->w[(int64_t)r * W->cols + c]; col += v * v; }
    return fl_chan_var(j->proj, c) * col;
}

static int flap_score(fl_width_job *j) {
    int per;
    const fl_param *W = fl_width_proj(j->cfg, j->y, j->kind, &per);
    if (flap_global(j->priv)) {
        const int C = W->cols, heads = j->kind == FL_STRUCT_HEADS;
        double *m = fl_alloc(sizeof(double) * (size_t)C), mean = 0, ss = 0;
        for (int c = 0; c < C; c++) {
            double v = wifv(j, W, c);
            m[c] = heads ? v * v : v;
            mean += m[c];
        }
        mean /= C;
        for (int c = 0; c < C; c++) ss += (m[c] - mean) * (m[c] - mean);
        /* a block of one column, or of equal ones, has no spread: all 0 */
        const double sd = C > 1 ? sqrt(ss / (C - 1)) : 0;
        for (int s = 0; s < j->n; s++) {
            double t = 0;
            for (int c = s * per; c < (s + 1) * per; c++) t += sd > 0 ? (m[c] - mean) / sd : 0;
            j->score[s] = t / per;
        }
        fl_free(m);
        return 0;
    }
    for (int s = 0; s < j->n; s++) {
        double t = 0;
        for (int c = s * per; c < (s + 1) * per; c++) t += wifv(j, W, c);
        j->score[s] = t;
    }
    return 0;
}

const fl_criterion fl_crit_flap = {
    .name = "flap", .desc = "FLAP: remove the heads or MLP channels of least Var(X) * ||W||^2, bias-compensated",
    .stats = FL_STATS_NORMS, .structures = FL_STRUCT_BIT(FL_STRUCT_HEADS) | FL_STRUCT_BIT(FL_STRUCT_CHANNELS),
    .options = flap_options, .priv_size = sizeof(flap_opts),
    .score_width = flap_score, .bias_compensation = 1, .global_ratio = flap_global,
};
