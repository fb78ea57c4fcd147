#include "gemm.h"
#include "err.h"
#include "fileio.h"
#include "clock.h"
#include <cblas.h>
#include <cjson/cJSON.h>
#include <dnnl.h>
#include <errno.h>
#include <fcntl.h>
#include <hwloc.h>
#include <malloc.h>
#include <math.h>
#include <omp.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* Not declared in every cblas.h; OpenBLAS exports it. */
void openblas_set_num_threads(int n);

static _Atomic int g_mode = FL_BACKEND_OPENBLAS;   /* the library's default; main() makes it auto */
static atomic_uint_fast64_t g_flops;
static int g_threads = 1;

void fl_gemm_set_backend(fl_backend b) { atomic_store(&g_mode, (int)b); }
fl_backend fl_gemm_backend(void) { return (fl_backend)atomic_load(&g_mode); }
static const char *be_name(int b) { return b == FL_BACKEND_ONEDNN ? "onednn" : b == FL_BACKEND_AUTO ? "auto" : "openblas"; }
const char *fl_gemm_backend_name(void) { return be_name(atomic_load(&g_mode)); }

int fl_gemm_set_backend_name(const char *name) {
    if (strcmp(name, "openblas") == 0) fl_gemm_set_backend(FL_BACKEND_OPENBLAS);
    else if (strcmp(name, "onednn") == 0) fl_gemm_set_backend(FL_BACKEND_ONEDNN);
    else if (strcmp(name, "auto") == 0) fl_gemm_set_backend(FL_BACKEND_AUTO);
    else return fl_err("unknown GEMM backend '%s' (expected auto, openblas or onednn)", name);
    return 0;
}

int fl_gemm_backend_from_env(void) {
    const char *e = getenv("FL_BACKEND");
    if (!e || !*e) return 0;
    if (fl_gemm_set_backend_name(e) != 0) return fl_err("FL_BACKEND: unknown GEMM backend '%s' (expected auto, openblas or onednn)", e);
    return 0;
}

/* One call on one backend, nothing counted. */
static void run(int be, int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc) {
    if (be == FL_BACKEND_ONEDNN) {
        dnnl_status_t st = dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, alpha,
                                      A, lda, B, ldb, beta, C, ldc);
        if (st != dnnl_success) {
            fprintf(stderr, "freelunch: dnnl_sgemm failed (status %d) for %dx%dx%d\n", (int)st, M, N, K);
            abort();
        }
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* ---- the shape table ------------------------------------------------------ */

/* An open-addressing table that only grows: a slot, once `ready`, keeps its
 * key for the life of the process, so a lookup reads it without a lock
 * (acquire on ready, and on decided for the choice); slots are filled and
 * choices made under g_mu. A full table (NSLOTS distinct shapes, far more
 * than any model issues) sends the rest to OpenBLAS, unrecorded. */
#define NSLOTS 8192
typedef struct {
    atomic_int ready, decided;
    int m, n, k;
    unsigned char ta, tb, nested;
    int choice, why;
    double t[2];
    int tm, tn, tk;
    int order;                         /* first-call order, for the profile */
    atomic_uint_fast64_t calls[2], ns[2];
} slot;

static slot g_slot[NSLOTS];
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_nslots, g_full_noted;
static double g_measure_s;
static fl_gemm_timer g_timer;
static void *g_timer_ctx;
static char g_cache_dir[4096];
static char g_machine[1024];           /* hwloc's description, computed once */
static int g_noted_bad;                /* a bad cache file is reported once per process */

static unsigned hash_shape(int m, int n, int k, int ta, int tb, int nested) {
    uint64_t h = 1469598103934665603ull;   /* FNV-1a over the key's fields: a table index, nothing more */
    const int v[6] = { m, n, k, ta, tb, nested };
    for (int i = 0; i < 6; i++) { h ^= (uint32_t)v[i]; h *= 1099511628211ull; }
    return (unsigned)(h ^ (h >> 32));
}

static int same(const slot *s, int m, int n, int k, int ta, int tb, int nested) {
    return s->m == m && s->n == n && s->k == k && s->ta == ta && s->tb == tb && s->nested == nested;
}

/* The slot of a shape, or NULL. create: add it (g_mu must be held). */
static slot *lookup(int m, int n, int k, int ta, int tb, int nested, int create) {
    unsigned h = hash_shape(m, n, k, ta, tb, nested);
    for (unsigned p = 0; p < NSLOTS; p++) {
        slot *s = &g_slot[(h + p) % NSLOTS];
        if (!atomic_load_explicit(&s->ready, memory_order_acquire)) {
            if (!create) return NULL;
            s->m = m; s->n = n; s->k = k; s->ta = (unsigned char)ta; s->tb = (unsigned char)tb;
            s->nested = (unsigned char)nested;
            s->order = g_nslots++;
            atomic_store_explicit(&s->ready, 1, memory_order_release);
            return s;
        }
        if (same(s, m, n, k, ta, tb, nested)) return s;
    }
    return NULL;
}

static slot *find_or_add(int m, int n, int k, int ta, int tb, int nested) {
    slot *s = lookup(m, n, k, ta, tb, nested, 0);
    if (s) return s;
    pthread_mutex_lock(&g_mu);
    if (g_nslots < NSLOTS - NSLOTS / 8) s = lookup(m, n, k, ta, tb, nested, 1);
    else if (!g_full_noted) {
        g_full_noted = 1;
        fprintf(stderr, "gemm: more than %d distinct GEMM shapes; the rest run on openblas, unrecorded\n", g_nslots);
    }
    pthread_mutex_unlock(&g_mu);
    return s;
}

static void set_choice(slot *s, int choice, int why, const double t[2], int tm, int tn, int tk) {
    s->choice = choice; s->why = why;
    s->t[0] = t ? t[0] : 0; s->t[1] = t ? t[1] : 0;
    s->tm = tm; s->tn = tn; s->tk = tk;
    atomic_store_explicit(&s->decided, 1, memory_order_release);
}

void fl_gemm_dispatch_reset(void) {
    pthread_mutex_lock(&g_mu);
    memset(g_slot, 0, sizeof g_slot);
    g_nslots = 0; g_full_noted = 0; g_measure_s = 0; g_noted_bad = 0;
    pthread_mutex_unlock(&g_mu);
}

void fl_gemm_set_timer(fl_gemm_timer t, void *ctx) { g_timer = t; g_timer_ctx = ctx; }

void fl_gemm_set_cache_dir(const char *dir) {
    pthread_mutex_lock(&g_mu);
    snprintf(g_cache_dir, sizeof g_cache_dir, "%s", dir ? dir : "");
    pthread_mutex_unlock(&g_mu);
}

const char *fl_gemm_why_name(fl_gemm_why w) {
    static const char *const n[] = { "", "measured", "cache", "small", "untimed" };
    return (unsigned)w < sizeof n / sizeof *n ? n[w] : "";
}

fl_backend fl_gemm_decide(const double *t_openblas, const double *t_onednn, int n) {
    double best[2] = { INFINITY, INFINITY };
    const double *t[2] = { t_openblas, t_onednn };
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < n; i++)
            if (isfinite(t[b][i]) && t[b][i] > 0 && t[b][i] < best[b]) best[b] = t[b][i];
    if (!isfinite(best[1])) return FL_BACKEND_OPENBLAS;
    if (!isfinite(best[0])) return FL_BACKEND_ONEDNN;
    return best[1] < best[0] * (1.0 - FL_GEMM_MARGIN) ? FL_BACKEND_ONEDNN : FL_BACKEND_OPENBLAS;
}

/* ---- timing a shape ------------------------------------------------------- */

/* A big shape is timed on a slice: while one call would exceed MEAS_FLOPS
 * (about 30 ms on this machine) or the scratch C MEAS_C floats, the first
 * of M, N, K above MEAS_MIN is halved. The slice keeps the transposes and
 * the leading dimensions, so it is the same kernel on the first rows,
 * columns or inner terms of the call's own A and B. The caps are high on
 * purpose: a slice small enough to sit in cache flattered oneDNN on an LM
 * head's gradient (2048x256x4096 NN, timed on 256x256x2048, it won; in the
 * model it took 1.4x OpenBLAS's time), and only the few largest shapes of a
 * model (its head) reach them, timed once per machine. */
#define MEAS_FLOPS 4294967296.0   /* 2^32 */
#define MEAS_C 16777216.0         /* 2^24 floats: 64 MiB of scratch at most */
#define MEAS_MIN 256
/* Each timed repetition loops a small shape until it lasts REP_S. */
#define REP_S 1e-4
#define REP_MAX 64

void fl_gemm_slice(int d[3]) {
    for (;;) {
        double f = 2.0 * d[0] * d[1] * d[2], c = (double)d[0] * d[1];
        if (f <= MEAS_FLOPS && c <= MEAS_C) break;
        /* M first (row blocks of C are independent work in both
         * libraries), then N, K last: a shorter inner dimension changes
         * how each library blocks it */
        int cut = -1;
        for (int i = 0; i < 3 && cut < 0; i++)
            if (d[i] > MEAS_MIN) cut = i;
        if (cut < 0) break;
        d[cut] = (d[cut] + 1) / 2;
    }
}

static double time_calls(int be, int ta, int tb, int m, int n, int k, const float *A, int lda, const float *B, int ldb,
                         float *C, int reps) {
    double t0 = fl_wall_s();
    for (int i = 0; i < reps; i++) run(be, ta, tb, m, n, k, 1.0f, A, lda, B, ldb, 0.0f, C, n);
    return (fl_wall_s() - t0) / reps;
}

/* g_mu held. Times both backends and sets the choice. */
static void measure(slot *s, const float *A, int lda, const float *B, int ldb) {
    const double t0 = fl_wall_s();
    int d[3] = { s->m, s->n, s->k };   /* m, n, k of the slice */
    fl_gemm_slice(d);
    double t[2][FL_GEMM_REPS];
    if (g_timer) {
        for (int r = 0; r < FL_GEMM_REPS; r++)
            for (int b = 0; b < 2; b++) t[b][r] = g_timer(g_timer_ctx, (fl_backend)b, s->ta, s->tb, s->m, s->n, s->k, r);
    } else {
        float *C = calloc((size_t)d[0] * d[1], sizeof *C);
        if (!C) {   /* no room to time it: the backend freelunch always used */
            set_choice(s, FL_BACKEND_OPENBLAS, FL_GEMM_WHY_UNTIMED, NULL, 0, 0, 0);
            return;
        }
        /* one warm-up each (first-touch, oneDNN's kernel selection), which
         * also says how many calls make a repetition of REP_S */
        double w = fmin(time_calls(0, s->ta, s->tb, d[0], d[1], d[2], A, lda, B, ldb, C, 1),
                        time_calls(1, s->ta, s->tb, d[0], d[1], d[2], A, lda, B, ldb, C, 1));
        int reps = w > 0 ? (int)fmin(REP_MAX, ceil(REP_S / w)) : REP_MAX;
        /* interleaved, the order alternating, so a burst of load from the
         * rest of the machine falls on both sides; the minimum of each side
         * is its time with the least interference */
        for (int r = 0; r < FL_GEMM_REPS; r++)
            for (int j = 0; j < 2; j++) {
                int b = (r & 1) ? 1 - j : j;
                t[b][r] = time_calls(b, s->ta, s->tb, d[0], d[1], d[2], A, lda, B, ldb, C, reps);
            }
        free(C);
    }
    double best[2] = { INFINITY, INFINITY };
    for (int b = 0; b < 2; b++)
        for (int r = 0; r < FL_GEMM_REPS; r++) best[b] = fmin(best[b], t[b][r]);
    set_choice(s, fl_gemm_decide(t[0], t[1], FL_GEMM_REPS), FL_GEMM_WHY_MEASURED, best, d[0], d[1], d[2]);
    g_measure_s += fl_wall_s() - t0;
}

/* ---- the cache file ------------------------------------------------------- */

static const char *machine(void) {
    if (!g_machine[0]) {
        /* fl_machine_desc (CPU model, cores, PUs, NUMA nodes, caches) and
         * the CPU's identity numbers: what hwloc says decides the kernels
         * both libraries pick */
        char d[700];
        fl_machine_desc(d, sizeof d);
        size_t k = (size_t)snprintf(g_machine, sizeof g_machine, "%s", d);
        hwloc_topology_t topo;
        if (hwloc_topology_init(&topo) == 0) {
            if (hwloc_topology_load(topo) == 0) {
                hwloc_obj_t pkg = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PACKAGE, 0);
                static const char *const info[] = { "CPUVendor", "CPUFamilyNumber", "CPUModelNumber", "CPUStepping" };
                for (int i = 0; i < 4 && pkg && k < sizeof g_machine; i++) {
                    const char *v = hwloc_obj_get_info_by_name(pkg, info[i]);
                    if (v) k += (size_t)snprintf(g_machine + k, sizeof g_machine - k, "; %s %s", info[i], v);
                }
            }
            hwloc_topology_destroy(topo);
        }
    }
    return g_machine;
}

void fl_gemm_cache_key(char *buf, size_t n) {
    const dnnl_version_t *v = dnnl_version();
    snprintf(buf, n, "freelunch gemm dispatch 2; machine: %s; openblas: %s; onednn: %d.%d.%d %s; threads: %d", machine(),
             openblas_get_config(), v->major, v->minor, v->patch, v->hash ? v->hash : "", g_threads);
}

static void cache_path_locked(char *buf, size_t n) {
    if (!g_cache_dir[0]) { snprintf(buf, n, "%s", ""); return; }
    char key[2048], hex[17];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    fl_gemm_cache_key(key, sizeof key);
    EVP_Digest(key, strlen(key), md, &len, EVP_sha256(), NULL);
    for (int i = 0; i < 8; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(buf, n, "%.4000s/gemm/dispatch-%s.json", g_cache_dir, hex);
}

void fl_gemm_cache_path(char *buf, size_t n) {
    pthread_mutex_lock(&g_mu);
    cache_path_locked(buf, n);
    pthread_mutex_unlock(&g_mu);
}

static void note_bad(const char *path, const char *why) {
    if (g_noted_bad) return;
    g_noted_bad = 1;
    fprintf(stderr, "gemm: %s: %s; ignored: its shapes are measured again\n", path, why);
}

static int jint(const cJSON *o, const char *k, int lo, int hi, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi) || v->valuedouble != floor(v->valuedouble))
        return -1;
    *out = (int)v->valuedouble;
    return 0;
}

static int jsec(const cJSON *o, const char *k, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0) return -1;
    *out = v->valuedouble;
    return 0;
}

typedef struct { int m, n, k, ta, tb, nested, choice, tm, tn, tk; double t[2]; } entry;

/* g_mu and the file's lock held. Reads the file (a missing one is empty)
 * and gives every shape it holds that this process has not decided yet its
 * choice. A file with anything wrong is ignored whole, with one note. */
static void load_locked(const char *path) {
    char *text = NULL;
    size_t len = 0;
    if (access(path, F_OK) != 0) return;
    if (fl_read_file(path, &text, &len) != 0) { note_bad(path, fl_errmsg()); return; }
    /* bounds that a file this code wrote never reaches (one entry per slot,
     * about 250 bytes each), so that a hostile one costs little to refuse */
    if (len > ((size_t)NSLOTS << 10)) { free(text); note_bad(path, "too large"); return; }
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    const char *bad = NULL;
    char key[2048];
    fl_gemm_cache_key(key, sizeof key);
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "key"), *sh = cJSON_GetObjectItemCaseSensitive(j, "shapes");
    if (!j) bad = "not JSON";
    else if (!cJSON_IsString(k)) bad = "no key";
    else if (strcmp(k->valuestring, key)) bad = "written for another machine, library or thread count";
    else if (!cJSON_IsArray(sh)) bad = "no shapes array";
    int n = bad ? 0 : cJSON_GetArraySize(sh);
    if (n > NSLOTS) { bad = "more shapes than the table holds"; n = 0; }
    entry *e = n > 0 ? calloc((size_t)n, sizeof *e) : NULL;
    if (n > 0 && !e) bad = "out of memory";
    for (int i = 0; i < n && !bad; i++) {
        const cJSON *o = cJSON_GetArrayItem(sh, i), *be = cJSON_GetObjectItemCaseSensitive(o, "backend");
        entry *x = &e[i];
        if (!cJSON_IsObject(o) || jint(o, "m", 1, INT32_MAX, &x->m) || jint(o, "n", 1, INT32_MAX, &x->n) ||
            jint(o, "k", 0, INT32_MAX, &x->k) || jint(o, "ta", 0, 1, &x->ta) || jint(o, "tb", 0, 1, &x->tb) ||
            jint(o, "nested", 0, 1, &x->nested) || jint(o, "tm", 0, INT32_MAX, &x->tm) ||
            jint(o, "tn", 0, INT32_MAX, &x->tn) || jint(o, "tk", 0, INT32_MAX, &x->tk) ||
            jsec(o, "openblas_s", &x->t[0]) || jsec(o, "onednn_s", &x->t[1]) || !cJSON_IsString(be))
            bad = "an entry with a missing or invalid field";
        else if (!strcmp(be->valuestring, "openblas")) x->choice = FL_BACKEND_OPENBLAS;
        else if (!strcmp(be->valuestring, "onednn")) x->choice = FL_BACKEND_ONEDNN;
        else bad = "an entry with an unknown backend";
        for (int p = 0; p < i && !bad; p++)
            if (e[p].m == x->m && e[p].n == x->n && e[p].k == x->k && e[p].ta == x->ta && e[p].tb == x->tb &&
                e[p].nested == x->nested)
                bad = "a shape listed twice";
    }
    if (bad) note_bad(path, bad);
    else
        for (int i = 0; i < n; i++) {
            entry *x = &e[i];
            slot *s = g_nslots < NSLOTS - NSLOTS / 8 ? lookup(x->m, x->n, x->k, x->ta, x->tb, x->nested, 1) : NULL;
            if (s && !atomic_load(&s->decided)) set_choice(s, x->choice, FL_GEMM_WHY_CACHE, x->t, x->tm, x->tn, x->tk);
        }
    free(e);
    cJSON_Delete(j);
}

/* g_mu and the file's lock held. Every measured or cached choice, written
 * to a temporary file and renamed (fl_write_file_atomic); failing is a
 * note, the choices still hold in this process. */
static void save_locked(const char *path) {
    char key[2048];
    fl_gemm_cache_key(key, sizeof key);
    cJSON *j = cJSON_CreateObject(), *sh = cJSON_AddArrayToObject(j, "shapes");
    cJSON_AddStringToObject(j, "key", key);
    for (int i = 0; i < NSLOTS; i++) {
        const slot *s = &g_slot[i];
        if (!atomic_load(&s->ready) || !atomic_load(&s->decided) ||
            (s->why != FL_GEMM_WHY_MEASURED && s->why != FL_GEMM_WHY_CACHE))
            continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "m", s->m); cJSON_AddNumberToObject(o, "n", s->n); cJSON_AddNumberToObject(o, "k", s->k);
        cJSON_AddNumberToObject(o, "ta", s->ta); cJSON_AddNumberToObject(o, "tb", s->tb);
        cJSON_AddNumberToObject(o, "nested", s->nested);
        cJSON_AddStringToObject(o, "backend", be_name(s->choice));
        cJSON_AddNumberToObject(o, "openblas_s", s->t[0]); cJSON_AddNumberToObject(o, "onednn_s", s->t[1]);
        cJSON_AddNumberToObject(o, "tm", s->tm); cJSON_AddNumberToObject(o, "tn", s->tn); cJSON_AddNumberToObject(o, "tk", s->tk);
        cJSON_AddItemToArray(sh, o);
    }
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    if (!text || fl_write_file_atomic(path, text, strlen(text)) != 0)
        fprintf(stderr, "gemm: %s: not saved (%s); the choices hold in this process only\n", path,
                text ? fl_errmsg() : "out of memory");
    free(text);
}

/* g_mu held: s has no choice yet. */
static void decide_locked(slot *s, const float *A, int lda, const float *B, int ldb) {
    if (2.0 * s->m * s->n * s->k < FL_GEMM_SMALL_FLOPS) {
        set_choice(s, FL_BACKEND_OPENBLAS, FL_GEMM_WHY_SMALL, NULL, 0, 0, 0);
        return;
    }
    char path[4200], lock[4300], dir[4200];
    cache_path_locked(path, sizeof path);
    int fd = -1;
    if (path[0]) {
        snprintf(dir, sizeof dir, "%.4000s/gemm", g_cache_dir);
        snprintf(lock, sizeof lock, "%s.lock", path);
        /* the lock is a file of its own: the data file is replaced by rename,
         * which would leave a lock on the old inode */
        if (fl_mkdir_p(dir) == 0) fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0 && flock(fd, LOCK_EX) != 0) { close(fd); fd = -1; }
        if (fd < 0 && !g_noted_bad) {
            g_noted_bad = 1;
            fprintf(stderr, "gemm: %s: cannot lock (%s); choices are made in this process only\n", lock, strerror(errno));
        }
    }
    if (fd >= 0) load_locked(path);
    if (!atomic_load(&s->decided)) {
        measure(s, A, lda, B, ldb);
        if (fd >= 0) save_locked(path);
    }
    if (fd >= 0) close(fd);   /* releases the lock */
}

void fl_gemm(int transA, int transB, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb, float beta,
             float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    atomic_fetch_add(&g_flops, (uint64_t)2 * M * N * K);
    int mode = atomic_load_explicit(&g_mode, memory_order_relaxed), be = mode;
    slot *s = find_or_add(M, N, K, transA != 0, transB != 0, omp_in_parallel());
    if (mode == FL_BACKEND_AUTO) {
        be = FL_BACKEND_OPENBLAS;
        if (s) {
            if (!atomic_load_explicit(&s->decided, memory_order_acquire)) {
                pthread_mutex_lock(&g_mu);
                if (!atomic_load(&s->decided)) decide_locked(s, A, lda, B, ldb);
                pthread_mutex_unlock(&g_mu);
            }
            be = s->choice;
        }
    }
    double t0 = s ? fl_wall_s() : 0;
    run(be, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    if (s) {
        atomic_fetch_add_explicit(&s->calls[be], 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&s->ns[be], (uint64_t)((fl_wall_s() - t0) * 1e9), memory_order_relaxed);
    }
}

static int by_order(const void *a, const void *b) {
    int x = (*(const slot *const *)a)->order, y = (*(const slot *const *)b)->order;
    return (x > y) - (x < y);
}

int fl_gemm_shapes(fl_gemm_shape *out, int max) {
    pthread_mutex_lock(&g_mu);
    static const slot *called[NSLOTS];   /* under g_mu */
    int cnt = 0;
    for (int i = 0; i < NSLOTS; i++) {
        const slot *s = &g_slot[i];
        if (atomic_load(&s->ready) && (atomic_load(&s->calls[0]) || atomic_load(&s->calls[1]))) called[cnt++] = s;
    }
    qsort(called, (size_t)cnt, sizeof *called, by_order);
    for (int i = 0; i < cnt && i < max; i++) {
        const slot *s = called[i];
        fl_gemm_shape *o = &out[i];
        memset(o, 0, sizeof *o);
        o->m = s->m; o->n = s->n; o->k = s->k; o->ta = s->ta; o->tb = s->tb; o->nested = s->nested;
        o->decided = atomic_load(&s->decided);
        if (o->decided) {
            o->choice = (fl_backend)s->choice; o->why = (fl_gemm_why)s->why;
            o->t_openblas = s->t[0]; o->t_onednn = s->t[1];
            o->tm = s->tm; o->tn = s->tn; o->tk = s->tk;
        }
        for (int b = 0; b < 2; b++) {
            o->calls[b] = atomic_load(&s->calls[b]);
            o->seconds[b] = 1e-9 * (double)atomic_load(&s->ns[b]);
        }
    }
    pthread_mutex_unlock(&g_mu);
    return cnt;
}

double fl_gemm_measure_seconds(void) {
    pthread_mutex_lock(&g_mu);
    double s = g_measure_s;
    pthread_mutex_unlock(&g_mu);
    return s;
}

cJSON *fl_gemm_profile_json(void) {
    cJSON *j = cJSON_CreateObject();
    char path[4200];
    cJSON_AddStringToObject(j, "mode", fl_gemm_backend_name());
    fl_gemm_cache_path(path, sizeof path);
    if (path[0] && fl_gemm_backend() == FL_BACKEND_AUTO) cJSON_AddStringToObject(j, "cache", path);
    else cJSON_AddNullToObject(j, "cache");
    cJSON_AddNumberToObject(j, "measure_seconds", fl_gemm_measure_seconds());
    cJSON *arr = cJSON_AddArrayToObject(j, "shapes");
    int n = fl_gemm_shapes(NULL, 0);
    fl_gemm_shape *sh = n > 0 ? calloc((size_t)n, sizeof *sh) : NULL;
    if (sh) {
        int got = fl_gemm_shapes(sh, n);
        if (got < n) n = got;
    }
    for (int i = 0; sh && i < n; i++) {
        const fl_gemm_shape *s = &sh[i];
        cJSON *o = cJSON_CreateObject();
        char buf[64];
        snprintf(buf, sizeof buf, "%dx%dx%d", s->m, s->n, s->k);
        cJSON_AddStringToObject(o, "shape", buf);
        snprintf(buf, sizeof buf, "%c%c", s->ta ? 'T' : 'N', s->tb ? 'T' : 'N');
        cJSON_AddStringToObject(o, "trans", buf);
        cJSON_AddBoolToObject(o, "nested", s->nested);
        cJSON_AddNumberToObject(o, "calls", (double)(s->calls[0] + s->calls[1]));
        cJSON_AddNumberToObject(o, "seconds", s->seconds[0] + s->seconds[1]);
        /* what the calls ran on: one backend, unless the mode changed midway */
        cJSON_AddStringToObject(o, "backend", s->calls[0] && s->calls[1] ? "openblas+onednn" : s->calls[1] ? "onednn" : "openblas");
        cJSON_AddStringToObject(o, "why", fl_gemm_backend() != FL_BACKEND_AUTO ? "forced"
                                          : s->decided ? fl_gemm_why_name(s->why) : "undecided");
        if (s->decided && (s->why == FL_GEMM_WHY_MEASURED || s->why == FL_GEMM_WHY_CACHE)) {
            cJSON_AddNumberToObject(o, "openblas_s", s->t_openblas);
            cJSON_AddNumberToObject(o, "onednn_s", s->t_onednn);
            snprintf(buf, sizeof buf, "%dx%dx%d", s->tm, s->tn, s->tk);
            cJSON_AddStringToObject(o, "timed", buf);
        }
        cJSON_AddItemToArray(arr, o);
    }
    free(sh);
    return j;
}

uint64_t fl_flops(void) { return atomic_load(&g_flops); }
void fl_flops_reset(void) { atomic_store(&g_flops, 0); }
void fl_flops_add(uint64_t n) { atomic_fetch_add(&g_flops, n); }

int fl_physical_cores(void) {
    hwloc_topology_t topo;
    int n = -1;
    if (hwloc_topology_init(&topo) == 0) {
        if (hwloc_topology_load(topo) == 0) n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
        hwloc_topology_destroy(topo);
    }
    if (n <= 0) n = omp_get_num_procs();
    return n > 0 ? n : 1;
}

void fl_machine_desc(char *buf, size_t n) {
    hwloc_topology_t topo;
    snprintf(buf, n, "unknown machine");
    if (hwloc_topology_init(&topo) != 0) return;
    if (hwloc_topology_load(topo) == 0) {
        hwloc_obj_t root = hwloc_get_root_obj(topo), pkg = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PACKAGE, 0);
        const char *cpu = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUModel") : NULL;
        if (!cpu) cpu = hwloc_obj_get_info_by_name(root, "CPUModel");
        size_t k = (size_t)snprintf(buf, n, "%s; %d cores, %d PUs, %d NUMA node(s)", cpu ? cpu : "unknown CPU",
                                    hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE), hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU),
                                    hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE));
        static const struct { hwloc_obj_type_t t; const char *name; } caches[] = {
            { HWLOC_OBJ_L1CACHE, "L1d" }, { HWLOC_OBJ_L2CACHE, "L2" }, { HWLOC_OBJ_L3CACHE, "L3" } };
        for (int i = 0; i < 3 && k < n; i++) {
            hwloc_obj_t c = hwloc_get_obj_by_type(topo, caches[i].t, 0);
            if (c && c->attr) k += (size_t)snprintf(buf + k, n - k, ", %s %llu KiB x%d", caches[i].name,
                                                   (unsigned long long)c->attr->cache.size / 1024, hwloc_get_nbobjs_by_type(topo, caches[i].t));
        }
    }
    hwloc_topology_destroy(topo);
}

int fl_threads_init(int n) {
    /* Activation buffers are allocated and freed every step. Above glibc's
     * mmap threshold each one is a fresh mapping: page faults and kernel
     * zeroing on every step (measured: gpt2 d=256 block 230 -> 147 ms with
     * mmap off). Keep blocks up to the largest threshold glibc accepts
     * (32 MiB) on the heap, and don't hand freed memory back each time. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    if (n <= 0) n = fl_physical_cores();
    if (n != g_threads) {
        /* choices were made (and are filed) for the old count: forget them,
         * keeping the shapes' counts */
        pthread_mutex_lock(&g_mu);
        for (int i = 0; i < NSLOTS; i++) atomic_store(&g_slot[i].decided, 0);
        pthread_mutex_unlock(&g_mu);
    }
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    return n;
}

int fl_threads(void) { return g_threads; }
