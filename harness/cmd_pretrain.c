/* freelunch pretrain: the dense base model, trained from scratch on the SOTU
 * train split.
 *
 * DIR (default <cache>/models/<preset>) ends up an HF model directory:
 * config.json, model.safetensors, the tokenizer (vocab.json, merges.txt)
 * and freelunch.json (provenance and the validation perplexities of the
 * model and of a unigram model of the same split). Beside them:
 *   data/train.bin  the train split, each document tokenised on its own and
 *                   followed by <|endoftext|>;
 *   data/val.bin    the validation split joined with "\n\n" and tokenised
 *                   (the evaluation protocol, docs/ARCHITECTURE.md);
 *   ckpt/           the last checkpoint: model, AdamW moments, step.
 * Batches are drawn from a PRNG seeded by (seed, step), so a run resumed
 * from a checkpoint takes exactly the steps an uninterrupted one would. */
#include "cli.h"
#include "presets.h"
#include "datasets/bpe.h"
#include "datasets/corpus.h"
#include "datasets/tokfile.h"
#include "eval/ppl.h"
#include "model/adamw.h"
#include "model/alloc.h"
#include "model/checkpoint.h"
#include "model/clock.h"
#include "model/err.h"
#include "model/fileio.h"
#include "model/rng.h"
#include "model/gemm.h"
#include "model/safetensors.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* dir + "/" + name into out (PATH_BUF bytes); paths are user-given, so an
 * over-long one is cut rather than overflowing (and then fails to open). */
#define PATH_BUF 4608
static char *pj(char *out, const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    if (b + 2 > PATH_BUF) b = PATH_BUF - 2;
    if (a + b + 2 > PATH_BUF) a = PATH_BUF - b - 2;
    memcpy(out, dir, a);
    out[a] = '/';
    memcpy(out + a + 1, name, b);
    out[a + 1 + b] = 0;
    return out;
}

static int exists(const char *p) { struct stat st; return stat(p, &st) == 0; }

/* ---- data ------------------------------------------------------------ */

/* Tokenizer: DIR/vocab.json + merges.txt, trained on the train split when
 * missing. Token streams: DIR/data/{train,val}.bin, made when missing. */
static int prepare_data(const fl_preset *p, const char *cache, const char *dir, fl_bpe **tok,
                        int32_t **train, int64_t *ntrain, int32_t **val, int64_t *nval) {
    char path[PATH_BUF], path2[PATH_BUF];
    fl_split tr = { 0 }, va = { 0 };
    pj(path, dir, "merges.txt");
    /* the ladder's rungs share one tokenizer: a rung built after another
     * of the same vocabulary (tiny, usually) takes its files, which are what
     * training would give anyway and saves the training */
    for (int i = 0; i < FL_N_PRESETS && !exists(path); i++) {
        const fl_preset *o = &FL_PRESETS[i];
        char od[PATH_BUF], om[PATH_BUF];
        pj(od, pj(om, cache, "models"), o->name);
        if (o == p || o->vocab != p->vocab || !strcmp(od, dir) || !exists(pj(om, od, "merges.txt"))) continue;
        if (fl_bpe_load(tok, od) != 0 || fl_bpe_vocab_size(*tok) != p->vocab) { fl_bpe_free(*tok); *tok = NULL; fl_err_clear(); continue; }
        int rc = fl_bpe_save(*tok, dir);
        fl_bpe_free(*tok);
        *tok = NULL;
        if (rc != 0) return -1;
        printf("pretrain: tokenizer of %d entries taken from %s (preset %s)\n", p->vocab, od, o->name);
    }
    if (!exists(path)) {
        if (fl_split_load(cache, "sotu-train", &tr) != 0) return -1;
        printf("pretrain: training a BPE tokenizer of %d entries on sotu-train (%d documents, %.1f MB)\n",
               p->vocab, tr.n, tr.bytes / 1e6);
        fflush(stdout);
        const char **texts = malloc(sizeof(char *) * tr.n);
        size_t *lens = malloc(sizeof(size_t) * tr.n);
        for (int i = 0; i < tr.n; i++) { texts[i] = tr.docs[i].text; lens[i] = tr.docs[i].len; }
        double t0 = fl_wall_s();
        int rc = fl_bpe_train(tok, texts, lens, tr.n, p->vocab, 0);
        free(texts); free(lens);
        if (rc != 0 || fl_bpe_save(*tok, dir) != 0) { fl_split_free(&tr); return -1; }
        printf("pretrain: tokenizer trained in %.1fs\n", fl_wall_s() - t0);
        fl_bpe_free(*tok);
    }
    if (fl_bpe_load(tok, dir) != 0) { fl_split_free(&tr); return -1; }
    if (fl_bpe_vocab_size(*tok) != p->vocab) {
        fl_split_free(&tr);
        return fl_err("%s: tokenizer has %d entries, preset %s needs %d", dir, fl_bpe_vocab_size(*tok), p->name, p->vocab);
    }
    pj(path, dir, "data/train.bin");
    pj(path2, dir, "data/val.bin");
    if (!exists(path) || !exists(path2)) {
        pj(path, dir, "data");
        if (fl_mkdir_p(path) != 0) return -1;
        if (!tr.docs && fl_split_load(cache, "sotu-train", &tr) != 0) return -1;
        if (fl_split_load(cache, "sotu-val", &va) != 0) { fl_split_free(&tr); return -1; }
        int eot = fl_bpe_eot(*tok);
        int64_t cap = 1 << 20, n = 0;
        int32_t *all = malloc(sizeof(int32_t) * cap);
        for (int i = 0; i < tr.n; i++) {
            int32_t *ids; int64_t k;
            if (fl_bpe_encode(*tok, tr.docs[i].text, tr.docs[i].len, &ids, &k) != 0) { free(all); return -1; }
            while (n + k + 1 > cap) { cap *= 2; all = realloc(all, sizeof(int32_t) * cap); }
            memcpy(all + n, ids, sizeof(int32_t) * k);
            n += k;
            if (eot >= 0) all[n++] = eot;
            free(ids);
        }
        pj(path, dir, "data/train.bin");
        int rc = fl_tokfile_write(path, all, n);
        free(all);
        size_t vl;
        char *vt = fl_split_join(&va, &vl);
        int32_t *vids; int64_t vk;
        if (rc != 0 || fl_bpe_encode(*tok, vt, vl, &vids, &vk) != 0) { free(vt); fl_split_free(&tr); fl_split_free(&va); return -1; }
        free(vt);
        rc = fl_tokfile_write(path2, vids, vk);
        free(vids);
        fl_split_free(&tr); fl_split_free(&va);
        if (rc != 0) return -1;
    }
    fl_split_free(&tr);
    pj(path, dir, "data/train.bin");
    if (fl_tokfile_read(path, p->vocab, train, ntrain) != 0) return -1;
    if (fl_tokfile_read(path2, p->vocab, val, nval) != 0) return -1;
    return 0;
}

/* Validation perplexity of an add-one unigram model of the train stream,
 * on exactly the tokens the evaluator predicts (windows of seqlen, tokens
 * 1..seqlen-1 of each): the baseline a language model must beat. */
static double unigram_ppl(const int32_t *train, int64_t ntr, const int32_t *val, int64_t nval, int V, int seqlen) {
    double *cnt = calloc(V, sizeof(double));
    for (int64_t i = 0; i < ntr; i++) cnt[train[i]] += 1;
    double tot = ntr + V, nll = 0;
    int64_t k = 0;
    for (int64_t w = 0; w + seqlen <= nval; w += seqlen)
        for (int t = 1; t < seqlen; t++, k++) nll -= log((cnt[val[w + t]] + 1) / tot);
    free(cnt);
    return k ? exp(nll / k) : NAN;
}

/* ---- checkpoints ------------------------------------------------------ */

static int save_ckpt(const char *dir, fl_model *m, fl_adamw *o, int step, double elapsed) {
    char tmp[PATH_BUF], fin[PATH_BUF], old[PATH_BUF], path[PATH_BUF];
    pj(tmp, dir, "ckpt.tmp");
    pj(fin, dir, "ckpt");
    pj(old, dir, "ckpt.old");
    if (fl_model_save(m, tmp) != 0) return -1;
    fl_st_out *ts = calloc((size_t)2 * o->n, sizeof(fl_st_out));
    char (*names)[80] = calloc((size_t)2 * o->n, 80);
    for (int i = 0; i < o->n; i++)
        for (int k = 0; k < 2; k++) {
            snprintf(names[2 * i + k], 80, "%s.%s", k ? "v" : "m", o->p[i]->name);
            ts[2 * i + k] = (fl_st_out){ .name = names[2 * i + k], .data = k ? o->p[i]->v : o->p[i]->m,
                                         .ndim = 1, .shape = { o->p[i]->n } };
        }
    pj(path, tmp, "optim.safetensors");
    int rc = fl_st_write(path, ts, 2 * o->n);
    free(ts); free(names);
    if (rc != 0) return -1;
    char js[256];
    snprintf(js, sizeof js, "{\"step\": %d, \"elapsed\": %.3f}\n", step, elapsed);
    pj(path, tmp, "state.json");
    if (fl_write_file_atomic(path, js, strlen(js)) != 0) return -1;
    /* swap: ckpt -> ckpt.old, ckpt.tmp -> ckpt, drop ckpt.old. A kill at any
     * point leaves ckpt or ckpt.old complete. */
    if (fl_remove_tree(old) != 0) return -1;
    if (exists(fin) && rename(fin, old) != 0) return fl_err("%s: cannot rename", fin);
    if (rename(tmp, fin) != 0) return fl_err("%s: cannot rename", tmp);
    if (fl_remove_tree(old) != 0) return -1;
    return 0;
}

static int load_ckpt(const char *ck, fl_model *m, fl_adamw *o, int *step, double *elapsed) {
    char path[PATH_BUF];
    fl_model tmp;
    if (fl_model_load(&tmp, ck) != 0) return -1;
    if (tmp.n_floats != m->n_floats) { fl_model_free(&tmp); return fl_err("%s: checkpoint is of another shape", ck); }
    memcpy(m->data, tmp.data, sizeof(float) * m->n_floats);
    fl_model_free(&tmp);
    pj(path, ck, "optim.safetensors");
    fl_st_file f;
    if (fl_st_open(&f, path) != 0) return -1;
    for (int i = 0; i < o->n; i++)
        for (int k = 0; k < 2; k++) {
            char nm[80];
            snprintf(nm, sizeof nm, "%s.%s", k ? "v" : "m", o->p[i]->name);
            const fl_st_tensor *t = fl_st_find(&f, nm);
            if (!t || t->numel != o->p[i]->n) { fl_st_close(&f); return fl_err("%s: missing or misshapen %s", path, nm); }
            if (fl_st_read_f32(&f, t, k ? o->p[i]->v : o->p[i]->m) != 0) { fl_st_close(&f); return -1; }
        }
    fl_st_close(&f);
    pj(path, ck, "state.json");
    FILE *fp = fopen(path, "rb");
    if (!fp) return fl_err("%s: missing", path);
    char buf[512] = { 0 };
    size_t nr = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[nr] = 0;
    cJSON *j = cJSON_Parse(buf);
    cJSON *s = j ? cJSON_GetObjectItem(j, "step") : NULL, *e = j ? cJSON_GetObjectItem(j, "elapsed") : NULL;
    if (!cJSON_IsNumber(s)) { cJSON_Delete(j); return fl_err("%s: no step", path); }
    *step = s->valueint;
    *elapsed = cJSON_IsNumber(e) ? e->valuedouble : 0;
    cJSON_Delete(j);
    o->t = *step;
    return 0;
}

/* ---- the command -------------------------------------------------------- */

static const char *PRETRAIN_HELP =
    "usage: freelunch pretrain [--preset NAME] [--out DIR] [--resume] [--cache DIR] [--steps N]\n"
    "Trains a preset's dense base model from scratch on the SOTU train split:\n"
    "trains its BPE tokenizer if needed, then AdamW with warm-up and cosine\n"
    "decay, validation perplexity every few hundred steps, checkpoints, and a\n"
    "progress line with step, loss, tokens/s and ETA. Writes an HF model\n"
    "directory with the tokenizer beside it and freelunch.json (validation\n"
    "perplexity of the model and of a unigram model of the same split).\n"
    "  --preset NAME  tiny (default), a ladder rung, or micro (seconds, for tests);\n"
    "                 `freelunch list presets` lists them\n"
    "  --out DIR      default <cache>/models/<preset>\n"
    "  --resume       continue from DIR/ckpt if present\n"
    "  --cache DIR    corpus cache (default $FL_CACHE or ~/.cache/freelunch)\n"
    "  --steps N      override the preset's step count\n"
    "  --lr-scale F   multiply the preset's peak learning rate by F (the ladder's\n"
    "                 check of its rule on sotu-val: README \"The ladder\"); give\n"
    "                 --resume the same F\n" FL_COMMON_HELP;

int fl_cmd_pretrain(int argc, char **argv) {
    static struct option o[] = { { "preset", required_argument, 0, 'p' }, { "out", required_argument, 0, 'o' },
                                 { "resume", no_argument, 0, 'r' }, { "cache", required_argument, 0, 'c' },
                                 { "steps", required_argument, 0, 'n' }, { "lr-scale", required_argument, 0, 'l' },
                                 FL_COMMON_OPTS, { 0, 0, 0, 0 } };
    const char *pname = "tiny", *out = NULL, *cache_opt = NULL;
    int resume = 0, steps_opt = 0, c;
    double lr_scale = 1;
    while ((c = getopt_long(argc, argv, "", o, NULL)) != -1) {
        switch (c) {
        case 'p': pname = optarg; break;
        case 'o': out = optarg; break;
        case 'r': resume = 1; break;
        case 'c': cache_opt = optarg; break;
        case 'n': steps_opt = fl_cli_int("pretrain", "--steps", optarg, 1); break;
        case 'l':
            lr_scale = fl_cli_float("pretrain", "--lr-scale", optarg);
            if (!(lr_scale > 0 && lr_scale <= 1000)) return fl_cli_usage("pretrain", "--lr-scale: must be in (0, 1000]");
            break;
        case 'h': fputs(PRETRAIN_HELP, stdout); return 0;
        default: if (!fl_cli_common_opt(c, "pretrain")) return fl_cli_usage("pretrain", "unknown option");
        }
    }
    const fl_preset *p = fl_preset_find(pname);
    if (!p) return fl_cli_usage("pretrain", "unknown preset (freelunch list presets names them)");
    char cache[4096], dirbuf[PATH_BUF], mdir[PATH_BUF];
    fl_cache_dir(cache, sizeof cache, cache_opt);
    if (!out) { pj(dirbuf, pj(mdir, cache, "models"), p->name); out = dirbuf; }
    if (fl_mkdir_p(out) != 0) return fl_cli_fail();
    {   /* a finished model is kept: the main job builds it once and reuses it */
        char fj[PATH_BUF], cj[PATH_BUF];
        if (exists(pj(fj, out, "freelunch.json")) && exists(pj(cj, out, "model.safetensors")) && !steps_opt) {
            printf("pretrain: %s already holds the trained %s model (remove the directory to retrain)\n", out, p->name);
            return 0;
        }
    }
    fl_bpe *tok = NULL;
    int32_t *train = NULL, *val = NULL;
    int64_t ntr = 0, nval = 0;
    if (prepare_data(p, cache, out, &tok, &train, &ntr, &val, &nval) != 0) return fl_cli_fail();
    fl_bpe_free(tok);
    const int T = p->seqlen, B = p->batch, S = steps_opt ? steps_opt : p->steps;
    if (ntr < T + 1) return fl_err("%s/data/train.bin: %lld tokens, fewer than one window", out, (long long)ntr), fl_cli_fail();

    fl_config cfg;
    fl_preset_config(p, &cfg);
    fl_model m;
    if (fl_model_create(&m, &cfg) != 0) return fl_cli_fail();
    fl_model_init_random(&m, p->seed);
    fl_model_set_all_trainable(&m, 1);
    fl_adamw_cfg oc = fl_preset_adamw(p, S, lr_scale);
    fl_adamw opt;
    if (fl_adamw_init(&opt, &m, &oc) != 0) return fl_cli_fail();
    int step = 0;
    double elapsed0 = 0;
    char ck[PATH_BUF];
    pj(ck, out, "ckpt");
    if (resume && !exists(ck)) pj(ck, out, "ckpt.old");
    if (resume && exists(ck)) {
        if (load_ckpt(ck, &m, &opt, &step, &elapsed0) != 0) return fl_cli_fail();
        printf("pretrain: resumed from %s at step %d\n", ck, step);
    }
    double uni = unigram_ppl(train, ntr, val, nval, cfg.vocab, T);
    printf("pretrain: preset %s (%s), %lld parameters\n", p->name, p->desc, (long long)fl_model_num_params(&m));
    printf("pretrain: %lld train tokens, %lld validation tokens; %d steps of %d x %d tokens; unigram validation ppl %.2f\n",
           (long long)ntr, (long long)nval, S, B, T, uni);
    fflush(stdout);

    fl_acts *acts = fl_acts_new();
    int32_t *in = malloc(sizeof(int32_t) * B * T), *tg = malloc(sizeof(int32_t) * B * T);
    int tty = isatty(1);
    double t0 = fl_wall_s(), last_val = NAN, ema = NAN;
    int first = step;
    for (step = step + 1; step <= S; step++) {
        uint64_t rs = p->seed * 1000003ull + (uint64_t)step;
        for (int b = 0; b < B; b++) {
            int64_t off = (int64_t)(fl_splitmix64(&rs) % (uint64_t)(ntr - T));
            memcpy(in + b * T, train + off, sizeof(int32_t) * T);
            memcpy(tg + b * T, train + off + 1, sizeof(int32_t) * T);
        }
        fl_fwd a = { .B = B, .T = T, .tokens = in, .targets = tg };
        fl_range r = fl_range_whole(&m);
        if (fl_forward(&m, r, &a, acts) != 0 || fl_backward(&m, r, acts, NULL, NULL) != 0) return fl_cli_fail();
        fl_adamw_step(&opt);
        if (!isfinite(a.loss)) return fl_err("%s: training diverged at step %d (loss %g)", out, step, a.loss), fl_cli_fail();
        ema = isnan(ema) ? a.loss : 0.9 * ema + 0.1 * a.loss;
        double el = fl_wall_s() - t0, tps = (double)(step - first) * B * T / el, eta = el / (step - first) * (S - step);
        if (step % p->eval_every == 0 || step == S) {
            fl_ppl_result vr;
            if (fl_eval_ppl(&m, val, nval, T, 0, p->eval_windows, 8, 0, &vr) != 0) return fl_cli_fail();
            last_val = vr.ppl;
        }
        char vs[32] = "-";   /* before the first evaluation there is no validation ppl yet */
        if (last_val == last_val) snprintf(vs, sizeof vs, "%.2f", last_val);
        if (tty) {
            int w = 30, done = (int)((double)step / S * w);
            char bar[40];
            for (int i = 0; i < w; i++) bar[i] = i < done ? '#' : '.';
            bar[w] = 0;
            printf("\r[%s] step %d/%d loss %.3f val ppl %s %.0f tok/s ETA %.0fs   ", bar, step, S, ema, vs, tps, eta);
            fflush(stdout);
        } else if (step % (S / 20 > 0 ? S / 20 : 1) == 0 || step == S) {
            printf("pretrain: step %d/%d loss %.3f val ppl %s %.0f tok/s eta %.0fs\n", step, S, ema, vs, tps, eta);
            fflush(stdout);
        }
        if (step % p->ckpt_every == 0 && step < S) {
            if (save_ckpt(out, &m, &opt, step, elapsed0 + el) != 0) return fl_cli_fail();
        }
    }
    if (tty) printf("\n");
    double train_s = elapsed0 + fl_wall_s() - t0;
    fl_acts_free(acts);
    free(in); free(tg);
    fl_ppl_result vr;
    if (fl_eval_ppl(&m, val, nval, T, 0, 0, 8, 0, &vr) != 0) return fl_cli_fail();
    if (fl_model_save(&m, out) != 0) return fl_cli_fail();
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", "pretrained");
    cJSON_AddStringToObject(j, "preset", p->name);
    cJSON_AddStringToObject(j, "corpus", "sotu-train");
    cJSON_AddNumberToObject(j, "steps", S);
    cJSON_AddNumberToObject(j, "lr", oc.lr);
    cJSON_AddNumberToObject(j, "batch", B);
    cJSON_AddNumberToObject(j, "seqlen", T);
    cJSON_AddNumberToObject(j, "train_tokens", (double)ntr);
    cJSON_AddNumberToObject(j, "train_seconds", train_s);
    cJSON_AddNumberToObject(j, "threads", fl_threads());
    cJSON_AddStringToObject(j, "backend", fl_gemm_backend_name());
    cJSON_AddNumberToObject(j, "val_ppl", vr.ppl);
    cJSON_AddNumberToObject(j, "val_tokens", (double)vr.tokens);
    cJSON_AddNumberToObject(j, "unigram_val_ppl", uni);
    char *js = cJSON_Print(j);
    char path[4200];
    pj(path, out, "freelunch.json");
    int rc = fl_write_file_atomic(path, js, strlen(js));
    free(js);
    cJSON_Delete(j);
    if (rc != 0) return fl_cli_fail();
    printf("pretrain: done in %.0fs: validation ppl %.2f (unigram %.2f) over %lld tokens; model in %s\n",
           train_s, vr.ppl, uni, (long long)vr.tokens, out);
    /* The checkpoints are spent; one left behind costs disk, not results. */
    if (fl_remove_tree(pj(path, out, "ckpt")) != 0 || fl_remove_tree(pj(ck, out, "ckpt.old")) != 0)
        fprintf(stderr, "freelunch: warning: %s\n", fl_errmsg());
    free(train); free(val);
    fl_adamw_free(&opt);
    fl_model_free(&m);
    return 0;
}
