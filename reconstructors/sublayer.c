/* sublayer: the attention part (norm, q/k/v, attention, o, residual) and
 * the MLP part (norm, MLP, residual) of each block reconstructed apart, by
 * AdamW (fl_recover_adam, local.c): the paper's "block size 1/2". */
#include "recon.h"

const fl_reconstructor fl_rec_sublayer = {
    .name = "sublayer", .desc = "attention and MLP parts of each block apart (the paper's 1/2), AdamW",
    .gran = FL_GRAN_SUBLAYER, .recover = fl_recover_adam,
};
