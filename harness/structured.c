/* Structured pruning: statistics, the criterion's choice, the smaller
 * model. See structured.h and docs/ARCHITECTURE.md, "Structured pruning". */
#include "structured.h"
#include "model/alloc.h"
#include "model/err.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fl_struct_check(const fl_criterion *c, fl_structure kind, const fl_config *cfg) {
    if (kind == FL_STRUCT_NONE) {
        if (!c->prune) return fl_err("criterion %s removes whole structures: give --structure heads, channels or layers", c->name);
        return 0;
    }
    if (!(c->structures & FL_STRUCT_BIT(kind))) {
        char can[64] = "";
        for (int s = FL_STRUCT_HEADS; s <= FL_STRUCT_LAYERS; s++)
            if (c->structures & FL_STRUCT_BIT(s)) {
                strncat(can, can[0] ? ", " : "", sizeof can - strlen(can) - 1);
                strncat(can, fl_structure_name((fl_structure)s), sizeof can - strlen(can) - 1);
            }
        if (!can[0])
            return fl_err("--structure %s: criterion %s prunes single weights; structured criteria are magnitude-sp, wanda-sp, flap "
                          "(heads, channels), block-influence, angular, layer-ppl (layers)", fl_structure_name(kind), c->name);
        return fl_err("--structure %s: criterion %s removes %s only", fl_structure_name(kind), c->name, can);
    }
    (void)cfg;
    return 0;
}

/* dst[r][c] = src[rows[r]][cols[c]] (NULL: identity); src NULL leaves dst's zeros */
static void copy_sel(fl_param *dst, const fl_param *src, const int *rows, const int *cols) {
    if (!dst || !src) return;
    for (int r = 0; r < dst->rows; r++) {
        const float *s = src->w + (int64_t)(rows ? rows[r] : r) * src->cols;
        float *d = dst->w + (int64_t)r * dst->cols;
        for (int c = 0; c < dst->cols; c++) d[c] = s[cols ? cols[c] : c];
    }
}

static int count_kept(const uint8_t *k, int n) {
    int c = 0;
    for (int i = 0; i < n; i++) c += k[i] != 0;
    return c;
}

/* The config of the model that keeps Lp blocks, na[i] key/value groups and
 * nb[i] MLP channels in kept block i, with FLAP's compensated biases
 * (comp_o: o's, comp_fc2: fc2's): the one place a removal's shapes are
 * derived, for the builder and for the memory prediction alike. */
static int result_config(const fl_config *c, int Lp, const int *na, const int *nb, int comp_o, int comp_fc2, fl_config *nc) {
    *nc = *c;
    if (Lp < 1) return fl_err("structured pruning: nothing would be left of the model");
    /* blocks may keep different counts (FLAP's global ratio): the config
     * then holds the largest and per-layer sizes for the others */
    int KVp = 0, Fp = 0;
    for (int i = 0; i < Lp; i++) {
        if (na[i] < 1 || nb[i] < 1) return fl_err("structured pruning: nothing would be left of block %d", i);
        if (na[i] > KVp) KVp = na[i];
        if (nb[i] > Fp) Fp = nb[i];
    }
    nc->n_layer = Lp;
    nc->n_kv_head = KVp;
    nc->n_head = KVp * (c->n_head / c->n_kv_head);
    nc->d_ff = Fp;
    memset(nc->layer_kv, 0, sizeof nc->layer_kv);
    memset(nc->layer_ff, 0, sizeof nc->layer_ff);
    for (int i = 0; i < Lp; i++) {
        nc->layer_kv[i] = na[i] == KVp ? 0 : na[i];
        nc->layer_ff[i] = nb[i] == Fp ? 0 : nb[i];
    }
    /* the compensated bias, and the ones HF's config key brings with it:
     * llama's attention_bias is q/k/v/o, its mlp_bias gate/up/down, OPT's
     * enable_bias every linear's */
    if (comp_o) { nc->o_bias = 1; if (c->family == FL_LLAMA || c->family == FL_OPT) nc->qkv_bias = 1; }
    if (comp_fc2) nc->mlp_bias = 1;
    if (c->family == FL_OPT && (comp_o || comp_fc2)) nc->qkv_bias = nc->o_bias = nc->mlp_bias = 1;
    return 0;
}

int fl_struct_config(const fl_config *c, const fl_crit_inst *ci, fl_structure kind, double frac, fl_config *out) {
    if (kind == FL_STRUCT_NONE) return fl_err("structured pruning: no structure given");
    if (fl_struct_check(ci->crit, kind, c) != 0) return -1;
    if (fl_config_nonuniform(c))
        return fl_err("structured pruning: the model already has per-layer sizes; prune the dense model instead");
    if (kind != FL_STRUCT_LAYERS && ci->crit->global_ratio && ci->crit->global_ratio(ci->priv))
        return fl_err("structured pruning: with %s's global ratio each block's size depends on the scores", ci->crit->name);
    int k, na[FL_MAX_LAYERS], nb[FL_MAX_LAYERS];
    if (fl_structure_removed(fl_structure_count(c, kind), frac, kind, &k) != 0) return -1;
    const int Lp = c->n_layer - (kind == FL_STRUCT_LAYERS ? k : 0);
    for (int i = 0; i < Lp; i++) {
        na[i] = c->n_kv_head - (kind == FL_STRUCT_HEADS ? k : 0);
        nb[i] = c->d_ff - (kind == FL_STRUCT_CHANNELS ? k : 0);
    }
    const int comp = ci->crit->bias_compensation && kind != FL_STRUCT_LAYERS;
    return result_config(c, Lp, na, nb, comp && kind == FL_STRUCT_HEADS, comp && kind == FL_STRUCT_CHANNELS, out);
}

int fl_struct_build(const fl_model *src, const fl_struct_keep *k, fl_model *out) {
    const fl_config *c = &src->cfg;
    const int L = c->n_layer, KV = c->n_kv_head, G = c->n_head / c->n_kv_head, hd = c->head_dim, F = c->d_ff, d = c->d;
    if (fl_config_nonuniform(c))
        return fl_err("structured pruning: the model already has per-layer sizes; prune the dense model instead");
    fl_config nc;
    int kept[FL_MAX_LAYERS], Lp = 0, na[FL_MAX_LAYERS], nb[FL_MAX_LAYERS];
    for (int l = 0; l < L; l++)
        if (!k->keep_layer || k->keep_layer[l]) kept[Lp++] = l;
    for (int i = 0; i < Lp; i++) {
        na[i] = k->keep_kv ? count_kept(k->keep_kv + (int64_t)kept[i] * KV, KV) : KV;
        nb[i] = k->keep_ch ? count_kept(k->keep_ch + (int64_t)kept[i] * F, F) : F;
        if (na[i] < 1 || nb[i] < 1) return fl_err("structured pruning: nothing would be left of block %d", kept[i]);
    }
    if (result_config(c, Lp, na, nb, k->comp_o != NULL, k->comp_fc2 != NULL, &nc) != 0) return -1;
    const int KVp = nc.n_kv_head, Fp = nc.d_ff;
    if (fl_model_create(out, &nc) != 0) return -1;
    int *qsel = malloc(sizeof(int) * ((size_t)nc.n_head * hd + (size_t)KVp * hd + (size_t)Fp));
    if (!qsel) { fl_model_free(out); return fl_err("structured pruning: out of memory"); }
    int *kvsel = qsel + (size_t)nc.n_head * hd, *fsel = kvsel + (size_t)KVp * hd;
    memcpy(out->embed->w, src->embed->w, sizeof(float) * src->embed->n);
    if (src->pos) memcpy(out->pos->w, src->pos->w, sizeof(float) * src->pos->n);
    copy_sel(out->final_norm_w, src->final_norm_w, NULL, NULL);
    copy_sel(out->final_norm_b, src->final_norm_b, NULL, NULL);
    if (!c->tied) copy_sel(out->head, src->head, NULL, NULL);
    for (int i = 0; i < Lp; i++) {
        const int l = kept[i];
        const fl_layer *s = &src->layers[l];
        fl_layer *y = &out->layers[i];
        int nq = 0, nkv = 0, nf = 0;
        for (int g = 0; g < KV; g++) {
            if (k->keep_kv && !k->keep_kv[(int64_t)l * KV + g]) continue;
            for (int r = g * hd; r < (g + 1) * hd; r++) kvsel[nkv++] = r;
            for (int r = g * G * hd; r < (g + 1) * G * hd; r++) qsel[nq++] = r;
        }
        for (int f = 0; f < F; f++)
            if (!k->keep_ch || k->keep_ch[(int64_t)l * F + f]) fsel[nf++] = f;
        copy_sel(y->attn_norm_w, s->attn_norm_w, NULL, NULL);
        copy_sel(y->attn_norm_b, s->attn_norm_b, NULL, NULL);
        copy_sel(y->q_w, s->q_w, qsel, NULL);
        copy_sel(y->q_b, s->q_b, qsel, NULL);
        copy_sel(y->k_w, s->k_w, kvsel, NULL);
        copy_sel(y->k_b, s->k_b, kvsel, NULL);
        copy_sel(y->v_w, s->v_w, kvsel, NULL);
        copy_sel(y->v_b, s->v_b, kvsel, NULL);
        copy_sel(y->o_w, s->o_w, NULL, qsel);
        copy_sel(y->o_b, s->o_b, NULL, NULL);
        copy_sel(y->mlp_norm_w, s->mlp_norm_w, NULL, NULL);
        copy_sel(y->mlp_norm_b, s->mlp_norm_b, NULL, NULL);
        copy_sel(y->fc1_w, s->fc1_w, fsel, NULL);
        copy_sel(y->fc1_b, s->fc1_b, fsel, NULL);
        copy_sel(y->up_w, s->up_w, fsel, NULL);
        copy_sel(y->up_b, s->up_b, fsel, NULL);
        copy_sel(y->fc2_w, s->fc2_w, NULL, fsel);
        copy_sel(y->fc2_b, s->fc2_b, NULL, NULL);
        if (k->comp_o)
            for (int r = 0; r < d; r++) y->o_b->w[r] += k->comp_o[(int64_t)l * d + r];
        if (k->comp_fc2)
            for (int r = 0; r < d; r++) y->fc2_b->w[r] += k->comp_fc2[(int64_t)l * d + r];
    }
    free(qsel);
    return 0;
}

/* ---- statistics --------------------------------------------------------- */

typedef struct { fl_chan_stats st[4]; int layer; } block_stats;

static void chan_hook(void *ctx, int layer, fl_site site, const float *x, int N, int cols) {
    (void)cols;
    block_stats *b = ctx;
    if (layer == b->layer) fl_chan_stats_add(&b->st[site], x, N);
}

/* block l over every window of S in place (hook optional) */
static int block_pass(fl_model *m, int l, float *S, int nwin, int T, int batch, fl_hook hook, void *ctx) {
    const int d = m->cfg.d;
    for (int w0 = 0; w0 < nwin; w0 += batch) {
        int B = nwin - w0 < batch ? nwin - w0 : batch;
        float *x = S + (int64_t)w0 * T * d;
        fl_fwd a = { .B = B, .T = T, .x_in = x, .x_out = x, .hook = hook, .hook_ctx = ctx };
        if (fl_forward(m, fl_range_blocks(l, l), &a, NULL) != 0) return -1;
    }
    return 0;
}

/* ---- layer-ppl's losses ------------------------------------------------- */

typedef struct { fl_model *m; const int32_t *tok; int nwin, T, batch; } loss_ctx;

static int loss_without(void *vctx, const uint8_t *removed, double *loss) {
    loss_ctx *lc = vctx;
    const int L = lc->m->cfg.n_layer, T = lc->T;
    uint8_t keep[FL_MAX_LAYERS];
    for (int l = 0; l < L; l++) keep[l] = !removed[l];
    fl_model sm;
    fl_struct_keep k = { .keep_layer = keep };
    if (fl_struct_build(lc->m, &k, &sm) != 0) return -1;
    int32_t *tg = malloc(sizeof(int32_t) * (size_t)lc->batch * T);
    double tot = 0;
    int64_t cnt = 0;
    int rc = tg ? 0 : fl_err("layer-ppl: out of memory");
    for (int w0 = 0; w0 < lc->nwin && rc == 0; w0 += lc->batch) {
        int B = lc->nwin - w0 < lc->batch ? lc->nwin - w0 : lc->batch;
        const int32_t *t = lc->tok + (int64_t)w0 * T;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < T; i++) tg[b * T + i] = i + 1 < T ? t[b * T + i + 1] : -1;
        fl_fwd a = { .B = B, .T = T, .tokens = t, .targets = tg };
        rc = fl_forward(&sm, fl_range_whole(&sm), &a, NULL);
        tot += a.loss * (double)a.n_targets;
        cnt += a.n_targets;
    }
    free(tg);
    fl_model_free(&sm);
    *loss = cnt ? tot / cnt : 0;
    return rc;
}

/* ---- the step ------------------------------------------------------------ */

static int prune_width(fl_model *m, const fl_crit_inst *ci, fl_structure kind, int k, const float *X, int nwin, int T,
                       int batch, fl_model *out, fl_struct_report *rep) {
    const fl_config *c = &m->cfg;
    const int L = c->n_layer, d = c->d, n = rep->n, qd = c->n_head * c->head_dim;
    const size_t ssz = (size_t)nwin * T * d;
    const int heads = kind == FL_STRUCT_HEADS, pcols = heads ? qd : c->d_ff;
    float *S = fl_allocf(ssz);
    memcpy(S, X, sizeof(float) * ssz);
    uint8_t *keep = calloc((size_t)L * n, 1);
    double *score = calloc((size_t)L * n, sizeof(double));
    const int comp = ci->crit->bias_compensation;
    const int global = ci->crit->global_ratio && ci->crit->global_ratio(ci->priv);
    float *cb = comp ? calloc((size_t)L * d, sizeof(float)) : NULL;
    /* the mean input of every block's output projection, for the
     * compensation once the selection (global: over all blocks) is made */
    double *mu = comp ? calloc((size_t)L * pcols, sizeof(double)) : NULL;
    int rc = keep && score && (!comp || (cb && mu)) ? 0 : fl_err("structured pruning: out of memory");
    const int widths[4] = { d, qd, d, c->d_ff };
    for (int l = 0; l < L && rc == 0; l++) {
        /* statistics on the dense model's own activations: one pass of
         * block l, which also moves the stream on to block l+1 */
        block_stats bs = { .layer = l };
        for (int s = 0; s < 4 && rc == 0; s++) rc = fl_chan_stats_init(&bs.st[s], widths[s]);
        if (rc == 0) rc = block_pass(m, l, S, nwin, T, batch, chan_hook, &bs);
        fl_width_job j = { .priv = ci->priv, .kind = kind, .cfg = c, .y = &m->layers[l],
                           .proj = &bs.st[heads ? FL_SITE_O : FL_SITE_MLP_OUT], .in = &bs.st[heads ? FL_SITE_QKV : FL_SITE_MLP_IN],
                           .n = n, .score = score + (int64_t)l * n };
        if (rc == 0) rc = ci->crit->score_width(&j);
        if (rc == 0 && !global) fl_structure_keep_lowest(score + (int64_t)l * n, n, k, keep + (int64_t)l * n);
        for (int col = 0; rc == 0 && comp && col < pcols; col++) mu[(int64_t)l * pcols + col] = fl_chan_mean(j.proj, col);
        for (int s = 0; s < 4; s++) fl_chan_stats_free(&bs.st[s]);
    }
    fl_free(S);
    if (rc == 0 && global) rc = fl_structure_keep_lowest_global(score, L, n, k, keep);
    free(score);
    for (int l = 0; l < L && rc == 0 && comp; l++) {
        /* FLAP's compensation: the removed input channels j of the output
         * projection W contribute W[:, j] * mean(X_j) on average; that
         * constant goes into the bias */
        int per;
        const fl_param *W = fl_width_proj(c, &m->layers[l], kind, &per);
        for (int s = 0; s < n; s++) {
            if (keep[(int64_t)l * n + s]) continue;
            for (int col = s * per; col < (s + 1) * per; col++) {
                const double mean = mu[(int64_t)l * pcols + col];
                for (int r = 0; r < d; r++) cb[(int64_t)l * d + r] += (float)(W->w[(int64_t)r * W->cols + col] * mean);
            }
        }
    }
    free(mu);
    if (rc == 0) {
        fl_struct_keep kk = { .keep_kv = heads ? keep : NULL, .keep_ch = heads ? NULL : keep,
                              .comp_o = heads ? cb : NULL, .comp_fc2 = heads ? NULL : cb };
        rc = fl_struct_build(m, &kk, out);
    }
    rep->keep = keep;
    rep->nkeep = (size_t)L * n;
    rep->global = global;
    for (int l = 0; keep && l < L; l++) {
        rep->removed_block[l] = 0;
        for (int s = 0; s < n; s++) rep->removed_block[l] += !keep[(int64_t)l * n + s];
    }
    free(cb);
    for (int l = 0; l < L; l++) rep->dense_block[l] = l;
    return rc;
}

static int prune_depth(fl_model *m, const fl_crit_inst *ci, int k, const float *X, const int32_t *tok, int nwin, int T,
                       int batch, int verbose, fl_model *out, fl_struct_report *rep) {
    const int L = m->cfg.n_layer, d = m->cfg.d;
    const size_t ssz = (size_t)nwin * T * d;
    float **H = calloc((size_t)L + 1, sizeof *H);
    int rc = H ? 0 : fl_err("structured pruning: out of memory");
    /* the hidden state before every block and after the last, dense */
    for (int l = 0; l <= L && rc == 0; l++) {
        H[l] = fl_allocf(ssz);
        memcpy(H[l], l ? H[l - 1] : X, sizeof(float) * ssz);
        if (l) rc = block_pass(m, l - 1, H[l], nwin, T, batch, NULL, NULL);
    }
    uint8_t removed[FL_MAX_LAYERS] = { 0 }, keep[FL_MAX_LAYERS];
    loss_ctx lc = { m, tok, nwin, T, batch };
    fl_depth_job j = { .priv = ci->priv, .L = L, .k = k, .N = (int64_t)nwin * T, .d = d, .H = (const float *const *)H,
                       .loss_without = tok ? loss_without : NULL, .ctx = &lc, .verbose = verbose, .removed = removed };
    if (rc == 0) rc = ci->crit->select_depth(&j);
    for (int l = 0; H && l <= L; l++) fl_free(H[l]);
    free(H);
    if (rc != 0) return -1;
    int nrem = 0, Lp = 0;
    for (int l = 0; l < L; l++) {
        nrem += removed[l] != 0;
        keep[l] = !removed[l];
        if (keep[l]) rep->dense_block[Lp++] = l;
    }
    if (nrem != k) return fl_err("criterion %s removed %d blocks instead of %d", ci->crit->name, nrem, k);
    fl_struct_keep kk = { .keep_layer = keep };
    if ((rep->keep = malloc((size_t)L))) { memcpy(rep->keep, keep, (size_t)L); rep->nkeep = (size_t)L; }
    return fl_struct_build(m, &kk, out);
}

void fl_struct_report_free(fl_struct_report *r) {
    free(r->keep);
    r->keep = NULL;
    r->nkeep = 0;
}

int fl_struct_prune(fl_model *m, const fl_crit_inst *ci, fl_structure kind, double frac, const float *X, const int32_t *tok,
                    int nwin, int T, int batch, int verbose, fl_model *out, fl_struct_report *rep) {
    memset(rep, 0, sizeof *rep);
    memset(out, 0, sizeof *out);
    if (fl_struct_check(ci->crit, kind, &m->cfg) != 0) return -1;
    if (kind == FL_STRUCT_NONE) return fl_err("structured pruning: no structure given");
    rep->kind = kind;
    rep->n = fl_structure_count(&m->cfg, kind);
    rep->n_dense_layers = m->cfg.n_layer;
    if (fl_config_nonuniform(&m->cfg))
        return fl_err("structured pruning: the model already has per-layer sizes; prune the dense model instead");
    const int global = kind != FL_STRUCT_LAYERS && ci->crit->global_ratio && ci->crit->global_ratio(ci->priv);
    if (global) {
        /* FLAP's global ratio: the fraction of all the model's structures,
         * one kept per block at least */
        const int64_t all = (int64_t)rep->n * m->cfg.n_layer;
        if (!(frac >= 0 && frac < 1)) return fl_structure_removed(rep->n, frac, kind, &rep->k);
        rep->k = (int)floor(frac * (double)all + 0.5);
        if (rep->k == 0)
            return fl_err("--sparsity %g with --structure %s and a global ratio removes none of the model's %lld; the least "
                          "that removes one is %g", frac, fl_structure_name(kind), (long long)all, 0.5 / (double)all);
        if (rep->k > all - m->cfg.n_layer)
            return fl_err("--sparsity %g with --structure %s and a global ratio removes %d of %lld; at most %lld (one kept per block)",
                          frac, fl_structure_name(kind), rep->k, (long long)all, (long long)(all - m->cfg.n_layer));
    } else if (fl_structure_removed(rep->n, frac, kind, &rep->k) != 0) return -1;
    if (batch < 1) batch = 8;
    rep->params_before = fl_model_num_params(m);
    int rc = kind == FL_STRUCT_LAYERS ? prune_depth(m, ci, rep->k, X, tok, nwin, T, batch, verbose, out, rep)
                                      : prune_width(m, ci, kind, rep->k, X, nwin, T, batch, out, rep);
    if (rc == 0) rep->params_after = fl_model_num_params(out);
    return rc;
}
