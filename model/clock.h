/* The one clock. */
#ifndef FL_CLOCK_H
#define FL_CLOCK_H
double fl_wall_s(void);   /* monotonic seconds */
double fl_cpu_s(void);    /* the whole process, every thread */
#endif
