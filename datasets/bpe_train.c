/* Learning a byte-level BPE from a corpus (fl_bpe_train, bpe.h).
 *
 * The pre-tokenisation of encoding (bpe.c), unique pieces counted, then the
 * classic incremental algorithm: pair counts over the unique words weighted
 * by their counts, for each pair the list of words holding it, and a
 * max-heap keyed by (count, then the lexicographically smallest pair of token
 * byte strings) with lazy invalidation. Only the words that hold the merged
 * pair are touched by a merge. The result is a tokenizer like a loaded one:
 * the merges in order, a token's rank its first merge, <|endoftext|> last. */
#include "bpe_impl.h"
#include "model/clock.h"
#include <stdio.h>

/* unique words: bytes (pointing into the texts) -> index */
typedef struct { bkey k; int32_t idx; } wslot;
typedef struct {
    wslot *slot;
    size_t cap, n;
    const unsigned char **wp;
    uint32_t *wl;
    int64_t *cnt;
    size_t wcap;
} wcount;

static int wc_add(void *vctx, const unsigned char *p, size_t n) {
    wcount *w = vctx;
    if (n < 2) return 0; /* no pairs */
    if (n > UINT32_MAX / 2) return fl_err("bpe: a piece of %zu bytes is too long to train on", n);
    if ((w->n + 1) * 2 > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 1 << 16;
        if (bkey_regrow((void **)&w->slot, w->cap, cap, sizeof *w->slot) != 0) return -1;
        w->cap = cap;
    }
    uint32_t h = (uint32_t)hash_bytes(p, n);
    size_t i = bkey_probe(w->slot, w->cap, sizeof *w->slot, p, n, h);
    if (w->slot[i].k.p) {
        w->cnt[w->slot[i].idx]++;
        return 0;
    }
    size_t k = w->n;
    if (k == w->wcap) {
        size_t c = w->wcap ? w->wcap * 2 : 1 << 15;
        const unsigned char **wp = realloc(w->wp, c * sizeof *wp);
        if (wp) w->wp = wp;
        uint32_t *wl = realloc(w->wl, c * sizeof *wl);
        if (wl) w->wl = wl;
        int64_t *cnt = realloc(w->cnt, c * sizeof *cnt);
        if (cnt) w->cnt = cnt;
        if (!wp || !wl || !cnt) return fl_err("bpe: out of memory");
        w->wcap = c;
    }
    w->wp[k] = p;
    w->wl[k] = (uint32_t)n;
    w->cnt[k] = 1;
    w->slot[i] = (wslot){ { p, (uint32_t)n, h }, (int32_t)k };
    w->n++;
    return 0;
}

typedef struct {
    int32_t a, b;
    int64_t cnt;
    int32_t *where; /* word indices, ascending, possibly stale */
    uint32_t nw, cw;
    int touched;
} pairrec;

typedef struct {
    /* tokens */
    unsigned char *blob;
    size_t bn, bcap;
    uint32_t *off, *len;
    size_t ntok, tcap;
    int32_t *tmap; /* bytes -> id, slot = id + 1 */
    size_t tmcap;
    /* words */
    int32_t **sym;
    int32_t *wlen;
    int64_t *wcnt;
    size_t nwords;
    /* pairs */
    pairrec *pr;
    size_t npr, prcap;
    int32_t *pslot; /* pair map: slot = pair index + 1 */
    uint64_t *pkey;
    size_t pscap;
    /* heap of (count, pair index) */
    struct { int64_t cnt; int32_t p; } *heap;
    size_t hn, hcap;
    /* pairs whose counts grew during the current merge */
    int32_t *touched;
    size_t ntouched, tcap2;
    /* merges: left, right, result */
    int32_t (*merges)[3];
    size_t nm, mcap;
} trainer;

static int tr_tok_cmp(const trainer *T, int32_t x, int32_t y) {
    uint32_t lx = T->len[x], ly = T->len[y];
    int c = memcmp(T->blob + T->off[x], T->blob + T->off[y], lx < ly ? lx : ly);
    return c ? c : (lx < ly ? -1 : lx > ly ? 1 : 0);
}

/* heap order: higher count first, then the smaller (left bytes, right bytes) */
static int tr_before(const trainer *T, int64_t ca, int32_t pa, int64_t cb, int32_t pb) {
    if (ca != cb) return ca > cb;
    int c = tr_tok_cmp(T, T->pr[pa].a, T->pr[pb].a);
    if (c) return c < 0;
    return tr_tok_cmp(T, T->pr[pa].b, T->pr[pb].b) < 0;
}

static int tr_hpush(trainer *T, int64_t cnt, int32_t p) {
    if (grow((void **)&T->heap, &T->hcap, T->hn + 1, sizeof *T->heap) != 0) return -1;
    size_t i = T->hn++;
    while (i > 0) {
        size_t q = (i - 1) / 2;
        if (!tr_before(T, cnt, p, T->heap[q].cnt, T->heap[q].p)) break;
        T->heap[i] = T->heap[q];
        i = q;
    }
    T->heap[i].cnt = cnt;
    T->heap[i].p = p;
    return 0;
}

static void tr_hpop(trainer *T, int64_t *cnt, int32_t *p) {
    *cnt = T->heap[0].cnt;
    *p = T->heap[0].p;
    int64_t ec = T->heap[--T->hn].cnt;
    int32_t ep = T->heap[T->hn].p;
    size_t i = 0, n = T->hn;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && tr_before(T, T->heap[c + 1].cnt, T->heap[c + 1].p, T->heap[c].cnt, T->heap[c].p)) c++;
        if (!tr_before(T, T->heap[c].cnt, T->heap[c].p, ec, ep)) break;
        T->heap[i] = T->heap[c];
        i = c;
    }
    if (n > 0) T->heap[i].cnt = ec, T->heap[i].p = ep;
}

static int tr_pair_rehash(trainer *T) {
    size_t cap = T->pscap ? T->pscap * 2 : 1 << 16;
    int32_t *s = calloc(cap, sizeof *s);
    uint64_t *k = calloc(cap, sizeof *k);
    if (!s || !k) { free(s); free(k); return fl_err("bpe: out of memory"); }
    for (size_t i = 0; i < T->pscap; i++) {
        if (!T->pslot[i]) continue;
        size_t j = hash_pair(T->pkey[i]) & (cap - 1);
        while (s[j]) j = (j + 1) & (cap - 1);
        s[j] = T->pslot[i];
        k[j] = T->pkey[i];
    }
    free(T->pslot);
    free(T->pkey);
    T->pslot = s;
    T->pkey = k;
    T->pscap = cap;
    return 0;
}

/* index of pair (a, b), created with count 0 if new; -1 on error */
static int32_t tr_pair(trainer *T, int32_t a, int32_t b) {
    if ((T->npr + 1) * 2 > T->pscap && tr_pair_rehash(T) != 0) return -1;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t mask = T->pscap - 1, i = hash_pair(key) & mask;
    for (; T->pslot[i]; i = (i + 1) & mask)
        if (T->pkey[i] == key) return T->pslot[i] - 1;
    if (grow((void **)&T->pr, &T->prcap, T->npr + 1, sizeof *T->pr) != 0) return -1;
    int32_t p = (int32_t)T->npr++;
    memset(&T->pr[p], 0, sizeof T->pr[p]);
    T->pr[p].a = a;
    T->pr[p].b = b;
    T->pslot[i] = p + 1;
    T->pkey[i] = key;
    return p;
}

static int tr_where_add(pairrec *r, int32_t w) {
    if (r->nw && r->where[r->nw - 1] == w) return 0;
    if (r->nw == r->cw) {
        uint32_t c = r->cw ? r->cw * 2 : 4;
        int32_t *q = realloc(r->where, sizeof *q * c);
        if (!q) return fl_err("bpe: out of memory");
        r->where = q;
        r->cw = c;
    }
    r->where[r->nw++] = w;
    return 0;
}

static int32_t tr_tok_find(const trainer *T, const unsigned char *p, size_t n) {
    uint32_t h = (uint32_t)hash_bytes(p, n);
    size_t mask = T->tmcap - 1;
    for (size_t i = h & mask; T->tmap[i]; i = (i + 1) & mask) {
        int32_t id = T->tmap[i] - 1;
        if (T->len[id] == n && !memcmp(T->blob + T->off[id], p, n)) return id;
    }
    return -1;
}

static int tr_tok_add(trainer *T, const unsigned char *p, size_t n) {
    if (grow((void **)&T->blob, &T->bcap, T->bn + n, 1) != 0) return -1;
    if (grow((void **)&T->off, &T->tcap, T->ntok + 1, sizeof *T->off) != 0) return -1;
    uint32_t *l = realloc(T->len, sizeof *l * T->tcap);
    if (!l) return fl_err("bpe: out of memory");
    T->len = l;
    memmove(T->blob + T->bn, p, n); /* p may point into blob */
    int32_t id = (int32_t)T->ntok++;
    T->off[id] = (uint32_t)T->bn;
    T->len[id] = (uint32_t)n;
    T->bn += n;
    uint32_t h = (uint32_t)hash_bytes(T->blob + T->off[id], n);
    size_t mask = T->tmcap - 1, i = h & mask;
    while (T->tmap[i]) i = (i + 1) & mask;
    T->tmap[i] = id + 1;
    return id;
}

static void tr_free(trainer *T) {
    free(T->blob);
    free(T->off);
    free(T->len);
    free(T->tmap);
    if (T->sym) free(T->sym[0]);
    free(T->sym);
    free(T->wlen);
    free(T->wcnt);
    for (size_t i = 0; i < T->npr; i++) free(T->pr[i].where);
    free(T->pr);
    free(T->pslot);
    free(T->pkey);
    free(T->heap);
    free(T->touched);
    free(T->merges);
}

/* Apply merge (a, b) -> t to word w, keeping the pair counts exact. */
static int tr_merge_word(trainer *T, int32_t w, int32_t a, int32_t b, int32_t t) {
    int32_t *s = T->sym[w];
    int32_t n = T->wlen[w];
    int64_t c = T->wcnt[w];
    int has = 0;
    for (int32_t i = 0; i + 1 < n && !has; i++) has = s[i] == a && s[i + 1] == b;
    if (!has) return 0; /* stale entry of the word list */
    for (int32_t i = 0; i + 1 < n; i++) {
        int32_t p = tr_pair(T, s[i], s[i + 1]);
        if (p < 0) return -1;
        T->pr[p].cnt -= c;
    }
    int32_t k = 0;
    for (int32_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) s[k++] = t, i += 2;
        else s[k++] = s[i++];
    }
    T->wlen[w] = n = k;
    for (int32_t i = 0; i + 1 < n; i++) {
        int32_t p = tr_pair(T, s[i], s[i + 1]);
        if (p < 0) return -1;
        pairrec *r = &T->pr[p];
        r->cnt += c;
        if (s[i] == t || s[i + 1] == t) {
            if (tr_where_add(r, w) != 0) return -1;
            if (!r->touched) {
                r->touched = 1;
                if (grow((void **)&T->touched, &T->tcap2, T->ntouched + 1, sizeof *T->touched) != 0) return -1;
                T->touched[T->ntouched++] = p;
            }
        }
    }
    return 0;
}

int fl_bpe_train(fl_bpe **out, const char *const *texts, const size_t *lens, int n, int vocab_size, int verbose) {
    *out = NULL;
    if (vocab_size < 257) return fl_err("bpe: a vocabulary of %d is too small: 256 byte tokens + <|endoftext|> at least", vocab_size);
    if (n <= 0) return fl_err("bpe: no text to train on");
    double t0 = fl_wall_s();
    fl_bpe *re = calloc(1, sizeof *re);
    if (!re) return fl_err("bpe: out of memory");
    if (fl_bpe_compile_re(re) != 0) { fl_bpe_free(re); return -1; }

    /* 1. unique pieces and their counts */
    wcount wc = { 0 };
    size_t total = 0;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        rc = fl_bpe_pretokenize(re, (const unsigned char *)texts[i], lens[i], wc_add, &wc);
        total += lens[i];
    }
    fl_bpe_free(re);
    free(wc.slot);
    trainer T = { 0 };
    if (rc != 0) goto fail;
    if (verbose)
        fprintf(stderr, "bpe: %zu bytes in %d texts, %zu distinct words of 2+ bytes\n", total, n, wc.n);

    /* 2. the byte tokens */
    T.tmcap = 16;
    while (T.tmcap < (size_t)vocab_size * 2 + 64) T.tmcap *= 2;
    T.tmap = calloc(T.tmcap, sizeof *T.tmap);
    if (!T.tmap) { rc = fl_err("bpe: out of memory"); goto fail; }
    for (int b = 0; b < 256; b++) {
        unsigned char c = (unsigned char)b;
        if (tr_tok_add(&T, &c, 1) < 0) { rc = -1; goto fail; }
    }

    /* 3. words as byte symbols, and the initial pair counts */
    size_t nsym = 0;
    for (size_t w = 0; w < wc.n; w++) nsym += wc.wl[w];
    T.nwords = wc.n;
    T.sym = malloc(sizeof *T.sym * (wc.n ? wc.n : 1));
    T.wlen = malloc(sizeof *T.wlen * (wc.n ? wc.n : 1));
    T.wcnt = wc.cnt;
    wc.cnt = NULL;
    int32_t *arena = malloc(sizeof *arena * (nsym ? nsym : 1));
    if (!T.sym || !T.wlen || !arena) { free(arena); rc = fl_err("bpe: out of memory"); goto fail; }
    T.sym[0] = arena;
    for (size_t w = 0, k = 0; w < wc.n; w++) {
        T.sym[w] = arena + k;
        T.wlen[w] = (int32_t)wc.wl[w];
        for (uint32_t i = 0; i < wc.wl[w]; i++) arena[k + i] = wc.wp[w][i];
        k += wc.wl[w];
    }
    free(wc.wp);
    free(wc.wl);
    wc.wp = NULL;
    wc.wl = NULL;
    for (size_t w = 0; w < T.nwords; w++) {
        for (int32_t i = 0; i + 1 < T.wlen[w]; i++) {
            int32_t p = tr_pair(&T, T.sym[w][i], T.sym[w][i + 1]);
            if (p < 0 || tr_where_add(&T.pr[p], (int32_t)w) != 0) { rc = -1; goto fail; }
            T.pr[p].cnt += T.wcnt[w];
        }
    }
    for (size_t p = 0; p < T.npr; p++)
        if (tr_hpush(&T, T.pr[p].cnt, (int32_t)p) != 0) { rc = -1; goto fail; }

    /* 4. merges */
    int target = vocab_size - 1; /* tokens before <|endoftext|> */
    while ((int)T.ntok < target) {
        int32_t p = -1;
        while (T.hn > 0) {
            int64_t c;
            int32_t q;
            tr_hpop(&T, &c, &q);
            if (T.pr[q].cnt <= 0) continue;
            if (T.pr[q].cnt != c) { /* stale entry: requeue with the current count */
                if (tr_hpush(&T, T.pr[q].cnt, q) != 0) { rc = -1; break; }
                continue;
            }
            p = q;
            break;
        }
        if (rc != 0) break;
        if (p < 0) {
            rc = fl_err("bpe: the training text allows only %zu tokens, fewer than the vocabulary of %d asked for "
                        "(more text, or a smaller vocabulary)", T.ntok + 1, vocab_size);
            break;
        }
        int32_t a = T.pr[p].a, b = T.pr[p].b;
        /* the new token's bytes; a string that already is a token keeps its id */
        size_t la = T.len[a], lb = T.len[b];
        unsigned char *cat = malloc(la + lb);
        if (!cat) { rc = fl_err("bpe: out of memory"); break; }
        memcpy(cat, T.blob + T.off[a], la);
        memcpy(cat + la, T.blob + T.off[b], lb);
        int32_t t = tr_tok_find(&T, cat, la + lb);
        if (t < 0) t = tr_tok_add(&T, cat, la + lb);
        free(cat);
        if (t < 0) { rc = -1; break; }
        if (grow((void **)&T.merges, &T.mcap, T.nm + 1, sizeof *T.merges) != 0) { rc = -1; break; }
        T.merges[T.nm][0] = a;
        T.merges[T.nm][1] = b;
        T.merges[T.nm][2] = t;
        T.nm++;
        /* the words holding (a, b); the list is detached first: no pair the
         * merge touches is (a, b) itself, since they all involve t */
        int32_t *where = T.pr[p].where;
        uint32_t nw = T.pr[p].nw;
        T.pr[p].where = NULL;
        T.pr[p].nw = T.pr[p].cw = 0;
        for (uint32_t i = 0; i < nw && rc == 0; i++)
            if (i == 0 || where[i] != where[i - 1]) rc = tr_merge_word(&T, where[i], a, b, t);
        free(where);
        if (rc != 0) break;
        T.pr[p].cnt = 0;
        /* requeue the pairs whose counts grew: those with t */
        for (size_t i = 0; i < T.ntouched && rc == 0; i++) {
            int32_t q = T.touched[i];
            T.pr[q].touched = 0;
            if (T.pr[q].cnt > 0) rc = tr_hpush(&T, T.pr[q].cnt, q);
        }
        T.ntouched = 0;
        if (rc != 0) break;
        if (verbose && (T.nm % 500 == 0 || (int)T.ntok == target))
            fprintf(stderr, "bpe: %zu merges, %zu tokens\n", T.nm, T.ntok);
    }
    if (rc != 0) goto fail;

    /* 5. the tokenizer: tokens in order, <|endoftext|> last */
    fl_bpe *t = calloc(1, sizeof *t);
    if (!t) { rc = fl_err("bpe: out of memory"); goto fail; }
    size_t nt = T.ntok + 1, el = strlen(EOT_TEXT);
    t->n_vocab = (int)nt;
    t->blob = malloc(T.bn + el);
    t->off = malloc(sizeof *t->off * nt);
    t->len = malloc(sizeof *t->len * nt);
    t->rank = malloc(sizeof *t->rank * nt);
    t->mergeable = calloc(nt, 1);
    t->merges = malloc(sizeof *t->merges * (T.nm ? T.nm : 1));
    if (!t->blob || !t->off || !t->len || !t->rank || !t->mergeable || !t->merges) {
        fl_bpe_free(t);
        rc = fl_err("bpe: out of memory");
        goto fail;
    }
    memcpy(t->blob, T.blob, T.bn);
    memcpy(t->blob + T.bn, EOT_TEXT, el);
    for (size_t i = 0; i < T.ntok; i++) t->off[i] = T.off[i], t->len[i] = T.len[i], t->rank[i] = -1;
    t->off[T.ntok] = (uint32_t)T.bn;
    t->len[T.ntok] = (uint32_t)el;
    t->rank[T.ntok] = -1;
    for (size_t m = 0; m < T.nm; m++) {
        t->merges[m][0] = T.merges[m][0];
        t->merges[m][1] = T.merges[m][1];
        if (t->rank[T.merges[m][2]] < 0) t->rank[T.merges[m][2]] = (int32_t)m;
    }
    t->n_merges = (int)T.nm;
    if (fl_bpe_finish(t, "bpe training") != 0) { fl_bpe_free(t); rc = -1; goto fail; }
    if (verbose) fprintf(stderr, "bpe: trained %d tokens (%zu merges) in %.2f s\n", t->n_vocab, T.nm, fl_wall_s() - t0);
    *out = t;
fail:
    free(wc.wp);
    free(wc.wl);
    free(wc.cnt);
    tr_free(&T);
    return rc;
}
