/* Internals of the two Gram-matrix mask optimisers, sparseswaps.c and
 * sparsefw.c, exposed for the tests (tests/test_swaps_fw.c) and benchmarks.
 * The criteria themselves are reached through the registry
 * (fl_crit_sparseswaps, fl_crit_sparsefw); nothing else should need this.
 *
 * Notation, for one output row w[d] with mask m (1 = keep) and the Gram
 * matrix G = X^T X [d, d] of its inputs:
 *   r = w o (1 - m)      the pruned part of the row,
 *   E(m) = r^T G r       the row's pruning error, = ||X w - X (w o m)||^2,
 * and the layer error ||X W^T - X W'^T||_F^2 is the sum of E over rows. */
#ifndef FL_SWAPS_FW_H
#define FL_SWAPS_FW_H
#include "criteria/criterion.h"
#include <stddef.h>
#include <stdint.h>

/* E(m) = r^T G r computed from scratch in double. */
double fl_row_error(const float *w, const float *G, int d, const uint8_t *mask);
/* The layer error sum_rows E = ||X W^T - X W'^T||^2, through one float GEMM
 * (so to about 1e-6 relative). */
double fl_layer_error(const float *W, int rows, int d, const float *G, const uint8_t *mask);

/* Top-k selection: rearranges a[0..n) so that a[0..k) holds the k entries
 * ranked highest (larger v first, ties to the lower i), in no particular
 * order. Average O(n), deterministic. */
typedef struct { double v; int64_t i; } fl_kv;
void fl_kv_top(fl_kv *a, int64_t n, int64_t k);

/* The warm start of both criteria, the first member of their options
 * struct: the spec their "warm" option (FL_OPT_SPEC) writes, and the
 * criterion opened from it once per instance. */
typedef struct {
    char spec[FL_OPT_STRLEN];
    fl_crit_inst inst;
} fl_warm;

/* Opens w->spec for the criterion `who`, the message saying it was the
 * warm start that failed. */
int fl_warm_open(const char *who, fl_warm *w);
/* The .uninit of both criteria: closes the warm start (priv starts with it). */
void fl_warm_uninit(void *priv);
/* Runs the opened warm start on j, quietly and on a copy of j->W in tmp
 * (rows * cols floats, left holding that copy) so that W stays as it is;
 * writes j->mask. On failure the message says it was the warm start of
 * `who` that failed. */
int fl_warm_run(const char *who, const fl_warm *w, const fl_prune_job *j, float *tmp);

/* ---- SparseSwaps ------------------------------------------------------- */

typedef struct {
    int budget;   /* most swaps applied to the row; 0 = no limit (until 1-swap optimal) */
    int cand;     /* K > 0: first look for the best swap among the pairs whose p is one of the K
                     cheapest kept weights to prune (smallest a_p) or whose u is one of the K best
                     pruned weights to restore (smallest b_u), O(K d); only when that finds
                     nothing, search all pairs exactly. 0: exact search every swap. */
    int group;    /* 0: any kept/pruned pair of the row; M > 0: pairs inside one group of M
                     consecutive columns only (N:M patterns; always searched exactly). */
} fl_swaps_opts;

/* Per-row workspace, in bytes, for fl_swaps_row on rows of width d. */
size_t fl_swaps_work_bytes(int d);

/* Refines one row's mask in place by best-improvement 1-swaps (prune one kept
 * weight, restore one pruned weight; the kept count and every group's count
 * stay as they are). c0 = G r for the starting mask (float, e.g. from one
 * GEMM over all rows) or NULL to compute it here in double; gdiag[j] = G_jj
 * (a copy: the diagonal of a large G is one cache miss per entry). err (if
 * not NULL) gets E at the start and at the end (tracked through the swaps,
 * from c). If trace is not NULL, trace[0] = E at the start and trace[i] = E
 * after swap i, for i < trace_cap. *optimal (if not NULL) is set to 1 when the search ended
 * because no 1-swap improves E, 0 when the budget ran out. Returns the number
 * of swaps applied. work: fl_swaps_work_bytes(d) bytes, 16-byte aligned. */
int fl_swaps_row(const float *w, const float *G, const float *gdiag, int d, uint8_t *mask,
                 const float *c0, const fl_swaps_opts *o, double err[2], double *trace,
                 int trace_cap, int *optimal, void *work);

/* ---- SparseFW ---------------------------------------------------------- */

typedef struct {
    int iters;        /* Frank-Wolfe iterations */
    double alpha;     /* fraction of the warm start's kept weights fixed to 1, in [0, 1) */
    int verbose;
} fl_fw_opts;

typedef struct {
    double *trace;    /* [iters+1] relaxed objective sum_i r_i^T G r_i: trace[0] at the warm
                         start, trace[t] after iteration t; may be NULL */
    double *gap;      /* [iters] Frank-Wolfe gap <-grad, s_t - m_t> (>= 0) of iteration t; may be NULL */
    double warm_err;  /* out: layer error of the warm-start mask */
    double final_err; /* out: layer error of the rounded mask */
} fl_fw_report;

/* Runs SparseFW on W [rows, cols] with Gram matrix G [cols, cols] under pat,
 * from the warm-start mask in `mask` (which must conform to pat); writes the
 * rounded mask back into `mask`. 0, or -1 with a message. */
int fl_sparsefw_run(const float *W, int rows, int cols, const float *G, const fl_pattern *pat,
                    uint8_t *mask, const fl_fw_opts *o, fl_fw_report *rep);

#endif
