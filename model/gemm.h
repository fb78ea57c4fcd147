/* One GEMM for all of freelunch, with two backends chosen at run time:
 * OpenBLAS (cblas_sgemm) and oneDNN (dnnl_sgemm). Both are built on OpenMP
 * here (Debian's libopenblas0-openmp and libdnnl), so they share one thread
 * pool with our own element-wise kernels: no oversubscription, and a GEMM
 * issued from inside an OpenMP parallel region runs on one thread.
 *
 * Row-major: C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C.
 * Every call adds 2*M*N*K to a global FLOP counter. */
#ifndef FL_GEMM_H
#define FL_GEMM_H
#include <stddef.h>
#include <stdint.h>

typedef enum { FL_BACKEND_OPENBLAS = 0, FL_BACKEND_ONEDNN = 1 } fl_backend;

/* "openblas" or "onednn"; -1 with a message for anything else. */
int fl_gemm_set_backend_name(const char *name);
void fl_gemm_set_backend(fl_backend b);
fl_backend fl_gemm_backend(void);
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
 * OpenBLAS and oneDNN to the same count. Returns the count in use. */
int fl_threads_init(int n);
int fl_threads(void);
int fl_physical_cores(void);
/* One line for reports (hwloc): CPU model, cores, PUs, NUMA nodes, caches. */
void fl_machine_desc(char *buf, size_t n);

#endif
