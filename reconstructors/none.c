/* none: no recovery. Its plan is empty: the walk still prunes the decoder
 * block by block (fl_plan_add_pruning), each block from its statistics on
 * the prune stream: the one-shot pass of Wanda and SparseGPT, the
 * reference every reconstructor is compared against. */
#include "recon.h"

static int none_plan(const fl_config *c, const void *priv, fl_plan *p) {
    (void)c; (void)priv; (void)p;
    return 0;
}

const fl_reconstructor fl_rec_none = {
    .name = "none", .desc = "no recovery: prune block by block (the Wanda/SparseGPT reference pass)",
    .plan = none_plan,
};
