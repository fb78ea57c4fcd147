/* libFuzzer target: HF tokenizer.json (+ tokenizer_config.json) through
 * fl_bpe_load, then encoding and decoding arbitrary bytes with whatever
 * loaded. The input is tokenizer.json | tokenizer_config.json | text
 * (fuzz_common.h's separator; an empty config piece means no config file).
 * Seeds: a SentencePiece-style file (normalizers, byte fallback, a BOS
 * template, added tokens) and a byte-level one (256 byte tokens, a Split
 * regex with (?i:...) and \s, NFC), written at start-up. */
#include "fuzz_common.h"
#include "datasets/bpe.h"
#include "model/err.h"

static const char SP[] =
    "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},{\"id\":1,\"content\":\"<s>\",\"special\":true,\"rstrip\":true}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},\"pre_tokenizer\":null,"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\"}},{\"Sequence\":{\"id\":\"A\"}}],"
    "\"special_tokens\":{\"<s>\":{\"ids\":[1]}}},"
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\xe2\x96\x81\"},\"content\":\" \"},"
    "{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \",\"start\":1,\"stop\":0}]},"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":true,"
    "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"<0x41>\":2,\"<0xFF>\":3,\"\xe2\x96\x81\":4,\"a\":5,\"b\":6,\"ab\":7,\"\xe2\x96\x81" "ab\":8},"
    "\"merges\":[\"a b\",[\"\xe2\x96\x81\",\"ab\"]]}}";

/* A byte-level file: GPT-2's byte map spelled out, a few merges. */
static char *byte_level_seed(size_t *n) {
    size_t cap = 65536, k = 0;
    char *s = malloc(cap);
    k += (size_t)snprintf(s + k, cap - k,
                          "{\"added_tokens\":[{\"id\":261,\"content\":\"<|endoftext|>\",\"special\":true}],"
                          "\"normalizer\":{\"type\":\"NFC\"},\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
                          "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(?i:'s|'t)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}|"
                          " ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"},\"behavior\":\"Isolated\"},"
                          "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]},"
                          "\"post_processor\":{\"type\":\"ByteLevel\"},\"decoder\":{\"type\":\"ByteLevel\"},"
                          "\"model\":{\"type\":\"BPE\",\"ignore_merges\":true,\"vocab\":{");
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        int cp = printable ? b : 256 + extra++;
        char u[8];
        if (cp < 0x80) {
            if (cp == '"' || cp == '\\') snprintf(u, sizeof u, "\\%c", cp);
            else snprintf(u, sizeof u, "%c", cp);
        } else snprintf(u, sizeof u, "%c%c", 0xC0 | (cp >> 6), 0x80 | (cp & 0x3F));
        k += (size_t)snprintf(s + k, cap - k, "%s\"%s\":%d", b ? "," : "", u, b);
    }
    k += (size_t)snprintf(s + k, cap - k, ",\"th\":256,\"the\":257,\"\xc4\xa0t\":258,\"\xc4\xa0th\":259,\"\xc4\xa0the\":260},"
                                          "\"merges\":[[\"t\",\"h\"],\"th e\",\"\xc4\xa0 t\",\"\xc4\xa0t h\",\"\xc4\xa0th e\"]}}");
    *n = k;
    return s;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    const char *text = "Hello <s> ab  ab\xff caf\xc3\xa9 cafe\xcc\x81 the The'S 12345 <|endoftext|>\n\n x";
    const void *p[3] = { SP, "{\"add_bos_token\": true, \"bos_token\": \"<s>\"}", text };
    size_t l[3] = { strlen(SP), strlen((const char *)p[1]), strlen(text) };
    fz_seed("sp", p, l, 3);
    size_t bn;
    char *bl = byte_level_seed(&bn);
    const void *q[3] = { bl, "", text };
    size_t m[3] = { bn, 0, strlen(text) };
    fz_seed("bytelevel", q, m, 3);
    free(bl);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *p[3];
    size_t len[3];
    int k = fz_split(data, size, p, len, 3);
    char d[300], f[400];
    fz_path(d, sizeof d, "tok");
    mkdir(d, 0777);
    snprintf(f, sizeof f, "%s/tokenizer.json", d);
    fz_write(f, p[0], len[0]);
    snprintf(f, sizeof f, "%s/tokenizer_config.json", d);
    if (k > 1 && len[1]) fz_write(f, p[1], len[1]);
    else remove(f);
    fl_bpe *t = NULL;
    if (fl_bpe_load(&t, d) != 0) return 0;
    if (k > 2) {
        int32_t *ids = NULL;
        int64_t n = 0;
        if (fl_bpe_encode(t, (const char *)p[2], len[2], &ids, &n) == 0) {
            const int V = fl_bpe_vocab_size(t);
            for (int64_t i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= V) abort();
            char *out = NULL;
            size_t m = 0;
            if (fl_bpe_decode(t, ids, n, &out, &m) == 0) free(out);
            free(ids);
        }
    }
    fl_bpe_free(t);
    return 0;
}
