/* Retraining baselines: every linear is pruned first (block by block on the
 * sparse stream, as with `none`), then the whole model is trained with
 * next-token cross-entropy on the calibration windows: all parameters
 * (retrain:full) or biases and norms only (retrain:bias-norm). Pruned
 * weights stay exactly zero (masks). retrain:lora and retrain:masklora
 * (lora.c) train low-rank adapters instead, through the same loop
 * (fl_retrain_loop below), so all four see the same batches. --distill
 * works with all four. */
#include "recon.h"
#include "predict.h"
#include "hidden.h"
#include "model/clock.h"
#include "model/rng.h"
#include "model/train.h"
#include "model/adamw.h"
#include "model/alloc.h"
#include "model/err.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int32_t *fl_retrain_targets(const int32_t *tok, int nwin, int T) {
    int32_t *tg = malloc(sizeof(int32_t) * (size_t)nwin * T);
    for (int w = 0; w < nwin; w++)
        for (int t = 0; t < T; t++) tg[(int64_t)w * T + t] = t + 1 < T ? tok[(int64_t)w * T + t + 1] : -1;
    return tg;
}

double fl_retrain_mean_ce(fl_model *m, const int32_t *tok, const int32_t *tg, int nwin, int T, int batch) {
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

int fl_retrain_soft_targets(fl_model *teacher, const int32_t *tb, const int32_t *gb, int B, int T, float *soft) {
    const int V = teacher->cfg.vocab;
    fl_fwd ta = { .B = B, .T = T, .tokens = tb, .targets = gb, .logits = soft };
    if (fl_forward(teacher, fl_range_whole(teacher), &ta, NULL) != 0) return -1;
    #pragma omp parallel for schedule(static)
    for (int64_t n = 0; n < (int64_t)B * T; n++) {   /* softmax in place */
        float *row = soft + n * V, mx = row[0];
        for (int j = 1; j < V; j++) mx = row[j] > mx ? row[j] : mx;
        double z = 0;
        for (int j = 0; j < V; j++) { row[j] = expf(row[j] - mx); z += row[j]; }
        for (int j = 0; j < V; j++) row[j] = (float)(row[j] / z);
    }
    return 0;
}

/* One optimiser step of the whole-model loop: the gradients summed over
 * `accum` micro-batches are averaged, then AdamW. */
typedef struct { fl_adamw *opt; } full_step_ctx;
static void full_step(void *ctx, int accum) {
    fl_adamw *opt = ((full_step_ctx *)ctx)->opt;
    if (accum > 1)
        for (int i = 0; i < opt->n; i++)
            for (int64_t k = 0; k < opt->p[i]->n; k++) opt->p[i]->g[k] /= accum;
    fl_adamw_step(opt);
}

/* One micro-batch of the whole model: the windows idx[0..B) gathered, the
 * teacher's distribution with --distill, forward with next-token targets,
 * backward over the whole model. */
typedef struct {
    fl_model *m, *teacher;
    const int32_t *tok, *tg;
    int T;
    fl_acts *acts;
    int32_t *tb, *gb;
    float *soft;
    void (*step)(void *ctx, int accum);
    void *step_ctx;
    const fl_recon_opts *o;
    fl_hidden_run hr;      /* --hidden-distill: the block-by-block run */
    float *th;             /* the teacher's hidden states for the batch */
} model_batch;

static int model_forward(void *ctx, const int *idx, int B, double *loss) {
    model_batch *c = ctx;
    for (int b = 0; b < B; b++) {
        memcpy(c->tb + (int64_t)b * c->T, c->tok + (int64_t)idx[b] * c->T, sizeof(int32_t) * c->T);
        memcpy(c->gb + (int64_t)b * c->T, c->tg + (int64_t)idx[b] * c->T, sizeof(int32_t) * c->T);
    }
    if (c->soft && fl_retrain_soft_targets(c->teacher, c->tb, c->gb, B, c->T, c->soft) != 0) return -1;
    if (c->th) {
        double mse;
        if (fl_hidden_teacher(c->teacher, c->tb, B, c->T, c->o->hidden_map, c->m->cfg.n_layer, c->th) != 0) return -1;
        return fl_hidden_forward(&c->hr, c->m, c->tb, c->gb, c->soft, B, c->T, c->th, c->o->hidden_weight, !c->o->hidden_alone,
                                 loss, &mse);
    }
    fl_fwd a = { .B = B, .T = c->T, .tokens = c->tb, .targets = c->gb, .soft = c->soft };
    if (fl_forward(c->m, fl_range_whole(c->m), &a, c->acts) != 0) return -1;
    *loss = a.loss;
    return 0;
}

static int model_backward(void *ctx, int B) {
    (void)B;
    model_batch *c = ctx;
    if (c->th) return fl_hidden_backward(&c->hr, c->m);
    if (fl_backward(c->m, fl_range_whole(c->m), c->acts, NULL, NULL) != 0) return -1;
    fl_acts_release(c->acts);
    return 0;
}

static void model_step(void *ctx, int accum) {
    model_batch *c = ctx;
    c->step(c->step_ctx, accum);
}

int fl_retrain_loop(fl_model *m, const int32_t *tok, const int32_t *tg, int nwin, int T, int batch, int epochs, int accum,
                    const fl_recon_opts *o, const char *what, void (*step)(void *ctx, int accum), void *ctx,
                    fl_unit_report *rep) {
    model_batch c = { .m = m, .teacher = o->teacher, .tok = tok, .tg = tg, .T = T, .acts = fl_acts_new(),
                      .tb = malloc(sizeof(int32_t) * (size_t)batch * T), .gb = malloc(sizeof(int32_t) * (size_t)batch * T),
                      /* distillation: the teacher's probabilities for the batch [B*T, V] */
                      .soft = o->teacher && !o->teacher_hidden_only ? fl_allocf((size_t)batch * T * m->cfg.vocab) : NULL,
                      .step = step, .step_ctx = ctx, .o = o,
                      .th = o->teacher && o->hidden_weight > 0
                                ? fl_allocf((size_t)m->cfg.n_layer * batch * T * m->cfg.d) : NULL };
    if (o->hidden_weight > 0 && (!o->teacher || !o->hidden_map)) return fl_err("%s: hidden-state distillation without a teacher", what);
    fl_train_spec ts = { .nwin = nwin, .batch = batch, .epochs = epochs, .accum = accum, .rng = fl_lcg31,
                         .state = o->seed * 0x9E3779B97F4A7C15ull + 5, .forward = model_forward,
                         .backward = model_backward, .step = model_step, .ctx = &c, .what = what,
                         .label = o->progress ? what : NULL };
    int rc = (c.tb && c.gb) ? fl_train_loop(&ts, &rep->steps, &rep->diverged) : fl_err("%s: out of memory", what);
    fl_acts_free(c.acts);
    free(c.tb); free(c.gb);
    fl_free(c.soft);
    fl_free(c.th);
    fl_hidden_free(&c.hr);
    return rc;
}

int fl_retrain_full(fl_model *m, int bias_norm, const int32_t *tok, int nwin, int T, const fl_recon_opts *o,
                    fl_unit_report *rep) {
    bias_norm |= o->bias_norm_only;
    const int batch = o->batch > 0 ? (o->batch < nwin ? o->batch : nwin) : 1, accum = o->grad_accum > 0 ? o->grad_accum : 1;
    const int epochs = o->epochs > 0 ? o->epochs : 1, per_epoch = (nwin + batch - 1) / batch;
    const int micro = per_epoch * epochs, steps = (micro + accum - 1) / accum;
    double t0 = fl_wall_s();
    snprintf(rep->name, sizeof rep->name, "model (retrain:%s%s%s)", bias_norm ? "bias-norm" : "full", o->teacher && !o->teacher_hidden_only ? ", distilled" : "",
             o->hidden_weight > 0 ? ", hidden-state" : "");
    /* targets: the next token inside each window; the last has none */
    int32_t *tg = fl_retrain_targets(tok, nwin, T);
    rep->loss_before = fl_retrain_mean_ce(m, tok, tg, nwin, T, batch);
    rep->tokens = (int64_t)nwin * T * epochs;
    size_t live0 = fl_mem_live();
    fl_mem_reset_peak();
    int n = 0;
    for (int i = 0; i < m->n_params; i++) {
        fl_param *p = &m->params[i];
        int on = !bias_norm || p->kind == FL_PK_NORM_W || p->kind == FL_PK_NORM_B || p->kind == FL_PK_LINEAR_B;
        fl_param_set_trainable(p, on);
        n += on;
    }
    if (!n) { free(tg); return fl_err("retrain:bias-norm: the model has no bias or norm parameter"); }
    fl_adamw_cfg oc = fl_adamw_defaults();
    oc.lr = o->lr; oc.weight_decay = o->weight_decay; oc.total_steps = steps; oc.warmup_steps = steps / 10;
    oc.sched = FL_SCHED_LINEAR; oc.optim = o->optim;
    fl_adamw opt;
    if (fl_adamw_init(&opt, m, &oc) != 0) { free(tg); return -1; }
    full_step_ctx sc = { &opt };
    int rc = fl_retrain_loop(m, tok, tg, nwin, T, batch, epochs, accum, o, "retraining", full_step, &sc, rep);
    fl_adamw_free(&opt);
    rep->working_bytes = fl_mem_peak() - live0 + sizeof(float) * (size_t)fl_model_num_params(m);
    rep->peak_bytes = fl_mem_peak();
    for (int i = 0; i < m->n_params; i++) fl_param_set_trainable(&m->params[i], 0);
    if (rc == 0) rep->loss_after = fl_retrain_mean_ce(m, tok, tg, nwin, T, batch);
    free(tg);
    rep->seconds = fl_wall_s() - t0;
    return rc;
}

/* ---- the descriptors ------------------------------------------------------ */

static int full_plan(const fl_config *c, const void *priv, fl_plan *p) {
    (void)c; (void)priv;
    return fl_plan_model(p, "model (retrain:full)");
}
static int bias_norm_plan(const fl_config *c, const void *priv, fl_plan *p) {
    (void)c; (void)priv;
    return fl_plan_model(p, "model (retrain:bias-norm)");
}

static int full_recover(const fl_recover_job *j, fl_unit_report *rep) {
    return fl_retrain_full(j->m, 0, j->tok, j->nwin, j->T, j->o, rep);
}
static int bias_norm_recover(const fl_recover_job *j, fl_unit_report *rep) {
    return fl_retrain_full(j->m, 1, j->tok, j->nwin, j->T, j->o, rep);
}

static int full_predict(const fl_predict_job *j, fl_predict_unit *out) {
    fl_pred_retrain(j->s, j->bias_norm_only, j->optim, j->epochs, out);
    return 0;
}
static int bias_norm_predict(const fl_predict_job *j, fl_predict_unit *out) {
    fl_pred_retrain(j->s, 1, j->optim, j->epochs, out);
    return 0;
}

const fl_reconstructor fl_rec_retrain_full = {
    .name = "retrain:full", .alias = "retrain",
    .desc = "prune everything, then retrain every parameter on --retrain-samples windows (cross-entropy)",
    .flags = FL_REC_DISTILL, .lr_class = FL_LR_RETRAIN,
    .plan = full_plan, .recover = full_recover, .predict = full_predict,
};

const fl_reconstructor fl_rec_retrain_bias_norm = {
    .name = "retrain:bias-norm",
    .desc = "prune everything, then retrain only biases and norms on --retrain-samples windows (cross-entropy)",
    .flags = FL_REC_DISTILL, .lr_class = FL_LR_RETRAIN,
    .plan = bias_norm_plan, .recover = bias_norm_recover, .predict = bias_norm_predict,
};
