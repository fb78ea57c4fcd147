/* safetensors (HF's format): 8-byte little-endian header length, a JSON
 * header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
 * {...}}, then the raw little-endian tensor bytes. We mmap the file and
 * validate everything before touching any tensor byte: header length within
 * the file, header is JSON, known dtype, offsets within the data area, byte
 * count = prod(shape) * dtype size, and no two tensors overlapping. */
#ifndef FL_SAFETENSORS_H
#define FL_SAFETENSORS_H
#include <stddef.h>
#include <stdint.h>

typedef enum { FL_DT_F32 = 0, FL_DT_F16, FL_DT_BF16 } fl_dtype;

typedef struct {
    char *name;
    fl_dtype dtype;
    int ndim;
    int64_t shape[8];
    int64_t numel;
    uint64_t begin, end;   /* relative to the data area */
} fl_st_tensor;

typedef struct {
    char *path;
    uint8_t *map;          /* whole file */
    size_t size;
    const uint8_t *data;   /* map + 8 + header_len */
    size_t data_size;
    fl_st_tensor *t;
    int n;
} fl_st_file;

/* Opens and validates; on error the message names the path and the problem. */
int fl_st_open(fl_st_file *f, const char *path);
void fl_st_close(fl_st_file *f);
const fl_st_tensor *fl_st_find(const fl_st_file *f, const char *name);
/* "[2, 3, 4]" into buf (n bytes), for messages; returns buf. */
const char *fl_st_shape_str(char *buf, size_t n, const int64_t *shape, int ndim);
/* Converts fp32/fp16/bf16 to fp32 into dst (numel floats). */
int fl_st_read_f32(const fl_st_file *f, const fl_st_tensor *t, float *dst);

typedef struct {
    const char *name;
    const float *data;
    int ndim;
    int64_t shape[4];
} fl_st_out;
/* Writes fp32 tensors (in the given order) to path via path.tmp + rename. */
int fl_st_write(const char *path, const fl_st_out *ts, int n);
/* The same, each tensor stored as dtype (F32, F16 or BF16, rounded to
 * nearest even). A tensor whose data is NULL (and numel > 0) is asked of
 * get(ctx, i) just before its bytes are written, so a caller can hand the
 * tensors over one at a time (a streamed model's blocks); the pointer must
 * stay valid until the next call. Zeros stay zeros (of their sign); a
 * non-zero value too small for F16 or BF16 is stored as the smallest
 * subnormal of its sign instead of 0, so the file's zeros are exactly the
 * input's (a pruned model's mask survives); a finite value beyond F16's
 * range is an error naming the tensor. */
int fl_st_write_dtype(const char *path, const fl_st_out *ts, int n, fl_dtype dt,
                      const float *(*get)(void *ctx, int i), void *ctx);
const char *fl_dtype_name(fl_dtype d);   /* "F32", "F16", "BF16" */
/* "fp32", "fp16", "bf16" (also "f32", "float32", "f16", "float16",
 * "bfloat16"); -1 with fl_err naming the valid ones. */
int fl_dtype_parse(const char *s, fl_dtype *d);
/* One value as stored (round to nearest even, the underflow rule above);
 * *overflow set when a finite f does not fit F16. */
uint16_t fl_f32_to_bf16(float f);
uint16_t fl_f32_to_f16(float f, int *overflow);
float fl_bf16_to_f32(uint16_t h);
float fl_f16_to_f32(uint16_t h);

#endif
