/* angular (Gromov et al., "The Unreasonable Ineffectiveness of the Deeper
 * Layers"): removing k blocks, the run of k consecutive blocks l..l+k-1
 * whose input and the input of block l+k are closest in angular distance
 * arccos(cos(H_l, H_{l+k})) / pi, averaged over the calibration tokens, is
 * removed (the paper follows with a short healing fine-tune: recovery). */
#include "criterion.h"
#include <math.h>

double fl_struct_mean_cos(const float *a, const float *b, int64_t N, int d);

static double mean_angle(const float *a, const float *b, int64_t N, int d) {
    double t = 0;
    for (int64_t n = 0; n < N; n++) {
        const float *x = a + n * d, *y = b + n * d;
        double xy = 0, xx = 0, yy = 0;
        for (int i = 0; i < d; i++) { xy += (double)x[i] * y[i]; xx += (double)x[i] * x[i]; yy += (double)y[i] * y[i]; }
        double c = xx > 0 && yy > 0 ? xy / sqrt(xx * yy) : 1.0;
        t += acos(c > 1 ? 1 : c < -1 ? -1 : c) / 3.14159265358979323846;
    }
    return N ? t / N : 0.0;
}

static int angular_select(fl_depth_job *j) {
    int best = 0;
    double bd = 0;
    for (int l = 0; l + j->k <= j->L; l++) {
        double dist = mean_angle(j->H[l], j->H[l + j->k], j->N, j->d);
        if (l == 0 || dist < bd) { bd = dist; best = l; }   /* <: the shallower run wins a tie */
    }
    for (int l = 0; l < j->L; l++) j->removed[l] = l >= best && l < best + j->k;
    return 0;
}

const fl_criterion fl_crit_angular = {
    .name = "angular", .desc = "Gromov et al.: remove the k consecutive blocks of least angular distance across them",
    .stats = FL_STATS_NONE, .structures = FL_STRUCT_BIT(FL_STRUCT_LAYERS), .select_depth = angular_select,
};
