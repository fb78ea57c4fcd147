/* Activation drift between a pruned model and its dense original; see drift.h. */
#include "drift.h"
#include "model/alloc.h"
#include "model/err.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The inputs of one sublayer's sites, copied out of its forward pass. */
typedef struct { float *dst[4]; } site_copy;

static void copy_hook(void *ctx, int layer, fl_site site, const float *x, int N, int cols) {
    (void)layer;
    site_copy *sc = ctx;
    if (sc->dst[site]) memcpy(sc->dst[site], x, sizeof(float) * (size_t)N * cols);
}

static double sq_diff(const float *a, const float *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) { double t = (double)a[i] - b[i]; s += t * t; }
    return s;
}

static double sq(const float *a, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * a[i];
    return s;
}

static double ratio(double num, double den) { return den > 0 ? num / den : 0.0; }

/* Same architecture: every block linear of the same shape, biases alike. */
static int same_shapes(fl_model *p, fl_model *d) {
    const fl_config *a = &p->cfg, *b = &d->cfg;
    if (a->family != b->family || a->d != b->d || a->n_layer != b->n_layer || a->n_head != b->n_head ||
        a->n_kv_head != b->n_kv_head || a->head_dim != b->head_dim || a->d_ff != b->d_ff || a->vocab != b->vocab ||
        fl_config_nonuniform(a) != fl_config_nonuniform(b))
        return fl_err("drift: the pruned and the dense model differ in architecture");
    return 0;
}

/* Structured pruning: the same family, stream and vocabulary; blocks map
 * to dense ones in order, none beyond the dense model's. */
static int mapped_shapes(fl_model *p, fl_model *d, const int *db) {
    const fl_config *a = &p->cfg, *b = &d->cfg;
    if (a->family != b->family || a->d != b->d || a->vocab != b->vocab || a->head_dim != b->head_dim || a->n_layer > b->n_layer)
        return fl_err("drift: the pruned model is not a structured pruning of the dense one");
    for (int i = 0; i < a->n_layer; i++)
        if (db[i] < 0 || db[i] >= b->n_layer || (i && db[i] <= db[i - 1]) || (!i && db[0] != 0))
            return fl_err("drift: block %d's dense block %d is out of order", i, db[i]);
    return 0;
}

/* The widest input of each site and the widest output of a model's blocks */
static void widths_of(const fl_config *c, int width[4], int *rows) {
    fl_linear_shape sh[7];
    const int k = fl_config_linears(c, sh);
    for (int i = 0; i < k; i++) {
        if (sh[i].cols > width[sh[i].site]) width[sh[i].site] = sh[i].cols;
        if (sh[i].rows > *rows) *rows = sh[i].rows;
    }
}

int fl_drift_measure(fl_model *pruned, fl_model *dense, const int32_t *tok, int nwin, int T, int batch, fl_drift_result *out) {
    return fl_drift_measure_mapped(pruned, dense, NULL, tok, nwin, T, batch, out);
}

int fl_drift_measure_mapped(fl_model *pruned, fl_model *dense, const int *dense_block, const int32_t *tok, int nwin, int T,
                            int batch, fl_drift_result *out) {
    memset(out, 0, sizeof *out);
    if (nwin <= 0) return 0;
    if (dense_block ? mapped_shapes(pruned, dense, dense_block) != 0 : same_shapes(pruned, dense) != 0) return -1;
    if (batch <= 0) batch = 8;
    const fl_config *c = &pruned->cfg;
    const int L = c->n_layer, LD = dense->cfg.n_layer, d = c->d;
    fl_linear_shape sh[7];
    const int k = fl_config_linears(c, sh);
    int width[4] = { 0 }, rows = d;
    widths_of(c, width, &rows);
    widths_of(&dense->cfg, width, &rows);
    /* num/den of the accumulated and local ratios per linear, and of each
     * block output; has[] marks the linears compared (structured: only
     * those whose output keeps its width, o and down always) */
    const int n = L * (k + 1);
    double *acc = calloc((size_t)n * 4, sizeof(double));
    uint8_t *has = calloc((size_t)n, 1), *loc = calloc((size_t)n, 1);
    const size_t NT = (size_t)(nwin < batch ? nwin : batch) * T;
    float *Ap = fl_allocf(NT * d), *Ad = fl_allocf(NT * d);
    float *Yp = fl_allocf(NT * rows), *Yd = fl_allocf(NT * rows), *Ydp = fl_allocf(NT * rows);
    site_copy xp = { { 0 } }, xd = { { 0 } };
    for (int s = 0; s < 4; s++)
        if (width[s]) { xp.dst[s] = fl_allocf(NT * width[s]); xd.dst[s] = fl_allocf(NT * width[s]); }
    int rc = acc && has && loc ? 0 : fl_err("drift: out of memory");
    for (int w0 = 0; w0 < nwin && rc == 0; w0 += batch) {
        const int B = nwin - w0 < batch ? nwin - w0 : batch, N = B * T;
        fl_fwd ep = { .B = B, .T = T, .tokens = tok + (int64_t)w0 * T, .x_out = Ap };
        fl_fwd ed = { .B = B, .T = T, .tokens = tok + (int64_t)w0 * T, .x_out = Ad };
        rc = fl_forward(pruned, (fl_range){ 0, 0, 1, 0 }, &ep, NULL);
        if (rc == 0) rc = fl_forward(dense, (fl_range){ 0, 0, 1, 0 }, &ed, NULL);
        for (int s = 0; s < 2 * L && rc == 0; s++) {
            const int l = s / 2, dl = dense_block ? dense_block[l] : l, ds = 2 * dl + s % 2;
            fl_fwd fp = { .B = B, .T = T, .x_in = Ap, .x_out = Ap, .hook = copy_hook, .hook_ctx = &xp };
            fl_fwd fd = { .B = B, .T = T, .x_in = Ad, .x_out = Ad, .hook = copy_hook, .hook_ctx = &xd };
            rc = fl_forward(pruned, (fl_range){ s, s + 1, 0, 0 }, &fp, NULL);
            if (rc == 0) rc = fl_forward(dense, (fl_range){ ds, ds + 1, 0, 0 }, &fd, NULL);
            if (rc != 0) break;
            fl_param *pw[7], *pb[7], *dw[7], *db[7];
            fl_layer_linears(pruned, l, pw, pb, NULL);
            fl_layer_linears(dense, dl, dw, db, NULL);
            for (int i = 0; i < k; i++) {
                if (sh[i].sub != s % 2 || pw[i]->rows != dw[i]->rows) continue;
                const float *x_p = xp.dst[sh[i].site], *x_d = xd.dst[sh[i].site];
                const int64_t m = (int64_t)N * pw[i]->rows;
                const int e = l * (k + 1) + i;
                double *a = &acc[4 * e];
                fl_linear_forward(pw[i], pb[i], x_p, Yp, N);
                fl_linear_forward(dw[i], db[i], x_d, Yd, N);
                a[0] += sq_diff(Yp, Yd, m);
                a[1] += sq(Yd, m);
                has[e] = 1;
                /* the local error needs the dense linear on the pruned
                 * input: only where the input kept its width */
                if (pw[i]->cols == dw[i]->cols) {
                    fl_linear_forward(dw[i], db[i], x_p, Ydp, N);
                    a[2] += sq_diff(Yp, Ydp, m);
                    a[3] += sq(Ydp, m);
                    loc[e] = 1;
                }
            }
            if (s % 2) {
                /* a removed run of blocks: the dense stream goes on through it */
                const int next = l + 1 < L ? (dense_block ? dense_block[l + 1] : l + 1) : (dense_block ? LD : l + 1);
                if (next > dl + 1) {
                    fl_fwd fr = { .B = B, .T = T, .x_in = Ad, .x_out = Ad };
                    rc = fl_forward(dense, (fl_range){ 2 * (dl + 1), 2 * next, 0, 0 }, &fr, NULL);
                    if (rc != 0) break;
                }
                double *a = &acc[4 * (l * (k + 1) + k)];
                a[0] += sq_diff(Ap, Ad, (int64_t)N * d);
                a[1] += sq(Ad, (int64_t)N * d);
                has[l * (k + 1) + k] = 1;
            }
        }
        out->tokens += N;
    }
    for (int s = 0; s < 4; s++) { fl_free(xp.dst[s]); fl_free(xd.dst[s]); }
    fl_free(Ap); fl_free(Ad); fl_free(Yp); fl_free(Yd); fl_free(Ydp);
    if (rc == 0) out->e = calloc((size_t)n, sizeof(fl_drift_entry));
    if (rc == 0 && !out->e) rc = fl_err("drift: out of memory");
    if (rc != 0) { free(acc); free(has); free(loc); fl_drift_free(out); return -1; }
    double sum = 0;
    int nl = 0;
    out->max = 0;
    for (int l = 0; l < L; l++) {
        const char *names[7];
        fl_layer_linears(pruned, l, NULL, NULL, names);
        for (int i = 0; i <= k; i++) {
            const int q = l * (k + 1) + i;
            if (!has[q]) continue;
            fl_drift_entry *e = &out->e[out->n++];
            const double *a = &acc[4 * q];
            e->block = i == k;
            e->accumulated = ratio(a[0], a[1]);
            if (e->block) {
                snprintf(e->name, sizeof e->name, "layers.%d", l);
                e->local = NAN;
                out->out = e->accumulated;
            } else {
                snprintf(e->name, sizeof e->name, "layers.%d.%s", l, names[i]);
                e->local = loc[q] ? ratio(a[2], a[3]) : NAN;
                sum += e->accumulated;
                nl++;
                if (e->accumulated > out->max) out->max = e->accumulated;
            }
        }
    }
    out->mean = nl ? sum / nl : 0;
    free(acc); free(has); free(loc);
    return 0;
}

void fl_drift_free(fl_drift_result *r) {
    free(r->e);
    memset(r, 0, sizeof *r);
}
