/* The one training loop over calibration windows, shared by local
 * reconstruction (reconstructors/local.c) and every retraining baseline
 * (reconstructors/retrain.c, lora.c): `epochs` seeded shuffles of the
 * windows, micro-batches of `batch` windows, the optimiser step after every
 * `accum` micro-batches (and after the last), a divergence check on every
 * loss. What a micro-batch is (which buffers, which loss) is the caller's:
 * it passes a forward and a backward callback. Pretraining
 * (harness/cmd_pretrain.c) is not an epoch loop (it draws a random offset
 * per row and step, and resumes from checkpoints) and keeps its own. */
#ifndef FL_TRAIN_H
#define FL_TRAIN_H
#include <stdint.h>

typedef struct {
    int nwin, batch, epochs, accum;
    /* the shuffle's generator and its state (advanced across epochs) */
    uint64_t (*rng)(uint64_t *state);
    uint64_t state;
    /* forward of the windows idx[0..B): the batch's loss in *loss; 0 or -1 */
    int (*forward)(void *ctx, const int *idx, int B, double *loss);
    /* backward of the last forward (gradients added); 0 or -1 */
    int (*backward)(void *ctx, int B);
    /* the optimiser step over gradients summed over `accum` micro-batches */
    void (*step)(void *ctx, int accum);
    void *ctx;
    const char *what;     /* names the training in the divergence message: "WHAT diverged at step N (loss L)" */
    const char *label;    /* progress line label (on a terminal only), or NULL for none */
} fl_train_spec;

/* Runs the loop. *steps gets the optimiser steps taken; *diverged is set
 * on a non-finite loss (then -1 with the message). 0 or -1. */
int fl_train_loop(const fl_train_spec *s, int *steps, int *diverged);

/* The steps the loop will take: ceil(ceil(nwin / batch) * epochs / accum). */
int fl_train_steps(int nwin, int batch, int epochs, int accum);

/* One epoch's Fisher-Yates shuffle of perm[n] with generator rng. */
void fl_shuffle(int *perm, int n, uint64_t (*rng)(uint64_t *), uint64_t *state);

#endif
