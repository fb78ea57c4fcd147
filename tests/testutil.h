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
