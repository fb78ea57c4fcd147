#include "sbuf.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reserve(fl_sbuf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) { fprintf(stderr, "freelunch: out of memory\n"); abort(); }
    b->s = s;
    b->cap = cap;
}

void fl_sb_putn(fl_sbuf *b, const char *s, size_t n) {
    reserve(b, n);
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

void fl_sb_puts(fl_sbuf *b, const char *s) { fl_sb_putn(b, s, strlen(s)); }

void fl_sb_printf(fl_sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n <= 0) return;
    reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

const char *fl_sb_str(const fl_sbuf *b) { return b->s ? b->s : ""; }

void fl_sb_free(fl_sbuf *b) {
    free(b->s);
    memset(b, 0, sizeof *b);
}
