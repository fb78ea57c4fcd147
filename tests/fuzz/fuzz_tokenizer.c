/* libFuzzer target: tokenizer files (vocab.json + merges.txt through
 * fl_bpe_load) and encoding arbitrary bytes. The first byte picks the
 * mode: even, the pieces vocab.json | merges.txt | text are a tokenizer
 * directory to load and then encode the text with; odd, the rest is text
 * for a valid tokenizer trained at start-up, which must round-trip it. */
#include "fuzz_common.h"
#include "datasets/bpe.h"
#include "model/err.h"

static fl_bpe *g_tok;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    static const char *text =
        "the quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs away, and the dog "
        "wakes up to find the fox gone. It's 12:30 and they're both tired.\n\n  Indented lines too.";
    size_t len = strlen(text);
    if (fl_bpe_train(&g_tok, &text, &len, 1, 300, 0) != 0) { fprintf(stderr, "%s\n", fl_errmsg()); abort(); }
    char d[300];
    fz_path(d, sizeof d, "seedtok");
    if (fl_bpe_save(g_tok, d) != 0) { fprintf(stderr, "%s\n", fl_errmsg()); abort(); }
    char vp[400], mp[400];
    snprintf(vp, sizeof vp, "%s/vocab.json", d);
    snprintf(mp, sizeof mp, "%s/merges.txt", d);
    size_t nv, nm;
    char *v = fz_slurp(vp, &nv), *m = fz_slurp(mp, &nm);
    char mode0 = 0, mode1 = 1;
    const char *sample = "Hello, world! \xff\xfe caf\xc3\xa9 the fox";
    char *first = malloc(1 + nv);
    first[0] = mode0;
    memcpy(first + 1, v, nv);
    const void *pc[3] = { first, m, sample };
    size_t ln[3] = { 1 + nv, nm, strlen(sample) };
    fz_seed("files", pc, ln, 3);
    char *enc = malloc(1 + strlen(sample));
    enc[0] = mode1;
    memcpy(enc + 1, sample, strlen(sample));
    const void *pe[1] = { enc };
    size_t le = 1 + strlen(sample);
    fz_seed("encode", pe, &le, 1);
    free(enc);
    free(first);
    free(v);
    free(m);
    return 0;
}

static void encode_decode(const fl_bpe *t, const uint8_t *s, size_t n, int must_roundtrip) {
    int32_t *ids = NULL;
    int64_t k = 0;
    if (fl_bpe_encode(t, (const char *)s, n, &ids, &k) != 0) {
        if (must_roundtrip) abort();
        return;
    }
    const int V = fl_bpe_vocab_size(t);
    for (int64_t i = 0; i < k; i++)
        if (ids[i] < 0 || ids[i] >= V) abort();
    char *out = NULL;
    size_t m = 0;
    if (fl_bpe_decode(t, ids, k, &out, &m) == 0) {
        if (must_roundtrip && (m != n || memcmp(out, s, n) != 0)) abort();
        free(out);
    } else if (must_roundtrip) abort();
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    if (data[0] & 1) {
        encode_decode(g_tok, data + 1, size - 1, 1);
        return 0;
    }
    const uint8_t *p[3];
    size_t len[3];
    int k = fz_split(data + 1, size - 1, p, len, 3);
    char d[300], f[400];
    fz_path(d, sizeof d, "tok");
    mkdir(d, 0777);
    snprintf(f, sizeof f, "%s/vocab.json", d);
    fz_write(f, p[0], len[0]);
    snprintf(f, sizeof f, "%s/merges.txt", d);
    fz_write(f, k > 1 ? p[1] : (const uint8_t *)"", k > 1 ? len[1] : 0);
    fl_bpe *t = NULL;
    if (fl_bpe_load(&t, d) == 0) {
        if (k > 2) encode_decode(t, p[2], len[2], 0);
        fl_bpe_free(t);
    }
    return 0;
}
