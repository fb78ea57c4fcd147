/* The table of criteria. One line per criterion; each is defined in its own
 * file as `const fl_criterion fl_crit_<name>`. */
#include "criterion.h"
#include "model/err.h"
#include <stdio.h>
#include <string.h>

extern const fl_criterion fl_crit_magnitude, fl_crit_random;
extern const fl_criterion fl_crit_wanda, fl_crit_ria, fl_crit_sparsegpt;
extern const fl_criterion fl_crit_sparseswaps, fl_crit_sparsefw, fl_crit_obs;

const fl_criterion *const FL_CRITERIA[] = {
    &fl_crit_magnitude,
    &fl_crit_random,
    &fl_crit_wanda,
    &fl_crit_ria,
    &fl_crit_sparsegpt,
    &fl_crit_sparseswaps,
    &fl_crit_sparsefw,
    &fl_crit_obs,
    NULL,
};

int fl_criterion_find(const char *spec, const fl_criterion **out, const char **arg) {
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    for (int i = 0; FL_CRITERIA[i]; i++)
        if (strlen(FL_CRITERIA[i]->name) == len && !strncmp(FL_CRITERIA[i]->name, spec, len)) {
            *out = FL_CRITERIA[i];
            *arg = colon ? colon + 1 : NULL;
            if (FL_CRITERIA[i]->check_arg && FL_CRITERIA[i]->check_arg(*arg) != 0) return -1;
            if (!FL_CRITERIA[i]->check_arg && *arg)
                return fl_err("criterion '%s' takes no argument (got '%s')", FL_CRITERIA[i]->name, *arg);
            return 0;
        }
    char names[512] = "";
    for (int i = 0; FL_CRITERIA[i]; i++) {
        strncat(names, i ? ", " : "", sizeof names - strlen(names) - 1);
        strncat(names, FL_CRITERIA[i]->name, sizeof names - strlen(names) - 1);
    }
    return fl_err("unknown criterion '%.*s' (valid: %s)", (int)len, spec, names);
}

fl_stats_kind fl_criterion_stats(const fl_criterion *c, const char *arg) {
    return c->stats_for ? c->stats_for(arg) : c->stats;
}

int fl_criterion_run(const fl_criterion *c, fl_prune_job *job) {
    char what[96];
    snprintf(what, sizeof what, "criterion %s", c->name);
    if (fl_pattern_check(&job->pat, job->rows, job->cols, what) != 0) return -1;
    fl_stats_kind need = fl_criterion_stats(c, job->arg);
    if (need != FL_STATS_NONE && (!job->st || job->st->kind < need || job->st->cols != job->cols))
        return fl_err("%s: calibration statistics missing or of the wrong width", what);
    if (c->prune(job) != 0) return -1;
    int64_t n = (int64_t)job->rows * job->cols;
    for (int64_t i = 0; i < n; i++)
        if (!job->mask[i]) job->W[i] = 0.0f;
    return fl_mask_check(job->mask, job->rows, job->cols, &job->pat, what);
}
