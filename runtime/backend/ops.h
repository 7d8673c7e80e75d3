/* ops.h — the checked front of the backend ops: vrt_op_<name>(b, ...).
 *
 * One function per op of ops.def, with the op's parameters. Each checks its
 * arguments — shapes, dtypes, NULL arrays, and the contents of the index
 * arrays (token ids, positions, slots, attention batches), read on the host
 * (copied back once when the backend's memory is not host memory) — and
 * refuses bad ones with a negative VRT_E* code and a message naming the op
 * and the value; then it calls the backend's op, which computes without
 * checking. Calls with nothing to do (T == 0) return 0 without reaching the
 * backend.
 *
 * For callers outside the model: op tests, scripts, benchmarks. The model's
 * forward pass checks its batch once per step and calls b->op directly.
 */
#ifndef VRT_BACKEND_OPS_H
#define VRT_BACKEND_OPS_H

#include "backend/backend.h"

#define VRT_OP(name, ENUM, weights, front, params, args)                                           \
    int vrt_op_##name(vrt_backend *b, VRT_OP_UNPAREN params, vrt_err *err);
#include "backend/ops.def"
#undef VRT_OP

/* The fused variants: b->add_rmsnorm / b->matmul_group when the backend has
 * them, else the separate ops (add then rmsnorm; n matmuls). */
int vrt_op_add_rmsnorm(vrt_backend *b, float *x, const float *a, float *out, const vrt_weight *w,
                       int T, int D, float eps, float w_offset, vrt_err *err);
int vrt_op_matmul_group(vrt_backend *b, int n, float *const *y, const float *x,
                        const vrt_weight *const *W, const float *const *bias, int T, vrt_err *err);

#endif
