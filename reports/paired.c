/* Student-t intervals on paired differences; see paired.h. */
#include "paired.h"
#include <math.h>

/* The continued fraction of the incomplete beta function I_x(a, b),
 * evaluated by the modified Lentz method (converges fast for x < (a+1)/(a+b+2)). */
static double beta_cf(double a, double b, double x) {
    const double tiny = 1e-300, eps = 1e-16;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    if (fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 1000; m++) {
        double m2 = 2.0 * m, num = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
        d = 1 + num * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + num / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        h *= d * c;
        num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
        d = 1 + num * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + num / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < eps) break;
    }
    return h;
}

/* The regularized incomplete beta function I_x(a, b), 0 <= x <= 1. */
static double inc_beta(double a, double b, double x) {
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1) / (a + b + 2)) return exp(lbt) * beta_cf(a, b, x) / a;
    return 1 - exp(lbt) * beta_cf(b, a, 1 - x) / b;
}

double fl_t_cdf(double t, int df) {
    double x = df / (df + t * t), tail = 0.5 * inc_beta(0.5 * df, 0.5, x);
    return t >= 0 ? 1 - tail : tail;
}

double fl_t_quantile(double p, int df) {
    if (!(p > 0 && p < 1) || df < 1) return NAN;
    if (p < 0.5) return -fl_t_quantile(1 - p, df);
    if (p == 0.5) return 0;
    double lo = 0, hi = 1;
    while (fl_t_cdf(hi, df) < p && hi < 1e300) { lo = hi; hi *= 2; }
    for (int i = 0; i < 200 && hi - lo > 1e-15 * hi; i++) {
        double mid = 0.5 * (lo + hi);
        if (fl_t_cdf(mid, df) < p) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

fl_paired fl_paired_of(const double *d, int n) {
    fl_paired r = { n, NAN, NAN, n ? FL_PAIR_ONE : FL_PAIR_EMPTY };
    if (n < 1) return r;
    double s = 0;
    for (int i = 0; i < n; i++) s += d[i];
    r.mean = s / n;
    if (n < 2) return r;
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (d[i] - r.mean) * (d[i] - r.mean);
    r.half = fl_t_quantile(0.975, n - 1) * sqrt(ss / (n - 1)) / sqrt((double)n);
    r.v = r.mean + r.half < 0 ? FL_PAIR_A : r.mean - r.half > 0 ? FL_PAIR_B : FL_PAIR_SAME;
    return r;
}
