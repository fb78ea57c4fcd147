/* The ladder's numbers (ladder.h). */
#include "ladder.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const CRIT[3] = { "magnitude", "wanda", "sparsegpt" };

/* The mean ppl of panel p's ok rows with this criterion, reconstructor and
 * seed; NAN without one. */
static double ppl_at(const fl_table *t, const fl_panel *p, const char *crit, const char *recon, const char *seed) {
    double s = 0;
    int n = 0;
    for (int r = 0; r < t->nrows; r++) {
        const char *sd = fl_table_get(t, r, "seed");
        double v = fl_table_num(t, r, "ppl");
        if (fl_row_matches(t, r, p, crit, recon) && sd && !strcmp(sd, seed) && isfinite(v)) { s += v; n++; }
    }
    return n ? s / n : NAN;
}

/* ppl(ca, ra) - ppl(cb, rb) paired by seed: mean and sample std over the
 * seeds both have. */
static fl_stat paired_gap(const fl_table *t, const fl_panel *p, const fl_names *seeds, const char *ca, const char *ra,
                          const char *cb, const char *rb) {
    fl_stat s = { NAN, NAN, 0 };
    if (!ra || !rb) return s;
    double d[256], sum = 0;
    for (int i = 0; i < seeds->n && s.n < 256; i++) {
        double a = ppl_at(t, p, ca, ra, seeds->v[i]), b = ppl_at(t, p, cb, rb, seeds->v[i]);
        if (isfinite(a) && isfinite(b)) { d[s.n] = a - b; sum += d[s.n++]; }
    }
    if (!s.n) return s;
    s.mean = sum / s.n;
    if (s.n > 1) {
        double ss = 0;
        for (int i = 0; i < s.n; i++) ss += (d[i] - s.mean) * (d[i] - s.mean);
        s.std = sqrt(ss / (s.n - 1));
    }
    return s;
}

/* The reconstructor (not none) with the lowest mean ppl for CRIT on panel p. */
static const char *best_recon(const fl_table *t, const fl_panel *p, const fl_names *recons, const char *crit) {
    const char *best = NULL;
    double bv = INFINITY;
    for (int k = 0; k < recons->n; k++) {
        if (!strcmp(recons->v[k], "none")) continue;
        fl_stat s = fl_stat_of(t, p, crit, recons->v[k], "ppl");
        if (s.n && s.mean < bv) { bv = s.mean; best = recons->v[k]; }
    }
    return best;
}

static int by_size(const void *a, const void *b) {
    const fl_rung *x = a, *y = b;
    return x->nonemb < y->nonemb ? -1 : x->nonemb > y->nonemb;
}

/* The first finite value of COL among panel p's ok rows. */
static double panel_num(const fl_table *t, const fl_panel *p, const char *col) {
    for (int r = 0; r < t->nrows; r++) {
        double v = fl_table_num(t, r, col);
        if (fl_row_matches(t, r, p, NULL, NULL) && isfinite(v)) return v;
    }
    return NAN;
}

static void fill_rung(const fl_table *t, const fl_names *recons, const fl_names *crits, const fl_names *seeds, fl_rung *g) {
    const fl_panel *p = &g->panel;
    for (int c = 0; c < 3; c++) g->best[c] = best_recon(t, p, recons, CRIT[c]);
    for (int k = 0; k < 2; k++) {
        g->gap[k][0] = paired_gap(t, p, seeds, CRIT[k], "none", "sparsegpt", "none");
        g->gap[k][1] = paired_gap(t, p, seeds, CRIT[k], g->best[k], "sparsegpt", g->best[2]);
    }
    for (int k = 0; k < recons->n && k < FL_LADDER_MAX_RECONS; k++) {
        double sum = 0;
        int n = 0;
        for (int c = 0; c < crits->n; c++) {
            fl_stat s = fl_stat_of(t, p, crits->v[c], recons->v[k], "ppl");
            double lo = INFINITY;
            for (int j = 0; j < recons->n; j++) {
                fl_stat o = fl_stat_of(t, p, crits->v[c], recons->v[j], "ppl");
                if (o.n && o.mean < lo) lo = o.mean;
            }
            if (s.n && lo > 0 && isfinite(lo)) { sum += s.mean / lo; n++; }
        }
        g->rel[k] = n ? sum / n : NAN;
        g->drift[k] = fl_stat_of(t, p, NULL, recons->v[k], "drift_out");
        double ss = 0;
        int nv = 0, groups = 0;
        for (int c = 0; c < crits->n; c++) {
            fl_stat s = fl_stat_of(t, p, crits->v[c], recons->v[k], "drift_out");
            if (!s.n) continue;
            if (s.n > 1 && isfinite(s.std)) ss += (s.n - 1) * s.std * s.std;
            nv += s.n;
            groups++;
        }
        g->drift_df[k] = nv - groups;
        g->drift_sw[k] = g->drift_df[k] > 0 ? sqrt(ss / g->drift_df[k]) : NAN;
        g->peak[k] = fl_stat_of(t, p, NULL, recons->v[k], "recovery_peak_bytes");
    }
}

int fl_ladders(const fl_table *t, fl_ladder **out, fl_names *recons) {
    *out = NULL;
    fl_names_of(t, "reconstruct", 0, recons);
    fl_names crits, seeds;
    fl_names_of(t, "criterion", 0, &crits);
    fl_names_of(t, "seed", 0, &seeds);
    fl_panel *ps;
    int np = fl_panels(t, &ps), nl = 0;
    fl_ladder *ls = calloc((size_t)(np ? np : 1), sizeof *ls);
    for (int i = 0; i < np; i++) {
        double ne = panel_num(t, &ps[i], "model_nonemb_params");
        if (!isfinite(ne) || ne <= 0) continue;   /* a file from before the size columns: no axis */
        double tt = panel_num(t, &ps[i], "model_train_tokens");
        int trained = isfinite(tt) && tt / ne >= FL_LADDER_TRAINED;
        int l = 0;
        /* one ladder per (sparsity, pattern, structure, regime): its rungs
         * are the panels that differ only in the model */
        while (l < nl && (fl_value_cmp(ls[l].sparsity, ps[i].sparsity) || fl_value_cmp(ls[l].pattern, ps[i].pattern) ||
                          strcmp(ls[l].structure, ps[i].structure) || ls[l].trained != trained))
            l++;
        if (l == nl) {
            fl_ladder *L = &ls[nl++];
            L->sparsity = ps[i].sparsity;
            L->pattern = ps[i].pattern;
            L->structure = ps[i].structure;
            L->trained = trained;
            int row = !strcmp(ps[i].pattern, "row") || strchr(ps[i].sparsity, ':'), st = strcmp(ps[i].structure, "none") != 0;
            char rl[48] = "", rt[16] = "";
            if (trained) {
                snprintf(rl, sizeof rl, ", %.0f+ tokens per parameter", FL_LADDER_TRAINED);
                snprintf(rt, sizeof rt, "_t%.0f", FL_LADDER_TRAINED);
            }
            snprintf(L->label, sizeof L->label, "sparsity %.80s%s%.80s%s%.32s%s", ps[i].sparsity, row ? "" : ", pattern ",
                     row ? "" : ps[i].pattern, st ? ", structure " : "", st ? ps[i].structure : "", rl);
            snprintf(L->tag, sizeof L->tag, "s%.30s%s%.30s%s%.24s%s", ps[i].sparsity, row ? "" : "_", row ? "" : ps[i].pattern,
                     st ? "_" : "", st ? ps[i].structure : "", rt);
            for (char *c = L->tag; *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' || *c == '_'))
                    *c = '-';
        }
        fl_ladder *L = &ls[l];
        if (L->nr == FL_LADDER_MAX_RUNGS) { L->dropped++; continue; }
        fl_rung *g = &L->r[L->nr++];
        memset(g, 0, sizeof *g);
        g->model = ps[i].model;
        g->panel = ps[i];
        g->nonemb = ne;
        g->params = panel_num(t, &ps[i], "model_params");
        double ly = panel_num(t, &ps[i], "model_layers");
        g->layers = isfinite(ly) ? (int)ly : 0;
        g->train_tokens = tt;
        fill_rung(t, recons, &crits, &seeds, g);
    }
    /* a ladder needs two rungs */
    int k = 0;
    for (int l = 0; l < nl; l++)
        if (ls[l].nr >= 2) {
            qsort(ls[l].r, (size_t)ls[l].nr, sizeof *ls[l].r, by_size);
            if (k != l) ls[k] = ls[l];
            k++;
        }
    free(ps);
    fl_names_free(&crits);
    fl_names_free(&seeds);
    if (!k) { free(ls); return 0; }
    *out = ls;
    return k;
}

double fl_ladder_slope(const double *x, const double *y, int n, int logx) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i]) || (logx && x[i] <= 0)) continue;
        double u = logx ? log10(x[i]) : x[i];
        sx += u; sy += y[i]; sxx += u * u; sxy += u * y[i];
        m++;
    }
    if (m < 2) return NAN;
    double den = m * sxx - sx * sx;
    return den > 0 ? (m * sxy - sx * sy) / den : NAN;
}
