/* The per-phase profiler; see profile.h. */
#include "profile.h"
#include "model/alloc.h"
#include "model/gemm.h"
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

const char *const FL_PHASE_NAMES[FL_NPHASES] = { "calibration", "statistics", "pruning", "recovery", "evaluation", "drift" };

static int reset_hwm(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static size_t hwm_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    size_t kb = 0;
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "VmHWM: %zu kB", &kb) == 1) break;
        fclose(f);
    }
    if (!kb) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kb = (size_t)ru.ru_maxrss;
    }
    return kb;
}

void fl_prof_init(fl_prof *p) {
    memset(p, 0, sizeof *p);
    p->cur = FL_PH_NONE;
    p->rss_exact = reset_hwm() == 0;
}

void fl_prof_enter(fl_prof *p, fl_phase ph) {
    if (p->cur != FL_PH_NONE) {
        fl_phase_prof *q = &p->ph[p->cur];
        q->wall += fl_wall_s() - p->t0;
        q->cpu += fl_cpu_s() - p->c0;
        q->flops += fl_flops() - p->f0;
        size_t pk = fl_mem_phase_peak(FL_PHASE_NAMES[p->cur]), rss = hwm_kb();
        if (pk > q->peak_bytes) q->peak_bytes = pk;
        if (rss > q->peak_rss_kb) q->peak_rss_kb = rss;
    }
    p->cur = ph;
    if (ph == FL_PH_NONE) { fl_mem_phase("other"); return; }
    fl_mem_phase(FL_PHASE_NAMES[ph]);
    if (p->rss_exact) p->rss_exact = reset_hwm() == 0;
    p->t0 = fl_wall_s();
    p->c0 = fl_cpu_s();
    p->f0 = fl_flops();
}
