/* freelunch study --engine slurm (harness/slurm.h; docs/ARCHITECTURE.md,
 * "Studies on SLURM").
 *
 * The study writes one sbatch script per submission: a shell `case` over
 * SLURM_ARRAY_TASK_ID, array task I running the I-th submitted cell with
 * `freelunch study --slurm-task DIR -- prune ...`, the local engine's own
 * command (fl_study_cell_argv). Grid values, cell names and paths are
 * untrusted, so every word of the script is single-quoted (quote_sh) and the
 * #SBATCH lines hold nothing but numbers; sbatch itself is run with
 * execvp, each --slurm-opt one argument, never through a shell.
 *
 * Which task ran which cell is OUT/slurm/submissions.tsv (job id, array
 * index, cell id: numbers and hex only), rewritten whole after every sbatch.
 * A cell's latest submission is the one that counts. Collecting asks SLURM
 * first (squeue: still pending or running -> neither merged nor
 * resubmitted), then takes the final state from sacct, or when the cluster
 * has no accounting from scontrol (which keeps finished jobs for
 * MinJobAge), and the wait status the task wrapper wrote
 * (DIR/task.status). Only the study, under OUT/.lock, writes results.csv;
 * a cell is merged only when it has no row, so merging is exactly once. */
#include "slurm.h"
#include "cli.h"
#include "model/err.h"
#include "model/fileio.h"
#include "model/gemm.h"
#include "model/clock.h"
#include "plots/sbuf.h"
#include <openssl/evp.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* SLURM's default MaxArraySize is 1001: larger grids go in several arrays */
#define ARRAY_CHUNK 1000

/* ---- small helpers ------------------------------------------------------ */

/* 'word' for sh: inside single quotes nothing is special but the quote itself */
static void quote_sh(fl_sbuf *b, const char *s) {
    fl_sb_printf(b, "'");
    for (; *s; s++) {
        if (*s == '\'') fl_sb_printf(b, "'\\''");
        else fl_sb_printf(b, "%c", *s);
    }
    fl_sb_printf(b, "'");
}

/* Runs argv (a SLURM command, found on PATH) and captures its stdout, and
 * stderr's last line for the message. Returns the exit code (127: could not
 * run), -1 on a system error. */
static int run_capture(char *const argv[], fl_sbuf *out, char *err, size_t errn) {
    int po[2], pe[2];
    if (pipe(po) != 0) return fl_err("pipe: %s", strerror(errno));
    if (pipe(pe) != 0) { close(po[0]); close(po[1]); return fl_err("pipe: %s", strerror(errno)); }
    pid_t pid = fork();
    if (pid < 0) { close(po[0]); close(po[1]); close(pe[0]); close(pe[1]); return fl_err("fork: %s", strerror(errno)); }
    if (pid == 0) {
        dup2(po[1], 1);
        dup2(pe[1], 2);
        close(po[0]); close(po[1]); close(pe[0]); close(pe[1]);
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) { dup2(nul, 0); close(nul); }
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run %s: %s (is SLURM installed and on PATH?)\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]);
    close(pe[1]);
    /* both pipes drained together: a chatty stderr cannot block the child */
    fl_sbuf eb = { 0 };
    int open_o = 1, open_e = 1;
    char buf[4096];
    while (open_o || open_e) {
        fd_set rs;
        FD_ZERO(&rs);
        if (open_o) FD_SET(po[0], &rs);
        if (open_e) FD_SET(pe[0], &rs);
        if (select((po[0] > pe[0] ? po[0] : pe[0]) + 1, &rs, NULL, NULL, NULL) < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int k = 0; k < 2; k++) {
            int fd = k ? pe[0] : po[0], *op = k ? &open_e : &open_o;
            if (!*op || !FD_ISSET(fd, &rs)) continue;
            ssize_t r = read(fd, buf, sizeof buf - 1);
            if (r <= 0) { *op = 0; continue; }
            buf[r] = 0;
            fl_sb_printf(k ? &eb : out, "%s", buf);
        }
    }
    close(po[0]);
    close(pe[0]);
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    /* the last non-empty line of stderr */
    err[0] = 0;
    const char *e = fl_sb_str(&eb);
    const char *line = e;
    for (const char *p = e; *p; p++)
        if (*p == '\n' && p[1]) line = p + 1;
    snprintf(err, errn, "%.*s", (int)strcspn(line, "\n"), line);
    fl_sb_free(&eb);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static void cell_dir(char *buf, size_t n, const char *out, const fl_cell_spec *s) {
    snprintf(buf, n, "%.3000s/cells/%s-%s", out, s->name, s->id);
}

static int is_hex_id(const char *s) { return strlen(s) == 12 && strspn(s, "0123456789abcdef") == 12; }
static int is_num(const char *s) { return *s && strspn(s, "0123456789") == strlen(s); }

/* ---- submissions.tsv ---------------------------------------------------- */

typedef struct {
    char job[24];   /* the array's job id */
    int idx;        /* array index */
    char id[13];    /* cell id */
} sub_t;

typedef struct {
    sub_t *v;
    int n, cap;
} subs_t;

static void subs_add(subs_t *s, const char *job, int idx, const char *id) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = realloc(s->v, (size_t)s->cap * sizeof *s->v);
        if (!s->v) { fprintf(stderr, "freelunch: out of memory\n"); exit(1); }
    }
    sub_t *e = &s->v[s->n++];
    snprintf(e->job, sizeof e->job, "%s", job);
    e->idx = idx;
    snprintf(e->id, sizeof e->id, "%s", id);
}

static int subs_read(const char *path, subs_t *s) {
    char *text = NULL;
    size_t len;
    if (access(path, F_OK) != 0) return 0;
    if (fl_read_file(path, &text, &len) != 0) return -1;
    int line = 0;
    for (char *p = text, *nl; p && *p; p = nl) {
        nl = strchr(p, '\n');
        if (nl) *nl++ = 0;
        line++;
        if (!*p || *p == '#') continue;
        char job[64], id[64];
        int idx;
        if (sscanf(p, "%63s %d %63s", job, &idx, id) != 3 || !is_num(job) || strlen(job) >= 24 || idx < 0 || !is_hex_id(id)) {
            free(text);
            return fl_err("%s:%d: not a submission line (job id, array index, cell id)", path, line);
        }
        subs_add(s, job, idx, id);
    }
    free(text);
    return 0;
}

static int subs_write(const char *path, const subs_t *s) {
    fl_sbuf b = { 0 };
    fl_sb_printf(&b, "# freelunch study --engine slurm: job id, array index, cell id (the latest line of a cell counts)\n");
    for (int i = 0; i < s->n; i++) fl_sb_printf(&b, "%s\t%d\t%s\n", s->v[i].job, s->v[i].idx, s->v[i].id);
    int rc = fl_write_file_atomic(path, fl_sb_str(&b), b.len);
    fl_sb_free(&b);
    return rc;
}

static const sub_t *subs_latest(const subs_t *s, const char *id) {
    for (int i = s->n - 1; i >= 0; i--)
        if (!strcmp(s->v[i].id, id)) return &s->v[i];
    return NULL;
}

/* ---- what SLURM says ---------------------------------------------------- */

typedef struct {
    char job[24];
    int idx;
    char state[64];   /* RUNNING, CANCELLED, TIMEOUT, ... */
    char exitc[24];   /* "code:signal", or "" */
} task_state;

typedef struct {
    task_state *v;
    int n, cap;
} states_t;

static void states_add(states_t *s, const char *job, int idx, const char *state, const char *exitc) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = realloc(s->v, (size_t)s->cap * sizeof *s->v);
        if (!s->v) { fprintf(stderr, "freelunch: out of memory\n"); exit(1); }
    }
    task_state *e = &s->v[s->n++];
    snprintf(e->job, sizeof e->job, "%s", job);
    e->idx = idx;
    snprintf(e->state, sizeof e->state, "%.*s", (int)strcspn(state, " "), state);   /* "CANCELLED by 0" */
    snprintf(e->exitc, sizeof e->exitc, "%s", exitc);
}

static const task_state *states_find(const states_t *s, const char *job, int idx) {
    for (int i = s->n - 1; i >= 0; i--)
        if (s->v[i].idx == idx && !strcmp(s->v[i].job, job)) return &s->v[i];
    return NULL;
}

/* An array's task list as SLURM prints it: "3", "[4-7%2]", "1,3-5". */
static void add_task_list(states_t *s, const char *job, const char *list, const char *state, const char *exitc) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    char *p = buf;
    if (*p == '[') p++;
    p[strcspn(p, "]%")] = 0;
    for (char *t = strtok(p, ","); t; t = strtok(NULL, ",")) {
        char *end;
        long a = strtol(t, &end, 10), b = a;
        if (end == t) continue;
        if (*end == '-') b = strtol(end + 1, &end, 10);
        for (long i = a; i <= b && i - a < 100000; i++) states_add(s, job, (int)i, state, exitc);
    }
}

/* "123_4" / "123_[5-9]"; a job that is no array ("123") is task -1 */
static void add_job_task(states_t *s, const char *jt, const char *state, const char *exitc) {
    const char *u = strchr(jt, '_');
    if (!u) {
        if (is_num(jt) && strlen(jt) < 24) states_add(s, jt, -1, state, exitc);
        return;
    }
    if (u - jt >= 24) return;
    char job[24];
    snprintf(job, sizeof job, "%.*s", (int)(u - jt), jt);
    add_task_list(s, job, u + 1, state, exitc);
}

/* Our tasks still pending, running or completing (squeue lists nothing
 * else); with NAME, the tasks of jobs so named also go to *named. */
static int query_active(states_t *act, const char *name, states_t *named) {
    struct passwd *pw = getpwuid(getuid());
    char *argv[] = { "squeue", "--noheader", "--array", "--format=%i|%T|%j", "--user", pw ? pw->pw_name : "root", NULL };
    fl_sbuf o = { 0 };
    char err[512];
    int rc = run_capture(argv, &o, err, sizeof err);
    if (rc != 0) {
        fl_sb_free(&o);
        return rc < 0 ? -1 : fl_err("squeue failed (exit %d): %s; without the queue nothing is merged or resubmitted", rc, err);
    }
    char *text = (char *)fl_sb_str(&o), *nl;
    for (char *line = text; line && *line; line = nl) {   /* "123_4|RUNNING|freelunch-..." */
        nl = strchr(line, '\n');
        if (nl) *nl++ = 0;
        char *bar = strchr(line, '|'), *bar2 = bar ? strchr(bar + 1, '|') : NULL;
        if (!bar2) continue;
        *bar = *bar2 = 0;
        add_job_task(act, line, bar + 1, "");
        if (name && named && !strcmp(bar2 + 1, name)) add_job_task(named, line, bar + 1, "");
    }
    fl_sb_free(&o);
    return 0;
}

/* Final states of the jobs' tasks: sacct where the cluster keeps accounting,
 * else scontrol (the controller remembers a finished job for MinJobAge).
 * Neither knowing a task is not an error: the task's own record decides. */
static void query_final(const char *const *jobs, int njobs, states_t *fin, int *have_sacct) {
    if (!njobs) return;
    fl_sbuf list = { 0 };
    for (int i = 0; i < njobs; i++) fl_sb_printf(&list, "%s%s", i ? "," : "", jobs[i]);
    char *sa[] = { "sacct", "--noheader", "--parsable2", "--allocations", "--format=JobID,State,ExitCode", "--jobs",
                   (char *)fl_sb_str(&list), NULL };
    fl_sbuf o = { 0 };
    char err[512];
    *have_sacct = run_capture(sa, &o, err, sizeof err) == 0;
    if (*have_sacct) {
        /* lines "123_4|CANCELLED by 0|0:15" */
        char *text = (char *)fl_sb_str(&o), *nl;
        for (char *line = text; line && *line; line = nl) {
            nl = strchr(line, '\n');
            if (nl) *nl++ = 0;
            char *f1 = strchr(line, '|'), *f2 = f1 ? strchr(f1 + 1, '|') : NULL;
            if (!f2) continue;
            *f1 = *f2 = 0;
            char jt[128];
            snprintf(jt, sizeof jt, "%s", line);
            add_job_task(fin, jt, f1 + 1, f2 + 1);
        }
    }
    fl_sb_free(&o);
    fl_sb_free(&list);
    if (*have_sacct) return;
    for (int i = 0; i < njobs; i++) {
        char *sc[] = { "scontrol", "--oneliner", "show", "job", (char *)jobs[i], NULL };
        fl_sbuf so = { 0 };
        if (run_capture(sc, &so, err, sizeof err) == 0) {
            /* one line per task record: "JobId=.. ArrayJobId=J ArrayTaskId=I .. JobState=S .. ExitCode=a:b" */
            char *text = (char *)fl_sb_str(&so), *nl;
            for (char *line = text; line && *line; line = nl) {
                nl = strchr(line, '\n');
                if (nl) *nl++ = 0;
                char job[24] = "", tasks[256] = "", state[64] = "", exitc[24] = "";
                for (char *w = line; *w;) {
                    size_t k = strcspn(w, " ");
                    char save = w[k];
                    w[k] = 0;
                    if (!strncmp(w, "ArrayJobId=", 11)) snprintf(job, sizeof job, "%s", w + 11);
                    else if (!strncmp(w, "ArrayTaskId=", 12)) snprintf(tasks, sizeof tasks, "%s", w + 12);
                    else if (!strncmp(w, "JobState=", 9)) snprintf(state, sizeof state, "%s", w + 9);
                    else if (!strncmp(w, "ExitCode=", 9)) snprintf(exitc, sizeof exitc, "%s", w + 9);
                    w[k] = save;
                    w += k + (save != 0);
                }
                if (*job && *tasks && *state) add_task_list(fin, job, tasks, state, exitc);
            }
        }
        fl_sb_free(&so);
    }
}

/* ---- the task's own record ---------------------------------------------- */

typedef struct {
    char job[64];       /* "123_4" */
    int status;         /* wait status of the cell's prune */
    double wall_s;
    char machine[512];
} task_rec;

static int read_task_rec(const char *dir, task_rec *r) {
    char p[4200];
    snprintf(p, sizeof p, "%.4000s/task.status", dir);
    char *text = NULL;
    if (access(p, F_OK) != 0 || fl_read_file(p, &text, NULL) != 0) return -1;
    int got = 0;
    memset(r, 0, sizeof *r);
    r->wall_s = NAN;
    for (char *line = text, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl) *nl++ = 0;
        if (!strncmp(line, "job ", 4)) snprintf(r->job, sizeof r->job, "%s", line + 4);
        else if (!strncmp(line, "status ", 7)) { r->status = atoi(line + 7); got = 1; }
        else if (!strncmp(line, "wall_s ", 7)) r->wall_s = atof(line + 7);
        else if (!strncmp(line, "machine ", 8)) snprintf(r->machine, sizeof r->machine, "%s", line + 8);
    }
    free(text);
    return got ? 0 : -1;
}

/* ---- the sbatch script -------------------------------------------------- */

static int self_exe(char *buf, size_t n) {
    ssize_t k = readlink("/proc/self/exe", buf, n - 1);
    if (k <= 0) return fl_err("/proc/self/exe: %s", strerror(errno));
    buf[k] = 0;
    return 0;
}

/* The script of one array over cells pick[0..n-1] (array index = position). */
/* "freelunch-" and 12 hex digits of the SHA-256 of the absolute --out: the
 * name of every job of this study, so the queue can tell them apart from
 * other studies' (and find one a killed study never recorded). */
static void job_name(const char *out, char name[32]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    snprintf(name, 32, "freelunch-study");
    if (!EVP_Digest(out, strlen(out), md, &len, EVP_sha256(), NULL) || len < 6) return;
    snprintf(name, 32, "freelunch-%02x%02x%02x%02x%02x%02x", md[0], md[1], md[2], md[3], md[4], md[5]);
}

static int write_script(fl_sbuf *b, const fl_cell_spec *cells, const int *pick, int n, int array_max, const char *out,
                        const char *cache, int keep) {
    char name[32];
    job_name(out, name);
    char exe[PATH_MAX];
    if (self_exe(exe, sizeof exe) != 0) return -1;
    fl_sb_printf(b, "#!/bin/sh\n");
    fl_sb_printf(b, "# written by `freelunch study --engine slurm`: %d cells as one job array;\n", n);
    fl_sb_printf(b, "# array task I runs the cell of case I, the same `freelunch prune` the local\n");
    fl_sb_printf(b, "# engine runs, into its cell directory (threads: SLURM_CPUS_PER_TASK, else 1)\n");
    fl_sb_printf(b, "#SBATCH --job-name=%s\n", name);   /* hex: safe */
    if (array_max > 0) fl_sb_printf(b, "#SBATCH --array=0-%d%%%d\n", n - 1, array_max);
    else fl_sb_printf(b, "#SBATCH --array=0-%d\n", n - 1);
    fl_sb_printf(b, "case \"${SLURM_ARRAY_TASK_ID:-}\" in\n");
    static char store[65536];
    char *argv[256];
    for (int k = 0; k < n; k++) {
        const fl_cell_spec *s = &cells[pick[k]];
        char dir[4200];
        cell_dir(dir, sizeof dir, out, s);
        int na = fl_study_cell_argv(s, dir, cache, -1, keep, argv, store, sizeof store);
        if (na < 0) return -1;
        fl_sb_printf(b, "%d) # cell %s\n  set -- ", k, s->id);   /* the id is 12 hex digits: safe in a comment */
        quote_sh(b, dir);
        for (int i = 1; i < na; i++) {   /* argv[0] is "freelunch": the wrapper below runs it */
            fl_sb_printf(b, " ");
            if (!strcmp(argv[i], "-1") && !strcmp(argv[i - 1], "--threads")) fl_sb_printf(b, "\"${SLURM_CPUS_PER_TASK:-1}\"");
            else quote_sh(b, argv[i]);
        }
        fl_sb_printf(b, " ;;\n");
    }
    fl_sb_printf(b, "*) echo \"freelunch: array task ${SLURM_ARRAY_TASK_ID:-(none)} has no cell in this script\" >&2; exit 2 ;;\n");
    fl_sb_printf(b, "esac\n");
    fl_sb_printf(b, "dir=$1\nshift\nexec ");
    quote_sh(b, exe);
    fl_sb_printf(b, " study --slurm-task \"$dir\" -- \"$@\"\n");
    return 0;
}

/* cells to submit: no row (failed rows are dropped by the caller first) and no live task */
static int pending_cells(const fl_cell_spec *cells, int ncells, const fl_table *t, int *pick) {
    int n = 0;
    for (int i = 0; i < ncells; i++)
        if (fl_table_find(t, cells[i].id) < 0) pick[n++] = i;
    return n;
}

int fl_slurm_dry_run(const fl_slurm_opts *o, const fl_grid *g, const fl_cell_spec *cells, int ncells, const fl_table *t,
                     const char *out, const char *cache, int keep) {
    if (g->tune.ndims) return fl_err("%s: --engine slurm does not run [tune] grids yet (use --engine local)", g->source);
    int *pick = malloc(sizeof(int) * (size_t)(ncells ? ncells : 1));
    int n = pending_cells(cells, ncells, t, pick);
    char aout[PATH_MAX], acache[PATH_MAX];
    /* the paths the real run would write: absolute, so a node finds them */
    if (!realpath(out, aout)) snprintf(aout, sizeof aout, "%s", out);
    if (!realpath(cache, acache)) snprintf(acache, sizeof acache, "%s", cache);
    char name[32];
    job_name(aout, name);
    printf("# sbatch --parsable --output=%s/slurm/%%A_%%a.out --job-name=%s", aout, name);
    for (int i = 0; i < o->nopt; i++) printf(" %s", o->opt[i]);
    printf(" SCRIPT\n# %d of the %d cells have no row in results.csv%s\n", n, ncells,
           n > ARRAY_CHUNK ? " (the first array shown; SLURM's MaxArraySize splits them)" : "");
    int rc = 0;
    if (n) {
        fl_sbuf b = { 0 };
        rc = write_script(&b, cells, pick, n > ARRAY_CHUNK ? ARRAY_CHUNK : n, o->array_max, aout, acache, keep);
        if (rc == 0) fputs(fl_sb_str(&b), stdout);
        fl_sb_free(&b);
    }
    free(pick);
    return rc;
}

/* ---- collecting ----------------------------------------------------------- */

static void drop_row(fl_table *t, int r) {
    for (int c = 0; c < FL_RESULT_NCOLS; c++) free(t->rows[r][c]);
    free(t->rows[r]);
    memmove(&t->rows[r], &t->rows[r + 1], (size_t)(t->nrows - r - 1) * sizeof *t->rows);
    t->nrows--;
}

typedef struct {
    int done, failed, running, pending, merged_now;
} counts_t;

static int active_state(const char *st) {
    /* squeue's states that are not final */
    return strcmp(st, "COMPLETED") && strcmp(st, "CANCELLED") && strcmp(st, "FAILED") && strcmp(st, "TIMEOUT") &&
           strcmp(st, "OUT_OF_MEMORY") && strcmp(st, "NODE_FAIL") && strcmp(st, "PREEMPTED") && strcmp(st, "BOOT_FAIL") &&
           strcmp(st, "DEADLINE");
}

/* One look at the queue: every cell whose latest task is over and that has
 * no row becomes one; results.csv is rewritten after each. */
static int collect_pass(const fl_cell_spec *cells, int ncells, fl_table *t, const subs_t *subs, const char *out,
                        const char *results, counts_t *c, int ntotal) {
    states_t act = { 0 }, fin = { 0 };
    memset(c, 0, sizeof *c);
    if (query_active(&act, NULL, NULL) != 0) return -1;
    /* the jobs whose tasks may need a final state */
    const char **jobs = malloc(sizeof(char *) * (size_t)(subs->n ? subs->n : 1));
    int njobs = 0;
    for (int i = 0; i < ncells; i++) {
        const sub_t *s = fl_table_find(t, cells[i].id) < 0 ? subs_latest(subs, cells[i].id) : NULL;
        if (!s || states_find(&act, s->job, s->idx)) continue;
        int seen = 0;
        for (int k = 0; k < njobs && !seen; k++) seen = !strcmp(jobs[k], s->job);
        if (!seen) jobs[njobs++] = s->job;
    }
    int have_sacct = 0;
    query_final(jobs, njobs, &fin, &have_sacct);
    char machine[512];
    fl_machine_desc(machine, sizeof machine);
    int rc = 0;
    for (int i = 0; i < ncells && rc == 0; i++) {
        const fl_cell_spec *s = &cells[i];
        int r = fl_table_find(t, s->id);
        if (r >= 0) {
            c->done++;
            c->failed += strcmp(fl_table_get(t, r, "status"), "ok") != 0;
            continue;
        }
        const sub_t *sub = subs_latest(subs, s->id);
        if (!sub) continue;   /* missing: never submitted */
        const task_state *a = states_find(&act, sub->job, sub->idx);
        if (a && active_state(a->state)) {
            if (!strcmp(a->state, "PENDING")) c->pending++;
            else c->running++;
            continue;
        }
        /* over: SLURM's final state and the task's own record */
        char dir[4200], jt[64];
        cell_dir(dir, sizeof dir, out, s);
        snprintf(jt, sizeof jt, "%s_%d", sub->job, sub->idx);
        const task_state *f = states_find(&fin, sub->job, sub->idx);
        task_rec rec;
        int has_rec = read_task_rec(dir, &rec) == 0 && !strcmp(rec.job, jt);
        /* the cell finished when its wrapper recorded exit 0: a cancel that
         * lands while the task exits makes SLURM say CANCELLED of a cell
         * whose result is whole (and the row still needs freelunch.json) */
        int ok = has_rec && WIFEXITED(rec.status) && WEXITSTATUS(rec.status) == 0;
        int status = has_rec ? rec.status : (1 << 8);   /* no record: the task never ran or was killed with its wrapper */
        double wall = has_rec && isfinite(rec.wall_s) ? rec.wall_s : 0;
        fl_study_cell_row(t, s, dir, status, fl_wall_s() - wall, has_rec && *rec.machine ? rec.machine : machine);
        int row = t->nrows - 1;
        if (!ok || strcmp(fl_table_get(t, row, "status"), "ok")) {
            char msg[2600];
            const char *prev = fl_table_get(t, row, "message");
            if (f)
                snprintf(msg, sizeof msg, "SLURM %s (task %s, exit code %s)%s%.2000s", f->state, jt, *f->exitc ? f->exitc : "?",
                         *prev ? ": " : "", prev);
            else
                snprintf(msg, sizeof msg, "SLURM has no record of task %s (%s)%s%.2000s", jt,
                         have_sacct ? "not in sacct" : "no accounting, and the controller forgot it", *prev ? ": " : "", prev);
            if (!has_rec && f && !strcmp(f->state, "COMPLETED")) snprintf(msg, sizeof msg, "task %s completed without running the cell (see %s/slurm/%s.out)", jt, out, jt);
            fl_table_set(t, row, "status", "error");
            fl_table_set(t, row, "message", msg);
            if (!has_rec) fl_table_set(t, row, "wall_s", "");
        }
        fl_table_pareto(t);
        if (fl_table_write(results, t) != 0) rc = -1;
        c->done++;
        c->merged_now++;
        const char *st = fl_table_get(t, row, "status");
        c->failed += strcmp(st, "ok") != 0;
        if (!strcmp(st, "ok"))
            printf("[%d/%d] ok    %s (%s): ppl %s (%s)\n", c->done, ntotal, s->name, s->id, fl_table_get(t, row, "ppl"),
                   fl_table_get(t, row, "eval_set"));
        else
            printf("[%d/%d] %s %s (%s): %s\n", c->done, ntotal, st, s->name, s->id, fl_table_get(t, row, "message"));
        fflush(stdout);
    }
    free(jobs);
    free(act.v);
    free(fin.v);
    return rc;
}

/* ---- submitting ----------------------------------------------------------- */

static int submit(const fl_slurm_opts *o, const fl_cell_spec *cells, const int *pick, int n, subs_t *subs, const char *out,
                  const char *cache, int keep, const char *subs_path) {
    for (int at = 0; at < n; at += ARRAY_CHUNK) {
        int m = n - at < ARRAY_CHUNK ? n - at : ARRAY_CHUNK;
        fl_sbuf b = { 0 };
        if (write_script(&b, cells, pick + at, m, o->array_max, out, cache, keep) != 0) { fl_sb_free(&b); return -1; }
        char script[4200], outpat[4300], name[32], namearg[48];
        job_name(out, name);
        snprintf(namearg, sizeof namearg, "--job-name=%s", name);
        snprintf(script, sizeof script, "%s/slurm/next.sh", out);
        int wrc = fl_write_file_atomic(script, fl_sb_str(&b), b.len);
        fl_sb_free(&b);
        if (wrc != 0) return -1;
        /* sbatch expands %A/%a in --output; a '%' of the path itself would be expanded too */
        if (strchr(out, '%')) snprintf(outpat, sizeof outpat, "--output=/dev/null");
        else snprintf(outpat, sizeof outpat, "--output=%s/slurm/%%A_%%a.out", out);
        char *argv[FL_SLURM_MAX_OPTS + 8];
        int na = 0;
        argv[na++] = "sbatch";
        argv[na++] = "--parsable";
        argv[na++] = outpat;
        argv[na++] = namearg;
        for (int i = 0; i < o->nopt; i++) argv[na++] = (char *)o->opt[i];
        argv[na++] = script;
        argv[na] = NULL;
        fl_sbuf so = { 0 };
        char err[512];
        int rc = run_capture(argv, &so, err, sizeof err);
        char job[64];
        snprintf(job, sizeof job, "%.*s", (int)strcspn(fl_sb_str(&so), ";\n"), fl_sb_str(&so));   /* "123" or "123;cluster" */
        fl_sb_free(&so);
        if (rc != 0) return rc < 0 ? -1 : fl_err("sbatch failed (exit %d): %s", rc, err);
        if (!is_num(job) || strlen(job) >= 24) return fl_err("sbatch printed no job id (got \"%s\")", job);
        for (int k = 0; k < m; k++) subs_add(subs, job, k, cells[pick[at + k]].id);
        if (subs_write(subs_path, subs) != 0) return -1;
        char keepname[4300];
        snprintf(keepname, sizeof keepname, "%s/slurm/%s.sh", out, job);
        if (rename(script, keepname) != 0) return fl_err("%s: cannot rename to %s: %s", script, keepname, strerror(errno));
        if (o->array_max > 0)
            printf("slurm: submitted job %s: %d cells as array tasks 0-%d, at most %d at once (script %s)\n", job, m, m - 1,
                   o->array_max, keepname);
        else
            printf("slurm: submitted job %s: %d cells as array tasks 0-%d (script %s)\n", job, m, m - 1, keepname);
        fflush(stdout);
    }
    return 0;
}

static void fmt_dur(double s, char *buf, size_t n) {
    if (s < 90) snprintf(buf, n, "%.0fs", s);
    else if (s < 5400) snprintf(buf, n, "%.0fm%02.0fs", floor(s / 60), fmod(s, 60));
    else snprintf(buf, n, "%.0fh%02.0fm", floor(s / 3600), fmod(s, 3600) / 60);
}

int fl_slurm_engine(const fl_slurm_opts *o, const fl_grid *g, const fl_cell_spec *cells, int ncells, fl_table *t,
                    const char *out_rel, const char *cache_rel, int keep) {
    if (g->tune.ndims) return fl_err("%s: --engine slurm does not run [tune] grids yet (use --engine local)", g->source);
    char out[PATH_MAX], cache[PATH_MAX], path[PATH_MAX + 64], subs_path[PATH_MAX + 64], results[PATH_MAX + 64];
    if (!realpath(out_rel, out)) return fl_err("%s: %s", out_rel, strerror(errno));
    if (!realpath(cache_rel, cache)) snprintf(cache, sizeof cache, "%s", cache_rel);
    snprintf(path, sizeof path, "%s/slurm", out);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) return fl_err("%s: cannot create directory: %s", path, strerror(errno));
    snprintf(subs_path, sizeof subs_path, "%s/slurm/submissions.tsv", out);
    snprintf(results, sizeof results, "%s/results.csv", out);
    subs_t subs = { 0 };
    int rc = -1;
    int *pick = malloc(sizeof(int) * (size_t)(ncells ? ncells : 1));
    if (subs_read(subs_path, &subs) != 0) goto done;
    counts_t c;
    /* what finished since the last look */
    if (collect_pass(cells, ncells, t, &subs, out, results, &c, ncells) != 0) goto done;
    if (o->collect) {
        printf("slurm: %d of %d cells have rows (%d failed), %d running, %d pending\n", c.done, ncells, c.failed, c.running,
               c.pending);
        rc = c.running + c.pending ? 1 : 0;
        goto done;
    }
    /* resubmit: failed rows go (their cell runs again), then every cell with
     * no row whose latest task SLURM no longer runs */
    {
        states_t act = { 0 }, named = { 0 };
        char name[32];
        job_name(out, name);
        if (query_active(&act, name, &named) != 0) goto done;
        /* a job of this study that submissions.tsv does not know (a study
         * killed between sbatch and writing it) may be running cells:
         * submitting them again could run a cell twice at once */
        for (int i = 0; i < named.n; i++) {
            int known = 0;
            for (int k = 0; k < subs.n && !known; k++) known = !strcmp(subs.v[k].job, named.v[i].job);
            if (!known) {
                fl_err("%s: SLURM job %s (named %s, this study's) is queued but not in %s (a study killed while "
                       "submitting?): wait for it or scancel %s, then run again", out, named.v[i].job, name, subs_path,
                       named.v[i].job);
                free(act.v);
                free(named.v);
                goto done;
            }
        }
        free(named.v);
        int nfailed = 0;
        for (int i = 0; i < ncells; i++) {
            int r = fl_table_find(t, cells[i].id);
            if (r >= 0 && strcmp(fl_table_get(t, r, "status"), "ok")) { drop_row(t, r); nfailed++; }
        }
        int n = 0;
        for (int i = 0; i < ncells; i++) {
            if (fl_table_find(t, cells[i].id) >= 0) continue;
            const sub_t *s = subs_latest(&subs, cells[i].id);
            const task_state *a = s ? states_find(&act, s->job, s->idx) : NULL;
            if (a && active_state(a->state)) continue;   /* still queued or running: never twice */
            pick[n++] = i;
        }
        free(act.v);
        printf("slurm: %d cells to submit (%d failed before, %d never run), %d have rows, %d still queued or running\n", n,
               nfailed, n - nfailed, c.done - nfailed, c.running + c.pending);
        fflush(stdout);
        if (n && submit(o, cells, pick, n, &subs, out, cache, keep, subs_path) != 0) goto done;
        if (nfailed && fl_table_write(results, t) != 0) goto done;   /* after sbatch: a failed submission keeps the rows */
    }
    if (o->detach) {
        printf("slurm: detached; `freelunch study --collect --out %s` merges the finished cells (any number of times)\n", out_rel);
        rc = 1;
        goto done;
    }
    /* wait, merging as tasks finish */
    {
        double t0 = fl_wall_s(), last_print = 0;
        int base = -1, last_done = -1, last_run = -1;
        for (;;) {
            if (collect_pass(cells, ncells, t, &subs, out, results, &c, ncells) != 0) goto done;
            if (base < 0) base = c.done;
            int left = c.running + c.pending;
            double now = fl_wall_s();
            if (c.done != last_done || c.running != last_run || now - last_print > 60 || !left) {
                char eta[32] = "?";
                int got = c.done - base;
                if (got > 0) fmt_dur((now - t0) / got * left, eta, sizeof eta);
                printf("slurm: %d/%d cells done (%d failed), %d running, %d pending; ETA %s\n", c.done, ncells, c.failed,
                       c.running, c.pending, left ? eta : "0s");
                fflush(stdout);
                last_print = now;
                last_done = c.done;
                last_run = c.running;
            }
            if (!left) break;
            struct timespec ts = { (time_t)o->poll_s, (long)((o->poll_s - floor(o->poll_s)) * 1e9) };
            nanosleep(&ts, NULL);
        }
    }
    rc = 0;
done:
    free(pick);
    free(subs.v);
    return rc;
}

/* ---- the array task ------------------------------------------------------- */

static volatile sig_atomic_t child_pid;

static void forward(int sig) {
    if (child_pid > 0) kill((pid_t)child_pid, sig);
}

int fl_slurm_task(const char *dir, int argc, char **argv) {
    if (argc < 1 || strcmp(argv[0], "prune")) return fl_err("--slurm-task %s: expected `-- prune ARGS...`", dir);
    char p[4200], logp[4200];
    snprintf(p, sizeof p, "%.4000s/task.status", dir);
    snprintf(logp, sizeof logp, "%.4000s/log", dir);
    unlink(p);   /* never read a previous task's record as this one's */
    char **av = calloc((size_t)argc + 2, sizeof *av);
    if (!av) return fl_err("out of memory");
    av[0] = "freelunch";
    for (int i = 0; i < argc; i++) av[i + 1] = argv[i];
    double t0 = fl_wall_s();
    /* scancel and time limits signal every process of the task; the wrapper
     * passes them on and stays to write the record (exec resets the
     * handlers in the cell) */
    signal(SIGTERM, forward);
    signal(SIGINT, forward);
    signal(SIGHUP, forward);
    pid_t pid = fl_study_cell_spawn(dir, av);   /* the local engine's own start of a cell */
    free(av);
    if (pid < 0) return -1;
    child_pid = pid;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return fl_err("waitpid: %s", strerror(errno));
    const char *job = getenv("SLURM_ARRAY_JOB_ID"), *task = getenv("SLURM_ARRAY_TASK_ID");
    char machine[512];
    fl_machine_desc(machine, sizeof machine);
    for (char *q = machine; *q; q++) if (*q == '\n') *q = ' ';
    fl_sbuf b = { 0 };
    fl_sb_printf(&b, "job %s_%s\nstatus %d\nwall_s %.3f\nmachine %s\n", job ? job : "?", task ? task : "?", st, fl_wall_s() - t0,
                 machine);
    int rc = fl_write_file_atomic(p, fl_sb_str(&b), b.len);
    fl_sb_free(&b);
    if (rc != 0) return -1;
    if (WIFSIGNALED(st)) {
        fprintf(stderr, "freelunch: cell killed by signal %d (%s); see %s\n", WTERMSIG(st), strsignal(WTERMSIG(st)), logp);
        return 128 + WTERMSIG(st);
    }
    return WEXITSTATUS(st);
}
