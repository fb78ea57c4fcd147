/* The one clock of freelunch: seconds as doubles, for timing phases,
 * progress lines and benchmarks. */
#ifndef FL_CLOCK_H
#define FL_CLOCK_H

/* Wall-clock seconds (CLOCK_MONOTONIC: only differences mean anything). */
double fl_wall_s(void);
/* CPU seconds of the whole process, every thread. */
double fl_cpu_s(void);

#endif
