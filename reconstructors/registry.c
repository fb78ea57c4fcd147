/* The table of reconstructors, and opening one from its spec. One line per
 * reconstructor; each is defined in its own file as
 * `const fl_reconstructor fl_rec_<name>`. */
#include "recon.h"
#include "model/err.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const fl_reconstructor fl_rec_none, fl_rec_matrix, fl_rec_matrix_ls, fl_rec_sublayer, fl_rec_block,
    fl_rec_blocks, fl_rec_retrain_full, fl_rec_retrain_bias_norm, fl_rec_retrain_lora, fl_rec_retrain_masklora;

const fl_reconstructor *const FL_RECONSTRUCTORS[] = {
    &fl_rec_none,
    &fl_rec_matrix,
    &fl_rec_matrix_ls,
    &fl_rec_sublayer,
    &fl_rec_block,
    &fl_rec_blocks,
    &fl_rec_retrain_full,
    &fl_rec_retrain_bias_norm,
    &fl_rec_retrain_lora,
    &fl_rec_retrain_masklora,
    NULL,
};

/* Does spec start with name, followed by its end, ':' or ','? Then the
 * length matched, else 0. */
static size_t match(const char *spec, const char *name) {
    size_t n = name ? strlen(name) : 0;
    if (!n || strncmp(spec, name, n) || (spec[n] && spec[n] != ':' && spec[n] != ',')) return 0;
    return n;
}

int fl_recon_open(const char *spec, fl_recon_inst *out) {
    memset(out, 0, sizeof *out);
    const fl_reconstructor *best = NULL;
    size_t blen = 0;
    for (int i = 0; FL_RECONSTRUCTORS[i]; i++) {
        const fl_reconstructor *r = FL_RECONSTRUCTORS[i];
        size_t a = match(spec, r->name), b = match(spec, r->alias);
        if (b > a) a = b;
        if (a > blen) { best = r; blen = a; }
    }
    char names[512] = "";
    for (int i = 0; FL_RECONSTRUCTORS[i]; i++) {
        strncat(names, i ? ", " : "", sizeof names - strlen(names) - 1);
        strncat(names, FL_RECONSTRUCTORS[i]->name, sizeof names - strlen(names) - 1);
    }
    if (!best) {
        size_t len = strcspn(spec, ":,");
        return fl_err("unknown reconstructor '%.*s' (valid: %s; blocks takes K or all, e.g. blocks:2, blocks:all)",
                      (int)(len > 200 ? 200 : len), spec, names);
    }
    const char *text = spec[blen] ? spec + blen + 1 : NULL;
    char what[96];
    snprintf(what, sizeof what, "reconstructor %s", best->name);
    /* "retrain:loraa" reaches retrain:full through its alias: say both */
    if (!best->options && text)
        return fl_err("%s takes no options (got '%.100s'); valid reconstructors: %s", what, text, names);
    void *priv = best->priv_size ? calloc(1, best->priv_size) : NULL;
    if (best->priv_size && !priv) return fl_err("%s: out of memory", what);
    if ((best->options && fl_opts_parse(best->options, what, text, priv) != 0) || (best->init && best->init(priv) != 0)) {
        free(priv);
        return -1;
    }
    out->r = best;
    out->priv = priv;
    return 0;
}

int fl_recon_check(const char *spec) {
    fl_recon_inst in;
    if (fl_recon_open(spec, &in) != 0) return -1;
    fl_recon_close(&in);
    return 0;
}

void fl_recon_close(fl_recon_inst *in) {
    free(in->priv);
    memset(in, 0, sizeof *in);
}

int fl_recon_plan(const fl_recon_inst *in, const fl_config *c, fl_plan *plan) {
    memset(plan, 0, sizeof *plan);
    int rc = in->r->plan(c, in->priv, plan);
    for (int i = 0; i < plan->n && rc == 0; i++)
        if (plan->u[i].prune)
            rc = fl_err("%s: plan unit %s prunes: a plug-in's plan lists what it recovers; the walk prunes "
                        "block by block (fl_plan_add_pruning)", in->r->name, plan->u[i].name);
    if (rc != 0 || fl_plan_add_pruning(plan, c) != 0 || fl_plan_check(plan, c, in->r->name) != 0) {
        fl_plan_free(plan);
        return -1;
    }
    return 0;
}
