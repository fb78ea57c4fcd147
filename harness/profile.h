/* The profiler of one cell: for each phase of a cell's pipeline (calibration,
 * statistics, pruning, recovery, evaluation, and drift, the activation-drift
 * measurement after recovery; docs/ARCHITECTURE.md) the wall
 * and CPU seconds, the FLOPs counted at every GEMM (model/gemm.h), the tracked
 * allocator's peak (model/alloc.h) and the process's peak RSS.
 *
 * Phases interleave (the pruning pass alternates statistics, pruning and
 * recovery unit by unit), so a phase's figures accumulate over every time it
 * is entered: seconds and FLOPs add up, peaks are the maximum. The tracked
 * allocator's phase is switched with it, so both agree on what a phase is.
 *
 * Peak RSS per phase: Linux lets a process reset its own high-water mark
 * (writing "5" to /proc/self/clear_refs, since Linux 4.0); each entry resets
 * it and each exit reads VmHWM. Where that is refused, the phase gets the
 * process's peak so far (getrusage), an upper bound, and rss_exact is 0. */
#ifndef FL_PROFILE_H
#define FL_PROFILE_H
#include "model/clock.h" /* fl_wall_s, fl_cpu_s */
#include <stddef.h>
#include <stdint.h>

typedef enum { FL_PH_CALIB = 0, FL_PH_STATS, FL_PH_PRUNE, FL_PH_RECOVER, FL_PH_EVAL, FL_PH_DRIFT, FL_NPHASES, FL_PH_NONE = -1 } fl_phase;

typedef struct {
    double wall, cpu;         /* seconds */
    uint64_t flops;
    size_t peak_bytes;        /* tracked */
    size_t peak_rss_kb;
} fl_phase_prof;

typedef struct {
    fl_phase_prof ph[FL_NPHASES];
    int cur;                  /* fl_phase, FL_PH_NONE between phases */
    double t0, c0;
    uint64_t f0;
    int rss_exact;
} fl_prof;

/* The phase names, as in results.csv's columns and the allocator's phases. */
extern const char *const FL_PHASE_NAMES[FL_NPHASES];

void fl_prof_init(fl_prof *p);
/* Ends the current phase (if any) and enters ph (FL_PH_NONE: none). */
void fl_prof_enter(fl_prof *p, fl_phase ph);

#endif
