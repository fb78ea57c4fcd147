#include "cli.h"
#include "settings.h"
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

/* The settings' parser (settings.h), so an option and a grid value agree. */
int fl_cli_int(const char *cmd, const char *opt, const char *s, int lo) {
    long long v;
    if (fl_parse_int(s, lo, FL_INT_MAX, &v) != 0) {
        fprintf(stderr, "freelunch %s: %s expects an integer in [%d, %d], got '%s'\n", cmd, opt, lo, FL_INT_MAX, s);
        exit(2);
    }
    return (int)v;
}

double fl_cli_float(const char *cmd, const char *opt, const char *s) {
    double v;
    if (fl_parse_num(s, -FL_NUM_MAX, FL_NUM_MAX, &v) != 0) {
        fprintf(stderr, "freelunch %s: %s expects a decimal number, got '%s'\n", cmd, opt, s);
        exit(2);
    }
    return v;
}
