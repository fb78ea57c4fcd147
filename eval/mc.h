/* Zero-shot multiple-choice scoring the way EleutherAI's lm-evaluation-
 * harness scores its `multiple_choice` and `loglikelihood` tasks.
 *
 * An item has one request per choice: a context string and a continuation
 * string (lm-eval's target delimiter " " included). Each request is scored by
 * one forward pass over context + continuation: the sum of log p(token) over
 * the continuation's tokens, each given everything before it. When the pair
 * is longer than the window, the context is cut from the LEFT so that the
 * input is the last `window` tokens of (context + continuation) minus the
 * final one, as lm-eval's HFLM._loglikelihood_tokens does.
 *
 * Tokenisation follows lm-eval's _encode_pair: trailing whitespace of the
 * context moves to the front of the continuation, the whole string is
 * encoded once, and the continuation's tokens are those after the context's
 * own token count. An empty context is replaced by one prefix token
 * (the model's BOS, else the tokenizer's <|endoftext|>).
 *
 *   acc       argmax of the log-likelihoods is the label (first max wins,
 *             as numpy's argmax)
 *   acc_norm  argmax of loglik / len(choice string), the length counted in
 *             Unicode code points like Python's len()
 *   loglikelihood tasks (LAMBADA): acc = the greedy prediction equals the
 *             continuation at every token; ppl = exp(-mean loglik). */
#ifndef FL_MC_H
#define FL_MC_H
#include "datasets/bpe.h"
#include "model/model.h"
#include <stdint.h>

/* One (context, continuation) pair, as tokens. */
typedef struct {
    const int32_t *ctx;
    int nctx;
    const int32_t *cont;
    int ncont;
} fl_mc_req;

/* Log-likelihood of each request's continuation (ll[i]) and, when greedy is
 * not NULL, whether the argmax at every continuation position is that token.
 * window: the input length limit (<= the model's context); batch: rows per
 * forward pass, the rows of a batch padded to the longest one (requests
 * are run longest first so rows of a batch are of similar length).
 * A continuation longer than the window is scored over its last `window`
 * tokens, each given the window before it (lm-eval's slicing has no defined
 * result there; this keeps a long choice from stopping a study), and
 * counted in *cut when cut is not NULL. progress: plain lines on stderr. */
int fl_mc_loglik(fl_model *m, const fl_mc_req *r, int n, int window, int batch, int progress, double *ll,
                 uint8_t *greedy, int *cut);

/* lm-eval's _encode_pair for (ctx, cont) with tokenizer t; *ids holds the
 * context tokens then the continuation tokens (malloc'd). prefix: the token
 * standing for an empty context. */
int fl_mc_encode_pair(const fl_bpe *t, const char *ctx, const char *cont, int prefix, int32_t **ids, int *nctx,
                      int *ncont);

/* Python's len() of a UTF-8 string: code points (continuation bytes are
 * not counted). */
int fl_py_len(const char *s);

/* ---- tasks --------------------------------------------------------------- */

typedef enum { FL_MC_CHOICE = 0, FL_MC_LOGLIK } fl_mc_kind;

typedef struct {
    int n;          /* choices (1 for a loglikelihood task) */
    char **ctx;     /* [n] contexts (equal unless the task has multiple inputs) */
    char **cont;    /* [n] continuations, the target delimiter included */
    int *chars;     /* [n] lm-eval's len(choice) */
    int label;
} fl_mc_item;

typedef struct {
    char name[64];
    fl_mc_kind kind;
    int norm;       /* lm-eval reports acc_norm for this task */
    int n;
    fl_mc_item *items;
} fl_mc_task;

typedef struct {
    int n;
    double acc, acc_norm;   /* acc_norm NAN when !norm */
    double ppl;             /* loglikelihood tasks: exp(-mean loglik); else NAN */
    double seconds;
    int cut;                /* requests whose continuation was longer than the window */
} fl_mc_result;

/* Appends an item (copies the strings). */
int fl_mc_task_add(fl_mc_task *t, int n, const char *const *ctx, const char *const *cont,
                   const char *const *choice_for_len, int label);
void fl_mc_task_free(fl_mc_task *t);

/* Scores the first `limit` items (<= 0: all) of a task. ll_out (may be NULL)
 * receives a malloc'd array of every request's log-likelihood, item by item
 * in choice order; greedy_out likewise for loglikelihood tasks. */
int fl_mc_eval(fl_model *m, const fl_bpe *t, const fl_mc_task *task, int limit, int window, int batch,
               int progress, fl_mc_result *res, double **ll_out, uint8_t **greedy_out);

/* acc / acc_norm of one item from its log-likelihoods (the argmax; -1 if
 * the item has no choices). */
int fl_mc_argmax(const double *ll, const int *chars, int n, int norm);

#endif
