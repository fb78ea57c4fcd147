/* The pipeline of one grid cell; see cell.h and docs/ARCHITECTURE.md. */
#include "cell.h"
#include "cli.h"
#include "presets.h"
#include "settings.h"
#include "share.h"
#include "structured.h"
#include "criteria/criterion.h"
#include "reconstructors/recon.h"
#include "datasets/bpe.h"
#include "datasets/calib.h"
#include "datasets/corpus.h"
#include "datasets/tokfile.h"
#include "eval/drift.h"
#include "eval/ppl.h"
#include "eval/mc_corpus.h"
#include "model/alloc.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "model/fileio.h"
#include "model/gemm.h"
#include "model/model.h"
#include "model/clock.h"
#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static size_t peak_rss_kb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (size_t)ru.ru_maxrss;
}

static int file_exists(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISREG(st.st_mode); }


/* ---- statistics and captures through forward hooks --------------------- */

/* Statistics of every (layer, site) of the unit being pruned. */
typedef struct { fl_stats (*st)[4]; int l0, l1; } unit_stats;

static void stats_hook(void *ctx, int layer, fl_site site, const float *x, int N, int cols) {
    (void)cols;
    unit_stats *us = ctx;
    if (layer >= us->l0 && layer < us->l1) fl_stats_add(&us->st[layer - us->l0][site], x, N);
}

/* Copies the input of one site into dst (the current batch's rows). */
typedef struct { fl_site site; float *dst; } capture_ctx;
static void capture_hook(void *ctx, int layer, fl_site site, const float *x, int N, int cols) {
    (void)layer;
    capture_ctx *cc = ctx;
    if (site == cc->site) memcpy(cc->dst, x, sizeof(float) * (size_t)N * cols);
}

/* the input width of a site of block l (blocks differ after FLAP's global ratio) */
static int site_width(const fl_model *m, int l, fl_site s) {
    return s == FL_SITE_O ? fl_layer_heads(&m->cfg, l) * m->cfg.head_dim : s == FL_SITE_MLP_OUT ? fl_layer_ff(&m->cfg, l) : m->cfg.d;
}

/* ||X D^T||^2 / ||X W^T||^2 with D = W - W', from the Gram matrix G = X^T X:
 * tr(D G D^T) / tr(W G W^T). */
static double layer_error(const float *W, const float *Wp, int rows, int cols, const float *G) {
    float *D = fl_allocf((size_t)rows * cols), *DG = fl_allocf((size_t)rows * cols);
    for (int64_t i = 0; i < (int64_t)rows * cols; i++) D[i] = W[i] - Wp[i];
    double num = 0, den = 0;
    fl_gemm(0, 0, rows, cols, cols, 1.0f, D, cols, G, cols, 0.0f, DG, cols);
    for (int64_t i = 0; i < (int64_t)rows * cols; i++) num += (double)DG[i] * D[i];
    fl_gemm(0, 0, rows, cols, cols, 1.0f, W, cols, G, cols, 0.0f, DG, cols);
    for (int64_t i = 0; i < (int64_t)rows * cols; i++) den += (double)DG[i] * W[i];
    fl_free(D); fl_free(DG);
    return den > 0 ? num / den : 0.0;
}

/* Runs the range r of m over every window of `in` [nwin*T, d] in batches,
 * writing `out` (may equal in, or be NULL), calling hook if given. With a
 * capture site, each batch's input at that site is copied into cap. */
static int range_pass(fl_model *m, fl_range r, const float *in, float *out, int nwin, int T, int batch,
                      fl_hook hook, void *hctx, fl_site cap_site, float *cap) {
    const int d = m->cfg.d, cw = cap ? site_width(m, r.s0 / 2, cap_site) : 0;
    /* a streamed model holds the blocks of this range, and only them */
    if (r.s1 > r.s0 && fl_model_hold(m, r.s0 / 2, (r.s1 + 1) / 2) != 0) return -1;
    float *tmp = out ? NULL : fl_allocf((size_t)batch * T * d);
    for (int w0 = 0; w0 < nwin; w0 += batch) {
        int B = nwin - w0 < batch ? nwin - w0 : batch;
        capture_ctx cc = { cap_site, cap ? cap + (int64_t)w0 * T * cw : NULL };
        fl_fwd a = { .B = B, .T = T, .x_in = in + (int64_t)w0 * T * d, .x_out = out ? out + (int64_t)w0 * T * d : tmp,
                     .hook = cap ? capture_hook : hook, .hook_ctx = cap ? (void *)&cc : hctx };
        if (fl_forward(m, r, &a, NULL) != 0) { fl_free(tmp); return -1; }
    }
    fl_free(tmp);
    return 0;
}

/* ---- the walk over the plan ----------------------------------------------- */

/* The input of one site of sublayer `sub`, captured over every window for
 * the linear units that read it: on the sparse stream (and the dense one).
 * sub < 0: nothing captured. */
typedef struct {
    int sub;
    fl_site site;
    float *Xs, *Xd;
} capture_t;

/* The walk's streams, each [nwin*T, d]:
 *   S  the sparse stream: the input of sublayer s_pos through the model
 *      pruned and recovered so far: what the next recovery unit learns
 *      from (propagation sparse and dense-target);
 *   D  the dense stream at the same place, through the dense model's copy
 *      (propagation dense and dense-target only);
 *   P  the prune stream: the input of the next block to prune. With
 *      --prune-stream dense it is the dense model's own activations,
 *      advanced by the statistics pass itself (the block being pruned is
 *      still dense then), so no copy of the model is needed; with sparse
 *      it is S when S stands there, else S carried on through the blocks
 *      pruned since (blocks:K and all, none, the retraining baselines).
 * dense_w[l*7+i] keeps the dense weights of a pruned linear until the last
 * recovery unit that reaches it (last_use) has been recovered: its target
 * is the dense unit's output. */
typedef struct {
    const fl_cell_cfg *c;
    fl_model *m, *dense;          /* dense: a copy of the unpruned model, for the dense stream */
    const fl_crit_inst *crit;     /* opened once per cell, by fl_cell_run */
    fl_pattern pat;
    fl_recon_inst rec;
    fl_plan plan;
    fl_recon_opts ro;
    fl_prop prop;
    int prune_dense;              /* --prune-stream dense */
    int nwin, T, batch;
    float *S, *D, *P;
    int s_pos, p_block;           /* S's (and D's) sublayer; the block P stands before (-1: P not held) */
    float **dense_w;
    int *last_use;
    const int32_t *tok;           /* model units: retrain_nwin windows' tokens, the calibration windows first */
    int retrain_nwin;
    capture_t cap;
    fl_cell_result *r;
    int64_t pruned, weights;
    /* the pruning pass shared between cells (share.h): reused from an
     * entry (sh_buf, read at sh_off), or recorded into one (sh_rec) */
    uint8_t *sh_buf;
    const uint8_t *sh_p;
    size_t sh_n, sh_off;
    int sh_rec, sh_last;          /* recording; the plan's last prune unit */
    fl_share_writer sh_w;
    void *sh_masks;               /* EVP_MD_CTX over the recorded masks */
    /* structured pruning: the model is already smaller; a range unit's
     * target is the dense model's span that the unit now stands for */
    const fl_struct_report *sr;
} walk_t;

/* The dense sublayer where sublayer s of the structurally pruned model
 * starts (s = 2*n_layer: the dense end). A block removed is absorbed by the
 * unit before it (blocks removed before the first kept one, by the first):
 * the unit spanning the gap reconstructs the dense span's output. */
static int dense_sub(const walk_t *w, int s) {
    const int Lp = w->m->cfg.n_layer;
    if (s >= 2 * Lp) return 2 * w->sr->n_dense_layers;
    if (s == 0) return 0;
    return 2 * w->sr->dense_block[s / 2] + s % 2;
}

static fl_unit_report *new_report(walk_t *w) {
    fl_cell_result *r = w->r;
    if (r->n_units == r->cap_units) {
        r->cap_units = r->cap_units ? 2 * r->cap_units : 32;
        r->units = realloc(r->units, sizeof(fl_unit_report) * r->cap_units);
    }
    fl_unit_report *u = &r->units[r->n_units++];
    memset(u, 0, sizeof *u);
    return u;
}

/* Hands one bound unit to the reconstructor (or to the tests' override). */
static int recover(walk_t *w, const fl_unit *u, const float *X, const float *Y) {
    /* streamed: the unit's blocks held (a model unit: all of them) */
    const int l0 = u->kind == FL_UNIT_LINEAR ? u->w->layer : u->kind == FL_UNIT_RANGE ? u->r.s0 / 2 : 0;
    const int l1 = u->kind == FL_UNIT_LINEAR ? l0 + 1 : u->kind == FL_UNIT_RANGE ? (u->r.s1 + 1) / 2 : w->m->cfg.n_layer;
    if (fl_model_hold(w->m, l0, l1) != 0) return -1;
    fl_recover_job j = { .m = w->m, .u = u, .X = X, .Y = Y, .tok = w->tok,
                         .nwin = u->kind == FL_UNIT_MODEL ? w->retrain_nwin : w->nwin, .T = w->T,
                         .o = &w->ro, .priv = w->rec.priv };
    return (w->c->recover_override ? w->c->recover_override : w->rec.r->recover)(&j, new_report(w));
}

/* ---- the pruning pass shared between cells (share.h) ---------------------
 *
 * With --prune-stream dense every block's masks and updated weights depend
 * on the dense model and the calibration windows alone; with sparse, only
 * while no unit has recovered anything yet (none, the retraining
 * baselines, blocks:all). Such a pass is stored as one entry: for each
 * linear the walk prunes, in the walk's order,
 *   name[64]  int32 rows, cols  double sparsity, error  float w[n]  uint8 mask[n]
 * then the SHA-256 of all the masks in that order (hex, 64 bytes), checked
 * on reading beside the file's own checksum. A cell that reuses it sets
 * each block's weights and masks where statistics and pruning would have
 * run, and keeps the dense weights its recovery needs exactly as then. */

#define SH_REC (64 + 8 + 16)

static int share_eligible(const fl_plan *p, int prune_dense, int *last) {
    int first_rec = p->n;
    *last = -1;
    for (int i = 0; i < p->n; i++) {
        if (p->u[i].prune) *last = i;
        if (p->u[i].recover && first_rec == p->n) first_rec = i;
    }
    return *last >= 0 && (prune_dense || *last < first_rec);
}

/* The key: every input of the pass (the binary's own bytes among them,
 * share.c). */
static int share_key(const fl_cell_cfg *c, const fl_model *m, const fl_plan *p, int prune_dense, const int32_t *tok, int nwin,
                     int T, int batch, char hex[65]) {
    fl_share_key k;
    char path[4200];
    if (fl_share_key_init(&k, "prune") != 0) return -1;
    fl_share_key_str(&k, "stream", prune_dense ? "dense" : "sparse, before any recovery");
    snprintf(path, sizeof path, "%.4000s/config.json", c->model_dir);
    fl_share_key_file(&k, "config.json", path);
    fl_share_key_add(&k, "weights", m->data, sizeof(float) * m->n_floats);
    fl_share_key_int(&k, "windows", nwin);
    fl_share_key_int(&k, "seqlen", T);
    fl_share_key_add(&k, "calibration tokens", tok, sizeof(int32_t) * (size_t)nwin * T);
    fl_share_key_str(&k, "criterion", c->criterion);
    fl_share_key_str(&k, "sparsity", c->sparsity);
    fl_share_key_str(&k, "pattern", c->pattern);
    fl_share_key_int(&k, "seed", (long long)c->seed);
    fl_share_key_int(&k, "batch", batch);
    fl_share_key_int(&k, "threads", fl_threads());
    fl_share_key_str(&k, "backend", fl_gemm_backend_name());
    for (int i = 0; i < p->n; i++)
        if (p->u[i].prune) fl_share_key_int(&k, "prune unit", p->u[i].s0);
    return fl_share_key_final(&k, hex);
}

static void mask_hex(void *h, char hex[65]) {
    unsigned char md[32];
    unsigned len = 0;
    memset(md, 0, sizeof md);
    EVP_DigestFinal_ex(h, md, &len);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* Does the entry hold exactly the linears this walk prunes, in its order,
 * with masks of 0/1 whose hash is the recorded one? */
static const char *share_check(walk_t *w) {
    const uint8_t *q = w->sh_p;
    size_t off = 0, n = w->sh_n;
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    const char *why = h && EVP_DigestInit_ex(h, EVP_sha256(), NULL) ? NULL : "SHA-256 failed";
    for (int j = 0; j < w->plan.n && !why; j++) {
        if (!w->plan.u[j].prune) continue;
        fl_param *lw[7];
        int k = fl_layer_linears(w->m, w->plan.u[j].s0 / 2, lw, NULL, NULL);
        for (int i = 0; i < k && !why; i++) {
            const fl_param *p = lw[i];
            int32_t rc[2];
            if (n - off < SH_REC) { why = "shorter than the model's linears"; break; }
            memcpy(rc, q + off + 64, 8);
            if (strncmp((const char *)q + off, p->name, 64) || rc[0] != p->rows || rc[1] != p->cols) { why = "another model's linears"; break; }
            off += SH_REC;
            if ((n - off) / 5 < (size_t)p->n) { why = "shorter than the model's linears"; break; }
            const uint8_t *mk = q + off + 4 * (size_t)p->n;
            for (int64_t t = 0; t < p->n && !why; t++)
                if (mk[t] > 1) why = "a mask byte other than 0 or 1";
            EVP_DigestUpdate(h, mk, (size_t)p->n);
            off += 5 * (size_t)p->n;
        }
    }
    if (!why && n - off != 64) why = "wrong length";
    if (!why) {
        char hex[65];
        mask_hex(h, hex);
        if (memcmp(hex, q + off, 64)) why = "mask hash mismatch";
    }
    EVP_MD_CTX_free(h);
    return why;
}

/* Reuse the entry, or start recording one (share_eligible said the pass
 * can be shared). */
static void share_open(walk_t *w, const char *hex) {
    const char *cache = w->c->cache;
    char path[4200];
    fl_share_path(cache, "prune", hex, path, sizeof path);
    size_t n;
    if (fl_share_load(cache, "prune", hex, &w->sh_buf, &w->sh_p, &n)) {
        w->sh_n = n;
        const char *why = share_check(w);
        if (!why) {
            char mh[65];
            memcpy(mh, w->sh_p + n - 64, 64);
            mh[64] = 0;
            fprintf(stderr, "share: pruning pass (masks %.16s...) reused from %s\n", mh, path);
            w->r->shared_pruning = "reused";
            return;
        }
        fprintf(stderr, "share: %s: %s, ignored: computed again\n", path, why);
        free(w->sh_buf);
        w->sh_buf = NULL;
    }
    w->r->shared_pruning = "computed";
    if (fl_share_begin(&w->sh_w, cache, "prune", hex) != 0) return;
    w->sh_masks = EVP_MD_CTX_new();
    if (!w->sh_masks || !EVP_DigestInit_ex(w->sh_masks, EVP_sha256(), NULL)) { fl_share_abort(&w->sh_w); return; }
    w->sh_rec = 1;
}

static void share_record(walk_t *w, const fl_param *p, const fl_linear_report *lr) {
    char nm[64] = { 0 };
    memcpy(nm, p->name, strnlen(p->name, 63));
    int32_t rc[2] = { p->rows, p->cols };
    double se[2] = { lr->sparsity, lr->err };
    fl_share_write(&w->sh_w, nm, 64);
    fl_share_write(&w->sh_w, rc, 8);
    fl_share_write(&w->sh_w, se, 16);
    fl_share_write(&w->sh_w, p->w, sizeof(float) * (size_t)p->n);
    fl_share_write(&w->sh_w, p->mask, (size_t)p->n);
    EVP_DigestUpdate(w->sh_masks, p->mask, (size_t)p->n);
}

static void share_commit(walk_t *w) {
    char hex[65];
    mask_hex(w->sh_masks, hex);
    fl_share_write(&w->sh_w, hex, 64);
    fl_share_commit(&w->sh_w);
    w->sh_rec = 0;
}

static void share_close(walk_t *w) {
    if (w->sh_rec) fl_share_abort(&w->sh_w);   /* the cell failed before its last prune unit */
    w->sh_rec = 0;
    EVP_MD_CTX_free(w->sh_masks);
    w->sh_masks = NULL;
    free(w->sh_buf);
    w->sh_buf = NULL;
}

/* Block b's linears from the entry (share_check validated it): what
 * prune_linear would have left. */
static int share_apply(walk_t *w, int b) {
    fl_prof_enter(&w->r->prof, FL_PH_PRUNE);
    fl_param *lw[7];
    int k = fl_layer_linears(w->m, b, lw, NULL, NULL);
    for (int i = 0; i < k; i++) {
        fl_param *p = lw[i];
        const uint8_t *q = w->sh_p + w->sh_off;
        double se[2];
        memcpy(se, q + 72, 16);
        if (w->last_use[b * 7 + i] >= 0) {
            w->dense_w[b * 7 + i] = fl_allocf((size_t)p->n);
            memcpy(w->dense_w[b * 7 + i], p->w, sizeof(float) * p->n);
        }
        memcpy(p->w, q + SH_REC, sizeof(float) * (size_t)p->n);
        const uint8_t *mask = q + SH_REC + 4 * (size_t)p->n;
        if (fl_param_set_mask(p, mask) != 0) return -1;
        fl_linear_report *lr = &w->r->lin[w->r->n_linears++];
        snprintf(lr->name, sizeof lr->name, "%s", p->name);
        lr->sparsity = se[0];
        lr->err = se[1];
        int64_t z = 0;
        for (int64_t t = 0; t < p->n; t++) z += !mask[t];
        w->pruned += z;
        w->weights += p->n;
        w->sh_off += SH_REC + 5 * (size_t)p->n;
    }
    fl_prof_enter(&w->r->prof, FL_PH_STATS);
    return 0;
}

/* Prune one linear with the statistics of its input; records its error
 * and keeps its dense weights when a later unit will recover it. */
static int prune_linear(walk_t *w, int l, int i, fl_param *p, const fl_stats *st) {
    float *W0 = fl_allocf((size_t)p->n);
    memcpy(W0, p->w, sizeof(float) * p->n);
    uint8_t *mask = fl_alloc((size_t)p->n);
    fl_prune_job job = { .W = p->w, .rows = p->rows, .cols = p->cols, .st = st, .pat = w->pat,
                         .mask = mask, .seed = w->c->seed * 1000003ull + (uint64_t)(l * 8 + i) };
    int rc = fl_criterion_run(w->crit, &job);
    if (rc == 0) rc = fl_param_set_mask(p, mask);
    if (rc == 0) {
        fl_linear_report *lr = &w->r->lin[w->r->n_linears++];
        snprintf(lr->name, sizeof lr->name, "%s", p->name);
        int64_t z = 0;
        for (int64_t k = 0; k < p->n; k++) z += !mask[k];
        lr->sparsity = (double)z / p->n;
        /* tr(D G D^T) costs 4 rows cols^2 FLOPs, the pruning pass's largest
         * term on a big model (1 TFLOP a block at 1B): --no-layer-error */
        lr->err = w->c->no_layer_error ? NAN : layer_error(W0, p->w, p->rows, p->cols, st->gram);
        w->pruned += z;
        w->weights += p->n;
        if (w->sh_rec) share_record(w, p, lr);
    }
    fl_free(mask);
    if (rc == 0 && w->last_use[l * 7 + i] >= 0) w->dense_w[l * 7 + i] = W0;
    else fl_free(W0);
    return rc;
}

/* Swaps the dense weights kept for the linears of sublayers [s0, s1) with
 * the model's (twice restores): the dense unit's output, in place. */
static void swap_dense(walk_t *w, int s0, int s1) {
    for (int l = s0 / 2; l <= (s1 - 1) / 2; l++) {
        fl_param *lw[7];
        int k = fl_layer_linears(w->m, l, lw, NULL, NULL);
        for (int i = 0; i < k; i++) {
            float *d = w->dense_w[l * 7 + i];
            int s = fl_param_sublayer(lw[i]);
            if (!d || s < s0 || s >= s1) continue;
            for (int64_t q = 0; q < lw[i]->n; q++) { float t = lw[i]->w[q]; lw[i]->w[q] = d[q]; d[q] = t; }
        }
    }
}

/* After recovery unit j: the dense weights no later unit needs. */
static void drop_dense(walk_t *w, int j) {
    for (int q = 0; q < w->m->cfg.n_layer * 7; q++)
        if (w->last_use[q] == j) { fl_free(w->dense_w[q]); w->dense_w[q] = NULL; }
}

/* Moves S (and D) through sublayers [s_pos, s) of the model as it is and
 * of the dense copy: a gap no recovery unit covers. */
static int advance(walk_t *w, int s) {
    if (s <= w->s_pos) return 0;
    const fl_range rg = { w->s_pos, s, 0, 0 };
    int rc = range_pass(w->m, rg, w->S, w->S, w->nwin, w->T, w->batch, NULL, NULL, 0, NULL);
    if (rc == 0 && w->D) rc = range_pass(w->dense, rg, w->D, w->D, w->nwin, w->T, w->batch, NULL, NULL, 0, NULL);
    w->s_pos = s;
    return rc;
}

/* Is a later unit than j a prune unit / a local recovery unit? */
static int next_prunes(const fl_plan *p, int j) { return j + 1 < p->n && p->u[j + 1].prune; }
static int later_local(const fl_plan *p, int j) {
    for (int i = j + 1; i < p->n; i++)
        if (p->u[i].recover && p->u[i].kind != FL_UNIT_MODEL) return 1;
    return 0;
}

/* A prune unit, block b: the statistics of all its linears from one pass
 * through the still-dense block on the prune stream, then every linear
 * pruned. The prune stream moves on when the next unit prunes too. */
static int walk_prune(walk_t *w, int j) {
    fl_model *m = w->m;
    const int b = w->plan.u[j].s0 / 2, nw = w->nwin, T = w->T;
    const size_t ssz = (size_t)nw * T * m->cfg.d;
    const fl_range rg = { 2 * b, 2 * b + 2, 0, 0 };
    if (w->sh_buf) return share_apply(w, b);
    fl_prof_enter(&w->r->prof, FL_PH_STATS);
    /* where the statistics come from: S itself, or P (which stands before b) */
    const int from_S = !w->prune_dense && w->p_block != b;
    if (from_S ? !w->S || w->s_pos != 2 * b : w->p_block != b)
        return fl_err("walk: no stream stands before layers.%d to prune it from", b);
    int rc = 0;
    unit_stats us = { calloc(1, sizeof *us.st), b, b + 1 };
    for (int s = 0; s < 4; s++) fl_stats_init(&us.st[0][s], FL_STATS_GRAM, site_width(m, b, (fl_site)s));
    /* dense: the pass through the dense block is also the dense stream's next step */
    rc = range_pass(m, rg, from_S ? w->S : w->P, w->prune_dense ? w->P : NULL, nw, T, w->batch, stats_hook, &us, 0, NULL);
    fl_prof_enter(&w->r->prof, FL_PH_PRUNE);
    fl_linear_shape sh[7];
    fl_config_linears(&m->cfg, sh);
    fl_param *lw[7];
    int k = fl_layer_linears(m, b, lw, NULL, NULL);
    for (int i = 0; i < k && rc == 0; i++) rc = prune_linear(w, b, i, lw[i], &us.st[0][sh[i].site]);
    for (int s = 0; s < 4; s++) fl_stats_free(&us.st[0][s]);
    free(us.st);
    fl_prof_enter(&w->r->prof, FL_PH_STATS);
    if (rc == 0 && w->prune_dense) {
        w->p_block = b + 1;
        if (b + 1 == m->cfg.n_layer) { fl_free(w->P); w->P = NULL; w->p_block = -1; }
    } else if (rc == 0) {
        /* sparse: carry the stream through the block just pruned when the
         * next unit prunes the next block before any recovery reaches it */
        if (!next_prunes(&w->plan, j)) { if (w->P != w->S) fl_free(w->P); w->P = NULL; w->p_block = -1; }
        else {
            if (from_S) {
                if (later_local(&w->plan, j)) {
                    w->P = fl_allocf(ssz);
                    memcpy(w->P, w->S, sizeof(float) * ssz);
                } else { w->P = w->S; w->S = NULL; }   /* nothing recovers from S any more: it becomes P */
            }
            rc = range_pass(m, rg, w->P, w->P, nw, T, w->batch, NULL, NULL, 0, NULL);
            w->p_block = b + 1;
        }
    }
    return rc;
}

/* A range unit: its target (the dense weights' output on the sparse
 * stream, or the dense stream's), recover, advance. */
static int walk_range(walk_t *w, int j) {
    const fl_plan_unit *pu = &w->plan.u[j];
    fl_model *m = w->m;
    const fl_range rg = { pu->s0, pu->s1, 0, 0 };
    const int d = m->cfg.d, nw = w->nwin, T = w->T;
    const size_t ssz = (size_t)nw * T * d;
    fl_prof_enter(&w->r->prof, FL_PH_STATS);
    int rc = advance(w, pu->s0);
    if (rc == 0) rc = fl_model_hold(m, pu->s0 / 2, (pu->s1 + 1) / 2);   /* swap_dense touches them */
    float *Tg = fl_allocf(ssz);
    if (rc == 0 && w->sr) {
        const fl_range dr = { dense_sub(w, pu->s0), dense_sub(w, pu->s1), 0, 0 };
        rc = range_pass(w->dense, dr, w->S, Tg, nw, T, w->batch, NULL, NULL, 0, NULL);
    } else if (rc == 0 && w->prop == FL_PROP_SPARSE) {
        swap_dense(w, pu->s0, pu->s1);
        rc = range_pass(m, rg, w->S, Tg, nw, T, w->batch, NULL, NULL, 0, NULL);
        swap_dense(w, pu->s0, pu->s1);
    } else if (rc == 0) rc = range_pass(w->dense, rg, w->D, Tg, nw, T, w->batch, NULL, NULL, 0, NULL);
    if (rc == 0) {
        fl_prof_enter(&w->r->prof, FL_PH_RECOVER);
        fl_unit u = { .kind = FL_UNIT_RANGE, .r = rg, .in_w = d, .out_w = d };
        snprintf(u.name, sizeof u.name, "%s", pu->name);
        rc = recover(w, &u, w->prop == FL_PROP_DENSE ? w->D : w->S, Tg);
    }
    drop_dense(w, j);
    /* advance: the sparse stream through the recovered unit; the dense
     * stream already holds the dense unit's output (Tg). Moving the
     * streams is counted with the statistics' forward passes, not in the
     * recovery peak. */
    fl_prof_enter(&w->r->prof, FL_PH_STATS);
    if (rc == 0) rc = range_pass(m, rg, w->S, w->S, nw, T, w->batch, NULL, NULL, 0, NULL);
    if (rc == 0 && w->D && !w->sr) memcpy(w->D, Tg, sizeof(float) * ssz);
    w->s_pos = pu->s1;
    fl_free(Tg);
    return rc;
}

static void capture_free(capture_t *c) {
    if (c->sub < 0) return;
    fl_free(c->Xs);
    fl_free(c->Xd);
    c->Xs = c->Xd = NULL;
    c->sub = -1;
}

/* The input of `site` in sublayer s over every window, captured on the
 * sparse stream after the units before it were recovered (and on the
 * dense stream); kept for the units that follow at the same site. */
static int capture(walk_t *w, int s, fl_site site) {
    capture_t *c = &w->cap;
    if (c->sub == s && c->site == site) return 0;
    capture_free(c);
    fl_model *m = w->m;
    const int nw = w->nwin, T = w->T, cw = site_width(m, s / 2, site);
    const int64_t NT = (int64_t)nw * T;
    const fl_range rg = { s, s + 1, 0, 0 };
    fl_prof_enter(&w->r->prof, FL_PH_STATS);
    c->sub = s;
    c->site = site;
    c->Xs = fl_allocf((size_t)NT * cw);
    int rc = range_pass(m, rg, w->S, NULL, nw, T, w->batch, NULL, NULL, site, c->Xs);
    if (rc == 0 && w->D) {
        c->Xd = fl_allocf((size_t)NT * cw);
        rc = range_pass(w->dense, rg, w->D, NULL, nw, T, w->batch, NULL, NULL, site, c->Xd);
    }
    return rc;
}

/* A linear unit: its site's input (captured once for the linears that
 * share it), the target (its dense weights on the sparse or dense input),
 * recover. */
static int walk_linear(walk_t *w, int j) {
    const fl_plan_unit *pu = &w->plan.u[j];
    fl_model *m = w->m;
    const int nw = w->nwin, T = w->T;
    const int64_t NT = (int64_t)nw * T;
    fl_linear_shape sh[7];
    fl_config_linears(&m->cfg, sh);
    fl_param *lw[7], *lb[7];
    fl_layer_linears(m, pu->layer, lw, lb, NULL);
    const fl_site site = sh[pu->lin].site;
    const int cw = site_width(m, pu->layer, site);
    fl_prof_enter(&w->r->prof, FL_PH_STATS);
    if (advance(w, pu->s0) != 0 || capture(w, pu->s0, site) != 0) return -1;
    const capture_t *c = &w->cap;
    /* the dense linear: the weights kept for it, or the dense model's own
     * (its bias is the model's too: nothing trained it yet) */
    fl_param *p = lw[pu->lin], dw = *p, *db = lb[pu->lin];
    dw.ad = NULL;
    if (w->prop == FL_PROP_SPARSE) dw.w = w->dense_w[pu->layer * 7 + pu->lin];
    else {
        fl_param *dlw[7], *dlb[7];
        fl_layer_linears(w->dense, pu->layer, dlw, dlb, NULL);
        dw = *dlw[pu->lin];
        db = dlb[pu->lin];
    }
    fl_prof_enter(&w->r->prof, FL_PH_RECOVER);
    float *Y = fl_allocf((size_t)NT * p->rows);
    const float *Xt = w->prop == FL_PROP_SPARSE ? c->Xs : c->Xd;
    for (int64_t r0 = 0; r0 < NT; r0 += 4096)
        fl_linear_forward(&dw, db, Xt + r0 * cw, Y + r0 * p->rows, (int)(NT - r0 < 4096 ? NT - r0 : 4096));
    fl_unit u = { .kind = FL_UNIT_LINEAR, .w = p, .b = lb[pu->lin], .in_w = cw, .out_w = p->rows };
    snprintf(u.name, sizeof u.name, "%.50s", p->name);
    char *dot = strrchr(u.name, '.');
    if (dot && !strcmp(dot, ".weight")) *dot = 0;
    int rc = recover(w, &u, w->prop == FL_PROP_DENSE ? c->Xd : c->Xs, Y);
    fl_free(Y);
    drop_dense(w, j);
    return rc;
}

/* After the last linear unit of sublayer s: both streams through it. */
static int finish_sublayer(walk_t *w, int s) {
    capture_free(&w->cap);
    fl_prof_enter(&w->r->prof, FL_PH_STATS);
    return advance(w, s + 1);
}

/* A model unit: the streams are no longer needed; the reconstructor trains
 * the model on the calibration tokens (against the dense model's
 * distribution with --distill). */
static int walk_model(walk_t *w, const fl_plan_unit *pu) {
    fl_free(w->S); w->S = NULL;
    fl_free(w->D); w->D = NULL;
    fl_prof_enter(&w->r->prof, FL_PH_RECOVER);
    fl_model teacher;
    const int hidden = w->ro.hidden_weight > 0;
    int map[FL_MAX_LAYERS];
    if (w->c->distill || hidden) {
        if (fl_model_load(&teacher, w->c->model_dir) != 0) return -1;
        w->ro.teacher = &teacher;
        w->ro.teacher_hidden_only = !w->c->distill;
        /* the teacher's place for each block's output: the next block's
         * input, or, after blocks were removed, the end of the dense span
         * the block now stands for */
        for (int i = 0; i < w->m->cfg.n_layer; i++) map[i] = w->sr ? dense_sub(w, 2 * (i + 1)) / 2 : i + 1;
        w->ro.hidden_map = map;
    }
    fl_unit u = { .kind = FL_UNIT_MODEL, .r = fl_range_whole(w->m), .in_w = 0, .out_w = 0 };
    snprintf(u.name, sizeof u.name, "%s", pu->name);
    int rc = recover(w, &u, NULL, NULL);
    if (w->c->distill || hidden) { fl_model_free(&teacher); w->ro.teacher = NULL; w->ro.hidden_map = NULL; }
    if (rc == 0 && !w->sr) {
        /* the model's weights may now differ from its masks' zeros (LoRA
         * merges dense updates): count the sparsity actually saved */
        int64_t z = 0, n = 0;
        for (int l = 0; l < w->m->cfg.n_layer; l++) {
            fl_param *lw[7];
            int k = fl_layer_linears(w->m, l, lw, NULL, NULL);
            for (int j = 0; j < k; j++)
                for (int64_t q = 0; q < lw[j]->n; q++) { z += lw[j]->w[q] == 0.0f; n++; }
        }
        w->pruned = z; w->weights = n;
    }
    return rc;
}

static int walk_plan(walk_t *w) {
    const fl_plan *p = &w->plan;
    int rc = 0;
    double t0 = fl_wall_s();
    w->cap.sub = -1;
    for (int i = 0; i < p->n && rc == 0; i++) {
        const fl_plan_unit *u = &p->u[i];
        if (u->prune) {
            rc = walk_prune(w, i);
            if (rc == 0 && w->sh_rec && i == w->sh_last) share_commit(w);
        } else if (u->kind == FL_UNIT_RANGE) rc = walk_range(w, i);
        else if (u->kind == FL_UNIT_MODEL) rc = walk_model(w, u);
        else {
            rc = walk_linear(w, i);
            /* the sublayer is done when the next unit is not a linear of it */
            const fl_plan_unit *nx = i + 1 < p->n ? &p->u[i + 1] : NULL;
            if (rc == 0 && (!nx || nx->kind != FL_UNIT_LINEAR || nx->s0 != u->s0)) rc = finish_sublayer(w, u->s0);
        }
        if (w->c->progress) fprintf(stderr, "%s: %s done (%.1fs)\n", w->rec.r->name, u->name, fl_wall_s() - t0);
    }
    capture_free(&w->cap);
    return rc;
}

/* SHA-256 over every block linear's mask, in depth order (layers in
 * order, fl_layer_linears order inside each), one byte per weight (1
 * kept, 0 pruned): cells that print the same hash pruned the same weights.
 * masks.bin, written beside a saved model, holds exactly these bytes. */
static int mask_bytes(const fl_model *m, int (*each)(void *ctx, const uint8_t *b, size_t n), void *ctx) {
    for (int l = 0; l < m->cfg.n_layer; l++) {
        /* streamed: the masks come back with their block */
        if (fl_model_hold((fl_model *)m, l, l + 1) != 0) return -1;
        fl_param *lw[7];
        int k = fl_layer_linears((fl_model *)m, l, lw, NULL, NULL);
        for (int i = 0; i < k; i++) {
            if (!lw[i]->mask) return fl_err("%s has no mask", lw[i]->name);
            if (each(ctx, lw[i]->mask, (size_t)lw[i]->n) != 0) return -1;
        }
    }
    return 0;
}
static int hash_each(void *ctx, const uint8_t *b, size_t n) { return EVP_DigestUpdate(ctx, b, n) ? 0 : fl_err("SHA-256 failed"); }
static int mask_sha256(const fl_model *m, char hex[65]) {
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    unsigned char md[32];
    unsigned len = 0;
    int rc = h && EVP_DigestInit_ex(h, EVP_sha256(), NULL) ? mask_bytes(m, hash_each, h) : fl_err("SHA-256 failed");
    if (rc == 0 && !EVP_DigestFinal_ex(h, md, &len)) rc = fl_err("SHA-256 failed");
    EVP_MD_CTX_free(h);
    for (int i = 0; i < 32 && rc == 0; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return rc;
}
/* Structured cells: SHA-256 over what was kept, one byte per structure
 * (1 kept, 0 removed), per block in depth order (or one per block for
 * layers), after the structure's name: the same value, the same removal. */
static int keep_sha256(const fl_struct_report *sr, char hex[65]) {
    unsigned char md[32];
    unsigned len = 0;
    const char *nm = fl_structure_name(sr->kind);
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    int ok = h && EVP_DigestInit_ex(h, EVP_sha256(), NULL) && EVP_DigestUpdate(h, nm, strlen(nm)) &&
             (!sr->nkeep || EVP_DigestUpdate(h, sr->keep, sr->nkeep)) && EVP_DigestFinal_ex(h, md, &len);
    EVP_MD_CTX_free(h);
    if (!ok) return fl_err("SHA-256 failed");
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}
static int write_each(void *ctx, const uint8_t *b, size_t n) { return fwrite(b, 1, n, ctx) == n ? 0 : fl_err("write failed"); }
/* masks.bin through fileio's temporary file, renamed when complete */
static int masks_write(const fl_model *m, const char *path) {
    char *tmp;
    FILE *f = fl_tmp_open(path, &tmp);
    if (!f) return -1;
    return fl_tmp_commit(f, tmp, path, mask_bytes(m, write_each, f) == 0);
}

/* ---- evaluation sets ---------------------------------------------------- */

static int eval_tokens(const fl_cell_cfg *c, const char *spec, int vocab, int32_t **tok, int64_t *n) {
    if (file_exists(spec) || strstr(spec, ".bin")) return fl_tokfile_read(spec, vocab, tok, n);
    return fl_split_tokens(c->cache, spec, c->model_dir, vocab, c->share, tok, n);
}

/* ---- windows: calibration and drift --------------------------------------- */

/* n windows of T tokens from a token file (one document) or else a split
 * tokenized with the model's tokenizer, drawn by seed (datasets/calib.h);
 * the first nwrite written to NAME in the cell directory. */
static int draw_windows(const fl_cell_cfg *c, const char *file, const char *split, int n, int nwrite, int T, uint64_t seed,
                        int vocab, const char *name, fl_calib *cal) {
    int rc;
    if (file) rc = fl_calib_sample_file(file, vocab, n, T, seed, cal);
    else {
        fl_split sp;
        fl_bpe *tok;
        if (fl_split_load(c->cache, split, &sp) != 0) return -1;
        if (fl_bpe_load(&tok, c->model_dir) != 0) { fl_split_free(&sp); return -1; }
        /* what fl_calib_sample_split does, the documents' tokens shared
         * between cells with --share */
        int32_t **docs;
        int64_t *lens;
        int nd;
        rc = sp.n < 1 ? fl_err("split %s is empty: nothing to calibrate on", sp.name)
                      : fl_share_tokenize(c->share ? c->cache : NULL, "docs", &sp, tok, c->model_dir, vocab, &docs, &lens, &nd);
        if (rc == 0) {
            char what[64];
            snprintf(what, sizeof what, "split %s", sp.name);
            rc = fl_calib_sample_docs((const int32_t *const *)docs, lens, nd, n, T, seed, what, cal);
            fl_share_docs_free(docs, lens, nd);
        }
        fl_bpe_free(tok);
        fl_split_free(&sp);
    }
    if (rc != 0) return -1;
    char path[4200];
    snprintf(path, sizeof path, "%.4000s/%s", c->out_dir, name);
    cal->n = nwrite;
    rc = fl_calib_write(cal, path);
    cal->n = n;
    if (rc != 0) { fl_calib_free(cal); return -1; }
    return 0;
}

/* The drift windows --drift-windows asks for (0: none), parsed. */
static int drift_windows(const fl_cell_cfg *c, int *k) {
    long long v = 0;
    if (fl_parse_int(c->drift_windows, 0, FL_INT_MAX, &v) != 0) {
        char msg[1100];
        snprintf(msg, sizeof msg, "%s", fl_errmsg());
        return fl_err("--drift-windows: %s", msg);
    }
    *k = (int)v;
    return 0;
}

/* Activation drift after recovery (eval/drift.h): K windows of the cell's
 * seqlen by the fixed FL_DRIFT_SEED (every cell of a grid on the same
 * tokens) from --drift-data, else from the --calib token file (a model
 * calibrated on token files may have no tokenizer), else from sotu-val,
 * written to drift.bin; the dense model loaded again beside the pruned
 * one, measured, freed. dense_block: a structured cell's map of its blocks
 * to the dense ones (NULL: the same model shapes). */
static int measure_drift(const fl_cell_cfg *c, fl_model *m, const int *dense_block, int T, int batch, fl_drift_result *dr) {
    int k = -1;
    if (drift_windows(c, &k) != 0 || k == 0) return k == 0 ? 0 : -1;
    fl_calib dw = { 0 };
    const char *file = c->drift_data ? c->drift_data : c->calib_file;
    if (draw_windows(c, file, "sotu-val", k, k, T, FL_DRIFT_SEED, m->cfg.vocab, "drift.bin", &dw) != 0) return -1;
    fl_model dense;
    int rc = fl_model_load(&dense, c->model_dir);
    if (rc == 0) {
        rc = fl_drift_measure_mapped(m, &dense, dense_block, dw.tokens, dw.n, T, batch, dr);
        fl_model_free(&dense);
    }
    fl_calib_free(&dw);
    return rc;
}

/* ---- inference throughput ------------------------------------------------- */

/* Forward tokens/s of m over up to 8 windows of T tokens of tok (batch 4,
 * logits computed, no activations kept): the best of `reps` timed passes,
 * so one preempted pass on a shared machine does not decide it. *peak: the
 * model's parameters and the tracked peak of the passes above what was
 * live before them (the tracked allocator: exact, unlike the timing). */
static double infer_tok_s(fl_model *m, const int32_t *tok, int64_t n, int T, int reps, size_t *peak) {
    int nw = (int)(n / T);
    if (nw > 8) nw = 8;
    if (nw < 1) return 0;
    int32_t *tg = malloc(sizeof(int32_t) * (size_t)4 * T);
    if (!tg) return 0;
    for (int i = 0; i < 4 * T; i++) tg[i] = -1;
    double best = 0;
    const size_t live0 = fl_mem_live();
    fl_mem_reset_peak();
    for (int r = 0; r < reps; r++) {
        const double t0 = fl_wall_s();
        for (int w0 = 0; w0 < nw; w0 += 4) {
            int B = nw - w0 < 4 ? nw - w0 : 4;
            fl_fwd a = { .B = B, .T = T, .tokens = tok + (int64_t)w0 * T, .targets = tg };
            if (fl_forward(m, fl_range_whole(m), &a, NULL) != 0) { free(tg); return 0; }
        }
        const double dt = fl_wall_s() - t0;
        if (dt > 0 && (double)nw * T / dt > best) best = (double)nw * T / dt;
    }
    *peak = sizeof(float) * m->n_floats + (fl_mem_peak() - live0);
    free(tg);
    return best;
}

/* The pruned model's and the dense model's throughput, interleaved in the
 * same process on the same windows (the first evaluation set's). */
static int measure_infer(const fl_cell_cfg *c, fl_model *m, const int32_t *tok, int64_t n, int T, fl_cell_result *r) {
    fl_model dense;
    if (fl_model_load(&dense, c->model_dir) != 0) return -1;
    r->infer_tok_s = r->infer_tok_s_dense = 0;
    for (int k = 0; k < 2; k++) {
        double a = infer_tok_s(&dense, tok, n, T, 1, &r->infer_peak_bytes_dense), b = infer_tok_s(m, tok, n, T, 1, &r->infer_peak_bytes);
        if (a > r->infer_tok_s_dense) r->infer_tok_s_dense = a;
        if (b > r->infer_tok_s) r->infer_tok_s = b;
    }
    fl_model_free(&dense);
    return 0;
}

/* ---- the cell ----------------------------------------------------------- */

/* Does the plan have a unit of this kind that recovers? */
/* The dense model beside the pruned one (propagation dense, structured
 * targets): streamed and read-only with --stream, so it too holds one
 * block at a time. */
static int load_dense(const fl_cell_cfg *c, fl_model *d) {
    return c->stream ? fl_model_load_streamed(d, c->model_dir, 1) : fl_model_load(d, c->model_dir);
}

static int plan_recovers(const fl_plan *p, int model_units) {
    for (int i = 0; i < p->n; i++)
        if (p->u[i].recover && (p->u[i].kind == FL_UNIT_MODEL) == model_units) return 1;
    return 0;
}

static int cell_run(const fl_cell_cfg *c, fl_cell_result *r, walk_t *wp);

/* Opens the criterion and the reconstructor once for the cell (their
 * options parsed, a warm start opened), runs it, closes both on every path. */
int fl_cell_run(const fl_cell_cfg *given, fl_cell_result *r) {
    memset(r, 0, sizeof *r);
    /* Every unset setting takes its default from the settings table here,
     * once, so the pipeline and freelunch.json see the values it ran with. */
    fl_cell_cfg cfg = *given;
    fl_settings_defaults(&cfg);
    if (cfg.lr <= 0) {   /* derived: presets.c, scaled by lr-scale (never given with lr: settings.c) */
        cfg.lr = fl_preset_lr(fl_preset_of_model(cfg.model_dir), cfg.reconstruct);
        if (cfg.lr_scale > 0) cfg.lr *= cfg.lr_scale;
    }
    fl_pattern pat;
    if (fl_pattern_parse(cfg.sparsity, cfg.pattern, &pat) == 0 && pat.kind == FL_PAT_NM)
        cfg.pattern = NULL;   /* implied by the sparsity: freelunch.json names none */
    const fl_cell_cfg *c = &cfg;
    fl_crit_inst crit;
    if (fl_criterion_open(c->criterion, &crit) != 0) return -1;
    walk_t w = { .c = c, .r = r, .crit = &crit };
    int rc = fl_recon_open(c->reconstruct, &w.rec);
    if (rc == 0) rc = cell_run(c, r, &w);
    fl_plan_free(&w.plan);
    fl_recon_close(&w.rec);
    fl_criterion_close(&crit);
    return rc;
}

static int cell_run(const fl_cell_cfg *c, fl_cell_result *r, walk_t *wp) {
    walk_t w = *wp;
    int rc = 0;
    if (fl_pattern_parse(c->sparsity, c->pattern, &w.pat) != 0) return -1;
    if (fl_prop_parse(c->propagation, &w.prop) != 0) return -1;
    fl_structure skind;
    if (fl_structure_parse(c->structure, &skind) != 0) return -1;
    if (skind != FL_STRUCT_NONE && w.pat.kind == FL_PAT_NM)
        return fl_err("--sparsity %s is an N:M pattern of single weights; with --structure %s give the fraction of structures "
                      "removed (e.g. 0.25)", c->sparsity, c->structure);
    if (skind != FL_STRUCT_NONE && w.prop != FL_PROP_SPARSE)
        return fl_err("--propagation %s: structured pruning recovers each unit against the dense model's span on the pruned "
                      "model's stream (propagation sparse only)", c->propagation);
    if (fl_setting_check(fl_setting_find("prune-stream"), c->prune_stream) != 0) return -1;
    w.prune_dense = !strcmp(c->prune_stream, "dense");
    /* the removal scores on the dense model's own activations, once, before
     * the walk: there is no prune stream to choose */
    if (skind != FL_STRUCT_NONE && w.prune_dense)
        return fl_err("--prune-stream dense: structured pruning scores every structure on the dense model's activations "
                      "already (prune-stream sparse only)");
    w.ro = (fl_recon_opts){ .lr = c->lr, .weight_decay = c->weight_decay, .epochs = c->epochs, .batch = c->recon_batch,
                            .grad_accum = c->grad_accum, .bias_norm_only = !strcmp(c->trainable, "bias-norm"), .seed = c->seed,
                            .progress = c->progress };
    if (fl_loss_parse(c->loss, &w.ro.loss) != 0) return -1;
    if (fl_optim_parse(c->optimizer, &w.ro.optim) != 0) return -1;
    if (fl_setting_check(fl_setting_find("trainable"), c->trainable) != 0) return -1;
    if (c->calib_samples < 1) return fl_err("--calib-samples must be at least 1");
    if (c->retrain_samples < 0) return fl_err("--retrain-samples must be at least 1");
    int ndrift;
    if (drift_windows(c, &ndrift) != 0) return -1;
    if (c->hidden_distill && fl_hidden_distill_parse(c->hidden_distill, &w.ro.hidden_weight, &w.ro.hidden_alone) != 0) return -1;
    if ((c->distill || c->hidden_distill) && !(w.rec.r->flags & FL_REC_DISTILL)) {
        char names[256] = "";
        for (int i = 0; FL_RECONSTRUCTORS[i]; i++)
            if (FL_RECONSTRUCTORS[i]->flags & FL_REC_DISTILL) {
                strncat(names, names[0] ? ", " : "", sizeof names - strlen(names) - 1);
                strncat(names, FL_RECONSTRUCTORS[i]->name, sizeof names - strlen(names) - 1);
            }
        return fl_err("--%s applies to the retraining baselines only (%s)", c->distill ? "distill" : "hidden-distill", names);
    }
    const int batch = c->batch > 0 ? c->batch : 8;
    fl_flops_reset();
    fl_mem_phase_reset_all();
    fl_prof_init(&r->prof);
    const double wall0 = fl_wall_s(), cpu0 = fl_cpu_s();

    /* 1. model, plan and calibration windows */
    fl_prof_enter(&r->prof, FL_PH_CALIB);
    fl_model m;
    fl_dtype save_dt = FL_DT_F32;
    if (c->save_dtype && fl_dtype_parse(c->save_dtype, &save_dt) != 0) {
        char msg[1100];
        snprintf(msg, sizeof msg, "%s", fl_errmsg());
        return fl_err("--save-dtype: %s", msg);
    }
    if (c->stream && skind != FL_STRUCT_NONE)
        return fl_err("--stream with --structure %s: structured pruning rebuilds the whole model at once; it is not streamed",
                      c->structure);
    if (c->stream && c->progress)
        fprintf(stderr, "stream: blocks converted from %s one at a time; activation drift and inference speed are not "
                        "measured (they need the whole dense model beside the pruned one)%s\n",
                c->model_dir, c->share ? "; the pruning pass is not shared" : "");
    if (c->stream ? fl_model_load_streamed(&m, c->model_dir, 0) : fl_model_load(&m, c->model_dir)) return -1;
    const int T = c->seqlen > 0 ? c->seqlen : m.cfg.max_pos, d = m.cfg.d, L = m.cfg.n_layer;
    if (T > m.cfg.max_pos) {
        fl_model_free(&m);
        return fl_err("%s/config.json: --seqlen %d exceeds the model's context of %d positions", c->model_dir, T, m.cfg.max_pos);
    }
    if (fl_struct_check(w.crit->crit, skind, &m.cfg) != 0) { fl_model_free(&m); return -1; }
    for (int l = 0; l < L && skind == FL_STRUCT_NONE; l++) {   /* every linear of every block is pruned: fail early on a bad N:M */
        fl_param *lw[7];
        int k = fl_layer_linears(&m, l, lw, NULL, NULL);
        for (int i = 0; i < k; i++)
            if (fl_pattern_check(&w.pat, lw[i]->rows, lw[i]->cols, lw[i]->name) != 0) { fl_model_free(&m); return -1; }
    }
    if (fl_recon_plan(&w.rec, &m.cfg, &wp->plan) != 0) { fl_model_free(&m); return -1; }
    w.plan = wp->plan;
    const int model_units = plan_recovers(&w.plan, 1), local_units = plan_recovers(&w.plan, 0);
    /* One draw serves both: the sampler is prefix-stable (window i depends
     * on the seed and i alone), so the first calib-samples of the
     * max(calib, retrain) windows are exactly the calibration windows, the
     * ones the statistics and local units see; a model unit trains on the
     * first retrain-samples (issue 13: retraining on its own budget). */
    const int nret = model_units && c->retrain_samples > 0 ? c->retrain_samples : c->calib_samples;
    const int ndraw = nret > c->calib_samples ? nret : c->calib_samples;
    fl_calib cal = { 0 };
    char path[4200];
    if (mkdir(c->out_dir, 0755) != 0 && errno != EEXIST) { fl_model_free(&m); return fl_err("%s: cannot create directory", c->out_dir); }
    /* calib.bin: the calibration windows only, the first of the ndraw */
    if (draw_windows(c, c->calib_file, c->calib_split, ndraw, c->calib_samples, T, c->seed, m.cfg.vocab, "calib.bin", &cal) != 0) {
        fl_model_free(&m);
        return -1;
    }
    const int nwin = c->calib_samples;
    /* the pruning pass: shared when its masks do not depend on recovery */
    char share_hex[65] = "";
    r->shared_pruning = "off";
    /* streamed: the key would hash every weight, which a streamed model
     * never holds at once; such cells compute their pass */
    if (c->share && c->stream) r->shared_pruning = "off";
    else if (c->share && !share_eligible(&w.plan, w.prune_dense, &w.sh_last)) r->shared_pruning = "unshareable";
    else if (c->share && share_key(c, &m, &w.plan, w.prune_dense, cal.tokens, nwin, T, batch, share_hex) != 0) {
        fprintf(stderr, "share: pruning pass not shared (%s)\n", fl_errmsg());   /* computed as without --share */
        fl_err_clear();
        share_hex[0] = 0;
        r->shared_pruning = "off";
    }
    float *X = fl_allocf((size_t)nwin * T * d);    /* the sparse stream */
    for (int w0 = 0; w0 < nwin; w0 += batch) {
        int B = nwin - w0 < batch ? nwin - w0 : batch;
        fl_fwd a = { .B = B, .T = T, .tokens = cal.tokens + (int64_t)w0 * T, .x_out = X + (int64_t)w0 * T * d };
        if (fl_forward(&m, (fl_range){ 0, 0, 1, 0 }, &a, NULL) != 0) { fl_free(X); fl_calib_free(&cal); fl_model_free(&m); return -1; }
    }
    /* structured pruning: one step before recovery, on the dense model's
     * activations; the walk then recovers the smaller model (no masks) */
    static fl_struct_report srep;   /* the walk points at it; one cell at a time */
    if (skind != FL_STRUCT_NONE) {
        fl_model sm;
        fl_prof_enter(&r->prof, FL_PH_PRUNE);
        rc = fl_struct_prune(&m, w.crit, skind, w.pat.sparsity, X, cal.tokens, nwin, T, batch, c->progress, &sm, &srep);
        if (rc == 0) { r->params_dense = fl_model_num_params(&m); fl_model_free(&m); m = sm; }
        if (rc == 0) {
            fl_plan_free(&wp->plan);
            rc = fl_recon_plan(&w.rec, &m.cfg, &wp->plan);
        }
        /* the prune units are the weight-level pruning's: drop them */
        int k = 0;
        for (int i = 0; rc == 0 && i < wp->plan.n; i++) {
            if (wp->plan.u[i].prune) continue;
            if (wp->plan.u[i].kind == FL_UNIT_LINEAR)
                rc = fl_err("--reconstruct %s: a structurally pruned linear has a new shape, so there is no dense linear to "
                            "match; use sublayer, block, blocks:K or the retraining baselines", c->reconstruct);
            wp->plan.u[k++] = wp->plan.u[i];
        }
        wp->plan.n = k;
        w.plan = wp->plan;
        w.sr = &srep;
        fl_prof_enter(&r->prof, FL_PH_CALIB);
        if (rc != 0) { fl_struct_report_free(&srep); fl_free(X); fl_calib_free(&cal); fl_model_free(&m); return -1; }
        if (c->progress)
            fprintf(stderr, "structured: removed %d of %d %s%s; %lld -> %lld parameters\n", srep.k,
                    srep.global ? srep.n * srep.n_dense_layers : srep.n, c->structure,
                    skind == FL_STRUCT_LAYERS ? "" : srep.global ? " in all (global ratio)" : " per block",
                    (long long)srep.params_before, (long long)srep.params_after);
    }
    if (!model_units) fl_calib_free(&cal);   /* only a model unit trains on the tokens */

    /* 2-4. unit by unit: statistics on the sparse stream, prune, recover, advance */
    w.m = &m;
    w.nwin = nwin; w.T = T; w.batch = batch; w.S = X; w.tok = model_units ? cal.tokens : NULL;
    w.s_pos = 0;
    w.p_block = -1;
    w.dense_w = calloc((size_t)L * 7, sizeof *w.dense_w);
    w.last_use = malloc(sizeof *w.last_use * (size_t)L * 7);
    /* dense weights are kept only for targets on the sparse stream: the
     * dense modes take theirs from the dense model's copy */
    fl_plan_last_use(&w.plan, &m.cfg, w.last_use);
    if (w.prop != FL_PROP_SPARSE || w.sr)
        for (int q = 0; q < L * 7; q++) w.last_use[q] = -1;
    if (w.prune_dense) {
        /* the prune stream starts as the embeddings, like S; S goes on only
         * when a local unit will learn from it */
        w.p_block = 0;
        if (local_units) {
            w.P = fl_allocf((size_t)nwin * T * d);
            memcpy(w.P, X, sizeof(float) * (size_t)nwin * T * d);
        } else { w.P = X; w.S = NULL; }
    }
    w.retrain_nwin = nret;
    r->lin = calloc((size_t)L * 7, sizeof(fl_linear_report));
    if (local_units && w.sr) {
        /* structured: the targets are the dense model's spans */
        w.dense = calloc(1, sizeof(fl_model));
        if (load_dense(c, w.dense) != 0) { free(w.dense); fl_free(X); fl_model_free(&m); return -1; }
    } else if (local_units && w.prop != FL_PROP_SPARSE) {
        /* the dense stream needs the dense model: a second copy (counted) */
        w.dense = calloc(1, sizeof(fl_model));
        if (load_dense(c, w.dense) != 0) { free(w.dense); fl_free(X); fl_model_free(&m); return -1; }
        w.D = fl_allocf((size_t)nwin * T * d);
        memcpy(w.D, X, sizeof(float) * (size_t)nwin * T * d);
    }
    if (share_hex[0]) {
        share_open(&w, share_hex);
        if (w.sh_buf) {
            /* reused: no prune stream; S only for a local unit to learn from */
            if (w.P && w.P != w.S) fl_free(w.P);   /* its own copy, or X when S was left out */
            w.P = NULL;
            w.p_block = -1;
            if (!local_units && w.S) { fl_free(w.S); w.S = NULL; }
        }
    }
    rc = walk_plan(&w);
    share_close(&w);
    fl_prof_enter(&r->prof, FL_PH_NONE);
    fl_calib_free(&cal);
    if (w.dense) { fl_model_free(w.dense); free(w.dense); }
    fl_free(w.D);
    fl_free(w.S);
    if (w.P != w.S) fl_free(w.P);
    for (int q = 0; q < L * 7; q++) fl_free(w.dense_w[q]);
    free(w.dense_w);
    free(w.last_use);
    if (rc == 0 && !w.sr) rc = mask_sha256(&m, r->mask_sha256);
    if (rc == 0 && w.sr) rc = keep_sha256(&srep, r->mask_sha256);
    if (w.sr) fl_struct_report_free(&srep);
    r->peak_prune_bytes = fl_mem_phase_peak("pruning");
    r->peak_recover_bytes = fl_mem_phase_peak("recovery");
    for (int i = 0; i < r->n_units; i++) {
        if (r->units[i].working_bytes > r->working_bytes) r->working_bytes = r->units[i].working_bytes;
        if (r->units[i].tokens > r->recovery_tokens) r->recovery_tokens = r->units[i].tokens;
    }
    if (rc != 0) { fl_model_free(&m); return -1; }
    r->sparsity = w.weights ? (double)w.pruned / w.weights : 0;
    r->params = fl_model_num_params(&m);
    if (w.sr) r->sparsity = 1.0 - (double)r->params / (double)r->params_dense;   /* the parameters removed */
    else r->params_dense = r->params;
    fl_prof_enter(&r->prof, FL_PH_DRIFT);
    /* a structurally pruned model: each block against the dense span it
     * stands for, the linears whose output kept its width (eval/drift.h);
     * a streamed one is not measured (drift loads the whole dense model) */
    rc = c->stream ? 0 : measure_drift(c, &m, w.sr ? srep.dense_block : NULL, T, batch, &r->drift);
    fl_prof_enter(&r->prof, FL_PH_NONE);
    if (rc != 0) { fl_model_free(&m); return -1; }

    /* 5. save the pruned model with its tokenizer (a grid keeps it only
     * when asked: --keep-models) */
    if (!c->no_model && fl_model_save_dtype(&m, c->out_dir, save_dt) != 0) { fl_model_free(&m); return -1; }
    snprintf(path, sizeof path, "%.4000s/masks.bin", c->out_dir);
    if (!c->no_model && !w.sr && masks_write(&m, path) != 0) { fl_model_free(&m); return -1; }
    const char *tokfiles[] = { "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json" };
    for (int i = 0; i < 4 && !c->no_model; i++) {
        char src[4200], dst[4200];
        snprintf(src, sizeof src, "%.4000s/%s", c->model_dir, tokfiles[i]);
        snprintf(dst, sizeof dst, "%.4000s/%s", c->out_dir, tokfiles[i]);
        if (file_exists(src) && fl_copy_file_atomic(src, dst) != 0) { fl_model_free(&m); return -1; }
    }

    /* 6. evaluate */
    fl_prof_enter(&r->prof, FL_PH_EVAL);
    const char *const *evals = c->n_evals ? c->evals : FL_TEST_SPLITS;
    int ne = c->n_evals;
    if (!ne) while (FL_TEST_SPLITS[ne]) ne++;
    for (int i = 0; i < ne && i < FL_MAX_EVALS; i++) {
        int32_t *tok;
        int64_t n;
        if (eval_tokens(c, evals[i], m.cfg.vocab, &tok, &n) != 0) { fl_model_free(&m); return -1; }
        fl_ppl_result pr;
        int es = c->eval_seqlen > 0 ? c->eval_seqlen : m.cfg.max_pos;
        rc = fl_eval_ppl(&m, tok, n, es, 0, c->eval_max_windows, 4, 0, &pr);
        /* inference speed on the first set's windows, against the dense model */
        if (rc == 0 && i == 0 && !c->stream) {
            fl_prof_enter(&r->prof, FL_PH_NONE);
            rc = measure_infer(c, &m, tok, c->eval_max_windows > 0 && n > (int64_t)c->eval_max_windows * es ? (int64_t)c->eval_max_windows * es : n, es, r);
            fl_prof_enter(&r->prof, FL_PH_EVAL);
        }
        free(tok);
        if (rc != 0) {
            char msg[1100];
            snprintf(msg, sizeof msg, "%s", fl_errmsg());
            fl_model_free(&m);
            return fl_err("%s: %s", evals[i], msg);
        }
        snprintf(r->eval_name[i], sizeof r->eval_name[i], "%s", evals[i]);
        r->ppl[i] = pr.ppl; r->nll[i] = pr.nll; r->eval_tokens[i] = pr.tokens;
        r->n_evals = i + 1;
    }
    /* zero-shot accuracy (eval/mc.h) with the model directory's tokenizer */
    if (c->n_eval_tasks) {
        fl_bpe *tok = NULL;
        /* a whole-model forward per item: a streamed model holds every block */
        if (fl_model_hold(&m, 0, m.cfg.n_layer) != 0 || fl_bpe_load(&tok, c->model_dir) != 0) { fl_model_free(&m); return -1; }
        for (int i = 0; i < c->n_eval_tasks && rc == 0; i++) {
            fl_mc_task t;
            fl_mc_result mr;
            rc = fl_mc_task_open(c->eval_tasks[i], c->cache, c->eval_task_limit, &t);
            if (rc == 0) {
                rc = fl_mc_eval(&m, tok, &t, c->eval_task_limit, m.cfg.max_pos, 8, 0, &mr, NULL, NULL);
                if (rc == 0) {
                    snprintf(r->task_name[i], sizeof r->task_name[i], "%s", t.name);
                    r->task_items[i] = mr.n;
                    r->task_norm[i] = t.kind == FL_MC_CHOICE && t.norm;
                    r->task_acc[i] = mr.acc, r->task_acc_norm[i] = mr.acc_norm, r->task_ppl[i] = mr.ppl;
                    r->n_tasks = i + 1;
                }
                fl_mc_task_free(&t);
            }
        }
        fl_bpe_free(tok);
        if (rc != 0) { fl_model_free(&m); return -1; }
    }
    fl_prof_enter(&r->prof, FL_PH_NONE);
    r->wall = fl_wall_s() - wall0;
    r->cpu = fl_cpu_s() - cpu0;
    r->secs_calib = r->prof.ph[FL_PH_CALIB].wall;
    r->secs_stats = r->prof.ph[FL_PH_STATS].wall;
    r->secs_prune = r->prof.ph[FL_PH_PRUNE].wall;
    r->secs_recover = r->prof.ph[FL_PH_RECOVER].wall;
    r->secs_eval = r->prof.ph[FL_PH_EVAL].wall;
    r->peak_eval_bytes = fl_mem_phase_peak("evaluation");
    r->peak_rss_kb = peak_rss_kb();   /* getrusage and VmHWM count slightly differently: the larger */
    for (int i = 0; i < FL_NPHASES; i++)
        if (r->prof.ph[i].peak_rss_kb > r->peak_rss_kb) r->peak_rss_kb = r->prof.ph[i].peak_rss_kb;
    r->flops = fl_flops();
    r->spill_bytes = fl_model_spill_bytes(&m);

    /* provenance */
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", "pruned");
    cJSON_AddStringToObject(j, "source_model", c->model_dir);
    /* the settings as run, each under its JSON key (settings.c); those of
     * the recovery only for cells that recover */
    fl_cell_cfg ran = *c;
    ran.seqlen = T;
    ran.retrain_samples = nret;
    cJSON *cell = cJSON_AddObjectToObject(j, "cell");
    fl_settings_to_json(&ran, FL_FOR_ALL | (local_units || model_units ? FL_FOR_RECOVERY : 0) |
                                  (w.rec.r->flags & FL_REC_DISTILL ? FL_FOR_DISTILL : 0) |
                                  (model_units ? FL_FOR_RETRAIN : 0), cell);
    cJSON_AddNumberToObject(j, "sparsity", r->sparsity);
    cJSON_AddStringToObject(j, "mask_sha256", r->mask_sha256);
    cJSON_AddNumberToObject(j, "params", (double)r->params);
    cJSON_AddNumberToObject(j, "params_dense", (double)r->params_dense);
    if (w.sr) {
        cJSON *so = cJSON_AddObjectToObject(j, "structured");
        cJSON_AddStringToObject(so, "structure", c->structure);
        cJSON_AddNumberToObject(so, "structures", srep.n);
        cJSON_AddNumberToObject(so, "removed", srep.k);
        if (skind != FL_STRUCT_LAYERS) {   /* per block: differs between blocks with a global ratio */
            cJSON_AddBoolToObject(so, "global", srep.global);
            cJSON *rb = cJSON_AddArrayToObject(so, "removed_per_block");
            for (int l = 0; l < srep.n_dense_layers; l++) cJSON_AddItemToArray(rb, cJSON_CreateNumber(srep.removed_block[l]));
        }
        cJSON *kb = cJSON_AddArrayToObject(so, "dense_blocks");
        for (int i = 0; i < m.cfg.n_layer; i++) cJSON_AddItemToArray(kb, cJSON_CreateNumber(srep.dense_block[i]));
    }
    cJSON *lins = cJSON_AddArrayToObject(j, "linears");
    for (int i = 0; i < r->n_linears; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", r->lin[i].name);
        cJSON_AddNumberToObject(o, "sparsity", r->lin[i].sparsity);
        cJSON_AddNumberToObject(o, "error", r->lin[i].err);
        cJSON_AddItemToArray(lins, o);
    }
    cJSON *us = cJSON_AddArrayToObject(j, "units");
    for (int i = 0; i < r->n_units; i++) {
        const fl_unit_report *u = &r->units[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", u->name);
        cJSON_AddNumberToObject(o, "loss_before", u->loss_before);
        cJSON_AddNumberToObject(o, "loss_after", u->loss_after);
        cJSON_AddNumberToObject(o, "steps", u->steps);
        cJSON_AddNumberToObject(o, "seconds", u->seconds);
        cJSON_AddNumberToObject(o, "working_bytes", (double)u->working_bytes);
        cJSON_AddNumberToObject(o, "peak_bytes", (double)u->peak_bytes);
        cJSON_AddNumberToObject(o, "tokens", (double)u->tokens);
        cJSON_AddItemToArray(us, o);
    }
    if (r->drift.n) {
        cJSON *dr = cJSON_AddArrayToObject(j, "drift");
        for (int i = 0; i < r->drift.n; i++) {
            const fl_drift_entry *e = &r->drift.e[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", e->name);
            cJSON_AddNumberToObject(o, "accumulated", e->accumulated);
            if (!e->block && !isnan(e->local)) cJSON_AddNumberToObject(o, "local", e->local);   /* NaN: the input shrank */
            cJSON_AddItemToArray(dr, o);
        }
        cJSON_AddNumberToObject(j, "drift_mean", r->drift.mean);
        cJSON_AddNumberToObject(j, "drift_max", r->drift.max);
        cJSON_AddNumberToObject(j, "drift_out", r->drift.out);
    }
    cJSON *ev = cJSON_AddObjectToObject(j, "perplexity");
    for (int i = 0; i < r->n_evals; i++) cJSON_AddNumberToObject(ev, r->eval_name[i], r->ppl[i]);
    if (r->n_tasks) {
        cJSON *zs = cJSON_AddObjectToObject(j, "zero_shot");
        for (int i = 0; i < r->n_tasks; i++) {
            cJSON *o = cJSON_AddObjectToObject(zs, r->task_name[i]);
            cJSON_AddNumberToObject(o, "n", r->task_items[i]);
            cJSON_AddNumberToObject(o, "acc", r->task_acc[i]);
            if (r->task_norm[i]) cJSON_AddNumberToObject(o, "acc_norm", r->task_acc_norm[i]);
            if (isfinite(r->task_ppl[i])) cJSON_AddNumberToObject(o, "ppl", r->task_ppl[i]);
        }
    }
    cJSON *pf = cJSON_AddObjectToObject(j, "profile");
    cJSON_AddNumberToObject(pf, "seconds_calibration", r->secs_calib);
    cJSON_AddNumberToObject(pf, "seconds_statistics", r->secs_stats);
    cJSON_AddNumberToObject(pf, "seconds_pruning", r->secs_prune);
    cJSON_AddNumberToObject(pf, "seconds_recovery", r->secs_recover);
    cJSON_AddNumberToObject(pf, "seconds_evaluation", r->secs_eval);
    cJSON_AddNumberToObject(pf, "peak_bytes_recovery", (double)r->peak_recover_bytes);
    cJSON_AddNumberToObject(pf, "recovery_working_bytes", (double)r->working_bytes);
    cJSON_AddNumberToObject(pf, "recovery_tokens", (double)r->recovery_tokens);
    cJSON_AddNumberToObject(pf, "peak_bytes_pruning", (double)r->peak_prune_bytes);
    cJSON_AddNumberToObject(pf, "peak_bytes_evaluation", (double)r->peak_eval_bytes);
    cJSON_AddNumberToObject(pf, "peak_rss_kb", (double)r->peak_rss_kb);
    cJSON_AddNumberToObject(pf, "flops", (double)r->flops);
    cJSON_AddNumberToObject(pf, "infer_tok_s", r->infer_tok_s);
    cJSON_AddNumberToObject(pf, "infer_tok_s_dense", r->infer_tok_s_dense);
    cJSON_AddNumberToObject(pf, "infer_peak_bytes", (double)r->infer_peak_bytes);
    cJSON_AddNumberToObject(pf, "infer_peak_bytes_dense", (double)r->infer_peak_bytes_dense);
    cJSON_AddNumberToObject(pf, "threads", fl_threads());
    cJSON_AddStringToObject(pf, "backend", fl_gemm_backend_name());
    /* per GEMM shape: calls, seconds and the backend they ran on (and why) */
    cJSON_AddItemToObject(pf, "gemm", fl_gemm_profile_json());
    cJSON_AddNumberToObject(pf, "wall_seconds", r->wall);
    cJSON_AddNumberToObject(pf, "cpu_seconds", r->cpu);
    cJSON_AddBoolToObject(pf, "rss_per_phase_exact", r->prof.rss_exact);
    cJSON_AddStringToObject(pf, "shared_pruning", r->shared_pruning ? r->shared_pruning : "off");
    cJSON_AddBoolToObject(pf, "streamed", c->stream);
    cJSON_AddStringToObject(pf, "save_dtype", c->no_model ? "none" : fl_dtype_name(save_dt));
    cJSON_AddNumberToObject(pf, "spill_bytes", (double)r->spill_bytes);
    cJSON *phs = cJSON_AddObjectToObject(pf, "phases");
    for (int i = 0; i < FL_NPHASES; i++) {
        const fl_phase_prof *q = &r->prof.ph[i];
        cJSON *o = cJSON_AddObjectToObject(phs, FL_PHASE_NAMES[i]);
        cJSON_AddNumberToObject(o, "wall_seconds", q->wall);
        cJSON_AddNumberToObject(o, "cpu_seconds", q->cpu);
        cJSON_AddNumberToObject(o, "peak_bytes", (double)q->peak_bytes);
        cJSON_AddNumberToObject(o, "peak_rss_kb", (double)q->peak_rss_kb);
        cJSON_AddNumberToObject(o, "flops", (double)q->flops);
    }
    char *js = cJSON_Print(j);
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%.4000s/freelunch.json", c->out_dir);
    rc = fl_write_file_atomic(path, js, strlen(js));
    free(js);
    fl_model_free(&m);
    return rc;
}

void fl_cell_result_free(fl_cell_result *r) {
    free(r->lin);
    free(r->units);
    fl_drift_free(&r->drift);
    r->lin = NULL;
    r->units = NULL;
}
