/* The decoder-only transformer: configuration, parameters, submodels.
 *
 * Families:
 *   gpt2  : learned positions, LayerNorm, GELU(tanh), biases everywhere, tied head
 *   opt   : gpt2 with ReLU, positions offset by 2, pre-LN, final LayerNorm
 *   llama : RMSNorm, RoPE (rotate-half), SwiGLU (gate, up, down), no biases, GQA
 *   qwen2 : llama with q/k/v biases
 *
 * Shapes, with N = B*T tokens, d = hidden, H heads of hd, KV kv-heads, F = ffn:
 *   embed   [V, d]       pos [P, d] (gpt2/opt; opt's table has P = max_pos+2 rows)
 *   q [H*hd, d]  k,v [KV*hd, d]  o [d, H*hd]       (torch nn.Linear: W[out, in])
 *   fc1 [F, d] fc2 [d, F] (gpt2/opt);  gate,up [F, d] down [d, F] (llama/qwen2)
 *   norms [d];   lm_head [V, d] unless tied to embed.
 *
 * Submodels. The decoder is a sequence of sublayers: sublayer 2l is the
 * attention part of block l (norm, q/k/v, RoPE, attention, o, residual) and
 * 2l+1 its MLP part (norm, MLP, residual). A range [s0, s1) of sublayers,
 * optionally preceded by the embedding (input = tokens) and followed by the
 * head (final norm, LM head, cross-entropy), is a submodel: one sublayer,
 * one block, blocks i..j, or the whole model. A single linear is its own
 * submodel (fl_linear_forward/backward below). */
#ifndef FL_MODEL_H
#define FL_MODEL_H
#include <stddef.h>
#include <stdint.h>

typedef enum { FL_GPT2 = 0, FL_OPT, FL_LLAMA, FL_QWEN2 } fl_family;
typedef enum { FL_ACT_GELU_TANH = 0, FL_ACT_RELU, FL_ACT_SWIGLU } fl_act;

#define FL_MAX_LAYERS_ 1024   /* FL_MAX_LAYERS, needed before it is defined below */
typedef struct {
    fl_family family;
    int vocab, d, n_layer, n_head, n_kv_head, head_dim, d_ff, max_pos;
    float eps, rope_theta;
    int tied;          /* LM head is the embedding matrix */
    int rms;           /* RMSNorm without bias, else LayerNorm with bias */
    fl_act act;
    int learned_pos;   /* gpt2, opt */
    int pos_offset;    /* opt: 2 */
    int qkv_bias, o_bias, mlp_bias;
    int bos_id, eos_id;  /* -1 when unknown; copied to config.json on save */
    /* RoPE frequency scaling (HF rope_scaling): none, "linear" (every
     * frequency / factor) or "llama3" (long wavelengths / factor, short ones
     * kept, a smooth blend between; Llama-3.1/3.2). */
    int rope_scaling;    /* FL_ROPE_* */
    float rope_factor, rope_low_freq, rope_high_freq;
    int rope_orig_max;   /* original_max_position_embeddings (llama3) */
    /* OPT variants (opt-350m): post_ln, each sublayer's LayerNorm after its
     * residual (do_layer_norm_before = false; no final norm then), and
     * proj, the embedding width word_embed_proj_dim when it is not d (0:
     * none): the embedding and the head are [V, proj], project_in [d, proj]
     * maps the embedding up before the positions are added, project_out
     * [proj, d] maps the last hidden state down before the head. */
    int post_ln, proj;
    /* Per-layer sizes (structured pruning with FLAP's global ratio): block
     * l has layer_kv[l] key/value heads (each with n_head / n_kv_head query
     * heads) and layer_ff[l] MLP channels; 0 means the config's own
     * n_kv_head / d_ff, which are then the largest of any block, so every
     * buffer sized from them fits every block. Saved as freelunch's
     * config.json keys layer_num_key_value_heads and layer_intermediate_size
     * (model/checkpoint.c). Read them through fl_layer_kv / fl_layer_ff. */
    int layer_kv[FL_MAX_LAYERS_], layer_ff[FL_MAX_LAYERS_];
} fl_config;
enum { FL_ROPE_PLAIN = 0, FL_ROPE_LINEAR, FL_ROPE_LLAMA3 };

const char *fl_family_name(fl_family f);
/* Fill the architecture defaults of a family (biases, norm, act, offsets). */
void fl_config_family_defaults(fl_config *c, fl_family f);
/* Checks the sizes are consistent (heads divide d, kv-heads divide heads...)
 * and within the plausibility limits below, so no product of sizes can
 * overflow and no config can ask for absurd memory by itself. */
int fl_config_validate(const fl_config *c, const char *what);
/* Plausibility limits, well above every published model of the families. */
#define FL_MAX_VOCAB (1 << 22)
#define FL_MAX_HIDDEN (1 << 16)
#define FL_MAX_LAYERS FL_MAX_LAYERS_
#define FL_MAX_HEADS 1024
#define FL_MAX_FFN (1 << 20)
#define FL_MAX_POSITIONS (1 << 20)
#define FL_MAX_PARAMS ((int64_t)1 << 37)
#define FL_MAX_ROPE_FLOATS ((int64_t)1 << 26)
/* Parameters (not bytes, not padded) a model of this config holds, the
 * embedding once when tied; equals fl_model_num_params of fl_model_create's
 * model. Call only on a config whose sizes fl_config_validate bounded. */
int64_t fl_config_num_params(const fl_config *c);

/* Kinds of parameter, for the registry and for choosing trainable subsets. */
typedef enum {
    FL_PK_EMBED = 0, FL_PK_POS, FL_PK_NORM_W, FL_PK_NORM_B, FL_PK_LINEAR_W, FL_PK_LINEAR_B, FL_PK_HEAD
} fl_pkind;

/* A low-rank adapter on a linear weight W [out, in] (LoRA, MaskLoRA),
 * consumed by the forward and backward of the linear that carries it:
 *   mask == NULL:  y = x W^T + s (x A^T) B^T      (W frozen, never merged)
 *   mask != NULL:  y = x (W + s M o (B A))^T       (pruned entries stay W's 0)
 * Backward ADDS into gA, gB (each may be NULL: frozen) and dx. Plain LoRA
 * never forms anything [out, in]. MaskLoRA needs W_eff and its gradient
 * M o (dY^T X), both [out, in]: they go, one after the other, into `dense`,
 * a scratch of at least out*in floats owned by the caller. Linears run one
 * at a time, so one scratch sized for the largest may serve every adapter. */
typedef struct {
    int rank;
    float scale;
    float *A, *B;        /* [rank, in], [out, rank] */
    float *gA, *gB;      /* gradients (NULL: not trained) */
    const uint8_t *mask; /* MaskLoRA's M, or NULL */
    float *dense;        /* MaskLoRA scratch [>= out*in] */
} fl_adapter;

typedef struct {
    char name[64];     /* canonical: "layers.3.q.weight", "embed.weight", ... */
    fl_pkind kind;
    int layer;         /* -1 outside the blocks */
    int rows, cols;    /* cols = 1 for vectors */
    int64_t n;
    float *w;          /* into fl_model.data */
    float *g;          /* gradient, allocated while trainable (fl_param_set_trainable) */
    float *m, *v;      /* AdamW moments, owned by the optimiser */
    uint8_t *mask;     /* NULL, or 1 = kept, 0 = pruned; linear weights only */
    fl_adapter *ad;    /* NULL, or a low-rank adapter (block linears; owned by its user) */
    int trainable;
    size_t off;        /* floats from the start of its storage: fl_model.data, or its block's (streamed) */
} fl_param;

typedef struct {
    fl_param *attn_norm_w, *attn_norm_b;
    fl_param *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
    fl_param *mlp_norm_w, *mlp_norm_b;
    /* gpt2/opt: fc1 -> act -> fc2.  llama/qwen2: silu(gate) * up -> down,
     * stored as fc1 = gate, up, fc2 = down. */
    fl_param *fc1_w, *fc1_b, *up_w, *up_b, *fc2_w, *fc2_b;   /* up_b: llama's mlp_bias */
} fl_layer;

typedef struct fl_model {
    fl_config cfg;
    float *data;          /* every parameter, one tracked block (streamed: all but the blocks') */
    size_t n_floats;
    fl_param *params;     /* registry, in a fixed order */
    int n_params;
    fl_layer *layers;
    fl_param *embed, *pos, *final_norm_w, *final_norm_b, *head; /* head == embed when tied; final_norm_w NULL with post_ln */
    fl_param *proj_in, *proj_out;   /* cfg.proj: project_in [d, proj], project_out [proj, d] (kind FL_PK_HEAD); else NULL */
    float *rope_cos, *rope_sin; /* [max_pos, hd/2], llama/qwen2 */
    /* A streamed model (checkpoint.h, fl_model_load_streamed): the blocks'
     * parameters are not in data. Block l's live in blk[l], block_floats
     * tracked floats, while it is resident (fl_model_hold); otherwise its
     * parameters' w (and masks) are NULL and the block is in the mapped
     * checkpoint or in the stream's spill file. stream == NULL: every
     * block is resident in data, always. */
    struct fl_stream *stream;
    float **blk;
    size_t block_floats;
    void (*stream_close)(struct fl_model *m);
} fl_model;

/* Allocate a model of this shape with all parameters zero (norm weights 1). */
int fl_model_create(fl_model *m, const fl_config *c);
/* The same; with blocks_resident 0 the blocks' parameters get no storage
 * (w NULL, off their place inside a block of block_floats): the skeleton a
 * streamed model is loaded into. */
int fl_model_create_ex(fl_model *m, const fl_config *c, int blocks_resident);
/* Is block l's storage there (always, unless the model is streamed)? */
int fl_block_resident(const fl_model *m, int l);
/* GPT-2-style init: N(0, 0.02), residual projections scaled by 1/sqrt(2L). */
void fl_model_init_random(fl_model *m, uint64_t seed);
void fl_model_free(fl_model *m);
fl_param *fl_model_find(fl_model *m, const char *name);
int64_t fl_model_num_params(const fl_model *m);
/* The linears of block l in the order of the design (q,k,v,o,fc1,fc2 or
 * q,k,v,o,gate,up,down); returns the count (6 or 7). */
int fl_layer_linears(fl_model *m, int l, fl_param **w, fl_param **b, const char **short_names);

/* Sublayer of a block parameter (2l attention part, 2l+1 MLP part), or -1
 * for the embedding, positions, final norm and head. */
int fl_param_sublayer(const fl_param *p);

/* Trainability. Setting trainable allocates a zeroed gradient. */
void fl_param_set_trainable(fl_param *p, int on);
void fl_model_set_all_trainable(fl_model *m, int on);
void fl_model_zero_grad(fl_model *m);
/* Mask: copies `mask` (n bytes, 1 = keep) and zeroes the pruned weights.
 * NULL removes the mask. Only for linear weights. */
int fl_param_set_mask(fl_param *p, const uint8_t *mask);
void fl_param_apply_mask(fl_param *p);  /* w *= mask */

/* ---- Submodel forward / backward -------------------------------------- */

typedef struct {
    int s0, s1;   /* sublayers [s0, s1): 2l = attention of block l, 2l+1 = MLP */
    int embed;    /* input is tokens through the embedding */
    int head;     /* output goes through final norm, LM head, cross-entropy */
} fl_range;

fl_range fl_range_whole(const fl_model *m);
fl_range fl_range_blocks(int first, int last_inclusive);
fl_range fl_range_attn(int l);
fl_range fl_range_mlp(int l);

typedef struct fl_acts fl_acts;  /* activations saved for backward */

/* Where a linear reads its input, for hooks: the normed input of q/k/v,
 * the attention output (input of o), the normed input of the MLP (fc1, or
 * gate and up), and the activation (input of fc2/down). */
typedef enum { FL_SITE_QKV = 0, FL_SITE_O, FL_SITE_MLP_IN, FL_SITE_MLP_OUT } fl_site;
/* Called during forward with the [N, cols] input of the linears at `site`
 * of block `layer` (pruning statistics, layer errors). */
typedef void (*fl_hook)(void *ctx, int layer, fl_site site, const float *x, int N, int cols);

/* The linears of one block as a config implies them, in fl_layer_linears
 * order, with the site that feeds each: the one place block shapes are
 * derived from a config for counting and planning (the memory planner,
 * LoRA's count, reconstruction plans). fl_model_create registers the same
 * tensors; tests/test_recon_mem.c checks both agree. Returns 6 or 7. */
typedef struct {
    const char *name;   /* short name: q, k, v, o, fc1, fc2 or gate, up, down */
    int rows, cols;     /* [out, in] */
    int bias;           /* has a bias */
    int sub;            /* 0 attention part, 1 MLP part */
    fl_site site;
} fl_linear_shape;
int fl_config_linears(const fl_config *c, fl_linear_shape out[7]);
/* The same for block l, with its own sizes (fl_config_linears gives the
 * largest, those of the config's n_kv_head and d_ff). */
int fl_config_layer_linears(const fl_config *c, int l, fl_linear_shape out[7]);
/* Block l's key/value heads, query heads and MLP channels. */
static inline int fl_layer_kv(const fl_config *c, int l) { return c->layer_kv[l] ? c->layer_kv[l] : c->n_kv_head; }
static inline int fl_layer_heads(const fl_config *c, int l) { return fl_layer_kv(c, l) * (c->n_head / c->n_kv_head); }
static inline int fl_layer_ff(const fl_config *c, int l) { return c->layer_ff[l] ? c->layer_ff[l] : c->d_ff; }
/* 1 when some block's sizes differ from the config's. */
int fl_config_nonuniform(const fl_config *c);

typedef struct {
    int B, T;
    const int32_t *tokens;   /* [B*T] when r.embed */
    const float *x_in;       /* [B*T*d] when !r.embed */
    float *x_out;            /* [B*T*d] when !r.head (may be NULL) */
    const int32_t *targets;  /* [B*T] when r.head; < 0 means not counted */
    float *logits;           /* optional copy [B*T*V] when r.head */
    const float *soft;       /* optional teacher probabilities [B*T*V]: the loss becomes
                                cross-entropy to them (distillation); must stay alive
                                until the backward */
    float *nll;              /* optional per-position NLL [B*T] when r.head (0 where not counted) */
    int32_t *argmax;         /* optional [B*T] when r.head: the id of the largest logit
                                (the first of equals) where counted, else -1 */
    int pos0;                /* position of the first token of each row (usually 0) */
    fl_hook hook;            /* optional */
    void *hook_ctx;
    /* outputs */
    double loss;             /* mean NLL over counted targets */
    int64_t n_targets;
} fl_fwd;

/* Forward over a range. With `acts` non-NULL (from fl_acts_new) the
 * activations needed by backward are kept there; with NULL nothing is kept
 * beyond one sublayer's scratch. */
int fl_forward(fl_model *m, fl_range r, fl_fwd *a, fl_acts *acts);
/* Backward of the last forward kept in `acts`. dx_out: gradient w.r.t. the
 * range's output [B*T*d] (ignored with head: the loss is the mean NLL).
 * dx_in (may be NULL): gradient w.r.t. x_in is ADDED to it. Parameter
 * gradients are ADDED to p->g for trainable parameters (masked entries stay 0). */
int fl_backward(fl_model *m, fl_range r, fl_acts *acts, const float *dx_out, float *dx_in);

fl_acts *fl_acts_new(void);
void fl_acts_free(fl_acts *a);
/* Gives back what the last forward kept (the next forward allocates again):
 * a training loop calls it after backward so that work between steps (a
 * teacher's forward) does not sit on top of stale activations. */
void fl_acts_release(fl_acts *a);
size_t fl_acts_bytes(const fl_acts *a);
/* What a forward over range r with acts keeps for B windows of T tokens:
 * equals fl_acts_bytes after that forward (the memory planner's figure). */
size_t fl_acts_predict_bytes(const fl_config *c, fl_range r, int B, int T);
/* The largest set of tracked temporaries the backward of range r allocates
 * beside the saved activations (residual gradients, a sublayer's inner
 * gradients, the attention scratch; the logits are given back after the
 * head). Assumes no trainable norm or bias; lin_tmp: the bytes each linear's
 * backward adds on top (an adapter's 2*N*rank floats). */
size_t fl_backward_tmp_bytes(const fl_config *c, fl_range r, int B, int T, size_t lin_tmp);

/* One linear as a submodel: y[N, out] = x[N, in] W^T + b (plus its adapter,
 * if w->ad). Backward adds dx (if non-NULL) and, when trainable, dW
 * (masked) and db, and the adapter's dA, dB. */
void fl_linear_forward(const fl_param *w, const fl_param *b, const float *x, float *y, int N);
void fl_linear_backward(fl_param *w, fl_param *b, const float *x, const float *dy, float *dx, int N);

#endif
