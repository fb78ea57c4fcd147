/* libFuzzer target: llm.c token files (fl_tokfile_read). The first byte
 * picks the vocabulary bound (0: none), the rest is the file. */
#include "fuzz_common.h"
#include "datasets/tokfile.h"
#include "model/err.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc; (void)argv;
    char p[300];
    fz_path(p, sizeof p, "seed.bin");
    int32_t t16[5] = { 1, 2, 3, 255, 0 }, t32[3] = { 70000, 1, 2 };
    const char *names[2] = { "u16", "u32" };
    for (int k = 0; k < 2; k++) {
        if (fl_tokfile_write(p, k ? t32 : t16, k ? 3 : 5) != 0) continue;
        size_t n;
        char *s = fz_slurp(p, &n);
        uint8_t v = k ? 0 : 1;
        const void *pc[1];
        char *b = malloc(n + 1);
        b[0] = (char)v;
        memcpy(b + 1, s, n);
        pc[0] = b;
        size_t len = n + 1;
        fz_seed(names[k], pc, &len, 1);
        free(b);
        free(s);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    static const int vocabs[4] = { 0, 256, 50257, 1 };
    char p[300];
    fz_path(p, sizeof p, "t.bin");
    fz_write(p, data + 1, size - 1);
    int32_t *tok = NULL;
    int64_t n = 0;
    int vocab = vocabs[data[0] & 3];
    if (fl_tokfile_read(p, vocab, &tok, &n) == 0) {
        for (int64_t i = 0; i < n; i++)
            if (tok[i] < 0 || (vocab > 0 && tok[i] >= vocab)) abort();   /* the promise the reader makes */
        free(tok);
    }
    return 0;
}
