/* Work shared between the cells of a study through the cache directory
 * (issue 12, "grids stop recomputing"; docs/ARCHITECTURE.md, "Shared work").
 *
 * Cells stay independent processes: nothing is passed from one to the
 * next but files in CACHE/share/KIND/KEY.bin, where KEY is the SHA-256 of
 * every input that can change the entry (fl_share_key: always the kind,
 * the format version and the bytes of the running binary, so a rebuilt
 * freelunch never reads an entry another build wrote), and the file is
 *
 *   "FLSHARE1"  kind (8 bytes, NUL-padded)  KEY (64 hex chars)
 *   payload ...  SHA-256 of every byte before it (32 bytes)
 *
 * An entry is written once, to a temporary file named by the writer's pid,
 * then renamed into place: two cells computing the same entry at once
 * (--jobs 2) both write a complete file and the last rename wins, with the
 * same bytes. A reader checks magic, kind, key and checksum; any mismatch
 * (or a payload its parser rejects) is a note on stderr (the cell's log)
 * and a miss: the work is done again and the entry rewritten, never
 * trusted. Failing to write an entry is a note too, never a failed cell. */
#ifndef FL_SHARE_H
#define FL_SHARE_H
#include "datasets/bpe.h"
#include "datasets/corpus.h"
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct { void *h; } fl_share_key;   /* an EVP_MD_CTX */

/* Starts a key for entries of `kind` ("prune", "tokens"); -1 with fl_err
 * when the binary cannot be read (callers then compute and share nothing). */
int fl_share_key_init(fl_share_key *k, const char *kind);
/* Adds one named input: its name, its length and its bytes (so no two
 * different sequences of inputs hash the same stream). */
void fl_share_key_add(fl_share_key *k, const char *name, const void *b, size_t n);
void fl_share_key_str(fl_share_key *k, const char *name, const char *v);   /* v may be NULL */
void fl_share_key_int(fl_share_key *k, const char *name, long long v);
/* Adds the whole of a file's bytes (a missing file adds "missing"). */
void fl_share_key_file(fl_share_key *k, const char *name, const char *path);
int fl_share_key_final(fl_share_key *k, char hex[65]);

/* CACHE/share/KIND/KEY.bin */
void fl_share_path(const char *cache, const char *kind, const char *hex, char *path, size_t n);

/* 1 and the payload (malloc'd, *buf; free it) when a valid entry exists;
 * 0 when it is missing or rejected (with a note naming the file). */
int fl_share_load(const char *cache, const char *kind, const char *hex, uint8_t **buf, const uint8_t **payload, size_t *n);

/* Streams an entry: begin, write..., commit (or abort on any failure of
 * the computation). Write failures are remembered and reported once, at
 * commit, as a note; commit returns 0 when the entry is in place. */
typedef struct {
    FILE *f;
    void *h;
    char tmp[4300], path[4200];
    int ok;
} fl_share_writer;
int fl_share_begin(fl_share_writer *w, const char *cache, const char *kind, const char *hex);
void fl_share_write(fl_share_writer *w, const void *b, size_t n);
int fl_share_commit(fl_share_writer *w);
void fl_share_abort(fl_share_writer *w);

/* The documents of a split encoded with tokenizer t (loaded from tokdir):
 * mode "docs" encodes each document alone (the calibration sampler's
 * input), "joined" the documents joined with "\n\n" as one (evaluation).
 * With cache != NULL the result is looked up in and stored to
 * CACHE/share/tokens under a key of the mode, the split's name, every
 * document's name and text and the tokenizer's vocab.json and merges.txt;
 * ids are checked against vocab (> 0). *docs[i] and *lens[i] for
 * i < *ndocs; free with fl_share_docs_free. */
int fl_share_tokenize(const char *cache, const char *mode, const fl_split *sp, const fl_bpe *t, const char *tokdir, int vocab,
                      int32_t ***docs, int64_t **lens, int *ndocs);
void fl_share_docs_free(int32_t **docs, int64_t *lens, int ndocs);

#endif
