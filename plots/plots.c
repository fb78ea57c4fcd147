/* Plots with gnuplot; see plots.h. Each plot is a tab-separated .dat file
 * and a .gp script written by this file, then `gnuplot NAME.gp` run in the
 * plots directory: the script draws the PNG (pngcairo) and the SVG. */
#include "plots.h"
#include "sbuf.h"
#include "summary.h"
#include "ladder.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "model/fileio.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    const fl_table *t;
    char stage[4200];      /* where everything is drawn first */
    char dir[4200];        /* OUT/plots */
    fl_names recons;       /* every reconstructor: its index picks colour and marker */
    char ppl_label[300];
    int draw;              /* 0: write the scripts and data only, never run gnuplot */
    fl_plot_list *made;
} ctx;

/* A colour and a marker per reconstructor, the same in every plot. */
static const char *const COLOURS[] = { "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                       "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939" };
static const int MARKERS[] = { 7, 5, 9, 11, 13, 6, 4, 8, 10, 12, 1, 2, 3 };
#define NCOLOURS ((int)(sizeof COLOURS / sizeof *COLOURS))
#define NMARKERS ((int)(sizeof MARKERS / sizeof *MARKERS))

static const char *colour(const ctx *c, const char *recon) {
    int i = fl_names_index(&c->recons, recon);
    return COLOURS[(i < 0 ? 0 : i) % NCOLOURS];
}
static int marker(const ctx *c, const char *recon) {
    int i = fl_names_index(&c->recons, recon);
    return MARKERS[(i < 0 ? 0 : i) % NMARKERS];
}

/* Text from results.csv is untrusted and a .gp script is a program: a
 * newline in a value would end the string and the line, and gnuplot would run
 * the rest (`system(...)` included); a trailing backslash continues even a
 * comment line. So whatever of a value reaches a script or its data (titles,
 * comments, key entries, tic labels) is reduced to printable ASCII without
 * quotes, backslash, backtick, '$' or '@', plus well-formed UTF-8 from
 * U+00A0 up; every other byte becomes '?'. Nothing of it can end a string, a
 * line or a data field (tab), or be substituted. */
static void gp_text(fl_sbuf *b, const char *s) {
    while (*s) {
        unsigned char c = (unsigned char)*s;
        int n = fl_utf8_len(s);
        if (n > 1 && !(c == 0xc2 && (unsigned char)s[1] < 0xa0)) { fl_sb_putn(b, s, (size_t)n); s += n; continue; }
        int ok = n == 1 && c >= 0x20 && c < 0x7f && !strchr("'\"\\`$@", c);
        fl_sb_putn(b, ok ? s : "?", 1);
        s += n > 1 ? n : 1;
    }
}

/* A gnuplot string literal of untrusted text: single quotes around gp_text,
 * which leaves no quote to double. */
static void gp_str(fl_sbuf *b, const char *s) {
    fl_sb_puts(b, "'");
    gp_text(b, s);
    fl_sb_puts(b, "'");
}

/* Log scale where values span more than `ratio`; never with values <= 0,
 * which a log axis cannot show (e.g. the zero working set of `none`). */
static int want_log(double lo, double hi, double ratio) { return lo > 0 && isfinite(hi) && hi / lo >= ratio; }

static void gp_begin(fl_sbuf *g, const char *name, const char *title, const char *xlabel, int logx, const char *ylabel,
                     int logy) {
    fl_sb_puts(g, "# freelunch: ");
    gp_text(g, title);
    fl_sb_printf(g, "\n# Re-draw with `gnuplot %s.gp` in this directory.\n", name);
    fl_sb_printf(g, "set terminal pngcairo size 1000,650 noenhanced font 'sans,11'\nset output '%s.png'\n", name);
    fl_sb_puts(g, "set datafile separator '\\t'\nset grid\nset key outside right top box opaque\nset title ");
    gp_str(g, title);
    fl_sb_printf(g, "\nset xlabel ");
    gp_str(g, xlabel);
    if (logx) fl_sb_puts(g, " . ' (log scale)'");
    fl_sb_printf(g, "\nset ylabel ");
    gp_str(g, ylabel);
    if (logy) fl_sb_puts(g, " . ' (log scale)'");
    fl_sb_puts(g, "\n");
    if (logx) fl_sb_puts(g, "set logscale x\nset format x \"%g\"\n");
    if (logy) fl_sb_puts(g, "set logscale y\nset format y \"%g\"\n");
}

static void gp_end(fl_sbuf *g, const char *name) {
    fl_sb_printf(g, "\nset terminal svg size 1000,650 noenhanced font 'sans,11' background rgb 'white'\n"
                    "set output '%s.svg'\nreplot\n", name);
}

/* ---- running gnuplot ------------------------------------------------------ */

static void stage_path(char *out, size_t n, const ctx *c, const char *name, const char *ext) {
    snprintf(out, n, "%.4000s/%.150s.%s", c->stage, name, ext);
}

static int run_gnuplot(ctx *c, const char *name) {
    char script[300], log[4300];
    snprintf(script, sizeof script, "%.150s.gp", name);
    stage_path(log, sizeof log, c, name, "log");
    pid_t pid = fork();
    if (pid < 0) return fl_err("%s/%s: cannot start gnuplot: %s", c->dir, script, strerror(errno));
    if (pid == 0) {
        /* relative file names in the script: it runs where it lies */
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || chdir(c->stage) != 0) _exit(126);
        dup2(fd, 1);
        dup2(fd, 2);
        execlp("gnuplot", "gnuplot", script, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return fl_err("%s/%s: waiting for gnuplot: %s", c->dir, script, strerror(errno));
    char why[600];
    fl_last_line(log, why, sizeof why);
    unlink(log);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127)
        return fl_err("%s/%s: gnuplot not found on PATH (Debian package gnuplot-nox)", c->dir, script);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return fl_err("%s/%s: gnuplot failed (%s %d)%s%s", c->dir, script, WIFEXITED(st) ? "exit" : "signal",
                      WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), why[0] ? ": " : "", why);
    for (int k = 0; k < 2; k++) {
        char img[4300];
        struct stat sb;
        stage_path(img, sizeof img, c, name, k ? "svg" : "png");
        if (stat(img, &sb) != 0 || sb.st_size == 0)
            return fl_err("%s/%s: gnuplot wrote no %s%s%s", c->dir, script, k ? "SVG" : "PNG", why[0] ? ": " : "", why);
    }
    return 0;
}

/* Moves NAME.ext from the staging directory into OUT/plots. */
static int move_out(const ctx *c, const char *name, const char *ext) {
    char from[4300], to[4400];
    stage_path(from, sizeof from, c, name, ext);
    snprintf(to, sizeof to, "%.4000s/%.150s.%s", c->dir, name, ext);
    if (rename(from, to) != 0) return fl_err("%s: cannot move into place: %s", to, strerror(errno));
    return 0;
}

/* Writes NAME.dat and NAME.gp into the stage and draws them. On failure the
 * script and its data are moved into OUT/plots, so that the error names a
 * file the reader can open and run. */
static int emit(ctx *c, const char *name, const char *title, const fl_sbuf *dat, const fl_sbuf *gp) {
    char path[4300];
    /* two plots of one name would overwrite each other in the stage */
    for (int i = 0; i < c->made->n; i++)
        if (!strcmp(c->made->v[i].name, name)) return fl_err("%s/%s.gp: two plots of this name", c->dir, name);
    stage_path(path, sizeof path, c, name, "dat");
    if (fl_write_file_atomic(path, fl_sb_str(dat), dat->len) != 0) return -1;
    stage_path(path, sizeof path, c, name, "gp");
    if (fl_write_file_atomic(path, fl_sb_str(gp), gp->len) != 0) return -1;
    if (c->draw && run_gnuplot(c, name) != 0) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", fl_errmsg());
        if (mkdir(c->dir, 0755) == 0 || errno == EEXIST) { move_out(c, name, "gp"); move_out(c, name, "dat"); }
        return fl_err("%s", msg);
    }
    fl_plot_list *l = c->made;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = realloc(l->v, sizeof(fl_plot) * (size_t)l->cap);
    }
    fl_plot *p = &l->v[l->n++];
    snprintf(p->name, sizeof p->name, "%s", name);
    snprintf(p->title, sizeof p->title, "%s", title);
    return 0;
}

/* ---- memory / time against perplexity ------------------------------------- */

typedef struct { double x, y; } pt;
/* The dense model's perplexity on the panel's evaluation windows as a
 * dashed horizontal line (issue 19: every perplexity plot carries the
 * reference), appended to a plot command; the y range widened to hold it.
 * Its title is a number we print, never text from the results. */
static void dense_line(fl_sbuf *plot, const fl_table *t, const fl_panel *p, double *ylo, double *yhi) {
    double dn = fl_panel_dense(t, p, "ppl");
    if (!isfinite(dn) || dn <= 0) return;
    fl_sb_printf(plot, ", \\\n    %.9g with lines dt 2 lw 2 lc rgb '#444444' title 'dense model (%.2f)'", dn, dn);
    *ylo = fmin(*ylo, dn);
    *yhi = fmax(*yhi, dn);
}

static int by_x(const void *a, const void *b) {
    const pt *p = a, *q = b;
    return p->x != q->x ? (p->x < q->x ? -1 : 1) : (p->y < q->y ? -1 : p->y > q->y);
}

/* Every ok cell of the panel at (xcol * scale, ppl), one block (gnuplot
 * `index`) per reconstructor, then the cells flagged on the front. */
static int scatter(ctx *c, const fl_panel *p, const char *kind, const char *xcol, double scale, const char *flag,
                   const char *xlabel, const char *what) {
    const fl_table *t = c->t;
    fl_sbuf dat = { 0 }, gp = { 0 }, plot = { 0 };
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    int blocks = 0;
    for (int k = 0; k < c->recons.n; k++) {
        const char *rec = c->recons.v[k];
        int n = 0;
        for (int r = 0; r < t->nrows; r++) {
            double x = fl_table_num(t, r, xcol) * scale, y = fl_table_num(t, r, "ppl");
            if (!fl_row_matches(t, r, p, NULL, rec) || !isfinite(x) || !isfinite(y)) continue;
            if (!n++) {
                /* the block's header line carries the key entry (title
                 * columnheader), so the name is data, never script text */
                fl_sb_puts(&dat, "# one reconstructor: x, ppl (header: its name), criterion, seed\nx\t");
                gp_text(&dat, rec);
                fl_sb_puts(&dat, "\tcriterion\tseed\n");
            }
            fl_sb_printf(&dat, "%.9g\t%.9g\t", x, y);
            gp_text(&dat, fl_table_get(t, r, "criterion"));
            fl_sb_puts(&dat, "\t");
            gp_text(&dat, fl_table_get(t, r, "seed"));
            fl_sb_puts(&dat, "\n");
            xlo = fmin(xlo, x); xhi = fmax(xhi, x); ylo = fmin(ylo, y); yhi = fmax(yhi, y);
        }
        if (!n) continue;
        fl_sb_puts(&dat, "\n\n");
        fl_sb_printf(&plot, "%s '%s_%s.dat' index %d using 1:2 with points pt %d ps 1.4 lc rgb '%s' title columnheader(2)",
                     blocks ? ", \\\n    " : "plot", kind, p->tag, blocks, marker(c, rec), colour(c, rec));
        blocks++;
    }
    if (!blocks) { fl_sb_free(&dat); fl_sb_free(&gp); fl_sb_free(&plot); return 0; }   /* no finite x: nothing to draw */
    pt *front = malloc(sizeof(pt) * (size_t)t->nrows);
    int nf = 0;
    for (int r = 0; r < t->nrows; r++) {
        double x = fl_table_num(t, r, xcol) * scale, y = fl_table_num(t, r, "ppl");
        if (fl_row_matches(t, r, p, NULL, NULL) && !strcmp(fl_table_get(t, r, flag), "1") && isfinite(x) && isfinite(y))
            front[nf++] = (pt){ x, y };
    }
    if (nf) {
        /* sorted by x, a front's ppl falls: `steps` draws the staircase
         * (best ppl reachable within each budget) */
        qsort(front, (size_t)nf, sizeof *front, by_x);
        fl_sb_printf(&dat, "# Pareto front (%s = 1): x, ppl\nx\tPareto front\n", flag);
        for (int i = 0; i < nf; i++) fl_sb_printf(&dat, "%.9g\t%.9g\n", front[i].x, front[i].y);
        fl_sb_printf(&plot, ", \\\n    '%s_%s.dat' index %d using 1:2 with steps lw 2 lc rgb 'black' title columnheader(2)",
                     kind, p->tag, blocks);
    }
    free(front);
    dense_line(&plot, t, p, &ylo, &yhi);
    char name[128], title[1024];
    snprintf(name, sizeof name, "%s_%s", kind, p->tag);
    fl_bprintf(title, sizeof title, 0, "%s against perplexity, %s (every ok cell; all criteria)", what, p->label);
    gp_begin(&gp, name, title, xlabel, want_log(xlo, xhi, 30), c->ppl_label, want_log(ylo, yhi, 5));
    fl_sb_puts(&gp, "set offsets graph 0.04, graph 0.04, graph 0.05, graph 0.05\n");   /* markers off the border */
    fl_sb_puts(&gp, fl_sb_str(&plot));
    gp_end(&gp, name);
    int rc = emit(c, name, title, &dat, &gp);
    fl_sb_free(&dat); fl_sb_free(&gp); fl_sb_free(&plot);
    return rc;
}

/* ---- perplexity bars ----------------------------------------------------------- */

/* One group of bars per criterion, one bar per reconstructor: the mean over
 * seeds, the error bar ± the sample std (none drawn with one seed). */
static int bars(ctx *c, const fl_panel *p) {
    const fl_table *t = c->t;
    fl_names crits, recs;
    fl_names_of(t, "criterion", 0, &crits);
    fl_names_of(t, "reconstruct", 0, &recs);
    fl_sbuf dat = { 0 }, gp = { 0 }, plot = { 0 };
    int used[256] = { 0 }, nused = 0;   /* reconstructors with a value in this panel */
    for (int k = 0; k < recs.n && nused < 256; k++)
        if (fl_stat_of(t, p, NULL, recs.v[k], "ppl").n) used[nused++] = k;
    double lo = INFINITY, hi = -INFINITY;
    /* the header line names the reconstructors: the key reads them from
     * here (title columnheader), so no name is script text */
    fl_sb_puts(&dat, "# criterion, then per reconstructor the mean and std of ppl\ncriterion");
    for (int j = 0; j < nused; j++) {
        fl_sb_puts(&dat, "\t");
        gp_text(&dat, recs.v[used[j]]);
        fl_sb_puts(&dat, "\tstd");
    }
    fl_sb_puts(&dat, "\n");
    for (int i = 0; i < crits.n; i++) {
        if (!fl_stat_of(t, p, crits.v[i], NULL, "ppl").n) continue;
        gp_text(&dat, crits.v[i]);   /* column 1: the tic label */
        for (int j = 0; j < nused; j++) {
            fl_stat s = fl_stat_of(t, p, crits.v[i], recs.v[used[j]], "ppl");
            if (s.n) { lo = fmin(lo, s.mean); hi = fmax(hi, s.mean); }
            fl_sb_printf(&dat, "\t%.9g\t%.9g", s.mean, s.n > 1 ? s.std : 0.0);
        }
        fl_sb_puts(&dat, "\n");
    }
    dense_line(&plot, t, p, &lo, &hi);
    char name[128], title[1024];
    snprintf(name, sizeof name, "bars_%s", p->tag);
    fl_bprintf(title, sizeof title, 0, "Perplexity by criterion and reconstructor, %s (mean over seeds, error bar ± std)", p->label);
    int logy = want_log(lo, hi, 10);
    gp_begin(&gp, name, title, "pruning criterion", 0, c->ppl_label, logy);
    fl_sb_puts(&gp, "set style data histogram\nset style histogram errorbars gap 1 lw 1\n"
                    "set style fill solid 0.85 border -1\nset xtics nomirror\n");
    if (!logy) {
        /* Perplexities of one sparsity differ by a few percent: bars from 0
         * would hide every difference, so the axis starts half the spread of
         * the means below the lowest one (the title says where). */
        double span = hi > lo ? hi - lo : fabs(hi) * 0.05 + 1e-9, y0 = lo - 0.5 * span;
        if (y0 < 0) y0 = 0;
        fl_sb_printf(&gp, "set yrange [%.9g:*]\nset label 1 'y axis starts at %.4g' at graph 0.01, graph 0.97 left\n", y0, y0);
    }
    for (int j = 0; j < nused; j++) {
        fl_sb_printf(&gp, "%s '%s.dat' using %d:%d%s lc rgb '%s' title columnheader(%d)", j ? ", \\\n    " : "plot", name,
                     2 + 2 * j, 3 + 2 * j, j ? "" : ":xtic(1)", colour(c, recs.v[used[j]]), 2 + 2 * j);
    }
    fl_sb_puts(&gp, fl_sb_str(&plot));
    gp_end(&gp, name);
    int rc = emit(c, name, title, &dat, &gp);
    fl_sb_free(&dat); fl_sb_free(&gp); fl_sb_free(&plot);
    fl_names_free(&crits);
    fl_names_free(&recs);
    return rc;
}

/* ---- reconstruction loss along depth --------------------------------------------- */

/* Parses a ';'-separated list of numbers; returns how many (at most cap). */
static int parse_list(const char *s, double *out, int cap) {
    int n = 0;
    while (*s && n < cap) {
        char *end;
        double v = strtod(s, &end);
        out[n++] = end == s ? NAN : v;
        s = strchr(s, ';');
        if (!s) break;
        s++;
    }
    return n;
}

static int count_items(const char *s) {
    if (!*s) return 0;
    int n = 1;
    for (; *s; s++) n += *s == ';';
    return n;
}

#define MAX_UNITS 4096

/* The ';'-lists cols[0..ncols) of the ok rows of (panel, criterion,
 * reconstructor), summed element by element into sums[c] (MAX_UNITS each,
 * zeroed here) over the rows whose names_col list is as long as the first
 * such row's and whose every list parses to that length (seeds of one cell
 * share their units). Returns the rows summed; *n their length, *first the
 * first of them. */
static int sum_lists(const fl_table *t, const fl_panel *p, const char *crit, const char *rec, const char *names_col,
                     const char *const *cols, int ncols, double **sums, int *n, int *first) {
    double *v = malloc(sizeof(double) * MAX_UNITS * (size_t)ncols);
    int rows = 0;
    *n = 0;
    *first = -1;
    for (int c = 0; c < ncols; c++) for (int u = 0; u < MAX_UNITS; u++) sums[c][u] = 0;
    for (int r = 0; r < t->nrows; r++) {
        if (!fl_row_matches(t, r, p, crit, rec)) continue;
        int m = count_items(fl_table_get(t, r, names_col)), ok = m > 0 && m <= MAX_UNITS && (!*n || m == *n);
        for (int c = 0; c < ncols && ok; c++) ok = parse_list(fl_table_get(t, r, cols[c]), v + c * MAX_UNITS, MAX_UNITS) == m;
        if (!ok) continue;
        for (int c = 0; c < ncols; c++) for (int u = 0; u < m; u++) sums[c][u] += v[c * MAX_UNITS + u];
        *n = m;
        rows++;
        if (*first < 0) *first = r;
    }
    free(v);
    return rows;
}

/* KIND_TAG_CRITERION: the file name of a plot per (panel, criterion). */
static void crit_plot_name(char *name, size_t n, const char *kind, const fl_panel *p, const char *crit, int icrit) {
    char csafe[64];
    snprintf(csafe, sizeof csafe, "%s", crit);
    for (char *q = csafe; *q; q++) if (!((*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') || *q == '.')) *q = '-';
    /* a criterion the file name cannot spell as it is ("Wanda", "a b") gets
     * its number too: two such could map to one name */
    snprintf(name, n, "%s_%.60s_%.40s", kind, p->tag, csafe);
    if (strcmp(csafe, crit)) snprintf(name + strlen(name), n - strlen(name), "_c%d", icrit + 1);
}

/* Units are placed at the depth where they end: unit i of n at (i+1)/n of
 * the decoder, in blocks when config.json tells how many there are. Units of
 * different reconstructors (6 matrices, 2 sublayers or 1 block per block)
 * then line up. Retraining is left out: its one "unit" is the whole model and
 * its loss is the LM's cross-entropy, not a submodel's reconstruction loss. */
static int depth(ctx *c, const fl_panel *p, const char *crit, int icrit, int n_layer) {
    const fl_table *t = c->t;
    fl_sbuf dat = { 0 }, gp = { 0 };
    double *before = calloc(MAX_UNITS, sizeof(double)), *after = calloc(MAX_UNITS, sizeof(double));
    double lo = INFINITY, hi = -INFINITY;
    int blocks = 0;
    char name[128], title[1024];
    crit_plot_name(name, sizeof name, "depth", p, crit, icrit);
    for (int k = 0; k < c->recons.n; k++) {
        const char *rec = c->recons.v[k];
        if (!strncmp(rec, "retrain:", 8)) continue;
        static const char *const cols[] = { "unit_loss_before", "unit_loss_after" };
        double *sums[] = { before, after };
        int n, first, rows = sum_lists(t, p, crit, rec, "unit_names", cols, 2, sums, &n, &first);
        if (!rows) continue;
        /* header line: the name in the column the key entry reads */
        fl_sb_printf(&dat, "# one reconstructor, mean over %d seed%s: depth, loss before, loss after (header: its name), unit\n"
                           "depth\tbefore\t", rows, rows > 1 ? "s" : "");
        gp_text(&dat, rec);
        fl_sb_puts(&dat, "\tunit\n");
        const char *names = fl_table_get(t, first, "unit_names");
        for (int u = 0; u < n; u++) {
            double b = before[u] / rows, a = after[u] / rows;
            size_t len = strcspn(names, ";");
            char *unit = strndup(names, len);
            fl_sb_printf(&dat, "%.6g\t%.9g\t%.9g\t", (u + 1.0) / n * (n_layer > 0 ? n_layer : 1), b, a);
            gp_text(&dat, unit);
            fl_sb_puts(&dat, "\n");
            free(unit);
            names += len + (names[len] == ';');
            if (isfinite(b)) { lo = fmin(lo, b); hi = fmax(hi, b); }
            if (isfinite(a)) { lo = fmin(lo, a); hi = fmax(hi, a); }
        }
        fl_sb_puts(&dat, "\n\n");
        if (!blocks) {
            fl_bprintf(title, sizeof title, 0, "Reconstruction loss per submodel along depth, %s, %s (mean over seeds)", crit, p->label);
            gp_begin(&gp, name, title, n_layer > 0 ? "depth: decoder blocks up to the end of the submodel" : "depth: fraction of the decoder up to the end of the submodel",
                     0, "reconstruction loss of the submodel", 0);
            fl_sb_printf(&gp, "set key title 'solid: after, dashed: before'\n");
        }
        fl_sb_printf(&gp, "%s '%s.dat' index %d using 1:3 with linespoints lw 2 pt %d lc rgb '%s' title columnheader(3)",
                     blocks ? ", \\\n    " : "plot", name, blocks, marker(c, rec), colour(c, rec));
        fl_sb_printf(&gp, ", \\\n    '%s.dat' index %d using 1:2 with lines dt 2 lw 1 lc rgb '%s' notitle", name, blocks, colour(c, rec));
        blocks++;
    }
    int rc = 0;
    if (blocks) {
        /* losses fall by orders of magnitude along depth and with
         * reconstruction; the axis is set once every value is known */
        if (want_log(lo, hi, 10)) {
            char *plot = strstr(gp.s, "\nplot ");
            fl_sbuf g2 = { 0 };
            fl_sb_putn(&g2, gp.s, (size_t)(plot - gp.s));
            fl_sb_puts(&g2, "\nset logscale y\nset format y \"%g\"\nset ylabel 'reconstruction loss of the submodel (log scale)'");
            fl_sb_puts(&g2, plot);
            fl_sb_free(&gp);
            gp = g2;
        }
        gp_end(&gp, name);
        rc = emit(c, name, title, &dat, &gp);
    }
    free(before); free(after);
    fl_sb_free(&dat); fl_sb_free(&gp);
    return rc;
}

/* ---- activation drift along depth ------------------------------------------------ */

/* The block a linear's name "layers.L.x" is in, or -1. */
static int name_layer(const char *s, size_t len) {
    if (len < 8 || strncmp(s, "layers.", 7)) return -1;
    char *end;
    long l = strtol(s + 7, &end, 10);
    return end > s + 7 && end < s + len && *end == '.' && l >= 0 && l < 1000000 ? (int)l : -1;
}

/* Each linear's accumulated drift (results.csv drift_accumulated, from
 * freelunch.json's drift array without the block outputs) at its place in
 * depth order, one line per reconstructor, mean over seeds; tics at the
 * first linear of each block. Retraining is drawn too: drift is measured on
 * every cell's final model. */
static int drift(ctx *c, const fl_panel *p, const char *crit, int icrit) {
    const fl_table *t = c->t;
    fl_sbuf dat = { 0 }, gp = { 0 }, plot = { 0 }, tics = { 0 };
    double *sum = malloc(MAX_UNITS * sizeof(double));
    double lo = INFINITY, hi = -INFINITY;
    int blocks = 0;
    char name[128], title[1024];
    crit_plot_name(name, sizeof name, "drift", p, crit, icrit);
    for (int k = 0; k < c->recons.n; k++) {
        const char *rec = c->recons.v[k];
        static const char *const cols[] = { "drift_accumulated" };
        int n, first, rows = sum_lists(t, p, crit, rec, "drift_names", cols, 1, &sum, &n, &first);
        if (!rows) continue;
        fl_sb_printf(&dat, "# one reconstructor, mean over %d seed%s: linear in depth order, accumulated drift (header: its name), linear\n"
                           "index\t", rows, rows > 1 ? "s" : "");
        gp_text(&dat, rec);
        fl_sb_puts(&dat, "\tlinear\n");
        const char *names = fl_table_get(t, first, "drift_names");
        int prev = -1;
        for (int u = 0; u < n; u++) {
            double a = sum[u] / rows;
            size_t len = strcspn(names, ";");
            int l = name_layer(names, len);
            if (!blocks && l >= 0 && l != prev) fl_sb_printf(&tics, "%s'block %d' %d", tics.len ? ", " : "", l, u + 1);
            prev = l;
            fl_sb_printf(&dat, "%d\t%.9g\t", u + 1, a);
            char *lin = strndup(names, len);
            gp_text(&dat, lin);
            free(lin);
            fl_sb_puts(&dat, "\n");
            names += len + (names[len] == ';');
            if (isfinite(a) && a > 0) { lo = fmin(lo, a); hi = fmax(hi, a); }
        }
        fl_sb_puts(&dat, "\n\n");
        fl_sb_printf(&plot, "%s '%s.dat' index %d using 1:2 with linespoints lw 2 pt %d lc rgb '%s' title columnheader(2)",
                     blocks ? ", \\\n    " : "plot", name, blocks, marker(c, rec), colour(c, rec));
        blocks++;
    }
    int rc = 0;
    if (blocks) {
        fl_bprintf(title, sizeof title, 0, "Accumulated activation drift along depth, %s, %s (mean over seeds)", crit, p->label);
        /* drift grows by orders of magnitude along depth: log where it spans 10x */
        gp_begin(&gp, name, title, "block linears in depth order (q, k, v, o, MLP per block)", 0,
                 "accumulated drift sum|y_p - y_d|^2 / sum|y_d|^2", want_log(lo, hi, 10));
        if (tics.len) fl_sb_printf(&gp, "set xtics (%s)\n", fl_sb_str(&tics));
        fl_sb_puts(&gp, fl_sb_str(&plot));
        gp_end(&gp, name);
        rc = emit(c, name, title, &dat, &gp);
    }
    free(sum);
    fl_sb_free(&dat); fl_sb_free(&gp); fl_sb_free(&plot); fl_sb_free(&tics);
    return rc;
}

/* ---- the whole set ------------------------------------------------------------ */

static void rm_stage(const char *stage) {
    DIR *d = opendir(stage);
    if (d) {
        struct dirent *e;
        char path[4400];
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                snprintf(path, sizeof path, "%.4000s/%.255s", stage, e->d_name);
                unlink(path);
            }
        closedir(d);
    }
    rmdir(stage);
}

/* ---- the ladder: trends against model size (ladder.h) ---------------------- */

static void put_num(fl_sbuf *b, double v) {
    if (isfinite(v)) fl_sb_printf(b, "\t%.9g", v);
    else fl_sb_puts(b, "\tNaN");   /* gnuplot skips the point */
}

/* One series per column pair (mean, std) from column 3 on, x in column 1
 * (non-embedding parameters) or 2 (layers). */
static void series(fl_sbuf *g, const char *name, int xcol, int k, const char *title, const char *col, int pt, int first) {
    fl_sb_printf(g, "%s'%s.dat' using %d:%d:%d with yerrorlines lw 2 pt %d ps 1.4 lc rgb '%s' title ", first ? "plot " : ", \\\n     ",
                 name, xcol, 3 + 2 * k, 4 + 2 * k, pt, col);
    gp_str(g, title);
}

static int ladder_gap(ctx *c, const fl_ladder *L) {
    char name[128], title[512];
    snprintf(name, sizeof name, "ladder_gap_%s", L->tag);
    snprintf(title, sizeof title, "Criterion gap against model size, %s (mean +- std over seeds)", L->label);
    fl_sbuf dat = { 0 }, g = { 0 };
    fl_sb_puts(&dat, "# nonemb_params\tlayers\tmag_none\tstd\twanda_none\tstd\tmag_best\tstd\twanda_best\tstd\n");
    for (int i = 0; i < L->nr; i++) {
        const fl_rung *r = &L->r[i];
        fl_sb_printf(&dat, "%.9g\t%d", r->nonemb, r->layers);
        for (int w = 0; w < 2; w++)
            for (int k = 0; k < 2; k++) { put_num(&dat, r->gap[k][w].mean); put_num(&dat, r->gap[k][w].n > 1 ? r->gap[k][w].std : 0); }
        fl_sb_puts(&dat, "\n");
    }
    gp_begin(&g, name, title, "non-embedding parameters", 1, "ppl(criterion) - ppl(sparsegpt)", 0);
    fl_sb_puts(&g, "set xzeroaxis lt -1\n");
    static const char *const T[4] = { "magnitude - sparsegpt, no reconstruction", "wanda - sparsegpt, no reconstruction",
                                      "magnitude - sparsegpt, best reconstruction", "wanda - sparsegpt, best reconstruction" };
    static const char *const C[4] = { "#d62728", "#1f77b4", "#ff9896", "#aec7e8" };
    /* A gap needs its criterion and sparsegpt in the grid: a series with no
     * value at any rung gets no line (gnuplot refuses a plot of nothing but
     * undefined points), and a ladder with no gap at all gets no plot. */
    int any = 0;
    for (int k = 0; k < 4; k++) {
        int has = 0;
        for (int i = 0; i < L->nr && !has; i++) has = isfinite(L->r[i].gap[k % 2][k / 2].mean);
        if (!has) continue;
        series(&g, name, 1, k, T[k], C[k], k < 2 ? 7 : 5, !any);
        any = 1;
    }
    if (!any) { fl_sb_free(&dat); fl_sb_free(&g); return 0; }
    gp_end(&g, name);
    int rc = emit(c, name, title, &dat, &g);
    fl_sb_free(&dat);
    fl_sb_free(&g);
    return rc;
}

/* rel, drift or peak per reconstructor: WHAT 0, 1, 2 */
static int ladder_recon(ctx *c, const fl_ladder *L, const fl_names *recons, int what) {
    static const char *const KIND[3] = { "rel", "drift", "peak" };
    char name[128], title[512];
    snprintf(name, sizeof name, "ladder_%s_%s", KIND[what], L->tag);
    if (what == 0) snprintf(title, sizeof title, "Each reconstructor's ppl relative to the rung's best against model size, %s", L->label);
    else if (what == 1) snprintf(title, sizeof title, "Drift at the last block against depth, %s (mean +- std)", L->label);
    else snprintf(title, sizeof title, "Recovery peak memory per reconstructor against model size, %s (measured)", L->label);
    fl_sbuf dat = { 0 }, g = { 0 };
    int nk = recons->n < FL_LADDER_MAX_RECONS ? recons->n : FL_LADDER_MAX_RECONS, any = 0;
    double lo = INFINITY, hi = -INFINITY;
    fl_sb_puts(&dat, "# nonemb_params\tlayers\tthen mean, std per reconstructor in the plot's order\n");
    for (int i = 0; i < L->nr; i++) {
        const fl_rung *r = &L->r[i];
        fl_sb_printf(&dat, "%.9g\t%d", r->nonemb, r->layers);
        for (int k = 0; k < nk; k++) {
            fl_stat s = what == 1 ? r->drift[k] : what == 2 ? r->peak[k] : (fl_stat){ r->rel[k], 0, 1 };
            double sc = what == 2 ? 1e-6 : 1;
            put_num(&dat, s.mean * sc);
            put_num(&dat, s.n > 1 && isfinite(s.std) ? s.std * sc : 0);
            if (isfinite(s.mean) && s.mean > 0) { lo = fmin(lo, s.mean * sc); hi = fmax(hi, s.mean * sc); }
        }
        fl_sb_puts(&dat, "\n");
    }
    const char *yl = what == 0 ? "ppl / best ppl at the rung" : what == 1 ? "drift_out (accumulated drift at the last block)"
                                                                        : "recovery peak (MB = 10^6 bytes)";
    gp_begin(&g, name, title, what == 1 ? "layers" : "non-embedding parameters", what != 1, yl, what && want_log(lo, hi, 10));
    for (int k = 0; k < nk; k++) {
        /* a reconstructor with no value anywhere (none has no drift change, no recovery peak) gets no line */
        int has = 0;
        for (int i = 0; i < L->nr && !has; i++) {
            fl_stat s = what == 1 ? L->r[i].drift[k] : what == 2 ? L->r[i].peak[k] : (fl_stat){ L->r[i].rel[k], 0, 1 };
            has = isfinite(s.mean) && (what != 2 || s.mean > 0);
        }
        if (!has) continue;
        series(&g, name, what == 1 ? 2 : 1, k, recons->v[k], colour(c, recons->v[k]), marker(c, recons->v[k]), !any);
        any = 1;
    }
    if (!any) { fl_sb_free(&dat); fl_sb_free(&g); return 0; }
    gp_end(&g, name);
    int rc = emit(c, name, title, &dat, &g);
    fl_sb_free(&dat);
    fl_sb_free(&g);
    return rc;
}

static int ladder_plots(ctx *c) {
    fl_ladder *ls;
    fl_names recons;
    int nl = fl_ladders(c->t, &ls, &recons), rc = 0;
    for (int l = 0; l < nl && !rc; l++) {
        rc = ladder_gap(c, &ls[l]);
        for (int w = 0; w < 3 && !rc; w++) rc = ladder_recon(c, &ls[l], &recons, w);
    }
    free(ls);
    fl_names_free(&recons);
    return rc;
}

static int build_all(ctx *c) {
    fl_panel *ps;
    int np = fl_panels(c->t, &ps), rc = 0;
    fl_names crits;
    fl_names_of(c->t, "criterion", 0, &crits);
    for (int i = 0; i < np && !rc; i++) rc = bars(c, &ps[i]);
    for (int i = 0; i < np && !rc; i++) {
        rc = scatter(c, &ps[i], "mem", "working_bytes", 1e-6, "pareto_mem_all", "recovery working set (MB = 10^6 bytes)",
                     "Recovery working set");
        if (!rc) rc = scatter(c, &ps[i], "peak", "recovery_peak_bytes", 1e-6, "pareto_peak_all",
                              "recovery-phase peak memory (MB = 10^6 bytes)", "Recovery peak memory");
        if (!rc) rc = scatter(c, &ps[i], "time", "recovery_wall_s", 1, "pareto_time_all", "recovery wall time (s)",
                              "Recovery time");
    }
    for (int i = 0; i < np && !rc; i++) {
        fl_config cfg;
        int L = fl_config_load(&cfg, ps[i].model) == 0 ? cfg.n_layer : 0;
        fl_err_clear();   /* a model directory not found here only costs the axis its unit */
        for (int k = 0; k < crits.n && !rc; k++) rc = depth(c, &ps[i], crits.v[k], k, L);
    }
    for (int i = 0; i < np && !rc; i++)
        for (int k = 0; k < crits.n && !rc; k++) rc = drift(c, &ps[i], crits.v[k], k);
    if (!rc) rc = ladder_plots(c);
    fl_names_free(&crits);
    free(ps);
    return rc;
}

static int plots(const fl_table *t, const char *out_dir, int draw, fl_plot_list *made) {
    fl_plot_list local = { 0 };
    ctx c = { .t = t, .draw = draw, .made = made ? made : &local };
    memset(c.made, 0, sizeof *c.made);
    snprintf(c.dir, sizeof c.dir, "%.4000s/plots", out_dir);
    snprintf(c.stage, sizeof c.stage, "%.4000s/.plots.XXXXXX", out_dir);
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) return fl_err("%s: cannot create: %s", out_dir, strerror(errno));
    if (!mkdtemp(c.stage)) return fl_err("%s: cannot create a staging directory: %s", out_dir, strerror(errno));
    fl_names_of(t, "reconstruct", 0, &c.recons);
    fl_names evals;
    fl_names_of(t, "eval_set", 0, &evals);
    if (evals.n == 1) fl_bprintf(c.ppl_label, sizeof c.ppl_label, 0, "perplexity on %s", evals.v[0]);
    else snprintf(c.ppl_label, sizeof c.ppl_label, "perplexity (first evaluation set of each cell)");
    fl_names_free(&evals);
    int rc = build_all(&c);
    if (!rc && mkdir(c.dir, 0755) != 0 && errno != EEXIST) rc = fl_err("%s: cannot create: %s", c.dir, strerror(errno));
    static const char *const EXT[] = { "dat", "gp", "png", "svg" };
    for (int i = 0; !rc && i < c.made->n; i++)
        for (int e = 0; e < (draw ? 4 : 2) && !rc; e++) rc = move_out(&c, c.made->v[i].name, EXT[e]);
    rm_stage(c.stage);
    fl_names_free(&c.recons);
    if (rc || !made) fl_plot_list_free(c.made);
    return rc;
}

int fl_plots_build(const fl_table *t, const char *out_dir, fl_plot_list *made) { return plots(t, out_dir, 1, made); }
int fl_plots_scripts(const fl_table *t, const char *out_dir, fl_plot_list *made) { return plots(t, out_dir, 0, made); }

int fl_plots_make(const char *results_csv, const char *out_dir) {
    fl_table t;
    if (fl_sum_load(results_csv, &t) != 0) return -1;
    int rc = fl_plots_build(&t, out_dir, NULL);
    fl_table_free(&t);
    return rc;
}

void fl_plot_list_free(fl_plot_list *l) {
    free(l->v);
    memset(l, 0, sizeof *l);
}
