/* matrix: every linear reconstructed alone, from its own input captured on
 * the sparse stream after the linears before it were recovered, by AdamW on
 * ||XW^T - XW'^T|| (fl_recover_adam, local.c). */
#include "recon.h"
#include "predict.h"

static int matrix_plan(const fl_config *c, const void *priv, fl_plan *p) {
    (void)priv;
    return fl_plan_linears(p, c);
}

const fl_reconstructor fl_rec_matrix = {
    .name = "matrix", .desc = "every linear alone, AdamW on ||XW^T - XW'^T||",
    .lr_class = FL_LR_LOCAL, .plan = matrix_plan, .recover = fl_recover_adam, .predict = fl_pred_linear_adam,
};
