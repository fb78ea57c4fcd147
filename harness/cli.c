#include "cli.h"
#include "model/err.h"
#include "model/gemm.h"
#include <stdlib.h>

int fl_cli_fail(void) {
    fprintf(stderr, "freelunch: %s\n", fl_errmsg());
    return 1;
}

int fl_cli_usage(const char *cmd, const char *msg) {
    fprintf(stderr, "freelunch %s: %s (see 'freelunch %s --help')\n", cmd, msg, cmd);
    return 2;
}

int fl_cli_common_opt(int c, const char *cmd) {
    if (c == 'B') {
        if (fl_gemm_set_backend_name(optarg) != 0) { fprintf(stderr, "freelunch %s: %s\n", cmd, fl_errmsg()); exit(2); }
        return 1;
    }
    /* --threads was already applied by main() before the command ran; here
     * it is only validated. */
    if (c == 'j') { fl_cli_int(cmd, "--threads", optarg, 1); return 1; }
    return 0;
}

int fl_cli_int(const char *cmd, const char *opt, const char *s, int lo) {
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == 0 || *end != 0 || v < lo || v > 1 << 30) {
        fprintf(stderr, "freelunch %s: %s expects an integer >= %d, got '%s'\n", cmd, opt, lo, s);
        exit(2);
    }
    return (int)v;
}

double fl_cli_float(const char *cmd, const char *opt, const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (*s == 0 || *end != 0 || v != v) {
        fprintf(stderr, "freelunch %s: %s expects a number, got '%s'\n", cmd, opt, s);
        exit(2);
    }
    return v;
}
