#include "alloc.h"
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each block carries a 64-byte header holding its size, so fl_free can
 * subtract exactly what fl_alloc added and the payload stays 64-aligned. */
#define HDR 64

static atomic_size_t g_live, g_peak;
static struct { char name[32]; atomic_size_t peak; } g_phases[FL_MEM_MAX_PHASES];
static int g_nphases;
static _Atomic int g_cur = -1;

static void bump_peak(atomic_size_t *peak, size_t v) {
    size_t p = atomic_load(peak);
    while (v > p && !atomic_compare_exchange_weak(peak, &p, v)) {}
}

void *fl_try_alloc(size_t bytes) {
    void *raw = NULL;
    /* bytes + HDR must not wrap around to a tiny block */
    if (bytes > SIZE_MAX - HDR || posix_memalign(&raw, 64, bytes + HDR) != 0 || !raw) return NULL;
    memset(raw, 0, bytes + HDR);
    *(size_t *)raw = bytes;
    size_t live = atomic_fetch_add(&g_live, bytes) + bytes;
    bump_peak(&g_peak, live);
    int c = atomic_load(&g_cur);
    if (c >= 0) bump_peak(&g_phases[c].peak, live);
    return (char *)raw + HDR;
}

void *fl_alloc(size_t bytes) {
    void *p = fl_try_alloc(bytes);
    if (!p) {
        fprintf(stderr, "freelunch: out of memory allocating %zu bytes\n", bytes);
        abort();
    }
    return p;
}

float *fl_try_allocf(size_t n) { return n > SIZE_MAX / sizeof(float) ? NULL : (float *)fl_try_alloc(n * sizeof(float)); }

float *fl_allocf(size_t n) {
    if (n > SIZE_MAX / sizeof(float)) {
        fprintf(stderr, "freelunch: out of memory allocating %zu floats\n", n);
        abort();
    }
    return (float *)fl_alloc(n * sizeof(float));
}

size_t fl_alloc_size(const void *p) { return p ? *(const size_t *)((const char *)p - HDR) : 0; }

void fl_free(void *p) {
    if (!p) return;
    char *raw = (char *)p - HDR;
    atomic_fetch_sub(&g_live, *(size_t *)raw);
    free(raw);
}

size_t fl_mem_live(void) { return atomic_load(&g_live); }
size_t fl_mem_peak(void) { return atomic_load(&g_peak); }
void fl_mem_reset_peak(void) { atomic_store(&g_peak, atomic_load(&g_live)); }

static int find_phase(const char *name) {
    for (int i = 0; i < g_nphases; i++)
        if (strcmp(g_phases[i].name, name) == 0) return i;
    return -1;
}

void fl_mem_phase(const char *name) {
    int i = find_phase(name);
    if (i < 0) {
        if (g_nphases == FL_MEM_MAX_PHASES) { atomic_store(&g_cur, -1); return; }
        i = g_nphases++;
        snprintf(g_phases[i].name, sizeof g_phases[i].name, "%s", name);
        atomic_store(&g_phases[i].peak, 0);
    }
    bump_peak(&g_phases[i].peak, atomic_load(&g_live));
    atomic_store(&g_cur, i);
}

const char *fl_mem_current_phase(void) {
    int c = atomic_load(&g_cur);
    return c >= 0 ? g_phases[c].name : "";
}

size_t fl_mem_phase_peak(const char *name) {
    int i = find_phase(name);
    return i < 0 ? 0 : atomic_load(&g_phases[i].peak);
}

void fl_mem_phase_reset_all(void) {
    g_nphases = 0;
    atomic_store(&g_cur, -1);
}
