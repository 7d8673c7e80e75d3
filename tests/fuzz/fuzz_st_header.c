/* fuzz_st_header.c — libFuzzer target for the safetensors header parser
 * (vrt_st_parse_header, runtime/model/safetensors.c, docs/formats.md §1.2).
 *
 * Input layout: the first 8 bytes are the little-endian size of the data
 * buffer the header describes (data_len), the rest is the header text. An
 * input shorter than 8 bytes is all header with data_len 0. Seeds in
 * tests/fuzz/corpus_st_header/ use this layout, so the fuzzer starts from
 * headers whose offsets tile their data buffer exactly and mutates both.
 *
 * Each run checks the contract of the parser: on success every tensor lies
 * inside the data buffer, tensors tile it in offset order and each can be
 * found by name; on error the header is left empty and the message is a
 * NUL-terminated string. Everything is freed (LeakSanitizer checks).
 *
 *   make fuzz-run FUZZ_SECONDS=60
 */
#include "core/err.h"
#include "model/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check(int cond)
{
    if (!cond)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t data_len = 0;
    if (size >= 8) {
        for (int i = 0; i < 8; i++)
            data_len |= (uint64_t)data[i] << (8 * i);
        data += 8;
        size -= 8;
    }
    vrt_st_header h;
    vrt_err err;
    vrt_err_clear(&err);
    int rc = vrt_st_parse_header((const char *)data, size, data_len, &h, &err);
    if (rc != 0) {
        check(rc < 0);
        check(h.n_tensors == 0 && h.tensors == NULL && h.n_meta == 0);
        check(memchr(err.msg, '\0', sizeof err.msg) != NULL);
        vrt_st_header_free(&h);
        return 0;
    }
    uint64_t at = 0;
    for (int i = 0; i < h.n_tensors; i++) {
        const vrt_st_tensor *t = &h.tensors[i];
        check(t->name && t->name[0]);
        check(t->ndim >= 0 && t->ndim <= VRT_ST_MAX_DIMS);
        check(t->offset == at);
        check(t->nbytes <= data_len - t->offset);
        uint64_t bits = (uint64_t)vrt_st_dtype_bits(t->dtype);
        check(bits != 0);
        check(vrt_st_numel(t) * bits == t->nbytes * 8);
        check(vrt_st_header_find(&h, t->name) == t);
        at += t->nbytes;
    }
    check(at == data_len);
    for (int i = 0; i < h.n_meta; i++)
        check(h.meta_keys[i] && h.meta_values[i]);
    vrt_st_header_free(&h);
    return 0;
}
