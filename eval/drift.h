/* Activation drift (the paper's claim 2: matrix-level reconstruction errors
 * accumulate along depth): a pruned (and recovered) model and its dense
 * original run on the same token windows, each on its own activations,
 * sublayer by sublayer, one batch of windows at a time (no window's
 * activations outlive its batch). For every block linear, in depth order
 * (fl_layer_linears order within a block), with x_p and x_d its input in the
 * pruned and the dense model:
 *
 *   accumulated = sum ||W_p x_p + b_p - (W_d x_d + b_d)||^2 / sum ||W_d x_d + b_d||^2
 *   local       = sum ||W_p x_p + b_p - (W_d x_p + b_d)||^2 / sum ||W_d x_p + b_d||^2
 *
 * (local: the pruned linear against the dense one on the pruned model's own
 * input, the matrix-level error; accumulated: what reaches the linear's
 * output through everything before it). At each block's output (the
 * residual stream after the block) the accumulated drift of the stream,
 * sum ||a_p - a_d||^2 / sum ||a_d||^2. Every sum runs over all windows and
 * tokens: ratios of sums, in double.
 *
 * Entries are in depth order with each block's output after its linears:
 * layers.0.q, layers.0.k, ..., layers.0.down, layers.0, layers.1.q, ...
 * Summaries: mean and max of the linears' accumulated drift, and `out`, the
 * drift of the last block's output (the residual stream before the final
 * norm). */
#ifndef FL_DRIFT_H
#define FL_DRIFT_H
#include "model/model.h"
#include <stdint.h>

/* The drift windows' seed: fixed, apart from a cell's seed, so every cell
 * of a grid (every seed of it too) measures drift on the same tokens. */
#define FL_DRIFT_SEED 0x64726966ull   /* "drif" */

typedef struct {
    char name[64];        /* "layers.3.q" (a linear) or "layers.3" (a block's output) */
    int block;            /* 1: a block's output; 0: a linear */
    double accumulated;
    double local;         /* a linear's; NAN for a block's output */
} fl_drift_entry;

typedef struct {
    int n;                /* entries: n_layer * (linears per block + 1); fewer for a structured model */
    fl_drift_entry *e;    /* malloc'd, depth order (above) */
    double mean, max;     /* over the linears' accumulated drift */
    double out;           /* the last block's output */
    int64_t tokens;       /* tokens summed over */
} fl_drift_result;

/* Runs both models on nwin windows of T tokens (tok [nwin*T]), `batch`
 * windows per forward pass (<= 0: 8). The models must have the same
 * architecture (the pruned one derived from the dense one). 0, or -1 with
 * fl_err. The result is empty (n = 0) when nwin is 0. */
int fl_drift_measure(fl_model *pruned, fl_model *dense, const int32_t *tok, int nwin, int T, int batch, fl_drift_result *out);
/* The same for a structurally pruned model (issue 15): block l of the
 * pruned model stands for dense blocks dense_block[l] to dense_block[l+1]
 * - 1 (the last to the dense model's last; dense_block[0] = 0), so a block
 * output is compared with the dense stream after the span it stands for,
 * and a linear with dense block dense_block[l]'s. Linears are compared
 * where their output kept its width (o and down always, q/k/v when only
 * channels went, ...), their local drift where their input did too (NaN
 * otherwise); linears whose output shrank are not listed. NULL: the
 * identity, with the shapes required equal (fl_drift_measure). */
int fl_drift_measure_mapped(fl_model *pruned, fl_model *dense, const int *dense_block, const int32_t *tok, int nwin, int T,
                            int batch, fl_drift_result *out);
void fl_drift_free(fl_drift_result *r);

#endif
