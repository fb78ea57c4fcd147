/* HF's fast-tokenizer file, tokenizer.json (with tokenizer_config.json when
 * the directory has one), loaded into an fl_bpe: byte-level BPE as GPT-2,
 * Llama-3 and Qwen2 write it, and the SentencePiece-derived BPE of Llama-2
 * and Mistral (Prepend / Replace "\u2581" normalizers or a Metaspace
 * pre-tokenizer, <0xNN> byte fallback). bpe.c encodes and decodes by it;
 * the order of the steps is described there.
 *
 * Everything the file may say that freelunch does not implement (another
 * model type, normalizer, pre-tokenizer, post-processor or decoder, a
 * regex construct whose meaning differs between engines, ...) is refused
 * with one line naming the file and the key: a tokenizer that loads gives
 * HF's ids, never silently different ones.
 *
 * The Split regexes are Oniguruma patterns (HF's Rust build); HF's JS build
 * rewrites them for JavaScript, and so do we for PCRE2, the same way: \s is
 * Unicode's White_Space (not PCRE2's or JavaScript's own \s), and (?i:...)
 * folds ASCII letters only (PCRE2's caseless 's' would also match U+017F).
 * Unicode normalisation (NFC) is ICU's. */
#include "bpe_impl.h"
#include "model/fileio.h"
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>

#define MAX_ID (1 << 24) /* ids beyond 16M are refused: no real vocabulary comes near */

/* Unicode White_Space: what \s means in the Oniguruma patterns. */
#define WSU "\\t\\n\\x{0B}\\f\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

#include <sys/stat.h>

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

typedef struct { char *p; size_t n, cap; } sbuf;
static int sb_add(sbuf *b, const char *s, size_t n) {
    if (grow((void **)&b->p, &b->cap, b->n + n + 1, 1) != 0) return -1;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}
static int sb_str(sbuf *b, const char *s) { return sb_add(b, s, strlen(s)); }

/* An Oniguruma pattern of a Split pre-tokenizer -> PCRE2 with JavaScript's
 * (HF JS's) meaning, or an error naming the construct. */
static int translate_regex(const char *re, sbuf *o, const char *file) {
    int in_class = 0, depth = 0;
    unsigned char fold[64] = { 0 };
    for (size_t i = 0; re[i];) {
        char c = re[i];
        int f = fold[depth];
        if (c == '\\') {
            char d = re[i + 1];
            if (!d) return fl_err("%s: pre_tokenizer Split regex ends in a backslash", file);
            if (d == 's') { if (sb_str(o, in_class ? WSU : "[" WSU "]") != 0) return -1; i += 2; continue; }
            if (d == 'S' && !in_class) { if (sb_str(o, "[^" WSU "]") != 0) return -1; i += 2; continue; }
            size_t k = 2;
            if ((d == 'p' || d == 'P' || d == 'x') && re[i + 2] == '{') {
                const char *e = strchr(re + i, '}');
                if (!e) return fl_err("%s: pre_tokenizer Split regex: unterminated \\%c{", file, d);
                if (d != 'x' && !strncmp(re + i + 3, "Word", 4)) return fl_err("%s: pre_tokenizer Split regex: \\%c{Word} is not implemented", file, d);
                k = (size_t)(e - (re + i)) + 1;
            } else if (d == 'x') {
                k = 4;
                if (!re[i + 2] || !re[i + 3]) return fl_err("%s: pre_tokenizer Split regex: short \\x escape", file);
            } else if ((d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z') || (d >= '0' && d <= '9')) {
                if (!strchr("rntfvpP", d)) return fl_err("%s: pre_tokenizer Split regex: the escape \\%c is not implemented", file, d);
            }
            if (sb_add(o, re + i, k) != 0) return -1;
            i += k;
            continue;
        }
        if (in_class) {
            if (c == '[') return fl_err("%s: pre_tokenizer Split regex: nested character classes are not implemented", file);
            if (c == ']') in_class = 0;
            if (f && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
                return fl_err("%s: pre_tokenizer Split regex: letters in a class inside (?i:...) are not implemented", file);
            if (sb_add(o, re + i, 1) != 0) return -1;
            i++;
            continue;
        }
        switch (c) {
        case '[':
            in_class = 1;
            if (sb_add(o, "[", 1) != 0) return -1;
            i++;
            if (re[i] == '^') { if (sb_add(o, "^", 1) != 0) return -1; i++; }
            if (re[i] == ']') { if (sb_add(o, "\\]", 2) != 0) return -1; i++; }
            continue;
        case '(': {
            static const char *const pre[] = { "(?i:", "(?:", "(?=", "(?!", "(?<=", "(?<!", "(" };
            size_t k = 0;
            int j;
            for (j = 0; j < 7; j++)
                if (!strncmp(re + i, pre[j], strlen(pre[j]))) break;
            k = strlen(pre[j]);
            if (j == 6 && re[i + 1] == '?') return fl_err("%s: pre_tokenizer Split regex: the group \"%.4s\" is not implemented", file, re + i);
            if (depth + 1 >= (int)sizeof fold) return fl_err("%s: pre_tokenizer Split regex: groups nested too deeply", file);
            fold[depth + 1] = j == 0 ? 1 : (unsigned char)f;
            depth++;
            if (sb_str(o, j == 0 ? "(?:" : pre[j]) != 0) return -1;
            i += k;
            continue;
        }
        case ')':
            if (depth == 0) return fl_err("%s: pre_tokenizer Split regex: unbalanced ')'", file);
            depth--;
            break;
        case '^': case '$':
            return fl_err("%s: pre_tokenizer Split regex: the anchor '%c' is not implemented", file, c);
        case '+': case '*': case '?': case '}':
            if (re[i + 1] == '+') return fl_err("%s: pre_tokenizer Split regex: possessive quantifiers are not implemented", file);
            break;
        default:
            if (f && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) {
                char cls[5] = { '[', (char)(c | 0x20), (char)(c & ~0x20), ']', 0 };
                if (sb_str(o, cls) != 0) return -1;
                i++;
                continue;
            }
        }
        if (sb_add(o, re + i, 1) != 0) return -1;
        i++;
    }
    if (in_class || depth) return fl_err("%s: pre_tokenizer Split regex: unterminated class or group", file);
    return 0;
}

/* ---- NFC ------------------------------------------------------------------- */

/* The length of the valid UTF-8 at the start of p. */
static size_t valid_run(const unsigned char *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        int cp;
        size_t k = fl_utf8_at(p + i, n - i, &cp);
        if (cp < 0) break;
        i += k;
    }
    return i;
}

int fl_hf_nfc(const unsigned char *s, size_t n, unsigned char **out, size_t *outn) {
    size_t cap = n + 16, k = 0;
    unsigned char *o = malloc(cap);
    UChar *u = NULL, *v = NULL;
    size_t ucap = 0, vcap = 0;
    int rc = o ? 0 : fl_err("bpe: out of memory");
    UErrorCode e = U_ZERO_ERROR;
    const UNormalizer2 *nf = unorm2_getNFCInstance(&e);
    if (rc == 0 && U_FAILURE(e)) rc = fl_err("bpe: ICU's NFC is unavailable: %s", u_errorName(e));
    for (size_t i = 0; i < n && rc == 0;) {
        size_t r = valid_run(s + i, n - i), ascii = 1;
        for (size_t j = 0; j < r && ascii; j++) ascii = s[i + j] < 0x80;
        if (r == 0 || ascii || r > INT32_MAX / 4) { /* invalid bytes stay, ASCII is NFC */
            size_t m = r ? r : 1;
            if (grow((void **)&o, &cap, k + m, 1) != 0) { rc = -1; break; }
            memcpy(o + k, s + i, m);
            k += m, i += m;
            continue;
        }
        if (grow((void **)&u, &ucap, r + 1, sizeof *u) != 0) { rc = -1; break; }
        int32_t ul = 0;
        e = U_ZERO_ERROR;
        u_strFromUTF8(u, (int32_t)ucap, &ul, (const char *)s + i, (int32_t)r, &e);
        for (int pass = 0; pass < 2 && rc == 0; pass++) {
            if (grow((void **)&v, &vcap, (size_t)ul * 3 + 16, sizeof *v) != 0) { rc = -1; break; }
            if (U_FAILURE(e)) break;
            int32_t vl = unorm2_normalize(nf, u, ul, v, (int32_t)vcap, &e);
            if (e == U_BUFFER_OVERFLOW_ERROR && pass == 0) { e = U_ZERO_ERROR; ul = vl > ul ? vl : ul; continue; }
            if (U_FAILURE(e)) break;
            if (grow((void **)&o, &cap, k + (size_t)vl * 3 + 4, 1) != 0) { rc = -1; break; }
            int32_t ol = 0;
            u_strToUTF8((char *)o + k, (int32_t)(cap - k), &ol, v, vl, &e);
            k += (size_t)ol;
            break;
        }
        if (rc == 0 && U_FAILURE(e)) rc = fl_err("bpe: NFC failed: %s", u_errorName(e));
        i += r;
    }
    free(u);
    free(v);
    if (rc != 0) { free(o); return -1; }
    *out = o;
    *outn = k;
    return 0;
}

/* ---- the loader -------------------------------------------------------------- */

typedef struct {
    const char *file;
    fl_bpe *t;
    fl_hf *h;
    sbuf regex;          /* the pre-tokenisation regex, empty: none */
    int byte_level;
    int meta_steps;      /* Metaspace's steps, appended after the normalizer's */
    fl_norm_step ms[2];
} ld;

static int __attribute__((format(printf, 3, 4))) bad(const ld *l, const char *key, const char *fmt, ...) {
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return fl_err("%s: %s: %s", l->file, key, msg);
}

static const char *jstr(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
static int jtrue(const cJSON *o, const char *k) { return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, k)); }
static int jnullish(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return !v || cJSON_IsNull(v) || (cJSON_IsString(v) && !*v->valuestring);
}

static int add_step(fl_hf *h, int kind, const char *a, const char *b) {
    if (grow((void **)&h->norm, &(size_t){ (size_t)h->n_norm }, (size_t)h->n_norm + 1, sizeof *h->norm) != 0) return -1;
    fl_norm_step *s = &h->norm[h->n_norm];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    if (a && !(s->a = strdup(a))) return fl_err("bpe: out of memory");
    if (b && !(s->b = strdup(b))) { free(s->a); return fl_err("bpe: out of memory"); }
    s->al = a ? strlen(a) : 0;
    s->bl = b ? strlen(b) : 0;
    h->n_norm++;
    return 0;
}

static int parse_normalizer(ld *l, const cJSON *n) {
    if (!n || cJSON_IsNull(n)) return 0;
    const char *ty = jstr(n, "type");
    if (!ty) return bad(l, "normalizer", "no \"type\"");
    if (!strcmp(ty, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *e;
        if (!cJSON_IsArray(a)) return bad(l, "normalizer.normalizers", "not a list");
        cJSON_ArrayForEach(e, a) if (parse_normalizer(l, e) != 0) return -1;
        return 0;
    }
    if (!strcmp(ty, "NFC")) return add_step(l->h, FL_NORM_NFC, NULL, NULL);
    if (!strcmp(ty, "Prepend")) {
        const char *p = jstr(n, "prepend");
        if (!p) return bad(l, "normalizer.prepend", "not a string");
        return add_step(l->h, FL_NORM_PREPEND, p, NULL);
    }
    if (!strcmp(ty, "Replace")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(n, "pattern");
        const char *a = jstr(pat, "String"), *b = jstr(n, "content");
        if (!a) return bad(l, "normalizer.Replace.pattern", "only {\"String\": ...} patterns are implemented");
        if (!b) return bad(l, "normalizer.Replace.content", "not a string");
        return add_step(l->h, FL_NORM_REPLACE, a, b);
    }
    return bad(l, "normalizer.type", "\"%.60s\" is not implemented (NFC, Prepend, Replace, Sequence are)", ty);
}

static int set_regex(ld *l, const char *key, const char *pcre) {
    if (l->regex.n) return bad(l, key, "a second regex split is not implemented (one Split or ByteLevel use_regex)");
    return sb_str(&l->regex, pcre);
}

static int parse_pretok(ld *l, const cJSON *p) {
    if (!p || cJSON_IsNull(p)) return 0;
    const char *ty = jstr(p, "type");
    if (!ty) return bad(l, "pre_tokenizer", "no \"type\"");
    if (!strcmp(ty, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *e;
        if (!cJSON_IsArray(a)) return bad(l, "pre_tokenizer.pretokenizers", "not a list");
        cJSON_ArrayForEach(e, a) if (parse_pretok(l, e) != 0) return -1;
        return 0;
    }
    if (!strcmp(ty, "ByteLevel")) {
        if (jtrue(p, "add_prefix_space")) return bad(l, "pre_tokenizer.ByteLevel.add_prefix_space", "true is not implemented");
        l->byte_level = 1;
        const cJSON *ur = cJSON_GetObjectItemCaseSensitive(p, "use_regex");
        if (!ur || cJSON_IsTrue(ur)) return set_regex(l, "pre_tokenizer.ByteLevel.use_regex", FL_GPT2_PATTERN);
        return 0;
    }
    if (!strcmp(ty, "Split")) {
        const char *beh = jstr(p, "behavior");
        if (!beh || strcmp(beh, "Isolated")) return bad(l, "pre_tokenizer.Split.behavior", "only \"Isolated\" is implemented");
        if (jtrue(p, "invert")) return bad(l, "pre_tokenizer.Split.invert", "true is not implemented");
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const char *rx = jstr(pat, "Regex"), *st = jstr(pat, "String");
        sbuf o = { 0 };
        int rc = 0;
        if (rx) rc = translate_regex(rx, &o, l->file);
        else if (st) /* a literal: every ASCII punctuation character escaped */
            for (const char *c = st; *c && rc == 0; c++) {
                char e[3] = { '\\', *c, 0 };
                rc = ((unsigned char)*c < 0x80 && !(*c >= '0' && *c <= '9') && !((*c | 0x20) >= 'a' && (*c | 0x20) <= 'z'))
                         ? sb_str(&o, e) : sb_add(&o, c, 1);
            }
        else rc = bad(l, "pre_tokenizer.Split.pattern", "neither {\"Regex\": ...} nor {\"String\": ...}");
        if (rc == 0 && !o.n) rc = bad(l, "pre_tokenizer.Split.pattern", "empty");
        if (rc == 0) rc = set_regex(l, "pre_tokenizer.Split", o.p);
        free(o.p);
        return rc;
    }
    if (!strcmp(ty, "Metaspace")) {
        const char *rep = jstr(p, "replacement");
        if (!rep) rep = "\xe2\x96\x81";
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(p, "split");
        if (!sp || cJSON_IsTrue(sp)) return bad(l, "pre_tokenizer.Metaspace.split", "true (the default) is not implemented");
        const char *sch = jstr(p, "prepend_scheme");
        const cJSON *aps = cJSON_GetObjectItemCaseSensitive(p, "add_prefix_space");
        int kind;
        if (sch && !strcmp(sch, "always")) kind = FL_NORM_PREPEND_ABSENT;
        else if (sch && !strcmp(sch, "first")) kind = FL_NORM_PREPEND_ABSENT_FIRST;
        else if (sch && !strcmp(sch, "never")) kind = -1;
        else if (sch) return bad(l, "pre_tokenizer.Metaspace.prepend_scheme", "\"%.40s\" is not one of always, first, never", sch);
        else kind = !aps || cJSON_IsTrue(aps) ? FL_NORM_PREPEND_ABSENT : -1;
        if (l->meta_steps) return bad(l, "pre_tokenizer.Metaspace", "given twice");
        l->ms[0] = (fl_norm_step){ FL_NORM_REPLACE, strdup(" "), strdup(rep), 1, strlen(rep) };
        l->meta_steps = 1;
        if (kind >= 0) l->ms[1] = (fl_norm_step){ kind, strdup(rep), NULL, strlen(rep), 0 }, l->meta_steps = 2;
        for (int i = 0; i < l->meta_steps; i++)
            if (!l->ms[i].a || (i == 0 && !l->ms[i].b)) return fl_err("bpe: out of memory");
        return 0;
    }
    return bad(l, "pre_tokenizer.type", "\"%.60s\" is not implemented (ByteLevel, Split, Metaspace, Sequence are)", ty);
}

static int parse_decoder(ld *l, const cJSON *d) {
    if (!d || cJSON_IsNull(d)) return bad(l, "decoder", "null is not implemented");
    const char *ty = jstr(d, "type");
    if (!ty) return bad(l, "decoder", "no \"type\"");
    if (!strcmp(ty, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(d, "decoders"), *e;
        if (!cJSON_IsArray(a)) return bad(l, "decoder.decoders", "not a list");
        cJSON_ArrayForEach(e, a) if (parse_decoder(l, e) != 0) return -1;
        return 0;
    }
    if (!strcmp(ty, "ByteLevel") || !strcmp(ty, "ByteFallback") || !strcmp(ty, "Fuse")) return 0;
    if (!strcmp(ty, "Replace")) {
        const char *a = jstr(cJSON_GetObjectItemCaseSensitive(d, "pattern"), "String"), *b = jstr(d, "content");
        if (!a || !b || strcmp(a, "\xe2\x96\x81") || strcmp(b, " "))
            return bad(l, "decoder.Replace", "only \"\\u2581\" -> \" \" is implemented");
        l->h->meta = 1;
        return 0;
    }
    if (!strcmp(ty, "Strip")) {
        const char *c = jstr(d, "content");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(d, "start"), *sp = cJSON_GetObjectItemCaseSensitive(d, "stop");
        if (!c || strcmp(c, " ") || !cJSON_IsNumber(st) || (st->valuedouble != 0 && st->valuedouble != 1) ||
            (sp && (!cJSON_IsNumber(sp) || sp->valuedouble != 0)))
            return bad(l, "decoder.Strip", "only content \" \", start 0 or 1, stop 0 is implemented");
        l->h->strip_lead = st->valuedouble == 1;
        return 0;
    }
    if (!strcmp(ty, "Metaspace")) {
        l->h->meta = 1;
        const char *sch = jstr(d, "prepend_scheme");
        l->h->strip_lead = !(sch && !strcmp(sch, "never"));
        return 0;
    }
    return bad(l, "decoder.type", "\"%.60s\" is not implemented", ty);
}

/* Id of a token named by text (an added token's content or a vocab entry). */
static int token_id(const ld *l, const char *name) {
    for (int i = 0; i < l->h->n_added; i++)
        if (l->h->added[i].len == strlen(name) && !memcmp(l->h->added[i].p, name, strlen(name))) return l->h->added[i].id;
    size_t n = strlen(name);
    unsigned char *b = malloc(n + 1);
    if (!b) return -1;
    long k = l->byte_level ? fl_bpe_unmap_token(name, n, b) : -1;
    if (k < 0) memcpy(b, name, n), k = (long)n;
    int id = fl_bpe_tmap_find(l->t, b, (size_t)k);
    free(b);
    return id;
}

static int parse_post(ld *l, const cJSON *p) {
    if (!p || cJSON_IsNull(p)) return 0;
    const char *ty = jstr(p, "type");
    if (!ty) return bad(l, "post_processor", "no \"type\"");
    if (!strcmp(ty, "ByteLevel")) return 0; /* offsets only */
    if (!strcmp(ty, "Sequence")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "processors"), *e;
        if (!cJSON_IsArray(a)) return bad(l, "post_processor.processors", "not a list");
        cJSON_ArrayForEach(e, a) if (parse_post(l, e) != 0) return -1;
        return 0;
    }
    if (!strcmp(ty, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single"), *sp = cJSON_GetObjectItemCaseSensitive(p, "special_tokens"), *e;
        if (!cJSON_IsArray(single)) return bad(l, "post_processor.single", "not a list");
        int seen_a = 0;
        fl_hf *h = l->h;
        h->n_prefix = h->n_suffix = 0;
        cJSON_ArrayForEach(e, single) {
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken"), *sq = cJSON_GetObjectItemCaseSensitive(e, "Sequence");
            if (sq) {
                const char *id = jstr(sq, "id");
                if (!id || strcmp(id, "A") || seen_a) return bad(l, "post_processor.single", "a Sequence other than one \"A\"");
                seen_a = 1;
                continue;
            }
            const char *name = jstr(st, "id");
            if (!name) return bad(l, "post_processor.single", "an item neither SpecialToken nor Sequence");
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(sp, name), "ids"), *x;
            if (!cJSON_IsArray(ids)) return bad(l, "post_processor.special_tokens", "no ids for \"%.60s\"", name);
            cJSON_ArrayForEach(x, ids) {
                if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble >= l->t->n_vocab || x->valuedouble != (int)x->valuedouble ||
                    !h->kind[(int)x->valuedouble])
                    return bad(l, "post_processor.special_tokens", "\"%.60s\" has an id that is no token's", name);
                int32_t *arr = seen_a ? h->suffix : h->prefix;
                int *cnt = seen_a ? &h->n_suffix : &h->n_prefix;
                if (*cnt >= 8) return bad(l, "post_processor.single", "more than 8 special tokens on a side");
                arr[(*cnt)++] = (int32_t)x->valuedouble;
            }
        }
        if (!seen_a) return bad(l, "post_processor.single", "no Sequence \"A\"");
        return 0;
    }
    return bad(l, "post_processor.type", "\"%.60s\" is not implemented (ByteLevel, TemplateProcessing, Sequence are)", ty);
}

static int cmp_added(const void *a, const void *b) {
    const fl_added *x = a, *y = b;
    return x->p[0] != y->p[0] ? (int)x->p[0] - (int)y->p[0] : x->id - y->id;
}

/* tokenizer_config.json: add_bos_token / add_eos_token, when given, decide
 * (as HF's Python LlamaTokenizerFast rebuilds its template from them). */
static int parse_config(ld *l, const char *dir) {
    size_t dl = strlen(dir);
    char *path = malloc(dl + 32);
    if (!path) return fl_err("bpe: out of memory");
    sprintf(path, "%s/tokenizer_config.json", dir);
    if (!file_exists(path)) { free(path); return 0; }
    char *txt;
    size_t n;
    if (fl_read_file(path, &txt, &n) != 0) { free(path); return -1; }
    cJSON *j = cJSON_ParseWithLength(txt, n);
    const char *ep = j ? NULL : cJSON_GetErrorPtr();
    int rc = 0;
    if (!cJSON_IsObject(j)) rc = fl_err("%s: not a JSON object%s (near byte %ld)", path, j ? "" : ": bad JSON", ep ? (long)(ep - txt) : 0L);
    const char *keys[2] = { "add_bos_token", "add_eos_token" }, *toks[2] = { "bos_token", "eos_token" };
    for (int s = 0; s < 2 && rc == 0; s++) {
        const cJSON *flag = cJSON_GetObjectItemCaseSensitive(j, keys[s]);
        const cJSON *tk = cJSON_GetObjectItemCaseSensitive(j, toks[s]);
        const char *name = cJSON_IsString(tk) ? tk->valuestring : jstr(tk, "content");
        if (s == 1 && name && l->t->eot < 0) l->t->eot = token_id(l, name);
        if (!flag) continue;
        if (!cJSON_IsBool(flag)) { rc = fl_err("%s: %s: not true or false", path, keys[s]); break; }
        int32_t *arr = s ? l->h->suffix : l->h->prefix;
        int *cnt = s ? &l->h->n_suffix : &l->h->n_prefix;
        *cnt = 0;
        if (cJSON_IsFalse(flag)) continue;
        int id = name ? token_id(l, name) : -1;
        if (id < 0) { rc = fl_err("%s: %s is true but %s is not a token of the tokenizer", path, keys[s], toks[s]); break; }
        arr[(*cnt)++] = id;
    }
    cJSON_Delete(j);
    free(txt);
    free(path);
    return rc;
}

void fl_hf_free(fl_hf *h) {
    if (!h) return;
    free(h->kind);
    free(h->byte_of);
    for (int i = 0; i < h->n_norm; i++) free(h->norm[i].a), free(h->norm[i].b);
    free(h->norm);
    free(h->added);
    free(h);
}

/* A merge entry -> its two token names (pointers into the JSON or buf). */
static int merge_parts(const ld *l, const cJSON *e, int m, const char **a, size_t *al, const char **b, size_t *bl) {
    if (cJSON_IsString(e)) {
        const char *s = e->valuestring, *sp = strchr(s, ' ');
        if (!sp || strchr(sp + 1, ' ') || sp == s || !sp[1])
            return bad(l, "model.merges", "entry %d \"%.60s\" is not two tokens separated by one space", m, s);
        *a = s, *al = (size_t)(sp - s), *b = sp + 1, *bl = strlen(sp + 1);
        return 0;
    }
    if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) && cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
        *a = cJSON_GetArrayItem(e, 0)->valuestring, *b = cJSON_GetArrayItem(e, 1)->valuestring;
        *al = strlen(*a), *bl = strlen(*b);
        return 0;
    }
    return bad(l, "model.merges", "entry %d is neither \"a b\" nor [\"a\", \"b\"]", m);
}

/* Token name -> bytes (byte-level names through GPT-2's byte map). */
static size_t name_bytes(const ld *l, const char *s, size_t n, unsigned char *out) {
    long k = l->byte_level ? fl_bpe_unmap_token(s, n, out) : -1;
    if (k < 0) memcpy(out, s, n), k = (long)n;
    return (size_t)k;
}

static int load_json(ld *l, cJSON *root, const char *dir) {
    fl_bpe *t = l->t;
    fl_hf *h = l->h;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) return bad(l, "model", "missing or not an object");
    const char *ty = jstr(model, "type");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (ty ? strcmp(ty, "BPE") != 0 : !merges)
        return bad(l, "model.type", "\"%.60s\" is not implemented (only BPE)", ty ? ty : "(none)");
    if (!cJSON_IsObject(vocab)) return bad(l, "model.vocab", "missing or not an object");
    if (!cJSON_IsArray(merges)) return bad(l, "model.merges", "missing or not a list");
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dr && !cJSON_IsNull(dr) && !(cJSON_IsNumber(dr) && dr->valuedouble == 0)) return bad(l, "model.dropout", "BPE dropout is not implemented");
    if (!jnullish(model, "continuing_subword_prefix")) return bad(l, "model.continuing_subword_prefix", "not implemented");
    if (!jnullish(model, "end_of_word_suffix")) return bad(l, "model.end_of_word_suffix", "not implemented");
    h->ignore_merges = jtrue(model, "ignore_merges");
    h->fuse_unk = jtrue(model, "fuse_unk");
    int byte_fallback = jtrue(model, "byte_fallback");

    /* the text steps first: byte-level or not decides how names are read */
    if (parse_normalizer(l, cJSON_GetObjectItemCaseSensitive(root, "normalizer")) != 0) return -1;
    if (parse_pretok(l, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")) != 0) return -1;
    for (int i = 0; i < l->meta_steps; i++) {
        if (grow((void **)&h->norm, &(size_t){ (size_t)h->n_norm }, (size_t)h->n_norm + 1, sizeof *h->norm) != 0) return -1;
        h->norm[h->n_norm++] = l->ms[i];
        l->ms[i].a = l->ms[i].b = NULL;
    }
    l->meta_steps = 0;
    h->char_level = !l->byte_level;
    if (parse_decoder(l, cJSON_GetObjectItemCaseSensitive(root, "decoder")) != 0) return -1;

    /* ids: model.vocab and added_tokens */
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), *e;
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added)) return bad(l, "added_tokens", "not a list");
    long maxid = -1;
    size_t bytes = 0;
    int na = 0;
    cJSON_ArrayForEach(e, vocab) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble >= MAX_ID || e->valuedouble != (double)(long)e->valuedouble)
            return bad(l, "model.vocab", "token \"%.60s\" has id %.17g: not an integer in 0..%d", e->string, cJSON_IsNumber(e) ? e->valuedouble : -1.0, MAX_ID - 1);
        if ((long)e->valuedouble > maxid) maxid = (long)e->valuedouble;
        bytes += strlen(e->string);
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        const char *c = jstr(e, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= MAX_ID || id->valuedouble != (double)(long)id->valuedouble)
            return bad(l, "added_tokens", "entry %d has no id in 0..%d", na, MAX_ID - 1);
        if (!c || !*c) return bad(l, "added_tokens", "entry %d has no content", na);
        if (jtrue(e, "single_word")) return bad(l, "added_tokens", "entry %d (\"%.60s\"): single_word true is not implemented", na, c);
        if (jtrue(e, "normalized") && h->n_norm)
            return bad(l, "added_tokens", "entry %d (\"%.60s\"): normalized true with a normalizer is not implemented", na, c);
        if ((long)id->valuedouble > maxid) maxid = (long)id->valuedouble;
        bytes += strlen(c);
        na++;
    }
    if (maxid < 0) return bad(l, "model.vocab", "empty");
    t->n_vocab = (int)maxid + 1;
    size_t nv = (size_t)t->n_vocab;
    t->blob = malloc(bytes + 1); /* names (bytes <= their UTF-8) and added contents */
    t->off = calloc(nv, sizeof *t->off);
    t->len = calloc(nv, sizeof *t->len);
    t->rank = malloc(nv * sizeof *t->rank);
    t->mergeable = calloc(nv, 1);
    h->kind = calloc(nv, 1);
    h->byte_of = malloc(nv * sizeof *h->byte_of);
    h->added = calloc((size_t)na + 1, sizeof *h->added);
    if (!t->blob || !t->off || !t->len || !t->rank || !t->mergeable || !h->kind || !h->byte_of || !h->added) return fl_err("bpe: out of memory");
    for (size_t i = 0; i < nv; i++) t->rank[i] = -1, h->byte_of[i] = -1;
    size_t at = 0;
    cJSON_ArrayForEach(e, vocab) {
        int id = (int)e->valuedouble;
        if (h->kind[id]) return bad(l, "model.vocab", "id %d is given to two tokens (\"%.60s\" and another)", id, e->string);
        size_t k = name_bytes(l, e->string, strlen(e->string), t->blob + at);
        t->off[id] = (uint32_t)at, t->len[id] = (uint32_t)k, h->kind[id] = 1;
        at += k;
    }
    int rc = fl_bpe_tmap_build(t, h->kind);
    if (rc > 0) return bad(l, "model.vocab", "two tokens have the same bytes");
    if (rc < 0) return -1;
    na = 0;
    cJSON_ArrayForEach(e, added) { /* the text of each lives in the blob too (the JSON goes) */
        int id = (int)cJSON_GetObjectItemCaseSensitive(e, "id")->valuedouble;
        const char *c = jstr(e, "content");
        size_t cl = strlen(c);
        if (h->kind[id] == 2) return bad(l, "added_tokens", "id %d is given twice", id);
        memcpy(t->blob + at, c, cl);
        if (!h->kind[id]) /* an added token only: its text is what it decodes to */
            t->off[id] = (uint32_t)at, t->len[id] = (uint32_t)cl, h->kind[id] = 2;
        /* one in model.vocab too is split out all the same, matched on its text */
        h->added[na++] = (fl_added){ t->blob + at, (uint32_t)cl, id, (unsigned char)jtrue(e, "lstrip"), (unsigned char)jtrue(e, "rstrip") };
        at += cl;
    }
    h->n_added = na;
    qsort(h->added, (size_t)na, sizeof *h->added, cmp_added);
    for (int b = 0, a = 0; b <= 256; b++) {
        while (a < na && h->added[a].p[0] < b) a++;
        h->astart[b] = a;
    }

    /* byte tokens, fallback, unk */
    for (int b = 0; b < 256; b++) t->byte_id[b] = -1, h->fallback[b] = -1;
    if (l->byte_level)
        for (int b = 0; b < 256; b++) {
            unsigned char c = (unsigned char)b;
            if ((t->byte_id[b] = fl_bpe_tmap_find(t, &c, 1)) < 0)
                return bad(l, "model.vocab", "no token for byte 0x%02x, which a byte-level BPE needs", b);
        }
    else if (byte_fallback)
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            int id = fl_bpe_tmap_find(t, (const unsigned char *)name, 6);
            h->fallback[b] = id;
            if (id >= 0) h->byte_of[id] = (int16_t)b;
        }
    if (h->char_level) { /* may whole words be cut before their "\u2581"? (bpe.c) */
        h->word_split = 1;
        for (int id = 0; id < t->n_vocab && h->word_split; id++) {
            if (h->kind[id] != 1) continue;
            const unsigned char *p = t->blob + t->off[id];
            for (uint32_t i = 1; i + 3 <= t->len[id]; i++)
                if (p[i] == 0xE2 && p[i + 1] == 0x96 && p[i + 2] == 0x81 && !(i >= 3 && p[i - 3] == 0xE2 && p[i - 2] == 0x96 && p[i - 1] == 0x81)) {
                    h->word_split = 0;
                    break;
                }
        }
    }
    h->unk = -1;
    const char *unk = jstr(model, "unk_token");
    if (unk && (h->unk = token_id(l, unk)) < 0) return bad(l, "model.unk_token", "\"%.60s\" is not in model.vocab", unk);

    /* merges, by rank */
    int nm = cJSON_GetArraySize(merges);
    t->merges = malloc(sizeof *t->merges * ((size_t)nm + 1));
    int32_t *res = malloc(sizeof *res * ((size_t)nm + 1));
    unsigned char *buf = NULL;
    size_t bcap = 0;
    rc = t->merges && res ? 0 : fl_err("bpe: out of memory");
    int m = 0;
    cJSON_ArrayForEach(e, merges) {
        if (rc != 0) break;
        const char *a = NULL, *b = NULL;
        size_t al = 0, bl = 0;
        if ((rc = merge_parts(l, e, m, &a, &al, &b, &bl)) != 0) break;
        if ((rc = grow((void **)&buf, &bcap, al + bl + 1, 1)) != 0) break;
        size_t ka = name_bytes(l, a, al, buf), kb = name_bytes(l, b, bl, buf + ka);
        int ia = fl_bpe_tmap_find(t, buf, ka), ib = fl_bpe_tmap_find(t, buf + ka, kb), ir = fl_bpe_tmap_find(t, buf, ka + kb);
        if (ia < 0 || ib < 0) {
            rc = bad(l, "model.merges", "entry %d names \"%.*s\", which is not in model.vocab", m, (int)(ia < 0 ? al : bl), ia < 0 ? a : b);
            break;
        }
        if (ir < 0) { rc = bad(l, "model.merges", "entry %d: the merge of \"%.*s\" and \"%.*s\" is not in model.vocab", m, (int)al, a, (int)bl, b); break; }
        if (h->char_level && (ia == h->unk || ib == h->unk || h->byte_of[ia] >= 0 || h->byte_of[ib] >= 0)) {
            rc = bad(l, "model.merges", "entry %d merges the unknown or a <0xNN> byte token: not implemented", m);
            break;
        }
        t->merges[m][0] = ia, t->merges[m][1] = ib, res[m] = ir;
        if (t->rank[ir] < 0) t->rank[ir] = m;
        m++;
    }
    free(buf);
    t->n_merges = m;
    if (rc == 0) rc = fl_bpe_pmap_merges(t, res);
    free(res);
    if (rc != 0) return -1;

    if (parse_post(l, cJSON_GetObjectItemCaseSensitive(root, "post_processor")) != 0) return -1;
    t->eot = -1; /* <|endoftext|> when an added token, else the config's eos_token */
    for (int i = 0; i < h->n_added; i++)
        if (h->added[i].len == strlen(EOT_TEXT) && !memcmp(h->added[i].p, EOT_TEXT, h->added[i].len)) t->eot = h->added[i].id;
    if (parse_config(l, dir) != 0) return -1;
    if (l->regex.n) {
        char what[4200];
        snprintf(what, sizeof what, "%.4000s: pre_tokenizer", l->file);
        if (fl_bpe_compile_pattern(t, l->regex.p, what) != 0) return -1;
    }
    return 0;
}

int fl_tokjson_load(fl_bpe *t, const char *dir) {
    size_t dl = strlen(dir);
    char *path = malloc(dl + 20);
    if (!path) return fl_err("bpe: out of memory");
    sprintf(path, "%s/tokenizer.json", dir);
    char *txt;
    size_t n;
    if (fl_read_file(path, &txt, &n) != 0) { free(path); return -1; }
    cJSON *root = cJSON_ParseWithLength(txt, n);
    const char *ep = root ? NULL : cJSON_GetErrorPtr();
    int rc;
    ld l = { .file = path, .t = t };
    if (!cJSON_IsObject(root)) rc = fl_err("%s: not a JSON object%s (near byte %ld)", path, root ? "" : ": bad JSON", ep ? (long)(ep - txt) : 0L);
    else if (!(t->hf = l.h = calloc(1, sizeof *l.h))) rc = fl_err("bpe: out of memory");
    else rc = load_json(&l, root, dir);
    for (int i = 0; i < l.meta_steps; i++) free(l.ms[i].a), free(l.ms[i].b);
    free(l.regex.p);
    cJSON_Delete(root);
    free(txt);
    free(path);
    return rc;
}
