/* matrix: every linear reconstructed alone, from its own input captured on
 * the sparse stream after the linears before it were recovered, by AdamW on
 * ||XW^T - XW'^T|| (fl_recover_adam, local.c). */
#include "recon.h"

const fl_reconstructor fl_rec_matrix = {
    .name = "matrix", .desc = "every linear alone, AdamW on ||XW^T - XW'^T||",
    .gran = FL_GRAN_MATRIX, .recover = fl_recover_adam,
};
