/* attn_prefill.cu — paged causal attention for prefill on Volta tensor cores (wmma).
 *
 * One warp per block; a block computes 16 queries of one sequence for one
 * head (grid: heads × query tiles, the tiles of all sequences numbered one
 * after another). Q·scale is rounded to fp16 once into shared memory; then
 * for each tile of 16 keys the block gathers their K and V rows (fp16)
 * through the block table into shared memory, computes S = Q·Kᵀ with
 * wmma 16×16×16 (fp16 in, f32 accumulate), applies the causal and sliding
 * window mask and a streaming softmax per query row in f32 (running max m,
 * sum l), rounds P to fp16 and adds P·V (wmma again) into an f32 output
 * tile after rescaling it. The fragments are only loaded, multiplied and
 * stored (never indexed), so their layout does not matter. head_dim must be
 * a multiple of 16, at most 128; other shapes use attn.cu.
 *
 * Precision: Q and the probabilities are fp16 at the multiply (as in fp16
 * attention kernels generally); the sums, softmax and output stay f32.
 */
#include "cuda/common.cuh"

#ifdef __CUDACC__
#include <mma.h>
#endif

#define AP_T 16 /* queries and keys per tile */

__global__ void attn_prefill_wmma_kernel(float *out, const float *q, const uint16_t *k_cache,
                                         const uint16_t *v_cache, vrt_attn_batch a)
{
    using namespace nvcuda;
    const int h = blockIdx.x, lane = threadIdx.x, hd = a.head_dim;
    /* The tile's sequence and first query. */
    int s = -1, q0 = 0, rem = blockIdx.y;
    for (int i = 0; i < a.n_seqs; i++) {
        const int nt = (a.q_start[i + 1] - a.q_start[i] + AP_T - 1) / AP_T;
        if (rem < nt) {
            s = i;
            q0 = rem * AP_T;
            break;
        }
        rem -= nt;
    }
    if (s < 0) /* past the last tile: the whole block leaves */
        return;
    const int qs = a.q_start[s], q_len = a.q_start[s + 1] - qs;
    const int nq = q_len - q0 < AP_T ? q_len - q0 : AP_T;
    const int p0 = a.ctx_len[s] - q_len + q0; /* position of the tile's first query */
    const int p_last = p0 + nq - 1;
    int k_lo = 0;
    if (a.sliding_window > 0 && p0 - a.sliding_window + 1 > 0)
        k_lo = p0 - a.sliding_window + 1;
    const int kvh = h / (a.n_heads / a.n_kv_heads), bs = a.block_size;
    const int64_t row = (int64_t)a.n_kv_heads * hd;
    const int32_t *table = a.block_table + (int64_t)s * a.max_blocks_per_seq;

    /* Shared memory, every piece a multiple of 32 bytes (wmma alignment). */
    __half *Qs = vrt_dyn_smem<__half>();                       /* [16][hd] */
    __half *Ks = Qs + AP_T * hd;                               /* [16][hd] */
    __half *Vs = Ks + AP_T * hd;                               /* [16][hd] */
    __half *Ps = Vs + AP_T * hd;                               /* [16][16] */
    float *Ss = reinterpret_cast<float *>(Ps + AP_T * AP_T);   /* [16][16] */
    float *PV = Ss + AP_T * AP_T;                              /* [16][hd] */
    float *O = PV + AP_T * hd;                                 /* [16][hd] */
    float *m = O + AP_T * hd, *l = m + AP_T, *corr = l + AP_T; /* [16] each */

    for (int i = lane; i < AP_T * hd; i += 32) {
        const int r = i / hd, d = i % hd;
        const float v =
            r < nq ? q[((int64_t)(qs + q0 + r) * a.n_heads + h) * hd + d] * a.scale : 0.0f;
        Qs[i] = __float2half_rn(v);
        O[i] = 0.0f;
    }
    if (lane < AP_T) {
        m[lane] = -INFINITY;
        l[lane] = 0.0f;
    }
    __syncthreads();
    const __half hzero = __float2half_rn(0.0f);
    for (int k0 = k_lo; k0 <= p_last; k0 += AP_T) {
        /* K and V rows of keys k0 .. k0 + 15 (zero past p_last). */
        for (int i = lane; i < AP_T * hd; i += 32) {
            const int r = i / hd, d = i % hd, k = k0 + r;
            if (k <= p_last) {
                const int64_t off =
                    ((int64_t)table[k / bs] * bs + k % bs) * row + (int64_t)kvh * hd + d;
                Ks[i] = __ushort_as_half(k_cache[off]);
                Vs[i] = __ushort_as_half(v_cache[off]);
            } else {
                Ks[i] = hzero;
                Vs[i] = hzero;
            }
        }
        __syncthreads();
        /* S = Q·Kᵀ: Kᵀ as a column-major matrix_b over Ks. */
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> sf;
        wmma::fill_fragment(sf, 0.0f);
        for (int dc = 0; dc < hd; dc += 16) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> af;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> bf;
            wmma::load_matrix_sync(af, Qs + dc, (unsigned)hd);
            wmma::load_matrix_sync(bf, Ks + dc, (unsigned)hd);
            wmma::mma_sync(sf, af, bf, sf);
        }
        wmma::store_matrix_sync(Ss, sf, AP_T, wmma::mem_row_major);
        __syncthreads();
        /* Streaming softmax, one query row per lane. */
        if (lane < AP_T) {
            const int r = lane, p = p0 + r;
            float mx = m[r];
            for (int c = 0; c < AP_T; c++) {
                const int k = k0 + c;
                const bool ok =
                    r < nq && k <= p && (a.sliding_window == 0 || p - k < a.sliding_window);
                if (ok)
                    mx = fmaxf(mx, Ss[r * AP_T + c]);
            }
            const float cr = mx == -INFINITY ? 1.0f : expf(m[r] - mx);
            float sum = 0.0f;
            for (int c = 0; c < AP_T; c++) {
                const int k = k0 + c;
                const bool ok =
                    r < nq && k <= p && (a.sliding_window == 0 || p - k < a.sliding_window);
                const __half ph = __float2half_rn(ok ? expf(Ss[r * AP_T + c] - mx) : 0.0f);
                Ps[r * AP_T + c] = ph;
                sum += __half2float(ph); /* the same rounded weights P·V uses */
            }
            l[r] = l[r] * cr + sum;
            m[r] = mx;
            corr[r] = cr;
        }
        __syncthreads();
        /* PV = P·V, 16 output dims at a time. */
        for (int dc = 0; dc < hd; dc += 16) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> of;
            wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> pf;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> vf;
            wmma::fill_fragment(of, 0.0f);
            wmma::load_matrix_sync(pf, Ps, AP_T);
            wmma::load_matrix_sync(vf, Vs + dc, (unsigned)hd);
            wmma::mma_sync(of, pf, vf, of);
            wmma::store_matrix_sync(PV + dc, of, (unsigned)hd, wmma::mem_row_major);
        }
        __syncthreads();
        for (int i = lane; i < AP_T * hd; i += 32)
            O[i] = O[i] * corr[i / hd] + PV[i];
        __syncthreads();
    }
    for (int i = lane; i < AP_T * hd; i += 32) {
        const int r = i / hd, d = i % hd;
        if (r < nq)
            out[((int64_t)(qs + q0 + r) * a.n_heads + h) * hd + d] =
                l[r] > 0.0f ? O[i] / l[r] : 0.0f;
    }
}

extern "C" int vrt_cuda_attn_prefill_ok(int head_dim)
{
    /* <= 128 keeps the shared memory under 48 KiB (30 KiB at 128) */
    return head_dim > 0 && head_dim % 16 == 0 && head_dim <= 128;
}

extern "C" int vrt_cuda_attn_prefill(float *out, const float *q, const uint16_t *k_cache,
                                     const uint16_t *v_cache, vrt_attn_batch batch, int T,
                                     void *stream)
{
    if (T <= 0 || batch.n_seqs <= 0)
        return 0;
    const int hd = batch.head_dim;
    const size_t smem = sizeof(__half) * (3 * AP_T * (size_t)hd + AP_T * AP_T) +
                        sizeof(float) * (AP_T * AP_T + 2 * AP_T * (size_t)hd + 3 * AP_T);
    /* Tiles of 16 queries, at most one partial tile per sequence. */
    const unsigned tiles = (unsigned)((T + AP_T - 1) / AP_T + batch.n_seqs);
    const cudaStream_t st = (cudaStream_t)stream;
    VRT_LAUNCH(attn_prefill_wmma_kernel, dim3((unsigned)batch.n_heads, tiles), 32, smem, st, out, q,
               k_cache, v_cache, batch);
    return (int)cudaGetLastError();
}
