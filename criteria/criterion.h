/* Pruning criteria as plug-ins (FFmpeg-registry style): a criterion is a
 * const struct with a name, a one-line description, the calibration
 * statistics it needs, its option table, and one function that, given a
 * weight matrix, its statistics and a sparsity pattern, sets the mask
 * (1 = keep) and may update the kept weights (SparseGPT does). All of them
 * are listed in one table, FL_CRITERIA, in criteria/registry.c. Adding a
 * criterion = one file + one line there. */
#ifndef FL_CRITERION_H
#define FL_CRITERION_H
#include <stddef.h>
#include <stdint.h>
#include "model/opts.h"

/* ---- sparsity patterns ------------------------------------------------- */

typedef enum {
    FL_PAT_ROW = 0,   /* unstructured, each output row loses the same fraction (Wanda's default) */
    FL_PAT_MATRIX,    /* unstructured over the whole matrix */
    FL_PAT_NM         /* N:M along the input dimension */
} fl_pat_kind;

/* N:M follows the usual convention: in every group of M consecutive weights
 * of a row (along the input dimension), at most N are NON-ZERO, i.e. M-N are
 * pruned; 2:4 = 50% sparsity. */
typedef struct {
    fl_pat_kind kind;
    double sparsity;  /* fraction pruned; for N:M it is (M-N)/M */
    int n, m;
} fl_pattern;

/* "0.5" with kind "row"|"matrix", or "2:4" (kind ignored). Errors list what
 * is valid: sparsity in (0,1), N < M, M dividing `cols` (checked later by
 * fl_pattern_check with the real width). */
int fl_pattern_parse(const char *sparsity, const char *kind, fl_pattern *out);
int fl_pattern_check(const fl_pattern *p, int rows, int cols, const char *what);
/* How many weights of a row / of the matrix the pattern prunes. */
int64_t fl_pattern_row_pruned(const fl_pattern *p, int cols);
/* Exact check of a mask against the pattern; 0 if it conforms, else -1 with
 * a message. */
int fl_mask_check(const uint8_t *mask, int rows, int cols, const fl_pattern *p, const char *what);
double fl_mask_sparsity(const uint8_t *mask, int64_t n);

/* Keep the highest scores under the pattern (prune the lowest): per row,
 * over the whole matrix, or in each group of M. Ties go to the lower index
 * being kept, so masks are deterministic. scores[rows*cols]. */
void fl_mask_from_scores(const float *scores, int rows, int cols, const fl_pattern *p, uint8_t *mask);

/* ---- calibration statistics ------------------------------------------- */

typedef enum { FL_STATS_NONE = 0, FL_STATS_NORMS = 1, FL_STATS_GRAM = 2 } fl_stats_kind;

/* Statistics of the inputs X[N, cols] a linear sees on the calibration set:
 * sqnorm[j] = sum_n X[n,j]^2 (Wanda, RIA), gram = X^T X [cols, cols]
 * (SparseGPT, SparseSwaps, SparseFW), both summed (not averaged) over all
 * rows seen; nsamples = N seen. With FL_STATS_GRAM, sqnorm is filled too. */
typedef struct {
    fl_stats_kind kind;
    int cols;
    double *sqnorm;   /* [cols] */
    float *gram;      /* [cols*cols], tracked allocation */
    int64_t nsamples;
} fl_stats;

int fl_stats_init(fl_stats *s, fl_stats_kind kind, int cols);
void fl_stats_add(fl_stats *s, const float *X, int N);
void fl_stats_free(fl_stats *s);

/* ---- criteria ----------------------------------------------------------- */

typedef struct {
    const void *priv;       /* the criterion's parsed options (set by fl_criterion_run), or NULL */
    float *W;               /* [rows, cols], row-major (torch nn.Linear [out, in]); may be updated */
    int rows, cols;
    const fl_stats *st;     /* NULL when the criterion needs none */
    fl_pattern pat;
    uint8_t *mask;          /* out: [rows*cols], 1 = keep */
    uint64_t seed;
    int verbose;
} fl_prune_job;

/* A criterion is a complete plug-in: its options are a table (model/opts.h)
 * parsed once per cell into a private struct of priv_size bytes, which
 * init may then validate further or complete (SparseSwaps opens its warm
 * start there, with the warm start's own options); prune reads it from
 * job->priv for every linear. Generic code never looks inside. */
typedef struct fl_criterion {
    const char *name;
    const char *desc;       /* one line, for `freelunch list` */
    fl_stats_kind stats;    /* what it needs collected (see stats_for) */
    const fl_option *options;   /* NULL: takes none */
    size_t priv_size;           /* bytes of the private struct the options go into (0: none) */
    /* Optional: after the options are parsed; -1 with a message. */
    int (*init)(void *priv);
    /* Optional: releases what init acquired (called only after init succeeded). */
    void (*uninit)(void *priv);
    /* Optional: the statistics needed given the options; NULL = .stats */
    fl_stats_kind (*stats_for)(const void *priv);
    /* Set job->mask under job->pat; may update job->W (kept entries only:
     * pruned entries are zeroed by the caller). 0 or -1 with a message. */
    int (*prune)(fl_prune_job *job);
} fl_criterion;

extern const fl_criterion *const FL_CRITERIA[];   /* NULL-terminated */

/* An opened criterion: the descriptor and its parsed options. */
typedef struct {
    const fl_criterion *crit;
    void *priv;             /* calloc'd priv_size bytes (NULL if 0) */
} fl_crit_inst;

/* Looks up the name of "name" or "name:options" (no options parsed); NULL
 * with a message that lists every criterion when there is none. *text (if
 * not NULL) gets the text after the first colon, or NULL. */
const fl_criterion *fl_criterion_find(const char *spec, const char **text);
/* Finds the criterion, parses its options (named "alpha=1,iters=5" or
 * legacy positional "1:5", see model/opts.h) and runs its init: once per
 * cell. 0, or -1 with one message line (and *out cleared). */
int fl_criterion_open(const char *spec, fl_crit_inst *out);
/* Undoes fl_criterion_open; harmless on a cleared or closed instance. */
void fl_criterion_close(fl_crit_inst *ci);
fl_stats_kind fl_criterion_stats(const fl_crit_inst *ci);
/* Sets job->priv from ci, runs the criterion, then zeroes pruned weights
 * and checks the mask against the pattern exactly. */
int fl_criterion_run(const fl_crit_inst *ci, fl_prune_job *job);

#endif
