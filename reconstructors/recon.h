/* Reconstructors as plug-ins: recovery after pruning. Like the criteria, a
 * reconstructor is a const struct (name, one-line description, granularity,
 * routine) in a file of its own (none.c, matrix.c, matrix_ls.c, sublayer.c,
 * block.c, blocks.c, retrain.c), listed in FL_RECONSTRUCTORS
 * (reconstructors/registry.c). Routines several share live beside them:
 * local.c (AdamW on a unit), ls.c (least squares), lora.c (adapters);
 * options.c parses the propagation modes and losses.
 *
 * The cell (harness/cell.c) cuts the decoder into units of the
 * reconstructor's granularity and, for each unit, hands the routine the
 * unit, its inputs X and targets Y over all calibration windows (already
 * chosen by the propagation mode, design.md step 4a); the routine trains the
 * unit's trainable parameters so that unit(X) approaches Y. Pruned weights
 * stay exactly zero (masks). */
#ifndef FL_RECON_H
#define FL_RECON_H
#include "model/model.h"
#include <stddef.h>

typedef enum {
    FL_GRAN_NONE = 0,   /* no recovery; units are blocks (the Wanda/SparseGPT pass) */
    FL_GRAN_MATRIX,     /* every linear alone */
    FL_GRAN_SUBLAYER,   /* attention and MLP parts apart (the paper's "1/2") */
    FL_GRAN_BLOCKS,     /* K consecutive blocks (block = 1) */
    FL_GRAN_RETRAIN     /* prune everything, then train the whole model */
} fl_gran;

typedef enum { FL_PROP_SPARSE = 0, FL_PROP_DENSE, FL_PROP_DENSE_TARGET } fl_prop;
typedef enum { FL_LOSS_MSE = 0, FL_LOSS_NMSE, FL_LOSS_COSINE } fl_loss;

/* A unit: a range of sublayers, or one linear. */
typedef struct {
    int is_linear;
    fl_range r;           /* ranges */
    fl_param *w, *b;      /* a linear: weight and bias (b may be NULL) */
    int in_w, out_w;      /* widths of X and Y rows */
    char name[64];
} fl_unit;

typedef struct {
    float lr, weight_decay;
    int epochs, batch, grad_accum;
    fl_loss loss;
    int bias_norm_only;   /* --trainable bias-norm */
    uint64_t seed;
    int progress;
    float ls_damp;        /* matrix-ls: dampening, fraction of mean diag (default 0.01) */
    fl_model *teacher;    /* retraining with --distill: the dense model, whose
                             next-token distribution replaces the hard targets */
} fl_recon_opts;

typedef struct {
    char name[64];
    double loss_before, loss_after;
    int steps;
    double seconds;
    size_t working_bytes;  /* parameters of the unit + everything allocated while recovering it */
    size_t peak_bytes;     /* tracked peak while recovering it (streams included) */
    int diverged;
} fl_unit_report;

typedef struct fl_reconstructor {
    const char *name, *desc;
    fl_gran gran;
    /* Argument after a colon ("blocks:2", "retrain:lora"); NULL = none allowed. */
    int (*check_arg)(const char *arg);
    /* Units of FL_GRAN_BLOCKS (and of the block-by-block pruning pass of
     * none and retrain): blocks per unit from the arg; NULL = one block. */
    int (*blocks_per_unit)(const char *arg, int n_layer);
    /* Recover one unit from X -> Y over n rows of T tokens... NULL = none. */
    int (*recover)(fl_model *m, const fl_unit *u, const float *X, const float *Y, int nwin, int T,
                   const fl_recon_opts *o, fl_unit_report *rep);
    /* FL_GRAN_RETRAIN: after every block is pruned, train the whole model on
     * the calibration windows' tokens [nwin*T]; one report. NULL otherwise. */
    int (*retrain)(fl_model *m, const char *arg, const int32_t *tok, int nwin, int T, const fl_recon_opts *o,
                   fl_unit_report *rep);
} fl_reconstructor;

extern const fl_reconstructor *const FL_RECONSTRUCTORS[];
int fl_recon_find(const char *spec, const fl_reconstructor **out, const char **arg);
int fl_prop_parse(const char *s, fl_prop *out);
int fl_loss_parse(const char *s, fl_loss *out);
const char *fl_prop_name(fl_prop p);
const char *fl_loss_name(fl_loss l);
const char *fl_gran_name(fl_gran g);

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

/* The AdamW routine shared by matrix, sublayer, block(s). */
int fl_recover_adam(fl_model *m, const fl_unit *u, const float *X, const float *Y, int nwin, int T,
                    const fl_recon_opts *o, fl_unit_report *rep);
/* Retraining baselines (retrain:full, retrain:bias-norm; lora and masklora
 * through lora.c) on the calibration windows' tokens [nwin*T], next-token
 * cross-entropy: the retrain entry's routine. */
int fl_retrain(fl_model *m, const char *arg, const int32_t *tok, int nwin, int T, const fl_recon_opts *o,
               fl_unit_report *rep);
int fl_retrain_check_arg(const char *arg);
/* Pieces of the retraining loop shared by fl_retrain and fl_retrain_lora,
 * so both see the same batches in the same order. */
/* Next-token targets of the windows (the last token of each has none: -1); malloc'd. */
int32_t *fl_retrain_targets(const int32_t *tok, int nwin, int T);
/* Mean cross-entropy of the model over the windows, batch by batch. */
double fl_retrain_mean_ce(fl_model *m, const int32_t *tok, const int32_t *tg, int nwin, int T, int batch);
/* One epoch's seeded Fisher-Yates shuffle of perm[n], advancing *rs. */
void fl_retrain_shuffle(int *perm, int n, uint64_t *rs);
/* Copies the windows perm[w0 .. w0+batch) (fewer at the end) into tb, gb;
 * returns how many. */
int fl_retrain_batch(const int32_t *tok, const int32_t *tg, const int *perm, int nwin, int T, int w0, int batch,
                     int32_t *tb, int32_t *gb);
/* --distill: the teacher's next-token probabilities for a batch, soft [B*T, V]. */
int fl_retrain_soft_targets(fl_model *teacher, const int32_t *tb, const int32_t *gb, int B, int T, float *soft);
/* The training loop every retraining baseline shares: `epochs` seeded
 * shuffles of the windows, batches of `batch`, next-token cross-entropy (or
 * the teacher's soft targets with o->teacher), backward over the whole
 * model, and step(ctx, accum) after every `accum` micro-batches (and after
 * the last). Stops with rep->diverged on a non-finite loss ("WHAT diverged
 * at step N"); sets rep->steps. Whatever it allocates is freed on return. */
int fl_retrain_loop(fl_model *m, const int32_t *tok, const int32_t *tg, int nwin, int T, int batch, int epochs, int accum,
                    int steps, const fl_recon_opts *o, const char *what, void (*step)(void *ctx, int accum), void *ctx,
                    fl_unit_report *rep);
/* Exact masked least squares for one linear (matrix-ls). */
int fl_recover_ls(fl_model *m, const fl_unit *u, const float *X, const float *Y, int nwin, int T,
                  const fl_recon_opts *o, fl_unit_report *rep);

/* ---- predicted memory --------------------------------------------------- */

/* What fl_recon_predict expects a cell to measure (harness/cell.c). */
typedef struct {
    size_t working_bytes;        /* fl_cell_result.working_bytes: the largest unit's parameters,
                                    gradients, Adam moments, activations saved over one batch and
                                    the temporaries of its routine */
    size_t peak_recover_bytes;   /* fl_cell_result.peak_recover_bytes: tracked peak of the recovery
                                    phase = a unit's working set + what the cell holds meanwhile
                                    (the model with its masks, the calibration streams, the unit's
                                    target, the dense model's copy in dense modes) */
    char unit[64];               /* the unit with the largest working set ("" for none) */
} fl_recon_predict_out;

/* Counts both figures from the shapes alone (nothing is allocated or run)
 * for a cell of model cfg with --reconstruct `reconstruct`, --propagation
 * `propagation` (NULL: sparse), --trainable bias-norm when
 * trainable_bias_norm, nwin calibration windows of T tokens and
 * --batch-size `batch` (<= 0: the cell's default, 2). Per-thread kernel
 * scratch is counted for the current OpenMP thread count. `none` gives 0
 * and 0 (no recovery phase). Returns 0, or -1 with a message for a bad
 * argument or a reconstructor it cannot predict (retrain:lora and
 * retrain:masklora, for now). --distill's teacher is not counted. */
int fl_recon_predict(const fl_config *cfg, const char *reconstruct, const char *propagation, int trainable_bias_norm,
                     int nwin, int T, int batch, fl_recon_predict_out *out);

#endif
