/* Commands on tokenizers: tokenize (text -> llm.c token file) and
 * tokenizer-train (learn a byte-level BPE and save it in HF form). */
#include "cli.h"
#include "datasets/bpe.h"
#include "datasets/corpus.h"
#include "datasets/tokfile.h"
#include "model/clock.h"
#include "model/err.h"
#include "model/fileio.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* --tokenizer gpt2 means <cache>/gpt2, installed by `freelunch data fetch`. */
static int load_tokenizer(fl_bpe **t, const char *arg, const char *cache) {
    if (strcmp(arg, "gpt2") != 0) return fl_bpe_load(t, arg);
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/gpt2", cache);
    if (fl_bpe_load(t, dir) == 0) return 0;
    char msg[1100];
    snprintf(msg, sizeof msg, "%s", fl_errmsg());
    return fl_err("%s (GPT-2's vocabulary comes with 'freelunch data fetch')", msg);
}

/* The options of both commands. Each command's getopt table holds only
 * its own, so getopt_long never returns another command's letter. */
typedef struct {
    const char *tokdir, *split, *in, *out, *cache_opt;
    int vocab;
} tok_args;

/* Where both commands read their text from and write to. */
#define TEXT_IO_OPTS { "split", required_argument, 0, 's' }, { "in", required_argument, 0, 'i' }, \
                     { "out", required_argument, 0, 'o' }, { "cache", required_argument, 0, 'c' }

/* -1 to go on, else the exit code (help was printed, or a usage error). */
static int parse_args(int argc, char **argv, const char *cmd, const struct option *o, const char *help, tok_args *a) {
    int c;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        switch (c) {
        case 't': a->tokdir = optarg; break;
        case 's': a->split = optarg; break;
        case 'i': a->in = optarg; break;
        case 'v': a->vocab = fl_cli_int(cmd, "--vocab", optarg, 257); break;
        case 'o': a->out = optarg; break;
        case 'c': a->cache_opt = optarg; break;
        case 'h': fputs(help, stdout); return 0;
        default: if (!fl_cli_common_opt(c, cmd)) return fl_cli_usage(cmd, "unknown option");
        }
    }
    if (optind < argc) return fl_cli_usage(cmd, "unexpected argument");
    return -1;
}

/* The pending message, prefixed with what it was about, as the error line. */
static int fail_about(const char *what) {
    char msg[1100];
    snprintf(msg, sizeof msg, "%s", fl_errmsg());
    fl_err("%s: %s", what, msg);
    return fl_cli_fail();
}

/* ---- tokenize -------------------------------------------------------------- */

static const char *TOKENIZE_HELP =
    "usage: freelunch tokenize --tokenizer DIR|gpt2 (--split NAME | --in TEXTFILE) --out FILE.bin [--cache DIR]\n"
    "Encodes text with a BPE tokenizer and writes an llm.c token file\n"
    "(uint16 tokens when every id fits, else the uint32 variant). A split is\n"
    "tokenized as the evaluation protocol reads it: its documents joined with\n"
    "a blank line (\"\\n\\n\"). With vocab.json + merges.txt, special tokens in the\n"
    "text are plain text; with tokenizer.json they are HF's: split out as their\n"
    "ids, and the BOS of the post-processor / tokenizer_config.json added.\n"
    "  --tokenizer DIR  tokenizer.json (HF fast tokenizer: GPT-2, Llama-2/3, Qwen2,\n"
    "                   Mistral; tokenizer_config.json beside it is read too),\n"
    "                   vocab.json + merges.txt (HF) or encoder.json + vocab.bpe;\n"
    "                   'gpt2' is GPT-2's own, <cache>/gpt2 (freelunch data fetch)\n"
    "  --split NAME     a corpus split: sotu-train, sotu-val, sotu-test, moby-test, kjv-test\n"
    "  --in TEXTFILE    any file, taken as bytes (invalid UTF-8 included)\n"
    "  --out FILE.bin   the token file (written to FILE.bin.tmp, then renamed)\n"
    "  --cache DIR      corpus cache (default $FL_CACHE or ~/.cache/freelunch)\n" FL_COMMON_HELP;

int fl_cmd_tokenize(int argc, char **argv) {
    static struct option o[] = { { "tokenizer", required_argument, 0, 't' }, TEXT_IO_OPTS, FL_COMMON_OPTS, { 0, 0, 0, 0 } };
    tok_args a = { 0 };
    int done = parse_args(argc, argv, "tokenize", o, TOKENIZE_HELP, &a);
    if (done >= 0) return done;
    const char *tokdir = a.tokdir, *split = a.split, *in = a.in, *out = a.out;
    if (!tokdir || !out) return fl_cli_usage("tokenize", "--tokenizer and --out are required");
    if (!split == !in) return fl_cli_usage("tokenize", "give exactly one of --split NAME and --in TEXTFILE");
    char cache[4096];
    fl_cache_dir(cache, sizeof cache, a.cache_opt);

    fl_bpe *tok;
    if (load_tokenizer(&tok, tokdir, cache) != 0) return fl_cli_fail();
    char *text = NULL;
    size_t len = 0;
    const char *what = in;
    if (in) {
        if (fl_read_file(in, &text, &len) != 0) { fl_bpe_free(tok); return fl_cli_fail(); }
    } else {
        fl_split s;
        if (fl_split_load(cache, split, &s) != 0) { fl_bpe_free(tok); return fl_cli_fail(); }
        text = fl_split_join(&s, &len);
        fl_split_free(&s);
        if (!text) { fl_bpe_free(tok); fl_err("split %s: out of memory", split); return fl_cli_fail(); }
        what = split;
    }
    double t0 = fl_wall_s();
    int32_t *ids = NULL;
    int64_t n = 0;
    int rc = fl_bpe_encode(tok, text, len, &ids, &n);
    double dt = fl_wall_s() - t0;
    free(text);
    int vocab = fl_bpe_vocab_size(tok);
    fl_bpe_free(tok);
    if (rc != 0) return fail_about(what);
    rc = fl_tokfile_write(out, ids, n);
    free(ids);
    if (rc != 0) return fl_cli_fail();
    printf("%s: %zu bytes -> %lld tokens (%.3f bytes/token, vocabulary %d, %s) in %.2f s (%.1f MB/s) -> %s\n", what,
           len, (long long)n, n ? (double)len / (double)n : 0.0, vocab, vocab <= 65536 ? "uint16" : "uint32", dt,
           dt > 0 ? (double)len / 1e6 / dt : 0.0, out);
    return 0;
}

/* ---- tokenizer-train ------------------------------------------------------- */

static const char *TRAIN_HELP =
    "usage: freelunch tokenizer-train (--split NAME | --in FILE) --out DIR [--vocab N] [--cache DIR]\n"
    "Learns a byte-level BPE with GPT-2's pre-tokenisation: the 256 byte tokens,\n"
    "then merges of the most frequent adjacent pair (ties: the smallest pair of\n"
    "token byte strings) until the vocabulary has N entries, the last one\n"
    "<|endoftext|>. Deterministic. Saved as DIR/vocab.json + DIR/merges.txt (HF).\n"
    "The documents of a split are trained on separately (no piece crosses two).\n"
    "  --split NAME   a corpus split: sotu-train, sotu-val, sotu-test, moby-test, kjv-test\n"
    "  --in FILE      any text file\n"
    "  --vocab N      vocabulary size, at least 257 (default 4096)\n"
    "  --out DIR      output directory (created if missing)\n"
    "  --cache DIR    corpus cache (default $FL_CACHE or ~/.cache/freelunch)\n" FL_COMMON_HELP;

int fl_cmd_tokenizer_train(int argc, char **argv) {
    static struct option o[] = { { "vocab", required_argument, 0, 'v' }, TEXT_IO_OPTS, FL_COMMON_OPTS, { 0, 0, 0, 0 } };
    tok_args a = { .vocab = 4096 };
    int done = parse_args(argc, argv, "tokenizer-train", o, TRAIN_HELP, &a);
    if (done >= 0) return done;
    const char *split = a.split, *in = a.in, *out = a.out;
    const int vocab = a.vocab;
    if (!out) return fl_cli_usage("tokenizer-train", "--out DIR is required");
    if (!split == !in) return fl_cli_usage("tokenizer-train", "give exactly one of --split NAME and --in FILE");
    char cache[4096];
    fl_cache_dir(cache, sizeof cache, a.cache_opt);

    fl_split s = { 0 };
    char *text = NULL;
    size_t len = 0;
    const char *const *texts;
    const size_t *lens;
    const char **tv = NULL;
    size_t *lv = NULL;
    int n;
    if (in) {
        if (fl_read_file(in, &text, &len) != 0) return fl_cli_fail();
        texts = (const char *const *)&text;
        lens = &len;
        n = 1;
    } else {
        if (fl_split_load(cache, split, &s) != 0) return fl_cli_fail();
        tv = malloc(sizeof *tv * (size_t)(s.n > 0 ? s.n : 1));
        lv = malloc(sizeof *lv * (size_t)(s.n > 0 ? s.n : 1));
        if (!tv || !lv) { free(tv); free(lv); fl_split_free(&s); fl_err("split %s: out of memory", split); return fl_cli_fail(); }
        for (int i = 0; i < s.n; i++) tv[i] = s.docs[i].text, lv[i] = s.docs[i].len, len += s.docs[i].len;
        texts = tv;
        lens = lv;
        n = s.n;
    }
    double t0 = fl_wall_s();
    fl_bpe *tok;
    int rc = fl_bpe_train(&tok, texts, lens, n, vocab, 1);
    double dt = fl_wall_s() - t0;
    free(text);
    free(tv);
    free(lv);
    fl_split_free(&s);
    if (rc != 0) return fail_about(in ? in : split);
    rc = fl_bpe_save(tok, out);
    fl_bpe_free(tok);
    if (rc != 0) return fl_cli_fail();
    printf("trained a %d-token BPE on %s (%zu bytes, %d document%s) in %.2f s -> %s/vocab.json, %s/merges.txt\n", vocab,
           in ? in : split, len, n, n == 1 ? "" : "s", dt, out, out);
    return 0;
}
