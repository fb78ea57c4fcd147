/* The ladder: a results.csv with several models (rungs) read as trends
 * against model size (issue 14). For every (sparsity, pattern, structure) held by at
 * least two models whose rows carry model_nonemb_params, one fl_ladder: its
 * rungs in size order and, per rung,
 *   gap[g][w]  ppl(magnitude) - ppl(sparsegpt) (g 0) and ppl(wanda) -
 *              ppl(sparsegpt) (g 1), without reconstruction (w 0, reconstruct
 *              none) and with each criterion's best reconstructor at that
 *              rung (w 1, the lowest mean ppl but none), paired over seeds:
 *              mean and sample std of the per-seed differences
 *   rel[k]     reconstructor k's ppl relative to the rung's best: the mean
 *              over criteria of mean ppl(c, k) / min over reconstructors of
 *              mean ppl(c, .)
 *   drift[k]   drift_out (the accumulated drift at the last block) of
 *              reconstructor k, over criteria and seeds
 *   peak[k]    recovery_peak_bytes of reconstructor k
 * Rungs of the two training regimes never share a ladder: a model with
 * model_train_tokens / model_nonemb_params of FL_LADDER_TRAINED or more (as
 * real LLMs see) is in the "trained" ladder of its (sparsity, pattern,
 * structure), every other one (fewer tokens, or none recorded: a model
 * freelunch did not pretrain) in the other. tiny and tiny-long have one
 * size; a trend across them would be one of training, not of size.
 * The plots (plots.c, ladder_*) and the report's ladder section
 * (report.c) are both made from it. */
#ifndef FL_LADDER_H
#define FL_LADDER_H
#include "summary.h"

#define FL_LADDER_MAX_RUNGS 32
#define FL_LADDER_MAX_RECONS 32
/* tokens per non-embedding parameter from which a rung counts as trained
 * (issue 14: real LLMs see 20 to 2,000) */
#define FL_LADDER_TRAINED 20.0

typedef struct {
    const char *model;            /* points into the table */
    double nonemb, params;        /* model_nonemb_params, model_params */
    int layers;
    double train_tokens;          /* model_train_tokens; NAN when not recorded */
    fl_panel panel;               /* this rung's panel */
    fl_stat gap[2][2];
    const char *best[3];          /* the best reconstructor of magnitude, wanda, sparsegpt (w 1) */
    double rel[FL_LADDER_MAX_RECONS];
    fl_stat drift[FL_LADDER_MAX_RECONS], peak[FL_LADDER_MAX_RECONS];
    /* drift's spread within a criterion (the pooled sample std of each
     * value about its criterion's mean; NAN without two values of one
     * criterion) and its degrees of freedom (values - criteria): the
     * criteria differ in drift by design, so drift[].std, which pools them,
     * is not the seeds' noise a trend must clear */
    double drift_sw[FL_LADDER_MAX_RECONS];
    int drift_df[FL_LADDER_MAX_RECONS];
} fl_rung;

typedef struct {
    const char *sparsity, *pattern, *structure;   /* structure: "none" for weight pruning */
    int trained;                  /* the regime: 1 for rungs of FL_LADDER_TRAINED+ tokens per parameter */
    char label[256], tag[96];     /* "sparsity 0.5" / "s0.5" (plus pattern when not row, structure when not
                                   * none, and ", 20+ tokens per parameter" / "_t20" when trained) */
    int nr;
    int dropped;                  /* rungs beyond FL_LADDER_MAX_RUNGS, left out (the report says so) */
    fl_rung r[FL_LADDER_MAX_RUNGS];
} fl_ladder;

/* The ladders of T (*out malloc'd; NULL and 0 when there is none) and the
 * reconstructors their rel/drift/peak arrays are indexed by (*recons,
 * every reconstructor of the ok rows in display order, at most
 * FL_LADDER_MAX_RECONS). */
int fl_ladders(const fl_table *t, fl_ladder **out, fl_names *recons);
/* Least-squares slope of y against log10(x) (or x itself when !logx) over
 * the finite pairs; NAN with fewer than two. */
double fl_ladder_slope(const double *x, const double *y, int n, int logx);

#endif
