/* The plug-in option parser (model/opts.c) on a table with one option of
 * every type.
 *
 *   defaults      NULL and "" give every default, whatever priv held before.
 *   named         key=value items in any order, with an alias.
 *   positional    items without "key=" fill the next option not yet set.
 *   legacy        no '=' outside parentheses: pieces split on ':' and ','
 *                 fill the options in order, empty pieces keep defaults.
 *   nesting       parenthesized values keep their own commas and '='; the
 *                 outer parentheses are removed, inner ones kept verbatim.
 *   ranges        inclusive limits, just inside and just outside.
 *   choices, int_all   strings among their choices; "all" stored as 0.
 *   errors        every malformed input is -1 with one line naming the
 *                 plug-in and listing the valid options: unknown and
 *                 repeated keys, too many values, empty items and values,
 *                 bad numbers (junk, inf, nan, hex, overflow), too-long
 *                 strings and text, unbalanced parentheses.
 *   describe      the one-line listing, and cut safely in small buffers. */
#include "tests/testutil.h"
#include "model/opts.h"
#include "model/err.h"
#include <stddef.h>

typedef struct {
    char warm[FL_OPT_STRLEN];
    double alpha;
    int iters;
    char mode[FL_OPT_STRLEN];
    int blocks;
    unsigned canary;   /* must survive every parse */
} tp;

static const fl_option TAB[] = {
    { .name = "warm", .help = "warm start", .type = FL_OPT_SPEC, .offset = offsetof(tp, warm), .def_str = "wanda" },
    { .name = "alpha", .alias = "a", .help = "exponent", .type = FL_OPT_FLOAT, .offset = offsetof(tp, alpha),
      .def = 0.5, .min = 0, .max = 2 },
    { .name = "iters", .help = "iterations", .type = FL_OPT_INT, .offset = offsetof(tp, iters), .def = 100, .min = 0,
      .max = 1000000 },
    { .name = "mode", .help = "search", .type = FL_OPT_STRING, .offset = offsetof(tp, mode), .def_str = "fast",
      .choices = "fast|exact" },
    { .name = "blocks", .help = "blocks per unit", .type = FL_OPT_INT_ALL, .offset = offsetof(tp, blocks), .def = 0,
      .min = 1, .max = 64 },
    { .name = NULL },
};
#define WHAT "criterion testplug"

static tp parse_ok(const char *text) {
    tp p;
    memset(&p, 0x5a, sizeof p);
    p.canary = 0xdeadbeef;
    if (fl_opts_parse(TAB, WHAT, text, &p) != 0) fail_msg("'%s': %s", text ? text : "(null)", fl_errmsg());
    assert_int_equal(p.canary, 0xdeadbeef);
    return p;
}

static void expect_defaults_except(const tp *p, const char *warm, double alpha, int iters, const char *mode, int blocks) {
    assert_string_equal(p->warm, warm);
    assert_true(p->alpha == alpha);
    assert_int_equal(p->iters, iters);
    assert_string_equal(p->mode, mode);
    assert_int_equal(p->blocks, blocks);
}

/* -1, and one line that names the plug-in, lists the options and mentions needle */
static void expect_err(const char *text, const char *needle) {
    tp p;
    memset(&p, 0, sizeof p);
    p.canary = 0xdeadbeef;
    fl_err_clear();
    int rc = fl_opts_parse(TAB, WHAT, text, &p);
    const char *m = fl_errmsg();
    if (rc != -1) fail_msg("'%.80s': expected an error, got %d", text, rc);
    assert_int_equal(p.canary, 0xdeadbeef);
    if (!strstr(m, WHAT ": ") || !strstr(m, "options: warm=wanda") || !strstr(m, "alpha=0.5") ||
        !strstr(m, "iters=100") || !strstr(m, "mode=fast") || !strstr(m, "blocks=all") || !strstr(m, needle))
        fail_msg("'%.80s': message '%s' should name " WHAT ", list the options and mention '%s'", text, m, needle);
    assert_null(strchr(m, '\n'));
    printf("  %-28.28s -> %s\n", text, m);
}

static void test_defaults(void **state) {
    (void)state;
    tp p = parse_ok(NULL);
    expect_defaults_except(&p, "wanda", 0.5, 100, "fast", 0);
    p = parse_ok("");
    expect_defaults_except(&p, "wanda", 0.5, 100, "fast", 0);
    /* a table-less plug-in: no text is fine, any text is an error */
    int x = 7;
    assert_int_equal(fl_opts_parse(NULL, "criterion wanda", NULL, &x), 0);
    assert_int_equal(fl_opts_parse(NULL, "criterion wanda", "", &x), 0);
    assert_int_equal(fl_opts_parse(NULL, "criterion wanda", "2", &x), -1);
    assert_non_null(strstr(fl_errmsg(), "criterion wanda: takes no options"));
    assert_non_null(strstr(fl_errmsg(), "options: none"));
    assert_int_equal(x, 7);
}

static void test_named(void **state) {
    (void)state;
    tp p = parse_ok("alpha=1.5,iters=20,mode=exact,blocks=4,warm=ria");
    expect_defaults_except(&p, "ria", 1.5, 20, "exact", 4);
    p = parse_ok("iters=3");
    expect_defaults_except(&p, "wanda", 0.5, 3, "fast", 0);
    p = parse_ok("a=1.25");   /* alias */
    expect_defaults_except(&p, "wanda", 1.25, 100, "fast", 0);
    p = parse_ok("warm=ria:alpha=1");   /* a spec value keeps its ':' and '=' */
    expect_defaults_except(&p, "ria:alpha=1", 0.5, 100, "fast", 0);
    p = parse_ok("iters=+7,alpha=.15e1");
    expect_defaults_except(&p, "wanda", 1.5, 7, "fast", 0);
}

static void test_positional(void **state) {
    (void)state;
    tp p = parse_ok("ria,iters=3");
    expect_defaults_except(&p, "ria", 0.5, 3, "fast", 0);
    p = parse_ok("iters=3,ria,1.0");   /* fills warm, then alpha: the first ones not set */
    expect_defaults_except(&p, "ria", 1.0, 3, "fast", 0);
    p = parse_ok("warm=ria,2,5,exact");   /* alpha, iters, mode: in table order */
    expect_defaults_except(&p, "ria", 2.0, 5, "exact", 0);
    p = parse_ok("iters=5,ria,2,exact");  /* iters is skipped: set by name */
    expect_defaults_except(&p, "ria", 2.0, 5, "exact", 0);
    expect_err("warm=ria,2,exact", "iters: 'exact' is not a whole number");
    p = parse_ok("ria:alpha=1,iters=3");   /* "ria:alpha" is no key: a positional spec */
    expect_defaults_except(&p, "ria:alpha=1", 0.5, 3, "fast", 0);
}

static void test_legacy(void **state) {
    (void)state;
    tp p = parse_ok("ria");
    expect_defaults_except(&p, "ria", 0.5, 100, "fast", 0);
    p = parse_ok("ria:1.5:20");
    expect_defaults_except(&p, "ria", 1.5, 20, "fast", 0);
    p = parse_ok("ria,1.5,20,exact,all");
    expect_defaults_except(&p, "ria", 1.5, 20, "exact", 0);
    p = parse_ok("::7");   /* empty pieces keep their defaults */
    expect_defaults_except(&p, "wanda", 0.5, 7, "fast", 0);
    p = parse_ok("ria::5");
    expect_defaults_except(&p, "ria", 0.5, 5, "fast", 0);
    p = parse_ok("ria:");
    expect_defaults_except(&p, "ria", 0.5, 100, "fast", 0);
    p = parse_ok("(ria:alpha=1):0.25");   /* '=' only inside parentheses: still legacy */
    expect_defaults_except(&p, "ria:alpha=1", 0.25, 100, "fast", 0);
    p = parse_ok("(sparsefw:wanda:0.5:20):1:2:exact:3");
    expect_defaults_except(&p, "sparsefw:wanda:0.5:20", 1.0, 2, "exact", 3);
}

static void test_nesting(void **state) {
    (void)state;
    tp p = parse_ok("warm=(sparsefw:warm=(ria:alpha=1),iters=5),iters=2");
    expect_defaults_except(&p, "sparsefw:warm=(ria:alpha=1),iters=5", 0.5, 2, "fast", 0);
    p = parse_ok("warm=((ria)),alpha=(1)");
    expect_defaults_except(&p, "ria", 1.0, 100, "fast", 0);
    p = parse_ok("warm=sparsefw:warm=(ria:alpha=1)");   /* only outer parentheses are removed */
    expect_defaults_except(&p, "sparsefw:warm=(ria:alpha=1)", 0.5, 100, "fast", 0);
    p = parse_ok("(sparseswaps:warm=(ria,1),budget=3),iters=9");
    expect_defaults_except(&p, "sparseswaps:warm=(ria,1),budget=3", 0.5, 9, "fast", 0);
    /* deep but balanced */
    for (int depth = 64; depth <= 65; depth++) {
        char deep[200];
        size_t n = (size_t)snprintf(deep, sizeof deep, "warm=");
        for (int i = 0; i < depth; i++) deep[n++] = '(';
        deep[n++] = 'r';
        for (int i = 0; i < depth; i++) deep[n++] = ')';
        deep[n] = 0;
        if (depth == 65) { expect_err(deep, "nested more than 64 deep"); break; }
        p = parse_ok(deep);
        expect_defaults_except(&p, "r", 0.5, 100, "fast", 0);
    }
}

static void test_ranges(void **state) {
    (void)state;
    tp p = parse_ok("alpha=0");
    assert_true(p.alpha == 0.0);
    p = parse_ok("alpha=2");
    assert_true(p.alpha == 2.0);
    p = parse_ok("iters=0");
    assert_int_equal(p.iters, 0);
    p = parse_ok("iters=1000000");
    assert_int_equal(p.iters, 1000000);
    p = parse_ok("blocks=1");
    assert_int_equal(p.blocks, 1);
    p = parse_ok("blocks=64");
    assert_int_equal(p.blocks, 64);
    expect_err("alpha=2.0000001", "out of range [0, 2]");
    expect_err("alpha=-0.0001", "out of range [0, 2]");
    expect_err("iters=1000001", "out of range [0, 1000000]");
    expect_err("iters=-1", "out of range [0, 1000000]");
    expect_err("blocks=0", "out of range [1, 64]");
    expect_err("blocks=65", "out of range [1, 64]");
    expect_err("ria:3", "alpha: 3 is out of range");
}

static void test_choices(void **state) {
    (void)state;
    tp p = parse_ok("mode=exact");
    assert_string_equal(p.mode, "exact");
    p = parse_ok("mode=fast");
    assert_string_equal(p.mode, "fast");
    expect_err("mode=slow", "'slow' is not one of fast|exact");
    expect_err("mode=fas", "not one of fast|exact");
    expect_err("mode=fastexact", "not one of fast|exact");
    expect_err("mode=fast|exact", "not one of fast|exact");
}

static void test_int_all(void **state) {
    (void)state;
    tp p = parse_ok("blocks=all");
    assert_int_equal(p.blocks, 0);
    p = parse_ok("blocks=8");
    assert_int_equal(p.blocks, 8);
    p = parse_ok("::::all");
    assert_int_equal(p.blocks, 0);
    expect_err("blocks=alll", "not a whole number or all");
    expect_err("blocks=ALL", "not a whole number or all");
    expect_err("iters=all", "'all' is not a whole number");
}

static void test_errors(void **state) {
    (void)state;
    expect_err("alpah=1", "unknown option 'alpah'");
    expect_err("warm=ria,Alpha=1", "unknown option 'Alpha'");
    expect_err("alpha=1,alpha=2", "option 'alpha' given twice");
    expect_err("alpha=1,a=2", "option 'alpha' given twice");
    expect_err("ria,1,2,fast,3,extra", "too many values");
    expect_err("ria:1:2:fast:3:x", "too many values");
    expect_err("ria:1:2:fast:3:", "too many values");
    expect_err("alpha=1,,iters=2", "empty item");
    expect_err("alpha=1,", "empty item");
    expect_err(",alpha=1", "empty item");
    expect_err("alpha=", "alpha: no value given");
    expect_err("warm=()", "warm: no value given");
    expect_err("alpha=abc", "alpha: 'abc' is not a number");
    expect_err("alpha=1x", "'1x' is not a number");
    expect_err("alpha=inf", "'inf' is not a number");
    expect_err("alpha=nan", "'nan' is not a number");
    expect_err("alpha=NAN(1)", "is not a number");
    expect_err("alpha=0x1", "'0x1' is not a number");
    expect_err("alpha= 1", "is not a number");
    expect_err("alpha=1e999", "out of range");
    expect_err("alpha=-1e999", "out of range");
    expect_err("alpha=1e", "not a number");
    expect_err("alpha=.", "not a number");
    expect_err("alpha=1.0.0", "not a number");
    expect_err("iters=1.5", "'1.5' is not a whole number");
    expect_err("iters=1e3", "not a whole number");
    expect_err("iters=0x10", "not a whole number");
    expect_err("iters=+", "not a whole number");
    expect_err("iters=-", "not a whole number");
    expect_err("iters= 5", "not a whole number");
    expect_err("iters=99999999999999999999999", "out of range");
    expect_err("iters=999999999999999999999999999999999", "not a whole number");   /* too long to be one */
    expect_err("iters=9999999999", "out of range");
    expect_err("iters=-9223372036854775809", "out of range");
    expect_err("warm=(ria", "'(' without ')'");
    expect_err("warm=ria)", "')' without '('");
    expect_err(")(", "')' without '('");
    expect_err("warm=(ria)x", "text after ')'");
    expect_err("warm=(a)(b)", "text after ')'");
    /* lengths: a spec value of FL_OPT_STRLEN characters, a huge number, a huge text */
    char big[FL_OPT_STRLEN + 16];
    memset(big, 0, sizeof big);
    memcpy(big, "warm=", 5);
    memset(big + 5, 'w', FL_OPT_STRLEN);
    expect_err(big, "is too long (at most 127 characters)");
    big[5 + FL_OPT_STRLEN - 1] = 0;   /* 127: just fits */
    tp p = parse_ok(big);
    assert_int_equal(strlen(p.warm), FL_OPT_STRLEN - 1);
    char *huge = malloc(100001);
    memcpy(huge, "alpha=", 6);
    memset(huge + 6, '1', 100000 - 6);
    huge[100000] = 0;
    expect_err(huge, "is not a number");
    memset(huge, ',', 100000);   /* no '=': the legacy form, 100001 empty pieces */
    expect_err(huge, "too many values");
    memcpy(huge, "iters=1", 7);
    expect_err(huge, "empty item");
    memset(huge, ':', 100000);
    expect_err(huge, "too many values");
    memset(huge, '(', 100000);
    expect_err(huge, "nested more than 64 deep");
    for (int i = 0; i < 100000; i += 2) { huge[i] = '('; huge[i + 1] = ')'; }   /* balanced, shallow */
    expect_err(huge, "text after ')'");
    free(huge);
    /* the message quotes at most a few dozen characters of the text */
    assert_true(strlen(fl_errmsg()) < 1000);
}

static void test_describe(void **state) {
    (void)state;
    char buf[512];
    fl_opts_describe(TAB, buf, sizeof buf);
    printf("  %s\n", buf);
    assert_string_equal(buf, "warm=wanda (a spec name[:options]), alpha=0.5 (in [0, 2]; alias a), "
                             "iters=100 (whole number in [0, 1000000]), mode=fast (one of fast|exact), "
                             "blocks=all (whole number in [1, 64] or all)");
    assert_string_equal(fl_opts_describe(NULL, buf, sizeof buf), "none");
    for (size_t n = 1; n < 40; n++) {
        memset(buf, 'X', sizeof buf);
        fl_opts_describe(TAB, buf, n);
        assert_true(strlen(buf) < n);
        assert_int_equal(buf[n], 'X');   /* nothing written past n */
        if (n >= 4) assert_non_null(strstr(buf, "..."));
    }
    assert_ptr_equal(fl_opts_describe(TAB, buf, 0), buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults), cmocka_unit_test(test_named), cmocka_unit_test(test_positional),
        cmocka_unit_test(test_legacy), cmocka_unit_test(test_nesting), cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_choices), cmocka_unit_test(test_int_all), cmocka_unit_test(test_errors),
        cmocka_unit_test(test_describe),
    };
    return cmocka_run_group_tests_name("opts", tests, NULL, NULL);
}
