/* The table of criteria. One line per criterion; each is defined in its own
 * file as `const fl_criterion fl_crit_<name>`. */
#include "criterion.h"
#include "model/err.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const fl_criterion fl_crit_magnitude, fl_crit_random;
extern const fl_criterion fl_crit_wanda, fl_crit_ria, fl_crit_sparsegpt;
extern const fl_criterion fl_crit_sparseswaps, fl_crit_sparsefw, fl_crit_obs;
extern const fl_criterion fl_crit_magnitude_sp, fl_crit_wanda_sp, fl_crit_flap;
extern const fl_criterion fl_crit_block_influence, fl_crit_angular, fl_crit_layer_ppl;

const fl_criterion *const FL_CRITERIA[] = {
    &fl_crit_magnitude,
    &fl_crit_random,
    &fl_crit_wanda,
    &fl_crit_ria,
    &fl_crit_sparsegpt,
    &fl_crit_sparseswaps,
    &fl_crit_sparsefw,
    &fl_crit_obs,
    &fl_crit_magnitude_sp,
    &fl_crit_wanda_sp,
    &fl_crit_flap,
    &fl_crit_block_influence,
    &fl_crit_angular,
    &fl_crit_layer_ppl,
    NULL,
};

const fl_criterion *fl_criterion_find(const char *spec, const char **text) {
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (text) *text = colon ? colon + 1 : NULL;
    for (int i = 0; FL_CRITERIA[i]; i++)
        if (strlen(FL_CRITERIA[i]->name) == len && !strncmp(FL_CRITERIA[i]->name, spec, len)) return FL_CRITERIA[i];
    char names[512] = "";
    for (int i = 0; FL_CRITERIA[i]; i++) {
        strncat(names, i ? ", " : "", sizeof names - strlen(names) - 1);
        strncat(names, FL_CRITERIA[i]->name, sizeof names - strlen(names) - 1);
    }
    fl_err("unknown criterion '%.*s' (valid: %s)", len > 64 ? 64 : (int)len, spec, names);
    return NULL;
}

int fl_criterion_open(const char *spec, fl_crit_inst *out) {
    memset(out, 0, sizeof *out);
    const char *text;
    const fl_criterion *c = fl_criterion_find(spec, &text);
    if (!c) return -1;
    void *priv = NULL;
    if (c->priv_size && !(priv = calloc(1, c->priv_size))) return fl_err("criterion %s: out of memory", c->name);
    char what[96];
    snprintf(what, sizeof what, "criterion %s", c->name);
    if (fl_opts_parse(c->options, what, text, priv) != 0 || (c->init && c->init(priv) != 0)) {
        free(priv);
        return -1;
    }
    out->crit = c;
    out->priv = priv;
    return 0;
}

void fl_criterion_close(fl_crit_inst *ci) {
    if (!ci) return;
    if (ci->crit && ci->crit->uninit) ci->crit->uninit(ci->priv);
    free(ci->priv);
    ci->crit = NULL;
    ci->priv = NULL;
}

fl_stats_kind fl_criterion_stats(const fl_crit_inst *ci) {
    return ci->crit->stats_for ? ci->crit->stats_for(ci->priv) : ci->crit->stats;
}

int fl_criterion_run(const fl_crit_inst *ci, fl_prune_job *job) {
    const fl_criterion *c = ci->crit;
    char what[96];
    snprintf(what, sizeof what, "criterion %s", c->name);
    if (!c->prune) return fl_err("%s removes whole structures: give --structure heads, channels or layers", what);
    if (fl_pattern_check(&job->pat, job->rows, job->cols, what) != 0) return -1;
    fl_stats_kind need = fl_criterion_stats(ci);
    if (need != FL_STATS_NONE && (!job->st || job->st->kind < need || job->st->cols != job->cols))
        return fl_err("%s: calibration statistics missing or of the wrong width", what);
    job->priv = ci->priv;
    if (c->prune(job) != 0) return -1;
    int64_t n = (int64_t)job->rows * job->cols;
    for (int64_t i = 0; i < n; i++)
        if (!job->mask[i]) job->W[i] = 0.0f;
    return fl_mask_check(job->mask, job->rows, job->cols, &job->pat, what);
}
