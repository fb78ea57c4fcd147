/* Shared helpers for the cmocka tests. */
#ifndef FL_TESTUTIL_H
#define FL_TESTUTIL_H
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <unistd.h>
#include <cmocka.h>
#include "model/adamw.h"
#include "model/alloc.h"
#include "model/gemm.h"
#include "model/model.h"

/* A fresh directory under $TMPDIR (or /tmp); the caller owns it. */
static inline void tu_tmpdir(char *out, size_t n) {
    const char *base = getenv("TMPDIR");
    snprintf(out, n, "%s/fltest.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(out)) { perror("mkdtemp"); abort(); }
}

static inline void tu_rmrf(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
}

/* A whole file as a NUL-terminated string (malloc'd); fails the test when
 * it cannot be read. */
static inline char *tu_read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    if (fread(s, 1, (size_t)n, f) != (size_t)n) fail_msg("cannot read %s", path);
    s[n] = 0;
    fclose(f);
    return s;
}

/* Deterministic uniform floats in [-scale, scale]. */
static inline uint64_t tu_rng(uint64_t *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17; return *s;
}
static inline void tu_fill(float *x, size_t n, float scale, uint64_t seed) {
    uint64_t s = seed * 2654435761u + 88172645463325252ull;
    for (size_t i = 0; i < n; i++)
        x[i] = scale * (2.0f * (float)((tu_rng(&s) >> 11) * (1.0 / 9007199254740992.0)) - 1.0f);
}

/* Calibration inputs X [n, cols] = (Z @ (A + 2I)) * diag(e^{1+u}) with Z, A,
 * u uniform: correlated, so X^T X is far from diagonal, with uneven column
 * norms. dead > 0 zeroes every (cols/dead)-th column (from column 1). */
static inline void tu_correlated_inputs(float *X, int n, int cols, int dead, uint64_t seed) {
    float *Z = fl_allocf((size_t)n * cols), *A = fl_allocf((size_t)cols * cols), *s = fl_allocf((size_t)cols);
    tu_fill(Z, (size_t)n * cols, 1.0f, seed * 3 + 1);
    tu_fill(A, (size_t)cols * cols, 1.0f, seed * 3 + 2);
    tu_fill(s, (size_t)cols, 1.0f, seed * 3 + 3);
    for (int c = 0; c < cols; c++) A[(int64_t)c * cols + c] += 2.0f;
    fl_gemm(0, 0, n, cols, cols, 1.0f, Z, cols, A, cols, 0.0f, X, cols);
    for (int r = 0; r < n; r++)
        for (int c = 0; c < cols; c++) {
            float f = expf(1.0f + s[c]);
            if (dead && c % (cols / dead) == 1) f = 0.0f;
            X[(int64_t)r * cols + c] *= f;
        }
    fl_free(Z); fl_free(A); fl_free(s);
}

/* Tokens over 48 symbols that need context: mostly t[i] = t[i-2],
 * sometimes random. A model predicts it only by attending to the token
 * before the current one, so pruning the blocks hurts and retraining or
 * reconstruction has something to recover. */
static inline void tu_markov(int32_t *t, int64_t n, uint64_t seed) {
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = tu_rng(&s) % 100;
        t[i] = (i < 2 || r >= 85) ? (int32_t)(tu_rng(&s) % 48) : t[i - 2];
    }
}

/* A small llama over tu_markov's 48 symbols with n_layer blocks, trained
 * for `steps` AdamW steps on random windows of t[0..n), so that it has
 * something pruning destroys. 0, or -1 when the model cannot be made. */
static inline int tu_trained_llama(fl_model *m, int n_layer, int steps, const int32_t *t, int64_t n) {
    fl_config c = { 0 };
    fl_config_family_defaults(&c, FL_LLAMA);
    c.vocab = 48; c.d = 32; c.n_layer = n_layer; c.n_head = 4; c.n_kv_head = 2; c.head_dim = 8; c.d_ff = 64; c.max_pos = 32;
    if (fl_model_create(m, &c) != 0) return -1;
    fl_model_init_random(m, 3);
    fl_model_set_all_trainable(m, 1);
    fl_adamw_cfg oc = fl_adamw_defaults();
    oc.lr = 1e-2f; oc.total_steps = steps; oc.warmup_steps = 10; oc.sched = FL_SCHED_LINEAR;
    fl_adamw o;
    fl_adamw_init(&o, m, &oc);
    fl_acts *acts = fl_acts_new();
    int32_t in[8 * 32], tg[8 * 32];
    uint64_t s = 9;
    for (int step = 0; step < steps; step++) {
        for (int b = 0; b < 8; b++) {
            int64_t off = (int64_t)(tu_rng(&s) % (uint64_t)(n - 40));
            for (int i = 0; i < 32; i++) { in[b * 32 + i] = t[off + i]; tg[b * 32 + i] = t[off + i + 1]; }
        }
        fl_fwd a = { .B = 8, .T = 32, .tokens = in, .targets = tg };
        fl_forward(m, fl_range_whole(m), &a, acts);
        fl_backward(m, fl_range_whole(m), acts, NULL, NULL);
        fl_adamw_step(&o);
    }
    fl_acts_free(acts);
    fl_adamw_free(&o);
    fl_model_set_all_trainable(m, 0);
    return 0;
}

/* max |a-b| / max(max|b|, floor): a relative error on the tensor's scale. */
static inline double tu_relerr(const float *a, const float *b, size_t n, double floor_) {
    double md = 0, mb = floor_;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > md || d != d) md = d != d ? INFINITY : d;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return md / mb;
}

#endif
