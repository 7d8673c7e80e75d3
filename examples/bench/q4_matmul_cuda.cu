/* q4_matmul_cuda.cu — checks and times kernels/cuda/matmul_q4.cu on a real GPU.
 *
 * The W4A16 launcher on its own, without the cuda backend: random int4
 * weights (with and without an act-order permutation), the launcher vrt_cuda_matmul_q4 for several
 * T, the result against a float64 CPU dequantize-then-matmul on every output, then the time per
 * call (CUDA events) and the weight bytes streamed per second. Not a test: it never gates on a time
 * (it exits 1 on a wrong result).
 *
 * Built by `make examples` when nvcc is there (for the first architecture
 * it offers; for a V100 build it with a CUDA <= 12.x nvcc and -arch=sm_70):
 *
 *   build/release/examples/q4_matmul_cuda [N K]
 */
#include "cuda/common.cuh"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <vector>

#define CK(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, cudaGetErrorString(e_));            \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd()
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static float h2f(uint16_t h)
{
    return __half2float(__ushort_as_half(h));
}

static int run(int N, int K, int G, bool perm, bool timing)
{
    const int Kp = (K + 31) / 32 * 32, words = Kp / 8, ng = (K + G - 1) / G;
    std::vector<uint32_t> qw((size_t)N * words, 0);
    std::vector<uint16_t> s((size_t)N * ng), z((size_t)N * ng);
    std::vector<int32_t> p(K);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            qw[(size_t)n * words + k / 8] |= (rnd() & 15u) << (4 * (k % 8));
    for (size_t i = 0; i < s.size(); i++) {
        s[i] = __half_as_ushort(__float2half(0.005f + (rnd() % 1000) * 1e-5f));
        z[i] = __half_as_ushort(__float2half((float)(rnd() % 17)));
    }
    for (int k = 0; k < K; k++)
        p[k] = k;
    for (int k = K - 1; perm && k > 0; k--)
        std::swap(p[k], p[rnd() % (k + 1)]);
    const int TMAX = 64;
    std::vector<float> x((size_t)TMAX * K), y((size_t)TMAX * N);
    for (auto &v : x)
        v = (float)((int)(rnd() % 2001) - 1000) * 1e-3f;
    uint32_t *dq;
    uint16_t *ds, *dz;
    int32_t *dp;
    float *dx, *dy;
    CK(cudaMalloc(&dq, qw.size() * 4));
    CK(cudaMalloc(&ds, s.size() * 2));
    CK(cudaMalloc(&dz, z.size() * 2));
    CK(cudaMalloc(&dp, (size_t)K * 4));
    CK(cudaMalloc(&dx, x.size() * 4));
    CK(cudaMalloc(&dy, y.size() * 4));
    CK(cudaMemcpy(dq, qw.data(), qw.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(ds, s.data(), s.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dz, z.data(), z.size() * 2, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dp, p.data(), (size_t)K * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    vrt_q4 q = {dq, ds, dz, perm ? dp : NULL, G, ng};
    const double wbytes = (double)qw.size() * 4 + 2.0 * s.size() * 2;
    static const int Ts[] = {1, 2, 8, 9, 64};
    for (int T : Ts) {
        CK((cudaError_t)vrt_cuda_matmul_q4(dy, dx, q, N, K, NULL, T, NULL));
        CK(cudaDeviceSynchronize());
        CK(cudaMemcpy(y.data(), dy, (size_t)T * N * 4, cudaMemcpyDeviceToHost));
        /* float64 reference on a sample of rows (all rows for small N) */
        double md = 0, mr = 0;
        for (int n = 0; n<N; n += N> 512 ? 37 : 1)
            for (int t = 0; t < T; t++) {
                double acc = 0;
                for (int k = 0; k < K; k++) {
                    int g = k / G;
                    double w = ((double)((qw[(size_t)n * words + k / 8] >> (4 * (k % 8))) & 15u) -
                                h2f(z[(size_t)n * ng + g])) *
                               h2f(s[(size_t)n * ng + g]);
                    acc += w * x[(size_t)t * K + p[k]];
                }
                md = fmax(md, fabs(acc - y[(size_t)t * N + n]));
                mr = fmax(mr, fabs(acc));
            }
        double err = md / fmax(mr, 1e-6);
        printf("N=%d K=%d g%d%s T=%d: err %.2e", N, K, G, perm ? " perm" : "", T, err);
        if (!(err <= 2e-5)) {
            printf("  WRONG\n");
            return 1;
        }
        if (timing) {
            cudaEvent_t a, b;
            CK(cudaEventCreate(&a));
            CK(cudaEventCreate(&b));
            const int reps = 200;
            CK(cudaEventRecord(a));
            for (int r = 0; r < reps; r++)
                vrt_cuda_matmul_q4(dy, dx, q, N, K, NULL, T, NULL);
            CK(cudaEventRecord(b));
            CK(cudaEventSynchronize(b));
            float ms;
            CK(cudaEventElapsedTime(&ms, a, b));
            ms /= reps;
            printf("  %.4f ms  %.0f GB/s of weights  %.2f TFLOP/s", ms, wbytes / (ms * 1e-3) / 1e9,
                   2.0 * T * N * K / (ms * 1e-3) / 1e12);
        }
        printf("\n");
    }
    cudaFree(dq);
    cudaFree(ds);
    cudaFree(dz);
    cudaFree(dp);
    cudaFree(dx);
    cudaFree(dy);
    return 0;
}

int main(int argc, char **argv)
{
    int N = argc > 1 ? atoi(argv[1]) : 5632, K = argc > 2 ? atoi(argv[2]) : 2048;
    int rc = run(67, 200, 32, true, false);
    if (!rc)
        rc = run(130, 1100, 1100, false, false);
    if (!rc)
        rc = run(N, K, 128, false, true);
    if (!rc)
        rc = run(N, K, 128, true, true);
    if (!rc)
        rc = run(4096, 4096, 128, false, true);
    if (!rc)
        rc = run(11008, 4096, 128, false, true);
    return rc;
}
