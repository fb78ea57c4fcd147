/* obs: the Optimal Brain Surgeon saliency (Hassibi & Stork, 1993) as a mask
 * only: score w_ij^2 / [H^-1]_jj with H = X^T X + damp * mean(diag) * I, the
 * error the layer's output gains when w_ij alone is removed and the other
 * weights of its row are optimally corrected. SparseGPT uses the same
 * saliency but prunes column block by column block and applies the
 * corrections; obs applies none, so comparing the two (each with and without
 * reconstruction) separates what SparseGPT gains from its mask and from its
 * weight update. It is also the README's worked example of a criterion. */
#include "criterion.h"
#include "model/alloc.h"
#include "model/err.h"
#include "model/lapack.h"
#include <string.h>

static int obs_prune(fl_prune_job *j) {
    const int R = j->rows, C = j->cols;
    float *H = fl_allocf((size_t)C * C), *s = fl_allocf((size_t)R * C);
    memcpy(H, j->st->gram, sizeof(float) * (size_t)C * C);
    double mean_diag = 0;
    for (int c = 0; c < C; c++) mean_diag += H[(int64_t)c * C + c] / C;
    for (int c = 0; c < C; c++) H[(int64_t)c * C + c] += (float)(0.01 * mean_diag + 1e-8);   /* SparseGPT's 1% damping */
    int n = C, info = 0;
    spotrf_("U", &n, H, &n, &info, 1);
    if (info == 0) spotri_("U", &n, H, &n, &info, 1);   /* only the diagonal is read: either triangle will do */
    if (info != 0) {
        fl_free(H); fl_free(s);
        return fl_err("criterion obs: X^T X + damping is not positive definite (LAPACK info %d)", info);
    }
    #pragma omp parallel for schedule(static)
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            float w = j->W[(int64_t)r * C + c];
            s[(int64_t)r * C + c] = w * w / H[(int64_t)c * C + c];
        }
    fl_mask_from_scores(s, R, C, &j->pat, j->mask);
    fl_free(H);
    fl_free(s);
    return 0;
}

const fl_criterion fl_crit_obs = {
    .name = "obs", .desc = "OBS saliency w^2/[H^-1]_jj as a mask, no weight update (SparseGPT's mask alone)",
    .stats = FL_STATS_GRAM, .prune = obs_prune,
};
