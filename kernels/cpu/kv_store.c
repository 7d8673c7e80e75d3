/* kv_store.c — CPU paged KV store: the new tokens' K/V rounded to fp16
 * and written at their slots (slot < 0 skips the token).
 */
#include "cpu/cpu.h"

#include "backend/half.h"

int vrt__cpu_kv_store(vrt_backend *b, uint16_t *k_cache, uint16_t *v_cache, const float *k,
                      const float *v, const int32_t *slots, int T, int n_kv_heads, int head_dim,
                      int64_t num_slots, vrt_err *err)
{
    const int64_t row = (int64_t)n_kv_heads * head_dim;
    const int nt = vrt__cpu_threads(b);
#pragma omp parallel for num_threads(nt) if (T * row > 65536) schedule(static)
    for (int t = 0; t < T; t++) {
        if (slots[t] < 0)
            continue;
        int64_t dst = (int64_t)slots[t] * row;
        vrt_f32_to_f16_n(k_cache + dst, k + t * row, (size_t)row);
        vrt_f32_to_f16_n(v_cache + dst, v + t * row, (size_t)row);
    }
    return 0;
}
