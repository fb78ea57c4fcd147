#include "fileio.h"
#include "err.h"
#include <errno.h>
#include <ftw.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

FILE *fl_tmp_open(const char *path, char **tmp) {
    size_t n = strlen(path) + 5;
    *tmp = malloc(n);
    snprintf(*tmp, n, "%s.tmp", path);
    FILE *fp = fopen(*tmp, "wb");
    if (!fp) {
        int err = errno;
        free(*tmp);
        *tmp = NULL;
        fl_err("%s: cannot create the temporary file: %s", path, strerror(err));
    }
    return fp;
}

int fl_tmp_commit(FILE *fp, char *tmp, const char *path, int ok) {
    int err = ok ? 0 : errno;
    if (ok && (fflush(fp) != 0 || fsync(fileno(fp)) != 0)) { ok = 0; err = errno; }
    if (fclose(fp) != 0 && ok) { ok = 0; err = errno; }
    if (ok && rename(tmp, path) != 0) { ok = 0; err = errno; }
    if (!ok) unlink(tmp);
    free(tmp);
    if (!ok) return fl_err("%s: write failed: %s", path, strerror(err ? err : EIO));
    return 0;
}

int fl_write_file_atomic(const char *path, const void *data, size_t n) {
    char *tmp;
    FILE *fp = fl_tmp_open(path, &tmp);
    if (!fp) return -1;
    return fl_tmp_commit(fp, tmp, path, n == 0 || fwrite(data, 1, n, fp) == n);
}

int fl_copy_file_atomic(const char *src, const char *dst) {
    FILE *in = fopen(src, "rb");
    if (!in) return fl_err("%s: cannot open: %s", src, strerror(errno));
    char *tmp;
    FILE *out = fl_tmp_open(dst, &tmp);
    if (!out) { fclose(in); return -1; }
    char buf[1 << 16];
    size_t n;
    int ok = 1;
    while (ok && (n = fread(buf, 1, sizeof buf, in)) > 0) ok = fwrite(buf, 1, n, out) == n;
    if (ferror(in)) ok = 0;
    fclose(in);
    return fl_tmp_commit(out, tmp, dst, ok);
}

/* nftw's callback has no user pointer: the failing entry goes here (one
 * removal at a time in this process's callers). */
static char rm_failed[4096];
static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *f) {
    (void)st; (void)flag; (void)f;
    if (remove(p) == 0 || errno == ENOENT) return 0;
    snprintf(rm_failed, sizeof rm_failed, "%s: cannot remove: %s", p, strerror(errno));
    return -1;
}

int fl_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? 0 : fl_err("%s: %s", path, strerror(errno));
    rm_failed[0] = 0;
    /* FTW_DEPTH: children before their directory; FTW_PHYS: a link is an
     * entry, not a way into another tree. */
    if (nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return rm_failed[0] ? fl_err("%s", rm_failed) : fl_err("%s: cannot remove: %s", path, strerror(errno));
    return 0;
}

int fl_mkdir_p(const char *dir) {
    char *p = strdup(dir);
    int rc = 0;
    for (char *s = p + 1; ; s++) {
        if (*s != '/' && *s != 0) continue;
        char c = *s;
        *s = 0;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            rc = fl_err("%s: cannot create directory %s: %s", dir, p, strerror(errno));
            break;
        }
        *s = c;
        if (!c) break;
    }
    free(p);
    struct stat st;
    if (rc == 0 && (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        rc = fl_err("%s: exists and is not a directory", dir);
    return rc;
}

/* Grows the buffer as it reads, so pipes and /proc files work too. */
int fl_read_file(const char *path, char **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return fl_err("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0, k;
    char *b = malloc(cap + 1);
    while (b && (k = fread(b + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *nb = realloc(b, 2 * cap + 1);
            if (!nb) { free(b); b = NULL; break; }
            b = nb;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!b) return fl_err("%s: out of memory", path);
    if (bad) { free(b); return fl_err("%s: read error (is it a directory?)", path); }
    b[n] = 0;
    *buf = b;
    if (len) *len = n;
    return 0;
}

void fl_last_line(const char *path, char *out, size_t n) {
    out[0] = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return;
    char line[2048];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (line[strspn(line, " \t^")]) snprintf(out, n, "%s", line + strspn(line, " \t"));
    }
    fclose(f);
}
