/* The one PRNG of freelunch: splitmix64 (Steele, Lea, Flood 2014), chosen
 * because it is tiny, fast, and gives the same stream on every machine,
 * unlike libc's rand(). */
#ifndef FL_RNG_H
#define FL_RNG_H
#include <stdint.h>

/* The next value of the generator with state *s. */
uint64_t fl_splitmix64(uint64_t *s);
/* A 64-bit LCG (Knuth's MMIX constants), returning the high 31 bits of
 * the new state: the retraining baselines' shuffle, kept so that their
 * results stay comparable across versions. Everything else uses
 * splitmix64. */
uint64_t fl_lcg31(uint64_t *s);
/* Uniform in [0, bound) (bound > 0), by rejection: exactly uniform. */
uint64_t fl_rand_below(uint64_t *s, uint64_t bound);
/* Uniform double in (0, 1), 53 bits. */
double fl_rand_unit(uint64_t *s);

#endif
