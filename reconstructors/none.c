/* none: no recovery. The cell still walks the decoder block by block,
 * collecting each block's statistics on the sparse stream and pruning it:
 * the one-shot pass of Wanda and SparseGPT, the reference every
 * reconstructor is compared against. */
#include "recon.h"

const fl_reconstructor fl_rec_none = {
    .name = "none", .desc = "no recovery: prune block by block (the Wanda/SparseGPT reference pass)",
    .gran = FL_GRAN_NONE,
};
