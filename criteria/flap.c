/* flap (An et al., AAAI 2024, "Fluctuation-based Adaptive Structured
 * Pruning"): the fluctuation metric of an input channel j of the output
 * projection is the variance of X_j over the calibration tokens times the
 * squared norm of its weight column, Var(X_j) * ||W_:,j||^2: a channel
 * that barely fluctuates is well replaced by its mean. A structure's score
 * sums its channels' (a key/value group's o columns; one fc2/down
 * column). After removal the mean contribution W_:,removed * mean(X_removed)
 * is folded into the projection's bias (bias_compensation; a model
 * without that bias gets one, as FLAP does): harness/structured.c.
 * Per-layer ratios are uniform; FLAP's global adaptive ratio across layers
 * (standardised scores) is not implemented (docs/ARCHITECTURE.md). */
#include "criterion.h"

static int flap_score(fl_width_job *j) {
    int per;
    const fl_param *W = fl_width_proj(j->cfg, j->y, j->kind, &per);
    for (int s = 0; s < j->n; s++) {
        double t = 0;
        for (int c = s * per; c < (s + 1) * per; c++) {
            double col = 0;
            for (int r = 0; r < W->rows; r++) { double v = W->w[(int64_t)r * W->cols + c]; col += v * v; }
            t += fl_chan_var(j->proj, c) * col;
        }
        j->score[s] = t;
    }
    return 0;
}

const fl_criterion fl_crit_flap = {
    .name = "flap", .desc = "FLAP: remove the heads or MLP channels of least Var(X) * ||W||^2, bias-compensated",
    .stats = FL_STATS_NORMS, .structures = FL_STRUCT_BIT(FL_STRUCT_HEADS) | FL_STRUCT_BIT(FL_STRUCT_CHANNELS),
    .score_width = flap_score, .bias_compensation = 1,
};
