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
#include "model/model.h"

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

/* ---- structured pruning (issue 15) --------------------------------------
 *
 * --structure heads|channels|layers removes whole structures instead of
 * single weights, and --sparsity is then the fraction of structures
 * removed: of attention heads (whole key/value groups: with GQA a group's
 * query heads go with its key/value head, so the result is still a valid
 * model), of MLP intermediate channels, or of blocks. Width criteria score
 * each structure of one block (score_width); every block then loses the
 * same count, the lowest-scored (uniform ratios). Depth criteria choose the
 * blocks (select_depth). harness/structured.c collects the statistics,
 * calls them and builds the smaller model. */
typedef enum { FL_STRUCT_NONE = 0, FL_STRUCT_HEADS, FL_STRUCT_CHANNELS, FL_STRUCT_LAYERS } fl_structure;
#define FL_STRUCT_BIT(s) (1u << (s))
/* "none" | "heads" | "channels" | "layers"; -1 with the valid list. */
int fl_structure_parse(const char *s, fl_structure *out);
const char *fl_structure_name(fl_structure s);

/* Per-channel first and second moments of an input X[N, cols] over the
 * calibration tokens: sum[j] = sum_n X[n,j], sumsq[j] = sum_n X[n,j]^2. */
typedef struct {
    int cols;
    int64_t n;
    double *sum, *sumsq;
} fl_chan_stats;
int fl_chan_stats_init(fl_chan_stats *s, int cols);
void fl_chan_stats_add(fl_chan_stats *s, const float *X, int N);
void fl_chan_stats_free(fl_chan_stats *s);
/* Mean and (population) variance of channel j. */
double fl_chan_mean(const fl_chan_stats *s, int j);
double fl_chan_var(const fl_chan_stats *s, int j);

/* Structures of one block: heads = key/value groups (n_kv_head of them,
 * each n_head/n_kv_head query heads), channels = d_ff; layers = n_layer. */
int fl_structure_count(const fl_config *c, fl_structure s);
/* How many of n structures a fraction removes: floor(frac*n + 1/2). -1
 * with one message when that is none or every structure (or frac is not
 * in [0,1)). */
int fl_structure_removed(int n, double frac, fl_structure s, int *k);
/* keep[i] = 0 for the k lowest scores, 1 otherwise; of equal scores the
 * higher index goes first, so selections are deterministic. */
void fl_structure_keep_lowest(const double *score, int n, int k, uint8_t *keep);
/* The global version (FLAP's adaptive ratio): score[L*n], block by block;
 * keep[L*n] = 0 for the k lowest over all blocks, lowest first, except that
 * a block never loses its last structure (the next lowest elsewhere goes
 * instead); ties as above, over the flat index. -1 with a message when k
 * exceeds L*(n-1) or out of memory. */
int fl_structure_keep_lowest_global(const double *score, int L, int n, int k, uint8_t *keep);

typedef struct fl_width_job {
    const void *priv;
    fl_structure kind;           /* FL_STRUCT_HEADS or FL_STRUCT_CHANNELS */
    const fl_config *cfg;
    const fl_layer *y;           /* the block's tensors (dense) */
    const fl_chan_stats *proj;   /* input of the output projection: o (heads) or fc2/down (channels) */
    const fl_chan_stats *in;     /* the normed input of q/k/v (heads) or fc1/gate/up (channels) */
    int n;                       /* structures of the block */
    double *score;               /* out [n]: the higher, the more important */
} fl_width_job;

/* The output projection a width structure feeds (o for heads, fc2/down for
 * channels) and how many of its input columns one structure owns
 * (structure s owns columns [s*per, (s+1)*per)). */
const fl_param *fl_width_proj(const fl_config *c, const fl_layer *y, fl_structure kind, int *per);

typedef struct fl_depth_job {
    const void *priv;
    int L, k;                    /* blocks, how many to remove */
    int64_t N;                   /* calibration tokens */
    int d;
    const float *const *H;       /* H[l], l = 0..L: the input of block l ([N, d]; H[L] the last block's output) */
    /* Mean next-token NLL on the calibration windows of the dense model
     * without the blocks where removed[l] = 1. */
    int (*loss_without)(void *ctx, const uint8_t *removed, double *loss);
    void *ctx;
    int verbose;
    uint8_t *removed;            /* out [L]: exactly k ones */
} fl_depth_job;

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
    /* Structured criteria (issue 15; prune is NULL for them): the
     * structures they can remove (a bitmask of 1 << fl_structure), and one
     * of the two functions below, width or depth. */
    unsigned structures;
    int (*score_width)(struct fl_width_job *job);
    int (*select_depth)(struct fl_depth_job *job);
    /* FLAP: the removed structures' mean contribution is folded into the
     * bias of the projection they fed (harness/structured.c does it) */
    int bias_compensation;
    /* Optional (width criteria): 1 when, with these options, the scores
     * are comparable across blocks (FLAP's global adaptive ratio:
     * standardised per block) and the lowest of the whole model are
     * removed, every block keeping at least one; NULL or 0: every block
     * loses the same count. */
    int (*global_ratio)(const void *priv);
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
