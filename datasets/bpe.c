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
 * Training lives in bpe_train.c; the struct and the helpers both halves use
 * are in bpe_impl.h. */
#include "bpe_impl.h"
#include "model/fileio.h"
#include <cjson/cJSON.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>

/* GPT-2's pattern with \s spelled out as JavaScript's \s (see above). */
#define WS "\\t\\n\\x{0B}\\f\\r \\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}"
const char *FL_GPT2_PATTERN =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" WS "\\p{L}\\p{N}]+|[" WS "]+(?![^" WS "])|[" WS "]+";

/* ---- small utilities ------------------------------------------------------ */

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

long fl_bpe_unmap_token(const char *s, size_t n, unsigned char *out) {
    init_byte_map();
    return unmap_token(s, n, out);
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

static int tmap_find(const fl_bpe *t, const unsigned char *p, size_t n, uint32_t h) {
    size_t mask = t->tcap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        int32_t s = t->tmap[i];
        if (!s) return -1;
        int id = s - 1;
        if (t->thash[i] == h && t->len[id] == n && !memcmp(t->blob + t->off[id], p, n)) return id;
    }
}

static int tmap_build(fl_bpe *t, const unsigned char *only) {
    size_t cap = 16;
    while (cap < (size_t)t->n_vocab * 2) cap *= 2;
    t->tmap = calloc(cap, sizeof *t->tmap);
    t->thash = calloc(cap, sizeof *t->thash);
    if (!t->tmap || !t->thash) return fl_err("bpe: out of memory");
    t->tcap = cap;
    for (int id = 0; id < t->n_vocab; id++) {
        if (only && only[id] != 1) continue; /* HF: model.vocab only (not holes, not added tokens) */
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

int fl_bpe_tmap_find(const fl_bpe *t, const unsigned char *p, size_t n) {
    return t->tcap ? tmap_find(t, p, n, (uint32_t)hash_bytes(p, n)) : -1;
}
int fl_bpe_tmap_build(fl_bpe *t, const unsigned char *only) { return tmap_build(t, only); }

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

int fl_bpe_pmap_merges(fl_bpe *t, const int32_t *res) {
    size_t cap = 16;
    while (cap < (size_t)t->n_merges * 2 + 2) cap *= 2;
    t->pmap = calloc(cap, sizeof *t->pmap);
    if (!t->pmap) return fl_err("bpe: out of memory");
    t->pcap = cap;
    for (int m = 0; m < t->n_merges; m++) {
        uint64_t key = (((uint64_t)(uint32_t)t->merges[m][0] << 32) | (uint32_t)t->merges[m][1]) + 1;
        size_t i = hash_pair(key) & (cap - 1);
        while (t->pmap[i].key && t->pmap[i].key != key) i = (i + 1) & (cap - 1);
        t->pmap[i].key = key;
        t->pmap[i].rank = m;
        t->pmap[i].id = res[m];
    }
    return 0;
}

int fl_bpe_compile_re(fl_bpe *t) { return fl_bpe_compile_pattern(t, FL_GPT2_PATTERN, "bpe"); }

int fl_bpe_compile_pattern(fl_bpe *t, const char *pattern, const char *what) {
    int ec;
    PCRE2_SIZE eo;
    t->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF,
                          &ec, &eo, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof msg);
        return fl_err("%s: cannot compile the pre-tokenisation regex at offset %zu: %s", what, (size_t)eo, (char *)msg);
    }
    pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* falls back to the interpreter if JIT is unavailable */
    return 0;
}

int fl_bpe_finish(fl_bpe *t, const char *what) {
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1;
    int rc = tmap_build(t, NULL);
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
    return fl_bpe_compile_re(t);
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
    fl_hf_free(t->hf);
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

static int load_vocab(fl_bpe *t, const char *path) {
    char *text;
    size_t n;
    if (fl_read_file(path, &text, &n) != 0) return -1;
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
    if (fl_read_file(path, &text, &n) != 0) return -1;
    /* a temporary bytes -> id map over the vocabulary */
    if (tmap_build(t, NULL) > 0) { free(text); return fl_err("%s: two tokens have the same bytes", vocab_path); }
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
    /* fl_bpe_finish() rebuilds the map */
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
    sprintf(vpath, "%s/tokenizer.json", dir);
    if (file_exists(vpath)) { /* HF's fast-tokenizer file: it says everything (added tokens, BOS), so it wins */
        free(vpath);
        free(mpath);
        fl_bpe *t = calloc(1, sizeof *t);
        if (!t) return fl_err("bpe: out of memory");
        if (fl_tokjson_load(t, dir) != 0) { fl_bpe_free(t); return -1; }
        *out = t;
        return 0;
    }
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
        return fl_err("%s: no tokenizer files: expected tokenizer.json (HF), vocab.json + merges.txt (HF) or encoder.json + vocab.bpe (GPT-2)", dir);
    }
    fl_bpe *t = calloc(1, sizeof *t);
    if (!t) { free(vpath); free(mpath); return fl_err("bpe: out of memory"); }
    int rc = load_vocab(t, vpath);
    if (rc == 0) rc = load_merges(t, mpath, vpath);
    if (rc == 0) rc = fl_bpe_finish(t, vpath);
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
static int encode_piece_hf(const fl_bpe *t, const unsigned char *p, size_t n, ivec *out, int32_t *scratch);
static int encode_piece(const fl_bpe *t, const unsigned char *p, size_t n, ivec *out, int32_t *scratch) {
    if (t->hf) return encode_piece_hf(t, p, n, out, scratch);
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
typedef struct { bkey k; uint32_t off, n; } centry;
typedef struct { centry *e; size_t cap, used; ivec ids; } cache;
#define CACHE_MAX_PIECE 64
#define CACHE_MAX_ENTRIES (1u << 20)

static int cache_grow(cache *c) {
    size_t cap = c->cap ? c->cap * 2 : 4096;
    if (bkey_regrow((void **)&c->e, c->cap, cap, sizeof *c->e) != 0) return -1;
    c->cap = cap;
    return 0;
}


int fl_bpe_pretokenize(const fl_bpe *t, const unsigned char *text, size_t len, fl_bpe_piece_fn fn, void *ctx) {
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

typedef struct { const fl_bpe *t; ivec out; cache c; int32_t *scratch; size_t scap; int plain; } enc_ctx;

static int enc_piece(void *vctx, const unsigned char *p, size_t n) {
    enc_ctx *x = vctx;
    const fl_bpe *t = x->t;
    if (n == 1 && !(t->hf && t->hf->char_level)) return ivec_push(&x->out, t->byte_id[p[0]]);
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
    size_t i = bkey_probe(c->e, c->cap, sizeof *c->e, p, n, h);
    const centry *e = &c->e[i];
    if (e->k.p) {
        if (grow((void **)&x->out.v, &x->out.cap, x->out.n + e->n, sizeof *x->out.v) != 0) return -1;
        if (e->n) memcpy(x->out.v + x->out.n, c->ids.v + e->off, sizeof(int32_t) * e->n);   /* a piece may encode to nothing */
        x->out.n += e->n;
        return 0;
    }
    size_t before = x->out.n;
    if (encode_piece(t, p, n, &x->out, x->scratch) != 0) return -1;
    size_t m = x->out.n - before;
    if (grow((void **)&c->ids.v, &c->ids.cap, c->ids.n + m, sizeof *c->ids.v) != 0) return -1;
    c->e[i] = (centry){ { p, (uint32_t)n, h }, (uint32_t)c->ids.n, (uint32_t)m };
    if (m) memcpy(c->ids.v + c->ids.n, x->out.v + before, sizeof(int32_t) * m);   /* none yet: both may be NULL */
    c->ids.n += m;
    c->used++;
    return 0;
}

static int encode_hf(const fl_bpe *t, const unsigned char *text, size_t len, enc_ctx *x);

int fl_bpe_encode(const fl_bpe *t, const char *text, size_t len, int32_t **ids, int64_t *n) {
    return fl_bpe_encode_ex(t, text, len, 1, ids, n);
}

int fl_bpe_encode_ex(const fl_bpe *t, const char *text, size_t len, int specials, int32_t **ids, int64_t *n) {
    *ids = NULL;
    *n = 0;
    enc_ctx x = { .t = t, .plain = !specials };
    if (t->hf) {
        int rc = encode_hf(t, (const unsigned char *)text, len, &x);
        free(x.c.e);
        free(x.c.ids.v);
        free(x.scratch);
        if (rc != 0) { free(x.out.v); return -1; }
        *ids = x.out.v;
        *n = (int64_t)x.out.n;
        return 0;
    }
    if (grow((void **)&x.out.v, &x.out.cap, len / 3 + 16, sizeof *x.out.v) != 0) return -1;
    int rc = fl_bpe_pretokenize(t, (const unsigned char *)text, len, enc_piece, &x);
    free(x.c.e);
    free(x.c.ids.v);
    free(x.scratch);
    if (rc != 0) { free(x.out.v); return -1; }
    *ids = x.out.v;
    *n = (int64_t)x.out.n;
    return 0;
}

static int decode_hf(const fl_bpe *t, const int32_t *ids, int64_t n, char **out, size_t *len);
int fl_bpe_decode(const fl_bpe *t, const int32_t *ids, int64_t n, char **out, size_t *len) {
    *out = NULL;
    *len = 0;
    if (t->hf) return decode_hf(t, ids, n, out, len);
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


/* ---- HF tokenizer.json: encoding and decoding ------------------------------
 * The order of HF's encode (its JS build, @huggingface/tokenizers, is what
 * tests/test_tokjson.c holds us to):
 *   1. the text is cut at added tokens (the longest one starting at each
 *      position, leftmost first); lstrip / rstrip ones eat the whitespace
 *      beside them; each is its id;
 *   2. every other section is normalised on its own (so a Prepend "\u2581"
 *      lands at the start of each section, as in HF), then pre-tokenised by
 *      the regex (Split or ByteLevel's), or kept whole (SentencePiece style);
 *   3. each piece: byte-level symbols are its bytes; SentencePiece-style
 *      ones its characters, a character without a token becoming its
 *      <0xNN> byte tokens (byte_fallback) or unk; then the listed merges,
 *      lowest rank first, leftmost on ties (as tiktoken's loop above);
 *   4. the post-processor's ids around the whole (BOS).
 * Invalid UTF-8 (which HF's own encoders cannot take: they encode strings)
 * stays bytes: a byte-level piece of its own, or <0xNN> tokens. */

size_t fl_utf8_at(const unsigned char *p, size_t n, int *cp) {
    unsigned c = p[0];
    size_t k = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
    if (k == 1) { *cp = (int)c; return 1; }
    if (k == 0 || k > n) { *cp = -1; return 1; }
    int v = (int)(c & (0x7F >> k));
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xC0) != 0x80) { *cp = -1; return 1; }
        v = (v << 6) | (p[i] & 0x3F);
    }
    static const int minv[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (v < minv[k] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) { *cp = -1; return 1; }
    *cp = v;
    return k;
}

/* JavaScript's trim set (WhiteSpace + LineTerminator), what HF's JS strips
 * beside an lstrip / rstrip added token. */
static int js_space(int cp) {
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

static int encode_piece_hf(const fl_bpe *t, const unsigned char *p, size_t n, ivec *out, int32_t *scratch) {
    const fl_hf *h = t->hf;
    if (h->ignore_merges) {
        int id = fl_bpe_tmap_find(t, p, n);
        if (id >= 0) return ivec_push(out, id);
    }
    if (n > INT_MAX / 4) return fl_err("bpe: a piece of %zu bytes is too long", n);
    int m = 0;
    if (!h->char_level)
        for (size_t i = 0; i < n; i++) scratch[m++] = t->byte_id[p[i]];
    else
        for (size_t i = 0; i < n;) {
            int cp;
            size_t k = fl_utf8_at(p + i, n - i, &cp);
            int id = fl_bpe_tmap_find(t, p + i, k);
            if (id >= 0) scratch[m++] = id;
            else {
                int all = 1;
                for (size_t j = 0; j < k; j++) all &= h->fallback[p[i + j]] >= 0;
                if (all)
                    for (size_t j = 0; j < k; j++) scratch[m++] = h->fallback[p[i + j]];
                else if (h->unk >= 0) scratch[m++] = h->unk;
                /* else HF drops the character: no token can say it */
            }
            i += k;
        }
    /* the loader made sure no merge takes unk or a <0xNN> token, so these
     * symbols stay as they are, as the strings HF keeps for them do */
    m = m <= SMALL ? merge_small(t, scratch, m) : merge_large(t, scratch, m);
    if (m < 0) return -1;
    if (h->fuse_unk && h->unk >= 0) {
        int k = 0;
        for (int i = 0; i < m; i++)
            if (!(scratch[i] == h->unk && k > 0 && scratch[k - 1] == h->unk)) scratch[k++] = scratch[i];
        m = k;
    }
    if (grow((void **)&out->v, &out->cap, out->n + (size_t)m, sizeof *out->v) != 0) return -1;
    memcpy(out->v + out->n, scratch, sizeof *scratch * (size_t)m);
    out->n += (size_t)m;
    return 0;
}

/* One normalizer step on s (n bytes) -> *o (malloc'd). first: the section
 * is the text's first. */
static int norm_step(const fl_norm_step *st, int first, const unsigned char *s, size_t n, unsigned char **o, size_t *on) {
    if (st->kind == FL_NORM_NFC) return fl_hf_nfc(s, n, o, on);
    if (st->kind == FL_NORM_REPLACE) {
        size_t cnt = 0;
        for (size_t i = 0; st->al && i + st->al <= n;) {
            if (!memcmp(s + i, st->a, st->al)) cnt++, i += st->al;
            else i++;
        }
        size_t cap = n + cnt * st->bl + 1;
        unsigned char *r = malloc(cap), *w = r;
        if (!r) return fl_err("bpe: out of memory");
        for (size_t i = 0; i < n;) {
            if (st->al && i + st->al <= n && !memcmp(s + i, st->a, st->al)) {
                memcpy(w, st->b, st->bl), w += st->bl, i += st->al;
            } else *w++ = s[i++];
        }
        *o = r;
        *on = (size_t)(w - r);
        return 0;
    }
    int add = st->kind == FL_NORM_PREPEND ||
              ((st->kind == FL_NORM_PREPEND_ABSENT || (st->kind == FL_NORM_PREPEND_ABSENT_FIRST && first)) &&
               !(n >= st->al && !memcmp(s, st->a, st->al)));
    unsigned char *r = malloc(n + st->al + 1);
    if (!r) return fl_err("bpe: out of memory");
    size_t k = 0;
    if (add) memcpy(r, st->a, st->al), k = st->al;
    memcpy(r + k, s, n);
    *o = r;
    *on = n + k;
    return 0;
}

typedef struct { size_t s, n; int32_t added; } section;

static int encode_hf(const fl_bpe *t, const unsigned char *text, size_t len, enc_ctx *x) {
    const fl_hf *h = t->hf;
    if (grow((void **)&x->out.v, &x->out.cap, len / 3 + 16, sizeof *x->out.v) != 0) return -1;
    for (int i = 0; i < h->n_prefix && !x->plain; i++) if (ivec_push(&x->out, h->prefix[i]) != 0) return -1;
    /* 1. sections */
    section *sec = NULL;
    size_t ns = 0, scap = 0, start = 0;
    int rc = 0;
    for (size_t i = 0; i < len && rc == 0;) {
        const fl_added *best = NULL;
        for (int a = h->astart[text[i]]; a < h->astart[text[i] + 1]; a++) {
            const fl_added *d = &h->added[a];
            if (d->len <= len - i && (!best || d->len > best->len) && !memcmp(text + i, d->p, d->len)) best = d;
        }
        if (!best) { i++; continue; }
        if (grow((void **)&sec, &scap, ns + 2, sizeof *sec) != 0) { rc = -1; break; }
        if (i > start) sec[ns++] = (section){ start, i - start, -1 };
        sec[ns++] = (section){ i, best->len, (int32_t)(best - h->added) };
        i += best->len;
        start = i;
    }
    if (rc == 0 && start < len) {
        if (grow((void **)&sec, &scap, ns + 1, sizeof *sec) != 0) rc = -1;
        else sec[ns++] = (section){ start, len - start, -1 };
    }
    for (size_t k = 0; k < ns && rc == 0; k++) {
        if (sec[k].added < 0) continue;
        const fl_added *d = &h->added[sec[k].added];
        if (d->lstrip && k > 0 && sec[k - 1].added < 0) { /* trim the end of the section before */
            section *b = &sec[k - 1];
            while (b->n > 0) {
                size_t j = b->n - 1;
                while (j > 0 && (text[b->s + j] & 0xC0) == 0x80 && b->n - j < 4) j--;
                int cp;
                size_t kk = fl_utf8_at(text + b->s + j, b->n - j, &cp);
                if (j + kk != b->n || cp < 0 || !js_space(cp)) break;
                b->n = j;
            }
        }
        if (d->rstrip && k + 1 < ns && sec[k + 1].added < 0) {
            section *b = &sec[k + 1];
            for (;;) {
                if (!b->n) break;
                int cp;
                size_t kk = fl_utf8_at(text + b->s, b->n, &cp);
                if (cp < 0 || !js_space(cp)) break;
                b->s += kk, b->n -= kk;
            }
        }
    }
    /* 2.-3. each section; the normalised copies live until the end, as the
     * piece cache points into them */
    unsigned char **keep = NULL;
    size_t nkeep = 0, kcap = 0;
    for (size_t k = 0; k < ns && rc == 0; k++) {
        if (!sec[k].n) continue;
        if (sec[k].added >= 0) { rc = ivec_push(&x->out, h->added[sec[k].added].id); continue; }
        const unsigned char *s = text + sec[k].s;
        size_t n = sec[k].n;
        for (int j = 0; j < h->n_norm && rc == 0; j++) {
            unsigned char *o;
            size_t on;
            if (grow((void **)&keep, &kcap, nkeep + 1, sizeof *keep) != 0 || norm_step(&h->norm[j], k == 0, s, n, &o, &on) != 0) {
                rc = -1;
                break;
            }
            keep[nkeep++] = o;
            s = o, n = on;
        }
        if (rc != 0 || !n) continue;
        if (t->re) rc = fl_bpe_pretokenize(t, s, n, enc_piece, x);
        else if (h->word_split) {
            /* SentencePiece style with no pre-tokenizer: the section is one
             * word for HF. When no token holds "\u2581" after another
             * character (the loader checks), no merge can join the symbols
             * either side of such a "\u2581", and merges on one side never
             * change the ranks on the other: cutting there gives the same
             * ids, in pieces short enough to cache (one 1 MB word costs
             * seconds in heap cache misses). */
            size_t a = 0;
            for (size_t i = 1; i + 3 <= n && rc == 0; i++)
                if (s[i] == 0xE2 && s[i + 1] == 0x96 && s[i + 2] == 0x81 &&
                    !(i >= 3 && s[i - 3] == 0xE2 && s[i - 2] == 0x96 && s[i - 1] == 0x81)) {
                    rc = enc_piece(x, s + a, i - a);
                    a = i;
                }
            if (rc == 0) rc = enc_piece(x, s + a, n - a);
        } else rc = enc_piece(x, s, n);
    }
    for (size_t i = 0; i < nkeep; i++) free(keep[i]);
    free(keep);
    free(sec);
    for (int i = 0; i < h->n_suffix && rc == 0 && !x->plain; i++) rc = ivec_push(&x->out, h->suffix[i]);
    return rc;
}

/* HF's decoders as freelunch applies them: byte-level tokens are their
 * bytes; SentencePiece-style ones their text with "\u2581" as a space and
 * <0xNN> as the byte, one leading space dropped (the decoder's Strip);
 * added tokens their text. */
static int decode_hf(const fl_bpe *t, const int32_t *ids, int64_t n, char **out, size_t *len) {
    const fl_hf *h = t->hf;
    size_t total = 0;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_vocab)
            return fl_err("bpe: token %lld has id %d, outside the vocabulary of %d", (long long)i, ids[i], t->n_vocab);
        if (!h->kind[ids[i]]) return fl_err("bpe: token %lld has id %d, which no token of the tokenizer has", (long long)i, ids[i]);
        total += t->len[ids[i]];
    }
    char *s = malloc(total + 1);
    if (!s) return fl_err("bpe: out of memory decoding %lld tokens", (long long)n);
    size_t k = 0;
    for (int64_t i = 0; i < n; i++) {
        int id = ids[i];
        const unsigned char *p = t->blob + t->off[id];
        size_t L = t->len[id];
        if (h->byte_of[id] >= 0) { s[k++] = (char)h->byte_of[id]; continue; }
        if (!h->char_level || h->kind[id] != 1 || !h->meta) { memcpy(s + k, p, L); k += L; continue; }
        size_t k0 = k;
        for (size_t j = 0; j < L;) {
            if (j + 3 <= L && p[j] == 0xE2 && p[j + 1] == 0x96 && p[j + 2] == 0x81) s[k++] = ' ', j += 3;
            else s[k++] = (char)p[j++];
        }
        if (i == 0 && h->strip_lead && k > k0 && s[k0] == ' ') memmove(s + k0, s + k0 + 1, --k - k0);
    }
    s[k] = 0;
    *out = s;
    *len = k;
    return 0;
}

/* ---- saving ---------------------------------------------------------------- */

/* The byte-level name of a token (the special token keeps its text). */
static void token_name(const fl_bpe *t, int id, char *buf) {
    if (id == t->eot) {
        memcpy(buf, EOT_TEXT, sizeof EOT_TEXT);
        return;
    }
    map_token(t->blob + t->off[id], t->len[id], buf);
}

int fl_bpe_save(const fl_bpe *t, const char *dir) {
    if (t->hf) return fl_err("%s: a tokenizer.json tokenizer is not saved as vocab.json + merges.txt (copy its files)", dir);
    init_byte_map();
    if (fl_mkdir_p(dir) != 0) return -1;
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
    if (rc == 0) rc = fl_write_file_atomic(path, json, strlen(json));
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
        if (rc == 0) rc = fl_write_file_atomic(path, buf, n);
        free(buf);
    }
    free(path);
    free(name);
    return rc;
}

