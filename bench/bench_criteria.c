/* Speed of every pruning criterion (FL_CRITERIA) on GPT-2-small MLP layers
 * with 128 x 256 = 32768 calibration tokens, and SparseGPT against the
 * PyTorch implementation of the same algorithm (tests/oracle/
 * sparsegpt_ref.py in float32, Debian's /usr/bin/python3) on the same data
 * and the same number of threads.
 *
 * Layers: fc1 W [3072, 768] and fc2 W [768, 3072] (rows = outputs), random
 * uniform weights; X [32768, in] uniform noise plus a rank-64 random mix
 * (so X^T X is not diagonal), with uneven column scales.
 *
 *   RESULT stats <norms|gram> <layer> ms=<median>
 *   RESULT crit <criterion> <layer> <pattern> ms=<median>
 *   RESULT sparsegpt-torch <layer> <pattern> fl_ms=<prune> pt_ms=<prune>
 *          ratio=<pt/fl> higher=freelunch-faster fl_h_ms=<Gram> pt_h_ms=<H> ratio_total=<(pt_h+pt)/(fl_h+fl)>
 *          mask_diff=<entries whose kept/pruned differs> w_relerr=<||W-W_pt||_F/||W_pt||_F>
 *
 * A criterion's time is fl_criterion_run (scores, mask, weight update,
 * zeroing, the exact pattern check), statistics excluded; PyTorch's prune
 * time is the same span of its fasterprune (from H to the pruned W). ratio
 * > 1 means freelunch is faster (target >= 1x). mask_diff / w_relerr
 * compare the two float32 results (ties and float32 rounding make a few
 * masks differ at this size; tests/test_sparsegpt.c checks agreement
 * exactly against float64).
 *
 * Usage: bench_criteria [--quick] [--ref PATH] [criterion ...]
 *   criteria: those to time (default: every registered one); --quick
 *   times fc1 only with one rep. Run from the repository root (or give
 *   --ref tests/oracle/sparsegpt_ref.py); without python3-torch the
 *   comparison is skipped (a NO-PYTORCH line).
 * Env: BENCH_THREADS (default physical cores), BENCH_MIN_REPS (reps per
 *   measurement, default 3; the median is reported; a criterion stops
 *   repeating once it has spent 20 s). */
#include "benchutil.h"
#include "criteria/criterion.h"
#include "model/clock.h"
#include "model/alloc.h"
#include "model/err.h"
#include "model/gemm.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PY "/usr/bin/python3"
#define NTOK (128 * 256)

static uint64_t rs = 0x243F6A8885A308D3ull;
static float frand(void) { return bench_frand(&rs); }

static int write_raw(const char *path, const void *p, size_t bytes) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = fwrite(p, 1, bytes, f) == bytes;
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int read_raw(const char *path, void *p, size_t bytes) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    int ok = fread(p, 1, bytes, f) == bytes;
    fclose(f);
    return ok ? 0 : -1;
}

/* Times collecting `kind` statistics of X [NTOK, C] reps times into t[];
 * *st keeps the last run's. */
static void time_stats(fl_stats *st, fl_stats_kind kind, const float *X, int C, int reps, double *t) {
    for (int k = 0; k < reps; k++) {
        fl_stats_init(st, kind, C);
        double a = fl_wall_s();
        fl_stats_add(st, X, NTOK);
        t[k] = fl_wall_s() - a;
        if (k + 1 < reps) fl_stats_free(st);
    }
}

static int wanted(const char *name, char **sel, int nsel) {
    if (!nsel) return 1;
    for (int i = 0; i < nsel; i++)
        if (!strcmp(sel[i], name)) return 1;
    return 0;
}

int main(int argc, char **argv) {
    const char *ref = "tests/oracle/sparsegpt_ref.py";
    int quick = 0, nsel = 0;
    char **sel = calloc(argc, sizeof *sel);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) quick = 1;
        else if (!strcmp(argv[i], "--ref") && i + 1 < argc) ref = argv[++i];
        else {
            if (!fl_criterion_find(argv[i], NULL)) { fprintf(stderr, "bench_criteria: %s\n", fl_errmsg()); return 2; }
            sel[nsel++] = argv[i];
        }
    }
    int nt = fl_threads_init(bench_env_int("BENCH_THREADS", 0));
    int reps = quick ? 1 : bench_env_int("BENCH_MIN_REPS", 3);
    if (reps < 1) reps = 1;
    if (reps > 50) reps = 50;
    int have_torch = access(PY, X_OK) == 0 && access(ref, R_OK) == 0 &&
                     system(PY " -c 'import torch' >/dev/null 2>&1") == 0;
    printf("THREADS %d\n", nt);
    printf("criteria: %d calibration tokens, %d rep(s) per measurement (median), backend %s\n", NTOK, reps,
           fl_gemm_backend_name());

    static const struct { const char *name; int rows, cols; } LAYERS[] = { { "fc1-3072x768", 3072, 768 },
                                                                           { "fc2-768x3072", 768, 3072 } };
    static const struct { const char *label, *sparsity, *kind, *py; } PATS[] = {
        { "row0.5", "0.5", "row", "row:0.5" }, { "2:4", "2:4", NULL, "nm:2:4" } };
    const int nlayers = quick ? 1 : 2;
    int failed = 0;

    for (int li = 0; li < nlayers; li++) {
        const int R = LAYERS[li].rows, C = LAYERS[li].cols;
        const char *lname = LAYERS[li].name;
        float *W0 = fl_allocf((size_t)R * C), *W = fl_allocf((size_t)R * C);
        float *X = fl_allocf((size_t)NTOK * C);
        uint8_t *mask = fl_alloc((size_t)R * C);
        for (int64_t i = 0; i < (int64_t)R * C; i++) W0[i] = frand() * 0.05f;
        {   /* X = (U + V B) diag(s): U [n,C] and V [n,64] uniform, B [64,C] */
            const int K = 64;
            float *V = fl_allocf((size_t)NTOK * K), *B = fl_allocf((size_t)K * C), *s = fl_allocf((size_t)C);
            for (int64_t i = 0; i < (int64_t)NTOK * C; i++) X[i] = frand();
            for (int64_t i = 0; i < (int64_t)NTOK * K; i++) V[i] = frand();
            for (int64_t i = 0; i < (int64_t)K * C; i++) B[i] = frand() * 0.5f;
            for (int c = 0; c < C; c++) s[c] = 0.5f + 1.5f * (frand() + 1.0f);
            fl_gemm(0, 0, NTOK, C, K, 1.0f, V, K, B, C, 1.0f, X, C);
            for (int64_t r = 0; r < NTOK; r++)
                for (int c = 0; c < C; c++) X[r * C + c] *= s[c];
            fl_free(V); fl_free(B); fl_free(s);
        }

        /* statistics */
        fl_stats norms, gram;
        double tn[50], tg[50];
        time_stats(&norms, FL_STATS_NORMS, X, C, reps, tn);
        time_stats(&gram, FL_STATS_GRAM, X, C, reps, tg);
        double fl_h_ms = 1e3 * bench_median(tg, reps);
        printf("RESULT stats norms %s ms=%.2f\n", lname, 1e3 * bench_median(tn, reps));
        printf("RESULT stats gram %s ms=%.2f\n", lname, fl_h_ms);
        fflush(stdout);

        /* every criterion x pattern */
        double sgpt_ms[2] = { -1, -1 };
        for (int ci = 0; FL_CRITERIA[ci]; ci++) {
            const fl_criterion *c = FL_CRITERIA[ci];
            if (!wanted(c->name, sel, nsel)) continue;
            /* a structured criterion (no prune function) scores whole heads,
             * channels or blocks of a model, not one matrix under a pattern */
            if (!c->prune) continue;
            fl_crit_inst inst;   /* the defaults: opened once, as a cell does */
            if (fl_criterion_open(c->name, &inst) != 0) { fprintf(stderr, "bench_criteria: %s\n", fl_errmsg()); return 2; }
            for (int pi = 0; pi < 2; pi++) {
                fl_pattern p;
                if (fl_pattern_parse(PATS[pi].sparsity, PATS[pi].kind, &p) != 0) return 2;
                fl_stats_kind sk = fl_criterion_stats(&inst);
                double t[50];
                int ok = 1;
                int done = 0;
                double spent = 0;
                for (int k = 0; k < reps && ok && (k == 0 || spent < 20.0); k++) {
                    memcpy(W, W0, sizeof(float) * R * C);
                    fl_prune_job job = { .W = W, .rows = R, .cols = C, .pat = p, .mask = mask, .seed = 1,
                                         .st = sk == FL_STATS_NONE ? NULL : sk == FL_STATS_NORMS ? &norms : &gram };
                    double a = fl_wall_s();
                    if (fl_criterion_run(&inst, &job) != 0) {
                        fprintf(stderr, "bench_criteria: %s on %s %s: %s\n", c->name, lname, PATS[pi].label, fl_errmsg());
                        ok = 0;
                        failed = 1;
                    }
                    t[k] = fl_wall_s() - a;
                    spent += t[k];
                    done++;
                }
                if (!ok) continue;
                double ms = 1e3 * bench_median(t, done);
                if (!strcmp(c->name, "sparsegpt")) sgpt_ms[pi] = ms;
                printf("RESULT crit %s %s %s ms=%.2f\n", c->name, lname, PATS[pi].label, ms);
                fflush(stdout);
            }
            fl_criterion_close(&inst);
        }

        /* SparseGPT against PyTorch: same W, X, pattern and threads */
        if (!have_torch) {
            printf("RESULT sparsegpt-torch %s NO-PYTORCH (%s or %s missing)\n", lname, PY, ref);
        } else if (sgpt_ms[0] >= 0 || sgpt_ms[1] >= 0) {
            char dir[1024], path[1200], cmd[4096], line[1024];
            const char *base = getenv("TMPDIR");
            snprintf(dir, sizeof dir, "%s/flbenchcrit.XXXXXX", base && *base ? base : "/tmp");
            if (!mkdtemp(dir)) { perror("mkdtemp"); return 1; }
            snprintf(path, sizeof path, "%s/W.f32", dir);
            int wr = write_raw(path, W0, sizeof(float) * R * C);
            snprintf(path, sizeof path, "%s/X.f32", dir);
            wr |= write_raw(path, X, sizeof(float) * (size_t)NTOK * C);
            if (wr) { fprintf(stderr, "bench_criteria: cannot write %s\n", path); return 1; }
            float *Wref = fl_allocf((size_t)R * C);
            uint8_t *mref = fl_alloc((size_t)R * C);
            for (int pi = 0; pi < 2; pi++) {
                if (sgpt_ms[pi] < 0) continue;
                snprintf(cmd, sizeof cmd, "%s %s '%s' %d %d %d %s --dtype float32 --threads %d --bench %d", PY, ref, dir,
                         R, C, NTOK, PATS[pi].py, nt, reps);
                FILE *f = popen(cmd, "r");
                double pt_h = -1, pt_p = -1;
                while (f && fgets(line, sizeof line, f)) {
                    char *h = strstr(line, "h_ms="), *q = strstr(line, "prune_ms=");
                    if (!strncmp(line, "RESULT torch-sparsegpt", 22) && h && q) { pt_h = atof(h + 5); pt_p = atof(q + 9); }
                }
                int rc = f ? pclose(f) : -1;
                if (rc != 0 || pt_p < 0) {
                    fprintf(stderr, "bench_criteria: `%s` failed (status %d)\n", cmd, rc);
                    failed = 1;
                    continue;
                }
                /* agreement of the two float32 results */
                fl_pattern p;
                fl_pattern_parse(PATS[pi].sparsity, PATS[pi].kind, &p);
                memcpy(W, W0, sizeof(float) * R * C);
                fl_crit_inst c;
                int opened = fl_criterion_open("sparsegpt", &c) == 0;
                fl_prune_job job = { .W = W, .rows = R, .cols = C, .pat = p, .mask = mask, .st = &gram };
                long long diff = -1;
                double werr = -1;
                snprintf(path, sizeof path, "%s/W_ref.f32", dir);
                char mpath[1200];
                snprintf(mpath, sizeof mpath, "%s/mask_ref.u8", dir);
                if (opened && fl_criterion_run(&c, &job) == 0 && read_raw(path, Wref, sizeof(float) * R * C) == 0 &&
                    read_raw(mpath, mref, (size_t)R * C) == 0) {
                    diff = 0;
                    for (int64_t i = 0; i < (int64_t)R * C; i++) diff += mask[i] != mref[i];
                    double dd = 0, ww = 1e-300;
                    for (int64_t i = 0; i < (int64_t)R * C; i++) {
                        double d = (double)W[i] - Wref[i];
                        dd += d * d;
                        ww += (double)Wref[i] * Wref[i];
                    }
                    werr = sqrt(dd / ww);
                }
                fl_criterion_close(&c);
                double fl = sgpt_ms[pi];
                printf("RESULT sparsegpt-torch %s %s fl_ms=%.2f pt_ms=%.2f ratio=%.2f higher=freelunch-faster fl_h_ms=%.2f pt_h_ms=%.2f "
                       "ratio_total=%.2f mask_diff=%lld w_relerr=%.2g\n",
                       lname, PATS[pi].label, fl, pt_p, pt_p / fl, fl_h_ms, pt_h, (pt_h + pt_p) / (fl_h_ms + fl), diff,
                       werr);
                fflush(stdout);
            }
            fl_free(Wref); fl_free(mref);
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
            if (system(cmd) != 0) fprintf(stderr, "bench_criteria: could not remove %s\n", dir);
        }
        fl_stats_free(&norms); fl_stats_free(&gram);
        fl_free(W0); fl_free(W); fl_free(X); fl_free(mask);
    }

    free(sel);
    return failed;
}
