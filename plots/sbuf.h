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

#endif
