/* test_safetensors.c — safetensors reader/writer, dtype conversions and
 * directory-level checkpoints (runtime/model/safetensors.c, checkpoint.c).
 *
 * Well-formed files are written with the writer; malformed ones are built
 * byte by byte (8-byte length, header text, data) so each validation rule
 * of docs/formats.md §1 is hit on its own.
 */
#include "test.h"

#include "core/err.h"
#include "model/checkpoint.h"
#include "model/safetensors.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fresh temporary directory per test (tests run in forked children). */
static const char *tmpdir(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/vrt_st_XXXXXX");
    if (!mkdtemp(dir))
        return NULL;
    return dir;
}

static void path_in(char *buf, size_t cap, const char *dir, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* Writes len8 (the header length field), header text and data_len bytes of
 * a counting pattern. */
static int write_raw(const char *path, uint64_t len8, const char *header, size_t header_len,
                     size_t data_len)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(len8 >> (8 * i));
    fwrite(b, 1, 8, f);
    fwrite(header, 1, header_len, f);
    for (size_t i = 0; i < data_len; i++)
        fputc((int)(i * 7 + 1) & 0xff, f);
    return fclose(f);
}

/* A file whose header is exactly `header` followed by data_len bytes. */
static int write_hdr(const char *path, const char *header, size_t data_len)
{
    return write_raw(path, strlen(header), header, strlen(header), data_len);
}

/* Opens path expecting failure; returns the message (static). */
static const char *open_fails(const char *path, int *code)
{
    static vrt_err err;
    vrt_st_file f;
    int rc = vrt_st_open(&f, path, &err);
    vrt_st_close(&f);
    *code = rc;
    return err.msg;
}

static uint32_t rng_state = 12345;
static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}

TEST(st_roundtrip_all_dtypes)
{
    const char *dir = tmpdir();
    ASSERT(dir);
    char path[256];
    path_in(path, sizeof path, dir, "all.safetensors");
    vrt_st_writer w;
    vrt_st_writer_init(&w);
    vrt_err err = {0};
    unsigned char *bufs[VRT_ST_NDTYPES];
    uint64_t sizes[VRT_ST_NDTYPES];
    int64_t shapes[VRT_ST_NDTYPES][2];
    for (int d = 0; d < VRT_ST_NDTYPES; d++) {
        /* 8 x (3 + d) elements: a whole number of bytes for 4/6-bit too. */
        shapes[d][0] = 8;
        shapes[d][1] = 3 + d;
        int bits = vrt_st_dtype_bits(d);
        ASSERT(bits > 0);
        sizes[d] = (uint64_t)(8 * (3 + d)) * (uint64_t)bits / 8;
        bufs[d] = malloc(sizes[d]);
        for (uint64_t i = 0; i < sizes[d]; i++)
            bufs[d][i] = (unsigned char)rnd();
        char name[64];
        snprintf(name, sizeof name, "t.%s", vrt_st_dtype_name(d));
        ASSERT_OK(vrt_st_writer_add(&w, name, d, 2, shapes[d], bufs[d], sizes[d], &err), &err);
    }
    /* A scalar and an empty tensor too. */
    float scalar = 3.25f;
    ASSERT_OK(vrt_st_writer_add(&w, "scalar", VRT_ST_F32, 0, NULL, &scalar, 4, &err), &err);
    int64_t empty_shape[2] = {0, 5};
    ASSERT_OK(vrt_st_writer_add(&w, "empty", VRT_ST_F16, 2, empty_shape, NULL, 0, &err), &err);
    ASSERT_OK(vrt_st_writer_write(&w, path, NULL, &err), &err);
    vrt_st_writer_free(&w);

    vrt_st_file f;
    ASSERT_OK(vrt_st_open(&f, path, &err), &err);
    ASSERT_EQ_INT(f.header.n_tensors, VRT_ST_NDTYPES + 2);
    ASSERT_EQ_INT((8 + f.header_len) % 8, 0);
    ASSERT_EQ_INT(f.header.n_meta, 1);
    ASSERT_EQ_STR(f.header.meta_keys[0], "format");
    ASSERT_EQ_STR(f.header.meta_values[0], "pt");
    for (int d = 0; d < VRT_ST_NDTYPES; d++) {
        char name[64];
        snprintf(name, sizeof name, "t.%s", vrt_st_dtype_name(d));
        const vrt_st_tensor *t = vrt_st_find(&f, name);
        ASSERT(t);
        ASSERT_EQ_INT(t->dtype, d);
        ASSERT_EQ_INT(t->ndim, 2);
        ASSERT_EQ_INT(t->shape[0], shapes[d][0]);
        ASSERT_EQ_INT(t->shape[1], shapes[d][1]);
        ASSERT_EQ_INT(t->nbytes, sizes[d]);
        ASSERT_EQ_STR(t->file, path);
        ASSERT(memcmp(t->data, bufs[d], sizes[d]) == 0);
        /* The writer aligns every tensor to its element size. */
        int eb = vrt_st_dtype_bits(d) / 8;
        if (eb > 1)
            ASSERT_EQ_INT(((uintptr_t)t->data) % (uintptr_t)eb, 0);
        free(bufs[d]);
    }
    /* Order: element size descending, then name. */
    for (int i = 1; i < f.header.n_tensors; i++) {
        const vrt_st_tensor *a = &f.header.tensors[i - 1], *b = &f.header.tensors[i];
        int ba = vrt_st_dtype_bits(a->dtype), bb = vrt_st_dtype_bits(b->dtype);
        ASSERT(ba > bb || (ba == bb && strcmp(a->name, b->name) < 0));
    }
    const vrt_st_tensor *s = vrt_st_find(&f, "scalar");
    ASSERT(s);
    ASSERT_EQ_INT(s->ndim, 0);
    ASSERT_EQ_INT(vrt_st_numel(s), 1);
    float back;
    ASSERT_OK(vrt_st_to_f32(s, &back, &err), &err);
    ASSERT_NEAR(back, 3.25, 0);
    const vrt_st_tensor *e = vrt_st_find(&f, "empty");
    ASSERT(e);
    ASSERT_EQ_INT(e->nbytes, 0);
    ASSERT_EQ_INT(vrt_st_numel(e), 0);
    ASSERT(vrt_st_find(&f, "nope") == NULL);
    vrt_st_close(&f);
}

TEST(st_writer_metadata_and_errors)
{
    const char *dir = tmpdir();
    char path[256];
    path_in(path, sizeof path, dir, "m.safetensors");
    vrt_st_writer w;
    vrt_st_writer_init(&w);
    vrt_err err = {0};
    int64_t shp[1] = {3};
    uint16_t v[3] = {1, 2, 3};
    ASSERT_OK(vrt_st_writer_add_ref(&w, "a\"quote", VRT_ST_F16, 1, shp, v, 6, &err), &err);
    /* Wrong byte count and duplicate name are refused. */
    ASSERT_EQ_INT(vrt_st_writer_add(&w, "b", VRT_ST_F16, 1, shp, v, 4, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "'b'");
    ASSERT_OK(vrt_st_writer_add(&w, "a\"quote", VRT_ST_F16, 1, shp, v, 6, &err), &err);
    ASSERT_EQ_INT(vrt_st_writer_write(&w, path, NULL, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "added twice");
    vrt_st_writer_free(&w);

    vrt_st_writer_init(&w);
    ASSERT_OK(vrt_st_writer_add(&w, "a\"quote", VRT_ST_F16, 1, shp, v, 6, &err), &err);
    ASSERT_EQ_INT(vrt_st_writer_write(&w, path, "{\"x\": 1}", &err), VRT_EINVAL);
    ASSERT_OK(vrt_st_writer_write(&w, path, "{\"format\":\"pt\",\"who\":\"v100rt\"}", &err), &err);
    vrt_st_writer_free(&w);
    vrt_st_file f;
    ASSERT_OK(vrt_st_open(&f, path, &err), &err);
    ASSERT_EQ_INT(f.header.n_meta, 2);
    ASSERT_EQ_STR(f.header.meta_keys[1], "who");
    ASSERT_EQ_STR(f.header.meta_values[1], "v100rt");
    ASSERT(vrt_st_find(&f, "a\"quote"));
    vrt_st_close(&f);
}

TEST(st_unaligned_data)
{
    const char *dir = tmpdir();
    char path[256];
    path_in(path, sizeof path, dir, "odd.safetensors");
    /* Header of odd length (one trailing space) and a 2-byte U8 tensor
     * first, so the F32 tensor starts at an odd file offset. */
    char hdr[256];
    snprintf(hdr, sizeof hdr,
             "{\"u\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]},"
             "\"f\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[3,11]},"
             "\"h\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[11,"
             "13]}}");
    if (strlen(hdr) % 2 == 0)
        strcat(hdr, " ");
    FILE *fp = fopen(path, "wb");
    ASSERT(fp);
    uint64_t n = strlen(hdr);
    unsigned char len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (unsigned char)(n >> (8 * i));
    fwrite(len8, 1, 8, fp);
    fwrite(hdr, 1, n, fp);
    unsigned char u[3] = {9, 8, 7};
    float fv[2] = {1.5f, -2.75f};
    uint16_t bf = 0x4049; /* bf16 3.140625 */
    fwrite(u, 1, 3, fp);
    fwrite(fv, 4, 2, fp);
    fwrite(&bf, 2, 1, fp);
    fclose(fp);
    vrt_err err = {0};
    vrt_st_file f;
    ASSERT_OK(vrt_st_open(&f, path, &err), &err);
    const vrt_st_tensor *t = vrt_st_find(&f, "f");
    ASSERT(t);
    ASSERT(((uintptr_t)t->data) % 4 != 0);
    float out[2];
    ASSERT_OK(vrt_st_to_f32(t, out, &err), &err);
    ASSERT_NEAR(out[0], 1.5, 0);
    ASSERT_NEAR(out[1], -2.75, 0);
    t = vrt_st_find(&f, "h");
    ASSERT_OK(vrt_st_to_f32(t, out, &err), &err);
    ASSERT_NEAR(out[0], 3.140625, 0);
    /* U8 cannot be converted: error names the tensor and the file. */
    t = vrt_st_find(&f, "u");
    ASSERT_EQ_INT(vrt_st_to_f32(t, out, &err), VRT_EUNSUPPORTED);
    ASSERT_CONTAINS(err.msg, "'u'");
    ASSERT_CONTAINS(err.msg, path);
    vrt_st_close(&f);
}

TEST(st_truncated_file)
{
    const char *dir = tmpdir();
    char path[256];
    path_in(path, sizeof path, dir, "trunc.safetensors");
    vrt_st_writer w;
    vrt_st_writer_init(&w);
    vrt_err err = {0};
    float v[16] = {0};
    int64_t shp[1] = {16};
    ASSERT_OK(vrt_st_writer_add(&w, "w", VRT_ST_F32, 1, shp, v, 64, &err), &err);
    ASSERT_OK(vrt_st_writer_write(&w, path, NULL, &err), &err);
    vrt_st_writer_free(&w);
    struct stat st;
    ASSERT(stat(path, &st) == 0);
    ASSERT(truncate(path, st.st_size - 5) == 0);
    int code;
    const char *msg = open_fails(path, &code);
    ASSERT_EQ_INT(code, VRT_EFORMAT);
    ASSERT_CONTAINS(msg, path);
    ASSERT_CONTAINS(msg, "'w'");
    ASSERT_CONTAINS(msg, "past the end");
    /* Truncated inside the 8-byte length. */
    ASSERT(truncate(path, 5) == 0);
    msg = open_fails(path, &code);
    ASSERT_EQ_INT(code, VRT_EFORMAT);
    ASSERT_CONTAINS(msg, "too short");
    /* Missing file. */
    path_in(path, sizeof path, dir, "missing.safetensors");
    msg = open_fails(path, &code);
    ASSERT_EQ_INT(code, VRT_ENOENT);
    ASSERT_CONTAINS(msg, path);
}

TEST(st_header_length_checks)
{
    const char *dir = tmpdir();
    char path[256];
    path_in(path, sizeof path, dir, "h.safetensors");
    const char *hdr = "{}";
    /* Claims 1000 bytes, file has 2. */
    ASSERT(write_raw(path, 1000, hdr, 2, 0) == 0);
    int code;
    const char *msg = open_fails(path, &code);
    ASSERT_EQ_INT(code, VRT_EFORMAT);
    ASSERT_CONTAINS(msg, "larger than the file");
    ASSERT_CONTAINS(msg, path);
    /* Claims more than 100 MB. */
    ASSERT(write_raw(path, 100000001ull, hdr, 2, 0) == 0);
    msg = open_fails(path, &code);
    ASSERT_EQ_INT(code, VRT_EFORMAT);
    ASSERT_CONTAINS(msg, "exceeds the limit");
    /* Huge claim that would wrap around 64 bits. */
    ASSERT(write_raw(path, UINT64_MAX - 3, hdr, 2, 0) == 0);
    msg = open_fails(path, &code);
    ASSERT_EQ_INT(code, VRT_EFORMAT);
    /* The empty header is a valid, empty file. */
    ASSERT(write_hdr(path, "{}      ", 0) == 0);
    vrt_err err = {0};
    vrt_st_file f;
    ASSERT_OK(vrt_st_open(&f, path, &err), &err);
    ASSERT_EQ_INT(f.header.n_tensors, 0);
    vrt_st_close(&f);
}

/* One malformed header per case: expected code and message fragments. */
typedef struct {
    const char *what, *header;
    size_t data_len;
    int code;
    const char *frag1, *frag2;
} bad_case;

TEST(st_malformed_headers)
{
    const bad_case cases[] = {
        {"hole",
         "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[6,10]}}",
         10, VRT_EFORMAT, "'b'", "hole"},
        {"first not at 0", "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}", 6,
         VRT_EFORMAT, "'a'", "hole"},
        {"overlap",
         "{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
         "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[2,6]}}",
         6, VRT_EFORMAT, "'b'", "overlaps 'a'"},
        {"past the end", "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 12,
         VRT_EFORMAT, "'a'", "past the end"},
        {"trailing data", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8,
         VRT_EFORMAT, "trailing", "8 bytes"},
        {"unknown dtype", "{\"a\":{\"dtype\":\"F12\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2,
         VRT_EFORMAT, "'a'", "unknown dtype 'F12'"},
        {"duplicate key",
         "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
         "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
         2, VRT_EFORMAT, "'a'", "twice"},
        {"bad JSON", "{\"a\":{\"dtype\":\"U8\",", 0, VRT_EFORMAT, "not valid JSON", ""},
        {"not an object", "[1,2]", 0, VRT_EFORMAT, "start with '{'", ""},
        {"trailing garbage", "{} x", 0, VRT_EFORMAT, "trailing bytes", ""},
        {"nbytes mismatch", "{\"a\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,10]}}",
         10, VRT_EFORMAT, "'a'", "needs 12"},
        {"end before begin", "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]}}", 4,
         VRT_EFORMAT, "'a'", "end before begin"},
        {"negative shape", "{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0,
         VRT_EFORMAT, "'a'", "shape[0]"},
        {"fractional offset", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1.5]}}",
         2, VRT_EFORMAT, "'a'", "data_offsets"},
        {"overflowing shape",
         "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],"
         "\"data_offsets\":[0,8]}}",
         8, VRT_EFORMAT, "'a'", "overflows"},
        {"sub-byte remainder", "{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,1]}}", 1,
         VRT_EFORMAT, "'a'", "whole number of bytes"},
        {"too many dims",
         "{\"a\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
         "\"data_offsets\":[0,1]}}",
         1, VRT_EUNSUPPORTED, "'a'", "dimensions"},
        {"missing data_offsets", "{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1, VRT_EFORMAT, "'a'",
         "data_offsets"},
        {"metadata not strings",
         "{\"__metadata__\":{\"n\":1},"
         "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",
         1, VRT_EFORMAT, "__metadata__", "'n'"},
        {"entry not object", "{\"a\":3}", 0, VRT_EFORMAT, "'a'", "object"},
    };
    const char *dir = tmpdir();
    char path[256];
    path_in(path, sizeof path, dir, "bad.safetensors");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        ASSERT(write_hdr(path, c->header, c->data_len) == 0);
        int code;
        const char *msg = open_fails(path, &code);
        if (code != c->code)
            TFAIL("case '%s': code %d, want %d (%s)", c->what, code, c->code, msg);
        if (!strstr(msg, path) || !strstr(msg, c->frag1) || !strstr(msg, c->frag2))
            TFAIL("case '%s': message lacks the path, '%s' or '%s': %s", c->what, c->frag1,
                  c->frag2, msg);
    }
}

TEST(st_parse_header_pure)
{
    /* The pure parser: no NUL terminator needed, data_len checked. */
    const char *h = "{\"x\":{\"dtype\":\"I64\",\"shape\":[2],"
                    "\"data_offsets\":[0,16]}}XXXX";
    size_t n = strlen(h) - 4;
    vrt_st_header hdr;
    vrt_err err = {0};
    ASSERT_OK(vrt_st_parse_header(h, n, 16, &hdr, &err), &err);
    ASSERT_EQ_INT(hdr.n_tensors, 1);
    ASSERT_EQ_INT(hdr.tensors[0].dtype, VRT_ST_I64);
    ASSERT(hdr.tensors[0].data == NULL);
    ASSERT(vrt_st_header_find(&hdr, "x") == &hdr.tensors[0]);
    vrt_st_header_free(&hdr);
    ASSERT_EQ_INT(vrt_st_parse_header(h, n, 17, &hdr, &err), VRT_EFORMAT);
    ASSERT_EQ_INT(hdr.n_tensors, 0);
    ASSERT_EQ_INT(vrt_st_parse_header(h, n + 1, 16, &hdr, &err), VRT_EFORMAT);
    ASSERT_EQ_INT(vrt_st_parse_header("{\"a\":1}", 0, 0, &hdr, &err), VRT_EFORMAT);
    /* dtype names round-trip through parse. */
    for (int d = 0; d < VRT_ST_NDTYPES; d++)
        ASSERT_EQ_INT(vrt_st_dtype_parse(vrt_st_dtype_name(d)), d);
    ASSERT_EQ_INT(vrt_st_dtype_parse("f16"), -1);
}

/* Reference float -> bf16 (round to nearest even) for building inputs. */
static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* A one-tensor view over caller memory, for the converters. */
static vrt_st_tensor view(int dtype, int64_t n, const void *data)
{
    vrt_st_tensor t;
    memset(&t, 0, sizeof t);
    t.name = "x";
    t.dtype = dtype;
    t.ndim = 1;
    t.shape[0] = n;
    t.nbytes = (uint64_t)n * (uint64_t)vrt_st_dtype_bits(dtype) / 8;
    t.data = data;
    return t;
}

TEST(st_f16_all_values_roundtrip)
{
    /* Every non-NaN half survives half -> f32 -> half exactly, and
     * half -> f32 matches ldexp arithmetic. */
    uint16_t *h = malloc(65536 * 2), *h2 = malloc(65536 * 2);
    float *f = malloc(65536 * 4);
    for (int i = 0; i < 65536; i++)
        h[i] = (uint16_t)i;
    vrt_err err = {0};
    vrt_st_tensor t = view(VRT_ST_F16, 65536, h);
    ASSERT_OK(vrt_st_to_f32(&t, f, &err), &err);
    for (int i = 0; i < 65536; i++) {
        int e = (i >> 10) & 31, m = i & 1023;
        double want = e == 0    ? ldexp(m, -24)
                      : e == 31 ? (m ? NAN : INFINITY)
                                : ldexp(1024 + m, e - 25);
        if (i & 0x8000)
            want = -want;
        if (isnan(want)) {
            if (!isnan(f[i]))
                TFAIL("half 0x%04x -> %g, want NaN", i, f[i]);
        } else if ((double)f[i] != want) {
            TFAIL("half 0x%04x -> %.9g, want %.9g", i, f[i], want);
        }
    }
    vrt_st_tensor t2 = view(VRT_ST_F32, 65536, f);
    uint64_t over = 99;
    ASSERT_OK(vrt_st_to_f16(&t2, h2, &over, &err), &err);
    ASSERT_EQ_INT(over, 0);
    for (int i = 0; i < 65536; i++) {
        if (isnan(f[i]))
            ASSERT((h2[i] & 0x7c00) == 0x7c00 && (h2[i] & 0x3ff) != 0);
        else if (h2[i] != h[i])
            TFAIL("half 0x%04x came back as 0x%04x", i, h2[i]);
    }
    free(h);
    free(h2);
    free(f);
}

TEST(st_f32_to_f16_rounding_and_overflow)
{
    const float in[] = {
        65504.0f,          /* max half */
        65519.99f,         /* rounds down to max */
        65520.0f,          /* tie -> even -> inf: overflow */
        -70000.0f,         /* overflow */
        1e30f,             /* overflow */
        INFINITY,          /* not an overflow: already inf */
        0x1p-24f,          /* smallest subnormal */
        0x1p-25f,          /* tie -> 0 */
        0x1.8p-25f,        /* above the tie -> smallest subnormal */
        -0.0f,             /* sign kept */
        1.0f + 0x1p-11f,   /* tie between 1 and 1+2^-10 -> 1 (even) */
        1.0f + 0x1.8p-11f, /* -> 1 + 2^-10 */
        0x1.ff8p-15f,      /* largest subnormal, 1023 * 2^-24 */
        0x1.ffcp-15f,      /* tie 1023.5 * 2^-24 -> even: smallest normal */
        0x1.8p-24f,        /* tie 1.5 * 2^-24 -> 2 (even) */
        0x1.4p-23f,        /* tie 2.5 * 2^-24 -> 2 (even) */
    };
    const uint16_t want[] = {0x7bff, 0x7bff, 0x7c00, 0xfc00, 0x7c00, 0x7c00, 0x0001, 0x0000,
                             0x0001, 0x8000, 0x3c00, 0x3c01, 0x03ff, 0x0400, 0x0002, 0x0002};
    const int n = (int)(sizeof in / sizeof in[0]);
    uint16_t out[32];
    uint64_t over = 0;
    vrt_err err = {0};
    vrt_st_tensor t = view(VRT_ST_F32, n, in);
    ASSERT_OK(vrt_st_to_f16(&t, out, &over, &err), &err);
    for (int i = 0; i < n; i++)
        if (out[i] != want[i])
            TFAIL("f32 %a -> 0x%04x, want 0x%04x", (double)in[i], out[i], want[i]);
    ASSERT_EQ_INT(over, 3);
    /* NaN stays NaN. */
    float nanv = NAN;
    t = view(VRT_ST_F32, 1, &nanv);
    ASSERT_OK(vrt_st_to_f16(&t, out, &over, &err), &err);
    ASSERT((out[0] & 0x7c00) == 0x7c00 && (out[0] & 0x3ff) != 0);
    ASSERT_EQ_INT(over, 0);
    /* Unsupported source dtype. */
    t = view(VRT_ST_I32, 1, &nanv);
    ASSERT_EQ_INT(vrt_st_to_f16(&t, out, &over, &err), VRT_EUNSUPPORTED);
    ASSERT_CONTAINS(err.msg, "I32");
}

TEST(st_bf16_to_f16_overflow)
{
    /* Random bf16 values: compare against f32 -> f16 of the exact value,
     * and count the finite values >= 65520 in magnitude. */
    enum { N = 4096 };
    uint16_t bf[N], out[N], ref[N];
    float fl[N];
    uint64_t want_over = 0;
    for (int i = 0; i < N; i++) {
        float v = (float)ldexp((double)(rnd() % 20000) / 10000.0 - 1.0, (int)(rnd() % 40) - 20);
        if (i % 97 == 0)
            v = 70000.0f * (i % 2 ? 1 : -1);
        bf[i] = to_bf16(v);
        uint32_t u = (uint32_t)bf[i] << 16;
        memcpy(&fl[i], &u, 4);
        if (isfinite(fl[i]) && fabsf(fl[i]) >= 65520.0f)
            want_over++;
    }
    vrt_err err = {0};
    uint64_t over = 0, over2 = 0;
    vrt_st_tensor t = view(VRT_ST_BF16, N, bf);
    ASSERT_OK(vrt_st_to_f16(&t, out, &over, &err), &err);
    vrt_st_tensor t2 = view(VRT_ST_F32, N, fl);
    ASSERT_OK(vrt_st_to_f16(&t2, ref, &over2, &err), &err);
    ASSERT(want_over > 0);
    ASSERT_EQ_INT(over, want_over);
    ASSERT_EQ_INT(over2, want_over);
    ASSERT(memcmp(out, ref, sizeof out) == 0);
    /* And BF16 -> F32 is the exact widening. */
    float back[N];
    ASSERT_OK(vrt_st_to_f32(&t, back, &err), &err);
    ASSERT(memcmp(back, fl, sizeof back) == 0);
}

/* F16 -> F32 of every bit pattern against the definition of binary16
 * (value = (-1)^s * 2^(e-15) * (1 + m/1024), subnormals m * 2^-24), and
 * BF16 -> F32 as the upper half of the bits, with inf and NaN kept. */
TEST(st_f16_to_f32_every_pattern)
{
    enum { N = 65536 };
    uint16_t *h = malloc(N * sizeof *h);
    float *out = malloc(N * sizeof *out);
    ASSERT(h && out);
    for (int i = 0; i < N; i++)
        h[i] = (uint16_t)i;
    vrt_err err = {0};
    vrt_st_tensor t = view(VRT_ST_F16, N, h);
    ASSERT_OK(vrt_st_to_f32(&t, out, &err), &err);
    int bad = 0;
    for (int i = 0; i < N && bad < 5; i++) {
        int e = (i >> 10) & 31, m = i & 1023;
        double sgn = (i & 0x8000) ? -1.0 : 1.0;
        if (e == 31) {
            if (m ? !isnan(out[i]) : !(isinf(out[i]) && (out[i] < 0) == (sgn < 0)))
                bad++;
            continue;
        }
        double want = sgn * (e ? ldexp(1.0 + m / 1024.0, e - 15) : ldexp((double)m, -24));
        if ((double)out[i] != want || !signbit(out[i]) != !signbit(sgn))
            bad++;
    }
    ASSERT_EQ_INT(bad, 0);
    uint16_t b[4] = {0x3f80, 0xc049, 0x7f80, 0x7fc1}; /* 1, -3.140625, inf, NaN */
    vrt_st_tensor tb = view(VRT_ST_BF16, 4, b);
    ASSERT_OK(vrt_st_to_f32(&tb, out, &err), &err);
    ASSERT(out[0] == 1.0f && out[1] == -3.140625f && isinf(out[2]) && isnan(out[3]));
    free(h);
    free(out);
}

/* ---- checkpoints ------------------------------------------------------ */

/* Writes a file with tensors named names[i], F32 of shape [i+1, 2],
 * filled with the value i + base. */
static int write_model_file(const char *path, const char *const *names, int n, float base,
                            vrt_err *err)
{
    vrt_st_writer w;
    vrt_st_writer_init(&w);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        int64_t shp[2] = {i + 1, 2};
        float v[64];
        for (int k = 0; k < 64; k++)
            v[k] = (float)i + base;
        rc = vrt_st_writer_add(&w, names[i], VRT_ST_F32, 2, shp, v, (uint64_t)(i + 1) * 2 * 4, err);
    }
    if (rc == 0)
        rc = vrt_st_writer_write(&w, path, NULL, err);
    vrt_st_writer_free(&w);
    return rc;
}

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

TEST(ckpt_sharded_with_index)
{
    const char *dir = tmpdir();
    char p[256];
    vrt_err err = {0};
    const char *s1[] = {"model.embed_tokens.weight", "model.norm.weight",
                        "model.layers.0.self_attn.rotary_emb.inv_freq"};
    const char *s2[] = {"lm_head.weight", "model.layers.0.mlp.up_proj.weight"};
    path_in(p, sizeof p, dir, "model-00001-of-00002.safetensors");
    ASSERT_OK(write_model_file(p, s1, 3, 0, &err), &err);
    path_in(p, sizeof p, dir, "model-00002-of-00002.safetensors");
    ASSERT_OK(write_model_file(p, s2, 2, 10, &err), &err);
    path_in(p, sizeof p, dir, "model.safetensors.index.json");
    ASSERT(write_text(p, "{\"metadata\":{\"total_size\":48},\"weight_map\":{"
                         "\"model.embed_tokens.weight\":\"model-00001-of-00002."
                         "safetensors\","
                         "\"model.norm.weight\":\"model-00001-of-00002."
                         "safetensors\","
                         "\"model.layers.0.self_attn.rotary_emb.inv_freq\":"
                         "\"model-00001-of-00002.safetensors\","
                         "\"lm_head.weight\":\"model-00002-of-00002.safetensors\","
                         "\"model.layers.0.mlp.up_proj.weight\":\"model-00002-of-"
                         "00002.safetensors\"}}") == 0);
    vrt_checkpoint ck;
    ASSERT_OK(vrt_checkpoint_open(&ck, dir, &err), &err);
    ASSERT_EQ_INT(ck.n_files, 2);
    ASSERT_EQ_INT(vrt_checkpoint_count(&ck), 4); /* inv_freq ignored */
    ASSERT(vrt_checkpoint_find(&ck, "model.layers.0.self_attn.rotary_emb.inv_freq") == NULL);
    const vrt_st_tensor *t = vrt_checkpoint_find(&ck, "lm_head.weight");
    ASSERT(t);
    ASSERT_CONTAINS(t->file, "model-00002-of-00002.safetensors");
    float v[2];
    ASSERT_OK(vrt_st_to_f32(t, v, &err), &err);
    ASSERT_NEAR(v[0], 10.0, 0);
    int64_t shp[2] = {2, 2};
    ASSERT_OK(vrt_checkpoint_get(&ck, "model.norm.weight", 2, shp, &t, &err), &err);
    ASSERT_CONTAINS(t->file, "model-00001");
    /* Iteration is in name order and covers every tensor once. */
    for (int i = 1; i < vrt_checkpoint_count(&ck); i++)
        ASSERT(strcmp(vrt_checkpoint_tensor(&ck, i - 1)->name,
                      vrt_checkpoint_tensor(&ck, i)->name) < 0);
    ASSERT(vrt_checkpoint_tensor(&ck, 4) == NULL);
    /* Missing tensor: names it and the directory, suggests a near name. */
    ASSERT_EQ_INT(vrt_checkpoint_get(&ck, "model.norm.weigth", 2, shp, &t, &err), VRT_ENOENT);
    ASSERT_CONTAINS(err.msg, "'model.norm.weigth'");
    ASSERT_CONTAINS(err.msg, dir);
    ASSERT_CONTAINS(err.msg, "did you mean 'model.norm.weight'");
    /* Wrong shape: both shapes and the file. */
    int64_t bad[2] = {3, 2};
    ASSERT_EQ_INT(vrt_checkpoint_get(&ck, "model.norm.weight", 2, bad, &t, &err), VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, "[2, 2]");
    ASSERT_CONTAINS(err.msg, "expected [3, 2]");
    ASSERT_CONTAINS(err.msg, "model-00001-of-00002.safetensors");
    ASSERT_EQ_INT(vrt_checkpoint_get(&ck, "model.norm.weight", 1, bad, &t, &err), VRT_EFORMAT);
    vrt_checkpoint_close(&ck);
}

TEST(ckpt_index_points_to_wrong_shard)
{
    const char *dir = tmpdir();
    char p[256];
    vrt_err err = {0};
    const char *s1[] = {"a.weight"};
    const char *s2[] = {"b.weight"};
    path_in(p, sizeof p, dir, "s1.safetensors");
    ASSERT_OK(write_model_file(p, s1, 1, 0, &err), &err);
    path_in(p, sizeof p, dir, "s2.safetensors");
    ASSERT_OK(write_model_file(p, s2, 1, 0, &err), &err);
    path_in(p, sizeof p, dir, "model.safetensors.index.json");
    ASSERT(write_text(p, "{\"weight_map\":{\"a.weight\":\"s1.safetensors\","
                         "\"b.weight\":\"s1.safetensors\"}}") == 0);
    vrt_checkpoint ck;
    ASSERT_EQ_INT(vrt_checkpoint_open(&ck, dir, &err), VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, "'b.weight'");
    ASSERT_CONTAINS(err.msg, "s1.safetensors");
    vrt_checkpoint_close(&ck);
    /* A shard that does not exist. */
    ASSERT(write_text(p, "{\"weight_map\":{\"a.weight\":\"s9.safetensors\"}}") == 0);
    ASSERT_EQ_INT(vrt_checkpoint_open(&ck, dir, &err), VRT_ENOENT);
    ASSERT_CONTAINS(err.msg, "s9.safetensors");
    vrt_checkpoint_close(&ck);
    /* Path components in shard names are refused. */
    ASSERT(write_text(p, "{\"weight_map\":{\"a.weight\":\"../x.safetensors\"}}") == 0);
    ASSERT_EQ_INT(vrt_checkpoint_open(&ck, dir, &err), VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, "'a.weight'");
    vrt_checkpoint_close(&ck);
    /* Not JSON. */
    ASSERT(write_text(p, "{weight_map") == 0);
    ASSERT_EQ_INT(vrt_checkpoint_open(&ck, dir, &err), VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, "model.safetensors.index.json");
    vrt_checkpoint_close(&ck);
}

TEST(ckpt_single_file_fallbacks)
{
    const char *dir = tmpdir();
    char p[256];
    vrt_err err = {0};
    vrt_checkpoint ck;
    /* Empty directory. */
    ASSERT_EQ_INT(vrt_checkpoint_open(&ck, dir, &err), VRT_ENOENT);
    ASSERT_CONTAINS(err.msg, dir);
    vrt_checkpoint_close(&ck);
    /* The only *.safetensors (a GPTQ-style name). */
    const char *n1[] = {"x.qweight", "x.scales"};
    path_in(p, sizeof p, dir, "gptq_model-4bit-128g.safetensors");
    ASSERT_OK(write_model_file(p, n1, 2, 0, &err), &err);
    ASSERT_OK(vrt_checkpoint_open(&ck, dir, &err), &err);
    ASSERT_EQ_INT(vrt_checkpoint_count(&ck), 2);
    ASSERT(vrt_checkpoint_find(&ck, "x.scales"));
    vrt_checkpoint_close(&ck);
    /* Two files, no index: error listing both. */
    const char *n2[] = {"y"};
    path_in(p, sizeof p, dir, "consolidated.safetensors");
    ASSERT_OK(write_model_file(p, n2, 1, 0, &err), &err);
    ASSERT_EQ_INT(vrt_checkpoint_open(&ck, dir, &err), VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, "consolidated.safetensors");
    ASSERT_CONTAINS(err.msg, "gptq_model-4bit-128g.safetensors");
    vrt_checkpoint_close(&ck);
    /* model.safetensors wins over the others. */
    const char *n3[] = {"z", "model.rotary_emb.inv_freq"};
    path_in(p, sizeof p, dir, "model.safetensors");
    ASSERT_OK(write_model_file(p, n3, 2, 0, &err), &err);
    ASSERT_OK(vrt_checkpoint_open(&ck, dir, &err), &err);
    ASSERT_EQ_INT(vrt_checkpoint_count(&ck), 1);
    ASSERT(vrt_checkpoint_find(&ck, "z"));
    ASSERT(vrt_checkpoint_find(&ck, "y") == NULL);
    vrt_checkpoint_close(&ck);
    /* A broken model.safetensors: error names the file. */
    ASSERT(write_hdr(p, "{\"a\":1}", 0) == 0);
    ASSERT_EQ_INT(vrt_checkpoint_open(&ck, dir, &err), VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, p);
    vrt_checkpoint_close(&ck);
    /* Not a directory. */
    ASSERT_EQ_INT(vrt_checkpoint_open(&ck, "/nonexistent/dir", &err), VRT_ENOENT);
    vrt_checkpoint_close(&ck);
}

TEST(ckpt_many_tensors_hash)
{
    /* Enough names to exercise collisions and table growth. */
    const char *dir = tmpdir();
    char p[256];
    vrt_err err = {0};
    enum { N = 600 };
    static char names[N][48];
    const char *ptr[N];
    vrt_st_writer w;
    vrt_st_writer_init(&w);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "model.layers.%d.w%d", i / 7, i % 7);
        ptr[i] = names[i];
        int64_t shp[1] = {1};
        float v = (float)i;
        ASSERT_OK(vrt_st_writer_add(&w, ptr[i], VRT_ST_F32, 1, shp, &v, 4, &err), &err);
    }
    path_in(p, sizeof p, dir, "model.safetensors");
    ASSERT_OK(vrt_st_writer_write(&w, p, NULL, &err), &err);
    vrt_st_writer_free(&w);
    vrt_checkpoint ck;
    ASSERT_OK(vrt_checkpoint_open(&ck, dir, &err), &err);
    ASSERT_EQ_INT(vrt_checkpoint_count(&ck), N);
    for (int i = 0; i < N; i++) {
        const vrt_st_tensor *t = vrt_checkpoint_find(&ck, ptr[i]);
        ASSERT(t);
        float v;
        ASSERT_OK(vrt_st_to_f32(t, &v, &err), &err);
        ASSERT_NEAR(v, i, 0);
    }
    ASSERT(vrt_checkpoint_find(&ck, "model.layers.0.w9") == NULL);
    vrt_checkpoint_close(&ck);
}
