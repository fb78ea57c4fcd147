/* LoRA and MaskLoRA retraining; see lora.h. */
#include "lora.h"
#include "predict.h"
#include "model/clock.h"
#include "model/rng.h"
#include "model/adamw.h"
#include "model/alloc.h"
#include "model/err.h"
#include "model/gemm.h"
#include "model/ops.h"
#include <errno.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- adapters ------------------------------------------------------------ */

int fl_lora_attach(fl_lora *L, fl_model *m, int masked, int rank, float alpha, uint64_t seed) {
    return fl_lora_attach_opt(L, m, masked, rank, alpha, seed, FL_OPTIM_ADAMW);
}

int fl_lora_attach_opt(fl_lora *L, fl_model *m, int masked, int rank, float alpha, uint64_t seed, fl_optim optim) {
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
            ad->A = fl_allocf(na); ad->gA = fl_allocf(na); s->mA = fl_allocf(na);
            ad->B = fl_allocf(nb); ad->gB = fl_allocf(nb); s->mB = fl_allocf(nb);
            if (optim == FL_OPTIM_ADAMW) { s->vA = fl_allocf(na); s->vB = fl_allocf(nb); }   /* SGD: m is the momentum */
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

double fl_lora_adamw_step(fl_lora *L, const fl_adamw_cfg *c, float gscale) {
    L->t++;
    double ss = 0;
    for (int i = 0; i < L->n; i++) {
        fl_lora_slot *s = &L->s[i];
        ss += fl_sumsq(s->ad.gA, (int64_t)L->rank * s->in) + fl_sumsq(s->ad.gB, (int64_t)s->out * L->rank);
    }
    double gnorm = sqrt(ss) * gscale;
    float clip = (c->clip_norm > 0 && gnorm > c->clip_norm) ? (float)(c->clip_norm / gnorm) : 1.0f;
    float lr = (float)(c->lr * fl_lr_factor(c, L->t));
    float bc1 = 1.0f - powf(c->beta1, (float)L->t), bc2 = 1.0f - powf(c->beta2, (float)L->t);
    for (int i = 0; i < L->n; i++) {
        fl_lora_slot *s = &L->s[i];
        if (c->optim == FL_OPTIM_SGD) {
            fl_sgd_update(c, s->ad.A, s->ad.gA, s->mA, NULL, (int64_t)L->rank * s->in, L->rank, s->in, lr, gscale * clip);
            fl_sgd_update(c, s->ad.B, s->ad.gB, s->mB, NULL, (int64_t)s->out * L->rank, s->out, L->rank, lr, gscale * clip);
            continue;
        }
        fl_adamw_update(c, s->ad.A, s->ad.gA, s->mA, s->vA, NULL, (int64_t)L->rank * s->in, L->rank, s->in, lr, gscale * clip, bc1, bc2);
        fl_adamw_update(c, s->ad.B, s->ad.gB, s->mB, s->vB, NULL, (int64_t)s->out * L->rank, s->out, L->rank, lr, gscale * clip, bc1, bc2);
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

size_t fl_lora_predict_working(const fl_config *c, int masked, int rank, int bias_norm, int distill, int B, int T) {
    return fl_lora_predict_working_opt(c, masked, rank, bias_norm, distill, B, T, FL_OPTIM_ADAMW);
}

size_t fl_lora_predict_working_opt(const fl_config *c, int masked, int rank, int bias_norm, int distill, int B, int T,
                                   fl_optim optim) {
    const size_t d = c->d, qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_kv_head * c->head_dim, F = c->d_ff;
    const size_t N = (size_t)B * T, V = c->vocab;
    fl_linear_shape sh[7];
    const int k = fl_config_linears(c, sh);
    size_t lin_w = 0, adapters = 0, largest = 0;
    for (int j = 0; j < k; j++) {
        const size_t rows = (size_t)sh[j].rows, cols = (size_t)sh[j].cols;
        lin_w += rows * cols;
        adapters += (size_t)(2 + fl_optim_states(optim)) * rank * (rows + cols);   /* A, B, their gradients and moments */
        if (rows * cols > largest) largest = rows * cols;
    }
    /* parameters, as fl_model_create registers them */
    size_t norms = (c->rms ? 1 : 2) * d, bias = 0;
    if (c->qkv_bias) bias += qd + 2 * kvd;
    if (c->o_bias) bias += d;
    if (c->mlp_bias) bias += (c->act == FL_ACT_SWIGLU ? 2 * F : F) + d;   /* llama's mlp_bias: gate, up and down */
    size_t params = V * d + (c->learned_pos ? (size_t)(c->max_pos + c->pos_offset) * d : 0) +
                    (size_t)c->n_layer * (lin_w + 2 * norms + bias) + norms + (c->tied ? 0 : V * d);
    /* bias_norm: a gradient and the optimiser's state per bias and norm float */
    size_t bn = bias_norm ? (size_t)(1 + fl_optim_states(optim)) * ((size_t)c->n_layer * (2 * norms + bias) + norms) : 0;
    fl_range whole = { 0, 2 * c->n_layer, 1, 1 };
    size_t lin_tmp = sizeof(float) * 2 * N * rank * !masked;   /* LoRA's [N, rank] pair in a linear's backward */
    return sizeof(float) * (params + bn + (size_t)c->n_layer * adapters + (masked ? largest : 0) + (distill ? N * V : 0)) +
           fl_acts_predict_bytes(c, whole, B, T) + fl_backward_tmp_bytes(c, whole, B, T, lin_tmp);
}

/* ---- the retraining ----------------------------------------------------- */

/* One optimiser step over the adapters (fl_retrain_loop's callback), and
 * over the biases and norms when they train too (opt, or NULL). */
typedef struct { fl_lora *L; const fl_adamw_cfg *oc; fl_adamw *opt; } lora_step_ctx;
static void lora_step(void *ctx, int accum) {
    lora_step_ctx *c = ctx;
    fl_lora_adamw_step(c->L, c->oc, 1.0f / accum);
    if (!c->opt) return;
    if (accum > 1)
        for (int i = 0; i < c->opt->n; i++)
            for (int64_t k = 0; k < c->opt->p[i]->n; k++) c->opt->p[i]->g[k] /= accum;
    fl_adamw_step(c->opt);
}

int fl_retrain_lora(fl_model *m, int masked, int rank, float alpha, int bias_norm, const int32_t *tok, int nwin, int T,
                    const fl_recon_opts *o, fl_unit_report *rep) {
    const char *mode = masked ? "masklora" : "lora";
    if (nwin < 1 || T < 2) return fl_err("retrain:%s: need at least one window of 2 tokens", mode);
    const int batch = o->batch > 0 ? (o->batch < nwin ? o->batch : nwin) : 1, accum = o->grad_accum > 0 ? o->grad_accum : 1;
    const int epochs = o->epochs > 0 ? o->epochs : 1, per_epoch = (nwin + batch - 1) / batch;
    const int micro = per_epoch * epochs, steps = (micro + accum - 1) / accum;
    double t0 = fl_wall_s();
    /* a label only: an extreme rank or alpha may cut its tail, harmlessly */
    char label[160];
    snprintf(label, sizeof label, "model (retrain:%s r=%d alpha=%g%s%s%s%s)", mode, rank, (double)alpha,
             bias_norm ? " +bias-norm" : "", masked ? "" : ", merged dense", o->teacher && !o->teacher_hidden_only ? ", distilled" : "",
             o->hidden_weight > 0 ? ", hidden-state" : "");
    snprintf(rep->name, sizeof rep->name, "%.63s", label);
    int32_t *tg = fl_retrain_targets(tok, nwin, T);
    rep->loss_before = fl_retrain_mean_ce(m, tok, tg, nwin, T, batch);
    rep->tokens = (int64_t)nwin * T * epochs;
    size_t live0 = fl_mem_live();
    fl_mem_reset_peak();
    fl_lora L;
    if (fl_lora_attach_opt(&L, m, masked, rank, alpha, o->seed, o->optim) != 0) { fl_lora_detach(&L, 0); free(tg); return -1; }
    fl_adamw_cfg oc = fl_adamw_defaults();
    oc.lr = o->lr; oc.weight_decay = o->weight_decay; oc.total_steps = steps; oc.warmup_steps = steps / 10;
    oc.sched = FL_SCHED_LINEAR; oc.optim = o->optim;
    /* biases and norms beside the adapters (fl_lora_attach froze them) */
    fl_adamw opt = { 0 };
    if (bias_norm) {
        int n = 0;
        for (int i = 0; i < m->n_params; i++) {
            fl_param *p = &m->params[i];
            int on = p->kind == FL_PK_NORM_W || p->kind == FL_PK_NORM_B || p->kind == FL_PK_LINEAR_B;
            fl_param_set_trainable(p, on);
            n += on;
        }
        if (n && fl_adamw_init(&opt, m, &oc) != 0) { fl_lora_detach(&L, 0); free(tg); return -1; }
    }
    lora_step_ctx sc = { &L, &oc, opt.n ? &opt : NULL };
    char what[32];
    snprintf(what, sizeof what, "retrain:%s", mode);
    int rc = fl_retrain_loop(m, tok, tg, nwin, T, batch, epochs, accum, o, what, lora_step, &sc, rep);
    if (opt.n) fl_adamw_free(&opt);
    for (int i = 0; i < m->n_params; i++) fl_param_set_trainable(&m->params[i], 0);
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
    rep->seconds = fl_wall_s() - t0;
    return rc;
}

/* ---- the descriptors ------------------------------------------------------ */

typedef fl_lora_opts lora_opts;

/* The same options for both, with their own defaults (lora.h: MaskLoRA's
 * are the authors'). */
#define LORA_OPTIONS(RANK, ALPHA, BIAS_NORM)                                                                                  \
    {                                                                                                                       \
        { .name = "rank", .alias = "r", .help = "adapter rank", .type = FL_OPT_INT, .offset = offsetof(lora_opts, rank),    \
          .def = (RANK), .min = 1, .max = 65536 },                                                                          \
        { .name = "alpha", .alias = "a", .help = "scale numerator: the update is (alpha/rank) B A", .type = FL_OPT_FLOAT,   \
          .offset = offsetof(lora_opts, alpha), .def = (ALPHA), .min = 0, .max = 1e30 },                                    \
        { .name = "bias-norm", .alias = "bn", .help = "1: train every bias and norm beside the adapters, 0: adapters only", \
          .type = FL_OPT_INT, .offset = offsetof(lora_opts, bias_norm), .def = (BIAS_NORM), .min = 0, .max = 1 },           \
        { 0 },                                                                                                              \
    }
static const fl_option lora_options[] = LORA_OPTIONS(FL_LORA_RANK_DEFAULT, FL_LORA_ALPHA_DEFAULT, FL_LORA_BIAS_NORM_DEFAULT);
static const fl_option masklora_options[] =
    LORA_OPTIONS(FL_MASKLORA_RANK_DEFAULT, FL_MASKLORA_ALPHA_DEFAULT, FL_MASKLORA_BIAS_NORM_DEFAULT);

static int lora_init(void *priv) {
    const lora_opts *o = priv;
    if (!(o->alpha > 0)) return fl_err("LoRA: alpha must be positive (got %g)", o->alpha);
    return 0;
}

static int lora_plan(const fl_config *c, const void *priv, fl_plan *p) {
    (void)c; (void)priv;
    return fl_plan_model(p, "model (retrain:lora)");
}
static int masklora_plan(const fl_config *c, const void *priv, fl_plan *p) {
    (void)c; (void)priv;
    return fl_plan_model(p, "model (retrain:masklora)");
}

static int recover_adapters(const fl_recover_job *j, int masked, fl_unit_report *rep) {
    const lora_opts *lo = j->priv;
    if (j->o->bias_norm_only) return fl_err("--trainable bias-norm does not apply to retrain:%s", masked ? "masklora" : "lora");
    return fl_retrain_lora(j->m, masked, lo->rank, (float)lo->alpha, lo->bias_norm, j->tok, j->nwin, j->T, j->o, rep);
}
static int lora_recover(const fl_recover_job *j, fl_unit_report *rep) { return recover_adapters(j, 0, rep); }
static int masklora_recover(const fl_recover_job *j, fl_unit_report *rep) { return recover_adapters(j, 1, rep); }

/* The adapters, their gradients and moments, the saved activations and
 * (MaskLoRA) the one scratch; the model and its masks are the cell's. */
static int predict_adapters(const fl_predict_job *j, int masked, fl_predict_unit *out) {
    const lora_opts *lo = j->priv;
    out->working = (int64_t)fl_lora_predict_working_opt(j->s->c, masked, lo->rank, lo->bias_norm, 0, (int)j->s->b, (int)j->s->T,
                                                        j->optim);
    out->rel_peak = out->working - 4 * fl_pred_all_params(j->s, 0);
    /* the mean cross-entropy before and after (merged: plain), every epoch's
     * forward and backward through the adapters, batch by batch, and the merge */
    const fl_shapes *s = j->s;
    const int L2 = 2 * s->c->n_layer, ad = masked ? 2 : 1;
    const int64_t nb = j->epochs * ((s->nwin + s->b - 1) / s->b), nb1 = (s->nwin + s->b - 1) / s->b;
    fl_linear_shape sh[7];
    const int k = fl_config_linears(s->c, sh);
    int64_t merge = 0;
    for (int i = 0; i < k; i++) merge += 2 * (int64_t)sh[i].rows * sh[i].cols * lo->rank;
    out->flops = fl_pred_pass_flops(s, 0, L2, 1, s->nwin, nb1, 0, 0, 0, 0) * 2 +
                 fl_pred_pass_flops(s, 0, L2, 1, j->epochs * s->nwin, nb, 0, 0, ad, lo->rank) +
                 fl_pred_pass_flops(s, 0, L2, 1, j->epochs * s->nwin, nb, 1, 0, ad, lo->rank) + merge * s->c->n_layer;
    return 0;
}
static int lora_predict(const fl_predict_job *j, fl_predict_unit *out) { return predict_adapters(j, 0, out); }
static int masklora_predict(const fl_predict_job *j, fl_predict_unit *out) { return predict_adapters(j, 1, out); }

const fl_reconstructor fl_rec_retrain_lora = {
    .name = "retrain:lora", .desc = "prune everything, then train LoRA adapters on every block linear and merge (dense)",
    .options = lora_options, .priv_size = sizeof(lora_opts), .init = lora_init,
    .flags = FL_REC_DISTILL | FL_REC_DENSIFIES, .lr_class = FL_LR_RETRAIN,
    .plan = lora_plan, .recover = lora_recover, .predict = lora_predict,
};

const fl_reconstructor fl_rec_retrain_masklora = {
    .name = "retrain:masklora", .desc = "prune everything, then train masked LoRA adapters (M o BA): stays sparse",
    .options = masklora_options, .priv_size = sizeof(lora_opts), .init = lora_init,
    .flags = FL_REC_DISTILL, .lr_class = FL_LR_RETRAIN,
    .plan = masklora_plan, .recover = masklora_recover, .predict = masklora_predict,
};
