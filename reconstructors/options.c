/* The recovery options every reconstructor shares: propagation mode and
 * reconstruction loss. */
#include "recon.h"
#include "model/err.h"
#include <string.h>

int fl_prop_parse(const char *s, fl_prop *out) {
    if (!strcmp(s, "sparse")) *out = FL_PROP_SPARSE;
    else if (!strcmp(s, "dense")) *out = FL_PROP_DENSE;
    else if (!strcmp(s, "dense-target")) *out = FL_PROP_DENSE_TARGET;
    else return fl_err("unknown propagation '%s' (valid: sparse, dense, dense-target)", s);
    return 0;
}

/* mse_normalized is the name the paper's code gives a normalised MSE
 * (ZIB-IOL/Free-Lunch-in-LLM-Compression, main.py: loss_fn "ce, mse,
 * mse_normalized, cosine, ..."), accepted here as an alias of nmse. Their
 * published code never defines it: reconstruct_weights (prune_methods.py)
 * builds nn.MSELoss(reduction="mean") for mse and -mean(cosine similarity
 * over the last dim) for cosine, and raises on any other name, so its
 * denominator could not be checked against ours. Ours (fl_recon_loss) is
 * per optimiser batch: sum (y - t)^2 / sum t^2 over every element of the
 * batch (not per row or per token). Their cosine is ours minus 1: the same
 * gradient. */
int fl_loss_parse(const char *s, fl_loss *out) {
    if (!strcmp(s, "mse")) *out = FL_LOSS_MSE;
    else if (!strcmp(s, "nmse") || !strcmp(s, "mse_normalized")) *out = FL_LOSS_NMSE;
    else if (!strcmp(s, "cosine")) *out = FL_LOSS_COSINE;
    else return fl_err("unknown loss '%s' (valid: mse, nmse (alias mse_normalized), cosine)", s);
    return 0;
}

const char *fl_prop_name(fl_prop p) { return p == FL_PROP_DENSE ? "dense" : p == FL_PROP_DENSE_TARGET ? "dense-target" : "sparse"; }
const char *fl_loss_name(fl_loss l) { return l == FL_LOSS_NMSE ? "nmse" : l == FL_LOSS_COSINE ? "cosine" : "mse"; }
