/* LoRA and MaskLoRA retraining; see lora.h. */
#include "lora.h"
#include "model/rng.h"
#include "model/adamw.h"
#include "model/alloc.h"
#include "model/err.h"
#include "model/gemm.h"
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
    for (int l = 0; l < m->cfg.n_layer; l++) n += fl_layer_linears(m, l, NULL, NULL, NULL);
    if (!n) return fl_err("LoRA: the model has no block linear");
    L->m = m; L->masked = masked; L->rank = rank; L->alpha = alpha; L->scale = alpha / rank;
    L->s = calloc((size_t)n, sizeof(fl_lora_slot));
    for (int i = 0; i < m->n_params; i++) fl_param_set_trainable(&m->params[i], 0);
    for (int l = 0; l < m->cfg.n_layer; l++) {
        fl_param *w[7];
        int k = fl_layer_linears(m, l, w, NULL, NULL);
        for (int j = 0; j < k; j++) {
            fl_lora_slot *s = &L->s[L->n];
            fl_param *p = w[j];
            s->p = p; s->mask = p->mask; s->out = p->rows; s->in = p->cols;
            s->w0 = fl_allocf((size_t)p->n);
            memcpy(s->w0, p->w, sizeof(float) * (size_t)p->n);
            size_t na = (size_t)rank * s->in, nb = (size_t)s->out * rank;
            s->A = fl_allocf(na); s->gA = fl_allocf(na); s->mA = fl_allocf(na); s->vA = fl_allocf(na);
            s->B = fl_allocf(nb); s->gB = fl_allocf(nb); s->mB = fl_allocf(nb); s->vB = fl_allocf(nb);
            /* PEFT: kaiming_uniform_(a = sqrt(5)) on A, i.e. U(-1/sqrt(in), 1/sqrt(in)); B = 0 */
            uint64_t rs = seed * 0xD1B54A32D192ED03ull + 0x632BE59BD9B4E019ull * (uint64_t)(L->n + 1);
            const float bound = 1.0f / sqrtf((float)s->in);
            for (size_t q = 0; q < na; q++)
                s->A[q] = bound * (float)(2.0 * ((fl_splitmix64(&rs) >> 11) * (1.0 / 9007199254740992.0)) - 1.0);
            if (!masked) p->mask = NULL;   /* the full dW: backward must not mask it */
            fl_param_set_trainable(p, 1);
            L->n++;
        }
    }
    return 0;
}

void fl_lora_compose(fl_lora *L) {
    for (int i = 0; i < L->n; i++) {
        fl_lora_slot *s = &L->s[i];
        float *w = s->p->w;
        const int64_t n = s->p->n;
        memcpy(w, s->w0, sizeof(float) * (size_t)n);
        fl_gemm(0, 0, s->out, s->in, L->rank, L->scale, s->B, L->rank, s->A, s->in, 1.0f, w, s->in);
        if (L->masked && s->mask) {
            const uint8_t *mk = s->mask;
            const float *w0 = s->w0;
            #pragma omp parallel for schedule(static)
            for (int64_t k = 0; k < n; k++)
                if (!mk[k]) w[k] = w0[k];   /* = 0: the update is M o (BA) */
        }
    }
}

void fl_lora_grads(fl_lora *L, float gscale) {
    for (int i = 0; i < L->n; i++) {
        fl_lora_slot *s = &L->s[i];
        float *G = s->p->g;
        const int64_t n = s->p->n;
        if (L->masked && s->mask) {
            const uint8_t *mk = s->mask;
            #pragma omp parallel for schedule(static)
            for (int64_t k = 0; k < n; k++)
                if (!mk[k]) G[k] = 0.0f;
        }
        const float a = L->scale * gscale;
        /* dB [out, rank] = s G A^T ;  dA [rank, in] = s B^T G */
        fl_gemm(0, 1, s->out, L->rank, s->in, a, G, s->in, s->A, s->in, 0.0f, s->gB, L->rank);
        fl_gemm(1, 0, L->rank, s->in, s->out, a, s->B, L->rank, G, s->in, 0.0f, s->gA, s->in);
        memset(G, 0, sizeof(float) * (size_t)n);
    }
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

double fl_lora_adamw_step(fl_lora *L, const fl_adamw_cfg *c) {
    L->t++;
    double ss = 0;
    for (int i = 0; i < L->n; i++) {
        fl_lora_slot *s = &L->s[i];
        ss += sumsq(s->gA, (int64_t)L->rank * s->in) + sumsq(s->gB, (int64_t)s->out * L->rank);
    }
    double gnorm = sqrt(ss);
    float gscale = (c->clip_norm > 0 && gnorm > c->clip_norm) ? (float)(c->clip_norm / gnorm) : 1.0f;
    float lr = (float)(c->lr * fl_lr_factor(c, L->t));
    float bc1 = 1.0f - powf(c->beta1, (float)L->t), bc2 = 1.0f - powf(c->beta2, (float)L->t);
    for (int i = 0; i < L->n; i++) {
        fl_lora_slot *s = &L->s[i];
        adam_update(c, s->A, s->gA, s->mA, s->vA, (int64_t)L->rank * s->in, L->rank, s->in, lr, gscale, bc1, bc2);
        adam_update(c, s->B, s->gB, s->mB, s->vB, (int64_t)s->out * L->rank, s->out, L->rank, lr, gscale, bc1, bc2);
    }
    return gnorm;
}

void fl_lora_detach(fl_lora *L, int merge) {
    if (!L->s) return;
    if (merge) fl_lora_compose(L);
    for (int i = 0; i < L->n; i++) {
        fl_lora_slot *s = &L->s[i];
        if (!merge) memcpy(s->p->w, s->w0, sizeof(float) * (size_t)s->p->n);
        s->p->mask = s->mask;
        fl_param_set_trainable(s->p, 0);
        fl_free(s->w0); fl_free(s->A); fl_free(s->B); fl_free(s->gA); fl_free(s->gB);
        fl_free(s->mA); fl_free(s->vA); fl_free(s->mB); fl_free(s->vB);
    }
    free(L->s);
    L->s = NULL;
    L->n = 0;
}

size_t fl_lora_bytes(const fl_lora *L) {
    size_t b = 0;
    for (int i = 0; i < L->n; i++) {
        const fl_lora_slot *s = &L->s[i];
        b += fl_alloc_size(s->w0) + fl_alloc_size(s->A) + fl_alloc_size(s->B) + fl_alloc_size(s->gA) +
             fl_alloc_size(s->gB) + fl_alloc_size(s->mA) + fl_alloc_size(s->vA) + fl_alloc_size(s->mB) +
             fl_alloc_size(s->vB);
    }
    return b;
}

/* ---- the retraining ----------------------------------------------------- */

static double mean_ce(fl_model *m, const int32_t *tok, int32_t *tg, int nwin, int T, int batch) {
    double s = 0;
    int64_t n = 0;
    for (int w0 = 0; w0 < nwin; w0 += batch) {
        int B = nwin - w0 < batch ? nwin - w0 : batch;
        fl_fwd a = { .B = B, .T = T, .tokens = tok + (int64_t)w0 * T, .targets = tg + (int64_t)w0 * T };
        if (fl_forward(m, fl_range_whole(m), &a, NULL) != 0) return NAN;
        s += a.loss * a.n_targets;
        n += a.n_targets;
    }
    return n ? s / n : NAN;
}

int fl_retrain_lora(fl_model *m, int masked, int rank, float alpha, const int32_t *tok, int nwin, int T,
                    const fl_recon_opts *o, fl_unit_report *rep) {
    if (nwin < 1 || T < 2) return fl_err("retrain:%s: need at least one window of 2 tokens", masked ? "masklora" : "lora");
    const int batch = o->batch > 0 ? (o->batch < nwin ? o->batch : nwin) : 1, accum = o->grad_accum > 0 ? o->grad_accum : 1;
    const int epochs = o->epochs > 0 ? o->epochs : 1, per_epoch = (nwin + batch - 1) / batch;
    const int micro = per_epoch * epochs, steps = (micro + accum - 1) / accum;
    double t0 = now_s();
    snprintf(rep->name, sizeof rep->name, "model (retrain:%s r=%d alpha=%g%s)", masked ? "masklora" : "lora", rank,
             (double)alpha, masked ? "" : ", merged dense");
    /* targets: the next token inside each window; the last has none */
    int32_t *tg = malloc(sizeof(int32_t) * (size_t)nwin * T);
    for (int w = 0; w < nwin; w++)
        for (int t = 0; t < T; t++) tg[(int64_t)w * T + t] = t + 1 < T ? tok[(int64_t)w * T + t + 1] : -1;
    rep->loss_before = mean_ce(m, tok, tg, nwin, T, batch);
    size_t live0 = fl_mem_live();
    fl_mem_reset_peak();
    fl_lora L;
    if (fl_lora_attach(&L, m, masked, rank, alpha, o->seed) != 0) { fl_lora_detach(&L, 0); free(tg); return -1; }
    fl_adamw_cfg oc = fl_adamw_defaults();
    oc.lr = o->lr; oc.weight_decay = o->weight_decay; oc.total_steps = steps; oc.warmup_steps = steps / 10;
    oc.sched = FL_SCHED_LINEAR;
    fl_acts *acts = fl_acts_new();
    int32_t *tb = malloc(sizeof(int32_t) * (size_t)batch * T), *gb = malloc(sizeof(int32_t) * (size_t)batch * T);
    int *perm = malloc(sizeof(int) * nwin);
    for (int i = 0; i < nwin; i++) perm[i] = i;
    uint64_t rs = o->seed * 0x9E3779B97F4A7C15ull + 5;
    int rc = 0, mb = 0, tty = o->progress && isatty(2);
    for (int ep = 0; ep < epochs && rc == 0; ep++) {
        for (int i = nwin - 1; i > 0; i--) {
            rs = rs * 6364136223846793005ull + 1442695040888963407ull;
            int j = (int)((rs >> 33) % (uint64_t)(i + 1)), t = perm[i];
            perm[i] = perm[j]; perm[j] = t;
        }
        for (int w0 = 0; w0 < nwin && rc == 0; w0 += batch) {
            int B = nwin - w0 < batch ? nwin - w0 : batch;
            for (int b = 0; b < B; b++) {
                memcpy(tb + (int64_t)b * T, tok + (int64_t)perm[w0 + b] * T, sizeof(int32_t) * T);
                memcpy(gb + (int64_t)b * T, tg + (int64_t)perm[w0 + b] * T, sizeof(int32_t) * T);
            }
            fl_fwd a = { .B = B, .T = T, .tokens = tb, .targets = gb };
            if ((rc = fl_forward(m, fl_range_whole(m), &a, acts)) != 0) break;
            if (!isfinite(a.loss)) {
                rep->diverged = 1;
                rc = fl_err("retrain:%s diverged at step %d (loss %g)", masked ? "masklora" : "lora", L.t + 1, a.loss);
                break;
            }
            if ((rc = fl_backward(m, fl_range_whole(m), acts, NULL, NULL)) != 0) break;
            if (++mb % accum == 0 || mb == micro) {
                fl_lora_grads(&L, 1.0f / accum);
                fl_lora_adamw_step(&L, &oc);
                fl_lora_compose(&L);
            }
            if (tty) { fprintf(stderr, "\r  retrain step %d/%d loss %.4f   ", L.t, steps, a.loss); fflush(stderr); }
        }
    }
    if (tty) fprintf(stderr, "\r%*s\r", 60, "");
    rep->steps = L.t;
    fl_acts_free(acts);
    free(tb); free(gb); free(perm);
    rep->working_bytes = fl_mem_peak() - live0 + sizeof(float) * (size_t)fl_model_num_params(m);
    rep->peak_bytes = fl_mem_peak();
    fl_lora_detach(&L, rc == 0);   /* merge, or back to W0 on failure */
    for (int i = 0; i < m->n_params; i++) fl_param_set_trainable(&m->params[i], 0);
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
        rep->loss_after = mean_ce(m, tok, tg, nwin, T, batch);
        if (!isfinite(rep->loss_after)) {
            rep->diverged = 1;
            rc = fl_err("retrain:%s: the merged model's loss is %g", masked ? "masklora" : "lora", rep->loss_after);
        }
    }
    free(tg);
    rep->seconds = now_s() - t0;
    return rc;
}
