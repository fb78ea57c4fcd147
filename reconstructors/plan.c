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

int fl_plan_range(fl_plan *p, const fl_config *c, int s0, int s1) {
    if (s0 < 0 || s1 > 2 * c->n_layer || s0 >= s1)
        return fl_err("plan: sublayers [%d, %d) are not a range of the decoder's %d", s0, s1, 2 * c->n_layer);
    fl_plan_unit *u = add(p);
    if (!u) return fl_err("plan: out of memory");
    u->kind = FL_UNIT_RANGE;
    u->s0 = s0;
    u->s1 = s1;
    u->recover = 1;
    range_name(u->name, sizeof u->name, s0, s1);
    return 0;
}

int fl_plan_ranges(fl_plan *p, const fl_config *c, int sub) {
    if (sub < 1) return fl_err("plan: a unit must span at least one sublayer (got %d)", sub);
    const int S = 2 * c->n_layer;
    for (int s0 = 0; s0 < S; s0 += sub)
        if (fl_plan_range(p, c, s0, s0 + sub < S ? s0 + sub : S) != 0) return -1;
    return 0;
}

int fl_plan_linears(fl_plan *p, const fl_config *c) {
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
            u->recover = 1;
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

/* The deepest block a recovery unit touches (a model unit: the last). */
static int last_block(const fl_plan_unit *u, const fl_config *c) {
    return u->kind == FL_UNIT_MODEL ? c->n_layer - 1 : (u->s1 - 1) / 2;
}

/* Pruning is the walk's, not the plug-in's (docs/ARCHITECTURE.md, "One
 * cell"): each block is pruned whole, from one pass through the still-dense
 * block, just before the first recovery unit that reaches into it, as the
 * Wanda/SparseGPT reference pass does. So a unit's masks never depend on
 * how the units before it inside the same block were recovered. */
int fl_plan_add_pruning(fl_plan *p, const fl_config *c) {
    fl_plan out = { 0 };
    int next = 0, rc = 0;   /* the next block to prune */
    for (int j = 0; j <= p->n && rc == 0; j++) {
        const int upto = j < p->n ? last_block(&p->u[j], c) : c->n_layer - 1;
        for (; next <= upto && rc == 0; next++) {
            fl_plan_unit *u = add(&out);
            if (!u) { rc = fl_err("plan: out of memory"); break; }
            u->kind = FL_UNIT_RANGE;
            u->s0 = 2 * next;
            u->s1 = 2 * next + 2;
            u->prune = 1;
            snprintf(u->name, sizeof u->name, "prune layers.%d", next);
        }
        if (j < p->n && rc == 0) {
            fl_plan_unit *u = add(&out);
            if (!u) rc = fl_err("plan: out of memory");
            else *u = p->u[j];
        }
    }
    if (rc != 0) { fl_plan_free(&out); return -1; }
    fl_plan_free(p);
    *p = out;
    return 0;
}

int fl_plan_check(const fl_plan *p, const fl_config *c, const char *who) {
    fl_linear_shape sh[7];
    const int k = fl_config_linears(c, sh), S = 2 * c->n_layer;
    int rc = 0, last_s = 0, pruned = 0;   /* pruned: blocks [0, pruned) are */
    for (int j = 0; j < p->n && rc == 0; j++) {
        const fl_plan_unit *u = &p->u[j];
        if (u->prune) {
            /* a prune unit: the next block, whole, and nothing else */
            if (u->kind != FL_UNIT_RANGE || u->recover || u->s0 % 2 || u->s1 != u->s0 + 2)
                rc = fl_err("%s: plan unit %s: only a whole block is pruned, by a unit that recovers nothing", who, u->name);
            else if (u->s0 != 2 * pruned)
                rc = fl_err("%s: plan unit %s prunes layers.%d out of order (layers.%d is next)", who, u->name, u->s0 / 2, pruned);
            else pruned++;
            continue;
        }
        if (!u->recover) { rc = fl_err("%s: plan unit %s neither prunes nor recovers", who, u->name); break; }
        if (u->kind == FL_UNIT_MODEL) {
            if (pruned != c->n_layer) rc = fl_err("%s: plan unit %s comes before every block is pruned", who, u->name);
            continue;
        }
        if (u->s0 < 0 || u->s1 > S || u->s0 >= u->s1)
            rc = fl_err("%s: plan unit %s spans sublayers [%d, %d) outside the decoder's %d", who, u->name, u->s0, u->s1, S);
        else if (u->s0 < last_s)
            rc = fl_err("%s: plan unit %s comes after a unit deeper in the decoder", who, u->name);
        else if (u->kind == FL_UNIT_LINEAR && (u->layer != u->s0 / 2 || u->lin < 0 || u->lin >= k || sh[u->lin].sub != u->s0 % 2))
            rc = fl_err("%s: plan unit %s names no linear of its sublayer", who, u->name);
        /* its target comes from the dense weights the walk keeps for it,
         * its statistics were the block's: its blocks are pruned already */
        else if ((u->s1 + 1) / 2 > pruned)
            rc = fl_err("%s: plan unit %s is recovered before layers.%d is pruned", who, u->name, (u->s1 - 1) / 2);
        /* a linear unit may share its sublayer with the next one; a range
         * ends where it ends */
        last_s = u->kind == FL_UNIT_LINEAR ? u->s0 : u->s1;
    }
    if (rc == 0 && pruned != c->n_layer)
        rc = fl_err("%s: the plan prunes %d of the decoder's %d blocks (every block exactly once)", who, pruned, c->n_layer);
    return rc;
}

void fl_plan_last_use(const fl_plan *p, const fl_config *c, int *last_use) {
    fl_linear_shape sh[7];
    const int k = fl_config_linears(c, sh);
    for (int q = 0; q < c->n_layer * 7; q++) last_use[q] = -1;
    for (int j = 0; j < p->n; j++) {
        const fl_plan_unit *u = &p->u[j];
        if (!u->recover || u->kind == FL_UNIT_MODEL) continue;
        for (int l = u->s0 / 2; l <= (u->s1 - 1) / 2; l++)
            for (int i = 0; i < k; i++) {
                int s = 2 * l + sh[i].sub;
                if (u->kind == FL_UNIT_LINEAR ? (l == u->layer && i == u->lin) : (s >= u->s0 && s < u->s1)) last_use[l * 7 + i] = j;
            }
    }
}

void fl_plan_free(fl_plan *p) {
    free(p->u);
    memset(p, 0, sizeof *p);
}
