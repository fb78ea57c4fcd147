/* libFuzzer target: the zero-shot task formats (eval/mc_tasks.c,
 * fl_mc_task_parse) and HellaSwag's preprocess. The first byte picks the
 * format, the rest is the file. A parsed task must keep the loader's
 * promises: every item has choices, its label among them, and strings. */
#include "fuzz_common.h"
#include "eval/mc_tasks.h"
#include "model/err.h"

static const char *const SEEDS[][2] = {
    { "boolq", "{\"question\": \"is it\", \"passage\": \"It is.\", \"label\": 1}\n{\"question\": \"q\", \"passage\": \"p\", \"answer\": false}\n" },
    { "rte", "index\tsentence1\tsentence2\tlabel\n0\ta b\tc\tentailment\n1\td\te\tnot_entailment\n" },
    { "hellaswag", "{\"activity_label\": \"A\", \"ctx_a\": \"[title] x  y.\", \"ctx_b\": \"hE\", \"endings\": [\"a [b] c\", \"d\"], \"label\": \"1\"}\n" },
    { "winogrande", "{\"sentence\": \"Ann told Bo that _ was late.\", \"option1\": \"Ann\", \"option2\": \"Bo\", \"answer\": \"2\"}\n" },
    { "arc_easy", "{\"question\": {\"stem\": \"s?\", \"choices\": [{\"text\": \"a\", \"label\": \"A\"}, {\"text\": \"b\", \"label\": \"B\"}]}, \"answerKey\": \"B\"}\n" },
    { "openbookqa", "{\"question_stem\": \"s\", \"choices\": {\"text\": [\"a\", \"b\"], \"label\": [\"A\", \"B\"]}, \"answerKey\": \" A\"}\n" },
    { "lambada", "{\"text\": \"one two three\"}\n{\"text\": \"x\"}\n" },
    { "mc", "{\"context\": \"c\", \"choices\": [\"a\", \"b\", \"c\"], \"label\": 2}\n" },
};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    for (size_t k = 0; k < sizeof SEEDS / sizeof *SEEDS; k++) {
        const fl_mc_format *f = fl_mc_format_find(SEEDS[k][0]);
        if (!f) abort();
        size_t n = strlen(SEEDS[k][1]);
        char *b = malloc(n + 1);
        b[0] = (char)(f - FL_MC_FORMATS);
        memcpy(b + 1, SEEDS[k][1], n);
        const void *pc[1] = { b };
        size_t len = n + 1;
        fz_seed(SEEDS[k][0], pc, &len, 1);
        free(b);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const fl_mc_format *f = &FL_MC_FORMATS[data[0] % FL_MC_NFORMATS];
    fl_mc_task t;
    if (fl_mc_task_parse(f, "fuzz.jsonl", (const char *)data + 1, size - 1, 0, &t) == 0) {
        if (t.n < 1) abort();
        for (int i = 0; i < t.n; i++) {
            const fl_mc_item *it = &t.items[i];
            if (it->n < 1 || it->label < 0 || it->label >= it->n) abort();
            for (int c = 0; c < it->n; c++)
                if (!it->ctx[c] || !it->cont[c] || it->chars[c] < 0 || !it->cont[c][0]) abort();
        }
        fl_mc_task_free(&t);
    } else if (!*fl_errmsg() || strchr(fl_errmsg(), '\n')) abort();   /* one line, always */
    /* preprocess never grows its input */
    char *s = malloc(size);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = 0;
    char *p = fl_hellaswag_preprocess(s);
    if (p && strlen(p) > strlen(s)) abort();
    free(p);
    free(s);
    return 0;
}
