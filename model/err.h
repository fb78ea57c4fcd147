/* Error reporting: a failing function stores one message line and returns -1.
 * The CLI prints that line (it already names the file and the problem). */
#ifndef FL_ERR_H
#define FL_ERR_H

/* Set the message (printf-style) and return -1, so callers can write
 * `return fl_err("%s: truncated header", path);`. */
int fl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The last message set in this thread ("" if none). */
const char *fl_errmsg(void);
void fl_err_clear(void);

#endif
