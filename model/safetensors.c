/* safetensors reading (mmap + validation) and fp32 writing. See safetensors.h.
 *
 * Everything in the header is checked before fl_st_open returns, so the
 * readers below can copy bytes without any further bounds checks. Every
 * failure is one fl_err() line that starts with the file's path. */
#include "safetensors.h"
#include "err.h"
#include "fileio.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tensor bytes are little-endian and we copy them with memcpy. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

static const char *dtype_name(fl_dtype d) {
    switch (d) {
    case FL_DT_F32: return "F32";
    case FL_DT_F16: return "F16";
    case FL_DT_BF16: return "BF16";
    }
    return "?";
}
static size_t dtype_size(fl_dtype d) { return d == FL_DT_F32 ? 4 : 2; }

const char *fl_st_shape_str(char *buf, size_t n, const int64_t *shape, int ndim) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

/* A JSON number that is a non-negative integer exactly representable in a
 * double (<= 2^53); safetensors offsets and dims are u64 in the spec, but no
 * real file comes near that. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= 0 && v <= 9007199254740992.0) || v != (double)(uint64_t)v) return 0;
    *out = (uint64_t)v;
    return 1;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const fl_st_tensor *)a)->name, ((const fl_st_tensor *)b)->name);
}
static int cmp_begin(const void *a, const void *b) {
    const fl_st_tensor *x = *(const fl_st_tensor *const *)a, *y = *(const fl_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Parses one header entry into t. Returns 0 or sets the error. */
static int parse_entry(const char *path, const cJSON *e, fl_st_tensor *t) {
    const char *name = e->string;
    char sb[160];
    if (!cJSON_IsObject(e))
        return fl_err("%s: header entry \"%s\" is not an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *of = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt))
        return fl_err("%s: tensor %s has no \"dtype\" string", path, name);
    if (strcmp(dt->valuestring, "F32") == 0) t->dtype = FL_DT_F32;
    else if (strcmp(dt->valuestring, "F16") == 0) t->dtype = FL_DT_F16;
    else if (strcmp(dt->valuestring, "BF16") == 0) t->dtype = FL_DT_BF16;
    else
        return fl_err("%s: tensor %s has dtype %s; freelunch reads only F32, F16 and BF16",
                      path, name, dt->valuestring);

    if (!cJSON_IsArray(sh))
        return fl_err("%s: tensor %s has no \"shape\" array", path, name);
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > 8) return fl_err("%s: tensor %s has %d dimensions, at most 8 are supported", path, name, ndim);
    t->ndim = ndim;
    /* numel stays below 2^60 so numel * 4 cannot overflow a u64 */
    uint64_t numel = 1;
    int i = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, sh) {
        uint64_t v;
        if (!json_uint(dim, &v))
            return fl_err("%s: tensor %s: \"shape\" must hold non-negative integers", path, name);
        t->shape[i++] = (int64_t)v;
        if (v != 0 && numel > (UINT64_C(1) << 60) / v)
            return fl_err("%s: tensor %s: shape %s is implausibly large", path, name,
                          fl_st_shape_str(sb, sizeof sb, t->shape, i));
        numel *= v;
    }
    t->numel = (int64_t)numel;

    uint64_t be[2];
    if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || !json_uint(cJSON_GetArrayItem(of, 0), &be[0]) ||
        !json_uint(cJSON_GetArrayItem(of, 1), &be[1]))
        return fl_err("%s: tensor %s: \"data_offsets\" must be [begin, end] with non-negative integers", path, name);
    if (be[0] > be[1])
        return fl_err("%s: tensor %s: data_offsets [%" PRIu64 ", %" PRIu64 "] end before they begin",
                      path, name, be[0], be[1]);
    t->begin = be[0];
    t->end = be[1];
    return 0;
}

int fl_st_open(fl_st_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return fl_err("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fl_err("%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size < 8) {
        close(fd);
        return fl_err("%s: truncated: %zu bytes, shorter than the 8-byte header length that starts a safetensors file",
                      path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);   /* the mapping keeps the file alive */
    if (map == MAP_FAILED) return fl_err("%s: cannot mmap: %s", path, strerror(errno));
    f->map = map;
    f->size = size;
    f->path = strdup(path);

    cJSON *root = NULL;
    fl_st_tensor **byoff = NULL;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | f->map[i];
    if (hlen > size - 8) {
        fl_err("%s: header length %" PRIu64 " goes beyond the end of the file (%zu bytes): truncated, or not a safetensors file",
               path, hlen, size);
        goto fail;
    }
    f->data = f->map + 8 + hlen;
    f->data_size = size - 8 - (size_t)hlen;

    const char *hjson = (const char *)f->map + 8, *hend = NULL;
    root = cJSON_ParseWithLengthOpts(hjson, (size_t)hlen, &hend, 0);
    /* cJSON stops at the end of the object; only padding may follow it */
    for (const char *p = hend; root && p < hjson + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') { cJSON_Delete(root); root = NULL; }
    if (!root) {
        fl_err("%s: header is not valid JSON (corrupt, or not a safetensors file)", path);
        goto fail;
    }
    if (!cJSON_IsObject(root)) {
        fl_err("%s: header is JSON but not an object of tensors", path);
        goto fail;
    }

    int cap = cJSON_GetArraySize(root);
    f->t = calloc((size_t)(cap > 0 ? cap : 1), sizeof(fl_st_tensor));
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0) continue;   /* free-form strings */
        fl_st_tensor *t = &f->t[f->n++];
        t->name = strdup(e->string);
        if (parse_entry(path, e, t) != 0) goto fail;
        uint64_t want = (uint64_t)t->numel * dtype_size(t->dtype);
        char sb[160];
        if (t->end > f->data_size) {
            fl_err("%s: tensor %s: data_offsets [%" PRIu64 ", %" PRIu64 "] out of bounds: the data area holds only %zu bytes (truncated file?)",
                   path, t->name, t->begin, t->end, f->data_size);
            goto fail;
        }
        if (t->end - t->begin != want) {
            fl_err("%s: tensor %s: shape %s in %s needs %" PRIu64 " bytes but data_offsets [%" PRIu64 ", %" PRIu64 "] span %" PRIu64,
                   path, t->name, fl_st_shape_str(sb, sizeof sb, t->shape, t->ndim), dtype_name(t->dtype), want,
                   t->begin, t->end, t->end - t->begin);
            goto fail;
        }
    }
    cJSON_Delete(root);
    root = NULL;

    /* Sorted by name: duplicates become neighbours and fl_st_find can bsearch.
     * (cJSON keeps both copies of a repeated key, so they do reach us.) */
    qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_name);
    for (int i = 1; i < f->n; i++)
        if (strcmp(f->t[i - 1].name, f->t[i].name) == 0) {
            fl_err("%s: tensor %s appears twice in the header", path, f->t[i].name);
            goto fail;
        }

    /* Overlap: sorted by begin, each non-empty tensor must start at or after
     * the furthest end seen so far. Empty tensors occupy no bytes. */
    byoff = malloc(sizeof *byoff * (size_t)(f->n > 0 ? f->n : 1));
    for (int i = 0; i < f->n; i++) byoff[i] = &f->t[i];
    qsort(byoff, (size_t)f->n, sizeof *byoff, cmp_begin);
    const fl_st_tensor *far = NULL;
    for (int i = 0; i < f->n; i++) {
        const fl_st_tensor *t = byoff[i];
        if (t->begin == t->end) continue;
        if (far && t->begin < far->end) {
            fl_err("%s: tensors %s [%" PRIu64 ", %" PRIu64 ") and %s [%" PRIu64 ", %" PRIu64 ") overlap",
                   path, far->name, far->begin, far->end, t->name, t->begin, t->end);
            goto fail;
        }
        if (!far || t->end > far->end) far = t;
    }
    free(byoff);
    return 0;

fail:
    cJSON_Delete(root);
    free(byoff);
    fl_st_close(f);
    return -1;
}

void fl_st_close(fl_st_file *f) {
    if (f->map) munmap(f->map, f->size);
    for (int i = 0; i < f->n; i++) free(f->t[i].name);
    free(f->t);
    free(f->path);
    memset(f, 0, sizeof *f);
}

const fl_st_tensor *fl_st_find(const fl_st_file *f, const char *name) {
    if (!f->t || f->n == 0) return NULL;
    fl_st_tensor key = { .name = (char *)name };
    return bsearch(&key, f->t, (size_t)f->n, sizeof *f->t, cmp_name);
}

/* ---- half-precision conversion ---------------------------------------- */

/* IEEE binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits. */
float fl_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in fp32 (which has room) */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31) bits = sign | 0x7f800000u | man << 13;          /* inf, nan (payload kept) */
    else bits = sign | (exp - 15 + 127) << 23 | man << 13;         /* normal: rebias */
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

/* bfloat16 is the top half of an fp32, so widening is a shift. */
float fl_bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

/* Narrowing, by hand: C11 has no bf16 type, and _Float16 conversions are
 * a compiler extension whose rounding of subnormals we must control anyway
 * (the rule that a non-zero never becomes 0, safetensors.h). Both round to
 * nearest, ties to even, on the bits, as torch's .to(bfloat16/float16) do. */
uint16_t fl_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    const uint32_t a = u & 0x7fffffffu, sign = (u >> 16) & 0x8000u;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7fc0u | ((u >> 16) & 0x3fu));   /* NaN, kept quiet */
    uint32_t h = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;   /* carries into the exponent when it must */
    if (a != 0 && (h & 0x7fffu) == 0) h = sign | 1u;       /* underflow: the smallest subnormal, not 0 */
    return (uint16_t)h;
}

uint16_t fl_f32_to_f16(float f, int *overflow) {
    uint32_t u;
    memcpy(&u, &f, 4);
    const uint32_t a = u & 0x7fffffffu, sign = (u >> 16) & 0x8000u;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x1ffu));  /* NaN */
    if (a == 0x7f800000u) return (uint16_t)(sign | 0x7c00u);                        /* inf stays inf */
    if (a >= 0x477ff000u) {   /* >= 65520: rounds past 65504, the largest binary16 */
        if (overflow) *overflow = 1;
        return (uint16_t)(sign | 0x7c00u);
    }
    if (a >= 0x38800000u) {   /* >= 2^-14: a normal binary16 */
        const uint32_t mant = a & 0x7fffffu, rem = mant & 0x1fffu;
        uint32_t h = ((a >> 23) - 127 + 15) << 10 | mant >> 13;
        if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;   /* a carry into the exponent is right */
        return (uint16_t)(sign | h);
    }
    if (a == 0) return (uint16_t)sign;
    const int e = (int)(a >> 23);
    if (e < 102) return (uint16_t)(sign | 1u);   /* below 2^-25 (fp32 subnormals too): would be 0 */
    /* a subnormal binary16: (1.mant) 2^(e-150) in units of 2^-24 */
    const uint32_t mant = (a & 0x7fffffu) | 0x800000u;
    const int sh = 126 - e;   /* 14 .. 24 */
    uint32_t q = mant >> sh;
    const uint32_t rem = mant & ((1u << sh) - 1), half = 1u << (sh - 1);
    if (rem > half || (rem == half && (q & 1u))) q++;   /* 0x400 is the smallest normal: still right */
    if (q == 0) q = 1;
    return (uint16_t)(sign | q);
}

int fl_st_read_f32(const fl_st_file *f, const fl_st_tensor *t, float *dst) {
    const uint8_t *src = f->data + t->begin;
    const int64_t n = t->numel;
    /* data may be unaligned (the header length is arbitrary), hence memcpy */
    if (t->dtype == FL_DT_F32) {
        memcpy(dst, src, (size_t)n * 4);
        return 0;
    }
    const int bf = t->dtype == FL_DT_BF16;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
    for (int64_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        dst[i] = bf ? fl_bf16_to_f32(h) : fl_f16_to_f32(h);
    }
    return 0;
}

const char *fl_dtype_name(fl_dtype d) { return dtype_name(d); }

int fl_dtype_parse(const char *s, fl_dtype *d) {
    static const struct { const char *n; fl_dtype d; } tab[] = {
        { "fp32", FL_DT_F32 }, { "f32", FL_DT_F32 }, { "float32", FL_DT_F32 }, { "fp16", FL_DT_F16 }, { "f16", FL_DT_F16 },
        { "float16", FL_DT_F16 }, { "bf16", FL_DT_BF16 }, { "bfloat16", FL_DT_BF16 } };
    for (size_t i = 0; s && i < sizeof tab / sizeof *tab; i++)
        if (!strcasecmp(s, tab[i].n)) { *d = tab[i].d; return 0; }
    return fl_err("dtype '%.64s' is not one of fp32, fp16, bf16", s ? s : "");
}

/* ---- writing ------------------------------------------------------------ */

/* Exact integers in the header: cJSON prints numbers as doubles, so we hand
 * it the digits ourselves. */
static cJSON *raw_int(uint64_t v) {
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    return cJSON_CreateRaw(b);
}

int fl_st_write(const char *path, const fl_st_out *ts, int n) { return fl_st_write_dtype(path, ts, n, FL_DT_F32, NULL, NULL); }

/* One tensor's bytes in dtype dt, converted a chunk at a time so no copy
 * of a whole tensor is made. 0, or -1 with *why set. */
static int write_data(FILE *fp, const float *x, size_t numel, fl_dtype dt, const char **why) {
    if (dt == FL_DT_F32) return fwrite(x, sizeof(float), numel, fp) == numel ? 0 : (*why = "write failed", -1);
    enum { CH = 1 << 14 };
    uint16_t buf[CH];
    for (size_t i0 = 0; i0 < numel; i0 += CH) {
        const size_t k = numel - i0 < CH ? numel - i0 : CH;
        int over = 0;
        for (size_t i = 0; i < k; i++) {
            const float v = x[i0 + i];
            buf[i] = dt == FL_DT_BF16 ? fl_f32_to_bf16(v) : fl_f32_to_f16(v, &over);
            /* a finite value that became inf (bf16 near FLT_MAX) */
            if (dt == FL_DT_BF16 && isfinite(v) && (buf[i] & 0x7fffu) == 0x7f80u) over = 1;
        }
        if (over) { *why = dt == FL_DT_F16 ? "a value beyond binary16's range (|x| >= 65520)" : "a value beyond bfloat16's range"; return -1; }
        if (fwrite(buf, 2, k, fp) != k) { *why = "write failed"; return -1; }
    }
    return 0;
}

int fl_st_write_dtype(const char *path, const fl_st_out *ts, int n, fl_dtype dt, const float *(*get)(void *ctx, int i), void *ctx) {
    const uint64_t esz = dtype_size(dt);
    for (int i = 0; i < n; i++) {
        if (ts[i].ndim < 0 || ts[i].ndim > 4) return fl_err("%s: tensor %s has %d dimensions (at most 4)", path, ts[i].name, ts[i].ndim);
        for (int j = 0; j < i; j++)
            if (strcmp(ts[i].name, ts[j].name) == 0) return fl_err("%s: tensor %s given twice", path, ts[i].name);
    }
    /* HF transformers refuses a file without "format" metadata. */
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject();
    cJSON_AddStringToObject(meta, "format", "pt");
    cJSON_AddItemToObject(root, "__metadata__", meta);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        uint64_t numel = 1;
        cJSON *e = cJSON_CreateObject(), *sh = cJSON_CreateArray(), *of = cJSON_CreateArray();
        cJSON_AddStringToObject(e, "dtype", dtype_name(dt));
        for (int j = 0; j < ts[i].ndim; j++) {
            cJSON_AddItemToArray(sh, raw_int((uint64_t)ts[i].shape[j]));
            numel *= (uint64_t)ts[i].shape[j];
        }
        cJSON_AddItemToObject(e, "shape", sh);
        cJSON_AddItemToArray(of, raw_int(off));
        off += numel * esz;
        cJSON_AddItemToArray(of, raw_int(off));
        cJSON_AddItemToObject(e, "data_offsets", of);
        cJSON_AddItemToObject(root, ts[i].name, e);
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!json) return fl_err("%s: out of memory building the header", path);

    /* Pad with spaces so the tensor data starts 8-byte aligned (the spec
     * allows trailing whitespace; HF's own writer does the same). */
    size_t len = strlen(json), padded = (len + 7) / 8 * 8;
    uint8_t lenb[8];
    for (int i = 0; i < 8; i++) lenb[i] = (uint8_t)((uint64_t)padded >> (8 * i));

    char *tmp;
    FILE *fp = fl_tmp_open(path, &tmp);
    if (!fp) {
        free(json);
        return -1;
    }
    int ok = fwrite(lenb, 1, 8, fp) == 8 && fwrite(json, 1, len, fp) == len;
    for (size_t i = len; ok && i < padded; i++) ok = fputc(' ', fp) != EOF;
    free(json);
    const char *why = NULL;
    int bad = -1;   /* the tensor that failed, when it is the data's fault */
    for (int i = 0; ok && i < n; i++) {
        size_t numel = 1;
        for (int j = 0; j < ts[i].ndim; j++) numel *= (size_t)ts[i].shape[j];
        if (!numel) continue;   /* empty: data may be NULL */
        const float *x = ts[i].data ? ts[i].data : get ? get(ctx, i) : NULL;
        if (!x) { ok = 0; bad = i; why = fl_errmsg()[0] ? fl_errmsg() : "no data"; break; }
        if (write_data(fp, x, numel, dt, &why) != 0) { ok = 0; bad = i; }
    }
    if (bad >= 0) {
        char msg[1100];
        snprintf(msg, sizeof msg, "%s", why);
        fl_tmp_commit(fp, tmp, path, 0);
        return fl_err("%s: tensor %s as %s: %s", path, ts[bad].name, dtype_name(dt), msg);
    }
    return fl_tmp_commit(fp, tmp, path, ok);
}
