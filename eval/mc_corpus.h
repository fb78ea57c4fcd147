/* Zero-shot tasks built from our own corpora, so that every study reports
 * an accuracy without a download. Both come from sotu-test (the addresses
 * of 2009-2021), cut into sentences and then into passages of
 * FL_CORPUS_PASSAGE consecutive sentences of one address:
 *
 *   lambada-sotu  LAMBADA-style: each passage, its trailing punctuation
 *                 dropped, in lambada_openai's layout {"text": ...}; the
 *                 task predicts the passage's last word from the rest
 *                 (accuracy of the greedy prediction, and its perplexity).
 *   cloze-sotu    for each passage followed by a sentence of the same
 *                 address: choose that next sentence among four, the other
 *                 three drawn (splitmix64, seed FL_CORPUS_SEED) from the
 *                 other addresses; the generic "mc" layout {"context",
 *                 "choices", "label"}, scored like HellaSwag.
 *
 * Sentences end at '.', '?' or '!' (closing quotes and brackets kept with
 * them) followed by a blank and then an upper-case letter, a digit or an
 * opening quote, unless the word before the '.' is a title or an initial
 * (Mr., Dr., U.S., ...). Deterministic: the same verified corpus gives the
 * same bytes. Written to CACHE/tasks/NAME.jsonl. */
#ifndef FL_MC_CORPUS_H
#define FL_MC_CORPUS_H
#include "eval/mc.h"
#include <stddef.h>

#define FL_CORPUS_PASSAGE 5
#define FL_CORPUS_SEED 17

typedef struct {
    const char *name;    /* lambada-sotu, cloze-sotu */
    const char *format;  /* the eval/mc_tasks.h format its file is in */
} fl_corpus_task;

extern const fl_corpus_task FL_CORPUS_TASKS[];
extern const int FL_CORPUS_NTASKS;
const fl_corpus_task *fl_corpus_task_find(const char *name);

/* Builds both files into CACHE/tasks (always, overwriting); items[i]
 * receives task i's item count when not NULL. */
int fl_corpus_tasks_build(const char *cache, int *items);
/* PATH of a corpus task's file, building the files first if it is missing. */
int fl_corpus_task_path(const char *cache, const fl_corpus_task *t, char *path, size_t n);

/* A task spec: a corpus task name, or FORMAT:FILE (eval/mc_tasks.h).
 * Check only the syntax and names; open loads it (a corpus task's file
 * built first when missing), the first `limit` items (<= 0: all). */
int fl_mc_spec_check(const char *spec);
int fl_mc_task_open(const char *spec, const char *cache, int limit, fl_mc_task *t);
#endif
