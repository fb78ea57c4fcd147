/* Byte-level BPE (datasets/bpe.h):
 *   - GPT-2's encoding is identical, id for id, to js-tiktoken's gpt2 encoding
 *     (tests/oracle/tiktoken_ref.mjs) over all of Moby-Dick (every chapter,
 *     and the joined split), the first address of every SOTU decade, and
 *     generated Unicode stress texts (JavaScript's whitespace set, U+0085,
 *     U+180E, contractions, CJK, emoji, pieces longer than 128 bytes);
 *   - decode(encode(x)) == x on every document of every corpus split and on
 *     arbitrary bytes (invalid UTF-8 of every kind), with GPT-2's vocabulary
 *     and with a trained one;
 *   - training: the merges equal a naive recount-everything reference
 *     (tests/oracle/bpe_train_ref.py) on ASCII text; deterministic (trained
 *     twice: byte-identical files); the exact vocabulary size with
 *     <|endoftext|> last; save + load round trip;
 *   - bad input: a tokenizer directory missing merges.txt or vocab.bpe, bad
 *     merges and vocabularies, ids outside the vocabulary; the CLI's one line.
 * Needs the corpus cache (fetched here through fl_data_fetch if missing),
 * Node.js and js-tiktoken@1.0.21 (npm-installed once into <cache>/node). */
#include "tests/testutil.h"
#include "datasets/bpe.h"
#include "datasets/corpus.h"
#include "model/clock.h"
#include "model/err.h"
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define TIKTOKEN_VERSION "1.0.21"

static char g_tmp[PATH_MAX];
static char g_cache[PATH_MAX];
static fl_bpe *g_gpt2;
static fl_bpe *g_trained; /* trained on sotu-train, vocabulary 4096 */
static fl_split g_splits[8];
static int g_nsplits;

static void __attribute__((format(printf, 3, 4))) pf(char *out, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= n) { fprintf(stderr, "path too long\n"); abort(); }
}

static int __attribute__((format(printf, 1, 2))) sh(const char *fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    rewind(f);
    char *b = malloc((size_t)sz + 1);
    *n = fread(b, 1, (size_t)sz, f);
    b[*n] = 0;
    fclose(f);
    return b;
}

static const fl_split *split(const char *name) {
    for (int i = 0; i < g_nsplits; i++)
        if (!strcmp(g_splits[i].name, name)) return &g_splits[i];
    return NULL;
}

static int setup(void **st) {
    (void)st;
    tu_tmpdir(g_tmp, sizeof g_tmp);
    fl_cache_dir(g_cache, sizeof g_cache, NULL);
    if (fl_data_fetch(g_cache, 0) != 0) {
        fprintf(stderr, "test_bpe: the corpus cache %s: %s\n", g_cache, fl_errmsg());
        return -1;
    }
    for (int i = 0; FL_SPLITS[i]; i++) {
        if (fl_split_load(g_cache, FL_SPLITS[i], &g_splits[g_nsplits]) != 0) {
            fprintf(stderr, "test_bpe: %s\n", fl_errmsg());
            return -1;
        }
        g_nsplits++;
    }
    char dir[PATH_MAX];
    pf(dir, sizeof dir, "%s/gpt2", g_cache);
    if (fl_bpe_load(&g_gpt2, dir) != 0) {
        fprintf(stderr, "test_bpe: %s\n", fl_errmsg());
        return -1;
    }
    const fl_split *tr = split("sotu-train");
    const char **tv = malloc(sizeof *tv * (size_t)tr->n);
    size_t *lv = malloc(sizeof *lv * (size_t)tr->n);
    for (int i = 0; i < tr->n; i++) tv[i] = tr->docs[i].text, lv[i] = tr->docs[i].len;
    double t0 = fl_wall_s();
    int rc = fl_bpe_train(&g_trained, tv, lv, tr->n, 4096, 0);
    printf("trained 4096 tokens on sotu-train (%zu bytes) in %.2f s\n", tr->bytes, fl_wall_s() - t0);
    free(tv);
    free(lv);
    if (rc != 0) {
        fprintf(stderr, "test_bpe: %s\n", fl_errmsg());
        return -1;
    }
    return 0;
}

static int teardown(void **st) {
    (void)st;
    fl_bpe_free(g_gpt2);
    fl_bpe_free(g_trained);
    for (int i = 0; i < g_nsplits; i++) fl_split_free(&g_splits[i]);
    tu_rmrf(g_tmp);
    return 0;
}

static void roundtrip(const fl_bpe *t, const char *what, const char *s, size_t n) {
    int32_t *ids;
    int64_t m;
    if (fl_bpe_encode(t, s, n, &ids, &m) != 0) fail_msg("%s: encode: %s", what, fl_errmsg());
    for (int64_t i = 0; i < m; i++)
        if (ids[i] < 0 || ids[i] >= fl_bpe_vocab_size(t)) fail_msg("%s: id %d out of range", what, ids[i]);
    char *d;
    size_t dl;
    if (fl_bpe_decode(t, ids, m, &d, &dl) != 0) fail_msg("%s: decode: %s", what, fl_errmsg());
    if (dl != n || memcmp(d, s, n) != 0) {
        size_t k = 0;
        while (k < n && k < dl && d[k] == s[k]) k++;
        fail_msg("%s: decode(encode(x)) != x: %zu bytes in, %zu out, first difference at byte %zu", what, n, dl, k);
    }
    free(d);
    free(ids);
}

/* ---- GPT-2 against js-tiktoken --------------------------------------------- */

/* js-tiktoken, npm-installed once into <cache>/node (staged, then renamed). */
static int ensure_tiktoken(char *prefix, size_t n) {
    pf(prefix, n, "%s/node", g_cache);
    char probe[PATH_MAX];
    pf(probe, sizeof probe, "%s/node_modules/js-tiktoken/package.json", prefix);
    if (access(probe, R_OK) == 0) return 0;
    if (sh("command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1") != 0) {
        fprintf(stderr, "test_bpe: node and npm are needed for the js-tiktoken reference (apt-get install nodejs npm)\n");
        return -1;
    }
    int rc = sh("S='%s.stage.%d'; rm -rf \"$S\" && mkdir -p \"$S\" && "
                "npm install --prefix \"$S\" --no-audit --no-fund --silent js-tiktoken@" TIKTOKEN_VERSION
                " >'%s/npm.log' 2>&1 && rm -rf '%s' && mv \"$S\" '%s'",
                prefix, (int)getpid(), g_tmp, prefix, prefix);
    if (rc != 0) {
        sh("cat '%s/npm.log' >&2", g_tmp);
        fprintf(stderr, "test_bpe: npm install js-tiktoken@" TIKTOKEN_VERSION " into %s failed\n", prefix);
    }
    return rc;
}

typedef struct { char name[96]; const char *text; size_t len; } ref_case;

/* Unicode stress text: snippets drawn at random, all valid UTF-8. */
static char *stress_text(uint64_t seed, size_t picks, size_t *len) {
    static const char *pool[] = {
        "a", "b", "Z", "0", "7", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", "\v", "\f", ".", ",", "!", "?", "-", "(",
        "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'", " the", " of", "ing", "123", " 4567",
        "\xc2\x85",         /* U+0085 NEL: \s for PCRE2, not for JavaScript */
        "\xc2\xa0",         /* U+00A0 */
        "\xe1\xa0\x8e",     /* U+180E */
        "\xef\xbb\xbf",     /* U+FEFF: \s for JavaScript only */
        "\xe2\x80\xa8", "\xe2\x80\xa9", "\xe3\x80\x80", "\xe2\x80\x80", "\xe2\x80\x8a", "\xe2\x80\xaf",
        "\xe2\x81\x9f", "\xe1\x9a\x80", "\xe2\x80\x8b", /* U+200B: not a space */
        "\x1c", "\x1d", "\x1e", "\x1f", "\x01", "\x7f",
        "\xc3\xa9", "e\xcc\x81", "\xc2\xbd", "\xc2\xb2", "\xe2\x85\xa3", "\xd9\xa0", "\xef\xbc\x90",
        "\xe4\xb8\xad\xe6\x96\x87", "\xd0\x9f\xd1\x80\xd0\xb8", "\xce\xb1\xce\xb2", "\xd7\xa9\xd7\x9c",
        "\xf0\x9f\x98\x80", "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", "\xf0\x90\x90\x80", "\xf0\x9d\x9f\x8e",
        "<|endoftext|>", "<|", "|>",
    };
    size_t np = sizeof pool / sizeof *pool, cap = picks * 8 + 4096, n = 0;
    char *s = malloc(cap);
    uint64_t r = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < picks; i++) {
        const char *p = pool[tu_rng(&r) % np];
        size_t k = strlen(p);
        memcpy(s + n, p, k);
        n += k;
        if (tu_rng(&r) % 2000 == 0) { /* a long piece: more than 128 bytes */
            const char *run = pool[tu_rng(&r) % 12];
            for (int j = 0; j < 300; j++) memcpy(s + n, run, strlen(run)), n += strlen(run);
        }
    }
    *len = n;
    return s;
}

static void test_gpt2_vocabulary(void **st) {
    (void)st;
    assert_int_equal(fl_bpe_vocab_size(g_gpt2), 50257);
    assert_int_equal(fl_bpe_eot(g_gpt2), 50256);
    /* known ids */
    int32_t *ids;
    int64_t n;
    assert_int_equal(fl_bpe_encode(g_gpt2, "Hello world", 11, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 15496);
    assert_int_equal(ids[1], 995);
    free(ids);
    assert_int_equal(fl_bpe_encode(g_gpt2, "", 0, &ids, &n), 0);
    assert_int_equal(n, 0);
    free(ids);
    /* special tokens are text */
    assert_int_equal(fl_bpe_encode(g_gpt2, "<|endoftext|>", 13, &ids, &n), 0);
    assert_true(n > 1);
    for (int64_t i = 0; i < n; i++) assert_int_not_equal(ids[i], 50256);
    free(ids);
    /* decoding the special token gives its text */
    int32_t eot = 50256;
    char *d;
    size_t dl;
    assert_int_equal(fl_bpe_decode(g_gpt2, &eot, 1, &d, &dl), 0);
    assert_int_equal(dl, 13);
    assert_memory_equal(d, "<|endoftext|>", 13);
    free(d);
}

static void test_gpt2_matches_tiktoken(void **st) {
    (void)st;
    char prefix[PATH_MAX];
    assert_int_equal(ensure_tiktoken(prefix, sizeof prefix), 0);
    ref_case cs[400];
    int nc = 0;
    char *owned[8];
    int no = 0;
    /* all of Moby-Dick: every chapter, then the split as evaluated */
    const fl_split *moby = split("moby-test");
    assert_true(moby->n >= 136);
    for (int i = 0; i < moby->n; i++) {
        snprintf(cs[nc].name, sizeof cs[nc].name, "moby-test/%s", moby->docs[i].name);
        cs[nc].text = moby->docs[i].text, cs[nc].len = moby->docs[i].len, nc++;
    }
    size_t jl;
    owned[no] = fl_split_join(moby, &jl);
    snprintf(cs[nc].name, sizeof cs[nc].name, "moby-test joined");
    cs[nc].text = owned[no++], cs[nc].len = jl, nc++;
    /* the first address of every SOTU decade */
    int last_decade = -1, decades = 0;
    const char *sotu[] = { "sotu-train", "sotu-val", "sotu-test" };
    for (int k = 0; k < 3; k++) {
        const fl_split *s = split(sotu[k]);
        for (int i = 0; i < s->n; i++) {
            int decade = atoi(s->docs[i].name) / 10;
            if (decade == last_decade) continue;
            last_decade = decade;
            decades++;
            snprintf(cs[nc].name, sizeof cs[nc].name, "%s/%s", sotu[k], s->docs[i].name);
            cs[nc].text = s->docs[i].text, cs[nc].len = s->docs[i].len, nc++;
        }
    }
    assert_int_equal(decades, 24); /* 1790s .. 2020s */
    /* Unicode stress texts */
    for (int k = 0; k < 4; k++) {
        snprintf(cs[nc].name, sizeof cs[nc].name, "unicode stress text %d", k);
        owned[no] = stress_text((uint64_t)k + 1, 12000, &cs[nc].len);
        cs[nc].text = owned[no++], nc++;
    }

    char list[PATH_MAX], out[PATH_MAX], path[PATH_MAX + 32], cwd[PATH_MAX];
    pf(list, sizeof list, "%s/ref_inputs", g_tmp);
    assert_int_equal(mkdir(list, 0755), 0);
    pf(out, sizeof out, "%s/ref.bin", g_tmp);
    assert_non_null(getcwd(cwd, sizeof cwd));
    /* run from the input directory so the command line stays short */
    size_t cap = 3 * PATH_MAX + 64 + (size_t)nc * 12, cl;
    char *full = malloc(cap);
    cl = (size_t)snprintf(full, cap, "cd '%s' && node '%s/tests/oracle/tiktoken_ref.mjs' '%s' '%s'", list, cwd, prefix, out);
    for (int i = 0; i < nc; i++) {
        snprintf(path, sizeof path, "%s/%d.txt", list, i);
        write_file(path, cs[i].text, cs[i].len);
        cl += (size_t)snprintf(full + cl, cap - cl, " %d.txt", i);
    }
    double t0 = fl_wall_s();
    assert_int_equal(sh("%s", full), 0);
    free(full);
    double t_ref = fl_wall_s() - t0;

    size_t rn;
    char *ref = read_file(out, &rn);
    assert_non_null(ref);
    size_t at = 0, bytes = 0, tokens = 0;
    double t_ours = 0;
    for (int i = 0; i < nc; i++) {
        int32_t cnt;
        assert_true(at + 4 <= rn);
        memcpy(&cnt, ref + at, 4);
        at += 4;
        assert_true(at + 4 * (size_t)cnt <= rn);
        const int32_t *want = (const int32_t *)(void *)(ref + at);
        at += 4 * (size_t)cnt;
        int32_t *ids;
        int64_t n;
        t0 = fl_wall_s();
        assert_int_equal(fl_bpe_encode(g_gpt2, cs[i].text, cs[i].len, &ids, &n), 0);
        t_ours += fl_wall_s() - t0;
        int64_t k = 0;
        while (k < n && k < cnt && ids[k] == want[k]) k++;
        if (n != cnt || k < n)
            fail_msg("%s: freelunch gives %lld ids, js-tiktoken %d; first difference at id %lld (freelunch %d, js-tiktoken %d)",
                     cs[i].name, (long long)n, cnt, (long long)k, k < n ? ids[k] : -1, k < cnt ? want[k] : -1);
        roundtrip(g_gpt2, cs[i].name, cs[i].text, cs[i].len);
        bytes += cs[i].len;
        tokens += (size_t)n;
        free(ids);
    }
    assert_int_equal(at, rn);
    printf("identical to js-tiktoken on %d texts (%zu bytes, %zu tokens; 137 Moby-Dick, %d SOTU decades, 4 stress): "
           "freelunch %.2f s, node+js-tiktoken %.2f s\n", nc, bytes, tokens, decades, t_ours, t_ref);
    free(ref);
    for (int i = 0; i < no; i++) free(owned[i]);
}

/* ---- round trips ------------------------------------------------------------ */

static void test_roundtrip_corpora(void **st) {
    (void)st;
    size_t bytes = 0;
    for (int k = 0; k < g_nsplits; k++) {
        const fl_split *s = &g_splits[k];
        for (int i = 0; i < s->n; i++) {
            char what[600];
            snprintf(what, sizeof what, "%s/%s (gpt2)", s->name, s->docs[i].name);
            roundtrip(g_gpt2, what, s->docs[i].text, s->docs[i].len);
            snprintf(what, sizeof what, "%s/%s (trained)", s->name, s->docs[i].name);
            roundtrip(g_trained, what, s->docs[i].text, s->docs[i].len);
            bytes += s->docs[i].len;
        }
    }
    printf("decode(encode(x)) == x on %d splits, %zu bytes, both tokenizers\n", g_nsplits, bytes);
}

static void test_roundtrip_random_bytes(void **st) {
    (void)st;
    uint64_t r = 12345;
    /* uniform bytes */
    size_t n = 1 << 20;
    char *b = malloc(n);
    for (size_t i = 0; i < n; i++) b[i] = (char)(tu_rng(&r) & 0xFF);
    roundtrip(g_gpt2, "uniform random bytes", b, n);
    roundtrip(g_trained, "uniform random bytes (trained)", b, n);
    /* valid text with every kind of broken UTF-8 spliced in */
    static const char *bad[] = {
        "\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xed\xa0\x80", "\xed\xbf\xbf",
        "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "\xfe", "\xff", "\xe0\x80\xaf", "\xf0\x80\x80\xaf", "\x00",
        " ", "  ", "\n", "a", "word", " the", "'s", "1", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", ".",
    };
    size_t nb = sizeof bad / sizeof *bad, k = 0;
    for (int rep = 0; rep < 20; rep++) {
        k = 0;
        while (k < n - 16) {
            const char *p = bad[tu_rng(&r) % nb];
            size_t l = p[0] ? strlen(p) : 1;
            memcpy(b + k, p, l);
            k += l;
        }
        char what[64];
        snprintf(what, sizeof what, "broken UTF-8 mix %d", rep);
        roundtrip(g_gpt2, what, b, k);
        roundtrip(g_trained, what, b, k);
        /* every prefix length ends mid-sequence somewhere */
        roundtrip(g_gpt2, what, b, (size_t)(tu_rng(&r) % 4096));
    }
    /* long runs: invalid bytes, spaces, one letter (pieces far beyond 128 bytes) */
    memset(b, 0xff, 200000);
    roundtrip(g_gpt2, "200000 x 0xff", b, 200000);
    memset(b, ' ', 200000);
    roundtrip(g_gpt2, "200000 spaces", b, 200000);
    memset(b, 'a', 200000);
    roundtrip(g_gpt2, "200000 x 'a'", b, 200000);
    roundtrip(g_trained, "200000 x 'a' (trained)", b, 200000);
    free(b);
    for (size_t i = 0; i < nb; i++) { /* each snippet alone */
        roundtrip(g_gpt2, "short", bad[i], bad[i][0] ? strlen(bad[i]) : 1);
        roundtrip(g_trained, "short (trained)", bad[i], bad[i][0] ? strlen(bad[i]) : 1);
    }
}

/* ---- training ------------------------------------------------------------- */

static void test_train_matches_naive_reference(void **st) {
    (void)st;
    /* ASCII text from SOTU (other bytes replaced), where the reference's
     * regex is exactly GPT-2's */
    const fl_split *tr = split("sotu-train");
    size_t n = 0, cap = 80000;
    char *t = malloc(cap);
    for (int i = 0; i < tr->n && n < cap; i += 20)
        for (size_t j = 0; j < tr->docs[i].len && n < cap; j++) {
            unsigned char c = (unsigned char)tr->docs[i].text[j];
            t[n++] = c < 128 ? (char)c : '?';
        }
    char path[PATH_MAX], dir[PATH_MAX], ref[PATH_MAX];
    pf(path, sizeof path, "%s/ascii.txt", g_tmp);
    write_file(path, t, n);
    pf(ref, sizeof ref, "%s/ref_merges.txt", g_tmp);
    assert_int_equal(sh("/usr/bin/python3 tests/oracle/bpe_train_ref.py 420 '%s' '%s'", ref, path), 0);
    const char *tv[1] = { t };
    fl_bpe *tok;
    assert_int_equal(fl_bpe_train(&tok, tv, &n, 1, 420, 0), 0);
    assert_int_equal(fl_bpe_vocab_size(tok), 420);
    pf(dir, sizeof dir, "%s/naive", g_tmp);
    assert_int_equal(fl_bpe_save(tok, dir), 0);
    fl_bpe_free(tok);
    size_t a, b;
    char mp[PATH_MAX + 16];
    pf(mp, sizeof mp, "%s/merges.txt", dir);
    char *x = read_file(mp, &a), *y = read_file(ref, &b);
    assert_non_null(x);
    assert_non_null(y);
    if (a != b || memcmp(x, y, a) != 0) {
        size_t k = 0, line = 1;
        while (k < a && k < b && x[k] == y[k]) line += x[k++] == '\n';
        fail_msg("merges differ from the naive reference at line %zu", line);
    }
    free(x);
    free(y);
    free(t);
}

static void test_train_deterministic_exact_size(void **st) {
    (void)st;
    assert_int_equal(fl_bpe_vocab_size(g_trained), 4096);
    assert_int_equal(fl_bpe_eot(g_trained), 4095);
    /* a second training on the same text: identical files */
    const fl_split *tr = split("sotu-train");
    const char **tv = malloc(sizeof *tv * (size_t)tr->n);
    size_t *lv = malloc(sizeof *lv * (size_t)tr->n);
    for (int i = 0; i < tr->n; i++) tv[i] = tr->docs[i].text, lv[i] = tr->docs[i].len;
    fl_bpe *again;
    assert_int_equal(fl_bpe_train(&again, tv, lv, tr->n, 4096, 0), 0);
    char d1[PATH_MAX], d2[PATH_MAX];
    pf(d1, sizeof d1, "%s/t1", g_tmp);
    pf(d2, sizeof d2, "%s/t2/nested", g_tmp);
    assert_int_equal(fl_bpe_save(g_trained, d1), 0);
    assert_int_equal(fl_bpe_save(again, d2), 0);
    fl_bpe_free(again);
    assert_int_equal(sh("cmp -s '%s/vocab.json' '%s/vocab.json' && cmp -s '%s/merges.txt' '%s/merges.txt'", d1, d2, d1, d2), 0);
    assert_int_equal(sh("test $(wc -l < '%s/merges.txt') -eq 3840", d1), 0); /* header + 3839 merges */
    /* exact sizes for other targets, small and odd */
    int sizes[] = { 257, 258, 300, 1001 };
    for (int k = 0; k < 4; k++) {
        fl_bpe *t;
        assert_int_equal(fl_bpe_train(&t, tv, lv, 40, sizes[k], 0), 0);
        assert_int_equal(fl_bpe_vocab_size(t), sizes[k]);
        assert_int_equal(fl_bpe_eot(t), sizes[k] - 1);
        roundtrip(t, "small vocabulary", tr->docs[0].text, tr->docs[0].len);
        fl_bpe_free(t);
    }
    free(tv);
    free(lv);
    /* save + load: the same ids and round trips */
    fl_bpe *back;
    assert_int_equal(fl_bpe_load(&back, d1), 0);
    assert_int_equal(fl_bpe_vocab_size(back), 4096);
    assert_int_equal(fl_bpe_eot(back), 4095);
    const fl_split *va = split("sotu-val");
    size_t jl;
    char *j = fl_split_join(va, &jl);
    int32_t *a, *b;
    int64_t na, nb;
    assert_int_equal(fl_bpe_encode(g_trained, j, jl, &a, &na), 0);
    assert_int_equal(fl_bpe_encode(back, j, jl, &b, &nb), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, sizeof *a * (size_t)na);
    int32_t *g;
    int64_t ng;
    assert_int_equal(fl_bpe_encode(g_gpt2, j, jl, &g, &ng), 0);
    printf("sotu-val: %.3f bytes/token with the trained 4096-token BPE, %.3f with GPT-2's\n", (double)jl / (double)na,
           (double)jl / (double)ng);
    free(g);
    roundtrip(back, "sotu-val after save/load", j, jl);
    free(a);
    free(b);
    free(j);
    fl_bpe_free(back);
}

static void test_train_errors(void **st) {
    (void)st;
    fl_bpe *t = NULL;
    const char *tv[1] = { "tiny text, tiny text" };
    size_t lv[1] = { strlen(tv[0]) };
    assert_int_equal(fl_bpe_train(&t, tv, lv, 1, 4096, 0), -1);
    assert_null(t);
    assert_non_null(strstr(fl_errmsg(), "fewer than the vocabulary of 4096"));
    assert_int_equal(fl_bpe_train(&t, tv, lv, 1, 100, 0), -1);
    assert_non_null(strstr(fl_errmsg(), "too small"));
}

/* GPT-2's files saved as HF files load to the same tokenizer. */
static void test_gpt2_save_load(void **st) {
    (void)st;
    char d[PATH_MAX];
    pf(d, sizeof d, "%s/gpt2hf", g_tmp);
    assert_int_equal(fl_bpe_save(g_gpt2, d), 0);
    fl_bpe *t;
    assert_int_equal(fl_bpe_load(&t, d), 0);
    assert_int_equal(fl_bpe_vocab_size(t), 50257);
    assert_int_equal(fl_bpe_eot(t), 50256);
    const fl_split *s = split("sotu-test");
    int32_t *a, *b;
    int64_t na, nb;
    assert_int_equal(fl_bpe_encode(g_gpt2, s->docs[0].text, s->docs[0].len, &a, &na), 0);
    assert_int_equal(fl_bpe_encode(t, s->docs[0].text, s->docs[0].len, &b, &nb), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, sizeof *a * (size_t)na);
    free(a);
    free(b);
    fl_bpe_free(t);
    /* the HF file is GPT-2's own encoder.json, key for key */
    char cmp[PATH_MAX * 2 + 200];
    snprintf(cmp, sizeof cmp,
             "/usr/bin/python3 -c \"import json,sys; sys.exit(json.load(open('%s/vocab.json')) != json.load(open('%s/gpt2/encoder.json')))\"",
             d, g_cache);
    assert_int_equal(sh("%s", cmp), 0);
    assert_int_equal(sh("tail -n +2 '%s/merges.txt' > '%s/m1' && tail -n +2 '%s/gpt2/vocab.bpe' | sed '/^$/d' > '%s/m2' && "
                        "cmp -s '%s/m1' '%s/m2'", d, g_tmp, g_cache, g_tmp, g_tmp, g_tmp), 0);
}

/* ---- bad input ---------------------------------------------------------------- */

static void expect_load_error(const char *dir, const char *a, const char *b) {
    fl_bpe *t = (fl_bpe *)1;
    int rc = fl_bpe_load(&t, dir);
    if (rc != -1 || t != NULL || !strstr(fl_errmsg(), a) || (b && !strstr(fl_errmsg(), b)))
        fail_msg("loading %s: rc %d, message '%s' (want '%s' and '%s')", dir, rc, fl_errmsg(), a, b ? b : "");
    if (strchr(fl_errmsg(), '\n')) fail_msg("loading %s: the message is more than one line: '%s'", dir, fl_errmsg());
}

static void test_bad_tokenizer_dirs(void **st) {
    (void)st;
    char d[PATH_MAX], f[PATH_MAX + 32];
    /* vocab.json without merges.txt */
    pf(d, sizeof d, "%s/no_merges", g_tmp);
    assert_int_equal(sh("mkdir -p '%s' && cp '%s/gpt2/encoder.json' '%s/vocab.json'", d, g_cache, d), 0);
    pf(f, sizeof f, "%s/merges.txt", d);
    expect_load_error(d, f, "missing");
    /* encoder.json without vocab.bpe */
    pf(d, sizeof d, "%s/no_bpe", g_tmp);
    assert_int_equal(sh("mkdir -p '%s' && cp '%s/gpt2/encoder.json' '%s/'", d, g_cache, d), 0);
    pf(f, sizeof f, "%s/vocab.bpe", d);
    expect_load_error(d, f, "missing");
    /* merges.txt without vocab.json */
    pf(d, sizeof d, "%s/no_vocab", g_tmp);
    assert_int_equal(sh("mkdir -p '%s' && cp '%s/gpt2/vocab.bpe' '%s/merges.txt'", d, g_cache, d), 0);
    pf(f, sizeof f, "%s/vocab.json", d);
    expect_load_error(d, f, "missing");
    /* half of one pair beside a whole other pair: the whole pair loads */
    pf(d, sizeof d, "%s/both", g_tmp);
    assert_int_equal(sh("mkdir -p '%s' && cp '%s/gpt2/encoder.json' '%s/gpt2/vocab.bpe' '%s/' && "
                        "printf '{}' > '%s/vocab.json'", d, g_cache, g_cache, d, d), 0);
    fl_bpe *ok;
    assert_int_equal(fl_bpe_load(&ok, d), 0);
    assert_int_equal(fl_bpe_vocab_size(ok), 50257);
    fl_bpe_free(ok);
    /* empty and missing directories */
    pf(d, sizeof d, "%s/empty", g_tmp);
    assert_int_equal(mkdir(d, 0755), 0);
    expect_load_error(d, d, "no tokenizer files");
    pf(d, sizeof d, "%s/nowhere", g_tmp);
    expect_load_error(d, d, "no such");
    /* a merge naming an unknown token; a malformed line */
    pf(d, sizeof d, "%s/bad_merge", g_tmp);
    assert_int_equal(sh("mkdir -p '%s' && cp '%s/gpt2/encoder.json' '%s/vocab.json' && "
                        "(head -n 100 '%s/gpt2/vocab.bpe'; echo 'qzqzqz xyxyxy') > '%s/merges.txt'",
                        d, g_cache, d, g_cache, d), 0);
    pf(f, sizeof f, "%s/merges.txt:101", d);
    expect_load_error(d, f, "qzqzqz");
    assert_int_equal(sh("(head -n 100 '%s/gpt2/vocab.bpe'; echo 'one two three') > '%s/merges.txt'", g_cache, d), 0);
    expect_load_error(d, f, "two tokens");
    /* vocab.json that is not JSON, or lacks bytes */
    pf(d, sizeof d, "%s/bad_vocab", g_tmp);
    assert_int_equal(sh("mkdir -p '%s' && printf '{ not json' > '%s/vocab.json' && cp '%s/gpt2/vocab.bpe' '%s/merges.txt'",
                        d, d, g_cache, d), 0);
    pf(f, sizeof f, "%s/vocab.json", d);
    expect_load_error(d, f, "JSON");
    assert_int_equal(sh("/usr/bin/python3 -c \"import json; json.dump({'tok%%d' %% i: i for i in range(300)}, open('%s/vocab.json','w'))\"", d), 0);
    expect_load_error(d, f, "no token for byte");
    /* decode: ids outside the vocabulary */
    int32_t ids[2] = { 5, 50257 };
    char *out = (char *)1;
    size_t ol;
    assert_int_equal(fl_bpe_decode(g_gpt2, ids, 2, &out, &ol), -1);
    assert_null(out);
    assert_non_null(strstr(fl_errmsg(), "50257"));
    ids[1] = -1;
    assert_int_equal(fl_bpe_decode(g_gpt2, ids, 2, &out, &ol), -1);
}

/* The CLI: one line on stderr naming the file, exit 1. */
static void test_cli(void **st) {
    (void)st;
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    assert_true(k > 0);
    exe[k] = 0;
    for (int up = 0; up < 2; up++) *strrchr(exe, '/') = 0;
    strcat(exe, "/freelunch");
    if (access(exe, X_OK) != 0) skip();
    char d[PATH_MAX], err[PATH_MAX + 16], in[PATH_MAX + 16];
    pf(d, sizeof d, "%s/cli_no_merges", g_tmp);
    pf(err, sizeof err, "%s/cli.err", g_tmp);
    pf(in, sizeof in, "%s/cli.txt", g_tmp);
    write_file(in, "Hello world", 11);
    assert_int_equal(sh("mkdir -p '%s' && cp '%s/gpt2/encoder.json' '%s/vocab.json'", d, g_cache, d), 0);
    int rc = sh("'%s' tokenize --tokenizer '%s' --in '%s' --out '%s/x.bin' >/dev/null 2>'%s'", exe, d, in, g_tmp, err);
    size_t n;
    char *e = read_file(err, &n);
    int lines = 0;
    for (char *c = e; *c; c++) lines += *c == '\n';
    if (rc != 1 || lines != 1 || !strstr(e, "merges.txt") || !strstr(e, d))
        fail_msg("tokenize with %s: exit %d, stderr '%s'", d, rc, e);
    free(e);
    char out[PATH_MAX + 16];
    pf(out, sizeof out, "%s/x.bin", g_tmp);
    assert_int_equal(access(out, F_OK), -1); /* nothing half-written */
    /* and a good run: the ids of "Hello world" in a uint16 token file */
    char gdir[PATH_MAX];
    pf(gdir, sizeof gdir, "%s/gpt2", g_cache);
    assert_int_equal(sh("'%s' tokenize --tokenizer '%s' --in '%s' --out '%s' >/dev/null 2>&1", exe, gdir, in, out), 0);
    char *bin = read_file(out, &n);
    assert_int_equal(n, 1024 + 4);
    int32_t h[3];
    memcpy(h, bin, 12);
    assert_int_equal(h[0], 20240520);
    assert_int_equal(h[2], 2);
    uint16_t tk[2];
    memcpy(tk, bin + 1024, 4);
    assert_int_equal(tk[0], 15496);
    assert_int_equal(tk[1], 995);
    free(bin);
    /* tokenizer-train on a file, then tokenize with it */
    char tdir[PATH_MAX];
    pf(tdir, sizeof tdir, "%s/cli_trained", g_tmp);
    const fl_split *va = split("sotu-val");
    write_file(in, va->docs[0].text, va->docs[0].len);
    assert_int_equal(sh("'%s' tokenizer-train --in '%s' --vocab 300 --out '%s' >/dev/null 2>&1", exe, in, tdir), 0);
    fl_bpe *t;
    assert_int_equal(fl_bpe_load(&t, tdir), 0);
    assert_int_equal(fl_bpe_vocab_size(t), 300);
    fl_bpe_free(t);
    assert_int_equal(sh("'%s' tokenize --tokenizer '%s' --in '%s' --out '%s' >/dev/null 2>&1", exe, tdir, in, out), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt2_vocabulary),
        cmocka_unit_test(test_gpt2_matches_tiktoken),
        cmocka_unit_test(test_roundtrip_corpora),
        cmocka_unit_test(test_roundtrip_random_bytes),
        cmocka_unit_test(test_train_matches_naive_reference),
        cmocka_unit_test(test_train_deterministic_exact_size),
        cmocka_unit_test(test_train_errors),
        cmocka_unit_test(test_gpt2_save_load),
        cmocka_unit_test(test_bad_tokenizer_dirs),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
