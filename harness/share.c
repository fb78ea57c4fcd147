/* Shared work between a study's cells; see share.h. */
#include "share.h"
#include "model/err.h"
#include "model/fileio.h"
#include <openssl/evp.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "FLSHARE1"
#define HEAD (8 + 8 + 64)

/* ---- keys --------------------------------------------------------------- */

/* The running binary's SHA-256, computed once per process: part of every
 * key, so entries never outlive the code that wrote them. */
static int exe_digest(unsigned char md[32]) {
    static unsigned char cached[32];
    static int have = 0;
    if (!have) {
        char *buf = NULL;
        size_t n = 0;
        if (fl_read_file("/proc/self/exe", &buf, &n) != 0) return -1;
        unsigned len = 0;
        int ok = EVP_Digest(buf, n, cached, &len, EVP_sha256(), NULL);
        free(buf);
        if (!ok) return fl_err("SHA-256 failed");
        have = 1;
    }
    memcpy(md, cached, 32);
    return 0;
}

int fl_share_key_init(fl_share_key *k, const char *kind) {
    unsigned char exe[32];
    k->h = NULL;
    if (exe_digest(exe) != 0) return -1;
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    if (!h || !EVP_DigestInit_ex(h, EVP_sha256(), NULL)) { EVP_MD_CTX_free(h); return fl_err("SHA-256 failed"); }
    k->h = h;
    fl_share_key_str(k, "format", MAGIC);
    fl_share_key_str(k, "kind", kind);
    fl_share_key_add(k, "binary", exe, 32);
    return 0;
}

void fl_share_key_add(fl_share_key *k, const char *name, const void *b, size_t n) {
    uint64_t ln[2] = { strlen(name), n };
    EVP_DigestUpdate(k->h, ln, sizeof ln);
    EVP_DigestUpdate(k->h, name, ln[0]);
    if (n) EVP_DigestUpdate(k->h, b, n);
}

void fl_share_key_str(fl_share_key *k, const char *name, const char *v) {
    fl_share_key_add(k, name, v ? v : "(null)", strlen(v ? v : "(null)"));
}

void fl_share_key_int(fl_share_key *k, const char *name, long long v) { fl_share_key_add(k, name, &v, sizeof v); }

void fl_share_key_file(fl_share_key *k, const char *name, const char *path) {
    char *buf = NULL;
    size_t n = 0;
    struct stat st;
    if (stat(path, &st) != 0 || fl_read_file(path, &buf, &n) != 0) fl_share_key_str(k, name, "missing");
    else fl_share_key_add(k, name, buf, n);
    fl_err_clear();
    free(buf);
}

int fl_share_key_final(fl_share_key *k, char hex[65]) {
    unsigned char md[32];
    unsigned len = 0;
    int ok = EVP_DigestFinal_ex(k->h, md, &len);
    EVP_MD_CTX_free(k->h);
    k->h = NULL;
    if (!ok) return fl_err("SHA-256 failed");
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

/* ---- entries ------------------------------------------------------------ */

void fl_share_path(const char *cache, const char *kind, const char *hex, char *path, size_t n) {
    snprintf(path, n, "%.3900s/share/%.16s/%.64s.bin", cache, kind, hex);
}

static void head_bytes(const char *kind, const char *hex, char out[HEAD]) {
    memset(out, 0, HEAD);
    memcpy(out, MAGIC, 8);
    memcpy(out + 8, kind, strnlen(kind, 8));
    memcpy(out + 16, hex, 64);
}

int fl_share_load(const char *cache, const char *kind, const char *hex, uint8_t **buf, const uint8_t **payload, size_t *n) {
    char path[4200];
    fl_share_path(cache, kind, hex, path, sizeof path);
    *buf = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return 0;
    char *b = NULL;
    size_t len = 0;
    const char *why = NULL;
    if (fl_read_file(path, &b, &len) != 0) why = "unreadable";
    else if (len < HEAD + 32) why = "truncated";
    else {
        char want[HEAD];
        head_bytes(kind, hex, want);
        unsigned char md[32];
        unsigned ml = 0;
        if (memcmp(b, want, 8)) why = "bad magic";
        else if (memcmp(b, want, HEAD)) why = "kind or key mismatch";
        else if (!EVP_Digest(b, len - 32, md, &ml, EVP_sha256(), NULL) || memcmp(md, b + len - 32, 32)) why = "checksum mismatch";
    }
    if (why) {
        fl_err_clear();
        fprintf(stderr, "share: %s: %s, ignored: computed again\n", path, why);
        free(b);
        return 0;
    }
    *buf = (uint8_t *)b;
    *payload = (const uint8_t *)b + HEAD;
    *n = len - HEAD - 32;
    return 1;
}

int fl_share_begin(fl_share_writer *w, const char *cache, const char *kind, const char *hex) {
    memset(w, 0, sizeof *w);
    char dir[4200];
    snprintf(dir, sizeof dir, "%.3900s/share/%.16s", cache, kind);
    if (fl_mkdir_p(dir) != 0) {
        fprintf(stderr, "share: %s: not shared (%s)\n", dir, fl_errmsg());
        fl_err_clear();
        return -1;
    }
    fl_share_path(cache, kind, hex, w->path, sizeof w->path);
    /* a temporary name of this process's own: another cell may be writing
     * the same entry at this moment */
    snprintf(w->tmp, sizeof w->tmp, "%s.%ld.tmp", w->path, (long)getpid());
    w->f = fopen(w->tmp, "wb");
    EVP_MD_CTX *h = EVP_MD_CTX_new();
    w->h = h;
    if (!w->f || !h || !EVP_DigestInit_ex(h, EVP_sha256(), NULL)) {
        fprintf(stderr, "share: %s: cannot create: %s; not shared\n", w->tmp, strerror(errno));
        fl_share_abort(w);
        return -1;
    }
    w->ok = 1;
    char hb[HEAD];
    head_bytes(kind, hex, hb);
    fl_share_write(w, hb, HEAD);
    return 0;
}

void fl_share_write(fl_share_writer *w, const void *b, size_t n) {
    if (!w->f || !w->ok || !n) return;
    w->ok = fwrite(b, 1, n, w->f) == n && EVP_DigestUpdate(w->h, b, n);
}

int fl_share_commit(fl_share_writer *w) {
    if (!w->f) return -1;
    unsigned char md[32];
    unsigned ml = 0;
    int ok = w->ok && EVP_DigestFinal_ex(w->h, md, &ml) && fwrite(md, 1, 32, w->f) == 32;
    ok = ok && fflush(w->f) == 0 && fsync(fileno(w->f)) == 0;
    ok = fclose(w->f) == 0 && ok;
    w->f = NULL;
    ok = ok && rename(w->tmp, w->path) == 0;
    if (!ok) fprintf(stderr, "share: %s: cannot write (%s); not shared\n", w->path, strerror(errno));
    else fprintf(stderr, "share: stored %s\n", w->path);
    fl_share_abort(w);
    return ok ? 0 : -1;
}

void fl_share_abort(fl_share_writer *w) {
    if (w->f) { fclose(w->f); w->f = NULL; }
    if (w->tmp[0]) unlink(w->tmp);   /* after a rename: nothing there */
    EVP_MD_CTX_free(w->h);
    w->h = NULL;
    w->ok = 0;
}

/* ---- tokenized splits --------------------------------------------------- */

void fl_share_docs_free(int32_t **docs, int64_t *lens, int ndocs) {
    for (int i = 0; docs && i < ndocs; i++) free(docs[i]);
    free(docs);
    free(lens);
}

/* Payload: int64 ndocs, int64 lens[ndocs], int32 tokens of every document
 * in order. Written by hand: an llm.c token file (datasets/tokfile.c) has
 * one stream and no checksum, and this needs the document boundaries. */
static int tokens_parse(const uint8_t *p, size_t n, int want_docs, int vocab, int32_t ***docs, int64_t **lens) {
    int64_t nd;
    if (n < 8) return -1;
    memcpy(&nd, p, 8);
    if (nd != want_docs || (uint64_t)nd > (n - 8) / 8) return -1;
    int64_t *ln = malloc(sizeof *ln * (size_t)(nd ? nd : 1));
    memcpy(ln, p + 8, 8 * (size_t)nd);
    size_t off = 8 + 8 * (size_t)nd;
    uint64_t total = 0;
    for (int64_t i = 0; i < nd; i++) {
        if (ln[i] < 0 || (uint64_t)ln[i] > (n - off) / 4) { free(ln); return -1; }
        total += (uint64_t)ln[i];
    }
    if (total * 4 != n - off) { free(ln); return -1; }
    int32_t **d = calloc((size_t)(nd ? nd : 1), sizeof *d);
    for (int64_t i = 0; i < nd; i++) {
        d[i] = malloc(4 * (size_t)(ln[i] ? ln[i] : 1));
        memcpy(d[i], p + off, 4 * (size_t)ln[i]);
        off += 4 * (size_t)ln[i];
        for (int64_t q = 0; q < ln[i]; q++)
            if (d[i][q] < 0 || (vocab > 0 && d[i][q] >= vocab)) { fl_share_docs_free(d, ln, (int)nd); return -1; }
    }
    *docs = d;
    *lens = ln;
    return 0;
}

int fl_share_tokenize(const char *cache, const char *mode, const fl_split *sp, const fl_bpe *t, const char *tokdir, int vocab,
                      int32_t ***docs, int64_t **lens, int *ndocs) {
    const int joined = !strcmp(mode, "joined"), nd = joined ? 1 : sp->n;
    *docs = NULL;
    *lens = NULL;
    *ndocs = 0;
    char hex[65] = "", p[4200];
    fl_share_key k;
    if (cache && fl_share_key_init(&k, "tokens") != 0) {
        fprintf(stderr, "share: split %s not shared (%s)\n", sp->name, fl_errmsg());
        fl_err_clear();
        cache = NULL;
    }
    if (cache) {
        fl_share_key_str(&k, "mode", mode);
        fl_share_key_str(&k, "split", sp->name);
        fl_share_key_int(&k, "ndocs", sp->n);
        for (int i = 0; i < sp->n; i++) {
            fl_share_key_str(&k, "doc", sp->docs[i].name);
            fl_share_key_add(&k, "text", sp->docs[i].text, sp->docs[i].len);
        }
        /* every file fl_bpe_load may read (datasets/bpe.h): the HF
         * tokenizer.json and its config as much as vocab.json + merges.txt */
        static const char *const TOKFILES[] = { "vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json" };
        for (size_t f = 0; f < sizeof TOKFILES / sizeof *TOKFILES; f++) {
            snprintf(p, sizeof p, "%.4000s/%s", tokdir, TOKFILES[f]);
            fl_share_key_file(&k, TOKFILES[f], p);
        }
        fl_share_key_int(&k, "vocab", vocab);
        if (fl_share_key_final(&k, hex) != 0) { fl_err_clear(); cache = NULL; }
    }
    if (cache) {
        uint8_t *buf;
        const uint8_t *pl;
        size_t n;
        if (fl_share_load(cache, "tokens", hex, &buf, &pl, &n)) {
            int rc = tokens_parse(pl, n, nd, vocab, docs, lens);
            free(buf);
            fl_share_path(cache, "tokens", hex, p, sizeof p);
            if (rc == 0) {
                *ndocs = nd;
                fprintf(stderr, "share: split %s (%s) tokens from %s\n", sp->name, mode, p);
                return 0;
            }
            fprintf(stderr, "share: %s: payload does not parse for split %s, ignored: computed again\n", p, sp->name);
        }
    }
    int32_t **d = calloc((size_t)nd, sizeof *d);
    int64_t *ln = calloc((size_t)nd, sizeof *ln);
    int rc = d && ln ? 0 : fl_err("split %s: out of memory", sp->name);
    if (rc == 0 && joined) {
        size_t len;
        char *text = fl_split_join(sp, &len);
        rc = fl_bpe_encode(t, text, len, &d[0], &ln[0]);
        free(text);
    }
    for (int i = 0; i < nd && rc == 0 && !joined; i++) {
        rc = fl_bpe_encode(t, sp->docs[i].text, sp->docs[i].len, &d[i], &ln[i]);
        if (rc != 0) {
            char msg[1100];
            snprintf(msg, sizeof msg, "%s", fl_errmsg());
            fl_err("split %s, document %s: %s", sp->name, sp->docs[i].name, msg);
        }
    }
    if (rc != 0) { fl_share_docs_free(d, ln, nd); return -1; }
    fl_share_writer w;
    if (cache && fl_share_begin(&w, cache, "tokens", hex) == 0) {
        int64_t n64 = nd;
        fl_share_write(&w, &n64, 8);
        fl_share_write(&w, ln, 8 * (size_t)nd);
        for (int i = 0; i < nd; i++) fl_share_write(&w, d[i], 4 * (size_t)ln[i]);
        fl_share_commit(&w);
    }
    *docs = d;
    *lens = ln;
    *ndocs = nd;
    return 0;
}
