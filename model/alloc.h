/* Tracked allocator: every byte of tensor memory goes through here so the
 * profiler can report live and peak bytes, overall and per named phase.
 *
 * A phase is a label ("calibration", "recovery", ...). fl_mem_phase() makes
 * it current; a phase's peak is the most live bytes seen while it was
 * current, over every time it was entered.
 * Counters are atomic, so allocating from OpenMP threads is safe. */
#ifndef FL_ALLOC_H
#define FL_ALLOC_H
#include <stddef.h>

/* 64-byte aligned, zero-filled; aborts with a message if the system is out
 * of memory (there is nothing sensible a numeric kernel can do then). */
void *fl_alloc(size_t bytes);
/* Same, as floats. */
float *fl_allocf(size_t n);
/* The same but NULL when out of memory: for every size that comes from a
 * user's input (a config, a file, an option), where the caller must turn
 * the failure into an error message instead of an abort. */
void *fl_try_alloc(size_t bytes);
float *fl_try_allocf(size_t n);
void fl_free(void *p);          /* NULL is fine */
size_t fl_alloc_size(const void *p);

size_t fl_mem_live(void);
size_t fl_mem_peak(void);       /* since start or last fl_mem_reset_peak() */
void fl_mem_reset_peak(void);   /* peak := live */

/* Start (or re-enter) the named phase; at most FL_MEM_MAX_PHASES names. */
void fl_mem_phase(const char *name);
const char *fl_mem_current_phase(void);
/* Peak live bytes seen while `name` was current; 0 if never entered. */
size_t fl_mem_phase_peak(const char *name);
void fl_mem_phase_reset_all(void);
#define FL_MEM_MAX_PHASES 32

#endif
