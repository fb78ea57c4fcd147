/* The calibration sampler (step 1 of a grid cell, docs/ARCHITECTURE.md): n
 * windows of seqlen tokens from one split, each taken whole from one document
 * that has at least seqlen tokens, at a random offset; documents shorter than
 * that are skipped. Window i: a document drawn uniformly from the qualifying
 * ones, then an offset drawn uniformly from [0, len - seqlen]; draws are
 * independent (a document can give several windows, which may overlap).
 *
 * Random numbers: splitmix64 (Steele, Lea, Flood 2014): state += 0x9e3779b97f4a7c15,
 * then the usual xor-shift-multiply finaliser; the state starts at the seed.
 * A value below a bound b is drawn by rejection (drop draws >= the largest
 * multiple of b that fits in 2^64, then take the remainder), so it is
 * exactly uniform. The same seed, split, tokenizer, n and seqlen give the
 * same windows on every machine. */
#ifndef FL_CALIB_H
#define FL_CALIB_H
#include "datasets/bpe.h"
#include "datasets/corpus.h"
#include "model/rng.h"   /* fl_splitmix64, fl_rand_below */
#include <stdint.h>

typedef struct {
    int n, seqlen;
    int32_t *tokens; /* n * seqlen: window i at tokens + i * seqlen */
    int *doc;        /* window i came from document doc[i] (index in the split) */
    int64_t *offset; /* ... at token offset offset[i] of that document */
} fl_calib;


/* The sampler on documents already tokenized (docs[i] has lens[i] tokens).
 * `what` names the source in errors (a split name or a file). Error when
 * n < 1, seqlen < 1, no document has seqlen tokens, or n exceeds the number
 * of distinct windows (the sum of len - seqlen + 1 over the documents). */
int fl_calib_sample_docs(const int32_t *const *docs, const int64_t *lens, int ndocs, int n, int seqlen, uint64_t seed,
                         const char *what, fl_calib *out);
/* Tokenizes every document of the split with fl_bpe_encode (no <|endoftext|>
 * added), then samples; doc[i] indexes s->docs. */
int fl_calib_sample_split(const fl_split *s, const fl_bpe *tok, int n, int seqlen, uint64_t seed, fl_calib *out);
/* A token file (llm.c format) as one single document; vocab > 0 checks ids. */
int fl_calib_sample_file(const char *path, int vocab, int n, int seqlen, uint64_t seed, fl_calib *out);
/* The windows, in order, as one llm.c token file (temp file + rename). */
int fl_calib_write(const fl_calib *c, const char *path);
void fl_calib_free(fl_calib *c);

#endif
