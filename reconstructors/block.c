/* block: one transformer block at a time, by AdamW (fl_recover_adam,
 * local.c): the paper's "block size 1". Same as blocks:1. */
#include "recon.h"
#include "predict.h"

static int block_plan(const fl_config *c, const void *priv, fl_plan *p) {
    (void)priv;
    return fl_plan_ranges(p, c, 2);
}

const fl_reconstructor fl_rec_block = {
    .name = "block", .desc = "one transformer block at a time, AdamW",
    .lr_class = FL_LR_BLOCKS, .plan = block_plan, .recover = fl_recover_adam, .predict = fl_pred_range_adam,
};
