/* The reconstructors. Each entry: name, description, granularity, routine. */
#include "recon.h"
#include "model/err.h"
#include <stdlib.h>
#include <string.h>

static int blocks_arg(const char *arg) {
    if (!arg) return 0;
    if (!strcmp(arg, "all")) return 0;
    char *e;
    long k = strtol(arg, &e, 10);
    if (*arg == 0 || *e || k < 1) return fl_err("blocks:%s: expected blocks:K with K >= 1, or blocks:all", arg);
    return 0;
}
static int blocks_k(const char *arg, int L) {
    if (!arg) return 1;
    if (!strcmp(arg, "all")) return L;
    int k = atoi(arg);
    return k > L ? L : k;
}
static int one_block(const char *arg, int L) { (void)arg; (void)L; return 1; }

static const fl_reconstructor rc_none = {
    .name = "none", .desc = "no recovery: prune block by block (the Wanda/SparseGPT reference pass)",
    .gran = FL_GRAN_NONE, .blocks_per_unit = one_block,
};
static const fl_reconstructor rc_matrix = {
    .name = "matrix", .desc = "every linear alone, AdamW on ||XW^T - XW'^T||",
    .gran = FL_GRAN_MATRIX, .recover = fl_recover_adam,
};
static const fl_reconstructor rc_matrix_ls = {
    .name = "matrix-ls", .desc = "every linear alone, exact masked least squares (Cholesky): the convex optimum",
    .gran = FL_GRAN_MATRIX, .recover = fl_recover_ls,
};
static const fl_reconstructor rc_sublayer = {
    .name = "sublayer", .desc = "attention and MLP parts of each block apart (the paper's 1/2), AdamW",
    .gran = FL_GRAN_SUBLAYER, .recover = fl_recover_adam,
};
static const fl_reconstructor rc_block = {
    .name = "block", .desc = "one transformer block at a time, AdamW",
    .gran = FL_GRAN_BLOCKS, .blocks_per_unit = one_block, .recover = fl_recover_adam,
};
static const fl_reconstructor rc_blocks = {
    .name = "blocks", .desc = "blocks:K consecutive blocks at a time (blocks:all = the whole decoder), AdamW",
    .gran = FL_GRAN_BLOCKS, .check_arg = blocks_arg, .blocks_per_unit = blocks_k, .recover = fl_recover_adam,
};

static const fl_reconstructor rc_retrain = {
    .name = "retrain", .desc = "retrain:full|bias-norm|lora|masklora[:rank=R,alpha=A]: prune everything, then train the whole model (cross-entropy)",
    .gran = FL_GRAN_RETRAIN, .check_arg = fl_retrain_check_arg, .blocks_per_unit = one_block,
};

const fl_reconstructor *const FL_RECONSTRUCTORS[] = {
    &rc_none, &rc_matrix, &rc_matrix_ls, &rc_sublayer, &rc_block, &rc_blocks, &rc_retrain, NULL,
};

int fl_recon_find(const char *spec, const fl_reconstructor **out, const char **arg) {
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    for (int i = 0; FL_RECONSTRUCTORS[i]; i++) {
        const fl_reconstructor *r = FL_RECONSTRUCTORS[i];
        if (strlen(r->name) != len || strncmp(r->name, spec, len)) continue;
        *out = r;
        *arg = colon ? colon + 1 : NULL;
        if (r->check_arg) return r->check_arg(*arg);
        if (*arg) return fl_err("reconstructor '%s' takes no argument (got '%s')", r->name, *arg);
        return 0;
    }
    char names[512] = "";
    for (int i = 0; FL_RECONSTRUCTORS[i]; i++) {
        strncat(names, i ? ", " : "", sizeof names - strlen(names) - 1);
        strncat(names, FL_RECONSTRUCTORS[i]->name, sizeof names - strlen(names) - 1);
    }
    return fl_err("unknown reconstructor '%.*s' (valid: %s; blocks:K, blocks:all, retrain:full, retrain:bias-norm, retrain:lora, retrain:masklora)", (int)len, spec, names);
}

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
const char *fl_gran_name(fl_gran g) {
    static const char *n[] = { "none", "matrix", "sublayer", "blocks", "retrain" };
    return n[g];
}
