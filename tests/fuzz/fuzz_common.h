/* Shared by the libFuzzer targets: a private scratch directory and file
 * writing. The parsers read paths (mmap, fopen), so every input is written
 * to a file first. FUZZ_SEED_DIR, when set, makes a target write its seed
 * inputs there (made by the harness's own writers) before fuzzing. */
#ifndef FL_FUZZ_COMMON_H
#define FL_FUZZ_COMMON_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[256];

static int fz_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    remove(p);
    return 0;
}
/* libFuzzer exits through exit() when done, so the scratch directory goes too */
static void fz_cleanup(void) {
    if (g_dir[0]) nftw(g_dir, fz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline const char *fz_dir(void) {
    if (!g_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(g_dir, sizeof g_dir, "%s/flfuzz.XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(g_dir)) { perror("mkdtemp"); abort(); }
        atexit(fz_cleanup);
    }
    return g_dir;
}

static inline void fz_path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", fz_dir(), name); }

static inline void fz_write(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); abort(); }
    if (n && fwrite(b, 1, n, f) != n) { perror(path); abort(); }
    fclose(f);
}

/* Splits data at each occurrence of the 4-byte separator; up to max pieces,
 * the last one takes the rest. Returns the count. */
#define FZ_SEP "\xff\x00\xfe\x01"
static inline int fz_split(const uint8_t *d, size_t n, const uint8_t **p, size_t *len, int max) {
    int k = 0;
    size_t start = 0;
    for (size_t i = 0; i + 4 <= n && k < max - 1; i++)
        if (memcmp(d + i, FZ_SEP, 4) == 0) {
            p[k] = d + start; len[k] = i - start; k++;
            start = i + 4;
            i += 3;
        }
    p[k] = d + start; len[k] = n - start;
    return k + 1;
}

/* Writes pieces joined by the separator as one seed file in FUZZ_SEED_DIR. */
static inline void fz_seed(const char *name, const void *const *pieces, const size_t *lens, int n) {
    const char *dir = getenv("FUZZ_SEED_DIR");
    if (!dir || !*dir) return;
    mkdir(dir, 0777);
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) { perror(p); abort(); }
    for (int i = 0; i < n; i++) {
        if (i) fwrite(FZ_SEP, 1, 4, f);
        fwrite(pieces[i], 1, lens[i], f);
    }
    fclose(f);
}

/* A whole file into memory (malloc'd); NULL if unreadable. */
static inline char *fz_slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(sz > 0 ? (size_t)sz : 1);
    *n = b && sz > 0 ? fread(b, 1, (size_t)sz, f) : 0;
    fclose(f);
    return b;
}

#endif
