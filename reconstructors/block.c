/* block: one transformer block at a time, by AdamW (fl_recover_adam,
 * local.c): the paper's "block size 1". Same as blocks:1. */
#include "recon.h"

const fl_reconstructor fl_rec_block = {
    .name = "block", .desc = "one transformer block at a time, AdamW",
    .gran = FL_GRAN_BLOCKS, .recover = fl_recover_adam,
};
