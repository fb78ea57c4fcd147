/* LoRA and MaskLoRA retraining; see lora.h. */
#include "lora.h"
#include "model/rng.h"
#include "model/adamw.h"
#include "model/alloc.h"
#include "model/err.h"
#include "model/gemm.h"
#include "model/ops.h"
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* ---- the argument ------------------------------------------------------- */

int fl_lora_parse_arg(const char *arg, int *masked, int *rank, float *alpha) {
    if (!arg) return 0;
    int mk;
    size_t k;
    if (!strncmp(arg, "masklora", 8)) { mk = 1; k = 8; }
    else if (!strncmp(arg, "lora", 4)) { mk = 0; k = 4; }
    else return 0;
    if (arg[k] && arg[k] != ':' && arg[k] != ',') return 0;
    int r = FL_LORA_RANK_DEFAULT;
    float a = FL_LORA_ALPHA_DEFAULT;
    const char *s = arg + k;
    while (*s) {
        s++;   /* the separator */
        size_t len = strcspn(s, ":,");
        const char *eq = memchr(s, '=', len);
        if (!len || !eq || eq == s || eq + 1 == s + len)
            return fl_err("retrain:%s: malformed LoRA option '%.*s' (expected rank=R or alpha=A)", arg, (int)len, s);
        size_t klen = (size_t)(eq - s);
        char val[64];
        size_t vlen = (size_t)(s + len - eq - 1);
        if (vlen >= sizeof val) return fl_err("retrain:%s: LoRA option value too long", arg);
        memcpy(val, eq + 1, vlen);
        val[vlen] = 0;
        char *e;
        errno = 0;
        if ((klen == 4 && !strncmp(s, "rank", 4)) || (klen == 1 && s[0] == 'r')) {
            long v = strtol(val, &e, 10);
            if (*e || errno || v < 1 || v > 65536)
                return fl_err("retrain:%s: rank must be an integer in [1, 65536] (got '%s')", arg, val);
            r = (int)v;
        } else if ((klen == 5 && !strncmp(s, "alpha", 5)) || (klen == 1 && s[0] == 'a')) {
            float v = strtof(val, &e);
            if (*e || errno || !isfinite(v) || v <= 0)
                return fl_err("retrain:%s: alpha must be a positive number (got '%s')", arg, val);
            a = v;
        } else {
            return fl_err("retrain:%s: unknown LoRA option '%.*s' (valid: rank=R, alpha=A)", arg, (int)klen, s);
        }
        s += len;
    }
    if (masked) *masked = mk;
    if (rank) *rank = r;
    if (alpha) *alpha = a;
    return 1;
}

/* ---- adapters ------------------------------------------------------------ */

int fl_lora_attach(fl_lora *L, fl_model *m, int masked, int rank, float alpha, uint64_t seed) {
    memset(L, 0, sizeof *L);
    if (rank < 1) return fl_err("LoRA: rank must be at least 1 (got %d)", rank);
    if (!isfinite(alpha) || alpha <= 0) return fl_err("LoRA: alpha must be positive (got %g)", alpha);
    int n = 0;
    int64_t dense_n = 0;
    for (int l = 0; l < m->cfg.n_layer; l++) {
        fl_param *w[7];
        int k = fl_layer_linears(m, l, w, NULL, NULL);
        for (int j = 0; j < k; j++)
            if (masked && w[j]->mask && w[j]->n > dense_n) dense_n = w[j]->n;
        n += k;
    }
    if (!n) return fl_err("LoRA: the model has no block linear");
    L->m = m; L->masked = masked; L->rank = rank; L->alpha = alpha; L->scale = alpha / rank;
    /* the slots never move: every p->ad points into this array */
    L->s = calloc((size_t)n, sizeof(fl_lora_slot));
    if (dense_n) L->dense = fl_allocf((size_t)dense_n);
    for (int i = 0; i < m->n_params; i++) fl_param_set_trainable(&m->params[i], 0);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        fl_param *w[7];
        int k = fl_layer_linears(m, l, w, NULL, NULL);
        for (int j = 0; j < k; j++) {
            fl_lora_slot *s = &L->s[L->n];
            fl_param *p = w[j];
            s->p = p; s->out = p->rows; s->in = p->cols;
            size_t na = (size_t)rank * s->in, nb = (size_t)s->out * rank;
            fl_adapter *ad = &s->ad;
            ad->rank = rank; ad->scale = L->scale;
            ad->A = fl_allocf(na); ad->gA = fl_allocf(na); s->mA = fl_allocf(na); s->vA = fl_allocf(na);
            ad->B = fl_allocf(nb); ad->gB = fl_allocf(nb); s->mB = fl_allocf(nb); s->vB = fl_allocf(nb);
            /* a linear without a mask has M = 1: plain LoRA, the low-rank path */
            ad->mask = masked ? p->mask : NULL;
            ad->dense = ad->mask ? L->dense : NULL;
            /* PEFT: kaiming_uniform_(a = sqrt(5)) on A, i.e. U(-1/sqrt(in), 1/sqrt(in)); B = 0 */
            uint64_t rs = seed * 0xD1B54A32D192ED03ull + 0x632BE59BD9B4E019ull * (uint64_t)(L->n + 1);
            const float bound = 1.0f / sqrtf((float)s->in);
            for (size_t q = 0; q < na; q++)
                ad->A[q] = bound * (float)(2.0 * ((fl_splitmix64(&rs) >> 11) * (1.0 / 9007199254740992.0)) - 1.0);
            p->ad = ad;
            L->n++;
        }
    }
    return 0;
}

static double sumsq(const float *g, int64_t n) {
    double s = 0;
    #pragma omp parallel for reduction(+ : s) schedule(static)
    for (int64_t j = 0; j < n; j++) s += (double)g[j] * g[j];
    return s;
}

/* The update of fl_adamw_step (model/adamw.c) over one buffer. */
static void adam_update(const fl_adamw_cfg *c, float *w, float *g, float *m, float *v, int64_t n, int rows, int cols,
                        float lr, float gscale, float bc1, float bc2) {
    float wd = (rows > 1 && cols > 1) ? c->weight_decay : 0.0f;
    #pragma omp parallel for schedule(static)
    for (int64_t j = 0; j < n; j++) {
        float gj = g[j] * gscale;
        m[j] = c->beta1 * m[j] + (1.0f - c->beta1) * gj;
        v[j] = c->beta2 * v[j] + (1.0f - c->beta2) * gj * gj;
        float mh = m[j] / bc1, vh = v[j] / bc2;
        w[j] -= lr * (mh / (sqrtf(vh) + c->eps) + wd * w[j]);
        g[j] = 0.0f;
    }
}

double fl_lora_adamw_step(fl_lora *L, const fl_adamw_cfg *c, float gscale) {
    L->t++;
    double ss = 0;
    for (int i = 0; i < L->n; i++) {
        fl_lora_slot *s = &L->s[i];
        ss += sumsq(s->ad.gA, (int64_t)L->rank * s->in) + sumsq(s->ad.gB, (int64_t)s->out * L->rank);
    }
    double gnorm = sqrt(ss) * gscale;
    float clip = (c->clip_norm > 0 && gnorm > c->clip_norm) ? (float)(c->clip_norm / gnorm) : 1.0f;
    float lr = (float)(c->lr * fl_lr_factor(c, L->t));
    float bc1 = 1.0f - powf(c->beta1, (float)L->t), bc2 = 1.0f - powf(c->beta2, (float)L->t);
    for (int i = 0; i < L->n; i++) {
        fl_lora_slot *s = &L->s[i];
        adam_update(c, s->ad.A, s->ad.gA, s->mA, s->vA, (int64_t)L->rank * s->in, L->rank, s->in, lr, gscale * clip, bc1, bc2);
        adam_update(c, s->ad.B, s->ad.gB, s->mB, s->vB, (int64_t)s->out * L->rank, s->out, L->rank, lr, gscale * clip, bc1, bc2);
    }
    return gnorm;
}

void fl_lora_detach(fl_lora *L, int merge) {
    if (!L->s) return;
    for (int i = 0; i < L->n; i++) {
        fl_lora_slot *s = &L->s[i];
        fl_adapter *ad = &s->ad;
        if (merge) {
            if (ad->mask) {
                fl_masklora_compose(ad->dense, s->p->w, ad->mask, ad->A, ad->B, ad->scale, s->out, s->in, ad->rank);
                memcpy(s->p->w, ad->dense, sizeof(float) * (size_t)s->p->n);
            } else {
                fl_gemm(0, 0, s->out, s->in, L->rank, L->scale, ad->B, L->rank, ad->A, s->in, 1.0f, s->p->w, s->in);
            }
        }
        s->p->ad = NULL;
        fl_free(ad->A); fl_free(ad->B); fl_free(ad->gA); fl_free(ad->gB);
        fl_free(s->mA); fl_free(s->vA); fl_free(s->mB); fl_free(s->vB);
    }
    fl_free(L->dense);
    L->dense = NULL;
    free(L->s);
    L->s = NULL;
    L->n = 0;
}

size_t fl_lora_bytes(const fl_lora *L) {
    size_t b = fl_alloc_size(L->dense);
    for (int i = 0; i < L->n; i++) {
        const fl_lora_slot *s = &L->s[i];
        b += fl_alloc_size(s->ad.A) + fl_alloc_size(s->ad.B) + fl_alloc_size(s->ad.gA) + fl_alloc_size(s->ad.gB) +
             fl_alloc_size(s->mA) + fl_alloc_size(s->vA) + fl_alloc_size(s->mB) + fl_alloc_size(s->vB);
    }
    return b;
}

size_t fl_lora_predict_working(const fl_config *c, int masked, int rank, int distill, int B, int T) {
    const size_t d = c->d, qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_kv_head * c->head_dim, F = c->d_ff;
    const size_t N = (size_t)B * T, V = c->vocab;
    /* block linears [out, in] in fl_layer_linears order */
    size_t shp[7][2] = { { qd, d }, { kvd, d }, { kvd, d }, { d, qd }, { F, d }, { F, d }, { d, F } };
    const int swi = c->act == FL_ACT_SWIGLU;
    size_t lin_w = 0, adapters = 0, largest = 0;
    for (int j = 0; j < 7; j++) {
        if (j == 5 && !swi) continue;   /* up: SwiGLU only */
        lin_w += shp[j][0] * shp[j][1];
        adapters += 4 * (size_t)rank * (shp[j][0] + shp[j][1]);   /* A, B, their gradients and moments */
        if (shp[j][0] * shp[j][1] > largest) largest = shp[j][0] * shp[j][1];
    }
    /* parameters, as fl_model_create registers them */
    size_t norms = (c->rms ? 1 : 2) * d, bias = 0;
    if (c->qkv_bias) bias += qd + 2 * kvd;
    if (c->o_bias) bias += d;
    if (c->mlp_bias) bias += F + d;
    size_t params = V * d + (c->learned_pos ? (size_t)(c->max_pos + c->pos_offset) * d : 0) +
                    (size_t)c->n_layer * (lin_w + 2 * norms + bias) + norms + (c->tied ? 0 : V * d);
    fl_range whole = { 0, 2 * c->n_layer, 1, 1 };
    size_t lin_tmp = sizeof(float) * 2 * N * rank * !masked;   /* LoRA's [N, rank] pair in a linear's backward */
    return sizeof(float) * (params + (size_t)c->n_layer * adapters + (masked ? largest : 0) + (distill ? N * V : 0)) +
           fl_acts_predict_bytes(c, whole, B, T) + fl_backward_tmp_bytes(c, whole, B, T, lin_tmp);
}

/* ---- the retraining ----------------------------------------------------- */

/* One optimiser step over the adapters (fl_retrain_loop's callback). */
typedef struct { fl_lora *L; const fl_adamw_cfg *oc; } lora_step_ctx;
static void lora_step(void *ctx, int accum) {
    lora_step_ctx *c = ctx;
    fl_lora_adamw_step(c->L, c->oc, 1.0f / accum);
}

int fl_retrain_lora(fl_model *m, int masked, int rank, float alpha, const int32_t *tok, int nwin, int T,
                    const fl_recon_opts *o, fl_unit_report *rep) {
    const char *mode = masked ? "masklora" : "lora";
    if (nwin < 1 || T < 2) return fl_err("retrain:%s: need at least one window of 2 tokens", mode);
    const int batch = o->batch > 0 ? (o->batch < nwin ? o->batch : nwin) : 1, accum = o->grad_accum > 0 ? o->grad_accum : 1;
    const int epochs = o->epochs > 0 ? o->epochs : 1, per_epoch = (nwin + batch - 1) / batch;
    const int micro = per_epoch * epochs, steps = (micro + accum - 1) / accum;
    double t0 = now_s();
    /* a label only: an extreme rank or alpha may cut its tail, harmlessly */
    char label[160];
    snprintf(label, sizeof label, "model (retrain:%s r=%d alpha=%g%s%s)", mode, rank, (double)alpha,
             masked ? "" : ", merged dense", o->teacher ? ", distilled" : "");
    snprintf(rep->name, sizeof rep->name, "%.63s", label);
    int32_t *tg = fl_retrain_targets(tok, nwin, T);
    rep->loss_before = fl_retrain_mean_ce(m, tok, tg, nwin, T, batch);
    size_t live0 = fl_mem_live();
    fl_mem_reset_peak();
    fl_lora L;
    if (fl_lora_attach(&L, m, masked, rank, alpha, o->seed) != 0) { fl_lora_detach(&L, 0); free(tg); return -1; }
    fl_adamw_cfg oc = fl_adamw_defaults();
    oc.lr = o->lr; oc.weight_decay = o->weight_decay; oc.total_steps = steps; oc.warmup_steps = steps / 10;
    oc.sched = FL_SCHED_LINEAR;
    lora_step_ctx sc = { &L, &oc };
    char what[32];
    snprintf(what, sizeof what, "retrain:%s", mode);
    int rc = fl_retrain_loop(m, tok, tg, nwin, T, batch, epochs, accum, steps, o, what, lora_step, &sc, rep);
    rep->working_bytes = fl_mem_peak() - live0 + sizeof(float) * (size_t)fl_model_num_params(m);
    rep->peak_bytes = fl_mem_peak();
    fl_lora_detach(&L, rc == 0);   /* merge; on failure W is still W0 */
    if (rc == 0 && masked) {
        /* MaskLoRA keeps the sparsity exactly */
        for (int l = 0; l < m->cfg.n_layer && rc == 0; l++) {
            fl_param *w[7];
            int k = fl_layer_linears(m, l, w, NULL, NULL);
            for (int j = 0; j < k && rc == 0; j++) {
                if (!w[j]->mask) continue;
                for (int64_t q = 0; q < w[j]->n; q++)
                    if (!w[j]->mask[q] && w[j]->w[q] != 0.0f) {
                        rc = fl_err("retrain:masklora: %s: pruned weight %lld is %g after merging (internal error)",
                                    w[j]->name, (long long)q, w[j]->w[q]);
                        break;
                    }
            }
        }
    }
    if (rc == 0) {
        rep->loss_after = fl_retrain_mean_ce(m, tok, tg, nwin, T, batch);
        if (!isfinite(rep->loss_after)) {
            rep->diverged = 1;
            rc = fl_err("retrain:%s: the merged model's loss is %g", mode, rep->loss_after);
        }
    }
    free(tg);
    rep->seconds = now_s() - t0;
    return rc;
}
