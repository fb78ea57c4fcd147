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

/* Compiles GPT-2's pre-tokenisation regex into t->re. */
int fl_bpe_compile_re(fl_bpe *t);
/* Finishes a tokenizer whose vocabulary, ranks and merges are set: the maps,
 * the byte tokens, <|endoftext|>, the regex. Errors start with `what`. */
int fl_bpe_finish(fl_bpe *t, const char *what);
/* Pre-tokenisation: calls fn(ctx, piece, len) for every piece in order;
 * the pieces cover every byte of the text (see bpe.c). Needs t->re only. */
typedef int (*fl_bpe_piece_fn)(void *ctx, const unsigned char *p, size_t n);
int fl_bpe_pretokenize(const fl_bpe *t, const unsigned char *text, size_t len, fl_bpe_piece_fn fn, void *ctx);

#endif
