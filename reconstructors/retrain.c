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
#include "model/clock.h"
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

void fl_retrain_shuffle(int *perm, int n, uint64_t *rs) {
    for (int i = n - 1; i > 0; i--) {
        *rs = *rs * 6364136223846793005ull + 1442695040888963407ull;
        int j = (int)((*rs >> 33) % (uint64_t)(i + 1)), t = perm[i];
        perm[i] = perm[j]; perm[j] = t;
    }
}

int fl_retrain_batch(const int32_t *tok, const int32_t *tg, const int *perm, int nwin, int T, int w0, int batch,
                     int32_t *tb, int32_t *gb) {
    int B = nwin - w0 < batch ? nwin - w0 : batch;
    for (int b = 0; b < B; b++) {
        memcpy(tb + (int64_t)b * T, tok + (int64_t)perm[w0 + b] * T, sizeof(int32_t) * T);
        memcpy(gb + (int64_t)b * T, tg + (int64_t)perm[w0 + b] * T, sizeof(int32_t) * T);
    }
    return B;
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

int fl_retrain_loop(fl_model *m, const int32_t *tok, const int32_t *tg, int nwin, int T, int batch, int epochs, int accum,
                    int steps, const fl_recon_opts *o, const char *what, void (*step)(void *ctx, int accum), void *ctx,
                    fl_unit_report *rep) {
    const int micro = (nwin + batch - 1) / batch * epochs;
    fl_acts *acts = fl_acts_new();
    int32_t *tb = malloc(sizeof(int32_t) * (size_t)batch * T), *gb = malloc(sizeof(int32_t) * (size_t)batch * T);
    /* distillation: the teacher's probabilities for the batch [B*T, V] */
    float *soft = o->teacher ? fl_allocf((size_t)batch * T * m->cfg.vocab) : NULL;
    int *perm = malloc(sizeof(int) * nwin);
    for (int i = 0; i < nwin; i++) perm[i] = i;
    uint64_t rs = o->seed * 0x9E3779B97F4A7C15ull + 5;
    int rc = 0, mb = 0, t = 0, tty = o->progress && isatty(2);
    for (int ep = 0; ep < epochs && rc == 0; ep++) {
        fl_retrain_shuffle(perm, nwin, &rs);
        for (int w0 = 0; w0 < nwin && rc == 0; w0 += batch) {
            int B = fl_retrain_batch(tok, tg, perm, nwin, T, w0, batch, tb, gb);
            if (soft && (rc = fl_retrain_soft_targets(o->teacher, tb, gb, B, T, soft)) != 0) break;
            fl_fwd a = { .B = B, .T = T, .tokens = tb, .targets = gb, .soft = soft };
            if ((rc = fl_forward(m, fl_range_whole(m), &a, acts)) != 0) break;
            if (!isfinite(a.loss)) {
                rep->diverged = 1;
                rc = fl_err("%s diverged at step %d (loss %g)", what, t + 1, a.loss);
                break;
            }
            if ((rc = fl_backward(m, fl_range_whole(m), acts, NULL, NULL)) != 0) break;
            fl_acts_release(acts);
            if (++mb % accum == 0 || mb == micro) { step(ctx, accum); t++; }
            if (tty) { fprintf(stderr, "\r  retrain step %d/%d loss %.4f   ", t, steps, a.loss); fflush(stderr); }
        }
    }
    if (tty) fprintf(stderr, "\r%*s\r", 60, "");
    rep->steps = t;
    fl_acts_free(acts);
    free(tb); free(gb); free(perm);
    fl_free(soft);
    return rc;
}

int fl_retrain_full(fl_model *m, int bias_norm, const int32_t *tok, int nwin, int T, const fl_recon_opts *o,
                    fl_unit_report *rep) {
    bias_norm |= o->bias_norm_only;
    const int batch = o->batch > 0 ? (o->batch < nwin ? o->batch : nwin) : 1, accum = o->grad_accum > 0 ? o->grad_accum : 1;
    const int epochs = o->epochs > 0 ? o->epochs : 1, per_epoch = (nwin + batch - 1) / batch;
    const int micro = per_epoch * epochs, steps = (micro + accum - 1) / accum;
    double t0 = fl_wall_s();
    snprintf(rep->name, sizeof rep->name, "model (retrain:%s%s)", bias_norm ? "bias-norm" : "full", o->teacher ? ", distilled" : "");
    /* targets: the next token inside each window; the last has none */
    int32_t *tg = fl_retrain_targets(tok, nwin, T);
    rep->loss_before = fl_retrain_mean_ce(m, tok, tg, nwin, T, batch);
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
    oc.sched = FL_SCHED_LINEAR;
    fl_adamw opt;
    if (fl_adamw_init(&opt, m, &oc) != 0) { free(tg); return -1; }
    full_step_ctx sc = { &opt };
    int rc = fl_retrain_loop(m, tok, tg, nwin, T, batch, epochs, accum, steps, o, "retraining", full_step, &sc, rep);
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

/* Prune every block as `none` does, then one unit: the model. */
static int retrain_plan(const fl_config *c, const char *name, fl_plan *p) {
    if (fl_plan_ranges(p, c, 2, 1, 0) != 0) return -1;
    return fl_plan_model(p, name);
}
static int full_plan(const fl_config *c, const void *priv, fl_plan *p) {
    (void)priv;
    return retrain_plan(c, "model (retrain:full)", p);
}
static int bias_norm_plan(const fl_config *c, const void *priv, fl_plan *p) {
    (void)priv;
    return retrain_plan(c, "model (retrain:bias-norm)", p);
}

static int full_recover(const fl_recover_job *j, fl_unit_report *rep) {
    return fl_retrain_full(j->m, 0, j->tok, j->nwin, j->T, j->o, rep);
}
static int bias_norm_recover(const fl_recover_job *j, fl_unit_report *rep) {
    return fl_retrain_full(j->m, 1, j->tok, j->nwin, j->T, j->o, rep);
}

static int full_predict(const fl_predict_job *j, fl_predict_unit *out) {
    fl_pred_retrain(j->s, j->bias_norm_only, out);
    return 0;
}
static int bias_norm_predict(const fl_predict_job *j, fl_predict_unit *out) {
    fl_pred_retrain(j->s, 1, out);
    return 0;
}

const fl_reconstructor fl_rec_retrain_full = {
    .name = "retrain:full", .alias = "retrain",
    .desc = "prune everything, then retrain every parameter on the calibration windows (cross-entropy)",
    .flags = FL_REC_DISTILL, .lr_class = FL_LR_RETRAIN,
    .plan = full_plan, .recover = full_recover, .predict = full_predict,
};

const fl_reconstructor fl_rec_retrain_bias_norm = {
    .name = "retrain:bias-norm",
    .desc = "prune everything, then retrain only biases and norms (cross-entropy)",
    .flags = FL_REC_DISTILL, .lr_class = FL_LR_RETRAIN,
    .plan = bias_norm_plan, .recover = bias_norm_recover, .predict = bias_norm_predict,
};
