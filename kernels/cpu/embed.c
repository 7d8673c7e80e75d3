/* embed.c — CPU embedding lookup: out[t] = table[ids[t]], parallel over
 * tokens; f16 rows are widened to f32 as they are copied.
 */
#include "cpu/cpu.h"

#include "backend/half.h"

int vrt__cpu_embed(vrt_backend *b, float *out, const vrt_weight *table, const int32_t *ids, int T,
                   vrt_err *err)
{
    const int64_t D = table->cols;
    const int nt = vrt__cpu_threads(b);
#pragma omp parallel for num_threads(nt) if (T * D > 32768) schedule(static)
    for (int t = 0; t < T; t++) {
        float *o = out + (int64_t)t * D;
        int64_t row = (int64_t)ids[t] * D;
        if (table->dtype == VRT_DT_F16)
            vrt_f16_to_f32_n(o, (const uint16_t *)table->data + row, (size_t)D);
        else
            for (int64_t i = 0; i < D; i++)
                o[i] = ((const float *)table->data)[row + i];
    }
    return 0;
}
