/* block-influence (Men et al., "ShortGPT"): a block's influence is
 * 1 - cos(input, output) averaged over the calibration tokens; the k
 * blocks that change the hidden state least are removed. */
#include "criterion.h"
#include <math.h>

/* mean over tokens of cos(a_n, b_n), rows of d floats */
double fl_struct_mean_cos(const float *a, const float *b, int64_t N, int d);
double fl_struct_mean_cos(const float *a, const float *b, int64_t N, int d) {
    double t = 0;
    for (int64_t n = 0; n < N; n++) {
        const float *x = a + n * d, *y = b + n * d;
        double xy = 0, xx = 0, yy = 0;
        for (int i = 0; i < d; i++) { xy += (double)x[i] * y[i]; xx += (double)x[i] * x[i]; yy += (double)y[i] * y[i]; }
        t += xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : 1.0;
    }
    return N ? t / N : 1.0;
}

static int bi_select(fl_depth_job *j) {
    double s[FL_MAX_LAYERS];
    for (int l = 0; l < j->L; l++) s[l] = 1.0 - fl_struct_mean_cos(j->H[l], j->H[l + 1], j->N, j->d);
    uint8_t keep[FL_MAX_LAYERS];
    fl_structure_keep_lowest(s, j->L, j->k, keep);
    for (int l = 0; l < j->L; l++) j->removed[l] = !keep[l];
    return 0;
}

const fl_criterion fl_crit_block_influence = {
    .name = "block-influence", .desc = "ShortGPT: remove the blocks of least 1 - cos(block input, block output)",
    .stats = FL_STATS_NONE, .structures = FL_STRUCT_BIT(FL_STRUCT_LAYERS), .select_depth = bi_select,
};
