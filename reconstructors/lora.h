/* LoRA and MaskLoRA retraining (retrain:lora, retrain:masklora).
 *
 * Every linear weight W of every block (fl_layer_linears) gets adapters
 * A [rank, in] (kaiming-uniform, bound 1/sqrt(in), as PEFT) and B [out, rank]
 * (zero), scale s = alpha / rank. The effective weight is
 *     LoRA      W_eff = W0 + s (B A)
 *     MaskLoRA  W_eff = W0 + s (M o (B A))      (M = the pruning mask)
 * so with MaskLoRA the pruned entries stay exactly 0. A and B are trained
 * (and, with the option bias-norm, every bias and norm parameter too:
 * MaskLoRA's default, as the authors'; see FL_MASKLORA_* below), with next-token cross-entropy on the calibration windows (or,
 * with --distill, cross-entropy to the dense teacher's distribution), the
 * same batches, epochs, seeded shuffle, warm-up (10%) + linear decay and
 * gradient accumulation as fl_retrain; AdamW is model/adamw.c's update over
 * the adapter buffers. At the end the adapters are merged into W
 * (p->w = W_eff). LoRA's merged weights are NOT sparse (the adapters touch
 * the pruned entries); its masks stay attached but W is not re-zeroed.
 *
 * Mechanics: W0 stays in p->w, frozen, throughout; each linear carries an
 * fl_adapter (model.h) that its forward and backward consume.
 *   LoRA: y = x W0^T + s (x A^T) B^T; backward forms only dA, dB, dx
 *     (a few [N, rank] temporaries), never a dense [out, in] gradient.
 *   MaskLoRA: M o (BA) has no low-rank form, so one scratch [out*in] sized
 *     for the largest linear is shared by all: forward composes W_eff there
 *     just before the linear's GEMM (rank*out*in flops, small beside the
 *     GEMM's N*out*in), backward composes it again for dx and then reuses
 *     the scratch for G = M o (dY^T X), which it projects to dA, dB. This is
 *     cheaper in memory than keeping merged weights (a second copy of every
 *     linear, or of W0) and exact: p->w is never written until the merge.
 * Nothing dense per linear survives a linear's backward: the working set is
 * the model, the adapters with their gradients and two moments, the saved
 * activations, and (MaskLoRA) the one scratch; fl_lora_predict_working
 * counts it. Everything comes from the tracked allocator. */
#ifndef FL_LORA_H
#define FL_LORA_H
#include "recon.h"
#include "model/adamw.h"
#include <stdint.h>

#define FL_LORA_RANK_DEFAULT 8
#define FL_LORA_ALPHA_DEFAULT 16.0f
#define FL_LORA_BIAS_NORM_DEFAULT 0

/* retrain:masklora's defaults are the authors' (arXiv 2510.14444; read in
 * github.com/ZIB-IOL/Free-Lunch-in-LLM-Compression, main.py's defaults and
 * peft_methods.py's SelectivePEFT, utilities.py's SelectiveMethods):
 * lora_r 16, lora_alpha 32, lora_dropout 0, adapters on every block linear
 * (q/k/v/o, gate/up/down, fc1/fc2), lora_type masked_efficient; with
 * peft_use_bias and peft_use_ln on, every module's bias is trainable (all
 * block linear biases; OPT's LayerNorm biases) and every LayerNorm/RMSNorm
 * module (weight and bias, the final norm included); peft_use_lm_head off,
 * and the embeddings stay frozen. Their plain LoRA (lora_type lora) runs
 * through the same SelectivePEFT defaults, so it too is r 16, alpha 32
 * with biases and norms; retrain:lora keeps freelunch's older defaults
 * (8, 16, adapters only) so existing results stay comparable:
 * retrain:lora:rank=16,alpha=32,bias-norm=1 is theirs. */
#define FL_MASKLORA_RANK_DEFAULT 16
#define FL_MASKLORA_ALPHA_DEFAULT 32.0f
#define FL_MASKLORA_BIAS_NORM_DEFAULT 1

/* The options of retrain:lora and retrain:masklora, as their descriptors
 * parse them (fl_recon_inst.priv): "retrain:lora:rank=16,alpha=32",
 * "retrain:masklora,r=4", "retrain:masklora:bias-norm=0". */
typedef struct { int rank; double alpha; int bias_norm; } fl_lora_opts;

/* The retraining: adapters on every block linear, trained on the windows
 * tok [nwin*T], merged at the end. masked: MaskLoRA. bias_norm: every
 * bias and norm parameter (FL_PK_NORM_W, FL_PK_NORM_B, FL_PK_LINEAR_B) is
 * trained beside the adapters, by AdamW with the same schedule (no
 * clipping by default, so two optimisers equal one). rep gets the mean CE
 * on the windows before and after, steps, seconds, working_bytes
 * (tracked peak above what was live at the start + the model's parameter
 * bytes), peak_bytes and tokens (nwin x T x epochs). On divergence
 * (non-finite loss) the linear weights are restored to W0 (biases and
 * norms trained with bias_norm are not), rep->diverged is set and -1
 * returned. */
int fl_retrain_lora(fl_model *m, int masked, int rank, float alpha, int bias_norm, const int32_t *tok, int nwin, int T,
                    const fl_recon_opts *o, fl_unit_report *rep);

/* The working set fl_retrain_lora reports (rep->working_bytes), counted
 * from the shapes alone for B windows of T tokens: parameters, adapters
 * (A, B, their gradients and two moments), the activations one batch keeps
 * for backward, the largest set of backward temporaries, MaskLoRA's scratch
 * (the largest linear), with bias_norm the biases' and norms' gradients
 * and moments, and with distill the teacher's probabilities [B*T, V].
 * Assumes every block linear is masked for MaskLoRA. For dry runs. */
size_t fl_lora_predict_working(const fl_config *cfg, int masked, int rank, int bias_norm, int distill, int B, int T);
/* The same for either optimiser: SGD keeps one buffer per trained float, not two. */
size_t fl_lora_predict_working_opt(const fl_config *cfg, int masked, int rank, int bias_norm, int distill, int B, int T,
                                   fl_optim optim);

/* ---- lower level (used by fl_retrain_lora; exposed for tests) ---------- */

typedef struct {
    fl_param *p;
    int out, in;
    fl_adapter ad;        /* A, B, gA, gB, mask, scratch: what the linear kernels read; p->ad = &ad */
    float *mA, *vA, *mB, *vB;   /* AdamW moments; SGD: mA, mB are the momentum, vA = vB = NULL */
} fl_lora_slot;

typedef struct {
    fl_model *m;
    int masked, rank, n;
    float alpha, scale;   /* scale = alpha / rank */
    fl_lora_slot *s;      /* one per block linear, layer by layer */
    float *dense;         /* MaskLoRA's one scratch [max out*in] (NULL for LoRA) */
    int t;                /* AdamW steps taken */
} fl_lora;

/* Attaches adapters to every block linear (A random from seed, B = 0) and
 * freezes every parameter of the model: afterwards forward and backward
 * run through the adapters and backward adds into their gA, gB. p->w stays
 * W0 until fl_lora_detach merges. */
int fl_lora_attach(fl_lora *L, fl_model *m, int masked, int rank, float alpha, uint64_t seed);
/* The same with the optimiser's state: AdamW (as fl_lora_attach) or SGD
 * (one momentum buffer per adapter, fl_lora_adamw_step then needs c->optim
 * FL_OPTIM_SGD). */
int fl_lora_attach_opt(fl_lora *L, fl_model *m, int masked, int rank, float alpha, uint64_t seed, fl_optim optim);
/* One AdamW step (SGD when c->optim says so: fl_sgd_update) on A and B from gA * gscale, gB * gscale (gscale: e.g.
 * 1/accum), the same update as fl_adamw_step (weight decay on matrices,
 * clipping by c->clip_norm), lr from fl_lr_factor; zeroes gA, gB. Returns
 * the global norm of the scaled gradient before clipping. */
double fl_lora_adamw_step(fl_lora *L, const fl_adamw_cfg *c, float gscale);
/* Detaches: merge != 0 writes W_eff (from the current A, B) into p->w, else
 * W stays W0. Removes the adapters from the model and frees every buffer. */
void fl_lora_detach(fl_lora *L, int merge);
/* Bytes of the adapter state (A, B, gradients, moments, scratch). */
size_t fl_lora_bytes(const fl_lora *L);

#endif
