/* GEMM dispatch by shape (model/gemm.h): the decision from timings, auto's
 * choice per shape with injected timings (never real ones: a test must not
 * depend on the machine's load), the cache file's round trip, a corrupt,
 * mismatched or invalid file measured again, a forced backend bypassing the
 * cache, small and nested shapes, the profile's record, and two processes
 * deciding the same new shapes at once ending with one choice per shape.
 * Real timing is exercised once, for the slice a big shape is timed on,
 * without asserting which backend wins. */
#include "testutil.h"
#include "model/fileio.h"
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <omp.h>
#include <spawn.h>
#include <sys/wait.h>

extern char **environ;

/* Injected timings: shapes whose M is odd prefer oneDNN (openblas 2 ms,
 * onednn 1 ms), the others OpenBLAS (1 ms against 2 ms); `calls` counts
 * how often the dispatch asked. */
typedef struct { int calls; int prefer; /* 0: by M's parity; 1/2: always openblas/onednn */ } timer_ctx;

static double fake_timer(void *ctx, fl_backend be, int ta, int tb, int M, int N, int K, int rep) {
    timer_ctx *c = ctx;
    (void)ta; (void)tb; (void)N; (void)K; (void)rep;
    c->calls++;
    int want_dnnl = c->prefer ? c->prefer == 2 : (M & 1);
    return (be == FL_BACKEND_ONEDNN) == want_dnnl ? 1e-3 : 2e-3;
}

static void fill(float *x, size_t n, unsigned s) {
    for (size_t i = 0; i < n; i++) { s = s * 1664525u + 1013904223u; x[i] = (float)(s >> 8) / 16777216.0f - 0.5f; }
}

/* C = op(A) op(B) through fl_gemm, checked against a double-precision loop:
 * whichever backend ran, only float reassociation may differ. */
static void gemm_checked(int ta, int tb, int M, int N, int K) {
    float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N),
          *C = malloc(sizeof(float) * (size_t)M * N);
    fill(A, (size_t)M * K, 1); fill(B, (size_t)K * N, 2);
    int lda = ta ? M : K, ldb = tb ? K : N;
    fl_gemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
    for (int i = 0; i < M; i += 7)
        for (int j = 0; j < N; j += 5) {
            double s = 0;
            for (int k = 0; k < K; k++)
                s += (double)(ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) *
                     (tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j]);
            assert_true(fabs(C[(size_t)i * N + j] - s) <= 1e-5 * K);
        }
    free(A); free(B); free(C);
}

/* The recorded shape (M, N, K, ta, tb, nested), failing when absent. */
static fl_gemm_shape get_shape(int M, int N, int K, int ta, int tb, int nested) {
    fl_gemm_shape sh[64];
    int n = fl_gemm_shapes(sh, 64);
    for (int i = 0; i < n && i < 64; i++)
        if (sh[i].m == M && sh[i].n == N && sh[i].k == K && sh[i].ta == ta && sh[i].tb == tb && sh[i].nested == nested)
            return sh[i];
    fail_msg("shape %dx%dx%d %d%d nested %d not recorded", M, N, K, ta, tb, nested);
    return sh[0];
}

static char g_dir[4096];

static int setup(void **st) {
    (void)st;
    tu_tmpdir(g_dir, sizeof g_dir);
    fl_gemm_dispatch_reset();
    fl_gemm_set_cache_dir(g_dir);
    fl_gemm_set_backend(FL_BACKEND_AUTO);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    fl_gemm_set_timer(NULL, NULL);
    fl_gemm_set_cache_dir(NULL);
    fl_gemm_set_backend(FL_BACKEND_OPENBLAS);
    fl_gemm_dispatch_reset();
    tu_rmrf(g_dir);
    return 0;
}

static void test_decide(void **st) {
    (void)st;
    const double a[3] = { 1.0, 0.9, 1.1 }, fast[3] = { 0.5, 0.8, 0.7 }, tie[3] = { 0.99, 0.95, 0.91 },
                 slow[3] = { 2, 2, 2 }, junk[3] = { NAN, 0, -1 }, one_fast[3] = { NAN, 0.1, INFINITY };
    assert_int_equal(fl_gemm_decide(a, fast, 3), FL_BACKEND_ONEDNN);
    /* 0.91 vs 0.9: within the margin, a tie keeps OpenBLAS */
    assert_int_equal(fl_gemm_decide(a, tie, 3), FL_BACKEND_OPENBLAS);
    assert_int_equal(fl_gemm_decide(a, slow, 3), FL_BACKEND_OPENBLAS);
    /* the minimum decides, not one repetition: a single fast rep of oneDNN wins */
    assert_int_equal(fl_gemm_decide(a, one_fast, 3), FL_BACKEND_ONEDNN);
    /* a side with no valid time loses; neither: OpenBLAS */
    assert_int_equal(fl_gemm_decide(a, junk, 3), FL_BACKEND_OPENBLAS);
    assert_int_equal(fl_gemm_decide(junk, a, 3), FL_BACKEND_ONEDNN);
    assert_int_equal(fl_gemm_decide(junk, junk, 3), FL_BACKEND_OPENBLAS);
    /* just beyond the margin */
    const double base[1] = { 1.0 }, just[1] = { 1.0 - FL_GEMM_MARGIN - 1e-6 }, at[1] = { 1.0 - FL_GEMM_MARGIN + 1e-6 };
    assert_int_equal(fl_gemm_decide(base, just, 1), FL_BACKEND_ONEDNN);
    assert_int_equal(fl_gemm_decide(base, at, 1), FL_BACKEND_OPENBLAS);
}

static void test_names(void **st) {
    (void)st;
    assert_int_equal(fl_gemm_set_backend_name("auto"), 0);
    assert_string_equal(fl_gemm_backend_name(), "auto");
    assert_int_equal(fl_gemm_set_backend_name("onednn"), 0);
    assert_string_equal(fl_gemm_backend_name(), "onednn");
    assert_int_equal(fl_gemm_set_backend_name("mkl"), -1);
    assert_string_equal(fl_gemm_backend_name(), "onednn");   /* unchanged by a bad name */
    fl_gemm_set_backend(FL_BACKEND_AUTO);
}

/* auto: each shape its faster backend; both shapes measured once. */
static void test_auto_per_shape(void **st) {
    (void)st;
    timer_ctx c = { 0, 0 };
    fl_gemm_set_timer(fake_timer, &c);
    gemm_checked(0, 1, 65, 64, 64);    /* odd M: oneDNN */
    gemm_checked(0, 1, 64, 64, 64);    /* even M: OpenBLAS */
    gemm_checked(1, 0, 64, 64, 64);    /* another transpose is another shape */
    assert_int_equal(c.calls, 3 * 2 * FL_GEMM_REPS);
    gemm_checked(0, 1, 65, 64, 64);    /* known now: not measured again */
    assert_int_equal(c.calls, 3 * 2 * FL_GEMM_REPS);
    fl_gemm_shape a = get_shape(65, 64, 64, 0, 1, 0), b = get_shape(64, 64, 64, 0, 1, 0);
    assert_true(a.decided && b.decided);
    assert_int_equal(a.choice, FL_BACKEND_ONEDNN);
    assert_int_equal(a.why, FL_GEMM_WHY_MEASURED);
    assert_int_equal(a.calls[FL_BACKEND_ONEDNN], 2);
    assert_int_equal(a.calls[FL_BACKEND_OPENBLAS], 0);
    assert_int_equal(b.choice, FL_BACKEND_OPENBLAS);
    assert_int_equal(b.calls[FL_BACKEND_OPENBLAS], 1);
    assert_true(a.t_onednn == 1e-3 && a.t_openblas == 2e-3);
    get_shape(64, 64, 64, 1, 0, 0);
}

/* A small shape is never timed: OpenBLAS. */
static void test_small(void **st) {
    (void)st;
    timer_ctx c = { 0, 2 };
    fl_gemm_set_timer(fake_timer, &c);
    gemm_checked(0, 0, 9, 8, 8);
    assert_int_equal(c.calls, 0);
    fl_gemm_shape s = get_shape(9, 8, 8, 0, 0, 0);
    assert_int_equal(s.choice, FL_BACKEND_OPENBLAS);
    assert_int_equal(s.why, FL_GEMM_WHY_SMALL);
}

static int count_shapes_in_file(void) {
    char path[4200];
    fl_gemm_cache_path(path, sizeof path);
    char *text = tu_read_all(path);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(j, "shapes"));
    cJSON_Delete(j);
    return n;
}

/* Measured choices are filed; a fresh process state reads them back. */
static void test_cache_roundtrip(void **st) {
    (void)st;
    timer_ctx c = { 0, 0 };
    fl_gemm_set_timer(fake_timer, &c);
    gemm_checked(0, 1, 65, 64, 64);
    gemm_checked(0, 0, 64, 64, 64);
    gemm_checked(0, 0, 9, 8, 8);       /* small: not filed */
    assert_int_equal(count_shapes_in_file(), 2);
    char path[4200];
    fl_gemm_cache_path(path, sizeof path);
    assert_non_null(strstr(path, "/gemm/dispatch-"));
    fl_gemm_dispatch_reset();          /* as a new process would start */
    c.calls = 0;
    c.prefer = 1;                      /* were it asked, it would now say OpenBLAS */
    gemm_checked(0, 1, 65, 64, 64);
    gemm_checked(0, 0, 64, 64, 64);
    assert_int_equal(c.calls, 0);
    fl_gemm_shape a = get_shape(65, 64, 64, 0, 1, 0), b = get_shape(64, 64, 64, 0, 0, 0);
    assert_int_equal(a.choice, FL_BACKEND_ONEDNN);
    assert_int_equal(a.why, FL_GEMM_WHY_CACHE);
    assert_int_equal(a.calls[FL_BACKEND_ONEDNN], 1);
    assert_int_equal(b.choice, FL_BACKEND_OPENBLAS);
    assert_int_equal(b.why, FL_GEMM_WHY_CACHE);
    /* a new shape is added to the file, the old ones kept */
    gemm_checked(0, 0, 67, 64, 64);
    assert_int_equal(c.calls, 2 * FL_GEMM_REPS);
    assert_int_equal(count_shapes_in_file(), 3);
}

/* Captures stderr into a file while f runs. */
static char *with_stderr(void (*f)(void)) {
    char p[4200];
    snprintf(p, sizeof p, "%s/stderr.txt", g_dir);
    fflush(stderr);
    int saved = dup(2), fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);
    f();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    return tu_read_all(p);
}

static timer_ctx g_c;
static void run_one(void) { gemm_checked(0, 1, 65, 64, 64); }

/* A bad file (garbage, another key, an invalid entry, a duplicate) is
 * noted once and ignored whole: the shape is measured again and the file
 * rewritten valid. */
static void test_cache_corrupt(void **st) {
    (void)st;
    char path[4200], key[2048], text[8192];
    fl_gemm_cache_path(path, sizeof path);
    fl_gemm_cache_key(key, sizeof key);
    cJSON *ks = cJSON_CreateString(key);
    char *kq = cJSON_PrintUnformatted(ks);
    cJSON_Delete(ks);
    const char *ent = "{\"m\":65,\"n\":64,\"k\":64,\"ta\":0,\"tb\":1,\"nested\":0,\"backend\":\"%s\",\"openblas_s\":1,"
                      "\"onednn_s\":2,\"tm\":65,\"tn\":64,\"tk\":64}";
    char good[512], bad_be[512];
    snprintf(good, sizeof good, ent, "openblas");
    snprintf(bad_be, sizeof bad_be, ent, "mkl");
    char cases[5][8192];
    snprintf(cases[0], sizeof cases[0], "{\"key\": %s, \"shapes\": [%s", kq, good);          /* truncated */
    snprintf(cases[1], sizeof cases[1], "{\"key\": \"another machine\", \"shapes\": [%s]}", good);
    snprintf(cases[2], sizeof cases[2], "{\"key\": %s, \"shapes\": [%s]}", kq, bad_be);
    snprintf(cases[3], sizeof cases[3], "{\"key\": %s, \"shapes\": [%s, %s]}", kq, good, good);
    snprintf(cases[4], sizeof cases[4], "%s", "\x01\x02 not json at all");
    static const char *const why[5] = { "not JSON", "another machine", "unknown backend", "twice", "not JSON" };
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/gemm", g_dir);
    assert_int_equal(fl_mkdir_p(dir), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fl_write_file_atomic(path, cases[i], strlen(cases[i])), 0);
        fl_gemm_dispatch_reset();
        g_c.calls = 0;
        g_c.prefer = 2;
        fl_gemm_set_timer(fake_timer, &g_c);
        char *err = with_stderr(run_one);
        assert_int_equal(g_c.calls, 2 * FL_GEMM_REPS);       /* measured again */
        assert_non_null(strstr(err, path));
        assert_non_null(strstr(err, why[i]));
        assert_non_null(strstr(err, "measured again"));
        free(err);
        fl_gemm_shape s = get_shape(65, 64, 64, 0, 1, 0);
        assert_int_equal(s.choice, FL_BACKEND_ONEDNN);       /* the measurement, not the file's openblas */
        assert_int_equal(s.why, FL_GEMM_WHY_MEASURED);
        assert_int_equal(count_shapes_in_file(), 1);         /* rewritten valid */
    }
    /* a file far larger than any this code writes is refused unread */
    size_t big = (size_t)9 << 20;
    char *huge = malloc(big);
    memset(huge, ' ', big);
    assert_int_equal(fl_write_file_atomic(path, huge, big), 0);
    free(huge);
    fl_gemm_dispatch_reset();
    g_c.calls = 0;
    char *err = with_stderr(run_one);
    assert_int_equal(g_c.calls, 2 * FL_GEMM_REPS);
    if (!strstr(err, "too large")) fail_msg("no note of a too large file: %s", err);
    free(err);
    assert_int_equal(count_shapes_in_file(), 1);
    /* the good file itself is trusted */
    snprintf(text, sizeof text, "{\"key\": %s, \"shapes\": [%s]}", kq, good);
    assert_int_equal(fl_write_file_atomic(path, text, strlen(text)), 0);
    fl_gemm_dispatch_reset();
    g_c.calls = 0;
    run_one();
    assert_int_equal(g_c.calls, 0);
    assert_int_equal(get_shape(65, 64, 64, 0, 1, 0).choice, FL_BACKEND_OPENBLAS);
    free(kq);
}

/* A forced backend runs every call, neither reads nor writes the file and
 * times nothing. */
static void test_forced(void **st) {
    (void)st;
    timer_ctx c = { 0, 0 };
    fl_gemm_set_timer(fake_timer, &c);
    char path[4200];
    fl_gemm_cache_path(path, sizeof path);
    fl_gemm_set_backend(FL_BACKEND_ONEDNN);
    gemm_checked(0, 1, 64, 64, 64);    /* auto would pick OpenBLAS */
    fl_gemm_set_backend(FL_BACKEND_OPENBLAS);
    gemm_checked(0, 1, 65, 64, 64);    /* auto would pick oneDNN */
    assert_int_equal(c.calls, 0);
    assert_int_equal(access(path, F_OK), -1);
    fl_gemm_shape a = get_shape(64, 64, 64, 0, 1, 0), b = get_shape(65, 64, 64, 0, 1, 0);
    assert_false(a.decided);
    assert_int_equal(a.calls[FL_BACKEND_ONEDNN], 1);
    assert_int_equal(b.calls[FL_BACKEND_OPENBLAS], 1);
    /* and a filed choice is not used while forced */
    fl_gemm_set_backend(FL_BACKEND_AUTO);
    gemm_checked(0, 1, 63, 64, 64);    /* files oneDNN for this shape */
    fl_gemm_dispatch_reset();
    fl_gemm_set_backend(FL_BACKEND_OPENBLAS);
    gemm_checked(0, 1, 63, 64, 64);
    fl_gemm_shape s = get_shape(63, 64, 64, 0, 1, 0);
    assert_false(s.decided);
    assert_int_equal(s.calls[FL_BACKEND_OPENBLAS], 1);
    assert_int_equal(s.calls[FL_BACKEND_ONEDNN], 0);
    fl_gemm_set_backend(FL_BACKEND_AUTO);
}

/* Inside a parallel region a shape runs on one thread: another shape of
 * the table, decided on its own. */
static void test_nested(void **st) {
    (void)st;
    timer_ctx c = { 0, 0 };
    fl_gemm_set_timer(fake_timer, &c);
    int bad = 0;
    #pragma omp parallel num_threads(2) reduction(+ : bad)
    {
        float A[65 * 64], B[64 * 64], C[65 * 64];
        fill(A, 65 * 64, 3); fill(B, 64 * 64, 4);
        for (int r = 0; r < 3; r++) fl_gemm(0, 1, 65, 64, 64, 1.0f, A, 64, B, 64, 0.0f, C, 64);
        double s = 0;
        for (int k = 0; k < 64; k++) s += (double)A[k] * B[k];
        bad += fabs(C[0] - s) > 1e-4;
    }
    assert_int_equal(bad, 0);
    assert_int_equal(c.calls, 2 * FL_GEMM_REPS);   /* once, whichever thread came first */
    fl_gemm_shape s = get_shape(65, 64, 64, 0, 1, omp_get_max_threads() > 1);
    assert_int_equal(s.choice, FL_BACKEND_ONEDNN);
    assert_int_equal(s.calls[FL_BACKEND_ONEDNN], 3 * (uint64_t)(omp_get_max_threads() > 1 ? 2 : 1));
}

/* The profile's record: every called shape with its backend and why. */
static void test_profile_json(void **st) {
    (void)st;
    timer_ctx c = { 0, 0 };
    fl_gemm_set_timer(fake_timer, &c);
    gemm_checked(0, 1, 65, 64, 64);
    gemm_checked(1, 0, 64, 64, 64);
    gemm_checked(0, 0, 9, 8, 8);
    cJSON *j = fl_gemm_profile_json();
    assert_string_equal(cJSON_GetObjectItem(j, "mode")->valuestring, "auto");
    assert_true(cJSON_IsString(cJSON_GetObjectItem(j, "cache")));
    cJSON *sh = cJSON_GetObjectItem(j, "shapes");
    assert_int_equal(cJSON_GetArraySize(sh), 3);
    const char *want[3][4] = { { "65x64x64", "NT", "onednn", "measured" }, { "64x64x64", "TN", "openblas", "measured" },
                               { "9x8x8", "NN", "openblas", "small" } };
    for (int i = 0; i < 3; i++) {   /* first-call order */
        cJSON *o = cJSON_GetArrayItem(sh, i);
        assert_string_equal(cJSON_GetObjectItem(o, "shape")->valuestring, want[i][0]);
        assert_string_equal(cJSON_GetObjectItem(o, "trans")->valuestring, want[i][1]);
        assert_string_equal(cJSON_GetObjectItem(o, "backend")->valuestring, want[i][2]);
        assert_string_equal(cJSON_GetObjectItem(o, "why")->valuestring, want[i][3]);
        assert_int_equal((int)cJSON_GetObjectItem(o, "calls")->valuedouble, 1);
    }
    assert_non_null(cJSON_GetObjectItem(cJSON_GetArrayItem(sh, 0), "onednn_s"));
    cJSON_Delete(j);
}

/* The slice a big shape is timed on: M first, K last, within both caps. */
static void test_slice(void **st) {
    (void)st;
    int a[3] = { 512, 256, 256 };              /* small enough: whole */
    fl_gemm_slice(a);
    assert_true(a[0] == 512 && a[1] == 256 && a[2] == 256);
    int b[3] = { 2048, 4096, 768 };            /* 12.9 GFLOP: M cut to 512 */
    fl_gemm_slice(b);
    assert_true(b[0] == 512 && b[1] == 4096 && b[2] == 768);
    int c[3] = { 256, 256, 65536 };            /* M and N at the floor: K cut */
    fl_gemm_slice(c);
    assert_true(c[0] == 256 && c[1] == 256 && c[2] == 32768);
    int e[3] = { 2048, 50257, 768 };           /* a GPT-2 head: C over 2^24 floats, then the FLOPs */
    fl_gemm_slice(e);
    assert_true(e[0] == 256 && e[2] == 768 && e[1] < 50257);
    assert_true(2.0 * e[0] * e[1] * e[2] <= 4294967296.0 && (double)e[0] * e[1] <= 16777216.0);
    int f[3] = { 100, 100, 100 };              /* below the floor: never cut */
    fl_gemm_slice(f);
    assert_true(f[0] == 100 && f[1] == 100 && f[2] == 100);
}

/* Real timing, once: the result is right whichever backend won, both
 * times are recorded, the whole shape is timed, and the time spent is
 * counted. */
static void test_real_timing(void **st) {
    (void)st;
    fl_gemm_set_timer(NULL, NULL);
    gemm_checked(0, 1, 512, 128, 256);
    fl_gemm_shape s = get_shape(512, 128, 256, 0, 1, 0);
    assert_true(s.decided);
    assert_int_equal(s.why, FL_GEMM_WHY_MEASURED);
    assert_true(s.t_openblas > 0 && s.t_onednn > 0);
    assert_true(s.tm == 512 && s.tn == 128 && s.tk == 256);
    assert_true(fl_gemm_measure_seconds() > 0);
    assert_int_equal(count_shapes_in_file(), 1);
}

/* Two processes meeting the same new shapes at once, one told OpenBLAS is
 * faster and the other oneDNN (slowly, so their measurements overlap): the
 * file's lock makes one decide and the other read, so both use the same
 * backend for every shape and the file lists each shape once. */
static void test_concurrent_processes(void **st) {
    (void)st;
    char self[4200];
    ssize_t l = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(l > 0);
    self[l] = 0;
    pid_t pid[2];
    char out[2][4300];
    for (int i = 0; i < 2; i++) {
        snprintf(out[i], sizeof out[i], "%s/child%d.txt", g_dir, i);
        char *argv[] = { self, "--dispatch-child", g_dir, i ? "2" : "1", out[i], NULL };
        assert_int_equal(posix_spawn(&pid[i], self, NULL, NULL, argv, environ), 0);
    }
    for (int i = 0; i < 2; i++) {
        int status = 0;
        assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    char *a = tu_read_all(out[0]), *b = tu_read_all(out[1]);
    assert_true(strlen(a) > 10);
    assert_string_equal(a, b);     /* the same choice for every shape */
    free(a); free(b);
    assert_int_equal(count_shapes_in_file(), 4);
}

static double slow_timer(void *ctx, fl_backend be, int ta, int tb, int M, int N, int K, int rep) {
    usleep(20000);
    return fake_timer(ctx, be, ta, tb, M, N, K, rep);
}

/* The child of test_concurrent_processes: decides four shapes under the
 * given preference and writes the backend it used for each. */
static int dispatch_child(const char *dir, int prefer, const char *out) {
    timer_ctx c = { 0, prefer };
    fl_threads_init(2);   /* the parent's count: the same key, the same file */
    fl_gemm_set_cache_dir(dir);
    fl_gemm_set_backend(FL_BACKEND_AUTO);
    fl_gemm_set_timer(slow_timer, &c);
    FILE *f = fopen(out, "w");
    if (!f) return 1;
    static const int shp[4][3] = { { 70, 64, 64 }, { 64, 70, 64 }, { 64, 64, 70 }, { 72, 72, 72 } };
    for (int i = 0; i < 4; i++) {
        int M = shp[i][0], N = shp[i][1], K = shp[i][2];
        float *A = calloc((size_t)M * K, 4), *B = calloc((size_t)K * N, 4), *C = calloc((size_t)M * N, 4);
        fl_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        free(A); free(B); free(C);
        fl_gemm_shape s[8];
        int n = fl_gemm_shapes(s, 8);
        fprintf(f, "%dx%dx%d %s\n", M, N, K, s[n - 1].calls[1] ? "onednn" : "openblas");
    }
    return fclose(f) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "--dispatch-child")) return dispatch_child(argv[2], atoi(argv[3]), argv[4]);
    fl_threads_init(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decide),
        cmocka_unit_test_setup_teardown(test_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auto_per_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_forced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profile_json, setup, teardown),
        cmocka_unit_test(test_slice),
        cmocka_unit_test_setup_teardown(test_real_timing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_processes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
