/* Local reconstruction with AdamW: the routine of matrix, sublayer, block
 * and blocks:K. Also the unit plumbing and the losses. */
#include "recon.h"
#include "model/adamw.h"
#include "model/alloc.h"
#include "model/err.h"
#include "model/gemm.h"
#include "model/rng.h"
#include "model/train.h"
#include "model/clock.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fl_unit_forward(fl_model *m, const fl_unit *u, const float *x, float *y, int B, int T, fl_acts *acts) {
    if (u->kind == FL_UNIT_LINEAR) {
        fl_linear_forward(u->w, u->b, x, y, B * T);
        return 0;
    }
    fl_fwd a = { .B = B, .T = T, .x_in = x, .x_out = y };
    return fl_forward(m, u->r, &a, acts);
}

int fl_unit_backward(fl_model *m, const fl_unit *u, fl_acts *acts, const float *x, const float *dy, int B, int T) {
    if (u->kind == FL_UNIT_LINEAR) {
        fl_linear_backward(u->w, u->b, x, dy, NULL, B * T);
        return 0;
    }
    return fl_backward(m, u->r, acts, dy, NULL);
}

static int in_unit(const fl_unit *u, const fl_param *p) {
    if (u->kind == FL_UNIT_LINEAR) return p == u->w || (u->b && p == u->b);
    int s = fl_param_sublayer(p);
    return s >= u->r.s0 && s < u->r.s1;
}

static int is_bias_norm(const fl_param *p) {
    return p->kind == FL_PK_NORM_W || p->kind == FL_PK_NORM_B || p->kind == FL_PK_LINEAR_B;
}

int fl_unit_set_trainable(fl_model *m, const fl_unit *u, int bias_norm_only) {
    int n = 0;
    for (int i = 0; i < m->n_params; i++) {
        fl_param *p = &m->params[i];
        int on = in_unit(u, p) && (!bias_norm_only || is_bias_norm(p));
        if (p->trainable != on || (on && !p->g)) fl_param_set_trainable(p, on);
        n += on;
    }
    if (!n) return fl_err("%s: no trainable parameter (%s)", u->name, bias_norm_only ? "bias-norm: the unit has no bias or norm" : "empty unit");
    return n;
}

size_t fl_unit_param_bytes(fl_model *m, const fl_unit *u) {
    size_t b = 0;
    for (int i = 0; i < m->n_params; i++)
        if (in_unit(u, &m->params[i])) b += sizeof(float) * (size_t)m->params[i].n;
    return b;
}

double fl_recon_loss(fl_loss kind, const float *y, const float *t, int64_t rows, int w, float *dy) {
    const int64_t n = rows * w;
    if (kind == FL_LOSS_COSINE) {
        double tot = 0;
        #pragma omp parallel for reduction(+ : tot) schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const float *a = y + r * w, *b = t + r * w;
            double ab = 0, aa = 0, bb = 0;
            for (int j = 0; j < w; j++) { ab += (double)a[j] * b[j]; aa += (double)a[j] * a[j]; bb += (double)b[j] * b[j]; }
            double na = sqrt(aa) + 1e-12, nb = sqrt(bb) + 1e-12, cs = ab / (na * nb);
            tot += 1.0 - cs;
            if (dy) {
                /* d(1 - cos)/da = -(b / (|a||b|) - cos * a / |a|^2), averaged over rows */
                float *d = dy + r * w;
                for (int j = 0; j < w; j++) d[j] = (float)(-(b[j] / (na * nb) - cs * a[j] / (na * na)) / rows);
            }
        }
        return tot / rows;
    }
    double se = 0, tt = 0;
    #pragma omp parallel for reduction(+ : se, tt) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double d = (double)y[i] - t[i];
        se += d * d;
        tt += (double)t[i] * t[i];
    }
    double scale = kind == FL_LOSS_NMSE ? (tt > 0 ? 1.0 / tt : 0.0) : 1.0 / n;   /* nmse = sum (y-t)^2 / sum t^2 */
    if (dy) {
        #pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) dy[i] = (float)(2.0 * scale * ((double)y[i] - t[i]));
    }
    return se * scale;
}

/* Mean loss over all windows with the current parameters (no gradients). */
static double full_loss(fl_model *m, const fl_unit *u, const float *X, const float *Y, int nwin, int T, int batch,
                        fl_loss kind) {
    float *y = fl_allocf((size_t)batch * T * u->out_w);
    double tot = 0;
    for (int w0 = 0; w0 < nwin; w0 += batch) {
        int B = nwin - w0 < batch ? nwin - w0 : batch;
        if (fl_unit_forward(m, u, X + (int64_t)w0 * T * u->in_w, y, B, T, NULL) != 0) { fl_free(y); return NAN; }
        tot += fl_recon_loss(kind, y, Y + (int64_t)w0 * T * u->out_w, (int64_t)B * T, u->out_w, NULL) * B;
    }
    fl_free(y);
    return tot / nwin;
}

/* One micro-batch of a unit: the windows idx[0..B) of X and Y gathered into
 * the batch buffers, forward, loss and its gradient (scaled for
 * accumulation), backward. */
typedef struct {
    fl_model *m;
    const fl_unit *u;
    const float *X, *Y;
    int T, accum;
    fl_loss loss;
    fl_acts *acts;
    float *xb, *yb, *out, *dy;
    fl_adamw *opt;
} unit_batch;

static int unit_forward(void *ctx, const int *idx, int B, double *loss) {
    unit_batch *c = ctx;
    const size_t rin = (size_t)c->T * c->u->in_w, rout = (size_t)c->T * c->u->out_w;
    for (int b = 0; b < B; b++) {
        memcpy(c->xb + b * rin, c->X + (size_t)idx[b] * rin, sizeof(float) * rin);
        memcpy(c->yb + b * rout, c->Y + (size_t)idx[b] * rout, sizeof(float) * rout);
    }
    if (fl_unit_forward(c->m, c->u, c->xb, c->out, B, c->T, c->acts) != 0) return -1;
    *loss = fl_recon_loss(c->loss, c->out, c->yb, (int64_t)B * c->T, c->u->out_w, c->dy);
    return 0;
}

static int unit_backward(void *ctx, int B) {
    unit_batch *c = ctx;
    const size_t n = (size_t)B * c->T * c->u->out_w;
    if (c->accum > 1) for (size_t i = 0; i < n; i++) c->dy[i] /= c->accum;
    return fl_unit_backward(c->m, c->u, c->acts, c->xb, c->dy, B, c->T);
}

static void unit_step(void *ctx, int accum) {
    (void)accum;   /* the loss gradient was already scaled */
    fl_adamw_step(((unit_batch *)ctx)->opt);
}

int fl_recover_adam(const fl_recover_job *j, fl_unit_report *rep) {
    fl_model *m = j->m;
    const fl_unit *u = j->u;
    const float *X = j->X, *Y = j->Y;
    const int nwin = j->nwin, T = j->T;
    const fl_recon_opts *o = j->o;
    const int batch = o->batch > 0 ? (o->batch < nwin ? o->batch : nwin) : 1, accum = o->grad_accum > 0 ? o->grad_accum : 1;
    const int epochs = o->epochs > 0 ? o->epochs : 1, steps = fl_train_steps(nwin, batch, epochs, accum);
    double t0 = fl_wall_s();
    size_t live0 = fl_mem_live();
    fl_mem_reset_peak();
    snprintf(rep->name, sizeof rep->name, "%s", u->name);
    rep->loss_before = full_loss(m, u, X, Y, nwin, T, batch, o->loss);
    rep->tokens = (int64_t)nwin * T * epochs;   /* every window, every epoch, forward and backward */
    if (fl_unit_set_trainable(m, u, o->bias_norm_only) < 0) return -1;
    fl_adamw_cfg oc = fl_adamw_defaults();
    oc.lr = o->lr; oc.weight_decay = o->weight_decay; oc.total_steps = steps;
    oc.warmup_steps = steps / 10; oc.sched = FL_SCHED_LINEAR; oc.optim = o->optim;
    fl_adamw opt;
    if (fl_adamw_init(&opt, m, &oc) != 0) return -1;
    unit_batch c = { .m = m, .u = u, .X = X, .Y = Y, .T = T, .accum = accum, .loss = o->loss,
                     .acts = u->kind == FL_UNIT_LINEAR ? NULL : fl_acts_new(), .opt = &opt };
    c.xb = fl_allocf((size_t)batch * T * u->in_w); c.yb = fl_allocf((size_t)batch * T * u->out_w);
    c.out = fl_allocf((size_t)batch * T * u->out_w); c.dy = fl_allocf((size_t)batch * T * u->out_w);
    char what[96];
    snprintf(what, sizeof what, "%s: reconstruction", u->name);
    fl_train_spec ts = { .nwin = nwin, .batch = batch, .epochs = epochs, .accum = accum, .rng = fl_splitmix64,
                         .state = o->seed * 0x2545F4914F6CDD1Dull + 17, .forward = unit_forward,
                         .backward = unit_backward, .step = unit_step, .ctx = &c, .what = what,
                         .label = o->progress ? u->name : NULL };
    int rc = fl_train_loop(&ts, &rep->steps, &rep->diverged);
    fl_acts_free(c.acts);
    fl_free(c.xb); fl_free(c.yb); fl_free(c.out); fl_free(c.dy);
    fl_adamw_free(&opt);
    rep->working_bytes = fl_mem_peak() - live0 + fl_unit_param_bytes(m, u);
    rep->peak_bytes = fl_mem_peak();
    for (int i = 0; i < m->n_params; i++) if (m->params[i].trainable) fl_param_set_trainable(&m->params[i], 0);
    if (rc != 0) return -1;
    rep->loss_after = full_loss(m, u, X, Y, nwin, T, batch, o->loss);
    rep->seconds = fl_wall_s() - t0;
    return 0;
}
