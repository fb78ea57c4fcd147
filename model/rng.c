#include "rng.h"

uint64_t fl_splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t fl_rand_below(uint64_t *s, uint64_t bound) {
    if (bound <= 1) return 0;
    uint64_t threshold = (0 - bound) % bound; /* 2^64 mod bound: draws below it are dropped */
    for (;;) {
        uint64_t r = fl_splitmix64(s);
        if (r >= threshold) return r % bound;
    }
}

double fl_rand_unit(uint64_t *s) { return ((fl_splitmix64(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

uint64_t fl_lcg31(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}
