/* llm.c token files: a 256 x int32 header (magic 20240520, version 1, token
 * count; or magic 20240801, version 7 for uint32 tokens), then the tokens as
 * uint16 (or uint32). */
#ifndef FL_TOKFILE_H
#define FL_TOKFILE_H
#include <stdint.h>

#define FL_TOK_MAGIC16 20240520
#define FL_TOK_MAGIC32 20240801

/* Reads every token into a malloc'd array (*tokens, free with free()).
 * Errors name the file: bad magic/version, count beyond the file size,
 * truncated. If vocab > 0, an id >= vocab is an error too. */
int fl_tokfile_read(const char *path, int vocab, int32_t **tokens, int64_t *n);
/* Writes uint16 tokens when every id < 65536, else the uint32 variant;
 * through path.tmp + rename. */
int fl_tokfile_write(const char *path, const int32_t *tokens, int64_t n);

#endif
