/* layer-ppl: greedy removal by calibration loss. Each round drops, of the
 * blocks still in, the one whose removal raises the calibration loss
 * least (the loss of the model without every block removed so far and
 * it), until k are gone: k rounds of up to L forward passes. */
#include "criterion.h"
#include "model/err.h"
#include <stdio.h>

static int layer_ppl_select(fl_depth_job *j) {
    if (!j->loss_without) return fl_err("layer-ppl: no calibration loss to measure blocks with");
    for (int l = 0; l < j->L; l++) j->removed[l] = 0;
    for (int r = 0; r < j->k; r++) {
        int best = -1;
        double bl = 0;
        for (int l = 0; l < j->L; l++) {
            if (j->removed[l]) continue;
            j->removed[l] = 1;
            double loss;
            int rc = j->loss_without(j->ctx, j->removed, &loss);
            j->removed[l] = 0;
            if (rc != 0) return -1;
            if (best < 0 || loss < bl) { bl = loss; best = l; }   /* <: the lower index wins a tie */
        }
        j->removed[best] = 1;
        if (j->verbose) fprintf(stderr, "layer-ppl: round %d removes layers.%d (calibration loss %.5f)\n", r + 1, best, bl);
    }
    return 0;
}

const fl_criterion fl_crit_layer_ppl = {
    .name = "layer-ppl", .desc = "remove blocks greedily, each round the one whose removal raises calibration loss least",
    .stats = FL_STATS_NONE, .structures = FL_STRUCT_BIT(FL_STRUCT_LAYERS), .select_depth = layer_ppl_select,
};
