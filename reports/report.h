/* The study's report: OUT/report.md and a self-contained OUT/report.html
 * (every plot embedded as a data: URI, no file beside it needed), made from
 * a results.csv. Sections: the set-up (model, tokenizer, data, calibration,
 * machine, commit, cell counts), perplexity tables (per sparsity:
 * reconstructor x criterion, mean ± std over seeds), memory and time per
 * reconstructor, the plots (plots/plots.h, rebuilt here), the verdicts on
 * the paper's claims computed from the numbers (each rule stated in the
 * report), and every failed cell with its message. */
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
