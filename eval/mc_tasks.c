/* The seven zero-shot tasks of the paper, LAMBADA and a generic format, as
 * lm-evaluation-harness builds them (the YAML and utils.py named in each
 * descriptor; read at commit 4e7e0d47 of EleutherAI/lm-evaluation-harness).
 * Zero-shot, lm-eval's context is doc_to_text and each request is
 * (context, target_delimiter + choice) with target_delimiter " "; a task
 * whose doc_to_text is an index (WinoGrande) has one context per choice and
 * a single continuation instead. */
#include "mc_tasks.h"
#include "model/err.h"
#include "model/fileio.h"
#include "plots/sbuf.h"
#include <cjson/cJSON.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- field access: a missing or mistyped field is the reason ----------- */

static const char *str_field(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) { fl_err("missing field '%s'", k); return NULL; }
    if (!cJSON_IsString(v)) { fl_err("field '%s' is not a string", k); return NULL; }
    return v->valuestring;
}

/* A string array (choices); an empty one is an error. */
static int str_array(const cJSON *v, const char *k, const char ***out, int *n) {
    if (!v) return fl_err("missing field '%s'", k);
    if (!cJSON_IsArray(v)) return fl_err("field '%s' is not a list", k);
    int m = cJSON_GetArraySize(v);
    if (m < 1) return fl_err("field '%s' is an empty list", k);
    if (m > 4096) return fl_err("field '%s' has %d entries (at most 4096)", k, m);
    const char **a = calloc((size_t)m, sizeof *a);
    if (!a) return fl_err("out of memory");
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e)) { free(a); return fl_err("entry %d of '%s' is not a string", i, k); }
        a[i] = e->valuestring;
    }
    *out = a;
    *n = m;
    return 0;
}

/* Integer label: a JSON integer, a boolean (false 0, true 1) or a string of
 * digits (HF's HellaSwag stores "label" as a string). */
static int int_label(const cJSON *o, const char *k, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v) return fl_err("missing field '%s'", k);
    if (cJSON_IsBool(v)) { *out = cJSON_IsTrue(v); return 0; }
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        /* the range first: converting a double outside int's range is undefined */
        if (!(d >= -1e6 && d <= 1e6) || d != (int)d) return fl_err("field '%s' is not an integer", k);
        *out = (int)d;
        return 0;
    }
    if (cJSON_IsString(v)) {
        char *e;
        long x = strtol(v->valuestring, &e, 10);
        if (!*v->valuestring || *e || x < -1000000 || x > 1000000) return fl_err("field '%s' is not an integer", k);
        *out = (int)x;
        return 0;
    }
    return fl_err("field '%s' is not an integer", k);
}

static char *cat(const char *a, const char *b, const char *c, const char *d, const char *e) {
    fl_sbuf s = { 0 };
    fl_sb_puts(&s, a), fl_sb_puts(&s, b), fl_sb_puts(&s, c), fl_sb_puts(&s, d), fl_sb_puts(&s, e);
    return s.s;
}

/* The usual case: one context, continuation " " + choice, len(choice). */
static int add_choices(fl_mc_task *t, const char *ctx, const char *const *ch, int n, int label) {
    if (label < 0 || label >= n) return fl_err("label %d out of range for %d choices", label, n);
    const char **cx = calloc((size_t)n, sizeof *cx);
    char **ct = calloc((size_t)n, sizeof *ct);
    int rc = (!cx || !ct) ? fl_err("out of memory") : 0;
    for (int c = 0; c < n && rc == 0; c++) {
        if (!*ch[c]) rc = fl_err("choice %d is empty", c);
        cx[c] = ctx;
        ct[c] = cat(" ", ch[c], "", "", "");
    }
    if (rc == 0) rc = fl_mc_task_add(t, n, cx, (const char *const *)ct, ch, label);
    for (int c = 0; c < n && ct; c++) free(ct[c]);
    free(ct);
    free(cx);
    return rc;
}

/* Python's str.strip() over ASCII whitespace (and the \x1c-\x1f separators
 * str.isspace also counts); malloc'd. */
static int py_space(unsigned char c) { return c == ' ' || (c >= 9 && c <= 13) || (c >= 0x1c && c <= 0x1f); }
static char *py_strip(const char *s, size_t n) {
    size_t a = 0;
    while (a < n && py_space((unsigned char)s[a])) a++;
    while (n > a && py_space((unsigned char)s[n - 1])) n--;
    char *o = malloc(n - a + 1);
    if (!o) return NULL;
    memcpy(o, s + a, n - a);
    o[n - a] = 0;
    return o;
}

/* str.replace(old, new): every non-overlapping occurrence, left to right,
 * in one pass (so "    ".replace("  ", " ") is "  "). */
static char *py_replace(const char *s, const char *old, const char *new) {
    fl_sbuf b = { 0 };
    size_t lo = strlen(old);
    fl_sb_puts(&b, "");
    for (const char *p = s; *p;) {
        if (!strncmp(p, old, lo)) fl_sb_puts(&b, new), p += lo;
        else fl_sb_putn(&b, p, 1), p++;
    }
    return b.s;
}

char *fl_hellaswag_preprocess(const char *s) {
    char *a = py_strip(s, strlen(s));
    if (!a) return NULL;
    char *b = py_replace(a, " [title]", ". ");
    free(a);
    /* re.sub("\\[.*?\\]", "", text): Python's '.' is anything but '\n';
     * (*LF) makes PCRE2's agree whatever its build default */
    static const char PAT[] = "(*LF)\\[.*?\\]";
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)PAT, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
    size_t n = strlen(b), outn = n + 1;
    char *c = malloc(outn);
    int rc = re && c ? pcre2_substitute(re, (PCRE2_SPTR)b, n, 0, PCRE2_SUBSTITUTE_GLOBAL, NULL, NULL,
                                        (PCRE2_SPTR) "", 0, (PCRE2_UCHAR *)c, &outn)
                     : -1;
    if (re) pcre2_code_free(re);
    free(b);
    if (rc < 0) { free(c); return NULL; }
    char *d = py_replace(c, "  ", " ");
    free(c);
    return d;
}

/* ---- the formats --------------------------------------------------------- */

/* boolq: lm_eval/tasks/super_glue/boolq/default.yaml
 *   doc_to_text "{{passage}}\nQuestion: {{question}}?\nAnswer:", choices
 *   ["no", "yes"], target label (SuperGLUE: 0 False, 1 True; Google's own
 *   dev.jsonl has "answer": true/false instead). */
static int boolq_item(const cJSON *d, fl_mc_task *t) {
    const char *p = str_field(d, "passage"), *q = p ? str_field(d, "question") : NULL;
    if (!q) return -1;
    int label;
    if (cJSON_GetObjectItemCaseSensitive(d, "label")) {
        if (int_label(d, "label", &label) != 0) return -1;
    } else {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(d, "answer");
        if (!a) return fl_err("missing field 'label' (or 'answer')");
        if (!cJSON_IsBool(a)) return fl_err("field 'answer' is not true or false");
        label = cJSON_IsTrue(a);
    }
    char *ctx = cat(p, "\nQuestion: ", q, "?\nAnswer:", "");
    static const char *const CH[] = { "no", "yes" };
    int rc = add_choices(t, ctx, CH, 2, label);
    free(ctx);
    return rc;
}

/* rte: lm_eval/tasks/glue/rte/default.yaml
 *   doc_to_text "{{sentence1}}\nQuestion: {{sentence2}} True or False?\nAnswer:",
 *   choices ["True", "False"], target label (0 entailment, 1 not_entailment).
 * SuperGLUE's RTE (lm_eval/tasks/super_glue/rte/default.yaml) is the same
 * prompt over premise/hypothesis; both field sets are read, and a label
 * may be the string "entailment"/"not_entailment" as the files publish it. */
static int rte_item(const cJSON *d, fl_mc_task *t) {
    const int glue = cJSON_GetObjectItemCaseSensitive(d, "sentence1") != NULL;
    const char *a = str_field(d, glue ? "sentence1" : "premise");
    const char *b = a ? str_field(d, glue ? "sentence2" : "hypothesis") : NULL;
    if (!b) return -1;
    int label;
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(d, "label");
    if (cJSON_IsString(l) && !strcmp(l->valuestring, "entailment")) label = 0;
    else if (cJSON_IsString(l) && !strcmp(l->valuestring, "not_entailment")) label = 1;
    else if (int_label(d, "label", &label) != 0) return -1;
    char *ctx = cat(a, "\nQuestion: ", b, " True or False?\nAnswer:", "");
    static const char *const CH[] = { "True", "False" };
    int rc = add_choices(t, ctx, CH, 2, label);
    free(ctx);
    return rc;
}

/* hellaswag: lm_eval/tasks/hellaswag/hellaswag.yaml + utils.py
 *   query = preprocess(activity_label + ": " + ctx_a + " " + ctx_b.capitalize()),
 *   choices = [preprocess(e) for e in endings], gold = int(label).
 * str.capitalize() upper-cases the first character and lower-cases the
 * rest; done here over ASCII (other bytes are left alone). */
static int hellaswag_item(const cJSON *d, fl_mc_task *t) {
    const char *al = str_field(d, "activity_label"), *ca = al ? str_field(d, "ctx_a") : NULL;
    const char *cb = ca ? str_field(d, "ctx_b") : NULL;
    if (!cb) return -1;
    const char **e;
    int n, label;
    if (str_array(cJSON_GetObjectItemCaseSensitive(d, "endings"), "endings", &e, &n) != 0) return -1;
    if (int_label(d, "label", &label) != 0) { free(e); return -1; }
    char *cap = strdup(cb);
    for (char *p = cap; p && *p; p++) *p = (char)(p == cap ? (*p >= 'a' && *p <= 'z' ? *p - 32 : *p)
                                                           : (*p >= 'A' && *p <= 'Z' ? *p + 32 : *p));
    char *raw = cat(al, ": ", ca, " ", cap ? cap : "");
    free(cap);
    char *q = fl_hellaswag_preprocess(raw);
    free(raw);
    char **ch = calloc((size_t)n, sizeof *ch);
    int rc = q && ch ? 0 : fl_err("out of memory");
    for (int c = 0; c < n && rc == 0; c++)
        if (!(ch[c] = fl_hellaswag_preprocess(e[c]))) rc = fl_err("out of memory");
    if (rc == 0) rc = add_choices(t, q, (const char *const *)ch, n, label);
    for (int c = 0; c < n && ch; c++) free(ch[c]);
    free(ch);
    free(q);
    free(e);
    return rc;
}

/* winogrande: lm_eval/tasks/winogrande/default.yaml + preprocess_winogrande.py
 *   doc_to_text = {"1": 0, "2": 1}[answer] (an index: multiple inputs),
 *   doc_to_choice = [sentence[:i] + option1, sentence[:i] + option2] with
 *   i = sentence.index("_"), doc_to_target = sentence[i+1:].strip(): each
 *   choice is a context and the continuation " " + target is scored after
 *   it (the partial evaluation). len() of the choices = the contexts. */
static int winogrande_item(const cJSON *d, fl_mc_task *t) {
    const char *s = str_field(d, "sentence"), *o1 = s ? str_field(d, "option1") : NULL;
    const char *o2 = o1 ? str_field(d, "option2") : NULL;
    if (!o2) return -1;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(d, "answer");
    if (!a) return fl_err("missing field 'answer'");
    int label = -1;
    if (cJSON_IsString(a) && !strcmp(a->valuestring, "1")) label = 0;
    else if (cJSON_IsString(a) && !strcmp(a->valuestring, "2")) label = 1;
    else return fl_err("field 'answer' is not \"1\" or \"2\"");
    const char *u = strchr(s, '_');
    if (!u) return fl_err("field 'sentence' has no blank '_'");
    size_t i = (size_t)(u - s);
    char *pre = strndup(s, i), *tgt = py_strip(u + 1, strlen(u + 1));
    char *c1 = pre ? cat(pre, o1, "", "", "") : NULL, *c2 = pre ? cat(pre, o2, "", "", "") : NULL;
    char *cont = tgt ? cat(" ", tgt, "", "", "") : NULL;
    int rc = c1 && c2 && cont ? 0 : fl_err("out of memory");
    if (rc == 0) {
        const char *cx[2] = { c1, c2 }, *ct[2] = { cont, cont };
        rc = fl_mc_task_add(t, 2, cx, ct, cx, label);
    }
    free(pre), free(tgt), free(c1), free(c2), free(cont);
    return rc;
}

/* The AI2 question layout shared by ARC and OpenBookQA: their own JSONL
 * has "question": {"stem", "choices": [{"text", "label"}]}; the HF copies
 * have choices {"text": [...], "label": [...]} beside the question. The
 * target is choices.label.index(answerKey) (OpenBookQA: answerKey.lstrip()). */
static int ai2_item(const cJSON *d, fl_mc_task *t, const char *stem_key, int obqa) {
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(d, "question");
    const char *stem;
    const cJSON *choices;
    if (cJSON_IsObject(q)) {
        stem = str_field(q, "stem");
        choices = cJSON_GetObjectItemCaseSensitive(q, "choices");
    } else {
        stem = str_field(d, stem_key);
        choices = cJSON_GetObjectItemCaseSensitive(d, "choices");
    }
    if (!stem) return -1;
    const char *key = str_field(d, "answerKey");
    if (!key) return -1;
    if (obqa) while (py_space((unsigned char)*key)) key++;
    const char **text = NULL, **lab = NULL;
    int n = 0, nl = 0, rc = 0;
    if (!choices) return fl_err("missing field 'choices'");
    if (cJSON_IsArray(choices)) {   /* [{"text", "label"}, ...] */
        n = cJSON_GetArraySize(choices);
        if (n < 1) return fl_err("field 'choices' is an empty list");
        if (n > 4096) return fl_err("field 'choices' has %d entries (at most 4096)", n);
        text = calloc((size_t)n, sizeof *text);
        lab = calloc((size_t)n, sizeof *lab);
        if (!text || !lab) rc = fl_err("out of memory");
        int i = 0;
        for (const cJSON *e = choices->child; e && rc == 0; e = e->next, i++) {
            if (!cJSON_IsObject(e)) { rc = fl_err("entry %d of 'choices' is not an object", i); break; }
            if (!(text[i] = str_field(e, "text")) || !(lab[i] = str_field(e, "label"))) rc = -1;
        }
        nl = n;
    } else if (cJSON_IsObject(choices)) {
        rc = str_array(cJSON_GetObjectItemCaseSensitive(choices, "text"), "choices.text", &text, &n);
        if (rc == 0) rc = str_array(cJSON_GetObjectItemCaseSensitive(choices, "label"), "choices.label", &lab, &nl);
        if (rc == 0 && nl != n) rc = fl_err("choices.text has %d entries but choices.label %d", n, nl);
    } else rc = fl_err("field 'choices' is neither a list nor an object");
    int label = -1;
    for (int i = 0; i < nl && rc == 0 && label < 0; i++) if (!strcmp(lab[i], key)) label = i;
    if (rc == 0 && label < 0) rc = fl_err("answerKey '%s' is not one of the choice labels", key);
    if (rc == 0) {
        char *ctx = obqa ? strdup(stem) : cat("Question: ", stem, "\nAnswer:", "", "");
        rc = ctx ? add_choices(t, ctx, text, n, label) : fl_err("out of memory");
        free(ctx);
    }
    free(text);
    free(lab);
    return rc;
}
/* arc_easy / arc_challenge: lm_eval/tasks/arc/arc_easy.yaml (arc_challenge.yaml
 * includes it): doc_to_text "Question: {{question}}\nAnswer:". */
static int arc_item(const cJSON *d, fl_mc_task *t) { return ai2_item(d, t, "question", 0); }
/* openbookqa: lm_eval/tasks/openbookqa/openbookqa.yaml: doc_to_text question_stem. */
static int obqa_item(const cJSON *d, fl_mc_task *t) { return ai2_item(d, t, "question_stem", 1); }

/* lambada: lm_eval/tasks/lambada/lambada_openai.yaml (output_type
 * loglikelihood): context "{{text.split(' ')[:-1]|join(' ')}}", target
 * "{{' '+text.split(' ')[-1]}}": the text up to its last space, and the
 * last space-separated word. */
static int lambada_item(const cJSON *d, fl_mc_task *t) {
    const char *s = str_field(d, "text");
    if (!s) return -1;
    const char *sp = strrchr(s, ' ');
    char *ctx = sp ? strndup(s, (size_t)(sp - s)) : strdup("");
    const char *w = sp ? sp + 1 : s;
    char *cont = cat(" ", w, "", "", "");
    int rc = ctx && cont ? 0 : fl_err("out of memory");
    if (rc == 0) {
        const char *cx[1] = { ctx }, *ct[1] = { cont };
        rc = fl_mc_task_add(t, 1, cx, ct, ct, 0);
    }
    free(ctx);
    free(cont);
    return rc;
}

/* mc: a generic multiple-choice file, {"context", "choices": [...], "label"},
 * scored like HellaSwag (continuation " " + choice, acc and acc_norm); the
 * corpus task cloze-sotu is written in it. */
static int mc_item(const cJSON *d, fl_mc_task *t) {
    const char *c = str_field(d, "context");
    if (!c) return -1;
    const char **ch;
    int n, label;
    if (str_array(cJSON_GetObjectItemCaseSensitive(d, "choices"), "choices", &ch, &n) != 0) return -1;
    int rc = int_label(d, "label", &label);
    if (rc == 0) rc = add_choices(t, c, ch, n, label);
    free(ch);
    return rc;
}

const fl_mc_format FL_MC_FORMATS[] = {
    { "boolq", "boolq (lm_eval/tasks/super_glue/boolq/default.yaml)", "passage, question, label (0/1/bool) or answer (bool)",
      FL_MC_CHOICE, 0, boolq_item },
    { "rte", "rte (lm_eval/tasks/glue/rte/default.yaml)",
      "sentence1, sentence2, label (GLUE TSV or JSONL) or premise, hypothesis, label (SuperGLUE)", FL_MC_CHOICE, 0, rte_item },
    { "hellaswag", "hellaswag (lm_eval/tasks/hellaswag/hellaswag.yaml, utils.py)", "activity_label, ctx_a, ctx_b, endings, label",
      FL_MC_CHOICE, 1, hellaswag_item },
    { "winogrande", "winogrande (lm_eval/tasks/winogrande/default.yaml, preprocess_winogrande.py)",
      "sentence, option1, option2, answer (\"1\"/\"2\")", FL_MC_CHOICE, 0, winogrande_item },
    { "arc_easy", "arc_easy (lm_eval/tasks/arc/arc_easy.yaml)",
      "question.stem, question.choices[].text/label, answerKey (AI2) or question, choices.text/label, answerKey (HF)",
      FL_MC_CHOICE, 1, arc_item },
    { "arc_challenge", "arc_challenge (lm_eval/tasks/arc/arc_challenge.yaml)", "as arc_easy", FL_MC_CHOICE, 1, arc_item },
    { "openbookqa", "openbookqa (lm_eval/tasks/openbookqa/openbookqa.yaml)",
      "question.stem, question.choices[].text/label, answerKey (AI2) or question_stem, choices.text/label, answerKey (HF)",
      FL_MC_CHOICE, 1, obqa_item },
    { "lambada", "lambada_openai (lm_eval/tasks/lambada/lambada_openai.yaml)", "text", FL_MC_LOGLIK, 0, lambada_item },
    { "mc", "none (generic; scored like hellaswag)", "context, choices, label", FL_MC_CHOICE, 1, mc_item },
};
const int FL_MC_NFORMATS = (int)(sizeof FL_MC_FORMATS / sizeof *FL_MC_FORMATS);

const fl_mc_format *fl_mc_format_find(const char *name) {
    for (int i = 0; i < FL_MC_NFORMATS; i++) if (!strcmp(FL_MC_FORMATS[i].name, name)) return &FL_MC_FORMATS[i];
    return NULL;
}

/* ---- files ----------------------------------------------------------------- */

/* GLUE's RTE TSV: a header naming the columns, then tab-separated fields
 * with no quoting (GLUE reads them with csv.QUOTE_NONE), so a plain split
 * on tabs is the format's own rule; libcsv's quote handling would change
 * fields that start with a quote. */
static cJSON *tsv_row(const char *line, size_t n, char **cols, int ncols, int lineno) {
    cJSON *o = cJSON_CreateObject();
    const char *p = line, *end = line + n;
    int c = 0;
    while (o && p <= end) {
        const char *tab = memchr(p, '\t', (size_t)(end - p));
        const char *fe = tab ? tab : end;
        if (c >= ncols) { cJSON_Delete(o); fl_err("%d fields, the header has %d", c + 1, ncols); return NULL; }
        char *v = strndup(p, (size_t)(fe - p));
        if (!v || !cJSON_AddStringToObject(o, cols[c], v)) { free(v); cJSON_Delete(o); fl_err("out of memory"); return NULL; }
        free(v);
        c++;
        p = fe + 1;
        if (!tab) break;
    }
    if (o && c != ncols) { cJSON_Delete(o); fl_err("%d fields, the header has %d", c, ncols); return NULL; }
    (void)lineno;
    return o;
}

int fl_mc_task_parse(const fl_mc_format *f, const char *path, const char *buf, size_t len, int max_items,
                     fl_mc_task *t) {
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", f->name);
    t->kind = f->kind;
    t->norm = f->norm;
    char *cols[16];
    int ncols = -1, lineno = 0, rc = 0;   /* ncols >= 0: a TSV with that header */
    for (size_t pos = 0; pos < len && rc == 0 && (max_items <= 0 || t->n < max_items);) {
        const char *line = buf + pos, *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + 1;
        lineno++;
        size_t a = 0;
        while (a < n && py_space((unsigned char)line[a])) a++;
        if (a == n) continue;   /* blank line */
        if (n && line[n - 1] == '\r') n--;
        if (memchr(line, 0, n)) { rc = fl_err("%s:%d: a NUL byte", path, lineno); break; }
        cJSON *doc = NULL;
        if (lineno == 1 && line[a] != '{' && !strcmp(f->name, "rte")) {   /* GLUE TSV header */
            ncols = 0;
            for (const char *p = line, *end = line + n; p <= end && rc == 0;) {
                const char *tab = memchr(p, '\t', (size_t)(end - p));
                const char *fe = tab ? tab : end;
                if (ncols == 16) { rc = fl_err("%s:%d: more than 16 columns in the header", path, lineno); break; }
                cols[ncols++] = strndup(p, (size_t)(fe - p));
                p = fe + 1;
                if (!tab) break;
            }
            continue;
        }
        if (ncols >= 0) {
            doc = tsv_row(line, n, cols, ncols, lineno);
            if (!doc) { char m[300]; snprintf(m, sizeof m, "%s", fl_errmsg()); rc = fl_err("%s:%d: %s", path, lineno, m); break; }
        } else {
            const char *end = NULL;
            doc = cJSON_ParseWithLengthOpts(line, n, &end, 0);
            if (!doc) { rc = fl_err("%s:%d: not valid JSON", path, lineno); break; }
            while (end && end < line + n && py_space((unsigned char)*end)) end++;
            if (end && end < line + n) { cJSON_Delete(doc); rc = fl_err("%s:%d: text after the JSON object", path, lineno); break; }
            if (!cJSON_IsObject(doc)) { cJSON_Delete(doc); rc = fl_err("%s:%d: not a JSON object", path, lineno); break; }
        }
        if (f->item(doc, t) != 0) {
            char m[600];
            snprintf(m, sizeof m, "%s", fl_errmsg());
            rc = fl_err("%s:%d: %s", path, lineno, m);
        }
        cJSON_Delete(doc);
    }
    for (int c = 0; c < ncols; c++) free(cols[c]);
    if (rc == 0 && t->n == 0) rc = fl_err("%s: no items", path);
    if (rc != 0) fl_mc_task_free(t);
    return rc;
}

int fl_mc_task_load(const fl_mc_format *f, const char *path, int max_items, fl_mc_task *t) {
    char *buf;
    size_t len;
    if (fl_read_file(path, &buf, &len) != 0) return -1;
    int rc = fl_mc_task_parse(f, path, buf, len, max_items, t);
    free(buf);
    return rc;
}
