/* One GEMM for all of freelunch, with two backends chosen at run time:
 * OpenBLAS (cblas_sgemm) and oneDNN (dnnl_sgemm). Both are built on OpenMP
 * here (Debian's libopenblas0-openmp and libdnnl), so they share one thread
 * pool with our own element-wise kernels: no oversubscription, and a GEMM
 * issued from inside an OpenMP parallel region runs on one thread.
 *
 * Row-major: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
 * Every call adds 2*M*N*K to a global FLOP counter.
 *
 * Dispatch by shape (FL_BACKEND_AUTO, the command line's default; issue 12
 * item 3; docs/ARCHITECTURE.md, "GEMM dispatch by shape"): neither backend
 * wins everywhere (oneDNN is faster on the NT score GEMMs of attention,
 * OpenBLAS on the TN weight gradients), so each shape (M, N, K,
 * transposes, and whether it is issued from inside a parallel region, where
 * it runs on one thread) gets the backend that was faster on this machine.
 * A shape is timed once, on its first call: both backends a few times,
 * interleaved, on the call's own inputs (into a scratch C), the minimum of
 * each side compared. Shapes below FL_GEMM_SMALL_FLOPS are not timed:
 * OpenBLAS, whose fixed cost per call is a third of oneDNN's.
 *
 * The choices are kept in CACHE/gemm/dispatch-HASH.json, HASH naming the key
 * (hwloc's description of the machine, both libraries' versions, the
 * thread count), which the file also holds in full. Every choice is made
 * under an exclusive lock of that file (flock), after re-reading it: cells
 * of a study running at once each see the other's choices, and a shape is
 * decided once per machine, so every cell uses the same backend for it. A
 * file that does not parse, holds the wrong key or any invalid entry is
 * ignored with a note and rewritten; it is never trusted in part.
 *
 * Forcing a backend (openblas, onednn) bypasses the table's choices and the
 * file; every mode records calls and seconds per shape for the profile. */
#ifndef FL_GEMM_H
#define FL_GEMM_H
#include <stddef.h>
#include <stdint.h>

typedef enum { FL_BACKEND_OPENBLAS = 0, FL_BACKEND_ONEDNN = 1, FL_BACKEND_AUTO = 2 } fl_backend;

/* "openblas", "onednn" or "auto"; -1 with a message for anything else. */
int fl_gemm_set_backend_name(const char *name);
void fl_gemm_set_backend(fl_backend b);
fl_backend fl_gemm_backend(void);
/* The mode's name: openblas, onednn or auto. */
const char *fl_gemm_backend_name(void);
/* Reads FL_BACKEND if set; returns -1 with a message if it names nothing. */
int fl_gemm_backend_from_env(void);

void fl_gemm(int transA, int transB, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb, float beta,
             float *C, int ldc);

uint64_t fl_flops(void);
void fl_flops_reset(void);
/* For kernels that do their own arithmetic (counted as they see fit). */
void fl_flops_add(uint64_t n);

/* Threads: n <= 0 means the number of physical cores (hwloc). Sets OpenMP,
 * OpenBLAS and oneDNN to the same count. Returns the count in use. A new
 * count forgets the dispatch choices made for the old one. */
int fl_threads_init(int n);
int fl_threads(void);
int fl_physical_cores(void);
/* One line for reports (hwloc): CPU model, cores, PUs, NUMA nodes, caches. */
void fl_machine_desc(char *buf, size_t n);

/* ---- dispatch by shape ---------------------------------------------------- */

/* 2*M*N*K below which a shape is not timed (OpenBLAS). */
#define FL_GEMM_SMALL_FLOPS 65536.0
/* oneDNN is chosen only when its best time beats OpenBLAS's by this
 * fraction: within it the two are a tie on a noisy machine, and a tie
 * keeps the backend freelunch always used. */
#define FL_GEMM_MARGIN 0.03
/* Timed repetitions per backend. */
#define FL_GEMM_REPS 5

/* The cache directory of the choices (CACHE/gemm/ is created in it); NULL
 * or "": choices live in this process only. main() sets it from --cache,
 * $FL_CACHE or ~/.cache/freelunch; the library's default is none. */
void fl_gemm_set_cache_dir(const char *dir);
/* The file of the current key ("" when there is no cache directory). */
void fl_gemm_cache_path(char *buf, size_t n);
/* The key the file is written under and checked against. */
void fl_gemm_cache_key(char *buf, size_t n);

/* The decision from measured seconds (n per backend; entries <= 0 or not
 * finite are ignored): OpenBLAS unless oneDNN's minimum is more than
 * FL_GEMM_MARGIN below OpenBLAS's; a side with no valid time loses. */
fl_backend fl_gemm_decide(const double *t_openblas, const double *t_onednn, int n);

/* The slice {M, N, K} of a shape that timing runs (in place): M halved
 * first, then N, then K, none below 256, until one call is at most 2^32
 * FLOPs and C at most 2^24 floats. */
void fl_gemm_slice(int d[3]);

/* For tests: a timer that replaces running the shape (returns the seconds
 * one call of `be` takes; rep counts 0..FL_GEMM_REPS-1). NULL: real timing. */
typedef double (*fl_gemm_timer)(void *ctx, fl_backend be, int transA, int transB, int M, int N, int K, int rep);
void fl_gemm_set_timer(fl_gemm_timer t, void *ctx);
/* For tests: forgets every shape, choice and count of this process (the
 * file stays). Not while GEMMs run. */
void fl_gemm_dispatch_reset(void);

/* Why a shape has its backend. */
typedef enum { FL_GEMM_WHY_NONE = 0, FL_GEMM_WHY_MEASURED, FL_GEMM_WHY_CACHE, FL_GEMM_WHY_SMALL, FL_GEMM_WHY_UNTIMED } fl_gemm_why;
const char *fl_gemm_why_name(fl_gemm_why w);   /* "", measured, cache, small, untimed */

typedef struct {
    int m, n, k, ta, tb, nested;   /* nested: issued inside a parallel region (one thread) */
    int decided;                   /* auto's choice below is known */
    fl_backend choice;
    fl_gemm_why why;
    double t_openblas, t_onednn;   /* best seconds when measured (here or by whoever wrote the cache) */
    int tm, tn, tk;                /* the shape that was timed (a big one is timed on a slice) */
    uint64_t calls[2];             /* calls run by each backend, in this process */
    double seconds[2];             /* their wall seconds (summed over threads for nested calls) */
} fl_gemm_shape;

/* The shapes called so far (up to max into out, in first-call order);
 * returns how many there are. */
int fl_gemm_shapes(fl_gemm_shape *out, int max);
/* Seconds this process spent timing shapes. */
double fl_gemm_measure_seconds(void);

/* The profile's record of dispatch: {"mode", "cache", "measure_seconds",
 * "shapes": [{"shape": "MxNxK", "trans": "NT", "nested", "calls",
 * "seconds", "backend", "why", "openblas_s", "onednn_s", "timed"}]},
 * "backend" being what the calls ran on (auto's choice, or the forced one).
 * A cJSON object for the caller to attach. */
struct cJSON;
struct cJSON *fl_gemm_profile_json(void);

#endif
