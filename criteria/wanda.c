/* wanda (Sun et al., ICLR 2024): score |W_ij| * ||X_j||_2, the weight times
 * the L2 norm of its input feature over the calibration tokens. The norm is
 * sqrt(st->sqnorm[j]) (a sum over tokens, not a mean: the scale of a
 * column factor never changes a mask). No weight update. */
#include "criterion.h"
#include "model/alloc.h"
#include <math.h>

static int wanda_prune(fl_prune_job *j) {
    const int R = j->rows, C = j->cols;
    float *norm = fl_allocf((size_t)C);
    float *s = fl_allocf((size_t)R * C);
    for (int c = 0; c < C; c++) norm[c] = (float)sqrt(j->st->sqnorm[c]);
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++) {
        const float *w = j->W + (int64_t)r * C;
        float *sr = s + (int64_t)r * C;
        for (int c = 0; c < C; c++) sr[c] = fabsf(w[c]) * norm[c];
    }
    fl_mask_from_scores(s, R, C, &j->pat, j->mask);
    fl_free(s);
    fl_free(norm);
    return 0;
}

const fl_criterion fl_crit_wanda = {
    .name = "wanda", .desc = "Wanda: prune the smallest |W_ij| * ||X_j||_2",
    .stats = FL_STATS_NORMS, .prune = wanda_prune,
};
