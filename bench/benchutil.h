/* What the benchmarks share: medians of timings, BENCH_* settings from the
 * environment and a small deterministic generator for their inputs (the
 * inputs need only be fixed, not good). Timing is fl_wall_s (model/clock.h).
 * Header-only: each benchmark is one file linked against libfreelunch. */
#ifndef FL_BENCHUTIL_H
#define FL_BENCHUTIL_H
#include <stdint.h>
#include <stdlib.h>

static inline int bench_cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts t[0..n) ascending (t[0] is then the best) and returns its median. */
static inline double bench_median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, bench_cmpd);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

/* Environment variable k as a number, dflt when unset or empty. */
static inline int bench_env_int(const char *k, int dflt) {
    const char *e = getenv(k);
    return e && *e ? atoi(e) : dflt;
}
static inline double bench_env_double(const char *k, double dflt) {
    const char *e = getenv(k);
    return e && *e ? atof(e) : dflt;
}

/* xorshift64: advances *s and returns it. */
static inline uint64_t bench_xorshift(uint64_t *s) {
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return *s;
}
/* The top 53 bits of x as a double in [0, 1). */
static inline double bench_unit(uint64_t x) { return (x >> 11) * (1.0 / 9007199254740992.0); }
/* Uniform in [-1, 1), as a float. */
static inline float bench_frand(uint64_t *s) { return (float)bench_unit(bench_xorshift(s)) * 2.0f - 1.0f; }

#endif
