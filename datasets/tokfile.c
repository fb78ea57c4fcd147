/* llm.c token files. See tokfile.h. The header is 256 int32s; only the first
 * three mean something (magic, version, token count), the rest are zero. We
 * insist the file is exactly header + count tokens, as llm.c's loader does,
 * so a half-written or concatenated file is caught here, not in training. */
#include "tokfile.h"
#include "model/fileio.h"
#include "model/err.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HEADER_INTS 256
#define HEADER_BYTES (HEADER_INTS * 4)
#define VERSION16 1
#define VERSION32 7

/* Reading converts this many tokens at a time, so a multi-GB file never
 * needs a second full-size buffer. */
#define CHUNK (1 << 20)

int fl_tokfile_read(const char *path, int vocab, int32_t **tokens, int64_t *n) {
    *tokens = NULL;
    *n = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return fl_err("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return fl_err("%s: not a regular file", path);
    }
    int64_t size = (int64_t)st.st_size;
    int32_t h[HEADER_INTS];
    if (size < HEADER_BYTES || fread(h, 4, HEADER_INTS, fp) != HEADER_INTS) {
        fclose(fp);
        return fl_err("%s: truncated header: %lld bytes, a token file starts with a %d-byte header",
                      path, (long long)size, HEADER_BYTES);
    }
    int elem;
    if (h[0] == FL_TOK_MAGIC16) elem = 2;
    else if (h[0] == FL_TOK_MAGIC32) elem = 4;
    else {
        fclose(fp);
        return fl_err("%s: bad magic %d: not an llm.c token file (expected %d, or %d for uint32 tokens)",
                      path, h[0], FL_TOK_MAGIC16, FL_TOK_MAGIC32);
    }
    int want_version = elem == 2 ? VERSION16 : VERSION32;
    if (h[1] != want_version) {
        fclose(fp);
        return fl_err("%s: bad version %d for magic %d (expected %d)", path, h[1], h[0], want_version);
    }
    int64_t count = h[2];
    if (count < 0) {
        fclose(fp);
        return fl_err("%s: negative token count %lld in the header", path, (long long)count);
    }
    int64_t avail = (size - HEADER_BYTES) / elem;
    if (count > avail) {
        fclose(fp);
        return fl_err("%s: header count %lld tokens is beyond the file size (%lld bytes hold %lld tokens); truncated?",
                      path, (long long)count, (long long)size, (long long)avail);
    }
    if (HEADER_BYTES + count * elem != size) {
        fclose(fp);
        return fl_err("%s: %lld bytes after the %lld tokens the header announces; corrupt or concatenated file",
                      path, (long long)(size - HEADER_BYTES - count * elem), (long long)count);
    }

    int32_t *out = malloc(sizeof(int32_t) * (size_t)(count > 0 ? count : 1));
    void *buf = malloc((size_t)CHUNK * (size_t)elem);
    if (!out || !buf) {
        free(out); free(buf); fclose(fp);
        return fl_err("%s: out of memory for %lld tokens", path, (long long)count);
    }
    for (int64_t i0 = 0; i0 < count; i0 += CHUNK) {
        size_t k = (size_t)(count - i0 < CHUNK ? count - i0 : CHUNK);
        if (fread(buf, (size_t)elem, k, fp) != k) {
            free(out); free(buf); fclose(fp);
            return fl_err("%s: truncated: read failed at token %lld", path, (long long)i0);
        }
        for (size_t j = 0; j < k; j++) {
            /* uint32 ids above INT32_MAX cannot be an int32 token: as bad as >= vocab */
            uint32_t id = elem == 2 ? ((const uint16_t *)buf)[j] : ((const uint32_t *)buf)[j];
            if ((vocab > 0 && id >= (uint32_t)vocab) || id > INT32_MAX) {
                free(out); free(buf); fclose(fp);
                if (vocab > 0)
                    return fl_err("%s: token %lld has id %u, outside the vocabulary of %d (a token file for another tokenizer?)",
                                  path, (long long)(i0 + (int64_t)j), id, vocab);
                return fl_err("%s: token %lld has id %u, beyond int32", path, (long long)(i0 + (int64_t)j), id);
            }
            out[i0 + (int64_t)j] = (int32_t)id;
        }
    }
    free(buf);
    fclose(fp);
    *tokens = out;
    *n = count;
    return 0;
}

int fl_tokfile_write(const char *path, const int32_t *tokens, int64_t n) {
    if (n < 0 || n > INT32_MAX)
        return fl_err("%s: %lld tokens do not fit the header's int32 count", path, (long long)n);
    int elem = 2;
    for (int64_t i = 0; i < n; i++) {
        if (tokens[i] < 0) return fl_err("%s: token %lld has negative id %d", path, (long long)i, tokens[i]);
        if (tokens[i] > 65535) elem = 4;
    }
    int32_t h[HEADER_INTS] = { 0 };
    h[0] = elem == 2 ? FL_TOK_MAGIC16 : FL_TOK_MAGIC32;
    h[1] = elem == 2 ? VERSION16 : VERSION32;
    h[2] = (int32_t)n;

    char *tmp;
    FILE *fp = fl_tmp_open(path, &tmp);
    if (!fp) return -1;
    int ok = fwrite(h, 4, HEADER_INTS, fp) == HEADER_INTS;
    uint8_t *buf = malloc((size_t)CHUNK * (size_t)elem);
    for (int64_t i0 = 0; ok && i0 < n; i0 += CHUNK) {
        size_t k = (size_t)(n - i0 < CHUNK ? n - i0 : CHUNK);
        for (size_t j = 0; j < k; j++) {
            if (elem == 2) ((uint16_t *)buf)[j] = (uint16_t)tokens[i0 + (int64_t)j];
            else ((uint32_t *)buf)[j] = (uint32_t)tokens[i0 + (int64_t)j];
        }
        ok = fwrite(buf, (size_t)elem, k, fp) == k;
    }
    free(buf);
    return fl_tmp_commit(fp, tmp, path, ok);
}
