/* Paired statistics for the report's comparisons (README "The report"):
 * two configurations A and B run with the same seeds (a seed fixes the
 * calibration windows, so seed s of A and seed s of B saw the same data)
 * are compared on their differences d_s = ppl_A(s) - ppl_B(s). The mean of
 * the n differences gets a 95% Student-t interval, mean ± t(0.975, n-1) ·
 * sd / sqrt(n) (sd the sample standard deviation, n - 1); A is better only
 * when the whole interval lies below 0, B better only above 0, otherwise no
 * difference is detected. One pair has no interval and is said to have
 * none. */
#ifndef FL_PAIRED_H
#define FL_PAIRED_H

/* The Student-t distribution with DF >= 1 degrees of freedom: its CDF at T,
 * and its P-quantile for 0 < P < 1 (the CDF inverted by bisection to double
 * precision). The CDF is 1 - I_x(df/2, 1/2) / 2 for t >= 0, x = df/(df+t²),
 * with I the regularized incomplete beta function (continued fraction,
 * modified Lentz). tests/test_paired.c checks both against R's qt() and the
 * closed forms for 1, 2 and 4 degrees of freedom. */
double fl_t_cdf(double t, int df);
double fl_t_quantile(double p, int df);

typedef enum {
    FL_PAIR_EMPTY,   /* no seed common to A and B */
    FL_PAIR_ONE,     /* one seed: no interval */
    FL_PAIR_A,       /* the interval lies below 0: A better (lower) */
    FL_PAIR_B,       /* above 0: B better */
    FL_PAIR_SAME,    /* the interval holds 0: no difference detected */
} fl_pair_verdict;

typedef struct {
    int n;                   /* pairs */
    double mean, half;       /* mean difference, 95% half-width (NAN for n < 2) */
    fl_pair_verdict v;
} fl_paired;

/* The verdict on n paired differences D. */
fl_paired fl_paired_of(const double *d, int n);

#endif
