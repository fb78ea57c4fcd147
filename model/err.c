#include "err.h"
#include <stdarg.h>
#include <stdio.h>

static _Thread_local char g_msg[1024];

int fl_err(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return -1;
}

const char *fl_errmsg(void) { return g_msg; }
void fl_err_clear(void) { g_msg[0] = 0; }
