/* A growable string: the plots' scripts and data files and the report are
 * built in memory and written whole (model/fileio.h), so a failure half way
 * leaves nothing behind. */
#ifndef FL_SBUF_H
#define FL_SBUF_H
#include <stddef.h>

typedef struct {
    char *s;        /* always NUL-terminated once anything was appended */
    size_t len, cap;
} fl_sbuf;

void fl_sb_printf(fl_sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fl_sb_puts(fl_sbuf *b, const char *s);
void fl_sb_putn(fl_sbuf *b, const char *s, size_t n);
/* The contents ("" when empty); valid until the next append. */
const char *fl_sb_str(const fl_sbuf *b);
void fl_sb_free(fl_sbuf *b);

/* printf into the fixed buffer BUF of CAP bytes that holds LEN bytes;
 * returns the new length, always < CAP. What does not fit is cut at a
 * character boundary, so the result stays valid UTF-8. snprintf's own return
 * value is the length it wanted, not the length written: summed up and used
 * as the next offset it runs past the buffer, which this never does. */
size_t fl_bprintf(char *buf, size_t cap, size_t len, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The length (1 to 4) of the well-formed UTF-8 character S starts with, or 0
 * for a byte that does not start one (stray continuation, overlong form,
 * surrogate, beyond U+10FFFF, cut short). */
int fl_utf8_len(const char *s);

#endif
