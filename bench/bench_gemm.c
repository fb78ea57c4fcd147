/* GEMM throughput of each backend through fl_gemm (fp32, row-major).
 *
 *   RESULT peak <backend> <MxNxK> gflops=<best of reps>
 *   RESULT gemm <backend> <MxNxK> <fwd|dx|dw> gflops=<median> best=<best> ms=<median ms>
 *
 * Peak shapes are plain C = A B (no transpose), large enough that packing
 * and threading overheads vanish: the machine's practical sgemm ceiling.
 * A linear-layer shape MxNxK (M tokens, N outputs, K inputs) is timed as
 * the three GEMMs fl_matmul_forward/backward issue for it:
 *   fwd  Y[M,N]  = X[M,K] W[N,K]^T     (NT)
 *   dx   dX[M,K] = dY[M,N] W[N,K]      (NN)
 *   dw   dW[N,K] = dY[M,N]^T X[M,K]    (TN)
 * and each line gives the median and best GFLOP/s over about a second.
 *
 * Env: BENCH_BACKENDS="openblas onednn", BENCH_THREADS. */
#include "benchutil.h"
#include "model/alloc.h"
#include "model/clock.h"
#include "model/err.h"
#include "model/gemm.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fill(float *x, size_t n, uint64_t s) {
    for (size_t i = 0; i < n; i++) x[i] = (float)bench_unit(bench_xorshift(&s)) - 0.5f;
}

/* Times C[m,n] = op(A)[m,k] op(B)[k,n] for about `seconds` (at least
 * min_reps after one warm-up); returns median and best GFLOP/s. */
static void time_gemm(int tA, int tB, int m, int n, int k, double seconds, int min_reps, double *med, double *best,
                      double *med_ms) {
    float *A = fl_allocf((size_t)m * k), *B = fl_allocf((size_t)n * k), *C = fl_allocf((size_t)m * n);
    fill(A, (size_t)m * k, 1); fill(B, (size_t)n * k, 2);
    int lda = tA ? m : k, ldb = tB ? k : n;
    fl_gemm(tA, tB, m, n, k, 1.0f, A, lda, B, ldb, 0.0f, C, n);   /* warm-up */
    double t[400];
    int cnt = 0;
    double t_end = fl_wall_s() + seconds;
    while (cnt < 400 && (cnt < min_reps || fl_wall_s() < t_end)) {
        double a = fl_wall_s();
        fl_gemm(tA, tB, m, n, k, 1.0f, A, lda, B, ldb, 0.0f, C, n);
        t[cnt++] = fl_wall_s() - a;
    }
    double tm = bench_median(t, cnt);
    double f = 2.0 * m * n * k * 1e-9;
    *med = f / tm; *best = f / t[0]; *med_ms = tm * 1e3;
    fl_free(A); fl_free(B); fl_free(C);
}

int main(void) {
    int nt = fl_threads_init(bench_env_int("BENCH_THREADS", 0));
    printf("THREADS %d\n", nt);
    const char *bes = getenv("BENCH_BACKENDS");
    char buf[256];
    snprintf(buf, sizeof buf, "%s", bes && *bes ? bes : "openblas onednn");
    static const int peak[][3] = { { 2048, 2048, 2048 }, { 4096, 4096, 1024 } };
    static const int lin[][3] = { { 4096, 128, 128 }, { 2048, 256, 256 }, { 1024, 768, 768 }, { 1024, 3072, 768 } };
    for (char *save = NULL, *be = strtok_r(buf, " ,", &save); be; be = strtok_r(NULL, " ,", &save)) {
        if (fl_gemm_set_backend_name(be) != 0) { fprintf(stderr, "bench_gemm: %s\n", fl_errmsg()); return 2; }
        for (int i = 0; i < 2; i++) {
            double med, best, ms;
            time_gemm(0, 0, peak[i][0], peak[i][1], peak[i][2], 2.0, 4, &med, &best, &ms);
            printf("RESULT peak %s %dx%dx%d gflops=%.1f median=%.1f ms=%.2f\n", be, peak[i][0], peak[i][1],
                   peak[i][2], best, med, ms);
            fflush(stdout);
        }
        for (int i = 0; i < 4; i++) {
            const int M = lin[i][0], N = lin[i][1], K = lin[i][2];
            /* name, transA, transB, m, n, k of the GEMM actually issued */
            const struct { const char *what; int tA, tB, m, n, k; } g[3] = {
                { "fwd", 0, 1, M, N, K }, { "dx", 0, 0, M, K, N }, { "dw", 1, 0, N, K, M } };
            for (int j = 0; j < 3; j++) {
                double med, best, ms;
                time_gemm(g[j].tA, g[j].tB, g[j].m, g[j].n, g[j].k, 0.7, 10, &med, &best, &ms);
                printf("RESULT gemm %s %dx%dx%d %s gflops=%.1f best=%.1f ms=%.3f\n", be, M, N, K, g[j].what, med,
                       best, ms);
                fflush(stdout);
            }
        }
    }
    return 0;
}
