/* results.csv: the study's one tidy table, one row per grid cell, every
 * parameter and every metric a column (docs/ARCHITECTURE.md, "Formats"). Read and
 * written with libcsv; always written whole to a temporary file and renamed
 * (model/fileio.h), so a kill never leaves half a row.
 *
 * The columns are fixed, in the order of FL_RESULT_COLS (results.c), and
 * documented in README.md ("results.csv"); the settings columns are the
 * settings table's (harness/settings.c), checked by tests/test_study.c. A reader looks columns up by name, so new
 * columns may be appended later without breaking old readers; a file whose
 * header is not ours is refused with one line naming it, except that the
 * columns added later (prune_stream, optimizer, retrain_samples,
 * mask_sha256, recovery_tokens, role, lr_scale, drift_*: results.c's is_late) may be
 * missing from an older file: they load empty. */
#ifndef FL_RESULTS_H
#define FL_RESULTS_H
#include <stddef.h>

/* The profiler's phases, in column order: results.c expands it into each
 * phase's columns (P_wall_s, P_cpu_s, ...). */
#define FL_PHASES(X) X(calibration) X(statistics) X(pruning) X(recovery) X(evaluation) X(drift)

extern const char *const FL_RESULT_COLS[];
extern const int FL_RESULT_NCOLS;
/* Index of a column, or -1. */
int fl_result_col(const char *name);

typedef struct {
    int nrows, cap;
    char ***rows;   /* rows[r][c]: malloc'd strings, never NULL ("" when empty) */
    int nref;       /* plots/summary.c only: rows[nrows .. nrows + nref) are the
                       dense references, kept apart from the rows every table
                       and plot iterates (0 everywhere else) */
} fl_table;

/* Reads PATH. A missing file is an empty table (returns 0); a file with a
 * different header or a malformed row is an error (-1, message naming PATH).
 * A header that is ours without some late-added columns (prune_stream,
 * optimizer, retrain_samples, mask_sha256, recovery_tokens, role: results.c's
 * LATE_COLS) is an older file: it loads, those columns empty. */
int fl_table_read(const char *path, fl_table *t);
/* Writes the whole table atomically (PATH.tmp, fsync, rename). */
int fl_table_write(const char *path, const fl_table *t);
/* Appends an empty row; returns its index. */
int fl_table_add_row(fl_table *t);
const char *fl_table_get(const fl_table *t, int row, const char *col);
/* Column value as a number; NAN when empty or not a number. */
double fl_table_num(const fl_table *t, int row, const char *col);
void fl_table_set(fl_table *t, int row, const char *col, const char *val);
void fl_table_setf(fl_table *t, int row, const char *col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Row index of the cell with this cell_id, or -1. */
int fl_table_find(const fl_table *t, const char *cell_id);
void fl_table_free(fl_table *t);

/* Row r is a final row, a result of the study: its role is neither "tune"
 * (a tuning sub-cell, evaluated on the selection split only) nor "dense"
 * (the unpruned model's reference perplexities, cmd_study.c). The one
 * filter the Pareto fronts, the plots and the report read rows through. */
int fl_row_final(const fl_table *t, int r);

/* Recomputes every pareto_* column. Among the final rows with status "ok" and a
 * finite ppl, a row is on a front if no other row of its group is at least
 * as good on both axes and strictly better on one (lower is better on
 * both). Axes: (working_bytes, ppl) -> pareto_mem, (recovery_peak_bytes,
 * ppl) -> pareto_peak, (recovery_wall_s, ppl) -> pareto_time. Groups: the
 * same model, criterion and sparsity (columns pareto_*); the same model and
 * sparsity over every criterion (columns pareto_*_all). Comparing fronts
 * across sparsities would mix unlike models, so "overall" is per sparsity.
 * Values "1"/"0"; "" for rows that are not ok or not final. */
void fl_table_pareto(fl_table *t);

#endif
