/* Byte-level BPE with GPT-2's pre-tokenisation. See bpe.h.
 *
 * Encoding follows tiktoken's algorithm exactly (js-tiktoken's gpt2 encoding
 * is the reference the tests hold us to):
 *   1. the text is cut into pieces by GPT-2's regex (PCRE2, UTF + UCP, JIT);
 *   2. a piece whose bytes are a token is that token;
 *   3. otherwise the piece starts as its bytes and, while some adjacent pair
 *      concatenates to a token, the pair whose token has the lowest rank is
 *      merged (the leftmost on ties). A token's rank is the index of the
 *      first merge (line of merges.txt / vocab.bpe) that produces it, which
 *      for GPT-2 orders tokens exactly as tiktoken's ranks (= ids) do.
 * The pairs are kept in a hash map (left id, right id) -> (rank, token) that
 * holds every split of every mergeable token into two tokens, so a lookup is
 * the same question tiktoken asks ("is left+right a token?").
 *
 * Pre-tokenisation details:
 *   - \s in the pattern is spelled out as JavaScript's \s (the engine
 *     js-tiktoken runs on): tab, LF, VT, FF, CR, space, U+00A0, U+1680,
 *     U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF. PCRE2's
 *     own \s under UCP differs on U+0085, U+180E and U+FEFF.
 *   - \p{L} and \p{N} come from PCRE2's Unicode tables (Unicode 14 in
 *     Debian 12's PCRE2 10.42), V8's from its ICU (Unicode 17 in Node 20
 *     here): a letter or digit assigned after Unicode 14 is "other" for us,
 *     so it can split differently: U+31350 (CJK Ext. H) then 's gives the
 *     piece U+31350 + "'" then "s" here, U+31350 then "'s" in js-tiktoken.
 *     Text of older characters (all our corpora) is unaffected.
 *   - Invalid UTF-8: the regex is compiled with PCRE2_MATCH_INVALID_UTF, so
 *     matches never include an invalid sequence; every maximal run of bytes
 *     between two matches (the invalid bytes) becomes one piece of its own,
 *     encoded by the same byte-level BPE. Every input byte lands in exactly
 *     one piece, so decode(encode(x)) == x for any bytes.
 *
 * Training (fl_bpe_train): the same pre-tokenisation, unique pieces counted,
 * then the classic incremental algorithm: pair counts over the unique words
 * weighted by their counts, for each pair the list of words holding it, and a
 * max-heap keyed by (count, then the lexicographically smallest pair of token
 * byte strings) with lazy invalidation. Only the words that hold the merged
 * pair are touched by a merge. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "bpe.h"
#include "model/err.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EOT_TEXT "<|endoftext|>"

/* GPT-2's pattern with \s spelled out as JavaScript's \s (see above). */
#define WS "\\t\\n\\x{0B}\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}"
static const char *PATTERN =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])|[" WS "]+";

/* ---- small utilities ------------------------------------------------------ */

static uint64_t hash_bytes(const unsigned char *p, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    uint64_t v = 0;
    memcpy(&v, p, n);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 29;
    h *= 0x9E3779B97F4A7C15ull;
    return h ^ (h >> 32);
}

static uint64_t hash_pair(uint64_t k) {
    k *= 0x9E3779B97F4A7C15ull;
    return k ^ (k >> 29);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return fl_err("bpe: out of memory");
    *p = q;
    *cap = c;
    return 0;
}

typedef struct { int32_t *v; size_t n, cap; } ivec;
static int ivec_push(ivec *a, int32_t x) {
    if (a->n == a->cap && grow((void **)&a->v, &a->cap, a->n + 1, sizeof *a->v) != 0) return -1;
    a->v[a->n++] = x;
    return 0;
}

/* GPT-2's bytes_to_unicode: byte -> code point, and its inverse. */
static int g_b2u[256];
static int g_u2b[324];
static void init_byte_map_once(void) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        g_b2u[b] = printable ? b : 256 + n++;
    }
    for (int i = 0; i < 324; i++) g_u2b[i] = -1;
    for (int b = 0; b < 256; b++) g_u2b[g_b2u[b]] = b;
}
static void init_byte_map(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_byte_map_once);
}

/* Byte-level token string (as in vocab.json / merges.txt) -> bytes. Returns
 * the byte count, or -1 if a character is outside the byte map (then the
 * caller takes the raw UTF-8). */
static long unmap_token(const char *s, size_t n, unsigned char *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    long k = 0;
    while (i < n) {
        int cp;
        if (p[i] < 0x80) cp = p[i], i += 1;
        else if ((p[i] & 0xE0) == 0xC0 && i + 1 < n && (p[i + 1] & 0xC0) == 0x80)
            cp = ((p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F), i += 2;
        else return -1;
        if (cp >= 324 || g_u2b[cp] < 0) return -1;
        out[k++] = (unsigned char)g_u2b[cp];
    }
    return k;
}

/* bytes -> byte-level string (UTF-8), appended to a buffer. */
static char *map_token(const unsigned char *b, size_t n, char *out) {
    for (size_t i = 0; i < n; i++) {
        int cp = g_b2u[b[i]];
        if (cp < 0x80) *out++ = (char)cp;
        else *out++ = (char)(0xC0 | (cp >> 6)), *out++ = (char)(0x80 | (cp & 0x3F));
    }
    *out = 0;
    return out;
}

/* ---- the tokenizer --------------------------------------------------------- */

typedef struct { uint64_t key; int32_t rank, id; } pslot; /* key = left<<32 | right, +1 so 0 is empty */

struct fl_bpe {
    int n_vocab;
    unsigned char *blob;    /* token bytes */
    uint32_t *off, *len;    /* per token */
    int32_t *rank;          /* merge rank of a token, -1 for byte tokens and unmergeable ones */
    unsigned char *mergeable; /* byte tokens and merge results: what tiktoken's ranks hold */
    int32_t byte_id[256];
    int eot;
    /* bytes -> id: open addressing, slot = id + 1 (0 empty) */
    int32_t *tmap;
    uint32_t *thash;
    size_t tcap;
    /* (left, right) -> (rank, id) */
    pslot *pmap;
    size_t pcap;
    /* the merges, in rank order (for saving) */
    int32_t (*merges)[2];
    int n_merges;
    pcre2_code *re;
};

static int tmap_find(const fl_bpe *t, const unsigned char *p, size_t n, uint32_t h) {
    size_t mask = t->tcap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        int32_t s = t->tmap[i];
        if (!s) return -1;
        int id = s - 1;
        if (t->thash[i] == h && t->len[id] == n && !memcmp(t->blob + t->off[id], p, n)) return id;
    }
}

static int tmap_build(fl_bpe *t) {
    size_t cap = 16;
    while (cap < (size_t)t->n_vocab * 2) cap *= 2;
    t->tmap = calloc(cap, sizeof *t->tmap);
    t->thash = calloc(cap, sizeof *t->thash);
    if (!t->tmap || !t->thash) return fl_err("bpe: out of memory");
    t->tcap = cap;
    for (int id = 0; id < t->n_vocab; id++) {
        const unsigned char *p = t->blob + t->off[id];
        uint32_t h = (uint32_t)hash_bytes(p, t->len[id]);
        if (tmap_find(t, p, t->len[id], h) >= 0) return 1; /* duplicate: caller reports */
        size_t i = h & (cap - 1);
        while (t->tmap[i]) i = (i + 1) & (cap - 1);
        t->tmap[i] = id + 1;
        t->thash[i] = h;
    }
    return 0;
}

static const pslot *pmap_find(const fl_bpe *t, int32_t a, int32_t b) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t mask = t->pcap - 1;
    for (size_t i = hash_pair(key) & mask;; i = (i + 1) & mask) {
        if (t->pmap[i].key == key) return &t->pmap[i];
        if (!t->pmap[i].key) return NULL;
    }
}

/* Every split of every mergeable token into two mergeable tokens. */
static int pmap_build(fl_bpe *t) {
    size_t n = 0;
    for (int id = 0; id < t->n_vocab; id++)
        if (t->rank[id] >= 0) n += t->len[id] - 1;
    size_t cap = 16;
    while (cap < n * 2 + 2) cap *= 2;
    t->pmap = calloc(cap, sizeof *t->pmap);
    if (!t->pmap) return fl_err("bpe: out of memory");
    t->pcap = cap;
    for (int id = 0; id < t->n_vocab; id++) {
        if (t->rank[id] < 0) continue;
        const unsigned char *p = t->blob + t->off[id];
        uint32_t L = t->len[id];
        for (uint32_t k = 1; k < L; k++) {
            int a = tmap_find(t, p, k, (uint32_t)hash_bytes(p, k));
            if (a < 0 || !t->mergeable[a]) continue;
            int b = tmap_find(t, p + k, L - k, (uint32_t)hash_bytes(p + k, L - k));
            if (b < 0 || !t->mergeable[b]) continue;
            uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
            size_t i = hash_pair(key) & (cap - 1);
            while (t->pmap[i].key && t->pmap[i].key != key) i = (i + 1) & (cap - 1);
            t->pmap[i].key = key;
            t->pmap[i].rank = t->rank[id];
            t->pmap[i].id = id;
        }
    }
    return 0;
}

static int compile_re(fl_bpe *t) {
    int ec;
    PCRE2_SIZE eo;
    t->re = pcre2_compile((PCRE2_SPTR)PATTERN, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF,
                          &ec, &eo, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return fl_err("bpe: cannot compile the pre-tokenisation regex at offset %zu: %s", (size_t)eo, (char *)msg);
    }
    pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if JIT is unavailable */
    return 0;
}

/* Finish a tokenizer whose vocabulary, ranks and merges are set. */
static int finish(fl_bpe *t, const char *what) {
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    int rc = tmap_build(t);
    if (rc < 0) return -1;
    if (rc > 0) return fl_err("%s: two tokens have the same bytes", what);
    for (int b = 0; b < 256; b++) {
        unsigned char c = (unsigned char)b;
        int id = tmap_find(t, &c, 1, (uint32_t)hash_bytes(&c, 1));
        if (id < 0) return fl_err("%s: no token for byte 0x%02x: not a byte-level BPE vocabulary", what, b);
        t->byte_id[b] = id;
        t->mergeable[id] = 1;
    }
    for (int id = 0; id < t->n_vocab; id++)
        if (t->rank[id] >= 0) t->mergeable[id] = 1;
    t->eot = tmap_find(t, (const unsigned char *)EOT_TEXT, strlen(EOT_TEXT),
                       (uint32_t)hash_bytes((const unsigned char *)EOT_TEXT, strlen(EOT_TEXT)));
    if (t->eot >= 0 && t->mergeable[t->eot]) t->eot = -1; /* a plain text token, not the special one */
    if (pmap_build(t) != 0) return -1;
    return compile_re(t);
}

void fl_bpe_free(fl_bpe *t) {
    if (!t) return;
    free(t->blob);
    free(t->off);
    free(t->len);
    free(t->rank);
    free(t->mergeable);
    free(t->tmap);
    free(t->thash);
    free(t->pmap);
    free(t->merges);
    if (t->re) pcre2_code_free(t->re);
    free(t);
}

int fl_bpe_vocab_size(const fl_bpe *t) { return t->n_vocab; }
int fl_bpe_eot(const fl_bpe *t) { return t->eot; }

/* ---- loading --------------------------------------------------------------- */

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static int slurp(const char *path, char **buf, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return fl_err("%s: cannot open: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); return fl_err("%s: cannot seek", path); }
    long sz = ftell(f);
    rewind(f);
    if (sz < 0) { fclose(f); return fl_err("%s: cannot size", path); }
    *buf = malloc((size_t)sz + 1);
    if (!*buf) { fclose(f); return fl_err("%s: out of memory", path); }
    *n = fread(*buf, 1, (size_t)sz, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || *n != (size_t)sz) { free(*buf); *buf = NULL; return fl_err("%s: read error", path); }
    (*buf)[*n] = 0;
    return 0;
}

static int load_vocab(fl_bpe *t, const char *path) {
    char *text;
    size_t n;
    if (slurp(path, &text, &n) != 0) return -1;
    cJSON *root = cJSON_ParseWithLength(text, n);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fl_err("%s: not a JSON object of token -> id", path);
    }
    int count = cJSON_GetArraySize(root);
    if (count < 256) { cJSON_Delete(root); return fl_err("%s: %d tokens, a byte-level vocabulary needs at least 256", path, count); }
    size_t bytes = 0;
    for (cJSON *it = root->child; it; it = it->next) bytes += strlen(it->string);
    t->n_vocab = count;
    t->blob = malloc(bytes + 1);
    t->off = malloc(sizeof *t->off * (size_t)count);
    t->len = malloc(sizeof *t->len * (size_t)count);
    t->rank = malloc(sizeof *t->rank * (size_t)count);
    t->mergeable = calloc((size_t)count, 1);
    unsigned char *seen = calloc((size_t)count, 1);
    if (!t->blob || !t->off || !t->len || !t->rank || !t->mergeable || !seen) {
        free(seen);
        cJSON_Delete(root);
        return fl_err("%s: out of memory", path);
    }
    size_t pos = 0;
    for (cJSON *it = root->child; it; it = it->next) {
        double v = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (v < 0 || v >= count || v != (double)(int)v) {
            fl_err("%s: token \"%.60s\" has id %.17g, expected an integer in [0, %d)", path, it->string,
                   cJSON_IsNumber(it) ? it->valuedouble : -1.0, count);
            free(seen);
            cJSON_Delete(root);
            return -1;
        }
        int id = (int)v;
        if (seen[id]) {
            fl_err("%s: id %d is used twice (\"%.60s\")", path, id, it->string);
            free(seen);
            cJSON_Delete(root);
            return -1;
        }
        seen[id] = 1;
        size_t sl = strlen(it->string);
        long k = unmap_token(it->string, sl, t->blob + pos);
        if (k < 0) { memcpy(t->blob + pos, it->string, sl); k = (long)sl; } /* an added token: raw text */
        if (k == 0) {
            fl_err("%s: empty token with id %d", path, id);
            free(seen);
            cJSON_Delete(root);
            return -1;
        }
        t->off[id] = (uint32_t)pos;
        t->len[id] = (uint32_t)k;
        t->rank[id] = -1;
        pos += (size_t)k;
    }
    free(seen);
    cJSON_Delete(root);
    return 0;
}

static int load_merges(fl_bpe *t, const char *path, const char *vocab_path) {
    char *text;
    size_t n;
    if (slurp(path, &text, &n) != 0) return -1;
    /* a temporary bytes -> id map over the vocabulary */
    if (tmap_build(t) > 0) { free(text); return fl_err("%s: two tokens have the same bytes", vocab_path); }
    for (int c = 0; c < 256; c++) {
        unsigned char ch = (unsigned char)c;
        if (tmap_find(t, &ch, 1, (uint32_t)hash_bytes(&ch, 1)) < 0) {
            free(text);
            return fl_err("%s: no token for byte 0x%02x: not a byte-level BPE vocabulary", vocab_path, c);
        }
    }
    size_t cap = 0;
    int lineno = 0;
    unsigned char *buf = malloc(n + 1);
    if (!buf) { free(text); return fl_err("%s: out of memory", path); }
    char *p = text, *end = text + n;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        lineno++;
        char *line = p;
        p = nl ? nl + 1 : end;
        if (e > line && e[-1] == '\r') e--;
        if (e == line) continue;
        if (lineno == 1 && !strncmp(line, "#version", 8)) continue;
        char *sp = memchr(line, ' ', (size_t)(e - line));
        if (!sp || sp == line || sp + 1 == e || memchr(sp + 1, ' ', (size_t)(e - sp - 1))) {
            free(buf);
            free(text);
            return fl_err("%s:%d: expected two tokens separated by one space", path, lineno);
        }
        int ids[2];
        const char *part[2] = { line, sp + 1 };
        size_t plen[2] = { (size_t)(sp - line), (size_t)(e - sp - 1) };
        size_t cat = 0;
        for (int j = 0; j < 2; j++) {
            long k = unmap_token(part[j], plen[j], buf + cat);
            if (k < 0) { memcpy(buf + cat, part[j], plen[j]); k = (long)plen[j]; }
            ids[j] = tmap_find(t, buf + cat, (size_t)k, (uint32_t)hash_bytes(buf + cat, (size_t)k));
            if (ids[j] < 0) {
                fl_err("%s:%d: token \"%.*s\" is not in %s", path, lineno, (int)plen[j], part[j], vocab_path);
                free(buf);
                free(text);
                return -1;
            }
            cat += (size_t)k;
        }
        int r = tmap_find(t, buf, cat, (uint32_t)hash_bytes(buf, cat));
        if (r < 0) {
            fl_err("%s:%d: the merge of \"%.*s\" is not in %s", path, lineno, (int)(e - line), line, vocab_path);
            free(buf);
            free(text);
            return -1;
        }
        if (grow((void **)&t->merges, &cap, (size_t)t->n_merges + 1, sizeof *t->merges) != 0) {
            free(buf);
            free(text);
            return -1;
        }
        if (t->rank[r] < 0) t->rank[r] = t->n_merges;
        t->merges[t->n_merges][0] = ids[0];
        t->merges[t->n_merges][1] = ids[1];
        t->n_merges++;
    }
    free(buf);
    free(text);
    /* finish() rebuilds the map */
    free(t->tmap);
    free(t->thash);
    t->tmap = NULL;
    t->thash = NULL;
    return 0;
}

int fl_bpe_load(fl_bpe **out, const char *dir) {
    *out = NULL;
    init_byte_map();
    struct stat st;
    if (stat(dir, &st) != 0) return fl_err("%s: no such tokenizer directory", dir);
    if (!S_ISDIR(st.st_mode)) return fl_err("%s: not a directory (a tokenizer is a directory with vocab.json + merges.txt)", dir);
    size_t dl = strlen(dir);
    char *vpath = malloc(dl + 20), *mpath = malloc(dl + 20);
    if (!vpath || !mpath) { free(vpath); free(mpath); return fl_err("bpe: out of memory"); }
    const char *names[2][2] = { { "vocab.json", "merges.txt" }, { "encoder.json", "vocab.bpe" } };
    int which = -1, half = -1, half_has = 0;
    for (int i = 0; i < 2 && which < 0; i++) {
        sprintf(vpath, "%s/%s", dir, names[i][0]);
        sprintf(mpath, "%s/%s", dir, names[i][1]);
        int hv = file_exists(vpath), hm = file_exists(mpath);
        if (hv && hm) which = i;
        else if ((hv || hm) && half < 0) half = i, half_has = hv ? 0 : 1;
    }
    if (which < 0) {
        free(vpath);
        free(mpath);
        if (half >= 0) /* one file of a pair: name the missing one */
            return fl_err("%s/%s: missing: the tokenizer directory %s has %s but no %s", dir, names[half][1 - half_has],
                          dir, names[half][half_has], names[half][1 - half_has]);
        return fl_err("%s: no tokenizer files: expected vocab.json + merges.txt (HF) or encoder.json + vocab.bpe (GPT-2)", dir);
    }
    fl_bpe *t = calloc(1, sizeof *t);
    if (!t) { free(vpath); free(mpath); return fl_err("bpe: out of memory"); }
    int rc = load_vocab(t, vpath);
    if (rc == 0) rc = load_merges(t, mpath, vpath);
    if (rc == 0) rc = finish(t, vpath);
    free(vpath);
    free(mpath);
    if (rc != 0) { fl_bpe_free(t); return -1; }
    *out = t;
    return 0;
}

/* ---- encoding -------------------------------------------------------------- */

/* Merge the pieces of one word (tiktoken's byte_pair_merge). ids holds the
 * byte tokens on entry and the result on return; returns the count. */
#define SMALL 128
static int merge_small(const fl_bpe *t, int32_t *ids, int n) {
    int32_t r[SMALL];
    for (int i = 0; i + 1 < n; i++) {
        const pslot *s = pmap_find(t, ids[i], ids[i + 1]);
        r[i] = s ? s->rank : INT32_MAX;
    }
    while (n > 1) {
        int best = -1;
        int32_t br = INT32_MAX;
        for (int i = 0; i + 1 < n; i++)
            if (r[i] < br) br = r[i], best = i;
        if (best < 0) break;
        ids[best] = pmap_find(t, ids[best], ids[best + 1])->id;
        /* drop id best+1 and pair best+1 (pairs: 0 .. n-2) */
        memmove(ids + best + 1, ids + best + 2, sizeof *ids * (size_t)(n - best - 2));
        if (n - best - 3 > 0) memmove(r + best + 1, r + best + 2, sizeof *r * (size_t)(n - best - 3));
        n--;
        if (best > 0) {
            const pslot *s = pmap_find(t, ids[best - 1], ids[best]);
            r[best - 1] = s ? s->rank : INT32_MAX;
        }
        if (best + 1 < n) {
            const pslot *s = pmap_find(t, ids[best], ids[best + 1]);
            r[best] = s ? s->rank : INT32_MAX;
        }
    }
    return n;
}

/* The same for long pieces: a linked list and a min-heap of (rank, position)
 * with lazy invalidation; positions keep their order, so (rank, position)
 * picks the leftmost pair on ties, as the scan does. */
typedef struct { int32_t rank, pos, a, b; } hent;
static int hless(const hent *x, const hent *y) { return x->rank < y->rank || (x->rank == y->rank && x->pos < y->pos); }
static void hpush(hent *h, int *n, hent e) {
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!hless(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}
static hent hpop(hent *h, int *n) {
    hent top = h[0], e = h[--*n];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && hless(&h[c + 1], &h[c])) c++;
        if (!hless(&h[c], &e)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n > 0) h[i] = e;
    return top;
}

static int merge_large(const fl_bpe *t, int32_t *ids, int n) {
    int *nx = malloc(sizeof *nx * (size_t)n), *pv = malloc(sizeof *pv * (size_t)n);
    hent *h = malloc(sizeof *h * (size_t)(2 * n + 2));
    if (!nx || !pv || !h) { free(nx); free(pv); free(h); return fl_err("bpe: out of memory"); }
    int hn = 0;
    for (int i = 0; i < n; i++) nx[i] = i + 1 < n ? i + 1 : -1, pv[i] = i - 1;
    for (int i = 0; i + 1 < n; i++) {
        const pslot *s = pmap_find(t, ids[i], ids[i + 1]);
        if (s) hpush(h, &hn, (hent){ s->rank, i, ids[i], ids[i + 1] });
    }
    unsigned char *alive = malloc((size_t)n);
    if (!alive) { free(nx); free(pv); free(h); return fl_err("bpe: out of memory"); }
    memset(alive, 1, (size_t)n);
    while (hn > 0) {
        hent e = hpop(h, &hn);
        int i = e.pos, j = nx[i];
        if (!alive[i] || j < 0 || ids[i] != e.a || ids[j] != e.b) continue;
        ids[i] = pmap_find(t, ids[i], ids[j])->id;
        alive[j] = 0;
        nx[i] = nx[j];
        if (nx[j] >= 0) pv[nx[j]] = i;
        if (pv[i] >= 0) {
            const pslot *s = pmap_find(t, ids[pv[i]], ids[i]);
            if (s) hpush(h, &hn, (hent){ s->rank, pv[i], ids[pv[i]], ids[i] });
        }
        if (nx[i] >= 0) {
            const pslot *s = pmap_find(t, ids[i], ids[nx[i]]);
            if (s) hpush(h, &hn, (hent){ s->rank, i, ids[i], ids[nx[i]] });
        }
    }
    int m = 0;
    for (int i = 0; i >= 0; i = nx[i]) ids[m++] = ids[i];
    free(nx);
    free(pv);
    free(h);
    free(alive);
    return m;
}

/* Encode one piece, appending to out. scratch: at least n int32s. */
static int encode_piece(const fl_bpe *t, const unsigned char *p, size_t n, ivec *out, int32_t *scratch) {
    if (n == 1) return ivec_push(out, t->byte_id[p[0]]);
    int id = tmap_find(t, p, n, (uint32_t)hash_bytes(p, n));
    if (id >= 0 && t->mergeable[id]) return ivec_push(out, id);
    if (n > INT_MAX / 4) return fl_err("bpe: a piece of %zu bytes is too long", n);
    for (size_t i = 0; i < n; i++) scratch[i] = t->byte_id[p[i]];
    int m = n <= SMALL ? merge_small(t, scratch, (int)n) : merge_large(t, scratch, (int)n);
    if (m < 0) return -1;
    if (grow((void **)&out->v, &out->cap, out->n + (size_t)m, sizeof *out->v) != 0) return -1;
    memcpy(out->v + out->n, scratch, sizeof *scratch * (size_t)m);
    out->n += (size_t)m;
    return 0;
}

/* Cache of encoded pieces for one call: piece bytes (pointing into the text)
 * -> ids in an arena. */
typedef struct { const unsigned char *p; uint32_t len, hash, off, n; } centry;
typedef struct { centry *e; size_t cap, used; ivec ids; } cache;
#define CACHE_MAX_PIECE 64
#define CACHE_MAX_ENTRIES (1u << 20)

static int cache_grow(cache *c) {
    size_t cap = c->cap ? c->cap * 2 : 4096;
    centry *e = calloc(cap, sizeof *e);
    if (!e) return fl_err("bpe: out of memory");
    for (size_t i = 0; i < c->cap; i++) {
        if (!c->e[i].p) continue;
        size_t j = c->e[i].hash & (cap - 1);
        while (e[j].p) j = (j + 1) & (cap - 1);
        e[j] = c->e[i];
    }
    free(c->e);
    c->e = e;
    c->cap = cap;
    return 0;
}

/* Pre-tokenisation: calls fn(ctx, piece, len) for every piece in order. */
typedef int (*piece_fn)(void *ctx, const unsigned char *p, size_t n);

static int pretokenize(const fl_bpe *t, const unsigned char *text, size_t len, piece_fn fn, void *ctx) {
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->re, NULL);
    pcre2_match_context *mc = pcre2_match_context_create(NULL);
    pcre2_jit_stack *js = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    if (!md || !mc || !js) {
        if (md) pcre2_match_data_free(md);
        if (mc) pcre2_match_context_free(mc);
        if (js) pcre2_jit_stack_free(js);
        return fl_err("bpe: out of memory");
    }
    pcre2_jit_stack_assign(mc, NULL, js);
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t pos = 0;
    int rc = 0;
    while (pos < len && rc == 0) {
        int m = pcre2_match(t->re, text, len, pos, 0, md, mc);
        size_t s, e;
        if (m == PCRE2_ERROR_NOMATCH) s = e = len;
        else if (m < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(m, msg, sizeof msg);
            rc = fl_err("bpe: pre-tokenisation failed at byte %zu: %s", pos, (char *)msg);
            break;
        } else s = ov[0], e = ov[1];
        if (s > pos) rc = fn(ctx, text + pos, s - pos); /* bytes no match covers: invalid UTF-8 */
        if (rc == 0 && e > s) rc = fn(ctx, text + s, e - s);
        if (e == s && e < len) { /* cannot happen with this pattern; never loop */
            rc = rc ? rc : fn(ctx, text + e, 1);
            e++;
        }
        pos = e;
    }
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    pcre2_jit_stack_free(js);
    return rc;
}

typedef struct { const fl_bpe *t; ivec out; cache c; int32_t *scratch; size_t scap; } enc_ctx;

static int enc_piece(void *vctx, const unsigned char *p, size_t n) {
    enc_ctx *x = vctx;
    const fl_bpe *t = x->t;
    if (n == 1) return ivec_push(&x->out, t->byte_id[p[0]]);
    if (n > x->scap) {
        free(x->scratch);
        x->scap = n * 2;
        x->scratch = malloc(sizeof *x->scratch * x->scap);
        if (!x->scratch) { x->scap = 0; return fl_err("bpe: out of memory"); }
    }
    if (n > CACHE_MAX_PIECE) return encode_piece(t, p, n, &x->out, x->scratch);
    cache *c = &x->c;
    if (c->used >= CACHE_MAX_ENTRIES) { /* bound the memory on text with endless distinct pieces */
        memset(c->e, 0, sizeof *c->e * c->cap);
        c->used = 0;
        c->ids.n = 0;
    }
    if ((c->used + 1) * 2 > c->cap && cache_grow(c) != 0) return -1;
    uint32_t h = (uint32_t)hash_bytes(p, n);
    size_t mask = c->cap - 1, i = h & mask;
    for (; c->e[i].p; i = (i + 1) & mask) {
        centry *e = &c->e[i];
        if (e->hash == h && e->len == n && !memcmp(e->p, p, n)) {
            if (grow((void **)&x->out.v, &x->out.cap, x->out.n + e->n, sizeof *x->out.v) != 0) return -1;
            memcpy(x->out.v + x->out.n, c->ids.v + e->off, sizeof(int32_t) * e->n);
            x->out.n += e->n;
            return 0;
        }
    }
    size_t before = x->out.n;
    if (encode_piece(t, p, n, &x->out, x->scratch) != 0) return -1;
    size_t m = x->out.n - before;
    if (grow((void **)&c->ids.v, &c->ids.cap, c->ids.n + m, sizeof *c->ids.v) != 0) return -1;
    c->e[i] = (centry){ p, (uint32_t)n, h, (uint32_t)c->ids.n, (uint32_t)m };
    memcpy(c->ids.v + c->ids.n, x->out.v + before, sizeof(int32_t) * m);
    c->ids.n += m;
    c->used++;
    return 0;
}

int fl_bpe_encode(const fl_bpe *t, const char *text, size_t len, int32_t **ids, int64_t *n) {
    *ids = NULL;
    *n = 0;
    enc_ctx x = { .t = t };
    if (grow((void **)&x.out.v, &x.out.cap, len / 3 + 16, sizeof *x.out.v) != 0) return -1;
    int rc = pretokenize(t, (const unsigned char *)text, len, enc_piece, &x);
    free(x.c.e);
    free(x.c.ids.v);
    free(x.scratch);
    if (rc != 0) { free(x.out.v); return -1; }
    *ids = x.out.v;
    *n = (int64_t)x.out.n;
    return 0;
}

int fl_bpe_decode(const fl_bpe *t, const int32_t *ids, int64_t n, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return fl_err("bpe: token %lld has id %d, outside the vocabulary of %d", (long long)i, ids[i], t->n_vocab);
        total += t->len[ids[i]];
    }
    char *s = malloc(total + 1);
    if (!s) return fl_err("bpe: out of memory decoding %lld tokens", (long long)n);
    size_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        memcpy(s + k, t->blob + t->off[ids[i]], t->len[ids[i]]);
        k += t->len[ids[i]];
    }
    s[k] = 0;
    *out = s;
    *len = k;
    return 0;
}

/* ---- saving ---------------------------------------------------------------- */

static int mkdir_p(const char *dir) {
    char *tmp = strdup(dir);
    if (!tmp) return fl_err("bpe: out of memory");
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
            fl_err("%s: cannot create directory: %s", tmp, strerror(errno));
            free(tmp);
            return -1;
        }
        *p = '/';
    }
    int rc = 0;
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST) rc = fl_err("%s: cannot create directory: %s", tmp, strerror(errno));
    free(tmp);
    return rc;
}

static int write_atomic(const char *path, const char *data, size_t n) {
    size_t pl = strlen(path);
    char *tmp = malloc(pl + 5);
    if (!tmp) return fl_err("%s: out of memory", path);
    memcpy(tmp, path, pl);
    memcpy(tmp + pl, ".tmp", 5);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        free(tmp);
        return fl_err("%s: cannot create: %s", path, strerror(e));
    }
    int ok = fwrite(data, 1, n, f) == n;
    if (ok && (fflush(f) != 0 || fsync(fileno(f)) != 0)) ok = 0;
    int e = ok ? 0 : errno;
    if (fclose(f) != 0 && ok) ok = 0, e = errno;
    if (ok && rename(tmp, path) != 0) ok = 0, e = errno;
    if (!ok) unlink(tmp);
    free(tmp);
    return ok ? 0 : fl_err("%s: write failed: %s", path, strerror(e ? e : EIO));
}

/* The byte-level name of a token (the special token keeps its text). */
static void token_name(const fl_bpe *t, int id, char *buf) {
    if (id == t->eot) {
        memcpy(buf, EOT_TEXT, sizeof EOT_TEXT);
        return;
    }
    map_token(t->blob + t->off[id], t->len[id], buf);
}

int fl_bpe_save(const fl_bpe *t, const char *dir) {
    init_byte_map();
    if (mkdir_p(dir) != 0) return -1;
    size_t dl = strlen(dir);
    char *path = malloc(dl + 16);
    uint32_t maxlen = 0;
    for (int i = 0; i < t->n_vocab; i++)
        if (t->len[i] > maxlen) maxlen = t->len[i];
    char *name = malloc((size_t)maxlen * 2 + sizeof EOT_TEXT + 1);
    if (!path || !name) { free(path); free(name); return fl_err("%s: out of memory", dir); }
    sprintf(path, "%s/vocab.json", dir);
    cJSON *root = cJSON_CreateObject();
    int rc = root ? 0 : fl_err("%s: out of memory", path);
    for (int i = 0; i < t->n_vocab && rc == 0; i++) {
        token_name(t, i, name);
        if (!cJSON_AddNumberToObject(root, name, i)) rc = fl_err("%s: out of memory", path);
    }
    char *json = rc == 0 ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (rc == 0 && !json) rc = fl_err("%s: out of memory", path);
    if (rc == 0) rc = write_atomic(path, json, strlen(json));
    free(json);
    if (rc == 0) {
        sprintf(path, "%s/merges.txt", dir);
        size_t cap = 64 + (size_t)t->n_merges * 8, n = 0;
        char *buf = malloc(cap);
        if (!buf) rc = fl_err("%s: out of memory", path);
        else n = (size_t)sprintf(buf, "#version: 0.2\n");
        for (int m = 0; m < t->n_merges && rc == 0; m++) {
            size_t need = n + ((size_t)t->len[t->merges[m][0]] + t->len[t->merges[m][1]]) * 2 + 4;
            if (grow((void **)&buf, &cap, need, 1) != 0) { rc = -1; break; }
            char *p = map_token(t->blob + t->off[t->merges[m][0]], t->len[t->merges[m][0]], buf + n);
            *p++ = ' ';
            p = map_token(t->blob + t->off[t->merges[m][1]], t->len[t->merges[m][1]], p);
            *p++ = '\n';
            n = (size_t)(p - buf);
        }
        if (rc == 0) rc = write_atomic(path, buf, n);
        free(buf);
    }
    free(path);
    free(name);
    return rc;
}

/* ---- training -------------------------------------------------------------- */

/* unique words: bytes (pointing into the texts) -> index */
typedef struct { const unsigned char *p; uint32_t len, hash; int32_t idx; } wslot;
typedef struct {
    wslot *slot;
    size_t cap, n;
    const unsigned char **wp;
    uint32_t *wl;
    int64_t *cnt;
    size_t wcap;
} wcount;

static int wc_add(void *vctx, const unsigned char *p, size_t n) {
    wcount *w = vctx;
    if (n < 2) return 0; /* no pairs */
    if (n > UINT32_MAX / 2) return fl_err("bpe: a piece of %zu bytes is too long to train on", n);
    if ((w->n + 1) * 2 > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 1 << 16;
        wslot *s = calloc(cap, sizeof *s);
        if (!s) return fl_err("bpe: out of memory");
        for (size_t i = 0; i < w->cap; i++) {
            if (!w->slot[i].p) continue;
            size_t j = w->slot[i].hash & (cap - 1);
            while (s[j].p) j = (j + 1) & (cap - 1);
            s[j] = w->slot[i];
        }
        free(w->slot);
        w->slot = s;
        w->cap = cap;
    }
    uint32_t h = (uint32_t)hash_bytes(p, n);
    size_t mask = w->cap - 1, i = h & mask;
    for (; w->slot[i].p; i = (i + 1) & mask)
        if (w->slot[i].hash == h && w->slot[i].len == n && !memcmp(w->slot[i].p, p, n)) {
            w->cnt[w->slot[i].idx]++;
            return 0;
        }
    size_t k = w->n;
    if (k == w->wcap) {
        size_t c = w->wcap ? w->wcap * 2 : 1 << 15;
        const unsigned char **wp = realloc(w->wp, c * sizeof *wp);
        if (wp) w->wp = wp;
        uint32_t *wl = realloc(w->wl, c * sizeof *wl);
        if (wl) w->wl = wl;
        int64_t *cnt = realloc(w->cnt, c * sizeof *cnt);
        if (cnt) w->cnt = cnt;
        if (!wp || !wl || !cnt) return fl_err("bpe: out of memory");
        w->wcap = c;
    }
    w->wp[k] = p;
    w->wl[k] = (uint32_t)n;
    w->cnt[k] = 1;
    w->slot[i] = (wslot){ p, (uint32_t)n, h, (int32_t)k };
    w->n++;
    return 0;
}

typedef struct {
    int32_t a, b;
    int64_t cnt;
    int32_t *where; /* word indices, ascending, possibly stale */
    uint32_t nw, cw;
    int touched;
} pairrec;

typedef struct {
    /* tokens */
    unsigned char *blob;
    size_t bn, bcap;
    uint32_t *off, *len;
    size_t ntok, tcap;
    int32_t *tmap; /* bytes -> id, slot = id + 1 */
    size_t tmcap;
    /* words */
    int32_t **sym;
    int32_t *wlen;
    int64_t *wcnt;
    size_t nwords;
    /* pairs */
    pairrec *pr;
    size_t npr, prcap;
    int32_t *pslot; /* pair map: slot = pair index + 1 */
    uint64_t *pkey;
    size_t pscap;
    /* heap of (count, pair index) */
    struct { int64_t cnt; int32_t p; } *heap;
    size_t hn, hcap;
    /* pairs whose counts grew during the current merge */
    int32_t *touched;
    size_t ntouched, tcap2;
    /* merges: left, right, result */
    int32_t (*merges)[3];
    size_t nm, mcap;
} trainer;

static int tr_tok_cmp(const trainer *T, int32_t x, int32_t y) {
    uint32_t lx = T->len[x], ly = T->len[y];
    int c = memcmp(T->blob + T->off[x], T->blob + T->off[y], lx < ly ? lx : ly);
    return c ? c : (lx < ly ? -1 : lx > ly ? 1 : 0);
}

/* heap order: higher count first, then the smaller (left bytes, right bytes) */
static int tr_before(const trainer *T, int64_t ca, int32_t pa, int64_t cb, int32_t pb) {
    if (ca != cb) return ca > cb;
    int c = tr_tok_cmp(T, T->pr[pa].a, T->pr[pb].a);
    if (c) return c < 0;
    return tr_tok_cmp(T, T->pr[pa].b, T->pr[pb].b) < 0;
}

static int tr_hpush(trainer *T, int64_t cnt, int32_t p) {
    if (grow((void **)&T->heap, &T->hcap, T->hn + 1, sizeof *T->heap) != 0) return -1;
    size_t i = T->hn++;
    while (i > 0) {
        size_t q = (i - 1) / 2;
        if (!tr_before(T, cnt, p, T->heap[q].cnt, T->heap[q].p)) break;
        T->heap[i] = T->heap[q];
        i = q;
    }
    T->heap[i].cnt = cnt;
    T->heap[i].p = p;
    return 0;
}

static void tr_hpop(trainer *T, int64_t *cnt, int32_t *p) {
    *cnt = T->heap[0].cnt;
    *p = T->heap[0].p;
    int64_t ec = T->heap[--T->hn].cnt;
    int32_t ep = T->heap[T->hn].p;
    size_t i = 0, n = T->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && tr_before(T, T->heap[c + 1].cnt, T->heap[c + 1].p, T->heap[c].cnt, T->heap[c].p)) c++;
        if (!tr_before(T, T->heap[c].cnt, T->heap[c].p, ec, ep)) break;
        T->heap[i] = T->heap[c];
        i = c;
    }
    if (n > 0) T->heap[i].cnt = ec, T->heap[i].p = ep;
}

static int tr_pair_rehash(trainer *T) {
    size_t cap = T->pscap ? T->pscap * 2 : 1 << 16;
    int32_t *s = calloc(cap, sizeof *s);
    uint64_t *k = calloc(cap, sizeof *k);
    if (!s || !k) { free(s); free(k); return fl_err("bpe: out of memory"); }
    for (size_t i = 0; i < T->pscap; i++) {
        if (!T->pslot[i]) continue;
        size_t j = hash_pair(T->pkey[i]) & (cap - 1);
        while (s[j]) j = (j + 1) & (cap - 1);
        s[j] = T->pslot[i];
        k[j] = T->pkey[i];
    }
    free(T->pslot);
    free(T->pkey);
    T->pslot = s;
    T->pkey = k;
    T->pscap = cap;
    return 0;
}

/* index of pair (a, b), created with count 0 if new; -1 on error */
static int32_t tr_pair(trainer *T, int32_t a, int32_t b) {
    if ((T->npr + 1) * 2 > T->pscap && tr_pair_rehash(T) != 0) return -1;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t mask = T->pscap - 1, i = hash_pair(key) & mask;
    for (; T->pslot[i]; i = (i + 1) & mask)
        if (T->pkey[i] == key) return T->pslot[i] - 1;
    if (grow((void **)&T->pr, &T->prcap, T->npr + 1, sizeof *T->pr) != 0) return -1;
    int32_t p = (int32_t)T->npr++;
    memset(&T->pr[p], 0, sizeof T->pr[p]);
    T->pr[p].a = a;
    T->pr[p].b = b;
    T->pslot[i] = p + 1;
    T->pkey[i] = key;
    return p;
}

static int tr_where_add(pairrec *r, int32_t w) {
    if (r->nw && r->where[r->nw - 1] == w) return 0;
    if (r->nw == r->cw) {
        uint32_t c = r->cw ? r->cw * 2 : 4;
        int32_t *q = realloc(r->where, sizeof *q * c);
        if (!q) return fl_err("bpe: out of memory");
        r->where = q;
        r->cw = c;
    }
    r->where[r->nw++] = w;
    return 0;
}

static int32_t tr_tok_find(const trainer *T, const unsigned char *p, size_t n) {
    uint32_t h = (uint32_t)hash_bytes(p, n);
    size_t mask = T->tmcap - 1;
    for (size_t i = h & mask; T->tmap[i]; i = (i + 1) & mask) {
        int32_t id = T->tmap[i] - 1;
        if (T->len[id] == n && !memcmp(T->blob + T->off[id], p, n)) return id;
    }
    return -1;
}

static int tr_tok_add(trainer *T, const unsigned char *p, size_t n) {
    if (grow((void **)&T->blob, &T->bcap, T->bn + n, 1) != 0) return -1;
    if (grow((void **)&T->off, &T->tcap, T->ntok + 1, sizeof *T->off) != 0) return -1;
    uint32_t *l = realloc(T->len, sizeof *l * T->tcap);
    if (!l) return fl_err("bpe: out of memory");
    T->len = l;
    memmove(T->blob + T->bn, p, n); /* p may point into blob */
    int32_t id = (int32_t)T->ntok++;
    T->off[id] = (uint32_t)T->bn;
    T->len[id] = (uint32_t)n;
    T->bn += n;
    uint32_t h = (uint32_t)hash_bytes(T->blob + T->off[id], n);
    size_t mask = T->tmcap - 1, i = h & mask;
    while (T->tmap[i]) i = (i + 1) & mask;
    T->tmap[i] = id + 1;
    return id;
}

static void tr_free(trainer *T) {
    free(T->blob);
    free(T->off);
    free(T->len);
    free(T->tmap);
    if (T->sym) free(T->sym[0]);
    free(T->sym);
    free(T->wlen);
    free(T->wcnt);
    for (size_t i = 0; i < T->npr; i++) free(T->pr[i].where);
    free(T->pr);
    free(T->pslot);
    free(T->pkey);
    free(T->heap);
    free(T->touched);
    free(T->merges);
}

/* Apply merge (a, b) -> t to word w, keeping the pair counts exact. */
static int tr_merge_word(trainer *T, int32_t w, int32_t a, int32_t b, int32_t t) {
    int32_t *s = T->sym[w];
    int32_t n = T->wlen[w];
    int64_t c = T->wcnt[w];
    int has = 0;
    for (int32_t i = 0; i + 1 < n && !has; i++) has = s[i] == a && s[i + 1] == b;
    if (!has) return 0; /* stale entry of the word list */
    for (int32_t i = 0; i + 1 < n; i++) {
        int32_t p = tr_pair(T, s[i], s[i + 1]);
        if (p < 0) return -1;
        T->pr[p].cnt -= c;
    }
    int32_t k = 0;
    for (int32_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) s[k++] = t, i += 2;
        else s[k++] = s[i++];
    }
    T->wlen[w] = n = k;
    for (int32_t i = 0; i + 1 < n; i++) {
        int32_t p = tr_pair(T, s[i], s[i + 1]);
        if (p < 0) return -1;
        pairrec *r = &T->pr[p];
        r->cnt += c;
        if (s[i] == t || s[i + 1] == t) {
            if (tr_where_add(r, w) != 0) return -1;
            if (!r->touched) {
                r->touched = 1;
                if (grow((void **)&T->touched, &T->tcap2, T->ntouched + 1, sizeof *T->touched) != 0) return -1;
                T->touched[T->ntouched++] = p;
            }
        }
    }
    return 0;
}

int fl_bpe_train(fl_bpe **out, const char *const *texts, const size_t *lens, int n, int vocab_size, int verbose) {
    *out = NULL;
    init_byte_map();
    if (vocab_size < 257) return fl_err("bpe: a vocabulary of %d is too small: 256 byte tokens + <|endoftext|> at least", vocab_size);
    if (n <= 0) return fl_err("bpe: no text to train on");
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    fl_bpe *re = calloc(1, sizeof *re);
    if (!re) return fl_err("bpe: out of memory");
    if (compile_re(re) != 0) { fl_bpe_free(re); return -1; }

    /* 1. unique pieces and their counts */
    wcount wc = { 0 };
    size_t total = 0;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        rc = pretokenize(re, (const unsigned char *)texts[i], lens[i], wc_add, &wc);
        total += lens[i];
    }
    fl_bpe_free(re);
    free(wc.slot);
    trainer T = { 0 };
    if (rc != 0) goto fail;
    if (verbose)
        fprintf(stderr, "bpe: %zu bytes in %d texts, %zu distinct words of 2+ bytes\n", total, n, wc.n);

    /* 2. the byte tokens */
    T.tmcap = 16;
    while (T.tmcap < (size_t)vocab_size * 2 + 64) T.tmcap *= 2;
    T.tmap = calloc(T.tmcap, sizeof *T.tmap);
    if (!T.tmap) { rc = fl_err("bpe: out of memory"); goto fail; }
    for (int b = 0; b < 256; b++) {
        unsigned char c = (unsigned char)b;
        if (tr_tok_add(&T, &c, 1) < 0) { rc = -1; goto fail; }
    }

    /* 3. words as byte symbols, and the initial pair counts */
    size_t nsym = 0;
    for (size_t w = 0; w < wc.n; w++) nsym += wc.wl[w];
    T.nwords = wc.n;
    T.sym = malloc(sizeof *T.sym * (wc.n ? wc.n : 1));
    T.wlen = malloc(sizeof *T.wlen * (wc.n ? wc.n : 1));
    T.wcnt = wc.cnt;
    wc.cnt = NULL;
    int32_t *arena = malloc(sizeof *arena * (nsym ? nsym : 1));
    if (!T.sym || !T.wlen || !arena) { free(arena); rc = fl_err("bpe: out of memory"); goto fail; }
    T.sym[0] = arena;
    for (size_t w = 0, k = 0; w < wc.n; w++) {
        T.sym[w] = arena + k;
        T.wlen[w] = (int32_t)wc.wl[w];
        for (uint32_t i = 0; i < wc.wl[w]; i++) arena[k + i] = wc.wp[w][i];
        k += wc.wl[w];
    }
    free(wc.wp);
    free(wc.wl);
    wc.wp = NULL;
    wc.wl = NULL;
    for (size_t w = 0; w < T.nwords; w++) {
        for (int32_t i = 0; i + 1 < T.wlen[w]; i++) {
            int32_t p = tr_pair(&T, T.sym[w][i], T.sym[w][i + 1]);
            if (p < 0 || tr_where_add(&T.pr[p], (int32_t)w) != 0) { rc = -1; goto fail; }
            T.pr[p].cnt += T.wcnt[w];
        }
    }
    for (size_t p = 0; p < T.npr; p++)
        if (tr_hpush(&T, T.pr[p].cnt, (int32_t)p) != 0) { rc = -1; goto fail; }

    /* 4. merges */
    int target = vocab_size - 1; /* tokens before <|endoftext|> */
    while ((int)T.ntok < target) {
        int32_t p = -1;
        while (T.hn > 0) {
            int64_t c;
            int32_t q;
            tr_hpop(&T, &c, &q);
            if (T.pr[q].cnt <= 0) continue;
            if (T.pr[q].cnt != c) { /* stale entry: requeue with the current count */
                if (tr_hpush(&T, T.pr[q].cnt, q) != 0) { rc = -1; break; }
                continue;
            }
            p = q;
            break;
        }
        if (rc != 0) break;
        if (p < 0) {
            rc = fl_err("bpe: the training text allows only %zu tokens, fewer than the vocabulary of %d asked for "
                        "(more text, or a smaller vocabulary)", T.ntok + 1, vocab_size);
            break;
        }
        int32_t a = T.pr[p].a, b = T.pr[p].b;
        /* the new token's bytes; a string that already is a token keeps its id */
        size_t la = T.len[a], lb = T.len[b];
        unsigned char *cat = malloc(la + lb);
        if (!cat) { rc = fl_err("bpe: out of memory"); break; }
        memcpy(cat, T.blob + T.off[a], la);
        memcpy(cat + la, T.blob + T.off[b], lb);
        int32_t t = tr_tok_find(&T, cat, la + lb);
        if (t < 0) t = tr_tok_add(&T, cat, la + lb);
        free(cat);
        if (t < 0) { rc = -1; break; }
        if (grow((void **)&T.merges, &T.mcap, T.nm + 1, sizeof *T.merges) != 0) { rc = -1; break; }
        T.merges[T.nm][0] = a;
        T.merges[T.nm][1] = b;
        T.merges[T.nm][2] = t;
        T.nm++;
        /* the words holding (a, b); the list is detached first: no pair the
         * merge touches is (a, b) itself, since they all involve t */
        int32_t *where = T.pr[p].where;
        uint32_t nw = T.pr[p].nw;
        T.pr[p].where = NULL;
        T.pr[p].nw = T.pr[p].cw = 0;
        for (uint32_t i = 0; i < nw && rc == 0; i++)
            if (i == 0 || where[i] != where[i - 1]) rc = tr_merge_word(&T, where[i], a, b, t);
        free(where);
        if (rc != 0) break;
        T.pr[p].cnt = 0;
        /* requeue the pairs whose counts grew: those with t */
        for (size_t i = 0; i < T.ntouched && rc == 0; i++) {
            int32_t q = T.touched[i];
            T.pr[q].touched = 0;
            if (T.pr[q].cnt > 0) rc = tr_hpush(&T, T.pr[q].cnt, q);
        }
        T.ntouched = 0;
        if (rc != 0) break;
        if (verbose && (T.nm % 500 == 0 || (int)T.ntok == target))
            fprintf(stderr, "bpe: %zu merges, %zu tokens\n", T.nm, T.ntok);
    }
    if (rc != 0) goto fail;

    /* 5. the tokenizer: tokens in order, <|endoftext|> last */
    fl_bpe *t = calloc(1, sizeof *t);
    if (!t) { rc = fl_err("bpe: out of memory"); goto fail; }
    size_t nt = T.ntok + 1, el = strlen(EOT_TEXT);
    t->n_vocab = (int)nt;
    t->blob = malloc(T.bn + el);
    t->off = malloc(sizeof *t->off * nt);
    t->len = malloc(sizeof *t->len * nt);
    t->rank = malloc(sizeof *t->rank * nt);
    t->mergeable = calloc(nt, 1);
    t->merges = malloc(sizeof *t->merges * (T.nm ? T.nm : 1));
    if (!t->blob || !t->off || !t->len || !t->rank || !t->mergeable || !t->merges) {
        fl_bpe_free(t);
        rc = fl_err("bpe: out of memory");
        goto fail;
    }
    memcpy(t->blob, T.blob, T.bn);
    memcpy(t->blob + T.bn, EOT_TEXT, el);
    for (size_t i = 0; i < T.ntok; i++) t->off[i] = T.off[i], t->len[i] = T.len[i], t->rank[i] = -1;
    t->off[T.ntok] = (uint32_t)T.bn;
    t->len[T.ntok] = (uint32_t)el;
    t->rank[T.ntok] = -1;
    for (size_t m = 0; m < T.nm; m++) {
        t->merges[m][0] = T.merges[m][0];
        t->merges[m][1] = T.merges[m][1];
        if (t->rank[T.merges[m][2]] < 0) t->rank[T.merges[m][2]] = (int32_t)m;
    }
    t->n_merges = (int)T.nm;
    if (finish(t, "bpe training") != 0) { fl_bpe_free(t); rc = -1; goto fail; }
    if (verbose) {
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        fprintf(stderr, "bpe: trained %d tokens (%zu merges) in %.2f s\n", t->n_vocab, T.nm,
                (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    }
    *out = t;
fail:
    free(wc.wp);
    free(wc.wl);
    free(wc.cnt);
    tr_free(&T);
    return rc;
}
