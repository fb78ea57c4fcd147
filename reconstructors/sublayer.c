/* sublayer: the attention part (norm, q/k/v, attention, o, residual) and
 * the MLP part (norm, MLP, residual) of each block reconstructed apart, by
 * AdamW (fl_recover_adam, local.c): the paper's "block size 1/2". */
#include "recon.h"
#include "predict.h"

static int sublayer_plan(const fl_config *c, const void *priv, fl_plan *p) {
    (void)priv;
    return fl_plan_ranges(p, c, 1);
}

const fl_reconstructor fl_rec_sublayer = {
    .name = "sublayer", .desc = "attention and MLP parts of each block apart (the paper's 1/2), AdamW",
    .lr_class = FL_LR_LOCAL, .plan = sublayer_plan, .recover = fl_recover_adam, .predict = fl_pred_range_adam,
};
