/* The report's paired statistics (reports/paired.h): the Student-t quantile
 * against values computed independently, and the verdict of a paired
 * comparison on differences made by hand so that each outcome occurs. */
#include "tests/testutil.h"
#include "reports/paired.h"

/* qt(0.975, df) as printed by R 4 (print(qt(0.975, df), digits = 15)); the
 * same to 10 digits came out of a composite-Simpson integration of the t
 * density with bisection (Python's math.lgamma only), an independent method
 * from the incomplete beta function the code uses. */
static const struct { int df; double q; } QT975[] = {
    { 1, 12.7062047361747 }, { 2, 4.30265272974946 }, { 3, 3.18244630528371 }, { 4, 2.77644510519779 },
    { 5, 2.57058183563631 }, { 9, 2.26215716279820 }, { 10, 2.22813885198627 }, { 29, 2.04522964213270 },
    { 30, 2.04227245630124 }, { 100, 1.98397151852355 },
};

static void test_t_quantile(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof QT975 / sizeof *QT975; i++) {
        double q = fl_t_quantile(0.975, QT975[i].df);
        if (fabs(q - QT975[i].q) > 1e-10 * QT975[i].q) fail_msg("df %d: %.15g, R says %.15g", QT975[i].df, q, QT975[i].q);
        assert_true(fabs(fl_t_quantile(0.025, QT975[i].df) + q) < 1e-12 * q);   /* symmetric */
    }
    /* closed forms: df 1 is Cauchy, tan(pi (p - 1/2)); df 2, (2p - 1) / sqrt(2 p (1 - p));
     * df 4, 2 sqrt(cos(acos(sqrt(a)) / 3) / sqrt(a) - 1) · sign with a = 4 p (1 - p) */
    static const double P[] = { 0.6, 0.9, 0.95, 0.975, 0.995, 0.9995 };
    for (size_t i = 0; i < sizeof P / sizeof *P; i++) {
        double p = P[i], a = 4 * p * (1 - p);
        double c1 = tan(M_PI * (p - 0.5)), c2 = (2 * p - 1) / sqrt(2 * p * (1 - p));
        double c4 = 2 * sqrt(cos(acos(sqrt(a)) / 3) / sqrt(a) - 1);
        double q1 = fl_t_quantile(p, 1), q2 = fl_t_quantile(p, 2), q4 = fl_t_quantile(p, 4);
        if (fabs(q1 - c1) > 1e-10 * c1 || fabs(q2 - c2) > 1e-10 * c2 || fabs(q4 - c4) > 1e-10 * c4)
            fail_msg("p %g: %.15g %.15g %.15g vs %.15g %.15g %.15g", p, q1, q2, q4, c1, c2, c4);
        assert_true(fabs(fl_t_cdf(q4, 4) - p) < 1e-13);
    }
    /* large df tends to the normal's 1.959963984540054 */
    assert_true(fabs(fl_t_quantile(0.975, 100000) - 1.959963984540054) < 1e-4);
    assert_true(isnan(fl_t_quantile(0, 3)) && isnan(fl_t_quantile(0.5, 0)));
}

/* Differences with mean m and sd s: the half-width is qt(0.975, n-1) s / sqrt(n). */
static void test_paired_verdicts(void **state) {
    (void)state;
    const double below[3] = { -1.0, -1.2, -0.8 };   /* mean -1, sd 0.2, half 4.30265 * 0.2 / sqrt 3 = 0.4968 */
    fl_paired r = fl_paired_of(below, 3);
    assert_int_equal(r.n, 3);
    assert_true(fabs(r.mean + 1) < 1e-12);
    assert_true(fabs(r.half - 4.30265272974946 * 0.2 / sqrt(3.0)) < 1e-9);
    assert_int_equal(r.v, FL_PAIR_A);
    const double above[3] = { 1.0, 1.2, 0.8 };
    assert_int_equal(fl_paired_of(above, 3).v, FL_PAIR_B);
    const double straddles[3] = { 0.1, 0.5, -0.2 };   /* mean 0.13, half 0.87: holds 0 */
    assert_int_equal(fl_paired_of(straddles, 3).v, FL_PAIR_SAME);
    /* the same mean as `below` with a wider spread: no longer detected */
    const double wide[3] = { -1.0, -2.5, 0.5 };
    assert_int_equal(fl_paired_of(wide, 3).v, FL_PAIR_SAME);
    /* two pairs use t(0.975, 1) = 12.71: mean -1, sd 0.1414, half 1.27 */
    const double two[2] = { -0.9, -1.1 };
    r = fl_paired_of(two, 2);
    assert_true(fabs(r.half - 12.7062047361747 * sqrt(0.02) / sqrt(2.0)) < 1e-9);
    assert_int_equal(r.v, FL_PAIR_SAME);
    const double one[1] = { -5 };
    r = fl_paired_of(one, 1);
    assert_int_equal(r.v, FL_PAIR_ONE);
    assert_true(r.mean == -5 && isnan(r.half));
    assert_int_equal(fl_paired_of(NULL, 0).v, FL_PAIR_EMPTY);
    /* identical differences: a zero-width interval, decided by its sign */
    const double same[3] = { 0.3, 0.3, 0.3 };
    assert_int_equal(fl_paired_of(same, 3).v, FL_PAIR_B);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_t_quantile),
        cmocka_unit_test(test_paired_verdicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
