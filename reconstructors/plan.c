/* Plans: the units a reconstructor recovers, in depth order, built from a
 * model's config alone (so a dry run can plan a model it never loads).
 * The builders below are what every plug-in's plan() is made of; the cell
 * (harness/cell.c) and the memory planner (predict.c) walk the result. */
#include "recon.h"
#include "model/err.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static fl_plan_unit *add(fl_plan *p) {
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        fl_plan_unit *u = realloc(p->u, sizeof *u * (size_t)cap);
        if (!u) return NULL;
        p->u = u;
        p->cap = cap;
    }
    fl_plan_unit *u = &p->u[p->n++];
    memset(u, 0, sizeof *u);
    return u;
}

/* The names a report shows: one part, one block, or blocks i-j. */
static void range_name(char *dst, size_t n, int s0, int s1) {
    if (s1 - s0 == 1) snprintf(dst, n, "layers.%d.%s", s0 / 2, s0 % 2 ? "mlp" : "attn");
    else if (s1 - s0 == 2 && s0 % 2 == 0) snprintf(dst, n, "layers.%d", s0 / 2);
    else snprintf(dst, n, "layers.%d-%d", s0 / 2, (s1 - 1) / 2);
}

int fl_plan_range(fl_plan *p, const fl_config *c, int s0, int s1, int prune, int recover) {
    if (s0 < 0 || s1 > 2 * c->n_layer || s0 >= s1)
        return fl_err("plan: sublayers [%d, %d) are not a range of the decoder's %d", s0, s1, 2 * c->n_layer);
    fl_plan_unit *u = add(p);
    if (!u) return fl_err("plan: out of memory");
    u->kind = FL_UNIT_RANGE;
    u->s0 = s0;
    u->s1 = s1;
    u->prune = prune;
    u->recover = recover;
    range_name(u->name, sizeof u->name, s0, s1);
    return 0;
}

int fl_plan_ranges(fl_plan *p, const fl_config *c, int sub, int prune, int recover) {
    if (sub < 1) return fl_err("plan: a unit must span at least one sublayer (got %d)", sub);
    const int S = 2 * c->n_layer;
    for (int s0 = 0; s0 < S; s0 += sub)
        if (fl_plan_range(p, c, s0, s0 + sub < S ? s0 + sub : S, prune, recover) != 0) return -1;
    return 0;
}

int fl_plan_linears(fl_plan *p, const fl_config *c, int prune, int recover) {
    fl_linear_shape sh[7];
    const int k = fl_config_linears(c, sh);
    for (int l = 0; l < c->n_layer; l++)
        for (int i = 0; i < k; i++) {
            fl_plan_unit *u = add(p);
            if (!u) return fl_err("plan: out of memory");
            u->kind = FL_UNIT_LINEAR;
            u->s0 = 2 * l + sh[i].sub;
            u->s1 = u->s0 + 1;
            u->layer = l;
            u->lin = i;
            u->prune = prune;
            u->recover = recover;
            snprintf(u->name, sizeof u->name, "layers.%d.%s", l, sh[i].name);
        }
    return 0;
}

int fl_plan_model(fl_plan *p, const char *name) {
    fl_plan_unit *u = add(p);
    if (!u) return fl_err("plan: out of memory");
    u->kind = FL_UNIT_MODEL;
    u->recover = 1;
    snprintf(u->name, sizeof u->name, "%s", name);
    return 0;
}

int fl_plan_retrain(fl_plan *p, const fl_config *c, const char *name) {
    if (fl_plan_ranges(p, c, 2, 1, 0) != 0) return -1;
    return fl_plan_model(p, name);
}

int fl_plan_check(const fl_plan *p, const fl_config *c, const char *who) {
    fl_linear_shape sh[7];
    const int k = fl_config_linears(c, sh), S = 2 * c->n_layer;
    /* pruned[l*7+i]: how many units prune linear i of block l */
    unsigned char *pruned = calloc((size_t)c->n_layer * 7, 1);
    if (!pruned) return fl_err("plan: out of memory");
    int rc = 0, last_s = 0;
    for (int j = 0; j < p->n && rc == 0; j++) {
        const fl_plan_unit *u = &p->u[j];
        if (u->kind == FL_UNIT_MODEL) {
            if (u->prune) rc = fl_err("%s: plan unit %s: a model unit cannot prune (nothing collects its statistics)", who, u->name);
            continue;
        }
        if (u->s0 < 0 || u->s1 > S || u->s0 >= u->s1)
            rc = fl_err("%s: plan unit %s spans sublayers [%d, %d) outside the decoder's %d", who, u->name, u->s0, u->s1, S);
        else if (u->s0 < last_s)
            rc = fl_err("%s: plan unit %s comes after a unit deeper in the decoder", who, u->name);
        else if (u->kind == FL_UNIT_LINEAR && (u->layer != u->s0 / 2 || u->lin < 0 || u->lin >= k || sh[u->lin].sub != u->s0 % 2))
            rc = fl_err("%s: plan unit %s names no linear of its sublayer", who, u->name);
        /* the walk computes a unit's target from its still-dense weights
         * just before pruning them: it keeps no dense copy for a unit an
         * earlier unit pruned (docs/ARCHITECTURE.md, "One cell") */
        else if (u->recover && !u->prune)
            rc = fl_err("%s: plan unit %s recovers without pruning: its linears would already be pruned "
                        "when its target is computed (not supported yet)", who, u->name);
        if (rc) break;
        /* a linear unit may share its sublayer with the next one; a range
         * ends where it ends */
        last_s = u->kind == FL_UNIT_LINEAR ? u->s0 : u->s1;
        if (!u->prune) continue;
        for (int l = u->s0 / 2; l <= (u->s1 - 1) / 2; l++)
            for (int i = 0; i < k; i++) {
                int s = 2 * l + sh[i].sub;
                int in = u->kind == FL_UNIT_LINEAR ? (l == u->layer && i == u->lin) : (s >= u->s0 && s < u->s1);
                if (in) pruned[l * 7 + i]++;
            }
    }
    for (int l = 0; l < c->n_layer && rc == 0; l++)
        for (int i = 0; i < k && rc == 0; i++)
            if (pruned[l * 7 + i] != 1)
                rc = fl_err("%s: the plan prunes layers.%d.%s %d times (every block linear exactly once)", who, l, sh[i].name,
                            pruned[l * 7 + i]);
    free(pruned);
    return rc;
}

void fl_plan_free(fl_plan *p) {
    free(p->u);
    memset(p, 0, sizeof *p);
}
