/* blocks:K: K consecutive blocks at a time (the last unit may be shorter),
 * blocks:all the whole decoder as one unit, by AdamW (fl_recover_adam,
 * local.c): the paper's larger block sizes, up to "L". */
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

const fl_reconstructor fl_rec_blocks = {
    .name = "blocks", .desc = "blocks:K consecutive blocks at a time (blocks:all = the whole decoder), AdamW",
    .gran = FL_GRAN_BLOCKS, .check_arg = blocks_arg, .blocks_per_unit = blocks_k, .recover = fl_recover_adam,
};
