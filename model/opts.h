/* Option tables for plug-ins (criteria and reconstructors), in the spirit of
 * FFmpeg's AVOption: a plug-in lists its options once (name, help, type,
 * default, range, where the parsed value goes in its private struct), and
 * one generic parser turns the text after the plug-in's name into that
 * struct, once per cell. docs/ARCHITECTURE.md, "Plug-ins", shows both forms.
 *
 * The text after the name ("ria:alpha=0.5", "sparseswaps:warm=ria,budget=8",
 * "blocks:2") has two accepted forms:
 *   - named: comma-separated key=value items ("alpha=0.5,iters=20"); an item
 *     that does not start with "key=" is positional and fills the next option
 *     in table order not yet set ("sparseswaps:ria:alpha=1,budget=8" sets
 *     warm to "ria:alpha=1"). A value may be wrapped in parentheses to hold
 *     commas of its own: "warm=(sparsefw:alpha=0.5,iters=10),budget=4".
 *   - legacy positional: when the text holds no '=' outside parentheses, it
 *     is split on ':' and ',' (outside parentheses) and the pieces fill the
 *     options in table order ("sparseswaps:ria:100" = warm=ria, budget=100);
 *     an empty piece keeps that option's default ("sparsefw:ria::5"). A
 *     FL_OPT_SPEC option in this form takes exactly one piece: a bare plug-in
 *     name, or a parenthesized spec ("sparseswaps:(ria:alpha=1):100").
 * Every value is range-checked; an unknown key, a repeated key, too many
 * values, an empty named item, a malformed number (numbers are decimal:
 * no inf, nan or hex), a value out of range, a string not among its choices
 * or longer than FL_OPT_STRLEN-1, or unbalanced parentheses is one error line
 * naming the plug-in and listing the valid options. */
#ifndef FL_OPTS_H
#define FL_OPTS_H
#include <stddef.h>

typedef enum {
    FL_OPT_INT,      /* int, within [min, max] */
    FL_OPT_FLOAT,    /* double, within [min, max]; finite */
    FL_OPT_STRING,   /* char[FL_OPT_STRLEN], one of `choices` ("a|b|c") when given */
    FL_OPT_SPEC,     /* char[FL_OPT_STRLEN]: another plug-in's spec (a warm start), kept verbatim */
    FL_OPT_INT_ALL,  /* int within [min, max], or the word "all" stored as 0 ("blocks:all") */
} fl_opt_type;

#define FL_OPT_STRLEN 128

typedef struct {
    const char *name;      /* "alpha" */
    const char *alias;     /* a short alternative name ("a"), or NULL */
    const char *help;      /* one line, for `freelunch list` and --help */
    fl_opt_type type;
    size_t offset;         /* offsetof(private struct, field) */
    double def;            /* FL_OPT_INT/FLOAT/INT_ALL default */
    double min, max;       /* inclusive range for numbers */
    const char *def_str;   /* FL_OPT_STRING/SPEC default ("" if NULL) */
    const char *choices;   /* FL_OPT_STRING: "a|b|c", or NULL for any */
} fl_option;

/* Sets every option of tab (terminated by an entry with name NULL) to its
 * default in priv, then parses text (NULL or "" = all defaults) into it.
 * what names the plug-in in messages ("criterion ria"). 0, or -1 with one
 * message line. */
int fl_opts_parse(const fl_option *tab, const char *what, const char *text, void *priv);
/* "alpha=0.5 (in [0, 2]), iters=..." : one line describing the options and
 * their defaults, for listings; writes at most n bytes, returns buf. */
char *fl_opts_describe(const fl_option *tab, char *buf, size_t n);
/* The type's name for listings: int, int|all, float, string, spec. */
const char *fl_opt_type_name(fl_opt_type t);

#endif
