/* The one option parser of the plug-ins (see opts.h for the two accepted
 * forms). The text comes from the command line and from grid files, so it is
 * untrusted: every item is measured before it is copied, numbers go through
 * strtoll/strtod with their whole text checked, and nothing is written past
 * the fixed-size fields of the private struct. Errors are one line naming the
 * plug-in and listing its options, so a typo is fixed from the message. */
#include "opts.h"
#include "err.h"
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tables are short; a fixed bound keeps the "already set" flags on the stack. */
#define OPTS_MAX 32
/* Deeper nesting than any real spec needs is refused: it also bounds the
 * work of removing redundant parentheses (one pass per level). */
#define DEPTH_MAX 64
/* How much of a user's text an error message quotes. */
#define SHOW 48

/* ---- describing ---------------------------------------------------------- */

static void append(char *buf, size_t n, size_t *pos, const char *s) {
    if (*pos + 1 >= n) return;
    size_t l = strlen(s), room = n - 1 - *pos;
    if (l > room) l = room;
    memcpy(buf + *pos, s, l);
    *pos += l;
    buf[*pos] = 0;
}

static int clamp_int(double v) {
    return v <= INT_MIN ? INT_MIN : v >= INT_MAX ? INT_MAX : (int)v;
}

static void describe_one(const fl_option *o, char *s, size_t n) {
    char range[160] = "";
    switch (o->type) {
    case FL_OPT_INT:
        snprintf(range, sizeof range, "whole number in [%d, %d]", clamp_int(o->min), clamp_int(o->max));
        snprintf(s, n, "%s=%d", o->name, clamp_int(o->def));
        break;
    case FL_OPT_INT_ALL:
        snprintf(range, sizeof range, "whole number in [%d, %d] or all", clamp_int(o->min), clamp_int(o->max));
        if (o->def == 0) snprintf(s, n, "%s=all", o->name);
        else snprintf(s, n, "%s=%d", o->name, clamp_int(o->def));
        break;
    case FL_OPT_FLOAT:
        snprintf(range, sizeof range, "in [%g, %g]", o->min, o->max);
        snprintf(s, n, "%s=%g", o->name, o->def);
        break;
    case FL_OPT_STRING:
        if (o->choices) snprintf(range, sizeof range, "one of %.140s", o->choices);
        snprintf(s, n, "%s=%.*s", o->name, FL_OPT_STRLEN, o->def_str && *o->def_str ? o->def_str : "''");
        break;
    case FL_OPT_SPEC:
        snprintf(range, sizeof range, "a spec name[:options]");
        snprintf(s, n, "%s=%.*s", o->name, FL_OPT_STRLEN, o->def_str && *o->def_str ? o->def_str : "''");
        break;
    }
    size_t l = strlen(s);
    if (o->alias) snprintf(s + l, n - l, " (%s; alias %s)", range, o->alias);
    else if (*range) snprintf(s + l, n - l, " (%s)", range);
}

const char *fl_opt_type_name(fl_opt_type t) {
    switch (t) {
    case FL_OPT_INT: return "int";
    case FL_OPT_INT_ALL: return "int|all";
    case FL_OPT_FLOAT: return "float";
    case FL_OPT_STRING: return "string";
    case FL_OPT_SPEC: return "spec";
    }
    return "?";
}

char *fl_opts_describe(const fl_option *tab, char *buf, size_t n) {
    if (!buf || n == 0) return buf;
    buf[0] = 0;
    size_t pos = 0;
    if (!tab || !tab->name) {
        append(buf, n, &pos, "none");
        return buf;
    }
    for (int i = 0; tab[i].name; i++) {
        char one[512];
        describe_one(&tab[i], one, sizeof one);
        if (i) append(buf, n, &pos, ", ");
        append(buf, n, &pos, one);
    }
    /* a cut listing says so rather than ending mid-word without a sign */
    if (pos + 1 >= n && n >= 4) memcpy(buf + n - 4, "...", 4);
    return buf;
}

/* ---- errors ------------------------------------------------------------- */

__attribute__((format(printf, 3, 4)))
static int opt_err(const fl_option *tab, const char *what, const char *fmt, ...) {
    char msg[520], opts[440];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fl_opts_describe(tab, opts, sizeof opts);
    return fl_err("%s: %s; options: %s", what, msg, opts);
}

/* A quotable excerpt of untrusted text: at most SHOW characters and "..." */
typedef struct { char s[SHOW + 4]; } excerpt;
static excerpt quote(const char *p, size_t len) {
    excerpt e;
    if (len > SHOW) snprintf(e.s, sizeof e.s, "%.*s...", SHOW, p);
    else snprintf(e.s, sizeof e.s, "%.*s", (int)len, p);
    return e;
}

/* ---- values ------------------------------------------------------------- */

/* Removes redundant outer parentheses: "((a,b))" -> "a,b". The caller has
 * checked the whole text is balanced. -1 (with the message) when text
 * follows the closing parenthesis: "(a)b". */
static int unwrap(const fl_option *tab, const char *what, const fl_option *o, const char **v, size_t *len) {
    while (*len > 0 && (*v)[0] == '(') {
        size_t depth = 0, i = 0;
        for (; i < *len; i++) {
            if ((*v)[i] == '(') depth++;
            else if ((*v)[i] == ')' && --depth == 0) break;
        }
        if (i + 1 != *len)
            return opt_err(tab, what, "%s: text after ')' in '%s'", o->name, quote(*v, *len).s);
        (*v)++;
        *len -= 2;
    }
    return 0;
}

static int set_int(const fl_option *tab, const char *what, const fl_option *o, const char *v, size_t len, int *out) {
    if (o->type == FL_OPT_INT_ALL && len == 3 && !strncmp(v, "all", 3)) { *out = 0; return 0; }
    const char *kind = o->type == FL_OPT_INT_ALL ? "a whole number or all" : "a whole number";
    char buf[32];
    int ok = len > 0 && len < sizeof buf;
    for (size_t i = 0; ok && i < len; i++)   /* digits with an optional sign: no spaces, hex, or exponent */
        ok = isdigit((unsigned char)v[i]) || (i == 0 && (v[i] == '-' || v[i] == '+') && len > 1);
    if (!ok) return opt_err(tab, what, "%s: '%s' is not %s", o->name, quote(v, len).s, kind);
    memcpy(buf, v, len);
    buf[len] = 0;
    errno = 0;
    char *e;
    long long x = strtoll(buf, &e, 10);
    if (errno == ERANGE || *e || x < INT_MIN || x > INT_MAX || (double)x < o->min || (double)x > o->max)
        return opt_err(tab, what, "%s: %s is out of range [%d, %d]", o->name, buf, clamp_int(o->min),
                       clamp_int(o->max));
    *out = (int)x;
    return 0;
}

static int set_float(const fl_option *tab, const char *what, const fl_option *o, const char *v, size_t len, double *out) {
    char buf[64];
    /* decimal notation only: strtod alone would also take "inf", "nan", hex
     * floats and leading spaces */
    int ok = len > 0 && len < sizeof buf;
    for (size_t i = 0; ok && i < len; i++)
        ok = isdigit((unsigned char)v[i]) || v[i] == '.' || v[i] == 'e' || v[i] == 'E' || v[i] == '-' || v[i] == '+';
    char *e = NULL;
    double x = 0;
    if (ok) {
        memcpy(buf, v, len);
        buf[len] = 0;
        x = strtod(buf, &e);
        ok = e != buf && !*e;
    }
    if (!ok) return opt_err(tab, what, "%s: '%s' is not a number", o->name, quote(v, len).s);
    if (!isfinite(x) || x < o->min || x > o->max)
        return opt_err(tab, what, "%s: %s is out of range [%g, %g]", o->name, buf, o->min, o->max);
    *out = x;
    return 0;
}

static int in_choices(const char *choices, const char *v, size_t len) {
    for (const char *c = choices; *c;) {
        const char *bar = strchr(c, '|');
        size_t cl = bar ? (size_t)(bar - c) : strlen(c);
        if (cl == len && !strncmp(c, v, len)) return 1;
        if (!bar) break;
        c = bar + 1;
    }
    return 0;
}

static int set_value(const fl_option *tab, const char *what, const fl_option *o, const char *v, size_t len, void *priv) {
    if (unwrap(tab, what, o, &v, &len) != 0) return -1;
    if (len == 0) return opt_err(tab, what, "%s: no value given", o->name);
    char *field = (char *)priv + o->offset;
    switch (o->type) {
    case FL_OPT_INT:
    case FL_OPT_INT_ALL: {
        int x = 0;
        if (set_int(tab, what, o, v, len, &x) != 0) return -1;
        memcpy(field, &x, sizeof x);
        return 0;
    }
    case FL_OPT_FLOAT: {
        double x = 0;
        if (set_float(tab, what, o, v, len, &x) != 0) return -1;
        memcpy(field, &x, sizeof x);
        return 0;
    }
    case FL_OPT_STRING:
    case FL_OPT_SPEC:
        if (len >= FL_OPT_STRLEN)
            return opt_err(tab, what, "%s: '%s' is too long (at most %d characters)", o->name, quote(v, len).s,
                           FL_OPT_STRLEN - 1);
        if (o->type == FL_OPT_STRING && o->choices && !in_choices(o->choices, v, len))
            return opt_err(tab, what, "%s: '%s' is not one of %s", o->name, quote(v, len).s, o->choices);
        memcpy(field, v, len);
        field[len] = 0;
        return 0;
    }
    return opt_err(tab, what, "%s: unknown option type", o->name);
}

static void set_default(const fl_option *o, void *priv) {
    char *field = (char *)priv + o->offset;
    if (o->type == FL_OPT_INT || o->type == FL_OPT_INT_ALL) {
        int x = clamp_int(o->def);
        memcpy(field, &x, sizeof x);
    } else if (o->type == FL_OPT_FLOAT) {
        double x = o->def;
        memcpy(field, &x, sizeof x);
    } else {
        snprintf(field, FL_OPT_STRLEN, "%s", o->def_str ? o->def_str : "");
    }
}

/* ---- items -------------------------------------------------------------- */

/* "key=" at the start of an item: an identifier then '='. Anything else
 * ("ria:alpha=1", "(x=1)", "0.5") is a positional value. Returns the key's
 * length, 0 if the item is positional. */
static size_t key_len(const char *s, size_t len) {
    if (!len || !(isalpha((unsigned char)s[0]) || s[0] == '_')) return 0;
    size_t i = 1;
    while (i < len && (isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-')) i++;
    return i < len && s[i] == '=' ? i : 0;
}

static int find_key(const fl_option *tab, int n, const char *k, size_t len) {
    for (int i = 0; i < n; i++)
        if ((strlen(tab[i].name) == len && !strncmp(tab[i].name, k, len)) ||
            (tab[i].alias && strlen(tab[i].alias) == len && !strncmp(tab[i].alias, k, len)))
            return i;
    return -1;
}

int fl_opts_parse(const fl_option *tab, const char *what, const char *text, void *priv) {
    if (!what) what = "options";
    int n = 0;
    while (tab && tab[n].name) n++;
    if (n > OPTS_MAX) return fl_err("%s: more than %d options in its table", what, OPTS_MAX);
    for (int i = 0; i < n; i++) set_default(&tab[i], priv);
    if (!text || !*text) return 0;
    const size_t len = strlen(text);
    if (n == 0) return opt_err(tab, what, "takes no options (got '%s')", quote(text, len).s);

    /* balance, and which form: named if any '=' stands outside parentheses */
    size_t depth = 0;
    int named = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '(') {
            if (++depth > DEPTH_MAX)
                return opt_err(tab, what, "parentheses nested more than %d deep in '%s'", DEPTH_MAX, quote(text, len).s);
        } else if (text[i] == ')') {
            if (!depth) return opt_err(tab, what, "')' without '(' in '%s'", quote(text, len).s);
            depth--;
        } else if (text[i] == '=' && !depth) named = 1;
    }
    if (depth) return opt_err(tab, what, "'(' without ')' in '%s'", quote(text, len).s);

    unsigned char seen[OPTS_MAX] = { 0 };
    int slot = 0;   /* legacy form: the option the next piece fills */
    const char *p = text, *end = text + len;
    for (;;) {
        const char *s = p;
        depth = 0;
        for (; p < end; p++) {
            if (*p == '(') depth++;
            else if (*p == ')') depth--;
            else if (!depth && (*p == ',' || (!named && *p == ':'))) break;
        }
        const size_t il = (size_t)(p - s);
        if (!named) {
            /* an empty piece keeps that option's default ("sparsefw:ria::5"),
             * as the positional forms always allowed */
            if (slot >= n)
                return opt_err(tab, what, "too many values in '%s' (at most %d)", quote(text, len).s, n);
            int i = slot++;
            if (il && set_value(tab, what, &tab[i], s, il, priv) != 0) return -1;
        } else {
            if (!il) return opt_err(tab, what, "empty item in '%s'", quote(text, len).s);
            size_t kl = key_len(s, il);
            int i;
            if (kl) {
                i = find_key(tab, n, s, kl);
                if (i < 0) return opt_err(tab, what, "unknown option '%s'", quote(s, kl).s);
                if (seen[i]) return opt_err(tab, what, "option '%s' given twice", tab[i].name);
            } else {
                for (i = 0; i < n && seen[i]; i++) {}
                if (i == n)
                    return opt_err(tab, what, "too many values: '%s' has no option left to fill", quote(s, il).s);
            }
            seen[i] = 1;
            const char *v = kl ? s + kl + 1 : s;
            if (set_value(tab, what, &tab[i], v, il - (size_t)(v - s), priv) != 0) return -1;
        }
        if (p == end) break;
        p++;   /* past the separator; a trailing one leaves an empty last item */
    }
    return 0;
}
