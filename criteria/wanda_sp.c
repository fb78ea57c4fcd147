/* wanda-sp: the structured Wanda of the Wanda paper's appendix, as the ZIB
 * authors' prune_methods.py applies it: the output projection's weights
 * times the norm of their input feature, |W_rj| * ||X_j||_2, summed over
 * the columns that belong to the structure (the o columns of a key/value
 * group's query heads; an fc2/down column) and over the rows. The
 * projection's input carries everything the structure contributes, so
 * only its columns are scored, as in that code. */
#include "criterion.h"
#include <math.h>

static int wanda_sp_score(fl_width_job *j) {
    int per;
    const fl_param *W = fl_width_proj(j->cfg, j->y, j->kind, &per);
    for (int s = 0; s < j->n; s++) {
        double t = 0;
        for (int c = s * per; c < (s + 1) * per; c++) {
            const double nrm = sqrt(j->proj->sumsq[c]);
            for (int r = 0; r < W->rows; r++) t += fabs(W->w[(int64_t)r * W->cols + c]) * nrm;
        }
        j->score[s] = t;
    }
    return 0;
}

const fl_criterion fl_crit_wanda_sp = {
    .name = "wanda-sp", .desc = "structured Wanda: remove the heads or MLP channels of smallest sum |W| * ||X||",
    .stats = FL_STATS_NORMS, .structures = FL_STRUCT_BIT(FL_STRUCT_HEADS) | FL_STRUCT_BIT(FL_STRUCT_CHANNELS),
    .score_width = wanda_sp_score,
};
