/* The study's report: OUT/report.md and a self-contained OUT/report.html
 * (every plot embedded as a data: URI, no file beside it needed), made from
 * a results.csv. Sections: a summary (the dense model's recorded perplexity
 * and the three claims' verdicts, one sentence each), the set-up (model,
 * tokenizer, data, calibration, machine, commit, cell counts, the grid and
 * the settings of each reconstructor), how configurations are compared
 * (paired over seeds, reports/paired.h), one section per claim of the paper
 * with its rule and the tables its verdict is computed from (claim 1: the
 * best local reconstructor against each retraining baseline, with recovery
 * token and FLOP ratios; claim 2: granularity among the units that hold a
 * nonlinearity, matrix against the best of them, memory and drift; claim 3:
 * the gaps between the best criterion and wanda, magnitude without and with
 * reconstruction), perplexity tables (per sparsity: reconstructor x
 * criterion, mean ± 95% half-width over seeds), memory and time per
 * reconstructor, the plots (plots/plots.h, rebuilt here) and every failed
 * cell with its message. README "The report" states the rules. */
#ifndef FL_REPORT_H
#define FL_REPORT_H
#include "harness/results.h"

/* 0, or -1 with one message line naming the file at fault. Both files are
 * written whole (temporary file and rename) only after the plots succeeded. */
int fl_report_make(const char *results_csv, const char *out_dir);

/* The same from a table loaded with fl_sum_load (RESULTS_CSV only names it in
 * the text). With DRAW 0 gnuplot is never run: the plots are their .dat and
 * .gp files only and the HTML has their captions without images; the tests
 * and the fuzzer check the documents and scripts that way. */
int fl_report_build(const fl_table *t, const char *results_csv, const char *out_dir, int draw);

#endif
