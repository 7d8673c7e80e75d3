/* attn_decode.cu — paged attention for decode: one query token per
 * sequence, split over the context, fp16 K/V read in 128-bit vectors.
 *
 * Grid (kv head, sequence, split). A block serves the g = n_heads /
 * n_kv_heads query heads that share its kv head (GQA: each K/V row is read
 * once for all of them) over one contiguous part of the sequence's visible
 * keys. A key row of head_dim fp16 values is read by LPK = head_dim / 8
 * lanes, 8 values (16 bytes) each, so a warp handles 32 / LPK keys per
 * step; the q·k partial sums meet through shuffles inside each group of
 * LPK lanes. Every lane group keeps its own streaming softmax (max m, sum
 * l, unnormalized accumulator of its 8 output dims, f32); the groups of a
 * warp are merged with shuffles, the warps of the block through shared
 * memory. With one split the block writes the output; with several, each
 * writes (m, l, acc) to a scratch area and a second kernel combines the
 * splits (the flash-decoding reduction). Fast path for head_dim 64, 128
 * and 256 (head_dim / 8 a power of two) and up to 8 query heads per kv
 * head; other shapes use attn.cu.
 */
#include "cuda/common.cuh"

#define AD_THREADS 128
#define AD_WARPS (AD_THREADS / 32)
#define AD_MAX_G 8

/* Merges (m2, l2, acc2) into (m, l, acc): both are softmax partials over
 * disjoint key sets with unnormalized accumulators. */
__device__ __forceinline__ void ad_merge(float &m, float &l, float *acc, float m2, float l2,
                                         const float *acc2)
{
    const float mn = fmaxf(m, m2);
    if (mn == -INFINITY) /* both empty */
        return;
    const float c1 = expf(m - mn), c2 = expf(m2 - mn);
    l = l * c1 + l2 * c2;
    for (int j = 0; j < 8; j++)
        acc[j] = acc[j] * c1 + acc2[j] * c2;
    m = mn;
}

__device__ __forceinline__ void ad_load8(const uint16_t *p, float *f)
{
    const uint4 u = *reinterpret_cast<const uint4 *>(p);
    const unsigned w[4] = {u.x, u.y, u.z, u.w};
    for (int j = 0; j < 4; j++) {
        f[2 * j] = __half2float(__ushort_as_half((unsigned short)(w[j] & 0xffffu)));
        f[2 * j + 1] = __half2float(__ushort_as_half((unsigned short)(w[j] >> 16)));
    }
}

template <int G>
__global__ void attn_decode_kernel(float *out, float *part, const float *q, const uint16_t *k_cache,
                                   const uint16_t *v_cache, vrt_attn_batch a, int n_splits)
{
    const int kvh = blockIdx.x, s = blockIdx.y, split = blockIdx.z;
    const int hd = a.head_dim, lpk = hd / 8, kpw = 32 / lpk;
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    const int sub = lane / lpk, sl = lane % lpk;
    const int g = a.n_heads / a.n_kv_heads;
    const int t = a.q_start[s];
    const int p = a.ctx_len[s] - 1; /* the query's position */
    int k_first = 0;
    if (a.sliding_window > 0 && p - a.sliding_window + 1 > 0)
        k_first = p - a.sliding_window + 1;
    const int n_keys = p + 1 - k_first;
    const int per = (n_keys + n_splits - 1) / n_splits;
    const int kb = k_first + split * per;
    const int ke = kb + per < p + 1 ? kb + per : p + 1;
    const int64_t row = (int64_t)a.n_kv_heads * hd;
    const int32_t *table = a.block_table + (int64_t)s * a.max_blocks_per_seq;
    const int bs = a.block_size;

    /* G >= g heads per kv head, a power of two so that the arrays stay in
     * registers (heads h >= g are padding and never stored). */
    float qv[G][8], acc[G][8], m[G], l[G];
    for (int h = 0; h < G; h++) {
        m[h] = -INFINITY;
        l[h] = 0.0f;
        for (int j = 0; j < 8; j++) {
            acc[h][j] = 0.0f;
            qv[h][j] = 0.0f;
        }
        if (h < g) {
            const float *qh = q + ((int64_t)t * a.n_heads + kvh * g + h) * hd + sl * 8;
            for (int j = 0; j < 8; j++)
                qv[h][j] = qh[j] * a.scale;
        }
    }
    /* Every lane runs every step (the shuffles need the whole warp); a
     * lane group past the end computes nothing it keeps. */
    for (int k0 = kb + warp * kpw; k0 < ke; k0 += AD_WARPS * kpw) {
        const int k = k0 + sub;
        const bool valid = k < ke;
        float kf[8], vf[8];
        int64_t off = 0;
        if (valid) {
            off = ((int64_t)table[k / bs] * bs + k % bs) * row + (int64_t)kvh * hd + sl * 8;
            ad_load8(k_cache + off, kf);
            ad_load8(v_cache + off, vf);
        } else {
            for (int j = 0; j < 8; j++)
                kf[j] = vf[j] = 0.0f;
        }
        for (int h = 0; h < G; h++) {
            float d = 0.0f;
            for (int j = 0; j < 8; j++)
                d += qv[h][j] * kf[j];
            for (int o = lpk / 2; o > 0; o >>= 1)
                d += __shfl_xor_sync(VRT_FULL_MASK, d, o);
            if (valid && h < g) {
                const float mn = fmaxf(m[h], d);
                const float c = expf(m[h] - mn), e = expf(d - mn);
                l[h] = l[h] * c + e;
                for (int j = 0; j < 8; j++)
                    acc[h][j] = acc[h][j] * c + e * vf[j];
                m[h] = mn;
            }
        }
    }
    /* Merge the lane groups of the warp (lanes with the same sl). */
    for (int o = lpk; o < 32; o <<= 1) {
        for (int h = 0; h < G; h++) {
            float m2 = __shfl_xor_sync(VRT_FULL_MASK, m[h], o);
            float l2 = __shfl_xor_sync(VRT_FULL_MASK, l[h], o);
            float a2[8];
            for (int j = 0; j < 8; j++)
                a2[j] = __shfl_xor_sync(VRT_FULL_MASK, acc[h][j], o);
            ad_merge(m[h], l[h], acc[h], m2, l2, a2);
        }
    }
    /* Merge the warps: lanes 0..lpk-1 of each warp hold its result. */
    float *sm = vrt_dyn_smem<float>(); /* [AD_WARPS][g][hd + 2] */
    const int stride = hd + 2;
    if (sub == 0) {
        for (int h = 0; h < g; h++) {
            float *e = sm + ((int64_t)warp * g + h) * stride;
            if (sl == 0) {
                e[0] = m[h];
                e[1] = l[h];
            }
            for (int j = 0; j < 8; j++)
                e[2 + sl * 8 + j] = acc[h][j];
        }
    }
    __syncthreads();
    if (warp == 0 && sub == 0) {
        for (int h = 0; h < g; h++) {
            for (int w = 1; w < AD_WARPS; w++) {
                const float *e = sm + ((int64_t)w * g + h) * stride;
                ad_merge(m[h], l[h], acc[h], e[0], e[1], e + 2 + sl * 8);
            }
            const int qh = kvh * g + h;
            if (n_splits == 1) {
                float *o = out + ((int64_t)t * a.n_heads + qh) * hd + sl * 8;
                const float inv = l[h] > 0.0f ? 1.0f / l[h] : 0.0f;
                for (int j = 0; j < 8; j++)
                    o[j] = acc[h][j] * inv;
            } else {
                float *e = part + (((int64_t)s * a.n_heads + qh) * n_splits + split) * stride;
                if (sl == 0) {
                    e[0] = m[h];
                    e[1] = l[h];
                }
                for (int j = 0; j < 8; j++)
                    e[2 + sl * 8 + j] = acc[h][j];
            }
        }
    }
}

/* Combines the splits of (sequence, head) = (blockIdx.y, blockIdx.x). */
__global__ void attn_decode_reduce_kernel(float *out, const float *part, vrt_attn_batch a,
                                          int n_splits)
{
    const int h = blockIdx.x, s = blockIdx.y, hd = a.head_dim, stride = hd + 2;
    const int t = a.q_start[s];
    const float *e = part + ((int64_t)s * a.n_heads + h) * n_splits * stride;
    float M = -INFINITY;
    for (int i = 0; i < n_splits; i++)
        M = fmaxf(M, e[(int64_t)i * stride]);
    float L = 0.0f;
    for (int i = 0; i < n_splits; i++) {
        const float mi = e[(int64_t)i * stride];
        if (mi != -INFINITY)
            L += e[(int64_t)i * stride + 1] * expf(mi - M);
    }
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
    float *o = out + ((int64_t)t * a.n_heads + h) * hd;
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float v = 0.0f;
        for (int i = 0; i < n_splits; i++) {
            const float mi = e[(int64_t)i * stride];
            if (mi != -INFINITY)
                v += e[(int64_t)i * stride + 2 + d] * expf(mi - M);
        }
        o[d] = v * inv;
    }
}

extern "C" int vrt_cuda_attn_decode_splits(const vrt_attn_batch *a)
{
    const int cap = a->max_blocks_per_seq * a->block_size;
    const int max_by_len = (cap + 63) / 64; /* at least 64 keys per split */
    const int blocks = a->n_seqs * a->n_kv_heads;
    int n = (512 + blocks - 1) / (blocks > 0 ? blocks : 1);
    if (n > max_by_len)
        n = max_by_len;
    if (n > 32)
        n = 32;
    return n < 1 ? 1 : n;
}

extern "C" int vrt_cuda_attn_decode_ok(int head_dim, int n_heads, int n_kv_heads)
{
    const int g = n_kv_heads > 0 ? n_heads / n_kv_heads : 0;
    return (head_dim == 64 || head_dim == 128 || head_dim == 256) && g >= 1 && g <= AD_MAX_G;
}

extern "C" size_t vrt_cuda_attn_decode_scratch(const vrt_attn_batch *a)
{
    const int n = vrt_cuda_attn_decode_splits(a);
    if (n <= 1)
        return 0;
    return sizeof(float) * (size_t)a->n_seqs * a->n_heads * n * (a->head_dim + 2);
}

extern "C" int vrt_cuda_attn_decode(float *out, const float *q, const uint16_t *k_cache,
                                    const uint16_t *v_cache, vrt_attn_batch batch, float *scratch,
                                    void *stream)
{
    if (batch.n_seqs <= 0)
        return 0;
    const int n_splits = vrt_cuda_attn_decode_splits(&batch);
    if (n_splits > 1 && !scratch)
        return (int)cudaErrorInvalidConfiguration;
    const int g = batch.n_heads / batch.n_kv_heads;
    const size_t smem = sizeof(float) * (size_t)AD_WARPS * g * (batch.head_dim + 2);
    const cudaStream_t st = (cudaStream_t)stream;
    const dim3 grid((unsigned)batch.n_kv_heads, (unsigned)batch.n_seqs, (unsigned)n_splits);
    if (g == 1)
        VRT_LAUNCH(attn_decode_kernel<1>, grid, AD_THREADS, smem, st, out, scratch, q, k_cache,
                   v_cache, batch, n_splits);
    else if (g == 2)
        VRT_LAUNCH(attn_decode_kernel<2>, grid, AD_THREADS, smem, st, out, scratch, q, k_cache,
                   v_cache, batch, n_splits);
    else if (g <= 4)
        VRT_LAUNCH(attn_decode_kernel<4>, grid, AD_THREADS, smem, st, out, scratch, q, k_cache,
                   v_cache, batch, n_splits);
    else
        VRT_LAUNCH(attn_decode_kernel<8>, grid, AD_THREADS, smem, st, out, scratch, q, k_cache,
                   v_cache, batch, n_splits);
    int rc = (int)cudaGetLastError();
    if (rc || n_splits == 1)
        return rc;
    VRT_LAUNCH(attn_decode_reduce_kernel, dim3((unsigned)batch.n_heads, (unsigned)batch.n_seqs),
               128, 0, st, out, scratch, batch, n_splits);
    return (int)cudaGetLastError();
}
