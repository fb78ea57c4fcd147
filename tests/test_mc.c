/* The multiple-choice evaluator (eval/mc.c) and the task formats
 * (eval/mc_tasks.c):
 *  - every format's log-likelihoods, greedy flags, acc and acc_norm against
 *    tests/oracle/mc_ref.py, an lm-eval-style computation on the PyTorch
 *    model of torch_ref.py, with a byte-level tokenizer both sides share
 *    by construction; once with the model's whole context and once with a
 *    window short enough that contexts are cut from the left;
 *  - each task's prompt strings for a fixed item against the exact strings
 *    lm-eval builds (written down from its source, file named at each);
 *  - malformed files give one error naming the file and line. */
#include "tests/testutil.h"
#include "eval/mc.h"
#include "eval/mc_tasks.h"
#include "model/checkpoint.h"
#include "model/err.h"
#include "model/gemm.h"
#include "datasets/corpus.h"
#include <cjson/cJSON.h>
#include <sys/stat.h>

static char g_dir[256], g_model[300];

/* A byte-level tokenizer (no merges: ids 0..255 are the bytes, 256 is
 * <|endoftext|>) saved into the model directory. */
/* Random weights of config C, scaled up so predictions are far from
 * uniform, saved into g_model. */
static void save_random(const fl_config *c, uint64_t seed) {
    fl_model m;
    assert_int_equal(fl_model_create(&m, c), 0);
    fl_model_init_random(&m, seed);
    for (int i = 0; i < m.n_params; i++)
        for (int64_t j = 0; j < m.params[i].n; j++) m.params[i].w[j] *= m.params[i].kind == FL_PK_NORM_W ? 1.0f : 6.0f;
    assert_int_equal(fl_model_save(&m, g_model), 0);
    fl_model_free(&m);
}

static void make_model(fl_family f) {
    fl_config c = { 0 };
    fl_config_family_defaults(&c, f);
    c.vocab = 260; c.d = 32; c.n_layer = 2; c.n_head = 4; c.n_kv_head = f == FL_LLAMA ? 2 : 4; c.head_dim = 8;
    c.d_ff = 48; c.max_pos = 96;
    snprintf(g_model, sizeof g_model, "%s/%s", g_dir, fl_family_name(f));
    save_random(&c, 23);
    const char *txt = "abc";
    size_t len = 3;
    fl_bpe *t;
    assert_int_equal(fl_bpe_train(&t, &txt, &len, 1, 257, 0), 0);
    assert_int_equal(fl_bpe_save(t, g_model), 0);
    fl_bpe_free(t);
}

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(s, f);
    fclose(f);
}

/* Small task files in each dataset's own layout. Contexts run past 40
 * bytes so that the short window cuts them. */
static const struct { const char *fmt, *file, *text; } FILES[] = {
    { "boolq", "boolq.jsonl",
      "{\"question\": \"is the sky blue\", \"passage\": \"The sky is blue on a clear day because of scattering.\", \"idx\": 0, \"label\": 1}\n"
      "{\"question\": \"do cats bark\", \"title\": \"Cat\", \"answer\": false, \"passage\": \"Cats meow and purr; dogs bark.\"}\n"
      "\n"
      "{\"question\": \"is water wet\", \"passage\": \"Water.\", \"label\": false}\n" },
    { "rte", "rte.tsv",
      "index\tsentence1\tsentence2\tlabel\n"
      "0\tDana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer.\tChristopher Reeve had an accident.\tnot_entailment\n"
      "1\tYet, we now are discovering that antibiotics are losing their effectiveness.\tBacteria is winning the war against antibiotics.\tentailment\n" },
    { "rte", "rte.jsonl",
      "{\"premise\": \"The cat sat on the mat all afternoon.\", \"hypothesis\": \"A cat sat.\", \"label\": \"entailment\", \"idx\": 0}\n"
      "{\"sentence1\": \"It rained in Paris.\", \"sentence2\": \"Paris was dry.\", \"label\": 1, \"idx\": 1}\n" },
    { "hellaswag", "hellaswag.jsonl",
      "{\"ind\": 24, \"activity_label\": \"Roof shingle removal\", \"ctx_a\": \"A man is sitting on a roof.\", \"ctx_b\": \"he\", "
      "\"ctx\": \"A man is sitting on a roof. he\", \"split\": \"val\", \"split_type\": \"indomain\", \"label\": 3, "
      "\"endings\": [\"is using wrap to wrap a pair of skis.\", \"is ripping level tiles off.\", \"is holding a rubik's cube.\", "
      "\"starts pulling up roofing on a roof.\"], \"source_id\": \"activitynet~v_-JhWjGDPHMY\"}\n"
      "{\"activity_label\": \"Home and Garden\", \"ctx_a\": \"[title] How to  clean a grill. [step] Heat it up.\", \"ctx_b\": \"THEN scrub\", "
      "\"label\": \"0\", \"endings\": [\"the grates [substeps] with a brush.\", \"nothing.\"]}\n" },
    { "winogrande", "winogrande.jsonl",
      "{\"qID\": \"3QHITW7OYO7Q6B6ISU2UMJB84ZLAQE-2\", \"sentence\": \"Ian volunteered to eat Dennis's menudo after already having a bowl because _ despised eating intestine.\", "
      "\"option1\": \"Ian\", \"option2\": \"Dennis\", \"answer\": \"2\"}\n"
      "{\"qID\": \"x\", \"sentence\": \"_ won the race easily.\", \"option1\": \"Sam\", \"option2\": \"The old horse\", \"answer\": \"1\"}\n" },
    { "arc_easy", "arc.jsonl",
      "{\"id\": \"Mercury_7175875\", \"question\": {\"stem\": \"An astronomer observes that a planet rotates faster after a meteorite impact. "
      "Which is the most likely effect of this increase in rotation?\", \"choices\": [{\"text\": \"Planetary density will decrease.\", \"label\": \"A\"}, "
      "{\"text\": \"Planetary years will become longer.\", \"label\": \"B\"}, {\"text\": \"Planetary days will become shorter.\", \"label\": \"C\"}, "
      "{\"text\": \"Planetary gravity will become stronger.\", \"label\": \"D\"}]}, \"answerKey\": \"C\"}\n"
      "{\"id\": \"x\", \"question\": \"Which is a gas?\", \"choices\": {\"text\": [\"ice\", \"steam\", \"rock\"], \"label\": [\"1\", \"2\", \"3\"]}, \"answerKey\": \"2\"}\n" },
    { "openbookqa", "obqa.jsonl",
      "{\"id\": \"7-980\", \"question\": {\"stem\": \"The sun is responsible for\", \"choices\": [{\"text\": \"puppies learning new tricks\", \"label\": \"A\"}, "
      "{\"text\": \"children growing up and getting old\", \"label\": \"B\"}, {\"text\": \"flowers wilting in a vase\", \"label\": \"C\"}, "
      "{\"text\": \"plants sprouting, blooming and wilting\", \"label\": \"D\"}]}, \"answerKey\": \"D\"}\n"
      "{\"id\": \"y\", \"question_stem\": \"Frogs are\", \"choices\": {\"text\": [\"amphibians\", \"birds\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \" A\"}\n" },
    { "lambada", "lambada.jsonl",
      "{\"text\": \"In my palm is a clear stone, and inside it is a small ivory statuette. A guardian angel. Figured if you're going to be out at night getting hit by cars, you might as well have some backup\"}\n"
      "{\"text\": \"one two  three\"}\n"
      "{\"text\": \"word\"}\n" },
    { "mc", "mc.jsonl",
      "{\"context\": \"We choose to go to the moon in this decade and do the other things, \", \"choices\": [\"not because they are easy\", \"b\"], \"label\": 0}\n"
      "{\"context\": \"\", \"choices\": [\"x y z\", \"hello there\", \"a\"], \"label\": 2}\n" },
};
#define NFILES (int)(sizeof FILES / sizeof *FILES)

/* Every file scored by freelunch and by the oracle on the model in
 * g_model with its own tokenizer; ENV (or "") prefixes the oracle's
 * command line. */
static void against_oracle_in(int window, const char *env) {
    fl_model m;
    fl_bpe *tok;
    assert_int_equal(fl_model_load(&m, g_model), 0);
    if (fl_bpe_load(&tok, g_model) != 0) fail_msg("%s", fl_errmsg());
    {   /* one run of the oracle for every file (torch loads once) */
        static char cmd[4000];
        size_t cl = (size_t)snprintf(cmd, sizeof cmd, "%s /usr/bin/python3 tests/oracle/mc_ref.py %s %d", env, g_model, window);
        for (int j = 0; j < NFILES; j++)
            cl += (size_t)snprintf(cmd + cl, sizeof cmd - cl, " %s %s/%s %s/ref%d.json", FILES[j].fmt, g_dir, FILES[j].file, g_dir, j);
        for (int j = 0; j < NFILES; j++) {
            char p2[400];
            snprintf(p2, sizeof p2, "%s/%s", g_dir, FILES[j].file);
            write_file(p2, FILES[j].text);
        }
        assert_true(cl < sizeof cmd);
        assert_int_equal(system(cmd), 0);
    }
    for (int k = 0; k < NFILES; k++) {
        char path[400], out[400];
        snprintf(path, sizeof path, "%s/%s", g_dir, FILES[k].file);
        fl_mc_task t;
        const fl_mc_format *f = fl_mc_format_find(FILES[k].fmt);
        assert_non_null(f);
        if (fl_mc_task_load(f, path, 0, &t) != 0) fail_msg("%s", fl_errmsg());
        fl_mc_result r;
        double *ll;
        uint8_t *gr = NULL;
        /* batch 3: the rows of a batch have different lengths (padding) */
        if (fl_mc_eval(&m, tok, &t, 0, window, 3, 0, &r, &ll, &gr) != 0) fail_msg("%s", fl_errmsg());
        snprintf(out, sizeof out, "%s/ref%d.json", g_dir, k);
        char *js = tu_read_all(out);
        cJSON *o = cJSON_Parse(js);
        assert_non_null(o);
        cJSON *lls = cJSON_GetObjectItem(o, "loglik"), *grs = cJSON_GetObjectItem(o, "greedy");
        assert_int_equal(cJSON_GetArraySize(lls), t.n);
        int q = 0;
        for (int i = 0; i < t.n; i++) {
            cJSON *row = cJSON_GetArrayItem(lls, i), *grow = cJSON_GetArrayItem(grs, i);
            assert_int_equal(cJSON_GetArraySize(row), t.items[i].n);
            assert_int_equal((int)cJSON_GetArrayItem(cJSON_GetObjectItem(o, "gold"), i)->valuedouble, t.items[i].label);
            for (int c = 0; c < t.items[i].n; c++, q++) {
                double want = cJSON_GetArrayItem(row, c)->valuedouble;
                if (fabs(ll[q] - want) > 1e-4 * (1 + fabs(want)))
                    fail_msg("%s item %d choice %d: loglik %.8f, torch %.8f", FILES[k].file, i, c, ll[q], want);
                if (gr) assert_int_equal(gr[q], cJSON_IsTrue(cJSON_GetArrayItem(grow, c)));
            }
        }
        assert_true(fabs(r.acc - cJSON_GetObjectItem(o, "acc")->valuedouble) < 1e-12);
        if (f->norm) assert_true(fabs(r.acc_norm - cJSON_GetObjectItem(o, "acc_norm")->valuedouble) < 1e-12);
        else assert_true(isnan(r.acc_norm));
        if (t.kind == FL_MC_LOGLIK) {
            double p = cJSON_GetObjectItem(o, "ppl")->valuedouble;
            assert_true(fabs(r.ppl - p) < 1e-4 * p);
        }
        assert_int_equal(r.n, t.n);
        cJSON_Delete(o);
        free(js);
        free(ll);
        free(gr);
        fl_mc_task_free(&t);
    }
    fl_bpe_free(tok);
    fl_model_free(&m);
}

static void against_oracle(fl_family fam, int window) {
    make_model(fam);
    against_oracle_in(window, "");
}

/* A real HF model directory: a llama config, and tokenizer.json +
 * tokenizer_config.json of Llama-2's tokenizer as the @lenml package ships
 * them (SentencePiece-style BPE; add_bos_token true, which lm-eval's
 * requests do not take: tok_encode adds no special tokens). The oracle
 * tokenizes with HF's own JavaScript encoder
 * (tests/oracle/hf_tokenizer_ref.mjs), not freelunch's. */
static void test_oracle_hf_tokenizer(void **st) {
    (void)st;
    char cache[512], node[700], cmd[2400];
    fl_cache_dir(cache, sizeof cache, NULL);
    snprintf(node, sizeof node, "%s/node-hf", cache);
    snprintf(cmd, sizeof cmd, "sh tests/oracle/hf_install.sh '%s' >&2", node);
    assert_int_equal(system(cmd), 0);
    snprintf(g_model, sizeof g_model, "%s/hf-llama", g_dir);
    mkdir(g_model, 0755);
    for (int i = 0; i < 2; i++) {
        const char *f = i ? "tokenizer_config.json" : "tokenizer.json";
        snprintf(cmd, sizeof cmd, "cp '%s/tok/llama2/%s' '%s/%s'", node, f, g_model, f);
        assert_int_equal(system(cmd), 0);
    }
    fl_bpe *tok;
    if (fl_bpe_load(&tok, g_model) != 0) fail_msg("%s", fl_errmsg());
    fl_config c = { 0 };
    fl_config_family_defaults(&c, FL_LLAMA);
    c.vocab = fl_bpe_vocab_size(tok); c.d = 16; c.n_layer = 2; c.n_head = 2; c.n_kv_head = 1; c.head_dim = 8;
    c.d_ff = 32; c.max_pos = 96; c.bos_id = 1;   /* <s> */
    fl_bpe_free(tok);
    save_random(&c, 29);
    char env[1100];
    snprintf(env, sizeof env, "MC_REF_HF='%s:%s'", node, g_model);
    against_oracle_in(40, env);   /* 40: some contexts cut from the left */
}

static void test_oracle_llama_full(void **st) { (void)st; against_oracle(FL_LLAMA, 96); }
static void test_oracle_gpt2_truncated(void **st) { (void)st; against_oracle(FL_GPT2, 48); }

/* The truncation itself: with window W, a request scores the same as the
 * request whose context keeps only its last W+1-ncont tokens. */
static void test_truncation(void **st) {
    (void)st;
    make_model(FL_LLAMA);
    fl_model m;
    assert_int_equal(fl_model_load(&m, g_model), 0);
    int32_t ctx[80], cont[5] = { 7, 8, 9, 10, 11 };
    for (int i = 0; i < 80; i++) ctx[i] = (i * 37) % 250;
    int W = 20;
    fl_mc_req r[3] = { { ctx, 80, cont, 5 }, { ctx + 80 - (W + 1 - 5), W + 1 - 5, cont, 5 }, { ctx + 40, 40, cont, 5 } };
    double ll[3], ll_full;
    int cut = -1;
    assert_int_equal(fl_mc_loglik(&m, r, 3, W, 2, 0, ll, NULL, &cut), 0);
    assert_int_equal(cut, 0);
    assert_true(fabs(ll[0] - ll[1]) < 1e-5);
    assert_true(fabs(ll[0] - ll[2]) < 1e-5);   /* cut from 40 tokens as from 80 */
    /* with the whole context the score differs: the cut mattered */
    assert_int_equal(fl_mc_loglik(&m, r, 1, 90, 1, 0, &ll_full, NULL, NULL), 0);
    assert_true(fabs(ll_full - ll[0]) > 1e-4);
    /* a continuation longer than the window is scored over its last W
     * tokens: the same as the request whose context is its first 10 */
    int32_t big[30];
    for (int i = 0; i < 30; i++) big[i] = (i * 11 + 3) % 250;
    fl_mc_req b[2] = { { ctx, 3, big, 30 }, { big, 10, big + 10, 20 } };
    assert_int_equal(fl_mc_loglik(&m, b, 2, W, 2, 0, ll, NULL, &cut), 0);
    assert_int_equal(cut, 1);
    assert_true(fabs(ll[0] - ll[1]) < 1e-5);
    fl_model_free(&m);
}

/* lm-eval's _encode_pair with a tokenizer that merges: the trailing space
 * of "Answer: " moves to the continuation, and the continuation's tokens
 * are the whole string's after the context's count. */
static void test_encode_pair(void **st) {
    (void)st;
    const char *txt = "Answer: yes Answer: no Answer: yes yes no no Answer:";
    size_t len = strlen(txt);
    fl_bpe *t;
    if (fl_bpe_train(&t, &txt, &len, 1, 266, 0) != 0) fail_msg("%s", fl_errmsg());
    int32_t *ids, *a, *b;
    int nc, nk;
    int64_t na, nb;
    assert_int_equal(fl_mc_encode_pair(t, "Q\nAnswer: ", "yes", 256, &ids, &nc, &nk), 0);
    assert_int_equal(fl_bpe_encode(t, "Q\nAnswer:", 9, &a, &na), 0);
    assert_int_equal(fl_bpe_encode(t, "Q\nAnswer: yes", 13, &b, &nb), 0);
    assert_int_equal(nc, na);
    assert_int_equal(nc + nk, nb);
    assert_memory_equal(ids, b, sizeof(int32_t) * (size_t)nb);
    char *dec;
    size_t dl;
    assert_int_equal(fl_bpe_decode(t, ids + nc, nk, &dec, &dl), 0);
    assert_string_equal(dec, " yes");
    assert_true(nk < 4);   /* " yes" merged: not one token per byte */
    free(dec); free(ids); free(a); free(b);
    /* an empty context becomes the prefix token */
    assert_int_equal(fl_mc_encode_pair(t, "", " yes", 256, &ids, &nc, &nk), 0);
    assert_int_equal(nc, 1);
    assert_int_equal(ids[0], 256);
    free(ids);
    assert_int_equal(fl_mc_encode_pair(t, "", " yes", -1, &ids, &nc, &nk), -1);
    fl_bpe_free(t);
}

/* ---- the prompts lm-eval builds, for a fixed item of each task ---------- */

static fl_mc_task parse(const char *fmt, const char *line) {
    fl_mc_task t;
    if (fl_mc_task_parse(fl_mc_format_find(fmt), "x.jsonl", line, strlen(line), 0, &t) != 0) fail_msg("%s", fl_errmsg());
    assert_int_equal(t.n, 1);
    return t;
}

static void test_prompts(void **st) {
    (void)st;
    /* lm_eval/tasks/super_glue/boolq/default.yaml:
     * "{{passage}}\nQuestion: {{question}}?\nAnswer:", ["no", "yes"] */
    fl_mc_task t = parse("boolq", "{\"question\": \"is confectionary sugar the same as powdered sugar\", \"passage\": "
                                  "\"Powdered sugar, also called confectioners' sugar, is a finely ground sugar.\", \"label\": 1}");
    assert_string_equal(t.items[0].ctx[0], "Powdered sugar, also called confectioners' sugar, is a finely ground sugar.\n"
                                           "Question: is confectionary sugar the same as powdered sugar?\nAnswer:");
    assert_string_equal(t.items[0].cont[0], " no");
    assert_string_equal(t.items[0].cont[1], " yes");
    assert_int_equal(t.items[0].label, 1);
    assert_int_equal(t.items[0].chars[1], 3);
    fl_mc_task_free(&t);

    /* lm_eval/tasks/glue/rte/default.yaml:
     * "{{sentence1}}\nQuestion: {{sentence2}} True or False?\nAnswer:", ["True", "False"] */
    t = parse("rte", "{\"sentence1\": \"No Weapons of Mass Destruction Found in Iraq Yet.\", \"sentence2\": "
                     "\"Weapons of Mass Destruction Found in Iraq.\", \"label\": 1, \"idx\": 0}");
    assert_string_equal(t.items[0].ctx[1], "No Weapons of Mass Destruction Found in Iraq Yet.\nQuestion: Weapons of Mass "
                                           "Destruction Found in Iraq. True or False?\nAnswer:");
    assert_string_equal(t.items[0].cont[0], " True");
    assert_string_equal(t.items[0].cont[1], " False");
    assert_int_equal(t.items[0].label, 1);
    fl_mc_task_free(&t);

    /* lm_eval/tasks/hellaswag/utils.py: query = preprocess(activity_label +
     * ": " + ctx_a + " " + ctx_b.capitalize()); preprocess strips, turns
     * " [title]" into ". ", drops "[...]" and "  " -> " " once. */
    t = parse("hellaswag", "{\"activity_label\": \"Home and Garden\", \"ctx_a\": \"[title] How to clean a grill. [step] "
                           "Heat  it.\", \"ctx_b\": \"tHEN SCRUB\", \"label\": 1, \"endings\": [\" the grates [substeps] "
                           "with a brush. \", \"rinse   it [title] off.\"]}");
    /* "Home and Garden: [title] How to clean a grill. [step] Heat  it. Then scrub"
     * -> strip -> " [title]" -> ". " -> "Home and Garden:.  How to clean a grill. [step] Heat  it. Then scrub"
     * -> drop brackets -> "Home and Garden:.  How to clean a grill.  Heat  it. Then scrub" -> "  " -> " " */
    assert_string_equal(t.items[0].ctx[0], "Home and Garden:. How to clean a grill. Heat it. Then scrub");
    assert_string_equal(t.items[0].cont[0], " the grates with a brush.");
    /* "rinse   it. off." : replace("  ", " ") is one pass, so 3 spaces become 2 */
    assert_string_equal(t.items[0].cont[1], " rinse  it. off.");
    assert_int_equal(t.items[0].chars[0], (int)strlen("the grates with a brush."));
    fl_mc_task_free(&t);

    /* lm_eval/tasks/winogrande/preprocess_winogrande.py: choices are the
     * sentence up to the blank + each option, the target the rest, stripped */
    t = parse("winogrande", "{\"sentence\": \"Sarah was a much better surgeon than Maria so _ always got the harder "
                            "cases.\", \"option1\": \"Sarah\", \"option2\": \"Maria\", \"answer\": \"1\"}");
    assert_string_equal(t.items[0].ctx[0], "Sarah was a much better surgeon than Maria so Sarah");
    assert_string_equal(t.items[0].ctx[1], "Sarah was a much better surgeon than Maria so Maria");
    assert_string_equal(t.items[0].cont[0], " always got the harder cases.");
    assert_string_equal(t.items[0].cont[1], " always got the harder cases.");
    assert_int_equal(t.items[0].label, 0);
    fl_mc_task_free(&t);

    /* lm_eval/tasks/arc/arc_easy.yaml: "Question: {{question}}\nAnswer:",
     * target choices.label.index(answerKey) */
    t = parse("arc_challenge", "{\"id\": \"Mercury_SC_415702\", \"question\": {\"stem\": \"George wants to warm his hands "
                               "quickly by rubbing them. Which skin surface will produce the most heat?\", \"choices\": "
                               "[{\"text\": \"dry palms\", \"label\": \"A\"}, {\"text\": \"wet palms\", \"label\": \"B\"}, "
                               "{\"text\": \"palms covered with oil\", \"label\": \"C\"}, {\"text\": \"palms covered with "
                               "lotion\", \"label\": \"D\"}]}, \"answerKey\": \"A\"}");
    assert_string_equal(t.items[0].ctx[0], "Question: George wants to warm his hands quickly by rubbing them. Which skin "
                                           "surface will produce the most heat?\nAnswer:");
    assert_string_equal(t.items[0].cont[2], " palms covered with oil");
    assert_int_equal(t.items[0].n, 4);
    assert_int_equal(t.items[0].label, 0);
    fl_mc_task_free(&t);

    /* lm_eval/tasks/openbookqa/openbookqa.yaml: doc_to_text question_stem,
     * target choices.label.index(answerKey.lstrip()) */
    t = parse("openbookqa", "{\"id\": \"7-980\", \"question_stem\": \"The sun is responsible for\", \"choices\": {\"text\": "
                            "[\"puppies learning new tricks\", \"children growing up and getting old\", \"flowers wilting in "
                            "a vase\", \"plants sprouting, blooming and wilting\"], \"label\": [\"A\", \"B\", \"C\", \"D\"]}, "
                            "\"answerKey\": \"D\"}");
    assert_string_equal(t.items[0].ctx[3], "The sun is responsible for");
    assert_string_equal(t.items[0].cont[3], " plants sprouting, blooming and wilting");
    assert_int_equal(t.items[0].label, 3);
    fl_mc_task_free(&t);

    /* lm_eval/tasks/lambada/lambada_openai.yaml: text.split(' ')[:-1] joined,
     * ' ' + text.split(' ')[-1] */
    t = parse("lambada", "{\"text\": \"he said  hello there\"}");
    assert_string_equal(t.items[0].ctx[0], "he said  hello");
    assert_string_equal(t.items[0].cont[0], " there");
    fl_mc_task_free(&t);
}

/* ---- malformed files: one error naming the file and line ----------------- */

static void bad(const char *fmt, const char *text, const char *want) {
    char path[400];
    snprintf(path, sizeof path, "%s/bad.jsonl", g_dir);
    write_file(path, text);
    fl_mc_task t;
    assert_int_equal(fl_mc_task_load(fl_mc_format_find(fmt), path, 0, &t), -1);
    const char *e = fl_errmsg();
    if (!strstr(e, path) || !strstr(e, want) || strchr(e, '\n')) fail_msg("%s: got '%s', want '%s'", fmt, e, want);
}

static void test_malformed(void **st) {
    (void)st;
    const char *ok = "{\"passage\": \"p\", \"question\": \"q\", \"label\": 0}\n";
    char buf[400];
    snprintf(buf, sizeof buf, "%s%s", ok, "{\"passage\": \"p\", \"label\": 0}\n");
    bad("boolq", buf, ":2: missing field 'question'");
    bad("boolq", "{\"passage\": \"p\", \"question\": \"q\", \"label\": 2}\n", ":1: label 2 out of range for 2 choices");
    snprintf(buf, sizeof buf, "%s\n%s", ok, "{\"passage\": \"p\", \"question\": \"q\", \"label\": 0\n");
    bad("boolq", buf, ":3: not valid JSON");
    bad("boolq", "[1, 2]\n", ":1: not a JSON object");
    bad("boolq", "{\"passage\": 3, \"question\": \"q\", \"label\": 0}\n", ":1: field 'passage' is not a string");
    bad("hellaswag", "{\"activity_label\": \"a\", \"ctx_a\": \"b\", \"ctx_b\": \"c\", \"endings\": [], \"label\": 0}\n",
        ":1: field 'endings' is an empty list");
    bad("hellaswag", "{\"activity_label\": \"a\", \"ctx_a\": \"b\", \"ctx_b\": \"c\", \"endings\": [\"x\"], \"label\": -1}\n",
        ":1: label -1 out of range");
    bad("mc", "{\"context\": \"a\", \"choices\": [\"x\", \"\"], \"label\": 0}\n", ":1: choice 1 is empty");
    bad("winogrande", "{\"sentence\": \"no blank\", \"option1\": \"a\", \"option2\": \"b\", \"answer\": \"1\"}\n",
        ":1: field 'sentence' has no blank");
    bad("winogrande", "{\"sentence\": \"_ x\", \"option1\": \"a\", \"option2\": \"b\", \"answer\": \"\"}\n",
        ":1: field 'answer' is not");
    bad("arc_easy", "{\"question\": {\"stem\": \"s\", \"choices\": [{\"text\": \"a\", \"label\": \"A\"}]}, \"answerKey\": \"B\"}\n",
        ":1: answerKey 'B' is not one of the choice labels");
    bad("arc_easy", "{\"question\": \"s\", \"choices\": {\"text\": [\"a\"], \"label\": []}, \"answerKey\": \"A\"}\n",
        ":1: field 'choices.label' is an empty list");
    bad("rte", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\n", ":2: 3 fields, the header has 4");
    bad("rte", "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n", ":2: field 'label' is not an integer");
    bad("lambada", "\n\n", "no items");
    bad("lambada", "{\"text\": \"a b\"} x\n", ":1: text after the JSON object");
}

static int setup(void **st) { (void)st; tu_tmpdir(g_dir, sizeof g_dir); return 0; }
static int teardown(void **st) { (void)st; tu_rmrf(g_dir); return 0; }

int main(void) {
    fl_threads_init(0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prompts),          cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_encode_pair),      cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_oracle_llama_full), cmocka_unit_test(test_oracle_gpt2_truncated),
        cmocka_unit_test(test_oracle_hf_tokenizer),
    };
    return cmocka_run_group_tests_name("mc", tests, setup, teardown);
}
