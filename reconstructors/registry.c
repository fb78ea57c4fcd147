/* The table of reconstructors. One line per reconstructor; each is defined
 * in its own file as `const fl_reconstructor fl_rec_<name>`. */
#include "recon.h"
#include "model/err.h"
#include <string.h>

extern const fl_reconstructor fl_rec_none, fl_rec_matrix, fl_rec_matrix_ls, fl_rec_sublayer;
extern const fl_reconstructor fl_rec_block, fl_rec_blocks, fl_rec_retrain;

const fl_reconstructor *const FL_RECONSTRUCTORS[] = {
    &fl_rec_none,
    &fl_rec_matrix,
    &fl_rec_matrix_ls,
    &fl_rec_sublayer,
    &fl_rec_block,
    &fl_rec_blocks,
    &fl_rec_retrain,
    NULL,
};

int fl_recon_find(const char *spec, const fl_reconstructor **out, const char **arg) {
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    for (int i = 0; FL_RECONSTRUCTORS[i]; i++) {
        const fl_reconstructor *r = FL_RECONSTRUCTORS[i];
        if (strlen(r->name) != len || strncmp(r->name, spec, len)) continue;
        *out = r;
        *arg = colon ? colon + 1 : NULL;
        if (r->check_arg) return r->check_arg(*arg);
        if (*arg) return fl_err("reconstructor '%s' takes no argument (got '%s')", r->name, *arg);
        return 0;
    }
    char names[512] = "";
    for (int i = 0; FL_RECONSTRUCTORS[i]; i++) {
        strncat(names, i ? ", " : "", sizeof names - strlen(names) - 1);
        strncat(names, FL_RECONSTRUCTORS[i]->name, sizeof names - strlen(names) - 1);
    }
    return fl_err("unknown reconstructor '%.*s' (valid: %s; blocks:K, blocks:all, retrain:full, retrain:bias-norm, retrain:lora, retrain:masklora)", (int)len, spec, names);
}
