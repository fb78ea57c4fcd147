/* LoRA and MaskLoRA retraining (retrain:lora, retrain:masklora).
 *
 * Every linear weight W of every block (fl_layer_linears) gets adapters
 * A [rank, in] (kaiming-uniform, bound 1/sqrt(in), as PEFT) and B [out, rank]
 * (zero), scale s = alpha / rank. The effective weight is
 *     LoRA      W_eff = W0 + s (B A)
 *     MaskLoRA  W_eff = W0 + s (M o (B A))      (M = the pruning mask)
 * so with MaskLoRA the pruned entries stay exactly 0. Only A and B are
 * trained, with next-token cross-entropy on the calibration windows, the
 * same batches, epochs, seeded shuffle, warm-up (10%) + linear decay and
 * gradient accumulation as fl_retrain; AdamW is a private copy of
 * model/adamw.c's update over the adapter buffers. At the end the adapters
 * are merged into W (p->w = W_eff). LoRA's merged weights are NOT sparse
 * (the adapters touch the pruned entries); the mask pointers are restored
 * but W is not re-zeroed.
 *
 * Mechanics (model.c untouched): each step W_eff is written into p->w, the
 * linear weights are marked trainable so backward leaves dL/dW_eff in p->g
 * (for LoRA the mask pointer is detached meanwhile so the gradient is not
 * masked), then dB = s G A^T and dA = s B^T G with G = dW (LoRA) or
 * M o dW (MaskLoRA). W0 copies, adapters, their gradients and moments all
 * come from the tracked allocator, as do the dense dW buffers, so the
 * memory figures count them. */
#ifndef FL_LORA_H
#define FL_LORA_H
#include "recon.h"
#include "model/adamw.h"
#include <stdint.h>

#define FL_LORA_RANK_DEFAULT 8
#define FL_LORA_ALPHA_DEFAULT 16.0f

/* Parses a retrain argument: "lora" or "masklora", optionally followed by
 * options after ':' or ',' — "lora:rank=16,alpha=32", "masklora,r=4".
 * Returns 1 if arg names LoRA/MaskLoRA (fills the non-NULL outputs, with the
 * defaults for what is not given), 0 if it does not (arg NULL, "full"...),
 * -1 with a message if it does but the options are malformed. */
int fl_lora_parse_arg(const char *arg, int *masked, int *rank, float *alpha);

/* The retraining: adapters on every block linear, trained on the windows
 * tok [nwin*T], merged at the end. masked: MaskLoRA. rep gets the mean CE on
 * the calibration windows before and after, steps, seconds, working_bytes
 * (tracked peak above what was live at the start + the model's parameter
 * bytes) and peak_bytes. On divergence (non-finite loss) the weights are
 * restored to W0, rep->diverged is set and -1 returned. */
int fl_retrain_lora(fl_model *m, int masked, int rank, float alpha, const int32_t *tok, int nwin, int T,
                    const fl_recon_opts *o, fl_unit_report *rep);

/* ---- lower level (used by fl_retrain_lora; exposed for tests) ---------- */

typedef struct {
    fl_param *p;
    uint8_t *mask;        /* p's mask (NULL if unmasked) */
    int out, in;
    float *w0;            /* [out*in] copy of W at attach time */
    float *A, *B;         /* [rank*in], [out*rank] */
    float *gA, *gB, *mA, *vA, *mB, *vB;
} fl_lora_slot;

typedef struct {
    fl_model *m;
    int masked, rank, n;
    float alpha, scale;   /* scale = alpha / rank */
    fl_lora_slot *s;      /* one per block linear, layer by layer */
    int t;                /* AdamW steps taken */
} fl_lora;

/* Attaches adapters to every block linear (A random from seed, B = 0),
 * marks those weights trainable (everything else frozen) and, for plain
 * LoRA, detaches their masks. p->w still equals W0 afterwards. */
int fl_lora_attach(fl_lora *L, fl_model *m, int masked, int rank, float alpha, uint64_t seed);
/* p->w = W_eff for every adapted linear. */
void fl_lora_compose(fl_lora *L);
/* From the dW accumulated in p->g (scaled by gscale, e.g. 1/accum): gA, gB
 * (overwritten), then p->g zeroed. */
void fl_lora_grads(fl_lora *L, float gscale);
/* One AdamW step on A and B from gA, gB (same update as fl_adamw_step,
 * weight decay on matrices, clipping by c->clip_norm), lr from fl_lr_factor.
 * Returns the global gradient norm before clipping. Does not compose. */
double fl_lora_adamw_step(fl_lora *L, const fl_adamw_cfg *c);
/* Detaches: merge != 0 leaves p->w = W_eff (composed from the current A, B),
 * else restores W0. Restores masks, freezes the weights (frees p->g) and
 * frees every adapter buffer. */
void fl_lora_detach(fl_lora *L, int merge);
/* Bytes of the adapter state (W0 copies, A, B, gradients, moments). */
size_t fl_lora_bytes(const fl_lora *L);

#endif
