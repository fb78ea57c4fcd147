/* blocks:K: K consecutive blocks at a time (the last unit may be shorter),
 * blocks:all the whole decoder as one unit, by AdamW (fl_recover_adam,
 * local.c): the paper's larger block sizes, up to "L". */
#include "recon.h"
#include "predict.h"
#include <stddef.h>

typedef struct { int k; } blocks_opts;   /* 0 = all */

static const fl_option blocks_options[] = {
    { .name = "k", .help = "blocks per unit, or all (the whole decoder)", .type = FL_OPT_INT_ALL,
      .offset = offsetof(blocks_opts, k), .def = 1, .min = 1, .max = 1 << 20 },
    { 0 },
};

static int blocks_plan(const fl_config *c, const void *priv, fl_plan *p) {
    const blocks_opts *o = priv;
    int k = o->k == 0 || o->k > c->n_layer ? c->n_layer : o->k;
    return fl_plan_ranges(p, c, 2 * k);
}

const fl_reconstructor fl_rec_blocks = {
    .name = "blocks", .desc = "blocks:K consecutive blocks at a time (blocks:all = the whole decoder), AdamW",
    .options = blocks_options, .priv_size = sizeof(blocks_opts),
    .lr_class = FL_LR_BLOCKS, .plan = blocks_plan, .recover = fl_recover_adam, .predict = fl_pred_range_adam,
};
