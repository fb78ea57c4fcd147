/* freelunch plan: what one cell of a model will need, from its config.json
 * alone (no weights), for every registered reconstructor: the recovery
 * working set, the recovery phase's tracked peak, the cell's whole tracked
 * peak and the GEMM FLOPs of its pruning pass and recovery, with a time
 * estimate from this machine's measured GEMM rate.
 *
 * Every figure comes from the one predictor, fl_recon_predict
 * (reconstructors/predict.c), and its companions for the phases after
 * recovery (fl_pred_eval_bytes, fl_pred_drift_bytes); tests/test_recon_mem.c
 * holds each of them to the tracked allocator's and the FLOP counter's
 * measurement of real cells. Nothing here counts bytes of its own. */
#include "cli.h"
#include "settings.h"
#include "model/alloc.h"
#include "model/checkpoint.h"
#include "model/clock.h"
#include "model/err.h"
#include "model/gemm.h"
#include "reconstructors/recon.h"
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *PLAN_USAGE =
    "usage: freelunch plan --model DIR|config.json [options]\n"
    "From the model's config.json alone (no weights are read), for every\n"
    "reconstructor: the predicted recovery working set (the largest unit's\n"
    "parameters, gradients, optimiser state, saved activations and\n"
    "temporaries), the recovery phase's tracked peak, the cell's whole tracked\n"
    "peak (the largest of the pruning pass, recovery, activation drift and\n"
    "evaluation) and the GEMM FLOPs of the pruning pass and recovery, with an\n"
    "estimated time at this machine's measured GEMM rate (an estimate: the\n"
    "element-wise work and evaluation are not in it). Defaults are the\n"
    "paper's: 128 calibration windows of 2048 tokens.\n"
    "options (each as 'freelunch prune' spells it):\n"
    "  --calib-samples N   calibration windows (default 128)\n"
    "  --seqlen N          tokens per window (default 2048; prune's default is the model's context)\n"
    "  --batch-size N      windows per recovery batch (default 2)\n"
    "  --epochs N          recovery epochs (default 1)\n"
    "  --propagation M     sparse (default), dense, dense-target\n"
    "  --prune-stream M    sparse (default) or dense\n"
    "  --trainable T       all (default) or bias-norm\n"
    "  --optimizer O       adamw (default) or sgd\n"
    "  --retrain-samples N windows the retraining baselines train on (default: the calibration windows)\n"
    "  --drift-windows N   activation drift windows (default 8; 0: none)\n"
    "  --eval-seqlen N     evaluation window (default: --seqlen)\n"
    "  --eval-windows K    evaluation windows (default 4; prune's default is all)\n"
    "  --stream            the cell of 'freelunch prune --stream': one block (a unit's blocks)\n"
    "                      held at a time with its masks, evaluation block by block over\n"
    "                      all K windows, no drift\n"
    "  --gflops X          the GEMM rate for the time estimate, GFLOP/s (default: measured now, one\n"
    "                      1024^3 sgemm repeated)\n"
    "  --json              print a JSON list, one object per reconstructor\n" FL_COMMON_HELP;

/* This machine's GEMM rate: a square sgemm through fl_gemm (the backend
 * and threads every cell uses), best of a few, so the estimate is in the
 * units the FLOP counter counts. */
static double measure_gflops(void) {
    const int n = 1024;
    float *a = fl_allocf((size_t)n * n), *b = fl_allocf((size_t)n * n), *c = fl_allocf((size_t)n * n);
    for (size_t i = 0; i < (size_t)n * n; i++) { a[i] = (float)(i % 7) * 0.1f; b[i] = (float)(i % 5) * 0.1f; }
    double best = 0;
    fl_gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);   /* warm-up: threads, pages */
    for (int r = 0; r < 3; r++) {
        double t0 = fl_wall_s();
        fl_gemm(0, 0, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        double dt = fl_wall_s() - t0, g = dt > 0 ? 2.0 * n * n * n / dt / 1e9 : 0;
        best = g > best ? g : best;
    }
    fl_free(a); fl_free(b); fl_free(c);
    return best;
}

static int is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Bytes as GiB with two decimals (MiB below 1 GiB), for the table. */
static void human(char *b, size_t n, double bytes) {
    if (bytes >= 1024.0 * 1024 * 1024) snprintf(b, n, "%.2f GiB", bytes / (1024.0 * 1024 * 1024));
    else snprintf(b, n, "%.1f MiB", bytes / (1024.0 * 1024));
}

static void human_time(char *b, size_t n, double s) {
    if (s < 120) snprintf(b, n, "%.0f s", s);
    else if (s < 7200) snprintf(b, n, "%.0f min", s / 60);
    else if (s < 172800) snprintf(b, n, "%.1f h", s / 3600);
    else snprintf(b, n, "%.1f d", s / 86400);
}

int fl_cmd_plan(int argc, char **argv) {
    static const struct option o[] = {
        { "model", required_argument, 0, 'm' }, { "calib-samples", required_argument, 0, 'n' },
        { "seqlen", required_argument, 0, 'T' }, { "batch-size", required_argument, 0, 'b' },
        { "epochs", required_argument, 0, 'e' }, { "propagation", required_argument, 0, 'p' },
        { "prune-stream", required_argument, 0, 's' }, { "trainable", required_argument, 0, 't' },
        { "optimizer", required_argument, 0, 'O' }, { "retrain-samples", required_argument, 0, 'r' },
        { "drift-windows", required_argument, 0, 'd' }, { "eval-seqlen", required_argument, 0, 'E' },
        { "eval-windows", required_argument, 0, 'W' }, { "stream", no_argument, 0, 'S' },
        { "gflops", required_argument, 0, 'g' }, { "json", no_argument, 0, 'J' }, FL_COMMON_OPTS, { 0, 0, 0, 0 } };
    const char *model = NULL, *prop = "sparse", *ps = "sparse", *trainable = "all", *optim = "adamw";
    int nwin = 128, T = 2048, batch = 2, epochs = 1, nret = 0, ndrift = 8, es = 0, json = 0, stream = 0, ew = 4;
    double gflops = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "", o, NULL)) != -1) {
        switch (opt) {
        case 'm': model = optarg; break;
        case 'n': nwin = fl_cli_int("plan", "--calib-samples", optarg, 1); break;
        case 'T': T = fl_cli_int("plan", "--seqlen", optarg, 2); break;
        case 'b': batch = fl_cli_int("plan", "--batch-size", optarg, 1); break;
        case 'e': epochs = fl_cli_int("plan", "--epochs", optarg, 1); break;
        case 'p': prop = optarg; break;
        case 's': ps = optarg; break;
        case 't': trainable = optarg; break;
        case 'O': optim = optarg; break;
        case 'r': nret = fl_cli_int("plan", "--retrain-samples", optarg, 1); break;
        case 'd': ndrift = fl_cli_int("plan", "--drift-windows", optarg, 0); break;
        case 'E': es = fl_cli_int("plan", "--eval-seqlen", optarg, 2); break;
        case 'W': ew = fl_cli_int("plan", "--eval-windows", optarg, 1); break;
        case 'S': stream = 1; break;
        case 'g':
            gflops = fl_cli_float("plan", "--gflops", optarg);
            if (!(gflops > 0 && gflops < 1e9)) return fl_cli_usage("plan", "--gflops must be a positive rate in GFLOP/s");
            break;
        case 'J': json = 1; break;
        case 'h': fputs(PLAN_USAGE, stdout); return 0;
        default:
            if (fl_cli_common_opt(opt, "plan")) break;
            return fl_cli_usage("plan", "unknown option");
        }
    }
    if (optind < argc) return fl_cli_usage("plan", "unexpected argument");
    if (!model) return fl_cli_usage("plan", "--model DIR|config.json is required");
    if (fl_setting_check(fl_setting_find("trainable"), trainable) != 0 ||
        fl_setting_check(fl_setting_find("prune-stream"), ps) != 0)
        return fl_cli_fail();
    fl_config cfg;
    if ((is_file(model) ? fl_config_load_file(&cfg, model) : fl_config_load(&cfg, model)) != 0) return fl_cli_fail();
    if (!es) es = T;
    if (es > cfg.max_pos)
        return fl_err("%s: --eval-seqlen %d exceeds the model's context of %d positions", model, es, cfg.max_pos), fl_cli_fail();
    fl_optim op;
    if (fl_optim_parse(optim, &op) != 0) return fl_cli_fail();
    if (gflops <= 0) gflops = measure_gflops();
    cJSON *list = json ? cJSON_CreateArray() : NULL;
    if (!json) {
        printf("%s: %s, %lld parameters; %d windows of %d tokens, batch %d, %d epoch%s, propagation %s\n", model,
               fl_family_name(cfg.family), (long long)fl_config_num_params(&cfg), nwin, T, batch, epochs, epochs > 1 ? "s" : "",
               prop);
        printf("time: estimated at %.1f GFLOP/s (this machine's sgemm, %d threads), GEMM work only\n\n", gflops, fl_threads());
        printf("%-24s %12s %12s %12s %12s %10s\n", "reconstruct", "working", "recov. peak", "total peak", "TFLOP", "est. time");
    }
    int rc = 0;
    /* streamed: no drift (the cell does not measure it) */
    if (stream) ndrift = 0;
    const size_t pe = stream ? fl_pred_eval_stream_bytes(&cfg, ew, ew < 4 ? ew : 4, es) : fl_pred_eval_bytes(&cfg, ew < 4 ? ew : 4, es),
                 pd = ndrift ? fl_pred_drift_bytes(&cfg, ndrift < 8 ? ndrift : 8, T) : 0;
    for (int i = 0; FL_RECONSTRUCTORS[i] && rc == 0; i++) {
        const char *name = FL_RECONSTRUCTORS[i]->name;
        fl_recon_predict_args a = { .reconstruct = name, .propagation = prop, .prune_stream = ps,
                                    .trainable_bias_norm = !strcmp(trainable, "bias-norm"), .nwin = nwin, .T = T,
                                    .batch = batch, .retrain_nwin = nret, .optim = op, .epochs = epochs, .stream = stream };
        fl_recon_predict_out p;
        if (fl_recon_predict(&cfg, &a, &p) != 0) {
            /* a reconstructor this model cannot take (bias-norm on a model without biases): a row saying why */
            if (json) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddStringToObject(e, "reconstruct", name);
                cJSON_AddStringToObject(e, "error", fl_errmsg());
                cJSON_AddItemToArray(list, e);
            } else printf("%-24s %s\n", name, fl_errmsg());
            continue;
        }
        size_t total = p.peak_recover_bytes > p.peak_prune_bytes ? p.peak_recover_bytes : p.peak_prune_bytes;
        total = pe > total ? pe : total;
        total = pd > total ? pd : total;
        const double secs = (double)p.flops / (gflops * 1e9);
        if (json) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "reconstruct", name);
            cJSON_AddNumberToObject(e, "working_bytes", (double)p.working_bytes);
            cJSON_AddNumberToObject(e, "recovery_peak_bytes", (double)p.peak_recover_bytes);
            cJSON_AddNumberToObject(e, "peak_bytes", (double)total);
            cJSON_AddNumberToObject(e, "flops", (double)p.flops);
            cJSON_AddNumberToObject(e, "pruning_peak_bytes", (double)p.peak_prune_bytes);
            cJSON_AddNumberToObject(e, "est_seconds", secs);
            cJSON_AddItemToArray(list, e);
        } else {
            char w[32], rp[32], tp[32], tm[32];
            human(w, sizeof w, (double)p.working_bytes);
            human(rp, sizeof rp, (double)p.peak_recover_bytes);
            human(tp, sizeof tp, (double)total);
            human_time(tm, sizeof tm, secs);
            if (!p.working_bytes) { snprintf(w, sizeof w, "-"); snprintf(rp, sizeof rp, "-"); }
            printf("%-24s %12s %12s %12s %12.1f %10s\n", name, w, rp, tp, (double)p.flops / 1e12, tm);
        }
    }
    if (json) {
        char *s = cJSON_PrintUnformatted(list);
        if (s) { puts(s); free(s); }
        cJSON_Delete(list);
    } else {
        char e[32], d[32];
        human(e, sizeof e, (double)pe);
        human(d, sizeof d, (double)pd);
        printf("\ntotal peak = the largest of the pruning pass, recovery, drift (%s, %d windows) and evaluation (%s, %d windows of %d%s)\n",
               d, ndrift, e, ew, es, stream ? ", streamed" : "");
    }
    return rc;
}
