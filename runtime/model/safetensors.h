/* safetensors.h — reading (mmap) and writing safetensors files.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of
 * JSON describing every tensor (dtype, shape, [begin, end) offsets into the
 * data buffer) and the data buffer itself (docs/formats.md §1). The reader maps
 * the file read-only and validates the header as strictly as the reference
 * implementation: tensors must tile the data buffer exactly, sizes must
 * match shapes, duplicate names and unknown dtypes are errors. Tensor data
 * pointers point into the mapping and may be unaligned (old writers did not
 * pad the header); read them with memcpy or the conversion helpers here.
 *
 * The writer produces standard files (header padded to a multiple of 8,
 * tensors ordered by element size descending then name) that Python's
 * safetensors loads; `v100rt mkmodel` and the tests use it.
 */
#ifndef VRT_MODEL_SAFETENSORS_H
#define VRT_MODEL_SAFETENSORS_H

#include "vrt.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest header the reader accepts (the reference MAX_HEADER_SIZE). */
#define VRT_ST_MAX_HEADER ((uint64_t)100000000)
/* Most dimensions a tensor may have. */
#define VRT_ST_MAX_DIMS 8

/* dtypes of docs/formats.md §1.3. The values are internal (not file values). */
typedef enum vrt_st_dtype {
    VRT_ST_BOOL = 0,
    VRT_ST_U8,
    VRT_ST_I8,
    VRT_ST_F8_E5M2,
    VRT_ST_F8_E4M3,
    VRT_ST_F8_E8M0,
    VRT_ST_F8_E4M3FNUZ,
    VRT_ST_F8_E5M2FNUZ,
    VRT_ST_I16,
    VRT_ST_U16,
    VRT_ST_F16,
    VRT_ST_BF16,
    VRT_ST_I32,
    VRT_ST_U32,
    VRT_ST_F32,
    VRT_ST_I64,
    VRT_ST_U64,
    VRT_ST_F64,
    VRT_ST_C64,
    VRT_ST_F4,
    VRT_ST_F6_E2M3,
    VRT_ST_F6_E3M2,
    VRT_ST_NDTYPES
} vrt_st_dtype;

typedef struct vrt_st_tensor {
    const char *name;
    int dtype;                      /* vrt_st_dtype */
    int ndim;                       /* 0 (scalar) .. VRT_ST_MAX_DIMS */
    int64_t shape[VRT_ST_MAX_DIMS]; /* [ndim], outermost first */
    uint64_t nbytes;
    const void *data; /* into the mapping, may be unaligned; NULL when only
                         the header was parsed */
    const char *file; /* path of the file holding it; NULL for a bare header */
    uint64_t offset;  /* begin, relative to the start of the data buffer */
} vrt_st_tensor;

/* A parsed header. Tensors are in data-offset order. */
typedef struct vrt_st_header {
    vrt_st_tensor *tensors; /* [n_tensors] */
    int n_tensors;
    char **meta_keys;   /* [n_meta], from __metadata__ */
    char **meta_values; /* [n_meta] */
    int n_meta;
    int *by_name_; /* internal: [n_tensors] indices sorted by name */
} vrt_st_header;

/* An open (mapped) file. */
typedef struct vrt_st_file {
    char *path;
    void *map_;          /* internal: the mapping */
    size_t map_size_;    /* internal: its length (the file size) */
    uint64_t header_len; /* N */
    vrt_st_header header;
} vrt_st_file;

/* "F16" etc.; "?" for an invalid value. */
const char *vrt_st_dtype_name(int dtype);
/* Parses a dtype string (exact, case-sensitive); -1 when unknown. */
int vrt_st_dtype_parse(const char *s);
/* Bits per element (4, 6, 8, 16, 32 or 64); 0 for an invalid value. */
int vrt_st_dtype_bits(int dtype);
/* Number of elements (product of the shape; 1 for a scalar). */
uint64_t vrt_st_numel(const vrt_st_tensor *t);

/* Parses and validates a header (json: the N header bytes, not
 * NUL-terminated; data_len: the size of the data buffer that follows it).
 * Pure: touches no file, so a fuzzer can drive it. On success *out owns its
 * memory (vrt_st_header_free); on error *out is left empty. Errors name the
 * tensor; the caller adds the file. */
int vrt_st_parse_header(const char *json, size_t json_len, uint64_t data_len, vrt_st_header *out,
                        vrt_err *err);
void vrt_st_header_free(vrt_st_header *h);

/* Maps path read-only and validates it. Every error names the file (and the
 * tensor where there is one). *f must be closed with vrt_st_close, also
 * after a failed open (closing an empty file is a no-op). */
int vrt_st_open(vrt_st_file *f, const char *path, vrt_err *err);
void vrt_st_close(vrt_st_file *f);
/* Tensor by name (binary search); NULL when absent. */
const vrt_st_tensor *vrt_st_find(const vrt_st_file *f, const char *name);
/* Same on a bare header. */
const vrt_st_tensor *vrt_st_header_find(const vrt_st_header *h, const char *name);

/* Converts an F32, F16 or BF16 tensor to float32. out holds numel values.
 * Other dtypes are VRT_EUNSUPPORTED (message names the tensor). */
int vrt_st_to_f32(const vrt_st_tensor *t, float *out, vrt_err *err);
/* Converts an F32, F16 or BF16 tensor to IEEE half (round to nearest even).
 * *n_overflow (may be NULL) receives how many finite source values became
 * infinite in fp16 (|x| >= 65520); the caller decides whether to warn. */
int vrt_st_to_f16(const vrt_st_tensor *t, uint16_t *out, uint64_t *n_overflow, vrt_err *err);

/* Writer. Tensors are added, then written at once; the writer holds the
 * data of tensors added with vrt_st_writer_add (a copy) and references the
 * rest, so memory stays bounded with add_ref and add_fill. */
typedef struct vrt_st_writer {
    struct vrt_st_wentry *entries_; /* internal */
    int n;
    size_t cap_;
} vrt_st_writer;

void vrt_st_writer_init(vrt_st_writer *w);
/* Adds a tensor; data (nbytes, which must equal numel*bits/8) is copied, so
 * the caller may free it at once. name must be unique and not
 * "__metadata__". */
int vrt_st_writer_add(vrt_st_writer *w, const char *name, int dtype, int ndim, const int64_t *shape,
                      const void *data, uint64_t nbytes, vrt_err *err);
/* Same, but references data: it must stay valid until the write. */
int vrt_st_writer_add_ref(vrt_st_writer *w, const char *name, int dtype, int ndim,
                          const int64_t *shape, const void *data, uint64_t nbytes, vrt_err *err);
/* Produces a generated tensor's bytes during the write: called repeatedly
 * with consecutive chunks, buf receiving the n bytes that start at byte off
 * of the tensor (off and n are multiples of the element size when it is a
 * whole number of bytes). Returns 0 or a VRT_E* code with err set. */
typedef int (*vrt_st_fill_fn)(void *ctx, void *buf, uint64_t off, uint64_t n, vrt_err *err);
/* Same as add, but the data is produced by fill(ctx, ...) while the file is
 * written, a few MiB at a time, so a file larger than memory can be written
 * (`v100rt mkmodel`). ctx must stay valid until the write. */
int vrt_st_writer_add_fill(vrt_st_writer *w, const char *name, int dtype, int ndim,
                           const int64_t *shape, vrt_st_fill_fn fill, void *ctx, vrt_err *err);
/* Writes path (through a temporary file renamed into place).
 * metadata_json: NULL for {"format":"pt"}, or a JSON object whose values
 * are all strings. */
int vrt_st_writer_write(vrt_st_writer *w, const char *path, const char *metadata_json,
                        vrt_err *err);
void vrt_st_writer_free(vrt_st_writer *w);

#endif
