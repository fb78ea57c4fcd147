/* Commands on whole models: info, eval, demo. */
#include "cli.h"
#include "datasets/bpe.h"
#include "datasets/corpus.h"
#include "datasets/tokfile.h"
#include "eval/ppl.h"
#include "model/adamw.h"
#include "model/alloc.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "model/fileio.h"
#include "model/gemm.h"
#include "model/model.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- info ---------------------------------------------------------------- */

static const char *INFO_HELP =
    "usage: freelunch info --model DIR\n"
    "Prints the family, sizes, parameter count and every matrix's shape of an\n"
    "HF model directory (config.json + model.safetensors or shards).\n"
    "  --model DIR      the model directory\n" FL_COMMON_HELP;

int fl_cmd_info(int argc, char **argv) {
    static struct option o[] = { { "model", required_argument, 0, 'm' }, FL_COMMON_OPTS, { 0, 0, 0, 0 } };
    const char *dir = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        if (c == 'm') dir = optarg;
        else if (c == 'h') { fputs(INFO_HELP, stdout); return 0; }
        else if (!fl_cli_common_opt(c, "info")) return fl_cli_usage("info", "unknown option");
    }
    if (!dir) return fl_cli_usage("info", "--model DIR is required");
    fl_model m;
    if (fl_model_load(&m, dir) != 0) return fl_cli_fail();
    const fl_config *k = &m.cfg;
    printf("model      %s\n", dir);
    printf("family     %s\n", fl_family_name(k->family));
    printf("vocab      %d\nhidden     %d\nlayers     %d\nheads      %d (kv %d, head dim %d)\nffn        %d\ncontext    %d\n",
           k->vocab, k->d, k->n_layer, k->n_head, k->n_kv_head, k->head_dim, k->d_ff, k->max_pos);
    printf("norm       %s (eps %g)\nactivation %s\npositions  %s\nlm head    %s\n",
           k->rms ? "RMSNorm" : "LayerNorm", k->eps,
           k->act == FL_ACT_SWIGLU ? "SwiGLU" : k->act == FL_ACT_RELU ? "ReLU" : "GELU (tanh)",
           k->learned_pos ? (k->pos_offset ? "learned (offset 2)" : "learned") : "RoPE",
           k->tied ? "tied to embedding" : "separate");
    printf("parameters %lld\n", (long long)fl_model_num_params(&m));
    printf("%-32s %12s %12s\n", "tensor", "rows", "cols");
    for (int i = 0; i < m.n_params; i++)
        printf("%-32s %12d %12d\n", m.params[i].name, m.params[i].rows, m.params[i].cols);
    fl_model_free(&m);
    return 0;
}

/* ---- eval ---------------------------------------------------------------- */

static const char *EVAL_HELP =
    "usage: freelunch eval --model DIR (--data FILE.bin | --split NAME) [--seqlen N] [--stride S]\n"
    "                      [--max-windows K] [--batch B] [--json] [--tokenizer DIR|gpt2] [--cache DIR]\n"
    "Perplexity the SparseGPT/Wanda way: the tokens are cut into non-overlapping\n"
    "windows of N tokens, every next-token prediction inside a window counts,\n"
    "ppl = exp(mean NLL). A split's documents are joined with \"\\n\\n\" and\n"
    "tokenized with the model directory's tokenizer (vocab.json, merges.txt).\n"
    "  --model DIR        HF model directory\n"
    "  --data FILE.bin    llm.c token file (uint16 or uint32)\n"
    "  --split NAME       a corpus split (freelunch data stats lists them)\n"
    "  --seqlen N         window length (default: the model's context)\n"
    "  --stride S         sliding windows every S tokens, counting only new tokens\n"
    "  --max-windows K    evaluate only the first K windows\n"
    "  --batch B          windows per forward pass (default 4)\n"
    "  --tokenizer DIR    tokenizer for --split (default: the model directory)\n"
    "  --cache DIR        corpus cache (default $FL_CACHE or ~/.cache/freelunch)\n"
    "  --json             print {\"ppl\":..., \"nll\":..., \"tokens\":...}\n" FL_COMMON_HELP;

/* The evaluation tokens of a split: documents joined with "\n\n", encoded
 * with the tokenizer in tokdir ("gpt2": the cache's GPT-2 vocabulary). */
int fl_split_tokens(const char *cache, const char *split, const char *tokdir, int vocab, int32_t **tok, int64_t *n) {
    fl_split sp;
    if (fl_split_load(cache, split, &sp) != 0) return -1;
    char gdir[4200];
    if (!strcmp(tokdir, "gpt2")) { snprintf(gdir, sizeof gdir, "%.4000s/gpt2", cache); tokdir = gdir; }
    fl_bpe *t;
    if (fl_bpe_load(&t, tokdir) != 0) { fl_split_free(&sp); return -1; }
    if (fl_bpe_vocab_size(t) > vocab) {
        fl_err("%s: tokenizer has %d entries but the model only %d", tokdir, fl_bpe_vocab_size(t), vocab);
        fl_bpe_free(t); fl_split_free(&sp);
        return -1;
    }
    size_t len;
    char *text = fl_split_join(&sp, &len);
    int rc = fl_bpe_encode(t, text, len, tok, n);
    free(text);
    fl_bpe_free(t);
    fl_split_free(&sp);
    return rc;
}

int fl_cmd_eval(int argc, char **argv) {
    /* --task: zero-shot accuracy instead of perplexity (harness/cmd_eval.c) */
    for (int k = 1; k < argc; k++)
        if (!strcmp(argv[k], "--task") || !strncmp(argv[k], "--task=", 7)) return fl_cmd_eval_tasks(argc, argv);
    static struct option o[] = { { "model", required_argument, 0, 'm' }, { "data", required_argument, 0, 'd' },
                                 { "seqlen", required_argument, 0, 's' }, { "max-windows", required_argument, 0, 'w' },
                                 { "batch", required_argument, 0, 'b' }, { "json", no_argument, 0, 'J' },
                                 { "stride", required_argument, 0, 'S' }, { "split", required_argument, 0, 'p' },
                                 { "tokenizer", required_argument, 0, 't' }, { "cache", required_argument, 0, 'c' },
                                 FL_COMMON_OPTS, { 0, 0, 0, 0 } };
    const char *dir = NULL, *data = NULL, *split = NULL, *tokdir = NULL, *cache_opt = NULL;
    int seqlen = 0, maxw = 0, batch = 4, json = 0, stride = 0, c;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        switch (c) {
        case 'm': dir = optarg; break;
        case 'd': data = optarg; break;
        case 's': seqlen = fl_cli_int("eval", "--seqlen", optarg, 2); break;
        case 'w': maxw = fl_cli_int("eval", "--max-windows", optarg, 1); break;
        case 'b': batch = fl_cli_int("eval", "--batch", optarg, 1); break;
        case 'J': json = 1; break;
        case 'S': stride = fl_cli_int("eval", "--stride", optarg, 1); break;
        case 'p': split = optarg; break;
        case 't': tokdir = optarg; break;
        case 'c': cache_opt = optarg; break;
        case 'h': fputs(EVAL_HELP, stdout); fputs(FL_EVAL_TASK_HELP, stdout); return 0;
        default: if (!fl_cli_common_opt(c, "eval")) return fl_cli_usage("eval", "unknown option");
        }
    }
    if (!dir || !!data == !!split) return fl_cli_usage("eval", "--model and one of --data or --split are required");
    fl_model m;
    if (fl_model_load(&m, dir) != 0) return fl_cli_fail();
    if (!seqlen) seqlen = m.cfg.max_pos;
    if (seqlen > m.cfg.max_pos) {
        fl_err("%s/config.json: --seqlen %d exceeds the model's context of %d positions", dir, seqlen, m.cfg.max_pos);
        fl_model_free(&m);
        return fl_cli_fail();
    }
    int32_t *tok = NULL;
    int64_t n = 0;
    if (split) {
        char cache[4096];
        fl_cache_dir(cache, sizeof cache, cache_opt);
        if (fl_split_tokens(cache, split, tokdir ? tokdir : dir, m.cfg.vocab, &tok, &n) != 0) { fl_model_free(&m); return fl_cli_fail(); }
        data = split;
    } else if (fl_tokfile_read(data, m.cfg.vocab, &tok, &n) != 0) { fl_model_free(&m); return fl_cli_fail(); }
    fl_ppl_result r;
    fl_flops_reset();
    time_t t0 = time(NULL);
    int rc = fl_eval_ppl(&m, tok, n, seqlen, stride, maxw, batch, !json && isatty(2), &r);
    free(tok);
    fl_model_free(&m);
    if (rc != 0) {
        char msg[1100];
        snprintf(msg, sizeof msg, "%s", fl_errmsg());
        fl_err("%s: %s", data, msg);
        return fl_cli_fail();
    }
    if (json) printf("{\"ppl\": %.6f, \"nll\": %.8f, \"tokens\": %lld}\n", r.ppl, r.nll, (long long)r.tokens);
    else printf("ppl %.4f  nll %.6f  tokens %lld  windows %d  (%s, %d threads, %lds)\n", r.ppl, r.nll,
                (long long)r.tokens, r.windows, fl_gemm_backend_name(), fl_threads(), (long)(time(NULL) - t0));
    return 0;
}

/* ---- demo: a byte-level language model end to end ------------------------- */

static const char *DEMO_HELP =
    "usage: freelunch demo --text FILE --out DIR [--steps N] [--seqlen T] [--batch B] [--lr X] [--family F]\n"
    "Exercises the model core end to end until the corpora and tokenizers land:\n"
    "writes the bytes of FILE as llm.c token files (first 90%% train, last 10%%\n"
    "validation; vocabulary 256), creates a small model of family F (llama,\n"
    "qwen2, gpt2 or opt), trains it with AdamW (10%% warm-up, linear decay),\n"
    "saves it as an HF directory in DIR, reloads it and evaluates validation\n"
    "perplexity before training, after training, and after the reload.\n"
    "  --text FILE   any text file\n"
    "  --out DIR     output directory (model, train.bin, val.bin)\n"
    "  --steps N     optimiser steps (default 200)\n"
    "  --seqlen T    window length (default 128)\n"
    "  --batch B     windows per step (default 8)\n"
    "  --lr X        peak learning rate (default 3e-3)\n"
    "  --family F    default llama\n" FL_COMMON_HELP;

int fl_cmd_demo(int argc, char **argv) {
    static struct option o[] = { { "text", required_argument, 0, 't' }, { "out", required_argument, 0, 'o' },
                                 { "steps", required_argument, 0, 'n' }, { "seqlen", required_argument, 0, 's' },
                                 { "batch", required_argument, 0, 'b' }, { "lr", required_argument, 0, 'l' },
                                 { "family", required_argument, 0, 'f' }, FL_COMMON_OPTS, { 0, 0, 0, 0 } };
    const char *text = NULL, *out = NULL, *fam = "llama";
    int steps = 200, T = 128, B = 8, c;
    float lr = 3e-3f;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        switch (c) {
        case 't': text = optarg; break;
        case 'o': out = optarg; break;
        case 'n': steps = fl_cli_int("demo", "--steps", optarg, 1); break;
        case 's': T = fl_cli_int("demo", "--seqlen", optarg, 2); break;
        case 'b': B = fl_cli_int("demo", "--batch", optarg, 1); break;
        case 'l': lr = (float)fl_cli_float("demo", "--lr", optarg); break;
        case 'f': fam = optarg; break;
        case 'h': fputs(DEMO_HELP, stdout); return 0;
        default: if (!fl_cli_common_opt(c, "demo")) return fl_cli_usage("demo", "unknown option");
        }
    }
    if (!text || !out) return fl_cli_usage("demo", "--text and --out are required");
    fl_family f;
    if (!strcmp(fam, "llama")) f = FL_LLAMA;
    else if (!strcmp(fam, "qwen2")) f = FL_QWEN2;
    else if (!strcmp(fam, "gpt2")) f = FL_GPT2;
    else if (!strcmp(fam, "opt")) f = FL_OPT;
    else return fl_cli_usage("demo", "--family must be llama, qwen2, gpt2 or opt");
    /* fl_read_file grows its buffer, so --text /dev/stdin (a pipe) works */
    char *text_buf = NULL;
    size_t nb = 0;
    if (fl_read_file(text, &text_buf, &nb) != 0) return fl_cli_fail();
    unsigned char *bytes = (unsigned char *)text_buf;
    if (nb < (size_t)20 * T) { free(bytes); fl_err("%s: %zu bytes is too little text for windows of %d", text, nb, T); return fl_cli_fail(); }
    int64_t ntr = (int64_t)(nb * 9 / 10), nva = (int64_t)nb - ntr;
    /* one step's windows come from the training bytes: a batch larger than
     * those hold would only size a buffer by the option */
    if ((int64_t)B * T > ntr) {
        free(bytes);
        fl_err("%s: --batch %d windows of %d bytes is more than the %lld training bytes hold", text, B, T, (long long)ntr);
        return fl_cli_fail();
    }
    int32_t *tok = malloc(sizeof(int32_t) * nb);
    if (!tok) { free(bytes); fl_err("%s: out of memory for %zu tokens", text, nb); return fl_cli_fail(); }
    for (size_t i = 0; i < nb; i++) tok[i] = bytes[i];
    free(bytes);
    if (mkdir(out, 0755) != 0 && access(out, W_OK) != 0) { free(tok); fl_err("%s: cannot create directory", out); return fl_cli_fail(); }
    char path[4096];
    snprintf(path, sizeof path, "%s/train.bin", out);
    if (fl_tokfile_write(path, tok, ntr) != 0) { free(tok); return fl_cli_fail(); }
    snprintf(path, sizeof path, "%s/val.bin", out);
    if (fl_tokfile_write(path, tok + ntr, nva) != 0) { free(tok); return fl_cli_fail(); }

    fl_config cfg = { 0 };
    fl_config_family_defaults(&cfg, f);
    cfg.vocab = 256; cfg.d = 128; cfg.n_layer = 4; cfg.n_head = 4; cfg.head_dim = 32;
    cfg.n_kv_head = cfg.rms ? 2 : 4; cfg.d_ff = cfg.rms ? 352 : 512; cfg.max_pos = T;
    fl_model m;
    if (fl_model_create(&m, &cfg) != 0) { free(tok); return fl_cli_fail(); }
    fl_model_init_random(&m, 1234);
    fl_ppl_result r0, r1, r2;
    if (fl_eval_ppl(&m, tok + ntr, nva, T, 0, 0, 8, 0, &r0) != 0) { free(tok); fl_model_free(&m); return fl_cli_fail(); }
    printf("demo: %s model, %lld parameters, %lld train / %lld validation bytes\n", fam,
           (long long)fl_model_num_params(&m), (long long)ntr, (long long)nva);
    printf("demo: validation ppl before training %.3f (uniform over bytes: 256)\n", r0.ppl);

    fl_model_set_all_trainable(&m, 1);
    fl_adamw_cfg oc = fl_adamw_defaults();
    oc.lr = lr; oc.total_steps = steps; oc.warmup_steps = steps / 10; oc.sched = FL_SCHED_LINEAR;
    oc.weight_decay = 0.01f; oc.clip_norm = 1.0f;
    fl_adamw opt;
    fl_adamw_init(&opt, &m, &oc);
    fl_acts *acts = fl_acts_new();
    int32_t *in = malloc(sizeof(int32_t) * B * T), *tg = malloc(sizeof(int32_t) * B * T);
    uint64_t rng = 42;
    time_t t0 = time(NULL);
    int tty = isatty(1);
    for (int s = 1; s <= steps; s++) {
        for (int b = 0; b < B; b++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            int64_t off = (int64_t)((rng >> 17) % (uint64_t)(ntr - T - 1));
            for (int t = 0; t < T; t++) { in[b * T + t] = tok[off + t]; tg[b * T + t] = tok[off + t + 1]; }
        }
        fl_fwd a = { .B = B, .T = T, .tokens = in, .targets = tg };
        fl_range r = fl_range_whole(&m);
        if (fl_forward(&m, r, &a, acts) != 0 || fl_backward(&m, r, acts, NULL, NULL) != 0) return fl_cli_fail();
        fl_adamw_step(&opt);
        if (s % 20 == 0 || s == steps) {
            long el = (long)(time(NULL) - t0);
            printf("%sdemo: step %d/%d loss %.4f lr %.2e gnorm %.3f %lds%s", tty ? "\r" : "", s, steps, a.loss,
                   opt.last_lr, opt.last_gnorm, el, tty ? "   " : "\n");
            fflush(stdout);
        }
    }
    if (tty) printf("\n");
    fl_acts_free(acts);
    fl_adamw_free(&opt);
    free(in); free(tg);
    if (fl_eval_ppl(&m, tok + ntr, nva, T, 0, 0, 8, 0, &r1) != 0) return fl_cli_fail();
    snprintf(path, sizeof path, "%s/model", out);
    if (fl_model_save(&m, path) != 0) return fl_cli_fail();
    fl_model m2;
    if (fl_model_load(&m2, path) != 0) return fl_cli_fail();
    if (fl_eval_ppl(&m2, tok + ntr, nva, T, 0, 0, 8, 0, &r2) != 0) return fl_cli_fail();
    printf("demo: validation ppl after training %.3f, after save and reload %.3f (%s)\n", r1.ppl, r2.ppl,
           r1.nll == r2.nll ? "identical" : "DIFFERENT");
    printf("demo: model saved in %s (try: freelunch info --model %s)\n", path, path);
    fl_model_free(&m);
    fl_model_free(&m2);
    free(tok);
    return r1.nll == r2.nll && r1.ppl < r0.ppl ? 0 : 1;
}

