/* Model parameters, the registry of tensors, and submodel forward/backward. */
#include "model.h"
#include "alloc.h"
#include "err.h"
#include "gemm.h"
#include "ops.h"
#include "rng.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *fl_family_name(fl_family f) {
    switch (f) {
    case FL_GPT2: return "gpt2";
    case FL_OPT: return "opt";
    case FL_LLAMA: return "llama";
    case FL_QWEN2: return "qwen2";
    }
    return "?";
}

void fl_config_family_defaults(fl_config *c, fl_family f) {
    c->family = f;
    c->bos_id = c->eos_id = -1;
    c->pos_offset = 0;
    c->rope_theta = 10000.0f;
    switch (f) {
    case FL_GPT2:
    case FL_OPT:
        c->rms = 0; c->act = f == FL_GPT2 ? FL_ACT_GELU_TANH : FL_ACT_RELU;
        c->learned_pos = 1; c->pos_offset = f == FL_OPT ? 2 : 0;
        c->qkv_bias = c->o_bias = c->mlp_bias = 1;
        c->tied = 1;
        c->eps = 1e-5f;
        break;
    case FL_LLAMA:
    case FL_QWEN2:
        c->rms = 1; c->act = FL_ACT_SWIGLU; c->learned_pos = 0;
        c->qkv_bias = f == FL_QWEN2; c->o_bias = 0; c->mlp_bias = 0;
        c->tied = 0;
        c->eps = 1e-6f;
        break;
    }
}

/* One size against its plausibility limit, before anything multiplies it. */
static int in_range(const char *what, const char *name, int v, int max) {
    if (v < 1 || v > max) return fl_err("%s: %s %d is out of range (1 to %d)", what, name, v, max);
    return 0;
}

int fl_config_validate(const fl_config *c, const char *what) {
    /* Each size alone first: a config from disk can say anything, and every
     * product below is then computed in int64 from bounded factors. */
    if (in_range(what, "vocabulary size", c->vocab, FL_MAX_VOCAB) || in_range(what, "hidden size", c->d, FL_MAX_HIDDEN) ||
        in_range(what, "layer count", c->n_layer, FL_MAX_LAYERS) || in_range(what, "attention head count", c->n_head, FL_MAX_HEADS) ||
        in_range(what, "MLP width", c->d_ff, FL_MAX_FFN) || in_range(what, "max positions", c->max_pos, FL_MAX_POSITIONS))
        return -1;
    if (c->n_kv_head <= 0 || c->n_head % c->n_kv_head != 0)
        return fl_err("%s: %d key/value heads do not divide %d attention heads", what, c->n_kv_head, c->n_head);
    if (c->head_dim <= 0 || c->head_dim > FL_MAX_HIDDEN || (c->rms && c->head_dim % 2))
        return fl_err("%s: head dimension %d must be in 1 to %d (and even for RoPE)", what, c->head_dim, FL_MAX_HIDDEN);
    const int64_t qd = (int64_t)c->n_head * c->head_dim;
    if (qd > FL_MAX_HIDDEN * 4)
        return fl_err("%s: %d heads x %d = %lld query features, more than %d", what, c->n_head, c->head_dim,
                      (long long)qd, FL_MAX_HIDDEN * 4);
    /* gpt2 / opt: positions are added to the stream, heads are slices of
     * it; a model whose heads were removed has fewer (freelunch's head_dim
     * key, model/checkpoint.c), never a head size that does not divide it */
    if (c->learned_pos && (qd > c->d || c->d % c->head_dim))
        return fl_err("%s: %d heads x %d do not fit hidden size %d (the head size must divide it)", what, c->n_head,
                      c->head_dim, c->d);
    /* the RoPE tables are computed, not read, so the weights' size does not
     * bound them: 2^26 floats each covers a 1M context at head_dim 128 */
    if (!c->learned_pos && (int64_t)c->max_pos * c->head_dim / 2 > FL_MAX_ROPE_FLOATS)
        return fl_err("%s: RoPE tables of %d positions x head dimension %d are more than %lld floats", what, c->max_pos,
                      c->head_dim, (long long)FL_MAX_ROPE_FLOATS);
    if (c->pos_offset < 0 || c->pos_offset > 16) return fl_err("%s: position offset %d out of range", what, c->pos_offset);
    for (int l = 0; l < FL_MAX_LAYERS; l++) {
        if (c->layer_kv[l] < 0 || c->layer_kv[l] > c->n_kv_head || c->layer_ff[l] < 0 || c->layer_ff[l] > c->d_ff)
            return fl_err("%s: block %d's %d key/value heads and %d MLP channels must be in 1 to %d and 1 to %d", what, l,
                          c->layer_kv[l], c->layer_ff[l], c->n_kv_head, c->d_ff);
        if (l >= c->n_layer && (c->layer_kv[l] || c->layer_ff[l])) return fl_err("%s: sizes of block %d beyond %d blocks", what, l, c->n_layer);
    }
    if (c->proj && in_range(what, "embedding projection width", c->proj, FL_MAX_HIDDEN)) return -1;
    if (!(c->eps > 0)) return fl_err("%s: norm epsilon must be positive", what);
    const int64_t np = fl_config_num_params(c);
    if (np > FL_MAX_PARAMS)
        return fl_err("%s: %lld parameters, more than freelunch's limit of %lld", what, (long long)np, (long long)FL_MAX_PARAMS);
    return 0;
}

int64_t fl_config_num_params(const fl_config *c) {
    const int64_t d = c->d;
    fl_linear_shape sh[7];
    int64_t blocks = 0;
    for (int l = 0; l < c->n_layer; l++) {
        const int k = fl_config_layer_linears(c, l, sh);
        int64_t blk = d * (c->rms ? 2 : 4);   /* two norms, weight [and bias] */
        for (int i = 0; i < k; i++) blk += (int64_t)sh[i].rows * sh[i].cols + (sh[i].bias ? sh[i].rows : 0);
        blocks += blk;
    }
    const int64_t e = c->proj ? c->proj : d;   /* embedding width */
    int64_t n = blocks + (c->post_ln ? 0 : d * (c->rms ? 1 : 2)) + (int64_t)c->vocab * e * (c->tied ? 1 : 2);
    if (c->proj) n += 2 * d * e;   /* project_in, project_out */
    if (c->learned_pos) n += ((int64_t)c->max_pos + c->pos_offset) * d;
    return n;
}

/* ---- parameter registry ------------------------------------------------ */

/* bfloats: the offset inside the current block, when blocks have storage
 * of their own (streamed); every block has the same layout. */
typedef struct { fl_param *p; int n, cap; size_t floats, bfloats; int own_blocks; } reg_t;

static fl_param *reg_add(reg_t *r, const char *name, fl_pkind kind, int layer, int rows, int cols) {
    fl_param *p = &r->p[r->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->kind = kind; p->layer = layer; p->rows = rows; p->cols = cols;
    p->n = (int64_t)rows * cols;
    size_t *at = layer >= 0 && r->own_blocks ? &r->bfloats : &r->floats;
    p->off = *at;
    /* keep every tensor 64-byte aligned inside the block */
    *at += (size_t)((p->n + 15) / 16 * 16);
    return p;
}

int fl_block_resident(const fl_model *m, int l) { return !m->stream || (m->blk && m->blk[l]); }

/* RoPE tables with scaled frequencies, as HF's rope init functions compute
 * inv_freq (transformers modeling_rope_utils: _compute_linear_scaling_rope_parameters,
 * _compute_llama3_parameters; both keep the attention scale at 1):
 *   linear: inv / factor;
 *   llama3: with wavelength 2 pi / inv and the original context C,
 *           wavelength > C / low_freq_factor:  inv / factor
 *           wavelength < C / high_freq_factor: inv
 *           between: (1 - t) inv / factor + t inv, t = (C / wavelength - low) / (high - low).
 * inv_freq is rounded to float as HF holds it, then angles in double, as
 * fl_rope_table does for plain RoPE. */
static void rope_scaled_table(const fl_config *c, float *cos_t, float *sin_t) {
    const int hd = c->head_dim, h2 = hd / 2;
    for (int i = 0; i < h2; i++) {
        double inv = (float)pow((double)c->rope_theta, -(2.0 * i) / hd);
        const double f = c->rope_factor;
        if (c->rope_scaling == FL_ROPE_LINEAR) inv = inv / f;
        else {
            const double C = c->rope_orig_max, lo = c->rope_low_freq, hi = c->rope_high_freq;
            const double wl = 2 * M_PI / inv;
            if (wl > C / lo) inv = inv / f;
            else if (!(wl < C / hi)) {
                const double t = (C / wl - lo) / (hi - lo);
                inv = (1 - t) * inv / f + t * inv;
            }
        }
        const float invf = (float)inv;
        for (int p = 0; p < c->max_pos; p++) {
            double a = (double)p * invf;
            cos_t[(int64_t)p * h2 + i] = (float)cos(a);
            sin_t[(int64_t)p * h2 + i] = (float)sin(a);
        }
    }
}

int fl_model_create(fl_model *m, const fl_config *c) { return fl_model_create_ex(m, c, 1); }

int fl_model_create_ex(fl_model *m, const fl_config *c, int blocks_resident) {
    if (fl_config_validate(c, "model config") != 0) return -1;
    memset(m, 0, sizeof *m);
    m->cfg = *c;
    /* fl_config_validate bounded every factor, so these products fit an int */
    const int L = c->n_layer, d = c->d, hd = c->head_dim;
    /* a streamed block's storage (spill file, fl_model_hold) is one size
     * for every block: a model with per-layer sizes stays resident */
    for (int l = 0; l < L && !blocks_resident; l++)
        if (c->layer_kv[l] || c->layer_ff[l]) {
            memset(m, 0, sizeof *m);
            return fl_err("model config: a model with per-layer sizes (layer_num_key_value_heads, layer_intermediate_size) "
                          "cannot be streamed; load it without --stream");
        }
    reg_t r = { .p = calloc(8 + 17 * (size_t)L, sizeof(fl_param)), .own_blocks = !blocks_resident };
    m->layers = calloc((size_t)L, sizeof(fl_layer));
    if (!r.p || !m->layers) {
        free(r.p);
        free(m->layers);
        memset(m, 0, sizeof *m);
        return fl_err("model config: out of memory for %d layers", L);
    }
    char nm[64];
    const int E = c->proj ? c->proj : d;   /* embedding width */
    m->embed = reg_add(&r, "embed.weight", FL_PK_EMBED, -1, c->vocab, E);
    /* the projections are no block's linears: never pruned, trained with the
     * head by retraining (their kind is the head's) */
    if (c->proj) m->proj_in = reg_add(&r, "project_in.weight", FL_PK_HEAD, -1, d, E);
    if (c->learned_pos) m->pos = reg_add(&r, "pos.weight", FL_PK_POS, -1, c->max_pos + c->pos_offset, d);
    for (int l = 0; l < L; l++) {
        fl_layer *y = &m->layers[l];
        /* this block's own sizes (per-layer after FLAP's global ratio) */
        const int qd = fl_layer_heads(c, l) * hd, kvd = fl_layer_kv(c, l) * hd, F = fl_layer_ff(c, l);
        r.bfloats = 0;
#define ADD(field, sfx, kind, rows, cols) \
        (snprintf(nm, sizeof nm, "layers.%d.%s", l, sfx), y->field = reg_add(&r, nm, kind, l, rows, cols))
        ADD(attn_norm_w, "attn_norm.weight", FL_PK_NORM_W, d, 1);
        if (!c->rms) ADD(attn_norm_b, "attn_norm.bias", FL_PK_NORM_B, d, 1);
        ADD(q_w, "q.weight", FL_PK_LINEAR_W, qd, d);
        if (c->qkv_bias) ADD(q_b, "q.bias", FL_PK_LINEAR_B, qd, 1);
        ADD(k_w, "k.weight", FL_PK_LINEAR_W, kvd, d);
        if (c->qkv_bias) ADD(k_b, "k.bias", FL_PK_LINEAR_B, kvd, 1);
        ADD(v_w, "v.weight", FL_PK_LINEAR_W, kvd, d);
        if (c->qkv_bias) ADD(v_b, "v.bias", FL_PK_LINEAR_B, kvd, 1);
        ADD(o_w, "o.weight", FL_PK_LINEAR_W, d, qd);
        if (c->o_bias) ADD(o_b, "o.bias", FL_PK_LINEAR_B, d, 1);
        ADD(mlp_norm_w, "mlp_norm.weight", FL_PK_NORM_W, d, 1);
        if (!c->rms) ADD(mlp_norm_b, "mlp_norm.bias", FL_PK_NORM_B, d, 1);
        ADD(fc1_w, "fc1.weight", FL_PK_LINEAR_W, F, d);
        if (c->mlp_bias) ADD(fc1_b, "fc1.bias", FL_PK_LINEAR_B, F, 1);
        if (c->act == FL_ACT_SWIGLU) ADD(up_w, "up.weight", FL_PK_LINEAR_W, F, d);
        if (c->act == FL_ACT_SWIGLU && c->mlp_bias) ADD(up_b, "up.bias", FL_PK_LINEAR_B, F, 1);
        ADD(fc2_w, "fc2.weight", FL_PK_LINEAR_W, d, F);
        if (c->mlp_bias) ADD(fc2_b, "fc2.bias", FL_PK_LINEAR_B, d, 1);
#undef ADD
    }
    if (!c->post_ln) {
        m->final_norm_w = reg_add(&r, "final_norm.weight", FL_PK_NORM_W, -1, d, 1);
        if (!c->rms) m->final_norm_b = reg_add(&r, "final_norm.bias", FL_PK_NORM_B, -1, d, 1);
    }
    if (c->proj) m->proj_out = reg_add(&r, "project_out.weight", FL_PK_HEAD, -1, E, d);
    m->head = c->tied ? m->embed : reg_add(&r, "lm_head.weight", FL_PK_HEAD, -1, c->vocab, E);
    m->params = r.p;
    m->n_params = r.n;
    m->n_floats = r.floats;
    m->block_floats = r.bfloats;
    m->data = fl_try_allocf(r.floats);
    if (!m->data) {
        fl_err("model config: out of memory for %zu parameter bytes (%s, %d layers, hidden %d)", r.floats * sizeof(float),
               fl_family_name(c->family), L, d);
        fl_model_free(m);
        return -1;
    }
    for (int i = 0; i < r.n; i++) {
        fl_param *p = &r.p[i];
        if (p->layer >= 0 && !blocks_resident) continue;   /* w stays NULL until its block is held */
        p->w = m->data + p->off;
        if (p->kind == FL_PK_NORM_W)
            for (int64_t j = 0; j < p->n; j++) p->w[j] = 1.0f;
    }
    if (!c->learned_pos) {
        m->rope_cos = fl_try_allocf((size_t)c->max_pos * hd / 2);
        m->rope_sin = fl_try_allocf((size_t)c->max_pos * hd / 2);
        if (!m->rope_cos || !m->rope_sin) {
            fl_err("model config: out of memory for RoPE tables of %d positions x %d", c->max_pos, hd);
            fl_model_free(m);
            return -1;
        }
        if (c->rope_scaling == FL_ROPE_PLAIN) fl_rope_table(m->rope_cos, m->rope_sin, c->max_pos, hd, c->rope_theta);
        else rope_scaled_table(c, m->rope_cos, m->rope_sin);
    }
    return 0;
}

void fl_model_free(fl_model *m) {
    if (!m->params) return;
    for (int i = 0; i < m->n_params; i++) {
        fl_param *p = &m->params[i];
        fl_free(p->g); fl_free(p->m); fl_free(p->v); fl_free(p->mask);
    }
    if (m->stream_close) m->stream_close(m);
    for (int l = 0; m->blk && l < m->cfg.n_layer; l++) fl_free(m->blk[l]);
    free(m->blk);
    fl_free(m->data);
    fl_free(m->rope_cos);
    fl_free(m->rope_sin);
    free(m->params);
    free(m->layers);
    memset(m, 0, sizeof *m);
}

/* Box-Muller over splitmix64: a reproducible N(0,1) stream. */
static float gauss(uint64_t *s) { return (float)(sqrt(-2.0 * log(fl_rand_unit(s))) * cos(6.283185307179586 * fl_rand_unit(s))); }

void fl_model_init_random(fl_model *m, uint64_t seed) {
    uint64_t s = seed;
    const float resid = 0.02f / sqrtf(2.0f * m->cfg.n_layer);
    for (int i = 0; i < m->n_params; i++) {
        fl_param *p = &m->params[i];
        float std = 0.02f;
        if (p->kind == FL_PK_NORM_W) { for (int64_t j = 0; j < p->n; j++) p->w[j] = 1.0f; continue; }
        if (p->kind == FL_PK_NORM_B || p->kind == FL_PK_LINEAR_B) { memset(p->w, 0, sizeof(float) * p->n); continue; }
        if (strstr(p->name, ".o.weight") || strstr(p->name, ".fc2.weight")) std = resid;
        for (int64_t j = 0; j < p->n; j++) p->w[j] = std * gauss(&s);
        if (p->mask) fl_param_apply_mask(p);
    }
}

fl_param *fl_model_find(fl_model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->params[i].name, name) == 0) return &m->params[i];
    return NULL;
}

int64_t fl_model_num_params(const fl_model *m) {
    int64_t n = 0;
    for (int i = 0; i < m->n_params; i++) n += m->params[i].n;
    return n;
}

int fl_layer_linears(fl_model *m, int l, fl_param **w, fl_param **b, const char **names) {
    fl_layer *y = &m->layers[l];
    int swi = m->cfg.act == FL_ACT_SWIGLU, n = 0;
    fl_param *ws[7] = { y->q_w, y->k_w, y->v_w, y->o_w, y->fc1_w, swi ? y->up_w : y->fc2_w, y->fc2_w };
    fl_param *bs[7] = { y->q_b, y->k_b, y->v_b, y->o_b, y->fc1_b, swi ? y->up_b : y->fc2_b, y->fc2_b };
    static const char *n6[] = { "q", "k", "v", "o", "fc1", "fc2" };
    static const char *n7[] = { "q", "k", "v", "o", "gate", "up", "down" };
    n = swi ? 7 : 6;
    for (int i = 0; i < n; i++) {
        if (w) w[i] = ws[i];
        if (b) b[i] = bs[i];
        if (names) names[i] = swi ? n7[i] : n6[i];
    }
    return n;
}

int fl_config_nonuniform(const fl_config *c) {
    for (int l = 0; l < c->n_layer && l < FL_MAX_LAYERS; l++)
        if (fl_layer_kv(c, l) != c->n_kv_head || fl_layer_ff(c, l) != c->d_ff) return 1;
    return 0;
}

int fl_config_linears(const fl_config *c, fl_linear_shape o[7]) { return fl_config_layer_linears(c, -1, o); }

int fl_config_layer_linears(const fl_config *c, int l, fl_linear_shape o[7]) {
    const int H = l < 0 ? c->n_head : fl_layer_heads(c, l), KV = l < 0 ? c->n_kv_head : fl_layer_kv(c, l);
    const int d = c->d, qd = H * c->head_dim, kvd = KV * c->head_dim, F = l < 0 ? c->d_ff : fl_layer_ff(c, l);
    const int swi = c->act == FL_ACT_SWIGLU;
    int n = 0;
    o[n++] = (fl_linear_shape){ "q", qd, d, c->qkv_bias, 0, FL_SITE_QKV };
    o[n++] = (fl_linear_shape){ "k", kvd, d, c->qkv_bias, 0, FL_SITE_QKV };
    o[n++] = (fl_linear_shape){ "v", kvd, d, c->qkv_bias, 0, FL_SITE_QKV };
    o[n++] = (fl_linear_shape){ "o", d, qd, c->o_bias, 0, FL_SITE_O };
    o[n++] = (fl_linear_shape){ swi ? "gate" : "fc1", F, d, c->mlp_bias, 1, FL_SITE_MLP_IN };
    if (swi) o[n++] = (fl_linear_shape){ "up", F, d, c->mlp_bias, 1, FL_SITE_MLP_IN };
    o[n++] = (fl_linear_shape){ swi ? "down" : "fc2", d, F, c->mlp_bias, 1, FL_SITE_MLP_OUT };
    return n;
}

/* ---- trainability and masks ------------------------------------------- */

void fl_param_set_trainable(fl_param *p, int on) {
    p->trainable = on;
    if (on && !p->g) p->g = fl_allocf((size_t)p->n);
    if (!on) { fl_free(p->g); p->g = NULL; }
}

void fl_model_set_all_trainable(fl_model *m, int on) {
    for (int i = 0; i < m->n_params; i++) fl_param_set_trainable(&m->params[i], on);
}

void fl_model_zero_grad(fl_model *m) {
    for (int i = 0; i < m->n_params; i++)
        if (m->params[i].g) memset(m->params[i].g, 0, sizeof(float) * m->params[i].n);
}

int fl_param_set_mask(fl_param *p, const uint8_t *mask) {
    if (p->kind != FL_PK_LINEAR_W && mask) return fl_err("%s: only linear weights can be masked", p->name);
    if (!mask) { fl_free(p->mask); p->mask = NULL; return 0; }
    if (!p->mask) p->mask = fl_alloc((size_t)p->n);
    for (int64_t i = 0; i < p->n; i++) p->mask[i] = mask[i] ? 1 : 0;
    fl_param_apply_mask(p);
    return 0;
}

void fl_param_apply_mask(fl_param *p) {
    if (!p->mask) return;
    for (int64_t i = 0; i < p->n; i++)
        if (!p->mask[i]) p->w[i] = 0.0f;
}

static void mask_grad(fl_param *p) {
    if (!p->mask || !p->g) return;
    for (int64_t i = 0; i < p->n; i++)
        if (!p->mask[i]) p->g[i] = 0.0f;
}

/* ---- ranges ------------------------------------------------------------ */

fl_range fl_range_whole(const fl_model *m) { return (fl_range){ 0, 2 * m->cfg.n_layer, 1, 1 }; }
fl_range fl_range_blocks(int a, int b) { return (fl_range){ 2 * a, 2 * b + 2, 0, 0 }; }
fl_range fl_range_attn(int l) { return (fl_range){ 2 * l, 2 * l + 1, 0, 0 }; }
fl_range fl_range_mlp(int l) { return (fl_range){ 2 * l + 1, 2 * l + 2, 0, 0 }; }

/* ---- single linear ----------------------------------------------------- */

static float *tr_grad(fl_param *p) { return p && p->trainable ? p->g : NULL; }

/* Every linear of the model goes through these two, so an adapter on its
 * weight (fl_adapter) takes part wherever the linear does. */
void fl_linear_forward(const fl_param *w, const fl_param *b, const float *x, float *y, int N) {
    const fl_adapter *ad = w->ad;
    const int I = w->cols, O = w->rows;
    if (ad && ad->mask) {
        /* MaskLoRA: M o (BA) is not low-rank; W_eff exists only while used */
        fl_masklora_compose(ad->dense, w->w, ad->mask, ad->A, ad->B, ad->scale, O, I, ad->rank);
        fl_matmul_forward(y, x, ad->dense, b ? b->w : NULL, N, I, O);
        return;
    }
    fl_matmul_forward(y, x, w->w, b ? b->w : NULL, N, I, O);
    if (ad) {
        float *tmp = fl_allocf((size_t)N * ad->rank);
        fl_lowrank_forward(y, x, ad->A, ad->B, ad->scale, N, I, O, ad->rank, tmp);
        fl_free(tmp);
    }
}

void fl_linear_backward(fl_param *w, fl_param *b, const float *x, const float *dy, float *dx, int N) {
    fl_adapter *ad = w->ad;
    const int I = w->cols, O = w->rows;
    if (ad && ad->mask) {
        /* dx through W_eff first, then the same scratch holds G */
        fl_masklora_compose(ad->dense, w->w, ad->mask, ad->A, ad->B, ad->scale, O, I, ad->rank);
        fl_matmul_backward(dx, tr_grad(w), tr_grad(b), dy, x, ad->dense, N, I, O);
        mask_grad(w);
        if (ad->gA || ad->gB)
            fl_masklora_backward(ad->gA, ad->gB, ad->dense, ad->mask, dy, x, ad->A, ad->B, ad->scale, N, I, O, ad->rank);
        return;
    }
    fl_matmul_backward(dx, tr_grad(w), tr_grad(b), dy, x, w->w, N, I, O);
    mask_grad(w);
    if (ad && (dx || ad->gA || ad->gB)) {
        float *tmp = fl_allocf((size_t)2 * N * ad->rank);
        fl_lowrank_backward(dx, ad->gA, ad->gB, dy, x, ad->A, ad->B, ad->scale, N, I, O, ad->rank, tmp);
        fl_free(tmp);
    }
}

/* ---- saved activations ------------------------------------------------- */

/* What one sublayer keeps for its backward (N = B*T tokens):
 *   both : x [N,d] its input, mean/rstd [N], xn [N,d] the normed input
 *   attn : q [N,H*hd], k, v [N,KV*hd] (after RoPE), att: the row log-sum-exp
 *          [B,H,T] of the O(T) attention (model/ops.h), ao [N,H*hd]
 *   mlp  : h [N,F] (fc1 or gate output), up [N,F] (SwiGLU), a [N,F] (fc2 input)
 * The head keeps x, mean/rstd, xn, and the logits [N,V]. */
typedef struct {
    float *x, *mean, *rstd, *xn;
    float *q, *k, *v, *att, *ao;
    float *h, *up, *a;
} sub_acts;

struct fl_acts {
    int B, T, s0, s1, embed, head, pos0, valid;
    sub_acts *sub;       /* s1 - s0 entries */
    sub_acts hd;         /* head: x, mean, rstd, xn; logits in h */
    int32_t *tokens, *targets;
    const float *soft;   /* borrowed from the caller, see fl_fwd.soft */
    int64_t n_targets;
};

fl_acts *fl_acts_new(void) { return calloc(1, sizeof(fl_acts)); }

static void sub_free(sub_acts *s) {
    float **f = (float **)s;
    for (size_t i = 0; i < sizeof *s / sizeof(float *); i++) { fl_free(f[i]); f[i] = NULL; }
}

static void acts_clear(fl_acts *a) {
    if (a->sub) for (int i = 0; i < a->s1 - a->s0; i++) sub_free(&a->sub[i]);
    free(a->sub); a->sub = NULL;
    sub_free(&a->hd);
    fl_free(a->tokens); fl_free(a->targets);
    a->tokens = a->targets = NULL;
    a->valid = 0;
}

void fl_acts_release(fl_acts *a) { if (a) acts_clear(a); }

void fl_acts_free(fl_acts *a) {
    if (!a) return;
    acts_clear(a);
    free(a);
}

size_t fl_acts_bytes(const fl_acts *a) {
    size_t n = 0;
    const sub_acts *all[2] = { a->sub, &a->hd };
    int cnt[2] = { a->sub ? a->s1 - a->s0 : 0, 1 };
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < cnt[k]; i++) {
            float *const *f = (float *const *)&all[k][i];
            for (size_t j = 0; j < sizeof(sub_acts) / sizeof(float *); j++) n += fl_alloc_size(f[j]);
        }
    return n + fl_alloc_size(a->tokens) + fl_alloc_size(a->targets);
}

/* Floats sub_alloc gives one sublayer (kind 0 attention, 1 MLP). */
static size_t sub_floats(const fl_config *c, int kind, int B, int T, int keep_att) {
    size_t N = (size_t)B * T, d = c->d, qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_kv_head * c->head_dim;
    size_t n = 2 * N * d + 2 * N;   /* x, xn, mean, rstd */
    if (kind == 0) n += 2 * N * qd + 2 * N * kvd + (keep_att ? (size_t)B * c->n_head * T : 0);
    else n += (c->act == FL_ACT_SWIGLU ? 3 : 2) * N * c->d_ff;
    return n;
}

size_t fl_acts_predict_bytes(const fl_config *c, fl_range r, int B, int T) {
    size_t N = (size_t)B * T, f = 0, ints = 0;
    for (int s = r.s0; s < r.s1; s++) f += sub_floats(c, s % 2, B, T, 1);
    if (r.head) { f += 2 * N * c->d + 2 * N + N * c->vocab + N * c->proj; ints += N; }   /* x, xn, mean, rstd, logits,
                                                                                     the projected rows; targets */
    if (r.embed) ints += N;                                                  /* tokens */
    return sizeof(float) * f + sizeof(int32_t) * ints;
}

size_t fl_backward_tmp_bytes(const fl_config *c, fl_range r, int B, int T, size_t lin_tmp) {
    size_t N = (size_t)B * T, d = c->d, qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_kv_head * c->head_dim;
    /* at the head: dcur and the normed input's gradient, logits still held */
    size_t head = r.head ? 2 * N * d * sizeof(float) : 0;
    if (r.s0 >= r.s1) return head;
    /* in a sublayer: dcur, dnext, dxn, and its own inner gradients, with
     * either a linear's temporaries or (attention) the kernel's scratch:
     * the two are never live at once */
    size_t att_s = fl_attention_scratch_bytes(T);
    size_t attn = sizeof(float) * (2 * N * qd + 2 * N * kvd) + (att_s > lin_tmp ? att_s : lin_tmp);
    size_t mlp = sizeof(float) * (c->act == FL_ACT_SWIGLU ? 3 : 2) * N * c->d_ff + lin_tmp;
    size_t sub = sizeof(float) * 3 * N * d + (attn > mlp ? attn : mlp);
    size_t logits = r.head ? sizeof(float) * N * c->vocab : 0;   /* given back before the sublayers */
    sub = sub > logits ? sub - logits : 0;
    return head > sub ? head : sub;
}

/* ---- sublayer forward -------------------------------------------------- */

static const float *P(const fl_param *p) { return p ? p->w : NULL; }

static void norm_fwd(const fl_model *m, float *out, float *mean, float *rstd, const float *x,
                     const fl_param *w, const fl_param *b, int N) {
    if (m->cfg.rms) fl_rmsnorm_forward(out, rstd, x, w->w, N, m->cfg.d, m->cfg.eps);
    else fl_layernorm_forward(out, mean, rstd, x, w->w, P(b), N, m->cfg.d, m->cfg.eps);
}

static void norm_bwd(const fl_model *m, float *dx, const float *dout, const sub_acts *s,
                     fl_param *w, fl_param *b, int N) {
    if (m->cfg.rms) fl_rmsnorm_backward(dx, tr_grad(w), dout, s->x, w->w, s->rstd, N, m->cfg.d);
    else fl_layernorm_backward(dx, tr_grad(w), tr_grad(b), dout, s->x, w->w, s->mean, s->rstd, N, m->cfg.d);
}

/* Allocate the buffers of sublayer `sub` (0 attention, 1 MLP). */
static void sub_alloc(const fl_model *m, sub_acts *s, int kind, int B, int T, int keep_att) {
    const fl_config *c = &m->cfg;
    size_t N = (size_t)B * T, d = c->d, qd = (size_t)c->n_head * c->head_dim, kvd = (size_t)c->n_kv_head * c->head_dim;
    s->x = fl_allocf(N * d); s->mean = fl_allocf(N); s->rstd = fl_allocf(N); s->xn = fl_allocf(N * d);
    if (kind == 0) {
        s->q = fl_allocf(N * qd); s->k = fl_allocf(N * kvd); s->v = fl_allocf(N * kvd); s->ao = fl_allocf(N * qd);
        if (keep_att) s->att = fl_allocf((size_t)B * c->n_head * T);
    } else {
        s->h = fl_allocf(N * c->d_ff); s->a = fl_allocf(N * c->d_ff);
        if (c->act == FL_ACT_SWIGLU) s->up = fl_allocf(N * c->d_ff);
    }
}

/* x_out = x_in + sublayer(x_in); s->x must already hold x_in. */
static void sub_forward(fl_model *m, int sidx, sub_acts *s, float *x_out, int B, int T, int pos0,
                        fl_hook hook, void *hctx) {
    const fl_config *c = &m->cfg;
    /* the block's own sizes (the buffers in s fit the largest block) */
    const int l = sidx / 2, H = fl_layer_heads(c, l), KV = fl_layer_kv(c, l);
    const int N = B * T, d = c->d, hd = c->head_dim, qd = H * hd;
    fl_layer *y = &m->layers[l];
    fl_param *nw = sidx % 2 == 0 ? y->attn_norm_w : y->mlp_norm_w, *nb = sidx % 2 == 0 ? y->attn_norm_b : y->mlp_norm_b;
    /* pre-LN: the sublayer reads its normed input; post-LN (OPT-350m) its
     * input itself (xn holds a copy, so the linears' backward is the same) */
    if (c->post_ln) memcpy(s->xn, s->x, sizeof(float) * (size_t)N * d);
    else norm_fwd(m, s->xn, s->mean, s->rstd, s->x, nw, nb, N);
    if (sidx % 2 == 0) {
        if (hook) hook(hctx, sidx / 2, FL_SITE_QKV, s->xn, N, d);
        fl_linear_forward(y->q_w, y->q_b, s->xn, s->q, N);
        fl_linear_forward(y->k_w, y->k_b, s->xn, s->k, N);
        fl_linear_forward(y->v_w, y->v_b, s->xn, s->v, N);
        if (!c->learned_pos) {
            fl_rope_forward(s->q, m->rope_cos, m->rope_sin, B, T, H, hd, pos0);
            fl_rope_forward(s->k, m->rope_cos, m->rope_sin, B, T, KV, hd, pos0);
        }
        fl_attention_forward(s->ao, s->att, s->q, s->k, s->v, B, T, H, KV, hd);
        if (hook) hook(hctx, sidx / 2, FL_SITE_O, s->ao, N, qd);
        fl_linear_forward(y->o_w, y->o_b, s->ao, x_out, N);
    } else {
        const int F = fl_layer_ff(c, l);
        if (hook) hook(hctx, sidx / 2, FL_SITE_MLP_IN, s->xn, N, d);
        fl_linear_forward(y->fc1_w, y->fc1_b, s->xn, s->h, N);
        if (c->act == FL_ACT_SWIGLU) {
            fl_linear_forward(y->up_w, y->up_b, s->xn, s->up, N);
            fl_swiglu_forward(s->a, s->h, s->up, (int64_t)N * F);
        } else if (c->act == FL_ACT_RELU) fl_relu_forward(s->a, s->h, (int64_t)N * F);
        else fl_gelu_forward(s->a, s->h, (int64_t)N * F);
        if (hook) hook(hctx, sidx / 2, FL_SITE_MLP_OUT, s->a, N, F);
        fl_linear_forward(y->fc2_w, y->fc2_b, s->a, x_out, N);
    }
    fl_accum(x_out, s->x, (int64_t)N * d);   /* residual */
    if (c->post_ln) {
        /* z = x + f(x) is the norm's input: kept in s->x (x itself is in xn) */
        memcpy(s->x, x_out, sizeof(float) * (size_t)N * d);
        norm_fwd(m, x_out, s->mean, s->rstd, s->x, nw, nb, N);
    }
}

/* Gradient of the sublayer given dy (w.r.t. its output). Adds parameter
 * gradients; if dx is non-NULL adds the input gradient (residual included). */
static void sub_backward(fl_model *m, int sidx, sub_acts *s, const float *dy, float *dx, int B, int T, int pos0) {
    const fl_config *c = &m->cfg;
    const int l = sidx / 2, H = fl_layer_heads(c, l), KV = fl_layer_kv(c, l);
    const int N = B * T, d = c->d, hd = c->head_dim, qd = H * hd, kvd = KV * hd;
    fl_layer *y = &m->layers[l];
    float *dxn = fl_allocf((size_t)N * d);
    fl_param *nw = sidx % 2 == 0 ? y->attn_norm_w : y->mlp_norm_w, *nb = sidx % 2 == 0 ? y->attn_norm_b : y->mlp_norm_b;
    /* post-LN: through the norm first; dz, the gradient at z = x + f(x), is
     * then what f's backward starts from and what the residual passes on */
    float *dz = NULL;
    if (c->post_ln) {
        dz = fl_allocf((size_t)N * d);
        norm_bwd(m, dz, dy, s, nw, nb, N);
        dy = dz;
    }
    if (sidx % 2 == 0) {
        float *dao = fl_allocf((size_t)N * qd), *dq = fl_allocf((size_t)N * qd);
        float *dk = fl_allocf((size_t)N * kvd), *dv = fl_allocf((size_t)N * kvd);
        fl_linear_backward(y->o_w, y->o_b, s->ao, dy, dao, N);
        fl_attention_backward(dq, dk, dv, dao, s->q, s->k, s->v, s->att, B, T, H, KV, hd);
        if (!c->learned_pos) {
            fl_rope_backward(dq, m->rope_cos, m->rope_sin, B, T, H, hd, pos0);
            fl_rope_backward(dk, m->rope_cos, m->rope_sin, B, T, KV, hd, pos0);
        }
        fl_linear_backward(y->q_w, y->q_b, s->xn, dq, dxn, N);
        fl_linear_backward(y->k_w, y->k_b, s->xn, dk, dxn, N);
        fl_linear_backward(y->v_w, y->v_b, s->xn, dv, dxn, N);
        fl_free(dao); fl_free(dq); fl_free(dk); fl_free(dv);
    } else {
        const int F = fl_layer_ff(c, l);
        float *da = fl_allocf((size_t)N * F), *dh = fl_allocf((size_t)N * F);
        fl_linear_backward(y->fc2_w, y->fc2_b, s->a, dy, da, N);
        if (c->act == FL_ACT_SWIGLU) {
            float *dup = fl_allocf((size_t)N * F);
            fl_swiglu_backward(dh, dup, da, s->h, s->up, (int64_t)N * F);
            fl_linear_backward(y->up_w, y->up_b, s->xn, dup, dxn, N);
            fl_free(dup);
        } else if (c->act == FL_ACT_RELU) fl_relu_backward(dh, s->h, da, (int64_t)N * F);
        else fl_gelu_backward(dh, s->h, da, (int64_t)N * F);
        fl_linear_backward(y->fc1_w, y->fc1_b, s->xn, dh, dxn, N);
        fl_free(da); fl_free(dh);
    }
    if (c->post_ln) {
        if (dx) { fl_accum(dx, dxn, (int64_t)N * d); fl_accum(dx, dz, (int64_t)N * d); }
    } else {
        norm_bwd(m, dx, dxn, s, nw, nb, N);
        if (dx) fl_accum(dx, dy, (int64_t)N * d);  /* residual path */
    }
    fl_free(dz);
    fl_free(dxn);
}

/* ---- head -------------------------------------------------------------- */

/* Logits for rows [r0, r1) of xn into out (row stride V). With project_out
 * the rows go down to the embedding width first, into yp [r1 - r0, proj]. */
static void head_logits(fl_model *m, const float *xn, float *out, int r0, int r1, float *yp) {
    const fl_config *c = &m->cfg;
    if (m->proj_out) {
        fl_matmul_forward(yp, xn + (int64_t)r0 * c->d, m->proj_out->w, NULL, r1 - r0, c->d, c->proj);
        fl_matmul_forward(out, yp, m->head->w, NULL, r1 - r0, c->proj, c->vocab);
    } else fl_matmul_forward(out, xn + (int64_t)r0 * c->d, m->head->w, NULL, r1 - r0, c->d, c->vocab);
}

/* The first largest of a row of V logits, as a greedy decoder takes it. */
static int row_argmax(const float *q, int V) {
    int best = 0;
    for (int v = 1; v < V; v++) if (q[v] > q[best]) best = v;
    return best;
}

/* The final norm, or (post-LN OPT, which has none) a copy. */
static void final_norm_fwd(fl_model *m, sub_acts *h, int N) {
    if (m->final_norm_w) norm_fwd(m, h->xn, h->mean, h->rstd, h->x, m->final_norm_w, m->final_norm_b, N);
    else memcpy(h->xn, h->x, sizeof(float) * (size_t)N * m->cfg.d);
}

/* Token embeddings (and learned positions) into cur [N, d]; with
 * project_in the [N, proj] lookup is mapped up first, then the positions
 * are added, as HF's OPTDecoder does. */
static void embed_fwd(fl_model *m, float *cur, const int32_t *tok, int B, int T, int pos_emb) {
    const fl_config *c = &m->cfg;
    const int N = B * T, d = c->d;
    if (!m->proj_in) { fl_embed_forward(cur, tok, m->embed->w, P(m->pos), B, T, d, pos_emb); return; }
    float *e = fl_allocf((size_t)N * c->proj);
    fl_embed_forward(e, tok, m->embed->w, NULL, B, T, c->proj, 0);
    fl_matmul_forward(cur, e, m->proj_in->w, NULL, N, c->proj, d);
    fl_free(e);
    if (!m->pos) return;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *p = m->pos->w + (int64_t)(pos_emb + n % T) * d;
        float *o = cur + (int64_t)n * d;
        for (int k = 0; k < d; k++) o[k] += p[k];
    }
}

static void embed_bwd(fl_model *m, const float *dcur, const int32_t *tok, int B, int T, int pos_emb) {
    const fl_config *c = &m->cfg;
    const int N = B * T, d = c->d;
    float *dwte = tr_grad(m->embed), *dwpe = tr_grad(m->pos);
    if (!m->proj_in) {
        if (dwte || dwpe) fl_embed_backward(dwte, dwpe, dcur, tok, B, T, d, pos_emb);
        return;
    }
    if (dwpe) fl_embed_backward(NULL, dwpe, dcur, tok, B, T, d, pos_emb);
    float *dpi = tr_grad(m->proj_in);
    if (!dwte && !dpi) return;
    float *e = fl_allocf((size_t)N * c->proj), *de = dwte ? fl_allocf((size_t)N * c->proj) : NULL;
    fl_embed_forward(e, tok, m->embed->w, NULL, B, T, c->proj, 0);
    fl_matmul_backward(de, dpi, NULL, dcur, e, m->proj_in->w, N, c->proj, d);
    if (dwte) fl_embed_backward(dwte, NULL, de, tok, B, T, c->proj, 0);
    fl_free(e);
    fl_free(de);
}

/* ---- whole range ------------------------------------------------------- */

static int range_check(const fl_model *m, fl_range r, const fl_fwd *a) {
    const fl_config *c = &m->cfg;
    if (r.s0 < 0 || r.s1 > 2 * c->n_layer || r.s0 > r.s1)
        return fl_err("submodel: sublayers [%d, %d) outside a model of %d blocks", r.s0, r.s1, c->n_layer);
    if (a->B <= 0 || a->T <= 0) return fl_err("submodel: empty batch (B=%d, T=%d)", a->B, a->T);
    if (a->pos0 + a->T + c->pos_offset > c->max_pos + c->pos_offset)
        return fl_err("sequence of %d tokens from position %d exceeds the model's context of %d", a->T, a->pos0, c->max_pos);
    if (r.embed) {
        if (!a->tokens) return fl_err("submodel: tokens required with the embedding");
        for (int64_t i = 0; i < (int64_t)a->B * a->T; i++)
            if (a->tokens[i] < 0 || a->tokens[i] >= c->vocab)
                return fl_err("token id %d at position %lld is outside the vocabulary of %d", a->tokens[i], (long long)i, c->vocab);
    } else if (!a->x_in) return fl_err("submodel: x_in required without the embedding");
    /* a streamed model computes only with the blocks it holds: a missing one
     * is the caller's bug, caught here rather than as a NULL weight */
    for (int s = r.s0; s < r.s1; s++)
        if (!fl_block_resident(m, s / 2))
            return fl_err("submodel: block %d of a streamed model is not resident (fl_model_hold it first)", s / 2);
    if (r.head) {
        if (!a->targets) return fl_err("submodel: targets required with the head");
        for (int64_t i = 0; i < (int64_t)a->B * a->T; i++)
            if (a->targets[i] >= c->vocab)
                return fl_err("target id %d at position %lld is outside the vocabulary of %d", a->targets[i], (long long)i, c->vocab);
    }
    return 0;
}

int fl_forward(fl_model *m, fl_range r, fl_fwd *a, fl_acts *acts) {
    if (range_check(m, r, a) != 0) return -1;
    const fl_config *c = &m->cfg;
    const int B = a->B, T = a->T, N = B * T, d = c->d, V = c->vocab;
    const int ns = r.s1 - r.s0;
    const int pos_emb = a->pos0 + c->pos_offset;
    if (acts) {
        acts_clear(acts);
        acts->B = B; acts->T = T; acts->s0 = r.s0; acts->s1 = r.s1;
        acts->embed = r.embed; acts->head = r.head; acts->pos0 = a->pos0;
        acts->sub = calloc((size_t)(ns > 0 ? ns : 1), sizeof(sub_acts));
        if (r.embed) { acts->tokens = fl_alloc(sizeof(int32_t) * N); memcpy(acts->tokens, a->tokens, sizeof(int32_t) * N); }
    }
    /* Without acts, one scratch set serves every sublayer in turn. */
    sub_acts scratch[2] = { { 0 }, { 0 } };
    if (!acts) { if (ns > 0) { sub_alloc(m, &scratch[0], 0, B, T, 0); sub_alloc(m, &scratch[1], 1, B, T, 0); } }
    float *cur = fl_allocf((size_t)N * d);   /* residual stream */
    if (r.embed) embed_fwd(m, cur, a->tokens, B, T, pos_emb);
    else memcpy(cur, a->x_in, sizeof(float) * N * d);
    for (int s = r.s0; s < r.s1; s++) {
        sub_acts *sa;
        if (acts) { sa = &acts->sub[s - r.s0]; sub_alloc(m, sa, s % 2, B, T, 1); }
        else sa = &scratch[s % 2];
        memcpy(sa->x, cur, sizeof(float) * N * d);
        sub_forward(m, s, sa, cur, B, T, a->pos0, a->hook, a->hook_ctx);
    }
    if (r.head) {
        sub_acts tmp = { 0 };
        sub_acts *h = acts ? &acts->hd : &tmp;
        h->x = acts ? fl_allocf((size_t)N * d) : cur;
        if (acts) memcpy(h->x, cur, sizeof(float) * N * d);
        h->mean = fl_allocf(N); h->rstd = fl_allocf(N); h->xn = fl_allocf((size_t)N * d);
        final_norm_fwd(m, h, N);
        double sum = 0;
        int64_t cnt = 0;
        if (acts || a->logits || a->soft) {
            float *lg = a->logits, *own = NULL;
            if (acts) { h->h = fl_allocf((size_t)N * V); lg = h->h; }
            else if (!lg) lg = own = fl_allocf((size_t)N * V);
            /* the projected rows: kept (in h->a) for the backward */
            float *yp = m->proj_out ? fl_allocf((size_t)N * c->proj) : NULL;
            head_logits(m, h->xn, lg, 0, N, yp);
            if (acts) h->a = yp;
            else fl_free(yp);
            sum = a->soft ? fl_softce_forward(lg, a->soft, a->targets, N, V, &cnt)
                          : fl_crossentropy_forward(a->nll, lg, a->targets, N, V, &cnt);
            if (acts && a->logits) memcpy(a->logits, lg, sizeof(float) * N * V);
            for (int i = 0; i < N && a->argmax; i++) a->argmax[i] = a->targets[i] >= 0 ? row_argmax(lg + (size_t)i * V, V) : -1;
            fl_free(own);
        } else {
            /* Inference: logits a chunk of rows at a time, never [N, V], and
             * only for the rows with a target: a multiple-choice request
             * (eval/mc.c) counts its continuation alone, and the head with
             * its softmax is a third of a small model's FLOPs per row. */
            enum { CH = 256 };
            float *lg = fl_allocf((size_t)CH * V), *yp = m->proj_out ? fl_allocf((size_t)CH * c->proj) : NULL;
            float *xs = fl_allocf((size_t)CH * d), *ns = fl_allocf(CH);
            int32_t *ts = fl_alloc(sizeof(int32_t) * CH);
            int rows[CH];
            if (a->nll) memset(a->nll, 0, sizeof(float) * (size_t)N);
            if (a->argmax) for (int i = 0; i < N; i++) a->argmax[i] = -1;
            for (int r0 = 0; r0 < N;) {
                int k = 0;
                for (; r0 < N && k < CH; r0++) {
                    if (a->targets[r0] < 0) continue;
                    memcpy(xs + (size_t)k * d, h->xn + (size_t)r0 * d, sizeof(float) * d);
                    ts[k] = a->targets[r0];
                    rows[k++] = r0;
                }
                if (!k) break;
                int64_t nk = 0;
                head_logits(m, xs, lg, 0, k, yp);
                sum += fl_crossentropy_forward(ns, lg, ts, k, V, &nk);
                cnt += nk;
                for (int i = 0; i < k; i++) {
                    if (a->nll) a->nll[rows[i]] = ns[i];
                    if (a->argmax) a->argmax[rows[i]] = row_argmax(lg + (size_t)i * V, V);
                }
            }
            fl_free(lg);
            fl_free(yp);
            fl_free(xs);
            fl_free(ns);
            fl_free(ts);
        }
        a->loss = cnt ? sum / cnt : 0.0;
        a->n_targets = cnt;
        if (acts) {
            acts->targets = fl_alloc(sizeof(int32_t) * N);
            memcpy(acts->targets, a->targets, sizeof(int32_t) * N);
            acts->n_targets = cnt;
            acts->soft = a->soft;
        } else { fl_free(h->mean); fl_free(h->rstd); fl_free(h->xn); }
    } else if (a->x_out) memcpy(a->x_out, cur, sizeof(float) * N * d);
    fl_free(cur);
    sub_free(&scratch[0]); sub_free(&scratch[1]);
    if (acts) acts->valid = 1;
    return 0;
}

/* A parameter takes gradients when trainable, or when its adapter does. */
static int param_trainable(const fl_param *p) {
    return p && ((p->trainable && p->g) || (p->ad && (p->ad->gA || p->ad->gB)));
}

/* Does any sublayer in [s0, s) (or the embedding) have a trainable parameter?
 * If not, backward can stop at s unless the caller wants dx_in. */
int fl_param_sublayer(const fl_param *p) {
    if (p->layer < 0) return -1;
    int mlp = strstr(p->name, ".mlp_norm.") || strstr(p->name, ".fc1.") || strstr(p->name, ".fc2.") ||
              strstr(p->name, ".up.");
    return 2 * p->layer + (mlp ? 1 : 0);
}

static int below_trainable(fl_model *m, fl_range r, int s) {
    if (r.embed && (param_trainable(m->embed) || param_trainable(m->pos) || param_trainable(m->proj_in))) return 1;
    for (int i = 0; i < m->n_params; i++) {
        const fl_param *p = &m->params[i];
        if (p->layer < 0 || !param_trainable(p)) continue;
        int sub = fl_param_sublayer(p);
        if (sub >= r.s0 && sub < s) return 1;
    }
    return 0;
}

int fl_backward(fl_model *m, fl_range r, fl_acts *acts, const float *dx_out, float *dx_in) {
    if (!acts || !acts->valid) return fl_err("backward: no saved forward");
    if (acts->s0 != r.s0 || acts->s1 != r.s1 || acts->embed != r.embed || acts->head != r.head)
        return fl_err("backward: range differs from the saved forward");
    const fl_config *c = &m->cfg;
    const int B = acts->B, T = acts->T, N = B * T, d = c->d, V = c->vocab;
    float *dcur = fl_allocf((size_t)N * d);
    if (r.head) {
        sub_acts *h = &acts->hd;
        float scale = acts->n_targets ? 1.0f / (float)acts->n_targets : 0.0f;
        float *dlog = h->h;  /* the logits become their own gradient */
        if (acts->soft) fl_softce_backward(dlog, h->h, acts->soft, acts->targets, N, V, scale);
        else fl_crossentropy_backward(dlog, h->h, acts->targets, N, V, scale);
        float *dxn = fl_allocf((size_t)N * d);
        if (m->proj_out) {
            /* logits = (xn Wout^T) H^T: through the head to the projected
             * rows (kept in h->a), then through project_out */
            const int E = c->proj;
            float *dyp = fl_allocf((size_t)N * E);
            fl_gemm(0, 0, N, E, V, 1.0f, dlog, V, m->head->w, E, 0.0f, dyp, E);
            if (tr_grad(m->head)) fl_gemm(1, 0, V, E, N, 1.0f, dlog, V, h->a, E, 1.0f, m->head->g, E);
            fl_matmul_backward(dxn, tr_grad(m->proj_out), NULL, dyp, h->xn, m->proj_out->w, N, d, E);
            fl_free(dyp);
        } else {
            fl_gemm(0, 0, N, d, V, 1.0f, dlog, V, m->head->w, d, 0.0f, dxn, d);
            if (tr_grad(m->head)) fl_gemm(1, 0, V, d, N, 1.0f, dlog, V, h->xn, d, 1.0f, m->head->g, d);
        }
        if (m->final_norm_w) norm_bwd(m, dcur, dxn, h, m->final_norm_w, m->final_norm_b, N);
        else fl_accum(dcur, dxn, (int64_t)N * d);
        fl_free(dxn);
        fl_free(h->h); h->h = NULL;
        acts->valid = 0;   /* logits consumed */
    } else {
        if (!dx_out) { fl_free(dcur); return fl_err("backward: dx_out required without the head"); }
        memcpy(dcur, dx_out, sizeof(float) * N * d);
    }
    float *dnext = fl_allocf((size_t)N * d);
    for (int s = r.s1 - 1; s >= r.s0; s--) {
        int need_dx = dx_in || below_trainable(m, r, s);
        if (!need_dx) {
            /* parameters of this sublayer only: no input gradient */
            sub_backward(m, s, &acts->sub[s - r.s0], dcur, NULL, B, T, acts->pos0);
            break;
        }
        memset(dnext, 0, sizeof(float) * N * d);
        sub_backward(m, s, &acts->sub[s - r.s0], dcur, dnext, B, T, acts->pos0);
        float *t = dcur; dcur = dnext; dnext = t;
    }
    if (r.embed) embed_bwd(m, dcur, acts->tokens, B, T, acts->pos0 + c->pos_offset);
    else if (dx_in) fl_accum(dx_in, dcur, (int64_t)N * d);
    fl_free(dcur);
    fl_free(dnext);
    acts->valid = 0;
    return 0;
}
