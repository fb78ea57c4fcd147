/* matrix-ls: every linear reconstructed alone, exactly: masked least
 * squares per output row (fl_recover_ls, ls.c), the convex optimum that
 * `matrix` approaches with AdamW. */
#include "recon.h"

const fl_reconstructor fl_rec_matrix_ls = {
    .name = "matrix-ls", .desc = "every linear alone, exact masked least squares (Cholesky): the convex optimum",
    .gran = FL_GRAN_MATRIX, .recover = fl_recover_ls,
};
