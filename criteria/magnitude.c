/* magnitude: |W_ij|, the baseline every paper compares against; and
 * random: uniform scores from a seeded PRNG (the floor a criterion must
 * clear). */
#include "criterion.h"
#include "model/alloc.h"
#include "model/rng.h"
#include <math.h>

static int magnitude_prune(fl_prune_job *j) {
    int64_t n = (int64_t)j->rows * j->cols;
    float *s = fl_allocf((size_t)n);
    for (int64_t i = 0; i < n; i++) s[i] = fabsf(j->W[i]);
    fl_mask_from_scores(s, j->rows, j->cols, &j->pat, j->mask);
    fl_free(s);
    return 0;
}

const fl_criterion fl_crit_magnitude = {
    .name = "magnitude", .desc = "prune the smallest |W| (no calibration data)",
    .stats = FL_STATS_NONE, .prune = magnitude_prune,
};

static int random_prune(fl_prune_job *j) {
    int64_t n = (int64_t)j->rows * j->cols;
    float *s = fl_allocf((size_t)n);
    uint64_t st = j->seed ^ 0x5eed5eed5eedull;
    for (int64_t i = 0; i < n; i++) s[i] = (float)((fl_splitmix64(&st) >> 40) * (1.0 / 16777216.0));
    fl_mask_from_scores(s, j->rows, j->cols, &j->pat, j->mask);
    fl_free(s);
    return 0;
}

const fl_criterion fl_crit_random = {
    .name = "random", .desc = "prune uniformly at random (seeded): the floor any criterion must clear",
    .stats = FL_STATS_NONE, .prune = random_prune,
};
