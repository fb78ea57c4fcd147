/* The commit this binary was built from (Makefile: build/commit.txt). */
#include "version.h"
#ifndef FL_COMMIT
#define FL_COMMIT "unknown"
#endif
const char *fl_commit(void) { return FL_COMMIT; }
