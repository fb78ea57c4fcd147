/* results.csv; see results.h. */
#include "results.h"
#include "model/err.h"
#include "model/fileio.h"
#include <csv.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PHASE_COLS(p) #p "_wall_s", #p "_cpu_s", #p "_peak_bytes", #p "_peak_rss_kb", #p "_flops", #p "_gflops",

/* The order is the file's; README.md documents each column. */
const char *const FL_RESULT_COLS[] = {
    /* identity and outcome */
    "cell_id", "status", "message",
    /* "tune": a tuning sub-cell, evaluated on the selection split only;
     * "dense": the unpruned model's reference perplexities (cmd_study.c);
     * "final" (or empty, in files from before [tune]): a row of the study */
    "role",
    /* the cell's parameters (every option of `freelunch prune`) */
    "model", "criterion", "sparsity", "pattern", "reconstruct", "propagation", "loss", "trainable", "lr",
    "epochs", "batch_size", "grad_accum", "weight_decay", "distill", "calib", "calib_samples", "seqlen", "seed",
    "eval_windows", "prune_stream", "optimizer", "retrain_samples", "drift_windows", "drift_data", "lr_scale",
    "eval_task_limit", "structure", "hidden_distill", "stream", "save_dtype",
    /* pruning and reconstruction */
    "achieved_sparsity", "mask_sha256", "mean_layer_error", "n_units", "recon_loss_before", "recon_loss_after",
    "unit_names", "unit_loss_before", "unit_loss_after",
    /* activation drift against the dense model (eval/drift.h) */
    "drift_mean", "drift_max", "drift_out", "drift_names", "drift_accumulated",
    /* perplexity: the first evaluation set, the three test splits, and all sets as name=ppl;... */
    "eval_set", "ppl", "ppl_sotu_test", "ppl_moby_test", "ppl_kjv_test", "ppl_all",
    /* memory (the recovery phase's peak is recovery_peak_bytes, below) */
    "working_bytes", "peak_bytes", "peak_rss_kb",
    /* profile per phase, then the whole cell */
    FL_PHASES(PHASE_COLS)
    /* training tokens recovery pushed through forward+backward, epochs
     * included, counted once per pass over the data (the largest of the
     * units' counts: every local unit trains on the same calibration
     * windows): local units calib windows x T x epochs, retraining
     * retrain windows x T x epochs, matrix-ls windows x T, none 0 */
    "recovery_tokens",
    "wall_s", "cpu_s", "flops", "gflops",
    /* where it ran */
    "threads", "backend", "machine", "commit", "finished_at",
    /* Pareto flags (fl_table_pareto) */
    "pareto_mem", "pareto_peak", "pareto_time", "pareto_mem_all", "pareto_peak_all", "pareto_time_all",
    /* zero-shot accuracy (eval/mc.h, --eval-task): acc per task, acc_norm
     * where lm-eval reports it, the word perplexity of the lambada tasks,
     * and the mean acc over the tasks a cell ran */
    "acc_boolq", "acc_rte", "acc_hellaswag", "acc_norm_hellaswag", "acc_winogrande", "acc_arc_easy", "acc_norm_arc_easy",
    "acc_arc_challenge", "acc_norm_arc_challenge", "acc_openbookqa", "acc_norm_openbookqa", "acc_lambada", "word_ppl_lambada",
    "acc_mc", "acc_norm_mc", "acc_lambada_sotu", "word_ppl_lambada_sotu", "acc_cloze_sotu", "acc_norm_cloze_sotu", "acc_mean",
    /* the dense model's size, from its config.json: the ladder's axes
     * (presets.h fl_config_nonemb_params); and the tokens it was
     * pretrained on, from its freelunch.json (steps x batch x seqlen; empty
     * for a model freelunch did not pretrain): the ladder's regime */
    "model_params", "model_nonemb_params", "model_layers", "model_train_tokens",
    /* what structured pruning buys (issue 15): the saved model's parameters
     * and the dense one's, forward tokens/s on the first evaluation set's
     * windows and its ratio to the dense model's, measured in the same process */
    "params", "params_dense", "infer_tok_s", "infer_speedup",
    /* and the same passes' memory: the model's parameters and its forward's
     * tracked peak, for the pruned and the dense model */
    "infer_peak_bytes", "infer_peak_dense_bytes",
};
const int FL_RESULT_NCOLS = (int)(sizeof FL_RESULT_COLS / sizeof *FL_RESULT_COLS);

/* Columns added after the first results.csv files were written (these,
 * and every drift_* column: the activation-drift settings, figures and
 * phase): a file whose header lacks some of them (ours otherwise, in
 * order) still loads, those cells empty, and is written back with every
 * column. */
static const char *const LATE_COLS[] = { "prune_stream", "optimizer", "retrain_samples", "mask_sha256", "recovery_tokens", "role",
                                         "lr_scale", "model_params", "model_nonemb_params", "model_layers", "model_train_tokens",
                                         "structure", "hidden_distill", "params", "params_dense", "infer_tok_s",
                                         "infer_speedup", "stream", "save_dtype", "infer_peak_bytes",
                                         "infer_peak_dense_bytes" };

static int is_late(const char *col) {
    if (!strncmp(col, "drift_", 6)) return 1;
    /* the zero-shot columns (issue 17) */
    if (!strncmp(col, "acc_", 4) || !strncmp(col, "word_ppl_", 9) || !strcmp(col, "eval_task_limit")) return 1;
    for (size_t i = 0; i < sizeof LATE_COLS / sizeof *LATE_COLS; i++)
        if (!strcmp(LATE_COLS[i], col)) return 1;
    return 0;
}

int fl_result_col(const char *name) {
    for (int i = 0; i < FL_RESULT_NCOLS; i++)
        if (!strcmp(FL_RESULT_COLS[i], name)) return i;
    return -1;
}

/* ---- reading ---------------------------------------------------------------- */

typedef struct {
    fl_table *t;
    char **cur;          /* fields of the record being parsed */
    int nf, capf;
    int line, header_done, bad;
    int *map, nmap;      /* the file's column i is our column map[i] */
    const char *path;
} reader;


/* The header: our columns, in our order, with only late ones missing. */
static int header_ok(reader *rd) {
    rd->map = malloc(sizeof(int) * (size_t)(rd->nf ? rd->nf : 1));
    rd->nmap = rd->nf;
    int k = 0;
    for (int i = 0; i < rd->nf; i++) {
        int c = fl_result_col(rd->cur[i]);
        if (c < k) return 0;   /* unknown, repeated or out of order */
        for (; k < c; k++)
            if (!is_late(FL_RESULT_COLS[k])) return 0;
        rd->map[i] = c;
        k = c + 1;
    }
    for (; k < FL_RESULT_NCOLS; k++)
        if (!is_late(FL_RESULT_COLS[k])) return 0;
    return 1;
}

static void on_field(void *s, size_t len, void *data) {
    reader *rd = data;
    if (rd->nf == rd->capf) {
        rd->capf = rd->capf ? 2 * rd->capf : 64;
        rd->cur = realloc(rd->cur, sizeof(char *) * rd->capf);
    }
    char *f = malloc(len + 1);
    memcpy(f, s, len);
    f[len] = 0;
    rd->cur[rd->nf++] = f;
}

static void drop_fields(reader *rd) {
    for (int i = 0; i < rd->nf; i++) free(rd->cur[i]);
    rd->nf = 0;
}

static void on_record(int c, void *data) {
    (void)c;
    reader *rd = data;
    rd->line++;
    if (rd->bad) { drop_fields(rd); return; }
    if (!rd->header_done) {
        rd->header_done = 1;
        if (!header_ok(rd)) {
            rd->bad = 1;
            fl_err("%s: not a freelunch results file (its header differs from the %d columns of this version)",
                   rd->path, FL_RESULT_NCOLS);
        }
        drop_fields(rd);
        return;
    }
    if (rd->nf != rd->nmap) {
        rd->bad = 1;
        fl_err("%s: line %d has %d fields, expected %d", rd->path, rd->line, rd->nf, rd->nmap);
        drop_fields(rd);
        return;
    }
    int r = fl_table_add_row(rd->t);
    for (int i = 0; i < rd->nf; i++) { free(rd->t->rows[r][rd->map[i]]); rd->t->rows[r][rd->map[i]] = rd->cur[i]; }
    rd->nf = 0;
}

int fl_table_read(const char *path, fl_table *t) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT) return 0;
        return fl_err("%s: %s", path, strerror(errno));
    }
    struct csv_parser p;
    csv_init(&p, CSV_STRICT | CSV_APPEND_NULL);
    reader rd = { .t = t, .path = path };
    char buf[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        if (csv_parse(&p, buf, n, on_field, on_record, &rd) != n) {
            rc = fl_err("%s: malformed CSV near line %d: %s", path, rd.line + 1, csv_strerror(csv_error(&p)));
            break;
        }
    if (!rc && ferror(f)) rc = fl_err("%s: read error", path);
    if (!rc) csv_fini(&p, on_field, on_record, &rd);
    csv_free(&p);
    fclose(f);
    drop_fields(&rd);
    free(rd.cur);
    free(rd.map);
    if (!rc && rd.bad) rc = -1;
    if (!rc && !rd.header_done && t->nrows == 0) rc = 0;  /* empty file: empty table */
    if (rc) fl_table_free(t);
    return rc;
}

/* ---- writing ---------------------------------------------------------------- */

static int write_record(FILE *f, const char *const *fields, int n) {
    for (int i = 0; i < n; i++) {
        if (i && fputc(',', f) == EOF) return -1;
        if (csv_fwrite(f, fields[i], strlen(fields[i])) != 0) return -1;
    }
    return fputc('\n', f) == EOF ? -1 : 0;
}

int fl_table_write(const char *path, const fl_table *t) {
    char *tmp;
    FILE *f = fl_tmp_open(path, &tmp);
    if (!f) return -1;
    int ok = write_record(f, FL_RESULT_COLS, FL_RESULT_NCOLS) == 0;
    for (int r = 0; ok && r < t->nrows; r++) ok = write_record(f, (const char *const *)t->rows[r], FL_RESULT_NCOLS) == 0;
    return fl_tmp_commit(f, tmp, path, ok);
}

/* ---- access ----------------------------------------------------------------- */

int fl_table_add_row(fl_table *t) {
    if (t->nrows == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 16;
        t->rows = realloc(t->rows, sizeof(char **) * t->cap);
    }
    char **row = malloc(sizeof(char *) * FL_RESULT_NCOLS);
    for (int i = 0; i < FL_RESULT_NCOLS; i++) row[i] = strdup("");
    t->rows[t->nrows] = row;
    return t->nrows++;
}

const char *fl_table_get(const fl_table *t, int row, const char *col) {
    int c = fl_result_col(col);
    if (c < 0 || row < 0 || row >= t->nrows + t->nref) return "";
    return t->rows[row][c];
}

double fl_table_num(const fl_table *t, int row, const char *col) {
    const char *s = fl_table_get(t, row, col);
    char *end;
    double v = strtod(s, &end);
    return (*s && !*end) ? v : NAN;
}

void fl_table_set(fl_table *t, int row, const char *col, const char *val) {
    int c = fl_result_col(col);
    if (c < 0) { fprintf(stderr, "freelunch: internal error: no results column '%s'\n", col); abort(); }
    free(t->rows[row][c]);
    t->rows[row][c] = strdup(val ? val : "");
}

void fl_table_setf(fl_table *t, int row, const char *col, const char *fmt, ...) {
    char buf[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fl_table_set(t, row, col, buf);
}

int fl_table_find(const fl_table *t, const char *cell_id) {
    for (int r = 0; r < t->nrows; r++)
        if (!strcmp(t->rows[r][0], cell_id)) return r;
    return -1;
}

void fl_table_free(fl_table *t) {
    for (int r = 0; r < t->nrows + t->nref; r++) {
        for (int i = 0; i < FL_RESULT_NCOLS; i++) free(t->rows[r][i]);
        free(t->rows[r]);
    }
    free(t->rows);
    memset(t, 0, sizeof *t);
}

int fl_row_final(const fl_table *t, int r) {
    const char *role = fl_table_get(t, r, "role");
    return strcmp(role, "tune") && strcmp(role, "dense");
}

/* ---- Pareto fronts ---------------------------------------------------------- */

/* One front per (model, sparsity, pattern, structure[, criterion]): a
 * fraction of heads and one of blocks are not the same sparsity (a row
 * without the structure column is weight pruning, "none"). */
static int same_group(const fl_table *t, int a, int b, int with_criterion) {
    static const char *keys[] = { "model", "sparsity", "pattern", "criterion" };
    for (int k = 0; k < 3 + with_criterion; k++)
        if (strcmp(fl_table_get(t, a, keys[k]), fl_table_get(t, b, keys[k]))) return 0;
    const char *sa = fl_table_get(t, a, "structure"), *sb = fl_table_get(t, b, "structure");
    return !strcmp(*sa ? sa : "none", *sb ? sb : "none");
}

/* O(n^2) over the rows: a grid has hundreds of cells, not millions. */
static void front(fl_table *t, const char *xcol, const char *col, int with_criterion) {
    for (int i = 0; i < t->nrows; i++) {
        double xi = fl_table_num(t, i, xcol), yi = fl_table_num(t, i, "ppl");
        int ok = !strcmp(fl_table_get(t, i, "status"), "ok") && fl_row_final(t, i) && isfinite(xi) && isfinite(yi);
        if (!ok) { fl_table_set(t, i, col, ""); continue; }
        int dominated = 0;
        for (int j = 0; j < t->nrows && !dominated; j++) {
            if (j == i || strcmp(fl_table_get(t, j, "status"), "ok") || !fl_row_final(t, j) || !same_group(t, i, j, with_criterion)) continue;
            double xj = fl_table_num(t, j, xcol), yj = fl_table_num(t, j, "ppl");
            if (!isfinite(xj) || !isfinite(yj)) continue;
            dominated = xj <= xi && yj <= yi && (xj < xi || yj < yi);
        }
        fl_table_set(t, i, col, dominated ? "0" : "1");
    }
}

void fl_table_pareto(fl_table *t) {
    static const char *axes[][3] = {
        { "working_bytes", "pareto_mem", "pareto_mem_all" },
        { "recovery_peak_bytes", "pareto_peak", "pareto_peak_all" },
        { "recovery_wall_s", "pareto_time", "pareto_time_all" },
    };
    for (int a = 0; a < 3; a++) {
        front(t, axes[a][0], axes[a][1], 1);
        front(t, axes[a][0], axes[a][2], 0);
    }
}
