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

int fl_loss_parse(const char *s, fl_loss *out) {
    if (!strcmp(s, "mse")) *out = FL_LOSS_MSE;
    else if (!strcmp(s, "nmse")) *out = FL_LOSS_NMSE;
    else if (!strcmp(s, "cosine")) *out = FL_LOSS_COSINE;
    else return fl_err("unknown loss '%s' (valid: mse, nmse, cosine)", s);
    return 0;
}

const char *fl_prop_name(fl_prop p) { return p == FL_PROP_DENSE ? "dense" : p == FL_PROP_DENSE_TARGET ? "dense-target" : "sparse"; }
const char *fl_loss_name(fl_loss l) { return l == FL_LOSS_NMSE ? "nmse" : l == FL_LOSS_COSINE ? "cosine" : "mse"; }
