#ifndef FL_VERSION_H
#define FL_VERSION_H
/* `git describe --always --dirty` at build time, or "unknown". */
const char *fl_commit(void);
#endif
