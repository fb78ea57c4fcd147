/* Reconstructors as plug-ins: recovery after pruning (docs/ARCHITECTURE.md,
 * "Plug-ins"). Like a criterion, a reconstructor is one const struct in a
 * file of its own (none.c, matrix.c, matrix_ls.c, sublayer.c, block.c,
 * blocks.c, retrain.c, lora.c), listed in FL_RECONSTRUCTORS
 * (reconstructors/registry.c): a name, a one-line description, an option
 * table parsed once per cell into a private struct, and three functions:
 *
 *   plan()    the units it recovers, in depth order, from the model's
 *             config alone: one linear, a range of sublayers, the whole
 *             model (plan.c has the builders every plug-in uses);
 *   recover() one unit: train its trainable parameters so that unit(X)
 *             approaches Y (pruned weights stay exactly zero), or, for a
 *             model unit, train the model on the calibration tokens;
 *   predict() the bytes recovering one unit takes, from shapes alone.
 *
 * The cell (harness/cell.c) builds the plan once and walks it: each block
 * pruned from one pass through it on the prune stream, then the units
 * inside it recovered, each against its dense weights' output. fl_recon_predict
 * (predict.c) walks the same plan and adds what the cell holds meanwhile.
 * Neither knows which reconstructor it runs. Routines several plug-ins
 * share live beside them: local.c (AdamW on a unit), ls.c (least squares),
 * train.c (the training loop), options.c (propagation modes and losses). */
#ifndef FL_RECON_H
#define FL_RECON_H
#include "model/model.h"
#include "model/adamw.h"
#include "model/opts.h"
#include <stddef.h>

typedef enum { FL_PROP_SPARSE = 0, FL_PROP_DENSE, FL_PROP_DENSE_TARGET } fl_prop;
typedef enum { FL_LOSS_MSE = 0, FL_LOSS_NMSE, FL_LOSS_COSINE } fl_loss;

/* ---- plans ---------------------------------------------------------------- */

typedef enum {
    FL_UNIT_LINEAR = 0,   /* one linear of a block */
    FL_UNIT_RANGE,        /* sublayers [s0, s1): an attention or MLP part, one or more blocks */
    FL_UNIT_MODEL         /* the whole model, trained on the calibration tokens */
} fl_unit_kind;

/* One step of a cell's walk, from the config alone. A plug-in's plan()
 * lists the units it recovers, in depth order; fl_recon_plan then inserts
 * the prune units (fl_plan_add_pruning): every block is pruned whole, just
 * before the first recovery unit that reaches into it (all of them before
 * a model unit), from the statistics of one pass through the still-dense
 * block on the prune stream (--prune-stream: the sparse stream of the
 * model pruned and recovered so far, or the dense model's own). So the
 * masks never depend on how a block's own units were recovered, and with
 * --prune-stream dense not on the reconstructor at all. A recovery unit's
 * target comes from the dense weights the walk keeps for it from its
 * block's pruning until it is recovered (harness/cell.c). */
typedef struct {
    fl_unit_kind kind;
    int s0, s1;           /* the sublayers spanned; a linear: its own sublayer, s1 = s0 + 1 */
    int layer, lin;       /* linear units: the block and the index in fl_layer_linears order */
    int prune, recover;   /* prune: a whole block, set by fl_plan_add_pruning only */
    char name[64];        /* "layers.3.mlp", "layers.0-3", "layers.2.q", "model (retrain:full)", "prune layers.3" */
} fl_plan_unit;

typedef struct {
    fl_plan_unit *u;      /* malloc'd */
    int n, cap;
} fl_plan;

/* Builders for plan(), each appending recovery units: units of `sub`
 * consecutive sublayers over the whole decoder (1 = attention and MLP
 * apart, 2 = blocks, 2K = K blocks; the last may be shorter); every block
 * linear alone, in depth order; one model unit. 0, or -1 with a message. */
int fl_plan_ranges(fl_plan *p, const fl_config *c, int sub);
/* One range unit, sublayers [s0, s1). */
int fl_plan_range(fl_plan *p, const fl_config *c, int s0, int s1);
int fl_plan_linears(fl_plan *p, const fl_config *c);
int fl_plan_model(fl_plan *p, const char *name);
/* Inserts the prune units into a plan of recovery units (see above). */
int fl_plan_add_pruning(fl_plan *p, const fl_config *c);
/* Every block pruned exactly once, in order, each before any unit that
 * recovers part of it; recovery units in depth order, inside the decoder;
 * a model unit after the last block's pruning. -1 with a message naming
 * the reconstructor if not. */
int fl_plan_check(const fl_plan *p, const fl_config *c, const char *who);
/* last_use[l*7+i] (n_layer*7 ints): the index of the last recovery unit,
 * not a model unit, that reaches linear i of block l, or -1: until then
 * the walk keeps its dense weights (harness/cell.c, predict.c). */
void fl_plan_last_use(const fl_plan *p, const fl_config *c, int *last_use);
void fl_plan_free(fl_plan *p);

/* A unit bound to a model: the cell's (and the tests') view. */
typedef struct {
    fl_unit_kind kind;
    fl_range r;           /* ranges and the model */
    fl_param *w, *b;      /* a linear: weight and bias (b may be NULL) */
    int in_w, out_w;      /* widths of X and Y rows */
    char name[64];
} fl_unit;

typedef struct {
    float lr, weight_decay;
    int epochs, batch, grad_accum;
    fl_loss loss;
    fl_optim optim;       /* --optimizer: every training loop of recovery (local.c, retrain.c, lora.c) */
    int bias_norm_only;   /* --trainable bias-norm */
    uint64_t seed;
    int progress;
    float ls_damp;        /* matrix-ls: dampening, fraction of mean diag (default 0.01) */
    fl_model *teacher;    /* retraining with --distill: the dense model, whose
                             next-token distribution replaces the hard targets */
    /* --hidden-distill (reconstructors/hidden.h): the teacher's hidden
     * states pulled on by an MSE of this weight (0: off), alone (no
     * next-token loss) or added; map[i]: the teacher's place for the
     * output of the student's block i. Needs teacher. */
    float hidden_weight;
    int hidden_alone;
    const int *hidden_map;
    int teacher_hidden_only;  /* the teacher is there for --hidden-distill alone: the next-token
                                 loss stays cross-entropy (without it a teacher means --distill) */
} fl_recon_opts;

/* What recover() gets for one unit. */
typedef struct {
    fl_model *m;
    const fl_unit *u;
    const float *X, *Y;   /* linear and range units: inputs [nwin*T, u->in_w], targets [nwin*T, u->out_w] */
    const int32_t *tok;   /* model units: the windows' tokens [nwin*T] (--retrain-samples of them, the
                             calibration windows first) */
    int nwin, T;          /* linear and range units: the calibration windows; model units: the retraining windows */
    const fl_recon_opts *o;
    const void *priv;     /* the reconstructor's parsed options */
} fl_recover_job;

typedef struct {
    char name[64];
    double loss_before, loss_after;
    int steps;
    double seconds;
    size_t working_bytes;  /* parameters of the unit + everything allocated while recovering it */
    size_t peak_bytes;     /* tracked peak while recovering it (streams included) */
    int64_t tokens;        /* training tokens pushed through forward+backward: windows x T x epochs
                              (matrix-ls, solved from one pass: windows x T); the cell's recovery_tokens
                              is the largest over its units, since every unit passes over the same data */
    int diverged;
} fl_unit_report;

typedef struct fl_shapes fl_shapes;   /* predict.h: the shapes a prediction counts with */

/* What predict() gets for one unit, and gives back. */
typedef struct {
    const fl_shapes *s;
    const fl_plan_unit *u;
    const void *priv;
    int bias_norm_only;   /* --trainable bias-norm */
    fl_optim optim;       /* --optimizer: how many floats of state per trainable float */
    int epochs;           /* --epochs (>= 1): the FLOPs */
} fl_predict_job;
typedef struct {
    int64_t working;      /* the unit's working set: its parameters, gradients, moments,
                             saved activations and the routine's temporaries */
    int64_t rel_peak;     /* the routine's tracked peak above what was live when it began */
    int64_t flops;        /* the routine's GEMM FLOPs (fl_pred_pass_flops), losses before and after included */
} fl_predict_unit;

/* Which of a preset's tuned learning rates is a reconstructor's default
 * (harness/presets.c). */
typedef enum { FL_LR_LOCAL = 0, FL_LR_BLOCKS, FL_LR_RETRAIN } fl_lr_class;

enum {
    FL_REC_DISTILL = 1,   /* accepts --distill (trains on tokens, so a teacher can replace them) */
    FL_REC_DENSIFIES = 2, /* its result is not sparse: it writes into pruned weights (LoRA's merge) */
    FL_REC_SOLVES = 4,    /* recovers in closed form: no learning rate, epochs or batches to tune (matrix-ls) */
};

typedef struct fl_reconstructor {
    const char *name, *desc;
    const char *alias;             /* another accepted spelling ("retrain" for retrain:full), or NULL */
    const fl_option *options;      /* model/opts.h; NULL = takes no options */
    size_t priv_size;              /* the struct the options are parsed into */
    int (*init)(void *priv);       /* optional: checks across options after parsing */
    unsigned flags;                /* FL_REC_* */
    fl_lr_class lr_class;
    int (*plan)(const fl_config *c, const void *priv, fl_plan *plan);
    int (*recover)(const fl_recover_job *j, fl_unit_report *rep);       /* NULL: recovers nothing */
    int (*predict)(const fl_predict_job *j, fl_predict_unit *out);      /* NULL iff recover is */
} fl_reconstructor;

extern const fl_reconstructor *const FL_RECONSTRUCTORS[];   /* NULL-terminated */

/* An opened reconstructor: the descriptor and its parsed options. */
typedef struct {
    const fl_reconstructor *r;
    void *priv;
} fl_recon_inst;

/* "name", "name:options" or "name,options" (the longest registered name
 * that matches): finds it, parses its options and runs its init. -1 with a
 * message listing every reconstructor when the name is unknown. */
int fl_recon_open(const char *spec, fl_recon_inst *out);
void fl_recon_close(fl_recon_inst *in);
/* Opens and closes: is spec a valid reconstructor with valid options? */
int fl_recon_check(const char *spec);
/* The plan of an opened reconstructor for config c, checked. */
int fl_recon_plan(const fl_recon_inst *in, const fl_config *c, fl_plan *plan);

int fl_prop_parse(const char *s, fl_prop *out);
int fl_loss_parse(const char *s, fl_loss *out);
const char *fl_prop_name(fl_prop p);
const char *fl_loss_name(fl_loss l);

/* Forward of a unit over a batch of B windows (x [B*T, in_w] -> y [B*T, out_w]);
 * with acts, keeps what backward needs (ranges only; a linear needs x). */
int fl_unit_forward(fl_model *m, const fl_unit *u, const float *x, float *y, int B, int T, fl_acts *acts);
/* Backward: adds parameter gradients of trainable parameters. */
int fl_unit_backward(fl_model *m, const fl_unit *u, fl_acts *acts, const float *x, const float *dy, int B, int T);
/* Marks the unit's parameters trainable (all, or biases and norms only);
 * returns how many, or -1 with a message if none. Frozen elsewhere. */
int fl_unit_set_trainable(fl_model *m, const fl_unit *u, int bias_norm_only);
size_t fl_unit_param_bytes(fl_model *m, const fl_unit *u);
/* The loss over rows of width w and its gradient (dy may be NULL). */
double fl_recon_loss(fl_loss kind, const float *y, const float *t, int64_t rows, int w, float *dy);

/* The AdamW routine of matrix, sublayer, block and blocks:K (local.c). */
int fl_recover_adam(const fl_recover_job *j, fl_unit_report *rep);
/* Exact masked least squares for one linear (matrix-ls, ls.c). */
int fl_recover_ls(const fl_recover_job *j, fl_unit_report *rep);
/* Full retraining of every parameter, or of biases and norms only, on the
 * calibration windows' tokens [nwin*T] with next-token cross-entropy (or
 * the teacher's distribution with o->teacher): retrain:full and
 * retrain:bias-norm (retrain.c). */
int fl_retrain_full(fl_model *m, int bias_norm, const int32_t *tok, int nwin, int T, const fl_recon_opts *o,
                    fl_unit_report *rep);

/* ---- the retraining loop (retrain.c), shared by full retraining and the
 * adapters (lora.c), so every baseline sees the same batches in the same
 * order ------------------------------------------------------------------ */

/* Next-token targets of the windows (the last token of each has none: -1); malloc'd. */
int32_t *fl_retrain_targets(const int32_t *tok, int nwin, int T);
/* Mean cross-entropy of the model over the windows, batch by batch. */
double fl_retrain_mean_ce(fl_model *m, const int32_t *tok, const int32_t *tg, int nwin, int T, int batch);
/* --distill: the teacher's next-token probabilities for a batch, soft [B*T, V]. */
int fl_retrain_soft_targets(fl_model *teacher, const int32_t *tb, const int32_t *gb, int B, int T, float *soft);
/* The whole-model micro-batch over model/train.h's loop, which every
 * retraining baseline shares: `epochs` seeded shuffles of the windows (an
 * LCG stream of their own, fl_lcg31, kept so results stay comparable
 * across versions), batches of `batch`, next-token cross-entropy (or the
 * teacher's soft targets with o->teacher), backward over the whole model,
 * and step(ctx, accum) after every `accum` micro-batches (and after the
 * last). Stops with rep->diverged on a non-finite loss ("WHAT diverged at
 * step N"); sets rep->steps. Whatever it allocates is freed on return. */
int fl_retrain_loop(fl_model *m, const int32_t *tok, const int32_t *tg, int nwin, int T, int batch, int epochs, int accum,
                    const fl_recon_opts *o, const char *what, void (*step)(void *ctx, int accum), void *ctx,
                    fl_unit_report *rep);

/* ---- predicted memory --------------------------------------------------- */

/* What fl_recon_predict expects a cell to measure (harness/cell.c). */
typedef struct {
    size_t working_bytes;        /* fl_cell_result.working_bytes: the largest unit's parameters,
                                    gradients, optimiser state, activations saved over one batch and
                                    the temporaries of its routine */
    size_t peak_recover_bytes;   /* fl_cell_result.peak_recover_bytes: tracked peak of the recovery
                                    phase = a unit's working set + what the cell holds meanwhile
                                    (the model with its masks, the calibration streams, the unit's
                                    target, the dense model's copy in dense modes) */
    char unit[64];               /* the unit with the largest working set ("" for none) */
    uint64_t flops;              /* GEMM FLOPs of the pruning pass and recovery (the phases statistics,
                                    pruning and recovery; the criterion's own arithmetic and a
                                    --distill teacher are not counted) */
    size_t peak_prune_bytes;     /* tracked peak of the pruning pass (phases statistics and pruning):
                                    what the walk holds, the block's Gram matrices, one batch's forward
                                    and one linear's pruning temporaries (the criterion's own are not
                                    counted) */
} fl_recon_predict_out;

/* What a prediction is asked about: a cell of --reconstruct `reconstruct`
 * (NULL: none), --propagation (NULL: sparse), --prune-stream (NULL:
 * sparse), --trainable bias-norm when trainable_bias_norm, nwin
 * calibration windows of T tokens, --batch-size `batch` (<= 0: the
 * cell's default, 2) and --optimizer `optim` (its state: two moments for
 * AdamW, the default, one buffer for SGD). */
typedef struct {
    const char *reconstruct, *propagation, *prune_stream;
    int trainable_bias_norm, nwin, T, batch;
    int retrain_nwin;     /* --retrain-samples: the windows a model unit trains on
                             (its batch is min(batch, retrain_nwin)); 0: nwin */
    fl_optim optim;
    int epochs;           /* --epochs, for the FLOPs (<= 0: 1) */
    int prune_batch;      /* windows per forward of the pruning pass (fl_cell_cfg.batch; <= 0: 8) */
    int stream;           /* --stream: the model (and a dense copy) hold only the blocks of the unit
                             at hand, with their masks (checkpoint.h, fl_model_hold) */
    const fl_config *dense;   /* a structured cell (harness/structured.h): cfg is the smaller model
                                 (fl_struct_config), dense the one it was cut from, loaded beside it
                                 for the local units' targets; no masks, and the pruning pass is not
                                 predicted (peak_prune_bytes 0) */
} fl_recon_predict_args;

/* Counts both figures from the shapes alone (nothing is allocated or run)
int fl_recon_predict(const fl_config *cfg, const fl_recon_predict_args *a, fl_recon_predict_out *out);

#endif
 * for a cell of model cfg. Per-thread kernel scratch is counted for the
 * current OpenMP thread count. `none` gives 0 and 0 (no recovery phase).
 * Returns 0, or -1 with a message for a bad argument. --distill's teacher
 * is not counted. */
int fl_recon_predict(const fl_config *cfg, const fl_recon_predict_args *a, fl_recon_predict_out *out);

/* The tracked peaks of the phases after recovery, from the shapes alone:
 * evaluation (eval/ppl.c, batches of B windows of T tokens) and activation
 * drift (eval/drift.c, batches of B windows). */
size_t fl_pred_eval_bytes(const fl_config *c, int B, int T);
/* The same for a streamed model (eval/ppl.c, ppl_streamed): the model
 * without its blocks plus one block and its masks, every one of the nw
 * windows' tokens and hidden states, and one batch's forward. */
size_t fl_pred_eval_stream_bytes(const fl_config *c, int nw, int B, int T);
size_t fl_pred_drift_bytes(const fl_config *c, int B, int T);

#endif
