/* freelunch prune (one cell) and freelunch list (the registries). */
#include "cell.h"
#include "presets.h"
#include "settings.h"
#include "cli.h"
#include "criteria/criterion.h"
#include "reconstructors/recon.h"
#include "datasets/corpus.h"
#include "model/err.h"
#include "model/safetensors.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *PRUNE_USAGE =
    "usage: freelunch prune --model DIR --criterion NAME[:OPTIONS] --sparsity S|N:M --out DIR [SETTING]...\n"
    "Prunes every linear of every block, walking the reconstructor's plan in depth\n"
    "order (docs/ARCHITECTURE.md, \"One cell\"): for each unit (a block for none and\n"
    "the retraining baselines, as the Wanda and SparseGPT reference code do; an\n"
    "attention or MLP part, one linear, K blocks for the others), one forward pass\n"
    "of the still-dense unit over all calibration windows on the sparse stream\n"
    "collects its linears' statistics, they are pruned, the unit is recovered,\n"
    "and its pruned outputs feed the next; retraining then trains the whole model.\n"
    "With --structure, whole heads, MLP channels or blocks are removed first\n"
    "(README \"Structured pruning\") and the smaller model is recovered.\n"
    "Writes DIR: the pruned HF model (config.json, model.safetensors, tokenizer),\n"
    "calib.bin (the windows used) and freelunch.json (the settings as run,\n"
    "achieved sparsity, layer-wise error ||XW^T - XW'^T||^2/||XW^T||^2 of every\n"
    "linear, perplexities, profile); then prints perplexity on every --eval set.\n"
    "Settings (each also a grid key of 'freelunch study'; give --calib or --calib-split):\n";
static const char *PRUNE_OTHER =
    "  --out DIR         output directory\n"
    "  --cache DIR       corpus cache\n"
    "  --no-model        do not write the pruned model (only calib.bin and freelunch.json)\n"
    "  --no-layer-error  do not compute each linear's layer-wise error (4 rows cols^2\n"
    "                    FLOPs a linear, most of a big model's pruning pass; null in\n"
    "                    freelunch.json)\n"
    "  --share           reuse work other cells did with the same inputs, and store\n"
    "                    this cell's for them: tokenized splits and, when the masks do\n"
    "                    not depend on recovery, the pruning pass (CACHE/share; results\n"
    "                    are the same bit for bit; 'freelunch study' passes it)\n" FL_COMMON_HELP;

/* getopt values of the settings: their table index past every short option */
#define OPT_SETTING 1000

int fl_cmd_prune(int argc, char **argv) {
    static const struct option other[] = { { "out", required_argument, 0, 'o' }, { "cache", required_argument, 0, 'C' },
                                           { "no-model", no_argument, 0, 'N' },
                                           { "share", no_argument, 0, 'S' },
                                           { "no-layer-error", no_argument, 0, 'E' }, FL_COMMON_OPTS, { 0, 0, 0, 0 } };
    struct option o[64 + sizeof other / sizeof *other];
    int no = 0;
    for (int i = 0; i < FL_NSETTINGS && no < 64; i++)
        if (FL_SETTINGS[i].type != FL_SET_COMMON)   /* --backend, --threads: FL_COMMON_OPTS */
            o[no++] = (struct option){ FL_SETTINGS[i].key, FL_SETTINGS[i].type == FL_SET_FLAG ? no_argument : required_argument, 0,
                                       OPT_SETTING + i };
    memcpy(o + no, other, sizeof other);
    fl_cell_cfg c = { 0 };
    const char *cache_opt = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, "", o, NULL)) != -1) {
        if (opt >= OPT_SETTING && opt < OPT_SETTING + FL_NSETTINGS) {
            const fl_setting *s = &FL_SETTINGS[opt - OPT_SETTING];
            if (fl_setting_set(s, optarg, &c) != 0) {
                char m[1100];
                snprintf(m, sizeof m, "--%s: %s", s->key, fl_errmsg());
                return fl_cli_usage("prune", m);
            }
            continue;
        }
        switch (opt) {
        case 'o': c.out_dir = optarg; break;
        case 'C': cache_opt = optarg; break;
        case 'N': c.no_model = 1; break;
        case 'S': c.share = 1; break;
        case 'E': c.no_layer_error = 1; break;
        case 'h': fputs(PRUNE_USAGE, stdout); fl_settings_help(stdout); fputs(PRUNE_OTHER, stdout); return 0;
        default: if (!fl_cli_common_opt(opt, "prune")) return fl_cli_usage("prune", "unknown option");
        }
    }
    if (!c.model_dir || !c.criterion || !c.sparsity || !c.out_dir)
        return fl_cli_usage("prune", "--model, --criterion, --sparsity and --out are required");
    if (fl_settings_exclusive(&c) != 0) return fl_cli_usage("prune", fl_errmsg());
    char cache[4096];
    fl_cache_dir(cache, sizeof cache, cache_opt);
    c.cache = cache;
    c.progress = isatty(2);
    fl_cell_result r;
    if (fl_cell_run(&c, &r) != 0) { fl_cell_result_free(&r); return fl_cli_fail(); }
    if (c.structure && strcmp(c.structure, "none"))
        printf("removed %s of the %s with %s: %lld -> %lld parameters (%.1f%% removed)\n", c.sparsity, c.structure, c.criterion,
               (long long)r.params_dense, (long long)r.params, 100.0 * r.sparsity);
    else {
        printf("pruned %s with %s at %s (%s): sparsity %.4f over %d linears\n", c.model_dir, c.criterion, c.sparsity,
               c.pattern ? c.pattern : fl_setting_def("pattern"), r.sparsity, r.n_linears);
        double e = 0;
        for (int i = 0; i < r.n_linears; i++) e += r.lin[i].err;
        printf("mean layer-wise error %.5f\n", r.n_linears ? e / r.n_linears : 0);
    }
    if (r.n_units) {
        double lb = 0, la = 0;
        for (int i = 0; i < r.n_units; i++) { lb += r.units[i].loss_before; la += r.units[i].loss_after; }
        printf("reconstructed %d units with %s: mean loss %.5g -> %.5g; working set %.2f MB, recovery peak %.2f MB, %.1fs\n",
               r.n_units, c.reconstruct ? c.reconstruct : fl_setting_def("reconstruct"), lb / r.n_units, la / r.n_units, r.working_bytes / 1e6, r.peak_recover_bytes / 1e6,
               r.secs_recover);
    }
    if (r.drift.n)
        printf("activation drift against the dense model over %lld tokens: mean %.5g, max %.5g over linears; %.5g at the last block's output\n",
               (long long)r.drift.tokens, r.drift.mean, r.drift.max, r.drift.out);
    for (int i = 0; i < r.n_evals; i++)
        printf("ppl %-12s %10.4f  (%lld tokens)\n", r.eval_name[i], r.ppl[i], (long long)r.eval_tokens[i]);
    if (r.infer_tok_s > 0 && r.infer_tok_s_dense > 0)
        printf("inference %.0f tokens/s, dense model %.0f tokens/s: speedup %.2fx; peak %.2f MB, dense model %.2f MB\n",
               r.infer_tok_s, r.infer_tok_s_dense, r.infer_tok_s / r.infer_tok_s_dense, r.infer_peak_bytes / 1e6,
               r.infer_peak_bytes_dense / 1e6);
    printf("%scalib.bin%s and freelunch.json in %s\n", c.no_model ? "" : "model, ", r.drift.n ? ", drift.bin" : "", c.out_dir);
    fl_cell_result_free(&r);
    return 0;
}

static const char *LIST_HELP =
    "usage: freelunch list [presets]\n"
    "Prints every pruning criterion and every reconstructor with its one-line\n"
    "description, then one line per option of each: NAME=DEFAULT (range;\n"
    "alias) [TYPE]: help.\n"
    "`freelunch list presets` prints one line per base-model preset (the\n"
    "ladder's rungs): name, family, layers, hidden size, parameters,\n"
    "non-embedding parameters, pretraining tokens and tokens per\n"
    "non-embedding parameter.\n" FL_COMMON_HELP;

/* `freelunch list presets`: the ladder as a table (presets.c) */
static int list_presets(void) {
    printf("%-14s %-6s %6s %6s %10s %12s %12s %10s\n", "preset", "family", "layers", "hidden", "params", "non_emb", "train_tokens",
           "tok/param");
    for (int i = 0; i < FL_N_PRESETS; i++) {
        const fl_preset *p = &FL_PRESETS[i];
        int64_t ne, all = fl_preset_params(p, &ne), tok = fl_preset_tokens(p);
        printf("%-14s %-6s %6d %6d %10lld %12lld %12lld %10.1f\n", p->name, fl_family_name(p->family), p->n_layer, p->d,
               (long long)all, (long long)ne, (long long)tok, (double)tok / (double)ne);
    }
    return 0;
}

/* One line per option of a plug-in, under its name line: name, default,
 * range and alias (fl_opts_describe), type, help. */
static void list_options(const fl_option *tab, int width) {
    for (int k = 0; tab && tab[k].name; k++) {
        const fl_option one[2] = { tab[k], { .name = NULL } };
        char d[512];
        printf("  %-*s   %s [%s]: %s\n", width, "", fl_opts_describe(one, d, sizeof d), fl_opt_type_name(tab[k].type),
               tab[k].help ? tab[k].help : "");
    }
}

int fl_cmd_list(int argc, char **argv) {
    static struct option o[] = { FL_COMMON_OPTS, { 0, 0, 0, 0 } };
    int opt;
    while ((opt = getopt_long(argc, argv, "", o, NULL)) != -1) {
        if (opt == 'h') { fputs(LIST_HELP, stdout); return 0; }
        if (!fl_cli_common_opt(opt, "list")) return fl_cli_usage("list", "unknown option");
    }
    if (optind < argc) {
        if (optind + 1 == argc && !strcmp(argv[optind], "presets")) return list_presets();
        return fl_cli_usage("list", "unexpected argument (only `presets`)");
    }
    static const char *needs[] = { "no data", "activation norms", "Gram matrix X^T X" };
    printf("criteria:\n");
    for (int i = 0; FL_CRITERIA[i]; i++) {
        const fl_criterion *c = FL_CRITERIA[i];
        printf("  %-12s %s [%s]\n", c->name, c->desc, needs[c->stats]);
        list_options(c->options, 12);
    }
    printf("criterion options: named (ria:alpha=1, sparsefw:warm=(ria:alpha=1),iters=5) or positional in table order\n"
           "  (ria:1, sparseswaps:wanda:100); a warm start takes its own options; parentheses hold commas\n");
    printf("sparsity patterns: row (default), matrix, N:M (e.g. 2:4, 4:8)\n");
    printf("reconstructors:\n");
    for (int i = 0; FL_RECONSTRUCTORS[i]; i++) {
        const fl_reconstructor *r = FL_RECONSTRUCTORS[i];
        printf("  %-18s %s\n", r->name, r->desc);
        if (r->alias) printf("  %-18s   alias: %s\n", "", r->alias);
        list_options(r->options, 18);
    }
    printf("propagation: sparse (default), dense, dense-target; losses: mse (default), nmse (alias mse_normalized),\n"
           "  cosine; optimizers: adamw (default), sgd (momentum 0.9); prune streams: sparse (default), dense\n");
    return 0;
}
