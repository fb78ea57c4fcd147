#include "gemm.h"
#include "err.h"
#include <cblas.h>
#include <dnnl.h>
#include <hwloc.h>
#include <malloc.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Not declared in every cblas.h; OpenBLAS exports it. */
void openblas_set_num_threads(int n);

static fl_backend g_backend = FL_BACKEND_OPENBLAS;
static atomic_uint_fast64_t g_flops;
static int g_threads = 1;

void fl_gemm_set_backend(fl_backend b) { g_backend = b; }
fl_backend fl_gemm_backend(void) { return g_backend; }
const char *fl_gemm_backend_name(void) { return g_backend == FL_BACKEND_ONEDNN ? "onednn" : "openblas"; }

int fl_gemm_set_backend_name(const char *name) {
    if (strcmp(name, "openblas") == 0) g_backend = FL_BACKEND_OPENBLAS;
    else if (strcmp(name, "onednn") == 0) g_backend = FL_BACKEND_ONEDNN;
    else return fl_err("unknown GEMM backend '%s' (expected openblas or onednn)", name);
    return 0;
}

int fl_gemm_backend_from_env(void) {
    const char *e = getenv("FL_BACKEND");
    if (!e || !*e) return 0;
    if (fl_gemm_set_backend_name(e) != 0) return fl_err("FL_BACKEND: unknown GEMM backend '%s' (expected openblas or onednn)", e);
    return 0;
}

void fl_gemm(int transA, int transB, int M, int N, int K, float alpha,
             const float *A, int lda, const float *B, int ldb, float beta,
             float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    atomic_fetch_add(&g_flops, (uint64_t)2 * M * N * K);
    if (g_backend == FL_BACKEND_ONEDNN) {
        dnnl_status_t st = dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, alpha,
                                      A, lda, B, ldb, beta, C, ldc);
        if (st != dnnl_success) {
            fprintf(stderr, "freelunch: dnnl_sgemm failed (status %d) for %dx%dx%d\n", (int)st, M, N, K);
            abort();
        }
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

uint64_t fl_flops(void) { return atomic_load(&g_flops); }
void fl_flops_reset(void) { atomic_store(&g_flops, 0); }
void fl_flops_add(uint64_t n) { atomic_fetch_add(&g_flops, n); }

int fl_physical_cores(void) {
    hwloc_topology_t topo;
    int n = -1;
    if (hwloc_topology_init(&topo) == 0) {
        if (hwloc_topology_load(topo) == 0) n = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE);
        hwloc_topology_destroy(topo);
    }
    if (n <= 0) n = omp_get_num_procs();
    return n > 0 ? n : 1;
}

void fl_machine_desc(char *buf, size_t n) {
    hwloc_topology_t topo;
    snprintf(buf, n, "unknown machine");
    if (hwloc_topology_init(&topo) != 0) return;
    if (hwloc_topology_load(topo) == 0) {
        hwloc_obj_t root = hwloc_get_root_obj(topo), pkg = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PACKAGE, 0);
        const char *cpu = pkg ? hwloc_obj_get_info_by_name(pkg, "CPUModel") : NULL;
        if (!cpu) cpu = hwloc_obj_get_info_by_name(root, "CPUModel");
        size_t k = (size_t)snprintf(buf, n, "%s; %d cores, %d PUs, %d NUMA node(s)", cpu ? cpu : "unknown CPU",
                                    hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_CORE), hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU),
                                    hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE));
        static const struct { hwloc_obj_type_t t; const char *name; } caches[] = {
            { HWLOC_OBJ_L1CACHE, "L1d" }, { HWLOC_OBJ_L2CACHE, "L2" }, { HWLOC_OBJ_L3CACHE, "L3" } };
        for (int i = 0; i < 3 && k < n; i++) {
            hwloc_obj_t c = hwloc_get_obj_by_type(topo, caches[i].t, 0);
            if (c && c->attr) k += (size_t)snprintf(buf + k, n - k, ", %s %llu KiB x%d", caches[i].name,
                                                   (unsigned long long)c->attr->cache.size / 1024, hwloc_get_nbobjs_by_type(topo, caches[i].t));
        }
    }
    hwloc_topology_destroy(topo);
}

int fl_threads_init(int n) {
    /* Activation buffers are allocated and freed every step. Above glibc's
     * mmap threshold each one is a fresh mapping: page faults and kernel
     * zeroing on every step (measured: gpt2 d=256 block 230 -> 147 ms with
     * mmap off). Keep blocks up to the largest threshold glibc accepts
     * (32 MiB) on the heap, and don't hand freed memory back each time. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    if (n <= 0) n = fl_physical_cores();
    g_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
    return n;
}

int fl_threads(void) { return g_threads; }
