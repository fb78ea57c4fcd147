/* none: no recovery. The cell still walks the decoder block by block,
 * collecting each block's statistics on the sparse stream and pruning it:
 * the one-shot pass of Wanda and SparseGPT, the reference every
 * reconstructor is compared against. */
#include "recon.h"

static int none_plan(const fl_config *c, const void *priv, fl_plan *p) {
    (void)priv;
    return fl_plan_ranges(p, c, 2, 1, 0);
}

const fl_reconstructor fl_rec_none = {
    .name = "none", .desc = "no recovery: prune block by block (the Wanda/SparseGPT reference pass)",
    .plan = none_plan,
};
