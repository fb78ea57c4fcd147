/* Layer kernels. The heavy lifting (every matmul, and the score / value
 * products inside attention) goes through fl_gemm; the rest is plain C with
 * OpenMP over rows. See ops.h for shapes and the accumulate convention. */
#include "ops.h"
#include "alloc.h"
#include "gemm.h"
#include <math.h>
#include <omp.h>
#include <string.h>
#ifdef __AVX__
#include <immintrin.h>
#include <sleef.h>
#endif

/* ---- vectorised transcendentals ---------------------------------------- */

/* y[i] = exp(x[i] - c), y may alias x. glibc's expf is scalar (its vector
 * variants are only offered under -ffast-math), and exp is what attention
 * and the softmax of the LM head spend their non-GEMM time on, so 8 lanes
 * at a time go through SLEEF (1.0-ulp variants); without AVX, libm. */
static void vexpf(float *y, const float *x, float c, int64_t n) {
    int64_t i = 0;
#ifdef __AVX__
    const __m256 vc = _mm256_set1_ps(c);
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, Sleef_expf8_u10(_mm256_sub_ps(_mm256_loadu_ps(x + i), vc)));
#endif
    for (; i < n; i++) y[i] = expf(x[i] - c);
}

/* y[i] = tanh(x[i]), y may alias x; as vexpf, but SLEEF's 3.5-ulp tanh:
 * 2.5x faster than the 1.0-ulp one here and within 1e-7 absolute of
 * tanh in double over [-8, 8] (GELU-tanh's forward and backward take it
 * on every MLP activation, which made it 5% of a gpt2 block's step). */
static void vtanhf(float *y, const float *x, int64_t n) {
    int64_t i = 0;
#ifdef __AVX__
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, Sleef_tanhf8_u35(_mm256_loadu_ps(x + i)));
#endif
    for (; i < n; i++) y[i] = tanhf(x[i]);
}

/* ---- embedding -------------------------------------------------------- */

void fl_embed_forward(float *out, const int32_t *tok, const float *wte, const float *wpe,
                      int B, int T, int C, int pos_first) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < B * T; n++) {
        const float *e = wte + (int64_t)tok[n] * C;
        const float *p = wpe ? wpe + (int64_t)(pos_first + n % T) * C : NULL;
        float *o = out + (int64_t)n * C;
        for (int c = 0; c < C; c++) o[c] = e[c] + (p ? p[c] : 0.0f);
    }
}

void fl_embed_backward(float *dwte, float *dwpe, const float *dout, const int32_t *tok,
                       int B, int T, int C, int pos_first) {
    /* Several positions may share a token row, so parallelise over channels:
     * each thread owns a slice of columns and no two threads write one float. */
    #pragma omp parallel for schedule(static)
    for (int c0 = 0; c0 < C; c0 += 16) {
        int c1 = c0 + 16 < C ? c0 + 16 : C;
        for (int n = 0; n < B * T; n++) {
            const float *d = dout + (int64_t)n * C;
            if (dwte) { float *g = dwte + (int64_t)tok[n] * C; for (int c = c0; c < c1; c++) g[c] += d[c]; }
            if (dwpe) { float *g = dwpe + (int64_t)(pos_first + n % T) * C; for (int c = c0; c < c1; c++) g[c] += d[c]; }
        }
    }
}

/* ---- column sums with per-thread partials ------------------------------ */

/* acc[c] += sum_n a[n,c] * (b ? b[n,c] : 1). Per-thread partial rows keep
 * the reduction race-free and summed in a fixed order (reproducible for a
 * given thread count). */
static void colsum(float *acc, const float *a, const float *b, int N, int C) {
    int nt = omp_get_max_threads();
    float *part = fl_allocf((size_t)nt * C);
    #pragma omp parallel
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        float *p = part + (size_t)t * C;
        int n0 = (int)((int64_t)N * t / T), n1 = (int)((int64_t)N * (t + 1) / T);
        for (int n = n0; n < n1; n++) {
            const float *ar = a + (int64_t)n * C;
            if (b) { const float *br = b + (int64_t)n * C; for (int c = 0; c < C; c++) p[c] += ar[c] * br[c]; }
            else for (int c = 0; c < C; c++) p[c] += ar[c];
        }
    }
    for (int t = 0; t < nt; t++)
        for (int c = 0; c < C; c++) acc[c] += part[(size_t)t * C + c];
    fl_free(part);
}

/* ---- LayerNorm --------------------------------------------------------- */

void fl_layernorm_forward(float *out, float *mean, float *rstd, const float *x,
                          const float *w, const float *b, int N, int C, float eps) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (int64_t)n * C;
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += xr[c];
        m /= C;
        for (int c = 0; c < C; c++) { double d = xr[c] - m; v += d * d; }
        v /= C;
        float s = (float)(1.0 / sqrt(v + eps));
        float *o = out + (int64_t)n * C;
        for (int c = 0; c < C; c++) o[c] = ((xr[c] - (float)m) * s) * w[c] + (b ? b[c] : 0.0f);
        mean[n] = (float)m;
        rstd[n] = s;
    }
}

/* One pass per row for dx and the weight/bias gradients: x-hat is formed
 * on the fly (never stored [N,C]) and dw, db go into per-thread partial
 * rows (nt x C each, only for the gradients asked for), summed in thread
 * order as colsum does. */
void fl_layernorm_backward(float *dx, float *dw, float *db, const float *dout, const float *x,
                           const float *w, const float *mean, const float *rstd, int N, int C) {
    const int nt = omp_get_max_threads(), np = (dw ? 1 : 0) + (db ? 1 : 0);
    float *part = np ? fl_allocf((size_t)nt * np * C) : NULL;
    #pragma omp parallel
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        float *pw = dw ? part + (size_t)t * np * C : NULL, *pb = db ? part + (size_t)t * np * C + (dw ? C : 0) : NULL;
        int n0 = (int)((int64_t)N * t / T), n1 = (int)((int64_t)N * (t + 1) / T);
        for (int n = n0; n < n1; n++) {
            const float *xr = x + (int64_t)n * C, *dr = dout + (int64_t)n * C;
            const float m = mean[n], s = rstd[n];
            if (pb) {
                #pragma omp simd
                for (int c = 0; c < C; c++) pb[c] += dr[c];
            }
            if (pw) {
                #pragma omp simd
                for (int c = 0; c < C; c++) pw[c] += dr[c] * ((xr[c] - m) * s);
            }
            if (!dx) continue;
            float sd = 0.0f, sdn = 0.0f;   /* sums of w*dout and of w*dout*xhat */
            #pragma omp simd reduction(+ : sd, sdn)
            for (int c = 0; c < C; c++) {
                float g = w[c] * dr[c];
                sd += g; sdn += g * ((xr[c] - m) * s);
            }
            const float a = sd / C, bb = sdn / C;
            float *o = dx + (int64_t)n * C;
            #pragma omp simd
            for (int c = 0; c < C; c++) o[c] += (w[c] * dr[c] - a - ((xr[c] - m) * s) * bb) * s;
        }
    }
    for (int t = 0; t < nt && part; t++) {
        const float *p = part + (size_t)t * np * C;
        if (dw) for (int c = 0; c < C; c++) dw[c] += p[c];
        if (db) for (int c = 0; c < C; c++) db[c] += p[(dw ? C : 0) + c];
    }
    fl_free(part);
}

/* ---- RMSNorm ----------------------------------------------------------- */

void fl_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (int64_t)n * C;
        double ss = 0;
        for (int c = 0; c < C; c++) ss += (double)xr[c] * xr[c];
        float s = (float)(1.0 / sqrt(ss / C + eps));
        float *o = out + (int64_t)n * C;
        for (int c = 0; c < C; c++) o[c] = (xr[c] * s) * w[c];
        rstd[n] = s;
    }
}

/* As the LayerNorm backward: one pass per row, dw in per-thread partials. */
void fl_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *w,
                         const float *rstd, int N, int C) {
    const int nt = omp_get_max_threads();
    float *part = dw ? fl_allocf((size_t)nt * C) : NULL;
    #pragma omp parallel
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        float *pw = dw ? part + (size_t)t * C : NULL;
        int n0 = (int)((int64_t)N * t / T), n1 = (int)((int64_t)N * (t + 1) / T);
        for (int n = n0; n < n1; n++) {
            const float *xr = x + (int64_t)n * C, *dr = dout + (int64_t)n * C;
            const float s = rstd[n];
            if (pw) {
                #pragma omp simd
                for (int c = 0; c < C; c++) pw[c] += dr[c] * (xr[c] * s);
            }
            if (!dx) continue;
            float dot = 0.0f;  /* sum_c w dout x */
            #pragma omp simd reduction(+ : dot)
            for (int c = 0; c < C; c++) dot += w[c] * dr[c] * xr[c];
            const float k = dot / C * s * s * s;
            float *o = dx + (int64_t)n * C;
            #pragma omp simd
            for (int c = 0; c < C; c++) o[c] += w[c] * dr[c] * s - xr[c] * k;
        }
    }
    for (int t = 0; t < nt && part; t++)
        for (int c = 0; c < C; c++) dw[c] += part[(size_t)t * C + c];
    fl_free(part);
}

/* ---- matmul ------------------------------------------------------------ */

void fl_matmul_forward(float *out, const float *x, const float *W, const float *b, int N, int I, int O) {
    if (b) {
        #pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) memcpy(out + (int64_t)n * O, b, sizeof(float) * O);
    }
    fl_gemm(0, 1, N, O, I, 1.0f, x, I, W, I, b ? 1.0f : 0.0f, out, O);
}

void fl_matmul_backward(float *dx, float *dW, float *db, const float *dout, const float *x,
                        const float *W, int N, int I, int O) {
    if (dx) fl_gemm(0, 0, N, I, O, 1.0f, dout, O, W, I, 1.0f, dx, I);
    if (dW) fl_gemm(1, 0, O, I, N, 1.0f, dout, O, x, I, 1.0f, dW, I);
    if (db) colsum(db, dout, NULL, N, O);
}

/* ---- low-rank adapters ------------------------------------------------ */

void fl_lowrank_forward(float *out, const float *x, const float *A, const float *B, float s,
                        int N, int I, int O, int R, float *tmp) {
    fl_gemm(0, 1, N, R, I, 1.0f, x, I, A, I, 0.0f, tmp, R);       /* x A^T [N,R] */
    fl_gemm(0, 1, N, O, R, s, tmp, R, B, R, 1.0f, out, O);        /* += s (x A^T) B^T */
}

void fl_lowrank_backward(float *dx, float *dA, float *dB, const float *dout, const float *x,
                         const float *A, const float *B, float s, int N, int I, int O, int R, float *tmp) {
    float *xa = tmp, *dyb = tmp + (size_t)N * R;
    fl_gemm(0, 0, N, R, O, 1.0f, dout, O, B, R, 0.0f, dyb, R);    /* dout B [N,R] */
    if (dB) {
        fl_gemm(0, 1, N, R, I, 1.0f, x, I, A, I, 0.0f, xa, R);
        fl_gemm(1, 0, O, R, N, s, dout, O, xa, R, 1.0f, dB, R);
    }
    if (dA) fl_gemm(1, 0, R, I, N, s, dyb, R, x, I, 1.0f, dA, I);
    if (dx) fl_gemm(0, 0, N, I, R, s, dyb, R, A, I, 1.0f, dx, I);
}

void fl_masklora_compose(float *weff, const float *W0, const uint8_t *M, const float *A, const float *B,
                         float s, int O, int I, int R) {
    const int64_t n = (int64_t)O * I;
    memcpy(weff, W0, sizeof(float) * (size_t)n);
    fl_gemm(0, 0, O, I, R, s, B, R, A, I, 1.0f, weff, I);
    if (M) {
        #pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < n; k++)
            if (!M[k]) weff[k] = W0[k];
    }
}

void fl_masklora_backward(float *dA, float *dB, float *g, const uint8_t *M, const float *dout, const float *x,
                          const float *A, const float *B, float s, int N, int I, int O, int R) {
    const int64_t n = (int64_t)O * I;
    fl_gemm(1, 0, O, I, N, 1.0f, dout, O, x, I, 0.0f, g, I);     /* dL/dW_eff */
    if (M) {
        #pragma omp parallel for schedule(static)
        for (int64_t k = 0; k < n; k++)
            if (!M[k]) g[k] = 0.0f;
    }
    if (dB) fl_gemm(0, 1, O, R, I, s, g, I, A, I, 1.0f, dB, R);
    if (dA) fl_gemm(1, 0, R, I, O, s, B, R, g, I, 1.0f, dA, I);
}

/* ---- RoPE -------------------------------------------------------------- */

void fl_rope_table(float *cos_t, float *sin_t, int max_pos, int hd, float theta) {
    int h2 = hd / 2;
    for (int p = 0; p < max_pos; p++)
        for (int i = 0; i < h2; i++) {
            /* HF computes inv_freq in fp32 and the angle as a fp32 product;
             * we do it in double then round, which differs by < 1 ulp. */
            double inv = pow((double)theta, -(2.0 * i) / hd);
            double a = (double)p * (float)inv;
            cos_t[(int64_t)p * h2 + i] = (float)cos(a);
            sin_t[(int64_t)p * h2 + i] = (float)sin(a);
        }
}

static void rope_apply(float *x, const float *cos_t, const float *sin_t, int B, int T, int nh, int hd,
                       int pos_first, float sign) {
    int h2 = hd / 2;
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < B * T; n++) {
        int p = pos_first + n % T;
        const float *c = cos_t + (int64_t)p * h2, *s = sin_t + (int64_t)p * h2;
        for (int h = 0; h < nh; h++) {
            float *v = x + ((int64_t)n * nh + h) * hd;
            for (int i = 0; i < h2; i++) {
                float a = v[i], b = v[i + h2], si = sign * s[i];
                v[i] = a * c[i] - b * si;
                v[i + h2] = b * c[i] + a * si;
            }
        }
    }
}

void fl_rope_forward(float *x, const float *cos_t, const float *sin_t, int B, int T, int nh, int hd, int pos_first) {
    rope_apply(x, cos_t, sin_t, B, T, nh, hd, pos_first, 1.0f);
}

/* The rotation is orthogonal, so its transpose is the rotation by -angle. */
void fl_rope_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T, int nh, int hd, int pos_first) {
    rope_apply(dx, cos_t, sin_t, B, T, nh, hd, pos_first, -1.0f);
}

/* ---- attention: the reference kernel ------------------------------------ */

/* The kernel freelunch used before the O(T) one below: it keeps the whole
 * [B,H,T,T] probability matrix for backward. Kept as the reference the
 * O(T) kernel is checked against (tests/test_grad.c) and benchmarked
 * against (bench/bench_attn.c); nothing in the model calls it. */

/* Rows are processed in blocks of RB so each block's score GEMM only spans
 * the columns the causal mask allows (about half the work of a full T x T). */
#define RB 64

static void softmax_causal_rows(float *S, int ld, int r0, int r1) {
    for (int i = r0; i < r1; i++) {
        float *row = S + (int64_t)(i - r0) * ld;
        float mx = -INFINITY;
        for (int j = 0; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
        double sum = 0;
        for (int j = 0; j <= i; j++) { row[j] = expf(row[j] - mx); sum += row[j]; }
        float inv = (float)(1.0 / sum);
        for (int j = 0; j <= i; j++) row[j] *= inv;
        for (int j = i + 1; j < ld; j++) row[j] = 0.0f;
    }
}

void fl_attention_forward_ref(float *out, float *att, const float *q, const float *k, const float *v,
                          int B, int T, int H, int KV, int hd) {
    const int ldq = H * hd, ldk = KV * hd, grp = H / KV;
    const float scale = 1.0f / sqrtf((float)hd);
    float *scratch = att ? NULL : fl_allocf((size_t)omp_get_max_threads() * RB * T);
    #pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *qb = q + (int64_t)b * T * ldq + h * hd;
            const float *kb = k + (int64_t)b * T * ldk + (h / grp) * hd;
            const float *vb = v + (int64_t)b * T * ldk + (h / grp) * hd;
            float *ob = out + (int64_t)b * T * ldq + h * hd;
            float *P = att ? att + ((int64_t)b * H + h) * T * T : NULL;
            for (int r0 = 0; r0 < T; r0 += RB) {
                int r1 = r0 + RB < T ? r0 + RB : T, rows = r1 - r0;
                /* S[r0:r1, 0:r1] and P share storage: row stride T for the
                 * kept matrix, r1 for the scratch block. */
                float *S; int ld;
                if (P) { S = P + (int64_t)r0 * T; ld = T; }
                else { S = scratch + (size_t)omp_get_thread_num() * RB * T; ld = r1; }
                fl_gemm(0, 1, rows, r1, hd, scale, qb + (int64_t)r0 * ldq, ldq, kb, ldk, 0.0f, S, ld);
                softmax_causal_rows(S, ld, r0, r1);  /* also zeroes j > i up to ld */
                fl_gemm(0, 0, rows, hd, r1, 1.0f, S, ld, vb, ldk, 0.0f, ob + (int64_t)r0 * ldq, ldq);
            }
        }
    fl_free(scratch);
}

size_t fl_attention_ref_scratch_bytes(int T) { return sizeof(float) * (size_t)omp_get_max_threads() * RB * T; }

void fl_attention_backward_ref(float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, const float *att,
                           int B, int T, int H, int KV, int hd) {
    const int ldq = H * hd, ldk = KV * hd, grp = H / KV;
    const float scale = 1.0f / sqrtf((float)hd);
    float *scratch = fl_allocf((size_t)omp_get_max_threads() * RB * T);
    /* One task per (batch, kv-head): the heads of a group all write the same
     * dk, dv slices, so they run in sequence inside the task. */
    #pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++)
        for (int g = 0; g < KV; g++) {
            float *dS = scratch + (size_t)omp_get_thread_num() * RB * T;
            const float *kb = k + (int64_t)b * T * ldk + g * hd;
            const float *vb = v + (int64_t)b * T * ldk + g * hd;
            float *dkb = dk + (int64_t)b * T * ldk + g * hd;
            float *dvb = dv + (int64_t)b * T * ldk + g * hd;
            for (int h = g * grp; h < (g + 1) * grp; h++) {
                const float *qb = q + (int64_t)b * T * ldq + h * hd;
                const float *dob = dout + (int64_t)b * T * ldq + h * hd;
                float *dqb = dq + (int64_t)b * T * ldq + h * hd;
                const float *P = att + ((int64_t)b * H + h) * T * T;
                for (int r0 = 0; r0 < T; r0 += RB) {
                    int r1 = r0 + RB < T ? r0 + RB : T, rows = r1 - r0;
                    const float *Pr = P + (int64_t)r0 * T;
                    /* dP = dO V^T on the causal columns */
                    fl_gemm(0, 1, rows, r1, hd, 1.0f, dob + (int64_t)r0 * ldq, ldq, vb, ldk, 0.0f, dS, r1);
                    /* dV += P^T dO */
                    fl_gemm(1, 0, r1, hd, rows, 1.0f, Pr, T, dob + (int64_t)r0 * ldq, ldq, 1.0f, dvb, ldk);
                    /* softmax backward: dS = P * (dP - sum_j P dP), then the score scale */
                    for (int i = r0; i < r1; i++) {
                        const float *p = Pr + (int64_t)(i - r0) * T;
                        float *d = dS + (int64_t)(i - r0) * r1;
                        double dot = 0;
                        for (int j = 0; j <= i; j++) dot += (double)p[j] * d[j];
                        for (int j = 0; j <= i; j++) d[j] = p[j] * (d[j] - (float)dot) * scale;
                        for (int j = i + 1; j < r1; j++) d[j] = 0.0f;
                    }
                    /* dQ += dS K;  dK += dS^T Q */
                    fl_gemm(0, 0, rows, hd, r1, 1.0f, dS, r1, kb, ldk, 1.0f, dqb + (int64_t)r0 * ldq, ldq);
                    fl_gemm(1, 0, r1, hd, rows, 1.0f, dS, r1, qb + (int64_t)r0 * ldq, ldq, 1.0f, dkb, ldk);
                }
            }
        }
    fl_free(scratch);
}

/* ---- attention with O(T) memory ----------------------------------------- */

/* Flash-style causal attention (Dao et al., FlashAttention, 2022): forward
 * keeps only the per-row log-sum-exp of the scaled scores, lse [B,H,T];
 * backward recomputes the probabilities P = exp(S - lse) a row block at a
 * time from q and k. Rows are blocked (RB rows against the r1 causal
 * columns of the block, one per-thread scratch of RB*T floats), not the
 * columns too: for the sequence lengths of this study (<= 2048) a row
 * block's scores fit in L2, and GEMMs over whole causal spans stay as
 * large as the reference kernel's, so the extra score GEMM of backward is
 * the only price of never writing T x T floats. */

/* Softmax of the causal rows [r0, r1) of a score block S (row stride ld,
 * row i's columns 0..i valid), in place, zeroing j > i up to ld; the log-sum-
 * exp of row i goes to lse[i - r0] when lse is non-NULL. */
static void softmax_lse_rows(float *S, int ld, int r0, int r1, float *lse) {
    for (int i = r0; i < r1; i++) {
        float *row = S + (int64_t)(i - r0) * ld;
        float mx = -INFINITY;
        #pragma omp simd reduction(max : mx)
        for (int j = 0; j <= i; j++) mx = row[j] > mx ? row[j] : mx;
        vexpf(row, row, mx, i + 1);
        float sum = 0.0f;
        #pragma omp simd reduction(+ : sum)
        for (int j = 0; j <= i; j++) sum += row[j];
        float inv = 1.0f / sum;
        #pragma omp simd
        for (int j = 0; j <= i; j++) row[j] *= inv;
        for (int j = i + 1; j < ld; j++) row[j] = 0.0f;
        if (lse) lse[i - r0] = mx + logf(sum);
    }
}

void fl_attention_forward(float *out, float *lse, const float *q, const float *k, const float *v,
                          int B, int T, int H, int KV, int hd) {
    const int ldq = H * hd, ldk = KV * hd, grp = H / KV, nb = (T + RB - 1) / RB;
    const float scale = 1.0f / sqrtf((float)hd);
    float *scratch = fl_allocf((size_t)omp_get_max_threads() * RB * T);
    /* Row blocks are independent in forward: one task per (batch, head,
     * block), largest blocks (most causal columns) first for balance. */
    #pragma omp parallel for schedule(dynamic)
    for (int64_t t = 0; t < (int64_t)B * H * nb; t++) {
        int blk = nb - 1 - (int)(t % nb), h = (int)(t / nb % H), b = (int)(t / nb / H);
        const float *qb = q + (int64_t)b * T * ldq + h * hd;
        const float *kb = k + (int64_t)b * T * ldk + (h / grp) * hd;
        const float *vb = v + (int64_t)b * T * ldk + (h / grp) * hd;
        float *ob = out + (int64_t)b * T * ldq + h * hd;
        int r0 = blk * RB, r1 = r0 + RB < T ? r0 + RB : T, rows = r1 - r0;
        float *S = scratch + (size_t)omp_get_thread_num() * RB * T;
        fl_gemm(0, 1, rows, r1, hd, scale, qb + (int64_t)r0 * ldq, ldq, kb, ldk, 0.0f, S, r1);
        softmax_lse_rows(S, r1, r0, r1, lse ? lse + ((int64_t)b * H + h) * T + r0 : NULL);
        fl_gemm(0, 0, rows, hd, r1, 1.0f, S, r1, vb, ldk, 0.0f, ob + (int64_t)r0 * ldq, ldq);
    }
    fl_free(scratch);
}

size_t fl_attention_fwd_scratch_bytes(int T) { return sizeof(float) * (size_t)omp_get_max_threads() * RB * T; }
size_t fl_attention_scratch_bytes(int T) { return 2 * fl_attention_fwd_scratch_bytes(T); }

void fl_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q,
                           const float *k, const float *v, const float *lse,
                           int B, int T, int H, int KV, int hd) {
    const int ldq = H * hd, ldk = KV * hd, grp = H / KV;
    const float scale = 1.0f / sqrtf((float)hd);
    /* per thread: the recomputed probabilities P and the score gradient dS */
    float *scratch = fl_allocf((size_t)omp_get_max_threads() * 2 * RB * T);
    /* One task per (batch, kv-head): the heads of a group all write the same
     * dk, dv slices, so they run in sequence inside the task. */
    #pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++)
        for (int g = 0; g < KV; g++) {
            float *Pb = scratch + (size_t)omp_get_thread_num() * 2 * RB * T, *dS = Pb + (size_t)RB * T;
            const float *kb = k + (int64_t)b * T * ldk + g * hd;
            const float *vb = v + (int64_t)b * T * ldk + g * hd;
            float *dkb = dk + (int64_t)b * T * ldk + g * hd;
            float *dvb = dv + (int64_t)b * T * ldk + g * hd;
            for (int h = g * grp; h < (g + 1) * grp; h++) {
                const float *qb = q + (int64_t)b * T * ldq + h * hd;
                const float *dob = dout + (int64_t)b * T * ldq + h * hd;
                float *dqb = dq + (int64_t)b * T * ldq + h * hd;
                const float *L = lse + ((int64_t)b * H + h) * T;
                for (int r0 = 0; r0 < T; r0 += RB) {
                    int r1 = r0 + RB < T ? r0 + RB : T, rows = r1 - r0;
                    /* P = exp(scale Q K^T - lse) on the causal columns */
                    fl_gemm(0, 1, rows, r1, hd, scale, qb + (int64_t)r0 * ldq, ldq, kb, ldk, 0.0f, Pb, r1);
                    for (int i = r0; i < r1; i++) {
                        float *p = Pb + (int64_t)(i - r0) * r1, li = L[i];
                        vexpf(p, p, li, i + 1);
                        for (int j = i + 1; j < r1; j++) p[j] = 0.0f;
                    }
                    /* dP = dO V^T */
                    fl_gemm(0, 1, rows, r1, hd, 1.0f, dob + (int64_t)r0 * ldq, ldq, vb, ldk, 0.0f, dS, r1);
                    /* dV += P^T dO */
                    fl_gemm(1, 0, r1, hd, rows, 1.0f, Pb, r1, dob + (int64_t)r0 * ldq, ldq, 1.0f, dvb, ldk);
                    /* softmax backward: dS = P * (dP - sum_j P dP), then the score scale */
                    for (int i = r0; i < r1; i++) {
                        const float *p = Pb + (int64_t)(i - r0) * r1;
                        float *d = dS + (int64_t)(i - r0) * r1;
                        float dot = 0.0f;
                        #pragma omp simd reduction(+ : dot)
                        for (int j = 0; j <= i; j++) dot += p[j] * d[j];
                        #pragma omp simd
                        for (int j = 0; j <= i; j++) d[j] = p[j] * (d[j] - dot) * scale;
                        for (int j = i + 1; j < r1; j++) d[j] = 0.0f;
                    }
                    /* dQ += dS K;  dK += dS^T Q */
                    fl_gemm(0, 0, rows, hd, r1, 1.0f, dS, r1, kb, ldk, 1.0f, dqb + (int64_t)r0 * ldq, ldq);
                    fl_gemm(1, 0, r1, hd, rows, 1.0f, dS, r1, qb + (int64_t)r0 * ldq, ldq, 1.0f, dkb, ldk);
                }
            }
        }
    fl_free(scratch);
}

/* ---- activations ------------------------------------------------------- */

#define GELU_K 0.7978845608028654f  /* sqrt(2/pi) */

/* Both passes work a chunk of GCH elements at a time: the tanh argument
 * is formed for the chunk, the chunk's tanh taken 8 lanes at a time
 * (vtanhf), then the result assembled, all while the chunk is in L1. */
#define GCH 512

void fl_gelu_forward(float *out, const float *x, int64_t n) {
    #pragma omp parallel for schedule(static)
    for (int64_t c0 = 0; c0 < n; c0 += GCH) {
        int64_t m = n - c0 < GCH ? n - c0 : GCH;
        const float *z = x + c0;
        float *o = out + c0;
        #pragma omp simd
        for (int64_t i = 0; i < m; i++) o[i] = GELU_K * (z[i] + 0.044715f * z[i] * z[i] * z[i]);
        vtanhf(o, o, m);
        #pragma omp simd
        for (int64_t i = 0; i < m; i++) o[i] = 0.5f * z[i] * (1.0f + o[i]);
    }
}

void fl_gelu_backward(float *dx, const float *x, const float *dout, int64_t n) {
    #pragma omp parallel for schedule(static)
    for (int64_t c0 = 0; c0 < n; c0 += GCH) {
        int64_t m = n - c0 < GCH ? n - c0 : GCH;
        const float *z = x + c0, *d = dout + c0;
        float t[GCH];
        #pragma omp simd
        for (int64_t i = 0; i < m; i++) t[i] = GELU_K * (z[i] + 0.044715f * z[i] * z[i] * z[i]);
        vtanhf(t, t, m);
        float *o = dx + c0;
        #pragma omp simd
        for (int64_t i = 0; i < m; i++) {
            float dt = GELU_K * (1.0f + 3.0f * 0.044715f * z[i] * z[i]);
            o[i] += d[i] * (0.5f * (1.0f + t[i]) + 0.5f * z[i] * (1.0f - t[i] * t[i]) * dt);
        }
    }
}

void fl_relu_forward(float *out, const float *x, int64_t n) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

void fl_relu_backward(float *dx, const float *x, const float *dout, int64_t n) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dout[i] : 0.0f;
}

void fl_swiglu_forward(float *out, const float *gate, const float *up, int64_t n) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

void fl_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                        const float *up, int64_t n) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i], sg = 1.0f / (1.0f + expf(-g)), silu = g * sg;
        if (dup) dup[i] += dout[i] * silu;
        if (dgate) dgate[i] += dout[i] * up[i] * sg * (1.0f + g * (1.0f - sg));
    }
}

/* ---- cross-entropy ----------------------------------------------------- */

/* Row max, vectorised. */
static float row_max(const float *l, int V) {
    float mx = -INFINITY;
    #pragma omp simd reduction(max : mx)
    for (int j = 0; j < V; j++) mx = l[j] > mx ? l[j] : mx;
    return mx;
}

/* log sum_j exp(l_j): the exponentials a chunk at a time through vexpf
 * into a stack buffer (the row is only read), summed in double. */
static double row_lse(const float *l, int V) {
    float mx = row_max(l, V), e[256];
    double s = 0;
    for (int j0 = 0; j0 < V; j0 += 256) {
        int m = V - j0 < 256 ? V - j0 : 256;
        vexpf(e, l + j0, mx, m);
        float cs = 0.0f;
        #pragma omp simd reduction(+ : cs)
        for (int j = 0; j < m; j++) cs += e[j];
        s += cs;
    }
    return mx + log(s);
}

double fl_crossentropy_forward(float *nll, const float *logits, const int32_t *targets,
                               int N, int V, int64_t *count) {
    double sum = 0;
    int64_t cnt = 0;
    #pragma omp parallel for schedule(static) reduction(+ : sum, cnt)
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) { if (nll) nll[n] = 0.0f; continue; }
        const float *l = logits + (int64_t)n * V;
        double v = row_lse(l, V) - l[targets[n]];
        if (nll) nll[n] = (float)v;
        sum += v;
        cnt++;
    }
    if (count) *count = cnt;
    return sum;
}

void fl_crossentropy_backward(float *dlogits, const float *logits, const int32_t *targets,
                              int N, int V, float scale) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *l = logits + (int64_t)n * V;
        float *d = dlogits + (int64_t)n * V;
        if (targets[n] < 0) { memset(d, 0, sizeof(float) * V); continue; }
        /* one pass of exponentials (not the lse's and then the softmax's):
         * d = exp(l - max), then scaled by scale / sum; vexpf reads l[j]
         * before it writes d[j], so d may alias l */
        vexpf(d, l, row_max(l, V), V);
        double sum = 0;
        for (int j0 = 0; j0 < V; j0 += 256) {
            int m = V - j0 < 256 ? V - j0 : 256;
            float cs = 0.0f;
            #pragma omp simd reduction(+ : cs)
            for (int j = j0; j < j0 + m; j++) cs += d[j];
            sum += cs;
        }
        const float f = (float)(scale / sum);
        #pragma omp simd
        for (int j = 0; j < V; j++) d[j] *= f;
        d[targets[n]] -= scale;
    }
}

double fl_softce_forward(const float *logits, const float *p, const int32_t *targets, int N, int V, int64_t *count) {
    double sum = 0;
    int64_t cnt = 0;
    #pragma omp parallel for schedule(static) reduction(+ : sum, cnt)
    for (int n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        const float *l = logits + (int64_t)n * V, *q = p + (int64_t)n * V;
        double lse = row_lse(l, V), v = 0;
        for (int j = 0; j < V; j++) v += (double)q[j] * (lse - l[j]);
        sum += v;
        cnt++;
    }
    if (count) *count = cnt;
    return sum;
}

void fl_softce_backward(float *dlogits, const float *logits, const float *p, const int32_t *targets,
                        int N, int V, float scale) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *l = logits + (int64_t)n * V, *q = p + (int64_t)n * V;
        float *d = dlogits + (int64_t)n * V;
        if (targets[n] < 0) { memset(d, 0, sizeof(float) * V); continue; }
        vexpf(d, l, (float)row_lse(l, V), V);   /* d may alias l: read before written */
        #pragma omp simd
        for (int j = 0; j < V; j++) d[j] = (d[j] - q[j]) * scale;
    }
}

void fl_add(float *out, const float *a, const float *b, int64_t n) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void fl_accum(float *out, const float *a, int64_t n) {
    #pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] += a[i];
}
