/* What the plots and the report share: a results.csv loaded for reading,
 * the fixed orders in which reconstructors, criteria and sparsities are
 * shown, the panels (one per model, sparsity and pattern: perplexities of
 * different sparsities are never pooled), and mean ± std over seeds. */
#ifndef FL_SUMMARY_H
#define FL_SUMMARY_H
#include "harness/results.h"

/* Reads CSV with fl_table_read and keeps its final rows (fl_row_final:
 * tuning sub-cells are dropped; the dense references are kept apart, after
 * them: t->nref rows from t->rows[t->nrows], see fl_sum_dense_row). Unlike fl_table_read, a missing file, and
 * a file without a single final row of status "ok", are errors (one line
 * naming CSV): there is nothing to plot or report. */
int fl_sum_load(const char *csv, fl_table *t);
/* Every value of a results.csv is untrusted text that ends up in gnuplot
 * scripts, Markdown and HTML: fl_sum_load passes each through this, which
 * leaves one line of well-formed UTF-8 without control characters or
 * backticks (replaced in place by ' ' and '?'). Ordinary values (numbers,
 * paths, "2:4", "retrain:lora") are unchanged. */
void fl_sum_clean(char *s);
/* Row r has status "ok". Every other status (error, diverged) is a failed
 * cell: skipped by the plots and the tables, listed by the report. */
int fl_sum_ok(const fl_table *t, int r);

/* Display orders. Reconstructors: none, matrix, matrix-ls, sublayer, block,
 * blocks:2, blocks:all, retrain:full, retrain:bias-norm, retrain:lora,
 * retrain:masklora, then any other alphabetically. Criteria: cheap to
 * expensive as in the paper, then others alphabetically. Sparsities and
 * other columns: numbers ascending, then strings (2:4) alphabetically. */
int fl_recon_cmp(const char *a, const char *b);
int fl_crit_cmp(const char *a, const char *b);
int fl_value_cmp(const char *a, const char *b);

typedef struct { int n; char **v; } fl_names;
/* Distinct non-empty values of COL over the ok rows (every row when
 * all_rows), in the display order of that column. */
void fl_names_of(const fl_table *t, const char *col, int all_rows, fl_names *out);
int fl_names_index(const fl_names *n, const char *v);
void fl_names_free(fl_names *n);

typedef struct {
    const char *model, *sparsity, *pattern;   /* point into the table */
    const char *structure;   /* "none" for weight pruning (and rows without the column): a
                                structure is never compared with another inside a panel */
    char label[512];   /* "sparsity 0.5", plus pattern, structure and model when those vary */
    char tag[96];      /* the same for file names: "s0.5", "s2-4", "s0.5_row_m1", "s0.25_heads" */
} fl_panel;
/* The panels present among the ok rows, in sparsity order; returns how
 * many (*out malloc'd, freed by the caller). */
int fl_panels(const fl_table *t, fl_panel **out);
/* Row r belongs to panel p (any panel when p is NULL). */
int fl_in_panel(const fl_table *t, int r, const fl_panel *p);

/* The dense reference (role dense) measured as a row with this model,
 * eval_set and eval_windows was (ok rows only): its row index among
 * t->rows[nrows .. nrows + nref), or -1. */
int fl_sum_dense_row(const fl_table *t, const char *model, const char *eval_set, const char *windows);
/* COL (ppl, ppl_sotu_test, ...) of the dense reference of panel p's rows
 * (as its first ok row was evaluated), or NAN without one. */
double fl_panel_dense(const fl_table *t, const fl_panel *p, const char *col);

typedef struct {
    double mean, std;   /* std: sample standard deviation (n-1); NAN when n < 2 */
    int n;              /* values pooled; mean NAN when 0 */
} fl_stat;
/* COL over the ok rows of panel p with this criterion and reconstructor
 * (NULL: any), skipping empty or non-numeric values. */
fl_stat fl_stat_of(const fl_table *t, const fl_panel *p, const char *crit, const char *recon, const char *col);
/* Row r is an ok row of panel p with this criterion and reconstructor
 * (NULL: any). */
int fl_row_matches(const fl_table *t, int r, const fl_panel *p, const char *crit, const char *recon);

#endif
