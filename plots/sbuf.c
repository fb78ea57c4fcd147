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

int fl_utf8_len(const char *s) {
    const unsigned char *u = (const unsigned char *)s;
    if (u[0] < 0x80) return 1;
    int n = u[0] >= 0xf0 ? 4 : u[0] >= 0xe0 ? 3 : u[0] >= 0xc0 ? 2 : 0;
    if (!n || u[0] > 0xf4 || u[0] == 0xc0 || u[0] == 0xc1) return 0;
    unsigned cp = u[0] & (0x7f >> n);
    for (int i = 1; i < n; i++) {
        if ((u[i] & 0xc0) != 0x80) return 0;   /* also stops at the NUL */
        cp = cp << 6 | (u[i] & 0x3f);
    }
    static const unsigned MIN[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (cp < MIN[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

size_t fl_bprintf(char *buf, size_t cap, size_t len, const char *fmt, ...) {
    if (!cap) return 0;
    if (len >= cap) len = cap - 1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + len, cap - len, fmt, ap);
    va_end(ap);
    if (n < 0) { buf[len] = 0; return len; }
    if ((size_t)n < cap - len) return len + (size_t)n;
    /* cut: drop a last character the cut left incomplete */
    size_t end = cap - 1, start = end;
    while (start > len && ((unsigned char)buf[start - 1] & 0xc0) == 0x80) start--;
    if (start > len) {
        start--;   /* the lead byte (or an ASCII byte) of the last character */
        if (fl_utf8_len(buf + start) == 0) end = start;
    }
    buf[end] = 0;
    return end;
}
