/* libFuzzer target: the safetensors header parser (fl_st_open) and the
 * readers it promises are safe once it accepts a file. */
#include "fuzz_common.h"
#include "model/err.h"
#include "model/safetensors.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    char p[300];
    fz_path(p, sizeof p, "seed.safetensors");
    float a[6] = { 1, 2, 3, 4, 5, 6 }, b[2] = { -1, 0.5f };
    fl_st_out o[2] = { { .name = "a.weight", .data = a, .ndim = 2, .shape = { 2, 3 } },
                       { .name = "b", .data = b, .ndim = 1, .shape = { 2 } } };
    if (fl_st_write(p, o, 2) == 0) {
        size_t n;
        char *s = fz_slurp(p, &n);
        const void *pc[1] = { s };
        fz_seed("f32", pc, &n, 1);
        free(s);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char p[300];
    fz_path(p, sizeof p, "x.safetensors");
    fz_write(p, data, size);
    fl_st_file f;
    if (fl_st_open(&f, p) != 0) return 0;
    for (int i = 0; i < f.n; i++) {
        const fl_st_tensor *t = fl_st_find(&f, f.t[i].name);
        if (t != &f.t[i]) abort();   /* names are unique, so each finds itself */
        float *dst = malloc(sizeof(float) * (size_t)(t->numel + 1));
        if (dst) fl_st_read_f32(&f, t, dst);
        free(dst);
    }
    fl_st_close(&f);
    return 0;
}
