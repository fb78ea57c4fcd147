/* The study's plots, drawn by gnuplot from a results.csv. For every panel
 * (sparsity; see summary.h) the files OUT/plots/KIND_TAG.{dat,gp,png,svg}:
 *   mem_TAG    recovery working set (MB) against perplexity, every ok cell,
 *              one marker per reconstructor, the Pareto front (pareto_mem_all)
 *              as a step line
 *   peak_TAG   the same for the recovery-phase peak (pareto_peak_all)
 *   time_TAG   recovery seconds against perplexity (pareto_time_all)
 *   bars_TAG   perplexity, criterion x reconstructor, mean ± std over seeds
 *   depth_TAG_CRITERION  reconstruction loss per submodel along depth, before
 *              (dashed) and after (solid), mean over seeds
 *   drift_TAG_CRITERION  accumulated activation drift of every block linear
 *              in depth order (results.csv drift_accumulated), one line per
 *              reconstructor, mean over seeds; log y where it spans 10x
 * The .dat (tab-separated) and .gp files stay beside the images, so a reader
 * can edit a script and re-run `gnuplot NAME.gp` in that directory. */
#ifndef FL_PLOTS_H
#define FL_PLOTS_H
#include "harness/results.h"

typedef struct {
    char name[128];      /* file name without extension, in OUT/plots */
    char title[1024];    /* what it shows, for captions */
} fl_plot;
typedef struct { int n, cap; fl_plot *v; } fl_plot_list;

/* Reads RESULTS_CSV (see fl_sum_load for what is refused) and writes every
 * plot into OUT_DIR/plots. 0, or -1 with one message line. */
int fl_plots_make(const char *results_csv, const char *out_dir);

/* The same from a loaded table; *made (may be NULL) receives the plots in
 * the order a reader should see them. Everything is drawn in a staging
 * directory first and moved into OUT_DIR/plots only when gnuplot succeeded
 * for every script, so a failure leaves earlier plots as they were. */
int fl_plots_build(const fl_table *t, const char *out_dir, fl_plot_list *made);
/* fl_plots_build without gnuplot: only the .dat and .gp files, what the
 * tests and the fuzzer check the scripts on without drawing. */
int fl_plots_scripts(const fl_table *t, const char *out_dir, fl_plot_list *made);
void fl_plot_list_free(fl_plot_list *l);

#endif
