/* Internals shared by the two halves of the byte-level BPE: bpe.c (load,
 * encode, decode, save) and bpe_train.c (learn merges from a corpus). Only
 * those two include this; everyone else sees bpe.h's opaque fl_bpe. */
#ifndef FL_BPE_IMPL_H
#define FL_BPE_IMPL_H
#define PCRE2_CODE_UNIT_WIDTH 8
#include "bpe.h"
#include "model/err.h"
#include <pcre2.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define EOT_TEXT "<|endoftext|>"

typedef struct fl_hf fl_hf;

/* Hashes of byte strings and of (left, right) id pairs, and growing an array
 * to hold `need` elements (doubling); inline, as both halves run them hot. */
static inline uint64_t hash_bytes(const unsigned char *p, size_t n) {
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

static inline uint64_t hash_pair(uint64_t k) {
    k *= 0x9E3779B97F4A7C15ull;
    return k ^ (k >> 29);
}

static inline int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return fl_err("bpe: out of memory");
    *p = q;
    *cap = c;
    return 0;
}

/* The key of the open-addressing tables on byte strings (the encoder's
 * cache, the trainer's word counts): each slot struct starts with one, and
 * p == NULL marks a slot empty. Tables have a power-of-two size. */
typedef struct { const unsigned char *p; uint32_t len, hash; } bkey;

/* The slot holding the n bytes at p (hash h, as (uint32_t)hash_bytes), or
 * the empty one where they belong. */
static inline size_t bkey_probe(const void *tab, size_t cap, size_t size, const unsigned char *p, size_t n, uint32_t h) {
    size_t mask = cap - 1, i = h & mask;
    for (;; i = (i + 1) & mask) {
        const bkey *k = (const bkey *)((const char *)tab + i * size);
        if (!k->p || (k->hash == h && k->len == n && !memcmp(k->p, p, n))) return i;
    }
}

/* Moves the cap slots (size bytes each) of *tab into a new zeroed table of
 * newcap slots, each to where it probes there; frees the old table. */
static inline int bkey_regrow(void **tab, size_t cap, size_t newcap, size_t size) {
    char *e = calloc(newcap, size);
    if (!e) return fl_err("bpe: out of memory");
    for (size_t i = 0; i < cap; i++) {
        const bkey *k = (const bkey *)((const char *)*tab + i * size);
        if (!k->p) continue;
        size_t j = k->hash & (newcap - 1);
        while (((const bkey *)(e + j * size))->p) j = (j + 1) & (newcap - 1);
        memcpy(e + j * size, k, size);
    }
    free(*tab);
    *tab = e;
    return 0;
}

typedef struct { uint64_t key; int32_t rank, id; } pslot;

/* What a tokenizer.json adds to the plain byte-level BPE (datasets/tokjson.c
 * parses it, bpe.c encodes and decodes by it). HF's BPE differs from
 * tiktoken's in three ways that change ids: only the listed merges apply
 * (not every split of a token), a word that is a token is kept whole only
 * with ignore_merges, and text is split at added tokens and normalised per
 * section before pre-tokenisation. */
enum { FL_NORM_NFC, FL_NORM_PREPEND, FL_NORM_REPLACE, FL_NORM_PREPEND_ABSENT, FL_NORM_PREPEND_ABSENT_FIRST };
typedef struct { int kind; char *a, *b; size_t al, bl; } fl_norm_step; /* a: the prepended / searched text, b: its replacement */
typedef struct { const unsigned char *p; uint32_t len; int32_t id; unsigned char lstrip, rstrip; } fl_added;
typedef struct fl_hf {
    int char_level;           /* SentencePiece-style: symbols are characters, unknown ones <0xNN> or unk */
    int ignore_merges, fuse_unk;
    int32_t unk;              /* -1: none */
    int32_t fallback[256];    /* ids of <0xNN>, -1 where absent (char_level with byte_fallback only) */
    unsigned char *kind;      /* per id: 0 unassigned, 1 in model.vocab, 2 an added token only */
    int16_t *byte_of;         /* per id: the byte of a <0xNN> fallback token, else -1 */
    fl_norm_step *norm;       /* the normalizer (and Metaspace's text edits), in order */
    int n_norm;
    fl_added *added;          /* split out of the text before anything else, sorted by first byte */
    int n_added;
    int astart[257];          /* added[astart[b] .. astart[b+1]) start with byte b */
    int meta;                 /* decoding turns "\u2581" into a space (decoder Replace / Metaspace) */
    int32_t prefix[8], suffix[8]; /* ids the post-processor / add_bos_token put around a text */
    int n_prefix, n_suffix;
    int strip_lead;           /* decoding: drop one leading space (the prepended U+2581) */
    int word_split;           /* no token has U+2581 after another character: cut pieces before such a U+2581 (bpe.c) */
} fl_hf; /* key = left<<32 | right, +1 so 0 is empty */

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
    fl_hf *hf;              /* non-NULL: loaded from HF's tokenizer.json, encoded by its rules (tokjson.c) */
};

/* Compiles GPT-2's pre-tokenisation regex into t->re; fl_bpe_compile_pattern
 * any PCRE2 pattern (named `what` in errors). */
int fl_bpe_compile_re(fl_bpe *t);
int fl_bpe_compile_pattern(fl_bpe *t, const char *pattern, const char *what);
/* GPT-2's pattern with JavaScript's \s (js-tiktoken's and HF's JS ByteLevel). */
extern const char *FL_GPT2_PATTERN;
/* The open-addressing lookups: bytes -> id (-1: none), (left, right) -> slot. */
int fl_bpe_tmap_find(const fl_bpe *t, const unsigned char *p, size_t n);
int fl_bpe_tmap_build(fl_bpe *t, const unsigned char *skip);
/* HF's merge table: t->merges[m] = (left, right) makes res[m]; a pair listed
 * twice keeps its last rank (as HF's Rust and JS builds of the table do). */
int fl_bpe_pmap_merges(fl_bpe *t, const int32_t *res);
/* Loads DIR's tokenizer.json (+ tokenizer_config.json if present). */
int fl_tokjson_load(fl_bpe *t, const char *dir);
void fl_hf_free(fl_hf *h);
/* Byte-level token name (GPT-2's bytes_to_unicode) -> bytes: the count, or -1
 * when a character is outside the map. */
long fl_bpe_unmap_token(const char *s, size_t n, unsigned char *out);
/* The UTF-8 sequence at p (n > 0 bytes): its length and *cp its code point,
 * or 1 and *cp = -1 for an invalid byte (overlong, surrogate, truncated). */
size_t fl_utf8_at(const unsigned char *p, size_t n, int *cp);
/* NFC of n bytes of UTF-8 (invalid bytes kept where they are); *out malloc'd. */
int fl_hf_nfc(const unsigned char *s, size_t n, unsigned char **out, size_t *outn);
/* Finishes a tokenizer whose vocabulary, ranks and merges are set: the maps,
 * the byte tokens, <|endoftext|>, the regex. Errors start with `what`. */
int fl_bpe_finish(fl_bpe *t, const char *what);
/* Pre-tokenisation: calls fn(ctx, piece, len) for every piece in order;
 * the pieces cover every byte of the text (see bpe.c). Needs t->re only. */
typedef int (*fl_bpe_piece_fn)(void *ctx, const unsigned char *p, size_t n);
int fl_bpe_pretokenize(const fl_bpe *t, const unsigned char *text, size_t len, fl_bpe_piece_fn fn, void *ctx);

#endif
