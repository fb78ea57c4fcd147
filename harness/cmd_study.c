/* freelunch study: the Cartesian grid runner (docs/ARCHITECTURE.md, "Formats").
 *
 * Every cell runs as its own process (`freelunch prune ... --out
 * OUT/cells/NAME-ID`): a cell that crashes, aborts or runs out of memory
 * becomes a failed row instead of taking the grid down; --jobs N cells run
 * side by side with the cores shared out; and the process-wide counters the
 * profiler reads (tracked allocator, FLOPs, peak RSS) belong to one cell
 * only. The runner itself is single-threaded: it alone writes results.csv,
 * rewriting it whole (temp file + rename) after every finished cell, so a
 * kill at any moment leaves the previous complete file. A cell is
 * identified by the hash of its settings (grid.h); running again with the
 * same --out skips every cell already in results.csv. Children die with the
 * runner (PR_SET_PDEATHSIG), so a killed runner leaves no orphan that could
 * race a re-run on the same cell directory. With a [tune] section (grid.h)
 * a tuned final cell waits until each of its sub-cells has a row, then
 * runs with the values of the one with the lowest selection perplexity. */
#include "cli.h"
#include "grid.h"
#include "results.h"
#include "settings.h"
#include "slurm.h"
#include "structured.h"
#include "profile.h"
#include "presets.h"
#include "version.h"
#include "datasets/corpus.h"
#include "model/err.h"
#include "model/fileio.h"
#include "model/checkpoint.h"
#include "model/gemm.h"
#include "reconstructors/recon.h"
#include "plots/sbuf.h"
#include "reports/report.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *STUDY_HELP =
    "usage: freelunch study [--grid FILE.ini] [--out DIR] [--jobs N] [--set key=value]... [--dry-run]\n"
    "                       [--keep-models] [--cache DIR] [--no-share] [--print-default-grid]\n"
    "                       [--engine local|slurm] [--slurm-array-max P] [--slurm-opt ARG]...\n"
    "                       [--slurm-poll SECONDS] [--detach] [--collect]\n"
    "Runs every cell of a Cartesian grid of `freelunch prune` settings, appends\n"
    "one row per cell to DIR/results.csv (columns: README.md), flags the Pareto\n"
    "fronts, then draws DIR/plots/ and writes DIR/report.md and DIR/report.html.\n"
    "With no --grid it runs the embedded default study (--print-default-grid\n"
    "shows it): it fetches the corpora and builds the `tiny` base model first if\n"
    "they are missing (cached in ~/.cache/freelunch). A grid's model may name a\n"
    "preset (`freelunch list presets`: the ladder's rungs): it means\n"
    "<cache>/models/NAME, pretrained first when missing.\n"
    "Running again with the same --out skips the cells already in results.csv,\n"
    "so a killed study resumes where it stopped; a failed cell is a row with its\n"
    "status and message, and the grid goes on.\n"
    "  --grid FILE       INI grid: [grid] dimensions, [fixed] settings, [grid.NAME]\n"
    "                    variants, [tune] values chosen per cell on a validation split\n"
    "                    (README: \"Grids\")\n"
    "  --out DIR         results directory (default runs/study)\n"
    "  --jobs N          cells run side by side, threads shared out (default 1)\n"
    "  --set KEY=VALUE   override a key of the grid (repeatable; VALUE may be a list)\n"
    "  --dry-run         list the cells (and which are done), with their role (tune:\n"
    "                    a [tune] sub-cell) and predicted recovery peak memory; run nothing\n"
    "  --keep-models     keep every cell's pruned model (default: only calib.bin,\n"
    "                    freelunch.json and the log)\n"
    "  --cache DIR       corpus and model cache\n"
    "  --no-share        every cell computes everything itself (default: cells reuse\n"
    "                    the tokenized splits and, when its masks do not depend on\n"
    "                    recovery, the pruning pass other cells stored in CACHE/share;\n"
    "                    results are the same bit for bit: README \"Shared work\")\n"
    "  --print-default-grid  print the embedded default grid and exit\n"
    "  --engine E        local (default): cells run on this machine; slurm: the cells\n"
    "                    without a row (or with a failed one) go to SLURM as one job\n"
    "                    array, one cell per task (README: \"Grids on SLURM\")\n"
    "  --slurm-array-max P  at most P array tasks at once (sbatch --array=...%P)\n"
    "  --slurm-opt ARG   one sbatch argument, e.g. --slurm-opt=--partition=cpu\n"
    "                    --slurm-opt=--cpus-per-task=8 (repeatable; never through a shell)\n"
    "  --slurm-poll S    seconds between looks at the queue while waiting (default 10)\n"
    "  --detach          submit and return; collect later with --collect\n"
    "  --collect         merge the finished tasks of --out's study (its grid.ini unless\n"
    "                    --grid) into results.csv and report; submits nothing\n"
    "                    (with --engine slurm, --dry-run prints the sbatch script)\n"
    "  --slurm-task DIR -- prune ARGS...  what an array task runs (the script writes it)\n" FL_COMMON_HELP;

/* ---- running one cell --------------------------------------------------- */

typedef struct {
    const fl_cell_spec *spec;   /* &own */
    fl_cell_spec own;           /* the cell as it runs (a tuned final: with its chosen values) */
    pid_t pid;
    double t0;
    char dir[4096];
} job_t;

/* Cells reuse each other's work (--share, harness/share.h) unless --no-share. */
static int share_cells = 1;

/* Maps a grid key to its prune option; eval expands to one --eval per set. */
static int build_argv(const fl_cell_spec *s, const char *dir, const char *cache, int threads, int keep,
                      char **argv, char *store, size_t store_n) {
    int n = 0;
    size_t used = 0;
#define KEEP(str) (argv[n++] = strcpy(store + used, str), used += strlen(str) + 1)
    KEEP("freelunch");
    KEEP("prune");
    for (int i = 0; i < s->nkeys; i++) {
        const fl_setting *st = fl_setting_find(s->key[i]);
        const char *v = s->val[i];
        char opt[80];
        snprintf(opt, sizeof opt, "--%s", st->key);
        if (st->type == FL_SET_FLAG) {
            if (fl_setting_true(v)) KEEP(opt);
        } else if (st->type == FL_SET_LIST) {
            char buf[4096];
            snprintf(buf, sizeof buf, "%s", v);
            for (char *t = strtok(buf, ","); t; t = strtok(NULL, ",")) {
                if (n > 200) return fl_err("cell %s: too many %s values", s->id, st->key);
                KEEP(opt);
                KEEP(t);
            }
        } else if (strcmp(st->key, "threads")) {   /* threads: the runner's own --threads below */
            KEEP(opt);
            KEEP(v);
        }
        if (used > store_n - 8192) return fl_err("cell %s: too many settings", s->id);
    }
    const char *t = fl_cell_get(s, "threads");
    char tb[32];
    snprintf(tb, sizeof tb, "%d", t ? atoi(t) : threads);
    KEEP("--threads");
    KEEP(tb);
    KEEP("--out");
    KEEP(dir);
    KEEP("--cache");
    KEEP(cache);
    if (!keep) KEEP("--no-model");
    if (share_cells) KEEP("--share");
#undef KEEP
    argv[n] = NULL;
    return n;
}

/* Starts `freelunch ARGV...` (this binary) on one cell directory: the
 * cell's log, headed by its command line, takes its output. */
static pid_t spawn_argv(const char *dir, char *const argv[]) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) return fl_err("%s: cannot create directory: %s", dir, strerror(errno));
    /* a previous run killed mid-cell may have left files: never read them as this run's */
    char p[4200];
    snprintf(p, sizeof p, "%.4000s/freelunch.json", dir);
    unlink(p);
    snprintf(p, sizeof p, "%.4000s/log", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return fl_err("%s: cannot create: %s", p, strerror(errno));
    /* the command line heads the log, so any cell can be redone by hand */
    for (int i = 0; argv[i]; i++) dprintf(fd, "%s%s", i ? " " : "", argv[i]);
    dprintf(fd, "\n");
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) { close(fd); return fl_err("fork: %s", strerror(errno)); }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);    /* the runner died before prctl */
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) { dup2(nul, 0); close(nul); }
        execv("/proc/self/exe", argv);
        fprintf(stderr, "freelunch: cannot run /proc/self/exe: %s\n", strerror(errno));
        _exit(127);
    }
    close(fd);
    return pid;
}

static pid_t spawn_cell(job_t *j, const char *cache, int threads, int keep) {
    static char store[65536];
    char *argv[256];
    if (build_argv(j->spec, j->dir, cache, threads, keep, argv, store, sizeof store) < 0) return -1;
    pid_t pid = spawn_argv(j->dir, argv);
    if (pid < 0) return -1;
    j->pid = pid;
    j->t0 = fl_wall_s();
    return pid;
}

static double jnum(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static void set_num(fl_table *t, int r, const char *col, double v) {
    if (isfinite(v)) fl_table_setf(t, r, col, "%.10g", v);
}

/* One task's figures (o: {"acc", "acc_norm", "ppl"}, from a cell's
 * result.json or `freelunch eval --task --json`) into acc_TASK,
 * acc_norm_TASK and word_ppl_TASK where the table has the column; its acc
 * added to the sum acc_mean is made of. */
static void set_task(fl_table *t, int r, const char *task, const cJSON *o, double *asum, int *na) {
    static const char *const FIG[3][2] = { { "acc", "acc_" }, { "acc_norm", "acc_norm_" }, { "ppl", "word_ppl_" } };
    for (int f = 0; f < 3; f++) {
        double v = jnum(o, FIG[f][0]);
        char col[300];
        snprintf(col, sizeof col, "%s%s", FIG[f][1], task);
        for (char *q = col; *q; q++) if (*q == '-') *q = '_';
        if (isfinite(v) && fl_result_col(col) >= 0) set_num(t, r, col, v);
        if (f == 0 && isfinite(v)) *asum += v, (*na)++;
    }
}

/* The settings as the grid gave them (every row has them, failed or not). */
static void fill_settings(fl_table *t, int r, const fl_cell_spec *s) {
    for (int i = 0; i < s->nkeys; i++) {
        const fl_setting *st = fl_setting_find(s->key[i]);
        if (st->csv) fl_table_set(t, r, st->csv, s->val[i]);
    }
}

/* The activation drift (eval/drift.h): the summaries, and each linear's
 * accumulated drift in depth order (the block outputs left out), for the
 * drift plots. */
static void fill_drift(fl_table *t, int r, const cJSON *j) {
    set_num(t, r, "drift_mean", jnum(j, "drift_mean"));
    set_num(t, r, "drift_max", jnum(j, "drift_max"));
    set_num(t, r, "drift_out", jnum(j, "drift_out"));
    fl_sbuf names = { 0 }, acc = { 0 };
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "drift")) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
        if (!cJSON_GetObjectItemCaseSensitive(it, "local")) continue;   /* a block's output */
        fl_sb_printf(&names, "%s%s", names.len ? ";" : "", cJSON_IsString(nm) ? nm->valuestring : "?");
        fl_sb_printf(&acc, "%s%.6g", acc.len ? ";" : "", jnum(it, "accumulated"));
    }
    if (names.len) {
        fl_table_set(t, r, "drift_names", fl_sb_str(&names));
        fl_table_set(t, r, "drift_accumulated", fl_sb_str(&acc));
    }
    fl_sb_free(&names);
    fl_sb_free(&acc);
}

/* An "ok" row from the cell's freelunch.json. */
static int fill_from_json(fl_table *t, int r, const char *dir) {
    char p[4200];
    snprintf(p, sizeof p, "%s/freelunch.json", dir);
    char *text = NULL;
    cJSON *j = fl_read_file(p, &text, NULL) == 0 ? cJSON_Parse(text) : NULL;
    free(text);
    if (!j) return fl_err("%s: missing or not JSON", p);
    const cJSON *cell = cJSON_GetObjectItemCaseSensitive(j, "cell"), *pf = cJSON_GetObjectItemCaseSensitive(j, "profile");
    /* the settings as run, defaults included: the table says where each is */
    for (int i = 0; i < FL_NSETTINGS; i++) {
        const fl_setting *st = &FL_SETTINGS[i];
        const cJSON *v = st->json && st->csv ? cJSON_GetObjectItemCaseSensitive(cell, st->json) : NULL;
        if (cJSON_IsString(v)) fl_table_set(t, r, st->csv, v->valuestring);
        else if (cJSON_IsBool(v)) fl_table_set(t, r, st->csv, cJSON_IsTrue(v) ? "true" : "false");
        /* floats keep a float's digits: 3e-3, not 0.003000000026 */
        else if (cJSON_IsNumber(v)) fl_table_setf(t, r, st->csv, st->type == FL_SET_FLOAT ? "%.6g" : "%.10g", v->valuedouble);
    }
    set_num(t, r, "achieved_sparsity", jnum(j, "sparsity"));
    const cJSON *mh = cJSON_GetObjectItemCaseSensitive(j, "mask_sha256");
    if (cJSON_IsString(mh)) fl_table_set(t, r, "mask_sha256", mh->valuestring);
    /* layer errors, unit losses */
    double e = 0;
    int ne = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "linears")) { e += jnum(it, "error"); ne++; }
    if (ne) set_num(t, r, "mean_layer_error", e / ne);
    char names[8192] = "", lb[8192] = "", la[8192] = "";
    double sb = 0, sa = 0;
    int nu = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "units")) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
        double b = jnum(it, "loss_before"), a = jnum(it, "loss_after");
        size_t k;
        k = strlen(names); snprintf(names + k, sizeof names - k, "%s%s", nu ? ";" : "", cJSON_IsString(nm) ? nm->valuestring : "?");
        k = strlen(lb); snprintf(lb + k, sizeof lb - k, "%s%.6g", nu ? ";" : "", b);
        k = strlen(la); snprintf(la + k, sizeof la - k, "%s%.6g", nu ? ";" : "", a);
        sb += b; sa += a; nu++;
    }
    fl_table_setf(t, r, "n_units", "%d", nu);
    if (nu) {
        fl_table_set(t, r, "unit_names", names);
        fl_table_set(t, r, "unit_loss_before", lb);
        fl_table_set(t, r, "unit_loss_after", la);
        set_num(t, r, "recon_loss_before", sb / nu);
        set_num(t, r, "recon_loss_after", sa / nu);
    }
    fill_drift(t, r, j);
    /* perplexities: the first set is `ppl` */
    char all[4096] = "";
    int first = 1;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "perplexity")) {
        if (!cJSON_IsNumber(it)) continue;
        if (first) { fl_table_set(t, r, "eval_set", it->string); set_num(t, r, "ppl", it->valuedouble); }
        size_t k = strlen(all);
        snprintf(all + k, sizeof all - k, "%s%s=%.6f", first ? "" : ";", it->string, it->valuedouble);
        char col[300];
        snprintf(col, sizeof col, "ppl_%s", it->string);
        for (char *q = col; *q; q++) if (*q == '-') *q = '_';
        if (fl_result_col(col) >= 0) set_num(t, r, col, it->valuedouble);
        first = 0;
    }
    fl_table_set(t, r, "ppl_all", all);
    /* zero-shot accuracy */
    double asum = 0;
    int na = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(j, "zero_shot")) set_task(t, r, it->string, it, &asum, &na);
    if (na) set_num(t, r, "acc_mean", asum / na);
    /* memory and profile */
    set_num(t, r, "working_bytes", jnum(pf, "recovery_working_bytes"));
    set_num(t, r, "recovery_tokens", jnum(pf, "recovery_tokens"));
    set_num(t, r, "params", jnum(j, "params"));
    set_num(t, r, "params_dense", jnum(j, "params_dense"));
    set_num(t, r, "infer_tok_s", jnum(pf, "infer_tok_s"));
    {
        const double a = jnum(pf, "infer_tok_s"), b = jnum(pf, "infer_tok_s_dense");
        if (a > 0 && b > 0) set_num(t, r, "infer_speedup", a / b);
        const double pa = jnum(pf, "infer_peak_bytes"), pb = jnum(pf, "infer_peak_bytes_dense");
        if (pa > 0 && pb > 0) { set_num(t, r, "infer_peak_bytes", pa); set_num(t, r, "infer_peak_dense_bytes", pb); }
    }
    set_num(t, r, "peak_rss_kb", jnum(pf, "peak_rss_kb"));
    double peak = 0;
    const cJSON *phs = cJSON_GetObjectItemCaseSensitive(pf, "phases");
    for (int i = 0; i < FL_NPHASES; i++) {
        const cJSON *ph = cJSON_GetObjectItemCaseSensitive(phs, FL_PHASE_NAMES[i]);
        char col[64];
        static const char *f[][2] = { { "wall_seconds", "wall_s" }, { "cpu_seconds", "cpu_s" }, { "peak_bytes", "peak_bytes" },
                                      { "peak_rss_kb", "peak_rss_kb" }, { "flops", "flops" } };
        for (int k = 0; k < 5; k++) {
            snprintf(col, sizeof col, "%s_%s", FL_PHASE_NAMES[i], f[k][1]);
            set_num(t, r, col, jnum(ph, f[k][0]));
        }
        double w = jnum(ph, "wall_seconds"), fl = jnum(ph, "flops"), pk = jnum(ph, "peak_bytes");
        snprintf(col, sizeof col, "%s_gflops", FL_PHASE_NAMES[i]);
        if (w > 0) set_num(t, r, col, fl / w / 1e9);
        if (pk > peak && i != FL_PH_DRIFT) peak = pk;   /* the pipeline's peak: drift is a measurement of it */
    }
    set_num(t, r, "peak_bytes", peak);
    double w = jnum(pf, "wall_seconds"), fl = jnum(pf, "flops");
    set_num(t, r, "wall_s", w);
    set_num(t, r, "cpu_s", jnum(pf, "cpu_seconds"));
    set_num(t, r, "flops", fl);
    if (w > 0) set_num(t, r, "gflops", fl / w / 1e9);
    set_num(t, r, "threads", jnum(pf, "threads"));
    const cJSON *be = cJSON_GetObjectItemCaseSensitive(pf, "backend");
    if (cJSON_IsString(be)) fl_table_set(t, r, "backend", be->valuestring);
    cJSON_Delete(j);
    return 0;
}

/* The model's size columns (the ladder's axes), from its config.json, and
 * its pretraining tokens, from the freelunch.json `freelunch pretrain`
 * wrote beside it (steps x batch x seqlen: the tokens it trained on,
 * repetitions of the split included); each left empty when it cannot be
 * read (the row's error says why elsewhere; a downloaded HF model has no
 * freelunch.json, and its regime is unknown). */
static void fill_model_size(fl_table *t, int r, const char *model) {
    fl_config c;
    if (!model || fl_config_load(&c, model) != 0) { fl_err_clear(); return; }
    fl_table_setf(t, r, "model_params", "%lld", (long long)fl_config_num_params(&c));
    fl_table_setf(t, r, "model_nonemb_params", "%lld", (long long)fl_config_nonemb_params(&c));
    fl_table_setf(t, r, "model_layers", "%d", c.n_layer);
    fl_pretrain_record rec;
    if (fl_pretrain_record_read(model, &rec) == 0 && isfinite(rec.train_tokens))
        fl_table_setf(t, r, "model_train_tokens", "%.0f", rec.train_tokens);
}

/* Where and when a row was made: every row, a cell's or a dense reference's. */
static void stamp_row(fl_table *t, int r, const char *machine) {
    fl_table_set(t, r, "machine", machine);
    fl_table_set(t, r, "commit", fl_commit());
    time_t now = time(NULL);
    char ts[64];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    fl_table_set(t, r, "finished_at", ts);
}

/* The finished job's row: "ok", or "diverged"/"error" with the log's last line. */
static void collect(fl_table *t, const job_t *j, int status, const char *machine) {
    int r = fl_table_add_row(t);
    fl_table_set(t, r, "cell_id", j->spec->id);
    fl_table_set(t, r, "role", fl_role_name(j->spec->role));
    fill_settings(t, r, j->spec);
    fill_model_size(t, r, fl_cell_get(j->spec, "model"));
    char logp[4200], msg[2048];
    snprintf(logp, sizeof logp, "%s/log", j->dir);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && fill_from_json(t, r, j->dir) == 0) {
        fl_table_set(t, r, "status", "ok");
    } else {
        fl_last_line(logp, msg, sizeof msg);
        if (WIFSIGNALED(status)) snprintf(msg, sizeof msg, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
        else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) snprintf(msg, sizeof msg, "%s", fl_errmsg());
        fl_table_set(t, r, "status", strstr(msg, "diverged") ? "diverged" : "error");
        fl_table_set(t, r, "message", strncmp(msg, "freelunch: ", 11) ? msg : msg + 11);
        set_num(t, r, "wall_s", fl_wall_s() - j->t0);
    }
    if (!*fl_table_get(t, r, "backend")) fl_table_set(t, r, "backend", fl_gemm_backend_name());
    stamp_row(t, r, machine);
}

/* ---- helpers ------------------------------------------------------------ */

/* Runs `freelunch ARGS...` (this binary) in the foreground; its output goes
 * to ours. */
static int run_self(char *const argv[]) {
    pid_t pid = fork();
    if (pid < 0) return fl_err("fork: %s", strerror(errno));
    if (pid == 0) {
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return fl_err("freelunch %s %s failed (see its message above)", argv[1], argv[2] ? argv[2] : "");
    return 0;
}

static int file_exists(const char *p) { struct stat st; return stat(p, &st) == 0; }

static void fmt_dur(double s, char *buf, size_t n) {
    if (s < 90) snprintf(buf, n, "%.0fs", s);
    else if (s < 5400) snprintf(buf, n, "%.0fm%02.0fs", floor(s / 60), fmod(s, 60));
    else snprintf(buf, n, "%.0fh%02.0fm", floor(s / 3600), fmod(s, 3600) / 60);
}

/* "criterion=wanda reconstruct=sublayer seed=0" from the keys that vary;
 * a tuning sub-cell says which of its cell's it is and where it is scored */
static void describe(const fl_grid *g, const fl_cell_spec *s, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < s->nkeys && k < n; i++) {
        if (!fl_grid_varies(g, s->key[i]) || fl_setting_find(s->key[i])->type == FL_SET_LIST) continue;
        k += (size_t)snprintf(buf + k, n - k, "%s%s=%s", k ? " " : "", s->key[i], s->val[i]);
    }
    if (!k) k = (size_t)snprintf(buf, n, "%s", s->name);
    if (k < n && s->role == FL_ROLE_TUNE)
        snprintf(buf + k, n - k, " [tune %d/%lld of cell %s, on %s only]", s->combo + 1, fl_tune_ncombos(g), s->final_id,
                 fl_grid_select(g));
    else if (k < n && s->ntune)
        snprintf(buf + k, n - k, " [final: the best of %d sub-cells on %s]", s->ntune, fl_grid_select(g));
}

/* A tuned final cell can run once every sub-cell has its row. */
static int tune_ready(const fl_grid *g, const fl_cell_spec *f, const fl_table *t) {
    for (int k = 0; k < f->ntune; k++) {
        fl_cell_spec sub;
        if (fl_cell_tune_sub(g, f, k, &sub) != 0 || fl_table_find(t, sub.id) < 0) return 0;
    }
    return 1;
}

/* The combination whose sub-cell has the lowest perplexity on the
 * selection split (ties: the first in grid order), or -1 if none finished
 * ok; *ppl its perplexity, *nok how many did. */
static int tune_choose(const fl_grid *g, const fl_cell_spec *f, const fl_table *t, double *ppl, int *nok) {
    int best = -1;
    *nok = 0;
    for (int k = 0; k < f->ntune; k++) {
        fl_cell_spec sub;
        int r = fl_cell_tune_sub(g, f, k, &sub) == 0 ? fl_table_find(t, sub.id) : -1;
        if (r < 0 || strcmp(fl_table_get(t, r, "status"), "ok") || strcmp(fl_table_get(t, r, "eval_set"), fl_grid_select(g))) continue;
        double v = fl_table_num(t, r, "ppl");
        if (!isfinite(v)) continue;
        ++*nok;
        if (best < 0 || v < *ppl) { best = k; *ppl = v; }
    }
    return best;
}

/* "lr=1e-3 epochs=2": the tuned keys of a final as it runs */
static void chosen_values(const fl_grid *g, const fl_cell_spec *s, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < g->tune.ndims && k < n; i++) {
        const char *v = fl_cell_get(s, g->tune.dims[i].key);
        k += (size_t)snprintf(buf + k, n - k, "%s%s=%s", k ? " " : "", g->tune.dims[i].key, v ? v : "?");
    }
}

/* A grid's model value may name a preset (the ladder's rungs: `freelunch
 * list presets`) instead of a directory: a bare name (no '/') that is a
 * preset and not an existing directory becomes <cache>/models/NAME, the
 * directory `freelunch pretrain --preset NAME` builds and the study builds
 * when it is missing (cached like the default tiny). Resolved in [grid],
 * [fixed] and every variant, before cells get their ids. */
static int is_dir(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISDIR(st.st_mode); }

static void resolve_dims(fl_dim *dims, int nd, const char *cache) {
    for (int i = 0; i < nd; i++) {
        if (strcmp(dims[i].key, "model")) continue;
        for (int k = 0; k < dims[i].nvals; k++) {
            const char *v = dims[i].vals[k];
            if (strchr(v, '/') || !fl_preset_find(v) || is_dir(v)) continue;
            char buf[4300];
            snprintf(buf, sizeof buf, "%.4000s/models/%s", cache, v);
            char *nv = strdup(buf);
            if (!nv) continue;
            free(dims[i].vals[k]);
            dims[i].vals[k] = nv;
        }
    }
}

static const fl_preset *preset_of_dir(const char *dir, const char *cache);

/* Pretrain every preset a resolved grid names whose directory has no model
 * yet (the default grid's tiny among them), resuming a killed pretraining. */
static int build_presets(const fl_grid *g, const char *cache) {
    const fl_dim *lists[1 + FL_GRID_MAX_VARIANTS];
    int nl = 0;
    if (fl_grid_get(g, "model")) lists[nl++] = fl_grid_get(g, "model");
    for (int v = 0; v < g->nvar && nl < 1 + FL_GRID_MAX_VARIANTS; v++)
        for (int i = 0; i < g->var[v].ndims; i++)
            if (!strcmp(g->var[v].dims[i].key, "model")) lists[nl++] = &g->var[v].dims[i];
    for (int l = 0; l < nl; l++)
        for (int k = 0; k < lists[l]->nvals; k++) {
            const fl_preset *p = preset_of_dir(lists[l]->vals[k], cache);
            char cj[4300], fj[4300];
            snprintf(cj, sizeof cj, "%.4000s/config.json", lists[l]->vals[k]);
            snprintf(fj, sizeof fj, "%.4000s/freelunch.json", lists[l]->vals[k]);
            if (!p || (file_exists(cj) && file_exists(fj))) continue;
            int64_t ne;
            fl_preset_params(p, &ne);
            fprintf(stderr, "study: building base model %s (preset %s: %d layers, d=%d, %.2fM non-embedding parameters, %d steps)\n",
                    lists[l]->vals[k], p->name, p->n_layer, p->d, ne / 1e6, p->steps);
            char *pre[] = { "freelunch", "pretrain", "--preset", (char *)p->name, "--resume", "--cache", (char *)cache, NULL };
            if (run_self(pre) != 0) return -1;
        }
    return 0;
}

static void resolve_presets(fl_grid *g, const char *cache) {
    resolve_dims(g->dims, g->ndims, cache);
    for (int v = 0; v < g->nvar; v++) resolve_dims(g->var[v].dims, g->var[v].ndims, cache);
}

/* The preset a resolved model directory stands for (<cache>/models/NAME),
 * or NULL: a directory anywhere else is the user's own model. */
static const fl_preset *preset_of_dir(const char *dir, const char *cache) {
    char pre[4300];
    snprintf(pre, sizeof pre, "%.4000s/models/", cache);
    size_t n = strlen(pre);
    return strncmp(dir, pre, n) ? NULL : fl_preset_find(dir + n);
}

/* The config of a model: its config.json, or, for a preset's directory not
 * built yet, the preset's (so --dry-run predicts memory before pretraining) */
static int model_config(const char *model, const char *cache, fl_config *cfg) {
    char cj[4300];
    snprintf(cj, sizeof cj, "%.4000s/config.json", model);
    const fl_preset *p = preset_of_dir(model, cache);
    if (p && !file_exists(cj)) { fl_preset_config(p, cfg); return 0; }
    return fl_config_load(cfg, model);
}

/* The analytic recovery working set and peak of a cell, from its model's
 * config.json and its settings; "?" when they cannot be predicted (model
 * not built yet, or a reconstructor predict.c does not cover). */
static void predict_cell(const fl_cell_spec *s, const char *cache, char *wk, char *pk, size_t n) {
    fl_config cfg, small;
    const char *model = fl_cell_get(s, "model"), *st = fl_cell_get(s, "structure");
    if (!model || model_config(model, cache, &cfg) != 0) { fl_err_clear(); return; }
    /* a structured cell recovers the smaller model beside the dense one:
     * its shapes from the structure and fraction ("?" for a global ratio,
     * whose block sizes depend on the scores) */
    fl_structure kind = FL_STRUCT_NONE;
    if (st && fl_structure_parse(st, &kind) != 0) { fl_err_clear(); return; }
    if (kind != FL_STRUCT_NONE) {
        const char *cr = fl_cell_get(s, "criterion"), *sp = fl_cell_get(s, "sparsity");
        fl_crit_inst ci;
        char *end;
        const double frac = sp ? strtod(sp, &end) : 0;
        if (!cr || !sp || end == sp || *end || fl_criterion_open(cr, &ci) != 0) { fl_err_clear(); return; }
        const int rc = fl_struct_config(&cfg, &ci, kind, frac, &small);
        fl_criterion_close(&ci);
        if (rc != 0) { fl_err_clear(); return; }
    }
    const char *v[7], *keys[7] = { "reconstruct", "propagation", "trainable", "calib-samples", "batch-size", "prune-stream",
                                   "optimizer" };
    for (int i = 0; i < 7; i++) v[i] = fl_cell_get(s, keys[i]) ? fl_cell_get(s, keys[i]) : fl_setting_def(keys[i]);
    const char *ts = fl_cell_get(s, "seqlen"), *rs = fl_cell_get(s, "retrain-samples");
    fl_recon_predict_out o;
    fl_recon_predict_args a = { .reconstruct = v[0], .propagation = v[1], .prune_stream = v[5],
                                .trainable_bias_norm = !strcmp(v[2], "bias-norm"), .nwin = atoi(v[3]),
                                .retrain_nwin = rs ? atoi(rs) : 0, .T = ts ? atoi(ts) : cfg.max_pos, .batch = atoi(v[4]),
                                .dense = kind != FL_STRUCT_NONE ? &cfg : NULL };
    if (fl_optim_parse(v[6], &a.optim) != 0 || fl_recon_predict(kind != FL_STRUCT_NONE ? &small : &cfg, &a, &o) != 0) {
        fl_err_clear();
        return;
    }
    snprintf(wk, n, "%.2f", o.working_bytes / 1e6);
    snprintf(pk, n, "%.2f", o.peak_recover_bytes / 1e6);
}

/* ---- the dense references ---------------------------------------------- */

/* Runs `freelunch ARGV...` with its stdout to OUT_PATH and its stderr
 * appended to LOG_PATH; 0 when it exits 0. */
static int run_captured(char *const argv[], const char *out_path, const char *log_path) {
    int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644), fl = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fo < 0 || fl < 0) {
        if (fo >= 0) close(fo);
        if (fl >= 0) close(fl);
        return fl_err("%s: cannot create: %s", fo < 0 ? out_path : log_path, strerror(errno));
    }
    for (int i = 0; argv[i]; i++) dprintf(fl, "%s%s", i ? " " : "", argv[i]);
    dprintf(fl, "\n");
    pid_t parent = getpid(), pid = fork();
    if (pid < 0) { close(fo); close(fl); return fl_err("fork: %s", strerror(errno)); }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(1);
        dup2(fo, 1);
        dup2(fl, 2);
        execv("/proc/self/exe", argv);
        _exit(127);
    }
    close(fo);
    close(fl);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* One dense reference (fl_grid_dense_refs): the unpruned model evaluated by
 * `freelunch eval` on each of the reference's evaluation sets with the
 * windows and batch a cell evaluates with (cell.c, step 6), so its
 * perplexities are those a cell would report for a model with nothing
 * pruned. Its row (role dense) is left out of the Pareto fronts, the
 * verdicts and the tables' cells; the report and the plots draw it as the
 * reference line. */
static void dense_row(fl_table *t, const fl_cell_spec *s, const char *out, const char *cache, int threads,
                      const char *machine) {
    const double t0 = fl_wall_s();
    const char *model = fl_cell_get(s, "model"), *ev = fl_cell_get(s, "eval"), *win = fl_cell_get(s, "eval-windows"),
               *be = fl_cell_get(s, "backend"), *th = fl_cell_get(s, "threads");
    char dir[4200], log[4300], res[4300], evbuf[4096] = "", tb[32], msg[2048] = "";
    snprintf(dir, sizeof dir, "%.3000s/cells/%s-%s", out, s->name, s->id);
    snprintf(log, sizeof log, "%s/log", dir);
    snprintf(tb, sizeof tb, "%d", th ? atoi(th) : threads);
    if (ev) snprintf(evbuf, sizeof evbuf, "%s", ev);
    else
        for (int i = 0; FL_TEST_SPLITS[i]; i++)
            fl_bprintf(evbuf, sizeof evbuf, strlen(evbuf), "%s%s", i ? "," : "", FL_TEST_SPLITS[i]);
    int r = fl_table_add_row(t);
    fl_table_set(t, r, "cell_id", s->id);
    fl_table_set(t, r, "role", fl_role_name(FL_ROLE_DENSE));
    fill_settings(t, r, s);
    fill_model_size(t, r, fl_cell_get(s, "model"));
    fl_table_set(t, r, "criterion", "dense");
    fl_table_set(t, r, "sparsity", "0");
    fl_table_set(t, r, "achieved_sparsity", "0");
    int ok = mkdir(dir, 0755) == 0 || errno == EEXIST;
    if (!ok) snprintf(msg, sizeof msg, "%.1500s: cannot create directory: %s", dir, strerror(errno));
    else if (!model) { ok = 0; snprintf(msg, sizeof msg, "dense reference %s: the grid names no model", s->id); }
    else unlink(log);
    char all[4096] = "";
    int k = 0;
    for (char *save = NULL, *e = strtok_r(evbuf, ",", &save); e && ok; e = strtok_r(NULL, ",", &save), k++) {
        int is_file = file_exists(e) || strstr(e, ".bin");   /* as cell.c's eval_tokens decides */
        char *argv[24];
        int n = 0;
        argv[n++] = "freelunch"; argv[n++] = "eval"; argv[n++] = "--model"; argv[n++] = (char *)model;
        argv[n++] = is_file ? "--data" : "--split"; argv[n++] = e;
        argv[n++] = "--batch"; argv[n++] = "4"; argv[n++] = "--json";
        argv[n++] = "--threads"; argv[n++] = tb; argv[n++] = "--cache"; argv[n++] = (char *)cache;
        if (win) { argv[n++] = "--max-windows"; argv[n++] = (char *)win; }
        if (be) { argv[n++] = "--backend"; argv[n++] = (char *)be; }
        if (share_cells && !is_file) argv[n++] = "--share";   /* the split's tokens, as the cells share them */
        argv[n] = NULL;
        snprintf(res, sizeof res, "%s/eval-%d.json", dir, k);
        char *text = NULL;
        cJSON *j = NULL;
        if (run_captured(argv, res, log) == 0 && fl_read_file(res, &text, NULL) == 0) j = cJSON_Parse(text);
        free(text);
        double ppl = jnum(j, "ppl");
        cJSON_Delete(j);
        if (!isfinite(ppl)) {
            fl_last_line(log, msg, sizeof msg);
            if (!msg[0]) snprintf(msg, sizeof msg, "%s: freelunch eval gave no perplexity", e);
            ok = 0;
            break;
        }
        if (!k) { fl_table_set(t, r, "eval_set", e); set_num(t, r, "ppl", ppl); }
        fl_bprintf(all, sizeof all, strlen(all), "%s%s=%.6f", k ? ";" : "", e, ppl);
        char col[300];
        snprintf(col, sizeof col, "ppl_%s", e);
        for (char *q = col; *q; q++) if (*q == '-') *q = '_';
        if (fl_result_col(col) >= 0) set_num(t, r, col, ppl);
    }
    /* its zero-shot accuracy on the cells' tasks, with the cells' limit */
    const char *tasks = fl_cell_get(s, "eval-task"), *lim = fl_cell_get(s, "eval-task-limit");
    if (ok && tasks) {
        char tbuf[4096], *argv[24 + 2 * FL_MAX_EVALS];
        snprintf(tbuf, sizeof tbuf, "%s", tasks);
        int n = 0;
        argv[n++] = "freelunch"; argv[n++] = "eval"; argv[n++] = "--model"; argv[n++] = (char *)model;
        /* at most FL_MAX_EVALS tasks after the 4 first entries, leaving room
         * for the 11 after them */
        for (char *save = NULL, *e = strtok_r(tbuf, ",", &save); e && n + 2 <= 4 + 2 * FL_MAX_EVALS;
             e = strtok_r(NULL, ",", &save)) {
            argv[n++] = "--task";
            argv[n++] = e;
        }
        argv[n++] = "--json"; argv[n++] = "--threads"; argv[n++] = tb; argv[n++] = "--cache"; argv[n++] = (char *)cache;
        if (lim) { argv[n++] = "--limit"; argv[n++] = (char *)lim; }
        if (be) { argv[n++] = "--backend"; argv[n++] = (char *)be; }
        argv[n] = NULL;
        snprintf(res, sizeof res, "%s/tasks.jsonl", dir);
        char *text = NULL;
        double asum = 0;
        int na = 0, lines = 0;
        if (run_captured(argv, res, log) == 0 && fl_read_file(res, &text, NULL) == 0) {
            for (char *save = NULL, *ln = strtok_r(text, "\n", &save); ln; ln = strtok_r(NULL, "\n", &save)) {
                cJSON *o = cJSON_Parse(ln);
                const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "task");
                if (cJSON_IsString(nm)) set_task(t, r, nm->valuestring, o, &asum, &na), lines++;
                cJSON_Delete(o);
            }
        }
        free(text);
        if (!lines) {
            fl_last_line(log, msg, sizeof msg);
            if (!msg[0]) snprintf(msg, sizeof msg, "%.1000s: freelunch eval gave no accuracy", tasks);
            ok = 0;
        } else if (na) set_num(t, r, "acc_mean", asum / na);
    }
    if (ok) {
        fl_table_set(t, r, "status", "ok");
        fl_table_set(t, r, "ppl_all", all);
        fl_table_set(t, r, "message", "the dense model, nothing pruned: the reference of every perplexity");
    } else {
        fl_table_set(t, r, "status", "error");
        fl_table_set(t, r, "message", strncmp(msg, "freelunch: ", 11) ? msg : msg + 11);
    }
    set_num(t, r, "wall_s", fl_wall_s() - t0);
    fl_table_set(t, r, "threads", tb);
    fl_table_set(t, r, "backend", be ? be : fl_gemm_backend_name());
    stamp_row(t, r, machine);
}

/* For harness/slurm.c: the local engine's cell command and row, so that a
 * SLURM array task runs and is read exactly like a local cell. */
int fl_study_cell_argv(const fl_cell_spec *s, const char *dir, const char *cache, int threads, int keep, char **argv,
                       char *store, size_t store_n) {
    return build_argv(s, dir, cache, threads, keep, argv, store, store_n);
}

pid_t fl_study_cell_spawn(const char *dir, char *const argv[]) { return spawn_argv(dir, argv); }

void fl_study_cell_row(fl_table *t, const fl_cell_spec *s, const char *dir, int status, double t0, const char *machine) {
    job_t j = { .spec = s, .t0 = t0 };
    snprintf(j.dir, sizeof j.dir, "%s", dir);
    collect(t, &j, status, machine);
}

/* ---- the command -------------------------------------------------------- */

int fl_cmd_study(int argc, char **argv) {
    static struct option o[] = {
        { "grid", required_argument, 0, 'g' }, { "out", required_argument, 0, 'o' }, { "jobs", required_argument, 0, 'J' },
        { "set", required_argument, 0, 's' }, { "dry-run", no_argument, 0, 'n' }, { "keep-models", no_argument, 0, 'k' },
        { "cache", required_argument, 0, 'C' }, { "print-default-grid", no_argument, 0, 'P' },
        { "no-share", no_argument, 0, 'X' },
        { "engine", required_argument, 0, 'E' }, { "slurm-array-max", required_argument, 0, 'A' },
        { "slurm-opt", required_argument, 0, 'O' }, { "slurm-poll", required_argument, 0, 'W' }, { "detach", no_argument, 0, 'D' },
        { "collect", no_argument, 0, 'L' }, { "slurm-task", required_argument, 0, 'T' }, FL_COMMON_OPTS, { 0, 0, 0, 0 } };
    fl_slurm_opts sl = { .poll_s = 10 };
    const char *slurm_task = NULL;
    const char *grid_file = NULL, *out = "runs/study", *cache_opt = NULL, *sets[64];
    int nsets = 0, jobs = 1, dry = 0, keep = 0, opt;
    while ((opt = getopt_long(argc, argv, "", o, NULL)) != -1) {
        switch (opt) {
        case 'g': grid_file = optarg; break;
        case 'o': out = optarg; break;
        case 'J': jobs = fl_cli_int("study", "--jobs", optarg, 1); break;
        case 's':
            if (nsets == 64) return fl_cli_usage("study", "too many --set");
            sets[nsets++] = optarg;
            break;
        case 'n': dry = 1; break;
        case 'k': keep = 1; break;
        case 'X': share_cells = 0; break;
        case 'C': cache_opt = optarg; break;
        case 'P': fputs(FL_DEFAULT_GRID, stdout); return 0;
        case 'E':
            if (strcmp(optarg, "local") && strcmp(optarg, "slurm")) return fl_cli_usage("study", "--engine: local or slurm");
            sl.on = !strcmp(optarg, "slurm");
            break;
        case 'A': sl.array_max = fl_cli_int("study", "--slurm-array-max", optarg, 1); break;
        case 'O':
            if (sl.nopt == FL_SLURM_MAX_OPTS) return fl_cli_usage("study", "too many --slurm-opt");
            if (optarg[0] != '-') return fl_cli_usage("study", "--slurm-opt: an sbatch option, starting with '-'");
            sl.opt[sl.nopt++] = optarg;
            break;
        case 'W': sl.poll_s = fl_cli_int("study", "--slurm-poll", optarg, 1); break;
        case 'D': sl.detach = 1; break;
        case 'L': sl.collect = 1; break;
        case 'T': slurm_task = optarg; break;
        case 'h': fputs(STUDY_HELP, stdout); return 0;
        default: if (!fl_cli_common_opt(opt, "study")) return fl_cli_usage("study", "unknown option");
        }
    }
    if (slurm_task) {   /* an array task (harness/slurm.c) */
        int rc = fl_slurm_task(slurm_task, argc - optind, argv + optind);
        return rc < 0 ? fl_cli_fail() : rc;
    }
    if (optind < argc) return fl_cli_usage("study", "unexpected argument");
    if ((sl.detach || sl.nopt || sl.array_max) && !sl.on) return fl_cli_usage("study", "--detach and --slurm-* need --engine slurm");
    if (sl.collect) sl.on = 1;
    char collect_grid[4200];
    if (sl.collect && !grid_file) {   /* the study's own grid, as it wrote it */
        snprintf(collect_grid, sizeof collect_grid, "%s/grid.ini", out);
        grid_file = collect_grid;
    }
    char cache[4096];
    fl_cache_dir(cache, sizeof cache, cache_opt);

    /* the grid */
    fl_grid g;
    if ((grid_file ? fl_grid_parse_file(grid_file, &g) : fl_grid_parse_string(FL_DEFAULT_GRID, "the default grid", &g)) != 0)
        return fl_cli_fail();
    for (int i = 0; i < nsets; i++)
        if (fl_grid_set(&g, sets[i]) != 0) { fl_grid_free(&g); return fl_cli_fail(); }
    int default_model = !fl_grid_get(&g, "model");
    char model[4200];
    snprintf(model, sizeof model, "%s/models/tiny", cache);
    if (default_model) {
        char a[4300];
        snprintf(a, sizeof a, "model=%s", model);
        fl_grid_set(&g, a);
    }
    resolve_presets(&g, cache);
    if (fl_grid_check(&g) != 0) { fl_grid_free(&g); return fl_cli_fail(); }
    fl_cell_spec *cells;
    int ncells;
    if (fl_grid_cells(&g, &cells, &ncells) != 0) { fl_grid_free(&g); return fl_cli_fail(); }
    fl_cell_spec *refs;
    int nrefs;
    if (fl_grid_dense_refs(cells, ncells, &refs, &nrefs) != 0) { free(cells); fl_grid_free(&g); return fl_cli_fail(); }

    char path[4200], results[4200];
    snprintf(results, sizeof results, "%s/results.csv", out);
    fl_table t;
    if (fl_table_read(results, &t) != 0) { free(cells); free(refs); fl_grid_free(&g); return fl_cli_fail(); }
    /* rows from before masks were chosen apart from recovery (no
     * mask_sha256) hold other experiments under the same cell ids: a
     * study never resumes on them */
    int stale = 0;
    for (int r = 0; r < t.nrows; r++) {
        const char *st = fl_table_get(&t, r, "status"), *mh = fl_table_get(&t, r, "mask_sha256");
        stale += st && !strcmp(st, "ok") && (!mh || !*mh) && strcmp(fl_table_get(&t, r, "role"), "dense");
    }
    if (stale) {
        fl_err("%s: %d cells were run by a freelunch that chose masks inside each recovery unit (no mask_sha256): "
               "start a new --out (freelunch report still reads this file)", results, stale);
        fl_table_free(&t);
        free(cells);
        free(refs);
        fl_grid_free(&g);
        return fl_cli_fail();
    }
    int done_before = 0, nsub = 0;
    for (int i = 0; i < ncells; i++) {
        done_before += fl_table_find(&t, cells[i].id) >= 0;
        nsub += cells[i].role == FL_ROLE_TUNE;
    }

    if (dry && sl.on) {
        int rc = fl_slurm_dry_run(&sl, &g, cells, ncells, &t, out, cache, keep);
        fl_table_free(&t);
        free(cells);
        free(refs);
        fl_grid_free(&g);
        return rc < 0 ? fl_cli_fail() : 0;
    }
    if (dry) {
        printf("%d cells (%d already in %s); predicted recovery working set and peak, MB (reconstructors/predict.c)\n",
               ncells, done_before, results);
        if (g.tune.ndims)
            printf("tuning: %d final cells, %d tuning sub-cells (%lld combinations of [tune] per cell that trains, scored on %s)\n",
                   ncells - nsub, nsub, fl_tune_ncombos(&g), fl_grid_select(&g));
        printf("%-4s %-12s %-5s %-5s %9s %9s  %s\n", "#", "cell_id", "role", "done", "working", "peak", "settings");
        for (int i = 0; i < ncells; i++) {
            char d[1024], wk[32] = "?", pk[32] = "?";
            describe(&g, &cells[i], d, sizeof d);
            fl_cell_spec p = cells[i];
            double wmax = -1, pmax = -1;
            for (int k = 0; k < (cells[i].ntune ? cells[i].ntune : 1); k++) {   /* a tuned final: its largest combination */
                char w1[32] = "", p1[32] = "";
                if (cells[i].ntune && fl_cell_tune_chosen(&g, &cells[i], k, &p) != 0) break;
                predict_cell(&p, cache, w1, p1, sizeof w1);
                if (*w1 && atof(w1) > wmax) { wmax = atof(w1); snprintf(wk, sizeof wk, "%s", w1); }
                if (*p1 && atof(p1) > pmax) { pmax = atof(p1); snprintf(pk, sizeof pk, "%s", p1); }
            }
            printf("%-4d %-12s %-5s %-5s %9s %9s  %s\n", i + 1, cells[i].id, fl_role_name(cells[i].role),
                   fl_table_find(&t, cells[i].id) >= 0 ? "yes" : "no", wk, pk, d);
        }
        /* the ladder: the largest predicted peak of each model's cells */
        {
            const char *mn[64];
            double mp[64];
            int nm = 0;
            for (int i = 0; i < ncells; i++) {
                const char *m = fl_cell_get(&cells[i], "model");
                char w1[32] = "", p1[32] = "";
                predict_cell(&cells[i], cache, w1, p1, sizeof w1);
                int k = 0;
                while (k < nm && strcmp(mn[k], m ? m : "?")) k++;
                if (k == nm && nm < 64) { mn[nm] = m ? m : "?"; mp[nm++] = -1; }
                if (k < nm && *p1 && atof(p1) > mp[k]) mp[k] = atof(p1);
            }
            if (nm > 1 || g.nvar || fl_grid_varies(&g, "model")) {
                printf("predicted recovery peak per model (the largest of its cells), MB:\n");
                for (int k = 0; k < nm; k++) {
                    const fl_preset *pr = preset_of_dir(mn[k], cache);
                    if (mp[k] >= 0) printf("  %9.2f  %s%s%s%s\n", mp[k], mn[k], pr ? " (preset " : "", pr ? pr->name : "", pr ? ")" : "");
                    else printf("  %9s  %s\n", "?", mn[k]);
                }
            }
        }
        printf("plus %d dense reference(s), run first: the unpruned model on the cells' evaluation sets (role dense)\n", nrefs);
        for (int i = 0; i < nrefs; i++) {
            const char *m = fl_cell_get(&refs[i], "model"), *e = fl_cell_get(&refs[i], "eval"), *w = fl_cell_get(&refs[i], "eval-windows"),
                       *tk = fl_cell_get(&refs[i], "eval-task"), *tl = fl_cell_get(&refs[i], "eval-task-limit");
            printf("%-4s %-12s %-5s %-5s %9s %9s  model=%s eval=%s eval-windows=%s%s%s%s%s\n", "-", refs[i].id, "dense",
                   fl_table_find(&t, refs[i].id) >= 0 ? "yes" : "no", "-", "-", m ? m : "?", e ? e : "(the test splits)",
                   w ? w : "all", tk ? " eval-task=" : "", tk ? tk : "", tl ? " eval-task-limit=" : "", tl ? tl : "");
        }
        free(refs);
        fl_table_free(&t);
        free(cells);
        fl_grid_free(&g);
        return 0;
    }

    /* one runner per results directory */
    if (fl_mkdir_p(out) != 0) goto fail;
    snprintf(path, sizeof path, "%s/cells", out);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) { fl_err("%s: cannot create directory: %s", path, strerror(errno)); goto fail; }
    snprintf(path, sizeof path, "%s/.lock", out);
    int lock = open(path, O_RDWR | O_CREAT, 0644);
    if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB) != 0) { fl_err("%s: another study is running in this directory", out); goto fail; }
    snprintf(path, sizeof path, "%s/grid.ini", out);
    if (!sl.collect && fl_grid_write(&g, path) != 0) goto fail;
    int slurm_rc = 0;

    /* the corpora and, for the default model, the base model (both cached); a --collect builds nothing */
    if (!sl.collect) {
        char *fetch[] = { "freelunch", "data", "fetch", "--cache", cache, NULL };
        if (run_self(fetch) != 0) goto fail;
        if (build_presets(&g, cache) != 0) goto fail;
    }

    char machine[512];
    fl_machine_desc(machine, sizeof machine);
    int per_job = fl_threads() / jobs;
    if (per_job < 1) per_job = 1;
    int todo = 0;
    for (int i = 0; i < ncells; i++) todo += fl_table_find(&t, cells[i].id) < 0;
    printf("study: %d cells, %d done before, %d to run; %d job(s) x %d thread(s); results in %s\n", ncells, done_before, todo,
           jobs, per_job, results);
    if (g.tune.ndims)
        printf("tuning: %d of the %d cells are sub-cells scored on %s only; each final cell runs with its best sub-cell's %s\n",
               nsub, ncells, fl_grid_select(&g), g.tune.ndims > 1 ? "values" : g.tune.dims[0].key);
    printf("machine: %s; backend %s; commit %s\n", machine, fl_gemm_backend_name(), fl_commit());
    fflush(stdout);
    for (int i = 0; i < nrefs && !sl.collect; i++) {
        if (fl_table_find(&t, refs[i].id) >= 0) continue;
        dense_row(&t, &refs[i], out, cache, per_job, machine);
        int r = t.nrows - 1;
        fl_table_pareto(&t);
        if (fl_table_write(results, &t) != 0) goto fail;
        if (!strcmp(fl_table_get(&t, r, "status"), "ok"))
            printf("[dense] the unpruned model: ppl %s (%s), %.1fs\n", fl_table_get(&t, r, "ppl"), fl_table_get(&t, r, "eval_set"),
                   fl_table_num(&t, r, "wall_s"));
        else
            printf("[dense] error: %s\n", fl_table_get(&t, r, "message"));
        fflush(stdout);
    }
    if (sl.on) {   /* harness/slurm.c (the dense references ran above, here): merges and submits under this lock, then the report as below */
        slurm_rc = fl_slurm_engine(&sl, &g, cells, ncells, &t, out, cache, keep);
        if (slurm_rc < 0) goto fail;
        if (slurm_rc == 0) goto report;
        close(lock);
        fl_table_free(&t);
        free(cells);
        free(refs);
        fl_grid_free(&g);
        return 0;
    }

    job_t *running = calloc((size_t)jobs, sizeof *running);
    char *started = calloc((size_t)(ncells ? ncells : 1), 1);
    int next = 0, active = 0, finished = 0, failed = 0;
    double t_start = fl_wall_s(), busy = 0;
    for (;;) {
        while (active < jobs) {
            /* the first cell not run yet whose sub-cells (if any) all have their rows */
            while (next < ncells && (started[next] || fl_table_find(&t, cells[next].id) >= 0)) next++;
            int pick = -1;
            for (int i = next; i < ncells && pick < 0; i++)
                if (!started[i] && fl_table_find(&t, cells[i].id) < 0 && tune_ready(&g, &cells[i], &t)) pick = i;
            if (pick < 0) break;
            started[pick] = 1;
            int slot = 0;
            while (running[slot].pid) slot++;
            job_t *j = &running[slot];
            j->own = cells[pick];
            j->spec = &j->own;
            char d[1024], why[1024] = "";
            describe(&g, &cells[pick], d, sizeof d);
            if (cells[pick].ntune) {
                double bp = NAN;
                int nok, best = tune_choose(&g, &cells[pick], &t, &bp, &nok);
                if (best < 0) {
                    /* nothing to choose from: the final is a failed row, its sub-cells' rows say why */
                    int r = fl_table_add_row(&t);
                    fl_table_set(&t, r, "cell_id", cells[pick].id);
                    fl_table_set(&t, r, "role", fl_role_name(FL_ROLE_FINAL));
                    fill_settings(&t, r, &cells[pick]);
                    fl_table_set(&t, r, "status", "error");
                    fl_table_setf(&t, r, "message", "tuning: none of its %d sub-cells finished ok on %s (see their rows, role tune)",
                                  cells[pick].ntune, fl_grid_select(&g));
                    fl_table_set(&t, r, "machine", machine);
                    fl_table_set(&t, r, "commit", fl_commit());
                    fl_table_pareto(&t);
                    if (fl_table_write(results, &t) != 0) { free(running); free(started); goto fail; }
                    finished++;
                    failed++;
                    printf("[%d/%d] error %s: %s\n", done_before + finished, ncells, d, fl_table_get(&t, r, "message"));
                    fflush(stdout);
                    continue;
                }
                if (fl_cell_tune_chosen(&g, &cells[pick], best, &j->own) != 0) { free(running); free(started); goto fail; }
                char cv[512];
                chosen_values(&g, j->spec, cv, sizeof cv);
                snprintf(why, sizeof why, ": %s chosen on %s (ppl %.4g, the best of %d ok sub-cells)", cv, fl_grid_select(&g), bp, nok);
            }
            snprintf(j->dir, sizeof j->dir, "%.3000s/cells/%s-%s", out, j->spec->name, j->spec->id);
            printf("[%d/%d] start %s%s (%s)\n", done_before + finished + active + 1, ncells, d, why, j->spec->id);
            fflush(stdout);
            if (spawn_cell(j, cache, per_job, keep) < 0) { j->pid = 0; free(running); free(started); goto fail; }
            active++;
        }
        if (!active) break;
        int st;
        pid_t pid = waitpid(-1, &st, 0);
        if (pid < 0) { if (errno == EINTR) continue; fl_err("waitpid: %s", strerror(errno)); free(running); free(started); goto fail; }
        int slot = 0;
        while (slot < jobs && running[slot].pid != pid) slot++;
        if (slot == jobs) continue;   /* not ours */
        job_t *j = &running[slot];
        collect(&t, j, st, machine);
        int r = t.nrows - 1;
        fl_table_pareto(&t);
        if (fl_table_write(results, &t) != 0) { free(running); free(started); goto fail; }
        double secs = fl_wall_s() - j->t0;
        busy += secs;
        finished++;
        active--;
        j->pid = 0;
        const char *status = fl_table_get(&t, r, "status");
        failed += strcmp(status, "ok") != 0;
        char d[1024], eta[32], took[32];
        describe(&g, j->spec, d, sizeof d);
        int left = todo - finished;
        fmt_dur(left * (busy / finished) / jobs, eta, sizeof eta);
        fmt_dur(secs, took, sizeof took);
        if (!strcmp(status, "ok"))
            printf("[%d/%d] done  %s: ppl %s (%s), working set %.2f MB, %s; ETA %s\n", done_before + finished, ncells, d,
                   fl_table_get(&t, r, "ppl"), fl_table_get(&t, r, "eval_set"), fl_table_num(&t, r, "working_bytes") / 1e6, took,
                   left ? eta : "0s");
        else
            printf("[%d/%d] %s %s: %s; ETA %s\n", done_before + finished, ncells, status, d, fl_table_get(&t, r, "message"),
                   left ? eta : "0s");
        fflush(stdout);
    }
    free(running);
    free(started);
    char took[32];
    fmt_dur(fl_wall_s() - t_start, took, sizeof took);
    printf("study: %d cells run (%d failed) in %s; %s\n", finished, failed, took, results);
report:;
    /* plots and report from the whole table (a grid whose cells all failed
     * has nothing to plot: the CSV says why) */
    int any_ok = 0;
    for (int r = 0; r < t.nrows; r++) any_ok |= !strcmp(fl_table_get(&t, r, "status"), "ok") && fl_row_final(&t, r);
    if (any_ok) {
        if (fl_report_make(results, out) != 0) goto fail;
        printf("report: %s/report.md, %s/report.html, plots in %s/plots\n", out, out, out);
    } else
        printf("no cell succeeded: no plots or report (see the messages in %s)\n", results);
    fl_table_free(&t);
    free(cells);
    free(refs);
    fl_grid_free(&g);
    close(lock);
    return 0;
fail:
    fl_table_free(&t);
    free(cells);
    free(refs);
    fl_grid_free(&g);
    return fl_cli_fail();
}
