/* The memory a cell's recovery will take, counted from the shapes alone.
 *
 * It walks the reconstructor's plan, the one harness/cell.c walks, and for
 * each unit adds the unit's own bytes (the reconstructor's predict()) to
 * what the cell holds while the unit is recovered. Every term below names the buffer it
 * stands for; nothing is fitted to a measurement, and nothing is allocated
 * (a dry run may ask about a model far larger than this machine).
 *
 * Notation (all sizes in elements; bytes = 4 per float, 8 per double):
 *   b = min(batch, nwin) windows per optimiser batch, N = b*T tokens,
 *   d hidden, qd = heads*hd, kvd = kv_heads*hd, F ffn, V vocab,
 *   nt = OpenMP threads (the kernels' per-thread scratch), RB = 64 rows
 *   per attention block (model/ops.c), NT = nwin*T calibration tokens. */
#include "predict.h"
#include "model/err.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RB 64          /* attention row block, model/ops.c */
/* rows of logits at a time in a forward without saved activations
 * (model/model.c), with the rows' gathered inputs [d], NLL and targets:
 * HEAD_CHUNK * (V + d + 2) floats */
#define HEAD_CHUNK 256

typedef fl_shapes shp;

/* ---- parameters --------------------------------------------------------- */

/* One tensor inside the model's single data block, padded to 16 floats (64
 * bytes) as fl_model_create lays it out. */
static int64_t padded(int64_t n) { return (n + 15) / 16 * 16; }

/* The model as loaded: every parameter (padded) and the RoPE tables. The
 * block linears come from fl_config_layer_linears, the one place block
 * shapes are derived from a config (per block: sizes may differ). */
static int64_t model_bytes(const fl_config *c) {
    const int64_t d = c->d;
    fl_linear_shape sh[7];
    const int64_t e = c->proj ? c->proj : d;                                     /* embedding width */
    int64_t f = padded((int64_t)c->vocab * e);                                   /* embed */
    if (c->proj) f += 2 * padded(d * e);                                         /* project_in, project_out */
    if (c->learned_pos) f += padded((int64_t)(c->max_pos + c->pos_offset) * d);  /* positions */
    for (int l = 0; l < c->n_layer; l++) {
        const int k = fl_config_layer_linears(c, l, sh);
        int64_t blk = padded(d) * (c->rms ? 2 : 4);                              /* two norms (w[, b]) */
        for (int i = 0; i < k; i++) blk += padded((int64_t)sh[i].rows * sh[i].cols) + (sh[i].bias ? padded(sh[i].rows) : 0);
        f += blk;
    }
    if (!c->post_ln) f += padded(d) * (c->rms ? 1 : 2);                          /* final norm (none post-LN) */
    if (!c->tied) f += padded((int64_t)c->vocab * e);                            /* LM head */
    if (!c->learned_pos) f += 2 * ((int64_t)c->max_pos * c->head_dim / 2);        /* rope cos, sin */
    return 4 * f;
}

/* One block's parameters, padded, as a streamed model allocates a block
 * when it is held (fl_model_create_ex lays a block out as the model's
 * single data block does). */
static int64_t block_bytes(const fl_config *c) {
    fl_linear_shape sh[7];
    const int k = fl_config_linears(c, sh);
    int64_t blk = padded(c->d) * (c->rms ? 2 : 4);
    for (int i = 0; i < k; i++) blk += padded((int64_t)sh[i].rows * sh[i].cols) + (sh[i].bias ? padded(sh[i].rows) : 0);
    return 4 * blk;
}

/* The model's weights while H blocks are held: all of them, or, streamed,
 * everything outside the blocks and the H held. */
static int64_t model_held(const fl_config *c, int stream, int H) {
    return stream ? model_bytes(c) - (int64_t)c->n_layer * block_bytes(c) + (int64_t)H * block_bytes(c) : model_bytes(c);
}

/* Parameters of one sublayer (0 attention, 1 MLP), unpadded as
 * fl_unit_param_bytes counts them: all of them, or biases and norms only. */
static int64_t sub_params(const shp *s, int kind, int bias_norm_only) {
    fl_linear_shape sh[7];
    const int k = fl_config_linears(s->c, sh);
    int64_t bn = s->d * (s->c->rms ? 1 : 2), w = 0;   /* the sublayer's norm */
    for (int i = 0; i < k; i++)
        if (sh[i].sub == kind) {
            w += (int64_t)sh[i].rows * sh[i].cols;
            bn += sh[i].bias ? sh[i].rows : 0;
        }
    return bias_norm_only ? bn : bn + w;
}

int64_t fl_pred_all_params(const shp *s, int bias_norm_only) {
    const fl_config *c = s->c;
    int64_t n = c->n_layer * (sub_params(s, 0, bias_norm_only) + sub_params(s, 1, bias_norm_only));
    if (!c->post_ln) n += s->d * (c->rms ? 1 : 2);   /* final norm */
    if (bias_norm_only) return n;
    const int64_t e = c->proj ? c->proj : s->d;
    n += s->V * e * (c->tied ? 1 : 2) + (c->proj ? 2 * s->d * e : 0);
    if (c->learned_pos) n += (int64_t)(c->max_pos + c->pos_offset) * s->d;
    return n;
}

/* Mask bytes (one per weight) of the linears of one sublayer. */
static int64_t sub_mask_bytes(const shp *s, int kind) {
    return sub_params(s, kind, 0) - sub_params(s, kind, 1);
}

/* ---- activations and the kernels' temporaries ------------------------- */

/* model.c's sub_acts of one sublayer: x, mean, rstd, xn (mean is allocated
 * for RMSNorm too); attention q, k, v, ao and, when kept for backward, the
 * row log-sum-exp [b, H, T] of the O(T) attention; MLP h, a and up (SwiGLU). */
static int64_t sub_acts(const shp *s, int kind, int keep_att) {
    int64_t f = 2 * s->N * s->d + 2 * s->N;
    if (kind == 0) f += 2 * s->N * s->qd + 2 * s->N * s->kvd + (keep_att ? s->b * s->c->n_head * s->T : 0);
    else f += s->N * s->F * (s->swiglu ? 3 : 2);
    return 4 * f;
}

/* The peak of one sublayer's backward above what is already live, with its
 * norm and biases trainable (true for both --trainable all and bias-norm):
 * dxn [N,d], then
 *   attention: dao, dq [N,qd], dk, dv [N,kvd] together with the largest of
 *              the per-thread score blocks nt*2*RB*T (attention backward: P and dS) and
 *              the per-thread column-sum partials of a bias gradient;
 *   MLP:       da, dh [N,F] with dup [N,F] (SwiGLU) or a bias's partials;
 *   then the norm's weight (and bias) gradient partials, nt*d each
 *   (model/ops.c forms x-hat on the fly). */
static int64_t sub_bwd(const shp *s, int kind) {
    const fl_config *c = s->c;
    int64_t inner, cs = 0;
    if (kind == 0) {
        if (c->o_bias) cs = s->d;
        if (c->qkv_bias && s->qd > cs) cs = s->qd;
        if (c->qkv_bias && s->kvd > cs) cs = s->kvd;
        int64_t att = 2 * RB * s->T;   /* recomputed probabilities and their gradient */
        inner = 2 * s->N * s->qd + 2 * s->N * s->kvd + s->nt * (att > cs ? att : cs);
    } else {
        if (c->mlp_bias) cs = s->F > s->d ? s->F : s->d;
        /* SwiGLU: dup [N,F] lives through up's backward, whose bias
         * partials (llama's mlp_bias) come on top of it */
        int64_t extra = s->swiglu ? s->N * s->F + s->nt * cs : s->nt * cs;
        inner = 2 * s->N * s->F + extra;
    }
    int64_t norm = s->nt * s->d * (c->rms ? 1 : 2);
    /* post-LN (OPT-350m): the norm's gradient dz [N,d] comes first and stays */
    return 4 * (s->N * s->d * (c->post_ln ? 2 : 1) + (inner > norm ? inner : norm));
}

/* A forward with no saved activations over sublayers [s0, s1): the residual
 * stream [N,d], one scratch sub_acts of each kind (fl_forward allocates both
 * whatever the range holds) and, inside an attention sublayer, the
 * per-thread score block nt*RB*T. */
static int64_t fwd_noacts(const shp *s, int has_attn) {
    return 4 * s->N * s->d + sub_acts(s, 0, 0) + sub_acts(s, 1, 0) + (has_attn ? 4 * s->nt * RB * s->T : 0);
}

/* ---- FLOPs ------------------------------------------------------------- */

/* Causal attention of one window and one head, model/ops.c: row blocks of
 * RB queries [r0, r1) against keys [0, r1); forward Q K^T and P V, 2 GEMMs
 * of rows*r1*hd each; backward dP, dV, dQ, dK, 4 of them. Returns the sum
 * of rows*r1 over the blocks. */
static int64_t attn_area(int64_t T) {
    int64_t a = 0;
    for (int64_t r0 = 0; r0 < T; r0 += RB) {
        int64_t r1 = r0 + RB < T ? r0 + RB : T;
        a += (r1 - r0) * r1;
    }
    return a;
}

/* One linear [O, I] over N tokens in nb calls (model.c fl_linear_forward /
 * backward, ops.c): the matmul 2NIO; its backward dx 2NIO (a sublayer's
 * backward always forms dx: the norm's gradient needs it) and dW 2NIO when
 * trained. LoRA: x A^T and (x A^T) B^T forward; backward dout B, dA, dx
 * and, recomputing x A^T, dB. MaskLoRA: W_eff = W + s M o (B A) composed
 * (2OIR) at every call, the matmul over W_eff, and backward G = dout^T x
 * with dB = G A^T, dA = B^T G. */
static int64_t lin_flops(int64_t N, int64_t nb, int64_t I, int64_t O, int bwd, int train_w, int adapter, int64_t R) {
    const int64_t mm = 2 * N * I * O;
    if (adapter == 2) return bwd ? nb * 2 * O * I * R + 2 * mm + 4 * O * R * I : nb * 2 * O * I * R + mm;
    int64_t f = bwd ? mm * (1 + (train_w != 0)) : mm;
    if (adapter == 1) f += bwd ? 2 * N * R * O + 2 * N * R * I + 2 * O * R * N + 2 * R * I * N + 2 * N * I * R
                               : 2 * N * R * I + 2 * N * O * R;
    return f;
}

int64_t fl_pred_pass_flops(const shp *s, int s0, int s1, int head, int64_t W, int64_t nb, int bwd, int train_w, int adapter,
                           int rank) {
    fl_linear_shape sh[7];
    const int k = fl_config_linears(s->c, sh);
    const int64_t N = W * s->T;
    int64_t f = 0;
    for (int q = s0; q < s1; q++) {
        for (int i = 0; i < k; i++)
            if (sh[i].sub == q % 2) f += lin_flops(N, nb, sh[i].cols, sh[i].rows, bwd, train_w, adapter, rank);
        if (q % 2 == 0) f += (bwd ? 8 : 4) * W * s->c->n_head * s->c->head_dim * attn_area(s->T);
    }
    if (head) {
        /* logits; backward dxn and dW. With OPT's projections, whole-model
         * passes also map the embedding up and the last state down. */
        const int64_t e = s->c->proj ? s->c->proj : s->d;
        f += 2 * N * e * s->V * (bwd && train_w ? 2 : 1);
        if (s->c->proj) f += 2 * 2 * N * s->d * e * (bwd && train_w ? 2 : 1);
    }
    return f;
}

/* A forward over [s0, s1) of the unit's windows, with no weight gradients. */
static int64_t fwd_flops(const shp *s, int s0, int s1) { return fl_pred_pass_flops(s, s0, s1, 0, s->nwin, 1, 0, 0, 0, 0); }

/* ---- one unit ---------------------------------------------------------- */

/* fl_recover_adam on sublayers [s0, s1): peak above what was live when it
 * began. The "before" loss pass: its output [N,d] + fwd_noacts. Training:
 * gradients and the optimiser state (ns floats each: AdamW's two moments,
 * SGD's one momentum) of the trainable parameters, the batch
 * buffers xb, yb, out, dy [N,d], the saved activations of every sublayer,
 * and either the forward's residual stream [N,d] or the backward's two
 * residual gradients [N,d] with the largest sublayer backward. */
static int64_t range_rel(const shp *s, int s0, int s1, int bias_norm_only, int ns, int64_t *params) {
    int64_t p = 0, pt = 0, acts = 0, bw = 0;
    for (int k = s0; k < s1; k++) {
        p += sub_params(s, k % 2, 0);
        pt += sub_params(s, k % 2, bias_norm_only);
        acts += sub_acts(s, k % 2, 1);
        int64_t sb = sub_bwd(s, k % 2);
        bw = sb > bw ? sb : bw;
    }
    *params = 4 * p;
    int64_t before = 4 * s->N * s->d + fwd_noacts(s, s0 % 2 == 0 || s1 - s0 > 1);
    int64_t fixed = 4 * ((1 + ns) * pt + 4 * s->N * s->d) + acts;
    int64_t fwd = fixed + 4 * s->N * s->d, bwd = fixed + 8 * s->N * s->d + bw;
    int64_t r = before > fwd ? before : fwd;
    return r > bwd ? r : bwd;
}

/* fl_recover_adam on one linear [rows, cols]: the "before" loss output
 * [N,rows]; in training, gradient and ns floats of optimiser state of W
 * (and b), xb [N,cols],
 * yb, out, dy [N,rows], and the bias gradient's per-thread partials. */
static int64_t linear_adam_rel(const shp *s, const fl_linear_shape *l, int bias_norm_only, int ns) {
    int64_t pt = (bias_norm_only ? 0 : (int64_t)l->rows * l->cols) + (l->bias ? l->rows : 0);
    int64_t before = s->N * l->rows;
    int64_t train = (1 + ns) * pt + s->N * l->cols + 3 * s->N * l->rows + (l->bias ? s->nt * l->rows : 0);
    return 4 * (before > train ? before : train);
}

/* fl_recover_ls on one linear: one window's output [T,rows], the Gram
 * matrix G [cols,cols], R [cols(+1),rows], the column sums (doubles) and,
 * per thread, the kept-input list (ints), the normal matrix and right-hand
 * side (doubles) of one row, sized for every input plus the bias. */
static int64_t linear_ls_rel(const shp *s, const fl_linear_shape *l) {
    int64_t ia = l->cols + l->bias;
    return 4 * (s->T * l->rows + l->cols * l->cols + ia * l->rows) + 8 * l->cols + s->nt * (4 * ia + 8 * ia * ia + 8 * ia);
}

/* ---- the units of the shared routines ------------------------------------ */

int fl_pred_range_adam(const fl_predict_job *j, fl_predict_unit *out) {
    int64_t params;
    out->rel_peak = range_rel(j->s, j->u->s0, j->u->s1, j->bias_norm_only, fl_optim_states(j->optim), &params);
    out->working = params + out->rel_peak;
    /* the losses before and after and every epoch's forward, every epoch's backward */
    out->flops = (2 + j->epochs) * fwd_flops(j->s, j->u->s0, j->u->s1) +
                 j->epochs * fl_pred_pass_flops(j->s, j->u->s0, j->u->s1, 0, j->s->nwin, 1, 1, !j->bias_norm_only, 0, 0);
    return 0;
}

static fl_linear_shape unit_linear(const fl_predict_job *j) {
    fl_linear_shape sh[7];
    fl_config_linears(j->s->c, sh);
    return sh[j->u->lin];
}

int fl_pred_linear_adam(const fl_predict_job *j, fl_predict_unit *out) {
    const fl_linear_shape l = unit_linear(j);
    if (j->bias_norm_only && !l.bias)
        return fl_err("predict: %s has no bias or norm to train (--trainable bias-norm)", j->u->name);
    out->rel_peak = linear_adam_rel(j->s, &l, j->bias_norm_only, fl_optim_states(j->optim));
    out->working = 4 * ((int64_t)l.rows * l.cols + (l.bias ? l.rows : 0)) + out->rel_peak;
    /* forward: losses before, after and every epoch; backward: dW only (no dx) */
    const int64_t mm = 2 * j->s->nwin * j->s->T * l.rows * l.cols;
    out->flops = (2 + j->epochs) * mm + (j->bias_norm_only ? 0 : j->epochs * mm);
    return 0;
}

int fl_pred_linear_ls(const fl_predict_job *j, fl_predict_unit *out) {
    const fl_linear_shape l = unit_linear(j);
    out->rel_peak = linear_ls_rel(j->s, &l);
    out->working = 4 * ((int64_t)l.rows * l.cols + (l.bias ? l.rows : 0)) + out->rel_peak;
    /* losses before and after, X^T X and X^T Y (the row solves are plain loops, uncounted) */
    const int64_t NT = j->s->nwin * j->s->T;
    out->flops = 2 * (2 * NT * l.rows * l.cols) + 2 * NT * l.cols * l.cols + 2 * NT * l.cols * l.rows;
    return 0;
}

/* retrain:full and retrain:bias-norm (retrain.c), after every block was
 * pruned (the model with all its masks is live, counted by the cell's
 * walk). Before training, the mean
 * cross-entropy pass (no saved activations): fwd_noacts, the final norm's
 * mean, rstd [N] and output [N,d], and HEAD_CHUNK rows of logits. Training:
 * gradients and optimiser state, the saved activations of every sublayer and of the
 * head (x, mean, rstd, xn, logits [N,V], tokens and targets as int32), then
 * the larger of the forward's residual stream, the head's backward (the
 * residual gradient, dxn and the final norm's per-thread weight (and
 * bias) partials) and, the logits freed, the blocks' backward. */
void fl_pred_retrain(const shp *s, int bias_norm, fl_optim optim, int epochs, fl_predict_unit *out) {
    const fl_config *c = s->c;
    const int64_t N = s->N, d = s->d;
    int64_t acts = 0, bw = 0;
    for (int k = 0; k < 2; k++) {
        acts += c->n_layer * sub_acts(s, k, 1);
        bw = sub_bwd(s, k) > bw ? sub_bwd(s, k) : bw;
    }
    acts += 4 * (2 * N * d + 2 * N + N * s->V) + 2 * 4 * N;
    int64_t fwd = acts + 4 * N * d;
    int64_t head = acts + 4 * (2 * N * d + s->nt * d * (c->rms ? 1 : 2));
    int64_t blocks = acts - 4 * N * s->V + 8 * N * d + bw;
    int64_t train = 4 * (1 + fl_optim_states(optim)) * fl_pred_all_params(s, bias_norm) + (fwd > head ? (fwd > blocks ? fwd : blocks) : (head > blocks ? head : blocks));
    int64_t ce_head = 4 * (2 * N + N * d + (int64_t)HEAD_CHUNK * (s->V + s->d + 2)), ce_att = 4 * s->nt * RB * s->T;
    int64_t ce_peak = 4 * N * d + sub_acts(s, 0, 0) + sub_acts(s, 1, 0) + (ce_att > ce_head ? ce_att : ce_head);
    int64_t rel = train > ce_peak ? train : ce_peak;
    out->working = 4 * fl_pred_all_params(s, 0) + train;
    out->rel_peak = rel;
    /* the mean cross-entropy before and after, every epoch's forward and backward */
    const int L2 = 2 * c->n_layer;
    out->flops = (2 + epochs) * fl_pred_pass_flops(s, 0, L2, 1, s->nwin, 1, 0, 0, 0, 0) +
                 epochs * fl_pred_pass_flops(s, 0, L2, 1, s->nwin, 1, 1, !bias_norm, 0, 0);
}

/* ---- the cell ---------------------------------------------------------- */

static void take(fl_recon_predict_out *out, int64_t working, int64_t peak, const char *unit) {
    if ((size_t)working > out->working_bytes) {
        out->working_bytes = (size_t)working;
        snprintf(out->unit, sizeof out->unit, "%s", unit);
    }
    if ((size_t)peak > out->peak_recover_bytes) out->peak_recover_bytes = (size_t)peak;
}

static void note_prune(fl_recon_predict_out *out, int64_t peak) {
    if ((size_t)peak > out->peak_prune_bytes) out->peak_prune_bytes = (size_t)peak;
}

/* What the cell's walk holds while a unit is recovered (harness/cell.c):
 *   always:        the model and the sparse stream [NT,d] and, when a
 *                  stream is dense, the dense model's second copy and the
 *                  dense stream; the masks (a byte per weight) of every
 *                  block pruned so far; with --prune-stream dense, the
 *                  prune stream [NT,d] while a block is left to prune; with
 *                  propagation sparse, the dense weights kept for every
 *                  pruned linear a unit from this one on will recover;
 *   a range unit:  its target [NT,d];
 *   a linear unit: its site's input captured on the sparse stream [NT,cw]
 *                  (and on the dense one) and the target [NT,rows];
 *   a model unit:  the model and every mask (the streams are freed). */
static int predict_plan(const shp *s, const shp *sm, const shp *sp, const fl_recon_inst *in, const fl_plan *plan,
                        const fl_recon_predict_args *a, fl_prop prop, int prune_dense, fl_recon_predict_out *out) {
    const fl_config *cfg = s->c;
    const int64_t NT = (int64_t)a->nwin * a->T;
    fl_linear_shape sh[7];
    const int k = fl_config_linears(cfg, sh);
    int dense = 0, last_prune = -1, local = 0;
    int *last_use = malloc(sizeof(int) * (size_t)cfg->n_layer * 7), *prune_at = malloc(sizeof(int) * (size_t)cfg->n_layer);
    if (!last_use || !prune_at) { free(last_use); free(prune_at); return fl_err("predict: out of memory"); }
    fl_plan_last_use(plan, cfg, last_use);
    /* structured (a->dense): the removal came before the walk, whose prune
     * units harness/cell.c drops; the dense model is loaded beside the
     * smaller one for the local units' targets, and nothing has a mask */
    const int structured = a->dense != NULL;
    for (int i = 0; i < plan->n; i++) {
        if (structured && plan->u[i].kind == FL_UNIT_LINEAR && plan->u[i].recover) {
            free(last_use); free(prune_at);
            return fl_err("predict: a structurally pruned linear has a new shape: no dense linear to match");
        }
        dense |= plan->u[i].recover && plan->u[i].kind != FL_UNIT_MODEL;
        if (plan->u[i].prune && !structured) { last_prune = i; prune_at[plan->u[i].s0 / 2] = i; }
    }
    local = dense;
    dense &= prop != FL_PROP_SPARSE && !structured;
    const int64_t dense_model = structured && local ? model_bytes(a->dense) : 0;
    const int64_t stream = 4 * NT * s->d;
    /* streamed (a->stream): the model and its dense copy hold only the
     * unit's blocks, and the masks are only those of the blocks held */
    const int str = a->stream;
    const int64_t blk_masks = sub_mask_bytes(s, 0) + sub_mask_bytes(s, 1);
    const int64_t site_w[4] = { s->d, s->qd, s->d, s->F };   /* fl_site order: QKV, O, MLP_IN, MLP_OUT */
    int64_t masks = 0, flops = 0;
    /* the walk's streams (harness/cell.c), for its forward passes: where S
     * stands, which sublayer's site is captured, whether P is carried */
    int s_pos = 0, cap_sub = -1, cap_site = -1, carried = 0;
    const int nd = dense ? 2 : 1;   /* advances and captures run on S and, in dense modes, D */
    for (int i = 0; i < plan->n; i++) {
        const fl_plan_unit *u = &plan->u[i];
        /* dense weights kept: linears whose block is pruned and that
         * unit i or a later one recovers (the walk's fl_plan_last_use) */
        int64_t kept = 0;
        if (structured && u->prune) continue;
        for (int l = 0; l < cfg->n_layer && prop == FL_PROP_SPARSE && !structured; l++)
            for (int q = 0; q < k; q++)
                if (prune_at[l] < i && last_use[l * 7 + q] >= i) kept += 4 * (int64_t)sh[q].rows * sh[q].cols;
        if (u->prune) {
            /* walk_prune: one pass through the still-dense block collects
             * every site's Gram matrix and column norms; each linear is
             * then pruned beside its dense copy W0, its mask and the two
             * [rows, cols] temporaries of its layer error; W0 stays when a
             * later unit recovers it. With the sparse prune stream, the
             * stream is carried through the block when the next unit prunes
             * too (a copy P beside S while a local unit still learns from S). */
            const int b = u->s0 / 2;
            const int next_prunes = i + 1 < plan->n && plan->u[i + 1].prune;
            int64_t grams = 0;
            for (int q = 0; q < 4; q++) grams += 4 * site_w[q] * site_w[q] + 8 * site_w[q];
            int64_t streams = (local ? stream : 0) + (prune_dense || carried || !local ? stream : 0) +
                              (dense ? model_held(cfg, str, 1) + stream : 0);
            int64_t base = model_held(cfg, str, 1) + streams + (str ? 0 : masks) + kept;
            int64_t pass = base + grams + fwd_noacts(sp, 1) + (prune_dense ? 0 : 4 * sp->N * s->d);
            int64_t worst = 0, kept_here = 0;
            for (int q = 0; q < k; q++) {
                const int64_t rc = (int64_t)sh[q].rows * sh[q].cols, t = kept_here + 4 * rc + rc + 8 * rc;
                worst = t > worst ? t : worst;
                if (last_use[b * 7 + q] >= 0 && prop == FL_PROP_SPARSE) kept_here += 4 * rc;
            }
            note_prune(out, base + grams + worst);
            note_prune(out, pass);
            flops += fwd_flops(s, 2 * b, 2 * b + 2);
            for (int q = 0; q < 4; q++) flops += 2 * NT * site_w[q] * site_w[q];
            for (int q = 0; q < k; q++) flops += 4 * (int64_t)sh[q].rows * sh[q].cols * sh[q].cols;
            if (!prune_dense && next_prunes) { flops += fwd_flops(s, 2 * b, 2 * b + 2); carried = 1; }
            else carried = 0;
            for (int q = u->s0; q < u->s1; q++) masks += sub_mask_bytes(s, q % 2);
        }
        if (!u->recover) continue;
        const int H = u->kind == FL_UNIT_RANGE ? (u->s1 + 1) / 2 - u->s0 / 2 : 1;   /* blocks the unit holds */
        const int64_t held = model_held(cfg, str, H) + stream + (dense ? model_held(cfg, str, H) + stream : 0) + dense_model;
        const int64_t masks_h = str ? H * blk_masks : masks;
        int64_t cell;
        if (u->kind == FL_UNIT_MODEL) cell = model_bytes(cfg) + masks;
        else {
            cell = held + masks_h + kept + (prune_dense && i < last_prune ? stream : 0);
            if (u->kind == FL_UNIT_RANGE) cell += stream;
            else cell += 4 * NT * sh[u->lin].cols * (dense ? 2 : 1) + 4 * NT * sh[u->lin].rows;
            /* the walk's passes: the gap to the unit, then a range's target
             * and its advance, or a linear's capture (once per site), its
             * target and, after the sublayer's last linear, the advance */
            /* and their peaks, in the statistics phase: what the walk
             * holds, the range's target or the captured inputs, one batch's
             * forward (its output buffer when the pass keeps none) */
            const int64_t walk = held + masks_h + kept + (prune_dense && i < last_prune ? stream : 0);
            if (u->s0 > s_pos) {
                flops += nd * fwd_flops(s, s_pos, u->s0);
                note_prune(out, walk + fwd_noacts(sp, 1));
            }
            s_pos = u->s0 > s_pos ? u->s0 : s_pos;
            if (u->kind == FL_UNIT_RANGE) {
                flops += 2 * fwd_flops(s, u->s0, u->s1);
                note_prune(out, walk + stream + fwd_noacts(sp, u->s0 % 2 == 0 || u->s1 - u->s0 > 1));
                s_pos = u->s1;
            } else {
                if (cap_sub != u->s0 || cap_site != (int)sh[u->lin].site) {
                    flops += nd * fwd_flops(s, u->s0, u->s0 + 1);
                    cap_sub = u->s0; cap_site = (int)sh[u->lin].site;
                    note_prune(out, walk + nd * 4 * NT * sh[u->lin].cols + 4 * sp->N * s->d + fwd_noacts(sp, u->s0 % 2 == 0));
                }
                flops += 2 * NT * sh[u->lin].rows * sh[u->lin].cols;
                const fl_plan_unit *nx = i + 1 < plan->n ? &plan->u[i + 1] : NULL;
                if (!nx || nx->kind != FL_UNIT_LINEAR || nx->s0 != u->s0) {
                    flops += nd * fwd_flops(s, u->s0, u->s0 + 1);
                    s_pos = u->s0 + 1; cap_sub = -1;
                }
            }
        }
        /* a model unit batches its own windows (--retrain-samples): sm */
        fl_predict_job j = { .s = u->kind == FL_UNIT_MODEL ? sm : s, .u = u, .priv = in->priv,
                             .bias_norm_only = a->trainable_bias_norm, .optim = a->optim,
                             .epochs = a->epochs > 0 ? a->epochs : 1 };
        fl_predict_unit pu = { 0, 0, 0 };
        if (in->r->predict(&j, &pu) != 0) { free(last_use); free(prune_at); return -1; }
        take(out, pu.working, cell + pu.rel_peak, u->name);
        flops += pu.flops;
    }
    out->flops = (uint64_t)flops;
    /* structured: the walk's target passes run over the dense spans, which
     * these FLOPs count on the smaller shapes; the removal's own pass is
     * not predicted */
    if (structured) out->peak_prune_bytes = 0;
    free(last_use);
    free(prune_at);
    return 0;
}

int fl_recon_predict(const fl_config *cfg, const fl_recon_predict_args *args, fl_recon_predict_out *out) {
    memset(out, 0, sizeof *out);
    fl_recon_predict_args a = *args;
    if (a.retrain_nwin == 0) a.retrain_nwin = a.nwin;
    if (a.retrain_nwin < 1) return fl_err("predict: %d retraining windows: must be at least 1", a.retrain_nwin);
    fl_prop prop;
    if (fl_prop_parse(a.propagation ? a.propagation : "sparse", &prop) != 0) return -1;
    if (a.prune_stream && strcmp(a.prune_stream, "sparse") && strcmp(a.prune_stream, "dense"))
        return fl_err("predict: unknown prune stream '%s' (valid: sparse, dense)", a.prune_stream);
    const int prune_dense = a.prune_stream && !strcmp(a.prune_stream, "dense");
    if (fl_config_validate(cfg, "predict") != 0) return -1;
    if (a.nwin < 1 || a.T < 1) return fl_err("predict: %d windows of %d tokens: both must be at least 1", a.nwin, a.T);
    if (a.T > cfg->max_pos) return fl_err("predict: --seqlen %d exceeds the model's context of %d positions", a.T, cfg->max_pos);
    if (a.batch <= 0) a.batch = 2;   /* the cell's default --batch-size */
    fl_recon_inst in;
    if (fl_recon_open(a.reconstruct ? a.reconstruct : "none", &in) != 0) return -1;
    fl_plan plan;
    if (fl_recon_plan(&in, cfg, &plan) != 0) { fl_recon_close(&in); return -1; }
    shp s = { .c = cfg, .b = a.batch < a.nwin ? a.batch : a.nwin, .T = a.T, .d = cfg->d, .F = cfg->d_ff, .V = cfg->vocab,
              .qd = (int64_t)cfg->n_head * cfg->head_dim, .kvd = (int64_t)cfg->n_kv_head * cfg->head_dim,
              .nt = omp_get_max_threads(), .swiglu = cfg->act == FL_ACT_SWIGLU };
    s.N = s.b * a.T;
    s.nwin = a.nwin;
    shp sm = s;
    sm.b = a.batch < a.retrain_nwin ? a.batch : a.retrain_nwin;
    sm.N = sm.b * a.T;
    sm.nwin = a.retrain_nwin;
    shp sp = s;   /* the pruning pass's batches */
    const int pb = a.prune_batch > 0 ? a.prune_batch : 8;
    sp.b = pb < a.nwin ? pb : a.nwin;
    sp.N = sp.b * a.T;
    int rc = predict_plan(&s, &sm, &sp, &in, &plan, &a, prop, prune_dense, out);
    fl_plan_free(&plan);
    fl_recon_close(&in);
    return rc;
}

/* ---- the phases after recovery ------------------------------------------ */

static shp after_shapes(const fl_config *c, int B, int T) {
    shp s = { .c = c, .b = B, .T = T, .N = (int64_t)B * T, .d = c->d, .F = c->d_ff, .V = c->vocab,
              .qd = (int64_t)c->n_head * c->head_dim, .kvd = (int64_t)c->n_kv_head * c->head_dim,
              .nt = omp_get_max_threads(), .swiglu = c->act == FL_ACT_SWIGLU, .nwin = B };
    return s;
}

/* Every mask of the pruned model, a byte per block weight. */
static int64_t all_masks(const shp *s) {
    return s->c->n_layer * (sub_mask_bytes(s, 0) + sub_mask_bytes(s, 1));
}

size_t fl_pred_eval_stream_bytes(const fl_config *c, int nw, int B, int T) {
    const shp s = after_shapes(c, B, T);
    const int64_t X = 4 * (int64_t)nw * T * s.d + 8 * (int64_t)nw * T;   /* hidden states, tokens and targets */
    const int64_t head = 4 * (2 * s.N + s.N * s.d + (int64_t)HEAD_CHUNK * (s.V + s.d + 2)), att = 4 * s.nt * RB * s.T;
    const int64_t base = model_held(c, 1, 0) + X + 4 * s.N * s.d;
    /* a block's pass (the block and its masks held, one scratch of each
     * sublayer kind, the attention's), or the head's (no block held) */
    const int64_t blk = base + block_bytes(c) + sub_mask_bytes(&s, 0) + sub_mask_bytes(&s, 1) + sub_acts(&s, 0, 0) +
                        sub_acts(&s, 1, 0) + att;
    return (size_t)(blk > base + head ? blk : base + head);
}

/* eval/ppl.c: the pruned model with its masks, a batch's input and target
 * tokens (int32), and a whole forward without saved activations: the
 * residual stream, one scratch of each sublayer kind, then the larger of
 * the attention's per-thread score block and the head (final norm's mean,
 * rstd and output, HEAD_CHUNK rows of logits). */
size_t fl_pred_eval_bytes(const fl_config *c, int B, int T) {
    const shp s = after_shapes(c, B, T);
    const int64_t head = 4 * (2 * s.N + s.N * s.d + (int64_t)HEAD_CHUNK * (s.V + s.d + 2)), att = 4 * s.nt * RB * s.T;
    return (size_t)(model_bytes(c) + all_masks(&s) + 8 * s.N + 4 * s.N * s.d + sub_acts(&s, 0, 0) + sub_acts(&s, 1, 0) +
                    (att > head ? att : head));
}

/* eval/drift.c: the pruned model with its masks and the dense model loaded
 * again; per batch both block inputs [N,d], three outputs of the widest
 * linear, each site's input of both models, and one sublayer's forward
 * without saved activations. */
size_t fl_pred_drift_bytes(const fl_config *c, int B, int T) {
    const shp s = after_shapes(c, B, T);
    fl_linear_shape sh[7];
    const int k = fl_config_linears(c, sh);
    int64_t rows = s.d, width[4] = { 0 };
    for (int i = 0; i < k; i++) {
        width[sh[i].site] = sh[i].cols;
        rows = sh[i].rows > rows ? sh[i].rows : rows;
    }
    int64_t buf = 2 * s.N * s.d + 3 * s.N * rows;
    for (int q = 0; q < 4; q++) buf += 2 * s.N * width[q];
    return (size_t)(2 * model_bytes(c) + all_masks(&s) + 4 * buf + fwd_noacts(&s, 1) - 4 * s.N * s.d);
}
