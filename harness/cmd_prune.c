/* freelunch prune (one cell) and freelunch list (the registries). */
#include "cell.h"
#include "presets.h"
#include "cli.h"
#include "criteria/criterion.h"
#include "reconstructors/recon.h"
#include "datasets/corpus.h"
#include "model/err.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *PRUNE_HELP =
    "usage: freelunch prune --model DIR --criterion NAME[:OPTIONS] --sparsity S|N:M [--pattern row|matrix]\n"
    "                       [--reconstruct NAME] [--propagation MODE] [--loss L] [--trainable all|bias-norm]\n"
    "                       [--lr X] [--epochs E] [--batch-size B] [--grad-accum K] [--weight-decay W]\n"
    "                       (--calib FILE.bin | --calib-split NAME)\n"
    "                       [--calib-samples N] [--seqlen T] [--seed S] [--eval FILE.bin|SPLIT]... --out DIR\n"
    "Prunes every linear of every block, block by block as the Wanda and SparseGPT\n"
    "reference code do: one forward pass of the still-dense block over all\n"
    "calibration windows (on the sparse stream) collects each linear's statistics,\n"
    "all its linears are pruned, then the pruned block's outputs feed the next.\n"
    "Writes DIR: the pruned HF model (config.json, model.safetensors, tokenizer),\n"
    "calib.bin (the windows used) and freelunch.json (achieved sparsity, layer-wise\n"
    "error ||XW^T - XW'^T||^2/||XW^T||^2 of every linear, perplexities, profile);\n"
    "then prints perplexity on every --eval set (default: the test splits).\n"
    "  --criterion C     NAME or NAME:key=value,... or NAME:v1:v2 (e.g. ria:alpha=1,\n"
    "                    sparseswaps:wanda:100); see 'freelunch list'\n"
    "  --sparsity S      fraction pruned in (0,1), or N:M (N kept of every M inputs)\n"
    "  --pattern P       row (default: each row loses the same fraction) or matrix\n"
    "  --reconstruct R   none (default), matrix, matrix-ls, sublayer, block, blocks:K, blocks:all,\n"
    "                    retrain:full, retrain:bias-norm, retrain:lora, retrain:masklora[:rank=R,alpha=A]\n"
    "  --propagation M   sparse (default), dense, dense-target (design.md step 4a)\n"
    "  --loss L          mse (default), nmse, cosine\n"
    "  --trainable T     all (default) or bias-norm\n"
    "  --lr X            AdamW learning rate (default: the preset's tuned value for\n"
    "                    freelunch's own models: tiny 3e-3 matrix/sublayer, 1e-3 block and\n"
    "                    larger, 1e-4 retraining; else 1e-3 local, 1e-5 retraining)\n"
    "  --epochs E        passes over the calibration windows (default 1)\n"
    "  --batch-size B    windows per step (default 2)\n"
    "  --grad-accum K    micro-batches per optimiser step (default 1)\n"
    "  --weight-decay W  (default 0)\n"
    "  --distill         retraining: KL to the dense model's next-token distribution\n"
    "  --calib FILE.bin  calibration token file (one document)\n"
    "  --calib-split S   calibration split (default sotu-train), tokenized with DIR's tokenizer\n"
    "  --calib-samples N windows (default 128)\n"
    "  --seqlen T        window length (default: the model's context)\n"
    "  --seed S          calibration draw and random criteria (default 0)\n"
    "  --eval E          token file or split; repeatable\n"
    "  --eval-windows K  evaluate at most K windows per set\n"
    "  --cache DIR       corpus cache\n"
    "  --no-model        do not write the pruned model (only calib.bin and freelunch.json)\n" FL_COMMON_HELP;

int fl_cmd_prune(int argc, char **argv) {
    static struct option o[] = {
        { "model", required_argument, 0, 'm' }, { "criterion", required_argument, 0, 'c' },
        { "sparsity", required_argument, 0, 's' }, { "pattern", required_argument, 0, 'p' },
        { "reconstruct", required_argument, 0, 'r' }, { "calib", required_argument, 0, 'f' },
        { "calib-split", required_argument, 0, 'S' }, { "calib-samples", required_argument, 0, 'n' },
        { "seqlen", required_argument, 0, 'T' }, { "seed", required_argument, 0, 'e' },
        { "eval", required_argument, 0, 'E' }, { "eval-windows", required_argument, 0, 'W' },
        { "out", required_argument, 0, 'o' }, { "cache", required_argument, 0, 'C' },
        { "propagation", required_argument, 0, 'P' }, { "loss", required_argument, 0, 'L' },
        { "trainable", required_argument, 0, 't' }, { "lr", required_argument, 0, 'l' },
        { "epochs", required_argument, 0, 'x' }, { "batch-size", required_argument, 0, 'b' },
        { "grad-accum", required_argument, 0, 'g' }, { "weight-decay", required_argument, 0, 'w' },
        { "distill", no_argument, 0, 'D' }, { "no-model", no_argument, 0, 'N' },
        FL_COMMON_OPTS, { 0, 0, 0, 0 } };
    fl_cell_cfg c = { .calib_samples = 128, .reconstruct = "none", .pattern = "row" };
    const char *cache_opt = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "", o, NULL)) != -1) {
        switch (opt) {
        case 'm': c.model_dir = optarg; break;
        case 'c': c.criterion = optarg; break;
        case 's': c.sparsity = optarg; break;
        case 'p': c.pattern = optarg; break;
        case 'r': c.reconstruct = optarg; break;
        case 'f': c.calib_file = optarg; break;
        case 'S': c.calib_split = optarg; break;
        case 'n': c.calib_samples = fl_cli_int("prune", "--calib-samples", optarg, 1); break;
        case 'T': c.seqlen = fl_cli_int("prune", "--seqlen", optarg, 2); break;
        case 'e': c.seed = (uint64_t)fl_cli_int("prune", "--seed", optarg, 0); break;
        case 'E':
            if (c.n_evals == FL_MAX_EVALS) return fl_cli_usage("prune", "too many --eval sets");
            c.evals[c.n_evals++] = optarg;
            break;
        case 'W': c.eval_max_windows = fl_cli_int("prune", "--eval-windows", optarg, 1); break;
        case 'o': c.out_dir = optarg; break;
        case 'C': cache_opt = optarg; break;
        case 'P': c.propagation = optarg; break;
        case 'L': c.loss = optarg; break;
        case 't': c.trainable = optarg; break;
        case 'l': c.lr = (float)fl_cli_float("prune", "--lr", optarg); break;
        case 'x': c.epochs = fl_cli_int("prune", "--epochs", optarg, 1); break;
        case 'b': c.recon_batch = fl_cli_int("prune", "--batch-size", optarg, 1); break;
        case 'g': c.grad_accum = fl_cli_int("prune", "--grad-accum", optarg, 1); break;
        case 'D': c.distill = 1; break;
        case 'N': c.no_model = 1; break;
        case 'w': c.weight_decay = (float)fl_cli_float("prune", "--weight-decay", optarg); break;
        case 'h': fputs(PRUNE_HELP, stdout); return 0;
        default: if (!fl_cli_common_opt(opt, "prune")) return fl_cli_usage("prune", "unknown option");
        }
    }
    if (!c.model_dir || !c.criterion || !c.sparsity || !c.out_dir)
        return fl_cli_usage("prune", "--model, --criterion, --sparsity and --out are required");
    if (c.calib_file && c.calib_split) return fl_cli_usage("prune", "give --calib or --calib-split, not both");
    if (c.lr <= 0) c.lr = fl_preset_lr(fl_preset_of_model(c.model_dir), c.reconstruct);   /* presets.c */
    char cache[4096];
    fl_cache_dir(cache, sizeof cache, cache_opt);
    c.cache = cache;
    c.progress = isatty(2);
    fl_cell_result r;
    if (fl_cell_run(&c, &r) != 0) { fl_cell_result_free(&r); return fl_cli_fail(); }
    printf("pruned %s with %s at %s (%s): sparsity %.4f over %d linears\n", c.model_dir, c.criterion, c.sparsity,
           c.pattern, r.sparsity, r.n_linears);
    double e = 0;
    for (int i = 0; i < r.n_linears; i++) e += r.lin[i].err;
    printf("mean layer-wise error %.5f\n", r.n_linears ? e / r.n_linears : 0);
    if (r.n_units) {
        double lb = 0, la = 0;
        for (int i = 0; i < r.n_units; i++) { lb += r.units[i].loss_before; la += r.units[i].loss_after; }
        printf("reconstructed %d units with %s: mean loss %.5g -> %.5g; working set %.2f MB, recovery peak %.2f MB, %.1fs\n",
               r.n_units, c.reconstruct, lb / r.n_units, la / r.n_units, r.working_bytes / 1e6, r.peak_recover_bytes / 1e6,
               r.secs_recover);
    }
    for (int i = 0; i < r.n_evals; i++)
        printf("ppl %-12s %10.4f  (%lld tokens)\n", r.eval_name[i], r.ppl[i], (long long)r.eval_tokens[i]);
    printf("%scalib.bin and freelunch.json in %s\n", c.no_model ? "" : "model, ", c.out_dir);
    fl_cell_result_free(&r);
    return 0;
}

static const char *LIST_HELP =
    "usage: freelunch list\n"
    "Prints every pruning criterion and every reconstructor with its one-line\n"
    "description and its options.\n" FL_COMMON_HELP;

int fl_cmd_list(int argc, char **argv) {
    static struct option o[] = { FL_COMMON_OPTS, { 0, 0, 0, 0 } };
    int opt;
    while ((opt = getopt_long(argc, argv, "", o, NULL)) != -1) {
        if (opt == 'h') { fputs(LIST_HELP, stdout); return 0; }
        if (!fl_cli_common_opt(opt, "list")) return fl_cli_usage("list", "unknown option");
    }
    static const char *needs[] = { "no data", "activation norms", "Gram matrix X^T X" };
    printf("criteria:\n");
    for (int i = 0; FL_CRITERIA[i]; i++) {
        const fl_criterion *c = FL_CRITERIA[i];
        printf("  %-12s %s [%s]\n", c->name, c->desc, needs[c->stats]);
        for (int k = 0; c->options && c->options[k].name; k++) {   /* one line per option, with its help */
            const fl_option one[2] = { c->options[k], { .name = NULL } };
            char d[512];
            printf("  %-12s   %s: %s\n", "", fl_opts_describe(one, d, sizeof d), c->options[k].help);
        }
    }
    printf("criterion options: named (ria:alpha=1, sparsefw:warm=(ria:alpha=1),iters=5) or positional in table order\n"
           "  (ria:1, sparseswaps:wanda:100); a warm start takes its own options; parentheses hold commas\n");
    printf("sparsity patterns: row (default), matrix, N:M (e.g. 2:4, 4:8)\n");
    printf("reconstructors:\n");
    for (int i = 0; FL_RECONSTRUCTORS[i]; i++) {
        const fl_reconstructor *r = FL_RECONSTRUCTORS[i];
        printf("  %-18s %s\n", r->name, r->desc);
        if (r->options) {
            char opts[512];
            printf("  %-18s   options: %s\n", "", fl_opts_describe(r->options, opts, sizeof opts));
        }
    }
    printf("propagation: sparse (default), dense, dense-target; losses: mse (default), nmse, cosine\n");
    return 0;
}
