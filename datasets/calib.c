/* The calibration sampler; see calib.h for the rules and the generator. */
#include "calib.h"
#include "datasets/tokfile.h"
#include "model/err.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


void fl_calib_free(fl_calib *c) {
    if (!c) return;
    free(c->tokens);
    free(c->doc);
    free(c->offset);
    memset(c, 0, sizeof *c);
}

int fl_calib_sample_docs(const int32_t *const *docs, const int64_t *lens, int ndocs, int n, int seqlen, uint64_t seed,
                         const char *what, fl_calib *out) {
    memset(out, 0, sizeof *out);
    if (n < 1) return fl_err("%s: calibration needs at least one window (n = %d)", what, n);
    if (seqlen < 1) return fl_err("%s: calibration window length must be at least 1 (seqlen = %d)", what, seqlen);
    int *q = malloc((size_t)(ndocs > 0 ? ndocs : 1) * sizeof *q);
    if (!q) return fl_err("%s: out of memory", what);
    int nq = 0;
    int64_t longest = 0, starts = 0;
    for (int i = 0; i < ndocs; i++) {
        if (lens[i] > longest) longest = lens[i];
        if (lens[i] >= seqlen) { q[nq++] = i; starts += lens[i] - seqlen + 1; }
    }
    if (nq == 0) {
        free(q);
        return fl_err("%s: no document has at least %d tokens for a calibration window (%d documents, the longest has %lld "
                      "tokens); use a smaller seqlen",
                      what, seqlen, ndocs, (long long)longest);
    }
    /* Draws are with replacement, so any n could be served, but the buffer
     * is n * seqlen tokens: more windows than the data has distinct starts
     * can only repeat it, and would let an option size memory unboundedly. */
    if (n > starts) {
        free(q);
        return fl_err("%s: %d calibration windows of %d tokens requested, but the data has only %lld distinct windows; "
                      "use at most %lld samples or more data",
                      what, n, seqlen, (long long)starts, (long long)starts);
    }
    out->n = n;
    out->seqlen = seqlen;
    out->tokens = malloc((size_t)n * (size_t)seqlen * sizeof *out->tokens);
    out->doc = malloc((size_t)n * sizeof *out->doc);
    out->offset = malloc((size_t)n * sizeof *out->offset);
    if (!out->tokens || !out->doc || !out->offset) {
        free(q);
        fl_calib_free(out);
        return fl_err("%s: out of memory for %d windows of %d tokens", what, n, seqlen);
    }
    uint64_t st = seed;
    for (int i = 0; i < n; i++) {
        int d = q[fl_rand_below(&st, (uint64_t)nq)];
        int64_t off = (int64_t)fl_rand_below(&st, (uint64_t)(lens[d] - seqlen + 1));
        out->doc[i] = d;
        out->offset[i] = off;
        memcpy(out->tokens + (size_t)i * seqlen, docs[d] + off, (size_t)seqlen * sizeof *out->tokens);
    }
    free(q);
    return 0;
}

int fl_calib_sample_split(const fl_split *s, const fl_bpe *tok, int n, int seqlen, uint64_t seed, fl_calib *out) {
    memset(out, 0, sizeof *out);
    if (s->n < 1) return fl_err("split %s is empty: nothing to calibrate on", s->name);
    int32_t **docs = calloc((size_t)s->n, sizeof *docs);
    int64_t *lens = calloc((size_t)s->n, sizeof *lens);
    int rc = docs && lens ? 0 : fl_err("split %s: out of memory", s->name);
    for (int i = 0; i < s->n && rc == 0; i++) {
        rc = fl_bpe_encode(tok, s->docs[i].text, s->docs[i].len, &docs[i], &lens[i]);
        if (rc != 0) {
            char msg[1100];
            snprintf(msg, sizeof msg, "%s", fl_errmsg());
            fl_err("split %s, document %s: %s", s->name, s->docs[i].name, msg);
        }
    }
    if (rc == 0) {
        char what[64];
        snprintf(what, sizeof what, "split %s", s->name);
        rc = fl_calib_sample_docs((const int32_t *const *)docs, lens, s->n, n, seqlen, seed, what, out);
    }
    for (int i = 0; docs && i < s->n; i++) free(docs[i]);
    free(docs);
    free(lens);
    return rc;
}

int fl_calib_sample_file(const char *path, int vocab, int n, int seqlen, uint64_t seed, fl_calib *out) {
    memset(out, 0, sizeof *out);
    int32_t *t = NULL;
    int64_t nt = 0;
    if (fl_tokfile_read(path, vocab, &t, &nt) != 0) return -1;
    const int32_t *d[1] = { t };
    int rc = fl_calib_sample_docs(d, &nt, 1, n, seqlen, seed, path, out);
    free(t);
    return rc;
}

int fl_calib_write(const fl_calib *c, const char *path) {
    return fl_tokfile_write(path, c->tokens, (int64_t)c->n * c->seqlen);
}
