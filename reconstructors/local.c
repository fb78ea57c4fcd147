/* Local reconstruction with AdamW: the routine of matrix, sublayer, block
 * and blocks:K. Also the unit plumbing and the losses. */
#include "recon.h"
#include "model/adamw.h"
#include "model/alloc.h"
#include "model/err.h"
#include "model/gemm.h"
#include "model/rng.h"
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

int fl_recover_adam(const fl_recover_job *j, fl_unit_report *rep) {
    fl_model *m = j->m;
    const fl_unit *u = j->u;
    const float *X = j->X, *Y = j->Y;
    const int nwin = j->nwin, T = j->T;
    const fl_recon_opts *o = j->o;
    const int batch = o->batch > 0 ? (o->batch < nwin ? o->batch : nwin) : 1, accum = o->grad_accum > 0 ? o->grad_accum : 1;
    const int per_epoch = (nwin + batch - 1) / batch, micro = per_epoch * (o->epochs > 0 ? o->epochs : 1);
    const int steps = (micro + accum - 1) / accum;
    double t0 = fl_wall_s();
    size_t live0 = fl_mem_live();
    fl_mem_reset_peak();
    snprintf(rep->name, sizeof rep->name, "%s", u->name);
    rep->loss_before = full_loss(m, u, X, Y, nwin, T, batch, o->loss);
    if (fl_unit_set_trainable(m, u, o->bias_norm_only) < 0) return -1;
    fl_adamw_cfg oc = fl_adamw_defaults();
    oc.lr = o->lr; oc.weight_decay = o->weight_decay; oc.total_steps = steps;
    oc.warmup_steps = steps / 10; oc.sched = FL_SCHED_LINEAR;
    fl_adamw opt;
    if (fl_adamw_init(&opt, m, &oc) != 0) return -1;
    fl_acts *acts = u->kind == FL_UNIT_LINEAR ? NULL : fl_acts_new();
    float *xb = fl_allocf((size_t)batch * T * u->in_w), *yb = fl_allocf((size_t)batch * T * u->out_w);
    float *out = fl_allocf((size_t)batch * T * u->out_w), *dy = fl_allocf((size_t)batch * T * u->out_w);
    int *perm = malloc(sizeof(int) * nwin);
    for (int i = 0; i < nwin; i++) perm[i] = i;
    uint64_t rs = o->seed * 0x2545F4914F6CDD1Dull + 17;
    int rc = 0, mb = 0, tty = o->progress && isatty(2);
    double last = 0;
    const size_t rin = (size_t)T * u->in_w, rout = (size_t)T * u->out_w;
    for (int ep = 0; ep < (o->epochs > 0 ? o->epochs : 1) && rc == 0; ep++) {
        for (int i = nwin - 1; i > 0; i--) {   /* Fisher-Yates, seeded */
            int j = (int)(fl_splitmix64(&rs) % (uint64_t)(i + 1)), t = perm[i];
            perm[i] = perm[j]; perm[j] = t;
        }
        for (int w0 = 0; w0 < nwin && rc == 0; w0 += batch) {
            int B = nwin - w0 < batch ? nwin - w0 : batch;
            for (int b = 0; b < B; b++) {
                memcpy(xb + b * rin, X + (size_t)perm[w0 + b] * rin, sizeof(float) * rin);
                memcpy(yb + b * rout, Y + (size_t)perm[w0 + b] * rout, sizeof(float) * rout);
            }
            if ((rc = fl_unit_forward(m, u, xb, out, B, T, acts)) != 0) break;
            last = fl_recon_loss(o->loss, out, yb, (int64_t)B * T, u->out_w, dy);
            if (!isfinite(last)) {
                rep->diverged = 1;
                rc = fl_err("%s: reconstruction diverged at step %d (loss %g)", u->name, opt.t + 1, last);
                break;
            }
            if (accum > 1) for (size_t i = 0; i < (size_t)B * rout; i++) dy[i] /= accum;
            if ((rc = fl_unit_backward(m, u, acts, xb, dy, B, T)) != 0) break;
            if (++mb % accum == 0 || mb == micro) fl_adamw_step(&opt);
            if (tty) {
                fprintf(stderr, "\r  %-22s step %d/%d loss %.5g   ", u->name, opt.t, steps, last);
                fflush(stderr);
            }
        }
    }
    if (tty) fprintf(stderr, "\r%*s\r", 70, "");
    rep->steps = opt.t;
    fl_acts_free(acts);
    fl_free(xb); fl_free(yb); fl_free(out); fl_free(dy);
    free(perm);
    fl_adamw_free(&opt);
    rep->working_bytes = fl_mem_peak() - live0 + fl_unit_param_bytes(m, u);
    rep->peak_bytes = fl_mem_peak();
    for (int i = 0; i < m->n_params; i++) if (m->params[i].trainable) fl_param_set_trainable(&m->params[i], 0);
    if (rc != 0) return -1;
    rep->loss_after = full_loss(m, u, X, Y, nwin, T, batch, o->loss);
    rep->seconds = fl_wall_s() - t0;
    return 0;
}
