/* Would q/k/v (and gate/up) as one GEMM be faster than three (two)? Issue
 * 12 asked for them "where the weights allow"; freelunch keeps them apart
 * (each linear its own parameter, as pruning and reconstruction address
 * them), and this measures what fusing would buy. For N tokens and K = d
 * inputs: forward y = x W^T, dx = dy W, dW = dy^T x, outputs O_1..O_n as
 * separate GEMMs against one GEMM of sum O_i; the minimum of 30 repetitions
 * each, with OpenBLAS forced and with the dispatch by shape (auto). One
 * line per measurement:
 *
 *   RESULT fuse <backend> <case> <fwd|dx|dW> ratio=<separate / fused time> higher=fusing-faster
 *          separate_ms= fused_ms=
 *
 * (ratio > 1: fusing would be faster). No target: a measurement for the
 * README ("Speed, measured"), not a goal. */
#include "model/gemm.h"
#include "model/alloc.h"
#include "model/clock.h"
#include "datasets/corpus.h"
#include "benchutil.h"
#include <stdio.h>
#include <stdlib.h>
static float *rnd(size_t n) { float *p = fl_allocf(n); for (size_t i = 0; i < n; i++) p[i] = (float)rand() / RAND_MAX - 0.5f; return p; }
static double t_sep(int N, int K, const int *O, int n, int which, float *x, float *W, float *y, float *dy) {
    double best = 1e9;
    for (int r = 0; r < 30; r++) {
        double a = fl_wall_s();
        size_t ow = 0, oy = 0;
        for (int i = 0; i < n; i++) {
            if (which == 0) fl_gemm(0, 1, N, O[i], K, 1.0f, x, K, W + ow, K, 0.0f, y + oy, O[i]);
            if (which == 1) fl_gemm(0, 0, N, K, O[i], 1.0f, dy + oy, O[i], W + ow, K, 1.0f, x, K);
            if (which == 2) fl_gemm(1, 0, O[i], K, N, 1.0f, dy + oy, O[i], x, K, 1.0f, W + ow, K);
            ow += (size_t)O[i] * K; oy += (size_t)N * O[i];
        }
        double t = fl_wall_s() - a;
        if (t < best) best = t;
    }
    return best;
}
static double t_fused(int N, int K, int Os, int which, float *x, float *W, float *y, float *dy) {
    double best = 1e9;
    for (int r = 0; r < 30; r++) {
        double a = fl_wall_s();
        if (which == 0) fl_gemm(0, 1, N, Os, K, 1.0f, x, K, W, K, 0.0f, y, Os);
        if (which == 1) fl_gemm(0, 0, N, K, Os, 1.0f, dy, Os, W, K, 1.0f, x, K);
        if (which == 2) fl_gemm(1, 0, Os, K, N, 1.0f, dy, Os, x, K, 1.0f, W, K);
        double t = fl_wall_s() - a;
        if (t < best) best = t;
    }
    return best;
}
int main(void) {
    printf("THREADS %d\n", fl_threads_init(bench_env_int("BENCH_THREADS", 0)));
    char cache[4096];
    fl_gemm_set_cache_dir(fl_cache_dir(cache, sizeof cache, NULL));
    struct { const char *name; int N, K, n, O[3]; } C[] = {
        { "gpt2-small-qkv", 2048, 256, 3, { 256, 256, 256 } },
        { "llama-small-qkv", 2048, 256, 3, { 256, 128, 128 } },
        { "llama-small-gate-up", 2048, 256, 2, { 688, 688, 0 } },
        { "gpt2-124m-qkv", 2048, 768, 3, { 768, 768, 768 } },
    };
    const char *W3[3] = { "fwd", "dx", "dW" };
    for (int b = 0; b < 2; b++) {
        fl_gemm_set_backend(b ? FL_BACKEND_AUTO : FL_BACKEND_OPENBLAS);
        for (size_t c = 0; c < sizeof C / sizeof *C; c++) {
            int Os = 0;
            for (int i = 0; i < C[c].n; i++) Os += C[c].O[i];
            float *x = rnd((size_t)C[c].N * C[c].K), *W = rnd((size_t)Os * C[c].K), *y = rnd((size_t)C[c].N * Os), *dy = rnd((size_t)C[c].N * Os);
            for (int w = 0; w < 3; w++) {
                t_sep(C[c].N, C[c].K, C[c].O, C[c].n, w, x, W, y, dy); t_fused(C[c].N, C[c].K, Os, w, x, W, y, dy);   /* warm, auto times */
                double s = t_sep(C[c].N, C[c].K, C[c].O, C[c].n, w, x, W, y, dy), f = t_fused(C[c].N, C[c].K, Os, w, x, W, y, dy);
                printf("RESULT fuse %s %s %s ratio=%.3f higher=fusing-faster separate_ms=%.3f fused_ms=%.3f\n", b ? "auto" : "openblas", C[c].name,
                       W3[w], s / f, 1e3 * s, 1e3 * f);
                fflush(stdout);
            }
            fl_free(x); fl_free(W); fl_free(y); fl_free(dy);
        }
    }
    return 0;
}
