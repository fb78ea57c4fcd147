/* freelunch eval --task: zero-shot accuracy on multiple-choice tasks, the
 * way lm-evaluation-harness scores them (eval/mc.h, eval/mc_tasks.h), and
 * on the tasks built from our corpora (eval/mc_corpus.h). `freelunch eval`
 * without --task is perplexity (harness/cmd_model.c), which hands over here
 * when it sees --task. */
#include "cli.h"
#include "datasets/corpus.h"
#include "eval/mc.h"
#include "eval/mc_corpus.h"
#include "eval/mc_tasks.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "model/fileio.h"
#include "model/gemm.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const FL_EVAL_TASK_HELP =
    "\nusage: freelunch eval --model DIR --task NAME[:FILE] [--task ...] [--limit K] [--json]\n"
    "                      [--per-item OUT.jsonl] [--window N] [--batch B] [--tokenizer DIR] [--cache DIR]\n"
    "Zero-shot accuracy as lm-evaluation-harness computes it: every choice's\n"
    "log-likelihood given the context, one forward pass per (context, choice),\n"
    "the context cut from the left to fit the window; acc = argmax of the\n"
    "log-likelihoods, acc_norm = argmax of log-likelihood / len(choice).\n"
    "  --task NAME:FILE   a dataset file in format NAME: boolq, rte, hellaswag,\n"
    "                     winogrande, arc_easy, arc_challenge, openbookqa,\n"
    "                     lambada (lambada_openai), mc (generic); README.md lists\n"
    "                     the fields each reads\n"
    "  --task NAME        a task built from the corpora: lambada-sotu, cloze-sotu\n"
    "                     (built into CACHE/tasks on first use; freelunch data tasks)\n"
    "  --limit K          only the first K items of each task\n"
    "  --json             one line per task: {\"task\", \"n\", \"acc\", \"acc_norm\"}\n"
    "                     (acc_norm where lm-eval reports it; ppl for lambada tasks)\n"
    "  --per-item FILE    per item {\"task\", \"idx\", \"label\", \"loglik\": [...], \"chars\": [...]}\n"
    "  --window N         input tokens per request (default: the model's context)\n"
    "  --batch B          requests per forward pass (default 8)\n"
    "  --tokenizer DIR    tokenizer (default: the model directory)\n"
    "  --cache DIR        corpus cache (default $FL_CACHE or ~/.cache/freelunch)\n";

static void json_num(char *b, size_t n, double v) {
    if (isfinite(v)) snprintf(b, n, "%.6f", v);
    else snprintf(b, n, "null");
}

int fl_cmd_eval_tasks(int argc, char **argv) {
    static struct option o[] = { { "model", required_argument, 0, 'm' },    { "task", required_argument, 0, 'T' },
                                 { "limit", required_argument, 0, 'l' },    { "json", no_argument, 0, 'J' },
                                 { "per-item", required_argument, 0, 'P' }, { "window", required_argument, 0, 'w' },
                                 { "batch", required_argument, 0, 'b' },    { "tokenizer", required_argument, 0, 't' },
                                 { "cache", required_argument, 0, 'c' },    FL_COMMON_OPTS,
                                 { 0, 0, 0, 0 } };
    const char *dir = NULL, *per = NULL, *tokdir = NULL, *cache_opt = NULL;
    const char *specs[64];
    int nspec = 0, limit = 0, json = 0, window = 0, batch = 8, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        switch (c) {
        case 'm': dir = optarg; break;
        case 'T':
            if (nspec == 64) return fl_cli_usage("eval", "at most 64 --task");
            specs[nspec++] = optarg;
            break;
        case 'l': limit = fl_cli_int("eval", "--limit", optarg, 1); break;
        case 'J': json = 1; break;
        case 'P': per = optarg; break;
        case 'w': window = fl_cli_int("eval", "--window", optarg, 1); break;
        case 'b': batch = fl_cli_int("eval", "--batch", optarg, 1); break;
        case 't': tokdir = optarg; break;
        case 'c': cache_opt = optarg; break;
        case 'h': fputs(FL_EVAL_TASK_HELP + 1, stdout); return 0;
        default:
            if (!fl_cli_common_opt(c, "eval")) {
                char msg[300];
                snprintf(msg, sizeof msg, "unknown option or missing value: '%s' (with --task)", argv[optind - 1]);
                return fl_cli_usage("eval", msg);
            }
        }
    }
    if (optind < argc) return fl_cli_usage("eval", "unexpected argument");
    if (!dir || !nspec) return fl_cli_usage("eval", "--model and at least one --task are required");
    char cache[4096];
    fl_cache_dir(cache, sizeof cache, cache_opt);
    fl_model m;
    if (fl_model_load(&m, dir) != 0) return fl_cli_fail();
    if (!window) window = m.cfg.max_pos;
    if (window > m.cfg.max_pos) {
        fl_model_free(&m);
        fl_err("%s/config.json: --window %d exceeds the model's context of %d positions", dir, window, m.cfg.max_pos);
        return fl_cli_fail();
    }
    fl_bpe *tok;
    if (fl_bpe_load(&tok, tokdir ? tokdir : dir) != 0) { fl_model_free(&m); return fl_cli_fail(); }
    if (fl_bpe_vocab_size(tok) > m.cfg.vocab) {
        fl_err("%s: tokenizer has %d entries but the model only %d", tokdir ? tokdir : dir, fl_bpe_vocab_size(tok), m.cfg.vocab);
        fl_bpe_free(tok), fl_model_free(&m);
        return fl_cli_fail();
    }
    /* every task is read before any is scored: a bad file fails at once */
    fl_mc_task *tasks = calloc((size_t)nspec, sizeof *tasks);
    int rc = tasks ? 0 : fl_err("out of memory");
    for (int i = 0; i < nspec && rc == 0; i++) rc = fl_mc_task_open(specs[i], cache, limit, &tasks[i]);
    FILE *pf = NULL;
    char *ptmp = NULL;
    if (rc == 0 && per && !(pf = fl_tmp_open(per, &ptmp))) rc = -1;
    int pok = 1;
    for (int i = 0; i < nspec && rc == 0; i++) {
        fl_mc_task *t = &tasks[i];
        fl_mc_result r;
        double *ll = NULL;
        uint8_t *gr = NULL;
        if (fl_mc_eval(&m, tok, t, limit, window, batch, !json && isatty(2), &r, &ll, &gr) != 0) { rc = -1; break; }
        char a[32], an[32], pp[32];
        json_num(a, sizeof a, r.acc), json_num(an, sizeof an, r.acc_norm), json_num(pp, sizeof pp, r.ppl);
        if (json) {
            printf("{\"task\": \"%s\", \"n\": %d, \"acc\": %s", t->name, r.n, a);
            if (t->kind == FL_MC_CHOICE && t->norm) printf(", \"acc_norm\": %s", an);
            if (t->kind == FL_MC_LOGLIK) printf(", \"ppl\": %s", pp);
            printf("}\n");
        } else {
            printf("%-16s n %6d  acc %.4f", t->name, r.n, r.acc);
            if (t->kind == FL_MC_CHOICE && t->norm) printf("  acc_norm %.4f", r.acc_norm);
            if (t->kind == FL_MC_LOGLIK) printf("  ppl %.4f", r.ppl);
            printf("  (%.1f items/s, %.1fs)\n", r.n / (r.seconds > 0 ? r.seconds : 1e-9), r.seconds);
        }
        fflush(stdout);
        if (r.cut)
            fprintf(stderr, "freelunch: note: %s: %d choices longer than the window of %d tokens were scored over their last %d\n",
                    t->name, r.cut, window, window);
        for (int k = 0, q = 0; pf && k < r.n; k++) {
            const fl_mc_item *it = &t->items[k];
            cJSON *o = cJSON_CreateObject(), *l = cJSON_CreateArray(), *ch = cJSON_CreateArray();
            cJSON_AddStringToObject(o, "task", t->name);
            cJSON_AddNumberToObject(o, "idx", k);
            cJSON_AddNumberToObject(o, "label", it->label);
            for (int j = 0; j < it->n; j++) {
                cJSON_AddItemToArray(l, cJSON_CreateNumber(ll[q + j]));
                cJSON_AddItemToArray(ch, cJSON_CreateNumber(it->chars[j]));
            }
            cJSON_AddItemToObject(o, "loglik", l);
            cJSON_AddItemToObject(o, "chars", ch);
            if (gr) {
                cJSON *g = cJSON_CreateArray();
                for (int j = 0; j < it->n; j++) cJSON_AddItemToArray(g, cJSON_CreateBool(gr[q + j]));
                cJSON_AddItemToObject(o, "greedy", g);
            }
            char *s = cJSON_PrintUnformatted(o);
            if (!s || fprintf(pf, "%s\n", s) < 0) pok = 0;
            free(s);
            cJSON_Delete(o);
            q += it->n;
        }
        free(ll);
        free(gr);
    }
    if (pf && fl_tmp_commit(pf, ptmp, per, rc == 0 && pok) != 0 && rc == 0) rc = -1;
    for (int i = 0; i < nspec && tasks; i++) fl_mc_task_free(&tasks[i]);
    free(tasks);
    fl_bpe_free(tok);
    fl_model_free(&m);
    return rc == 0 ? 0 : fl_cli_fail();
}
