#include "adamw.h"
#include "alloc.h"
#include "err.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

fl_adamw_cfg fl_adamw_defaults(void) {
    return (fl_adamw_cfg){ .lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                           .weight_decay = 0.0f, .clip_norm = 0.0f, .warmup_steps = 0,
                           .total_steps = 1, .sched = FL_SCHED_CONSTANT, .min_lr_frac = 0.0f,
                           .optim = FL_OPTIM_ADAMW, .momentum = 0.9f };
}

int fl_optim_parse(const char *s, fl_optim *out) {
    if (!strcmp(s, "adamw")) *out = FL_OPTIM_ADAMW;
    else if (!strcmp(s, "sgd")) *out = FL_OPTIM_SGD;
    else return fl_err("unknown optimizer '%s' (valid: adamw, sgd)", s);
    return 0;
}

const char *fl_optim_name(fl_optim o) { return o == FL_OPTIM_SGD ? "sgd" : "adamw"; }
int fl_optim_states(fl_optim o) { return o == FL_OPTIM_SGD ? 1 : 2; }

int fl_sched_parse(const char *s, fl_sched *out) {
    if (!strcmp(s, "constant")) *out = FL_SCHED_CONSTANT;
    else if (!strcmp(s, "linear")) *out = FL_SCHED_LINEAR;
    else if (!strcmp(s, "cosine")) *out = FL_SCHED_COSINE;
    else return fl_err("unknown schedule '%s' (expected constant, linear or cosine)", s);
    return 0;
}

double fl_lr_factor(const fl_adamw_cfg *c, int t) {
    int W = c->warmup_steps, S = c->total_steps;
    if (t <= W) return (double)t / W;
    double f = 1.0;
    if (S > W && c->sched != FL_SCHED_CONSTANT) {
        double span = S - W, k = t - W - 1;     /* k = 0 on the first decay step */
        if (k > span - 1) k = span - 1;
        f = c->sched == FL_SCHED_LINEAR ? (span - k) / span : 0.5 * (1.0 + cos(M_PI * k / span));
    }
    return c->min_lr_frac + (1.0 - c->min_lr_frac) * f;
}

int fl_adamw_init(fl_adamw *o, fl_model *m, const fl_adamw_cfg *c) {
    memset(o, 0, sizeof *o);
    o->cfg = *c;
    o->p = calloc((size_t)m->n_params, sizeof(fl_param *));
    for (int i = 0; i < m->n_params; i++) {
        fl_param *p = &m->params[i];
        if (!p->trainable || !p->g) continue;
        if (!p->m) p->m = fl_allocf((size_t)p->n);
        if (!p->v && c->optim == FL_OPTIM_ADAMW) p->v = fl_allocf((size_t)p->n);
        o->p[o->n++] = p;
    }
    if (o->n == 0) return fl_err("optimiser: no trainable parameter");
    return 0;
}

void fl_adamw_update(const fl_adamw_cfg *c, float *w, float *g, float *m, float *v, const uint8_t *mask, int64_t n,
                     int rows, int cols, float lr, float gscale, float bc1, float bc2) {
    float wd = (rows > 1 && cols > 1) ? c->weight_decay : 0.0f;
    #pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; j++) {
        if (mask && !mask[j]) { w[j] = 0.0f; g[j] = 0.0f; continue; }
        float gj = g[j] * gscale;
        m[j] = c->beta1 * m[j] + (1.0f - c->beta1) * gj;
        v[j] = c->beta2 * v[j] + (1.0f - c->beta2) * gj * gj;
        float mh = m[j] / bc1, vh = v[j] / bc2;
        w[j] -= lr * (mh / (sqrtf(vh) + c->eps) + wd * w[j]);
        g[j] = 0.0f;
    }
}

/* SGD as the paper's authors run it (ZIB-IOL/Free-Lunch-in-LLM-Compression,
 * read for this): their local reconstruction (prune_methods.py,
 * reconstruct_weights) builds torch.optim.SGD(params, lr, momentum=0.9)
 * when optim is 'sgd', else AdamW, both with weight_decay 0 and the same
 * get_linear_schedule_with_warmup (10% warm-up, linear decay to 0); no
 * nesterov, no dampening (torch's defaults). Their full retraining goes
 * through the HF Trainer, whose 'sgd' is torch.optim.SGD with decay on
 * every parameter but biases and norms, and only the learning rate passed
 * (so momentum 0 there); freelunch uses the one momentum everywhere. The
 * rule is torch's (torch/optim/sgd.py), which tests/oracle/sgd_ref.py checks. */
void fl_sgd_update(const fl_adamw_cfg *c, float *w, float *g, float *buf, const uint8_t *mask, int64_t n, int rows, int cols,
                   float lr, float gscale) {
    float wd = (rows > 1 && cols > 1) ? c->weight_decay : 0.0f;
    #pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; j++) {
        if (mask && !mask[j]) { w[j] = 0.0f; g[j] = 0.0f; continue; }
        float gj = g[j] * gscale + wd * w[j];
        buf[j] = c->momentum * buf[j] + gj;
        w[j] -= lr * buf[j];
        g[j] = 0.0f;
    }
}

double fl_adamw_step(fl_adamw *o) {
    const fl_adamw_cfg *c = &o->cfg;
    o->t++;
    double ss = 0;
    for (int i = 0; i < o->n; i++) {
        const float *g = o->p[i]->g;
        ss += fl_sumsq(g, o->p[i]->n);
    }
    double gnorm = sqrt(ss);
    float gscale = (c->clip_norm > 0 && gnorm > c->clip_norm) ? (float)(c->clip_norm / gnorm) : 1.0f;
    float lr = (float)(c->lr * fl_lr_factor(c, o->t));
    float bc1 = 1.0f - powf(c->beta1, (float)o->t), bc2 = 1.0f - powf(c->beta2, (float)o->t);
    for (int i = 0; i < o->n; i++) {
        fl_param *p = o->p[i];
        if (c->optim == FL_OPTIM_SGD) fl_sgd_update(c, p->w, p->g, p->m, p->mask, p->n, p->rows, p->cols, lr, gscale);
        else fl_adamw_update(c, p->w, p->g, p->m, p->v, p->mask, p->n, p->rows, p->cols, lr, gscale, bc1, bc2);
    }
    o->last_lr = lr;
    o->last_gnorm = gnorm;
    return gnorm;
}

double fl_sumsq(const float *g, int64_t n) {
    double s = 0;
    #pragma omp parallel for reduction(+ : s) schedule(static)
    for (int64_t j = 0; j < n; j++) s += (double)g[j] * g[j];
    return s;
}

size_t fl_adamw_bytes(const fl_adamw *o) {
    size_t b = 0;
    for (int i = 0; i < o->n; i++) b += fl_alloc_size(o->p[i]->m) + fl_alloc_size(o->p[i]->v);
    return b;
}

void fl_adamw_free(fl_adamw *o) {
    for (int i = 0; i < o->n; i++) {
        fl_free(o->p[i]->m); fl_free(o->p[i]->v);
        o->p[i]->m = o->p[i]->v = NULL;
    }
    free(o->p);
    memset(o, 0, sizeof *o);
}
