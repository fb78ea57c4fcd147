/* matrix-ls: every linear reconstructed alone, exactly: masked least
 * squares per output row (fl_recover_ls, ls.c), the convex optimum that
 * `matrix` approaches with AdamW. The same plan as matrix. */
#include "recon.h"
#include "predict.h"

static int matrix_ls_plan(const fl_config *c, const void *priv, fl_plan *p) {
    (void)priv;
    return fl_plan_linears(p, c);
}

const fl_reconstructor fl_rec_matrix_ls = {
    .name = "matrix-ls", .desc = "every linear alone, exact masked least squares (Cholesky): the convex optimum",
    .flags = FL_REC_SOLVES, .lr_class = FL_LR_LOCAL, .plan = matrix_ls_plan, .recover = fl_recover_ls, .predict = fl_pred_linear_ls,
};
