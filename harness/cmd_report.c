/* freelunch plot / freelunch report: rebuild the plots, or the report (and
 * its plots), from an existing results.csv. */
#include "cli.h"
#include "plots/plots.h"
#include "reports/report.h"
#include <libgen.h>
#include <stdlib.h>
#include <string.h>

static const char *PLOT_HELP =
    "usage: freelunch plot --results FILE.csv [--out DIR]\n"
    "Draws the study's plots with gnuplot into DIR/plots (PNG and SVG, with the\n"
    "tab-separated .dat and the .gp script of each, to re-draw by hand): per\n"
    "sparsity, recovery working set, recovery peak and recovery time against\n"
    "perplexity with the Pareto front, perplexity bars (criterion x reconstructor,\n"
    "mean ± std over seeds), and reconstruction loss along depth. Failed cells are\n"
    "skipped.\n"
    "  --results FILE   a results.csv written by freelunch study\n"
    "  --out DIR        output directory (default: the directory of FILE)\n" FL_COMMON_HELP;

static const char *REPORT_HELP =
    "usage: freelunch report --results FILE.csv [--out DIR]\n"
    "Writes DIR/report.md and a self-contained DIR/report.html (plots embedded):\n"
    "a summary (the dense model's perplexity and one verdict per claim of the\n"
    "paper), the set-up with the settings of each reconstructor, one section per\n"
    "claim (reconstruction vs retraining, granularity, criteria) with its rule and\n"
    "tables of paired comparisons over seeds (mean difference ± 95% Student-t\n"
    "half-width), perplexity tables per sparsity, memory and time per\n"
    "reconstructor, the plots (redrawn into DIR/plots) and every failed cell.\n"
    "  --results FILE   a results.csv written by freelunch study\n"
    "  --out DIR        output directory (default: the directory of FILE)\n" FL_COMMON_HELP;

/* Both commands take the same options; only what they make differs. */
static int run(int argc, char **argv, const char *cmd, const char *help, int (*make)(const char *, const char *)) {
    static struct option o[] = { { "results", required_argument, 0, 'r' }, { "out", required_argument, 0, 'o' },
                                 FL_COMMON_OPTS, { 0, 0, 0, 0 } };
    const char *csv = NULL, *out = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        if (c == 'r') csv = optarg;
        else if (c == 'o') out = optarg;
        else if (c == 'h') { fputs(help, stdout); return 0; }
        else if (!fl_cli_common_opt(c, cmd)) return fl_cli_usage(cmd, "unknown option");
    }
    if (optind < argc) return fl_cli_usage(cmd, "unexpected argument");
    if (!csv) return fl_cli_usage(cmd, "--results FILE.csv is required");
    char *copy = strdup(csv);
    if (!out) out = dirname(copy);
    int rc = make(csv, out);
    if (rc == 0) {
        if (!strcmp(cmd, "plot")) printf("plots in %s/plots\n", out);
        else printf("report in %s/report.md and %s/report.html, plots in %s/plots\n", out, out, out);
    }
    free(copy);
    return rc == 0 ? 0 : fl_cli_fail();
}

int fl_cmd_plot(int argc, char **argv) { return run(argc, argv, "plot", PLOT_HELP, fl_plots_make); }
int fl_cmd_report(int argc, char **argv) { return run(argc, argv, "report", REPORT_HELP, fl_report_make); }
