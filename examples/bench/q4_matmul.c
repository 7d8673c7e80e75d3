/* q4_matmul.c — CPU matmul throughput: int4 (VRT_DT_Q4) against f16 and f32 weights.
 *
 * Times y = x·Wᵀ on the cpu backend for one weight shape (default the
 * Llama-7B-ish 2048 x 5632 of the issue: N = 5632 outputs, K = 2048 inputs)
 * at a few token counts, and prints the weight bytes streamed per second
 * (int4 counts its packed nibbles, scales and zeros). Not a test: it never
 * gates on a time. Built by `make examples` (and `make test`); run from
 * the repository root:
 *
 *   build/release/examples/q4_matmul [N K threads]
 */
#include "backend/backend.h"
#include "backend/half.h"
#include "backend/ops.h"
#include "core/err.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double time_it(vrt_backend *b, float *y, const float *x, const vrt_weight *w, int T)
{
    vrt_err err = {0};
    if (vrt_op_matmul(b, y, x, w, NULL, T, &err)) { /* warm-up */
        fprintf(stderr, "matmul: %s\n", err.msg);
        exit(1);
    }
    int reps = 0;
    double t0 = omp_get_wtime(), t;
    do {
        vrt_op_matmul(b, y, x, w, NULL, T, &err);
        reps++;
        t = omp_get_wtime() - t0;
    } while (t < 1.0 || reps < 3);
    return t / reps;
}

int main(int argc, char **argv)
{
    int64_t N = argc > 1 ? atoll(argv[1]) : 5632, K = argc > 2 ? atoll(argv[2]) : 2048;
    int threads = argc > 3 ? atoi(argv[3]) : 0;
    vrt_backend *b;
    vrt_err err = {0};
    if (vrt_backend_create(&b, "cpu", threads, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    const int G = 128, ng = (int)((K + G - 1) / G);
    const int64_t words = (K + 31) / 32 * 4;
    uint32_t *qw = aligned_alloc(64, (size_t)(N * words) * 4);
    uint16_t *s = malloc((size_t)(N * ng) * 2), *z = malloc((size_t)(N * ng) * 2);
    uint16_t *w16 = malloc((size_t)(N * K) * 2);
    float *w32 = malloc((size_t)(N * K) * 4);
    for (int64_t i = 0; i < N * words; i++)
        qw[i] = (uint32_t)(i * 2654435761u);
    for (int64_t i = 0; i < N * ng; i++) {
        s[i] = vrt_f32_to_f16(0.01f);
        z[i] = vrt_f32_to_f16(8.0f);
    }
    for (int64_t i = 0; i < N * K; i++) {
        w32[i] = (float)((i * 7) % 13 - 6) * 0.01f;
        w16[i] = vrt_f32_to_f16(w32[i]);
    }
    vrt_q4 q = {qw, s, z, NULL, G, ng};
    vrt_weight wq = {.data = qw, .dtype = VRT_DT_Q4, .rows = N, .cols = K, .q4 = &q};
    vrt_weight wh = {.data = w16, .dtype = VRT_DT_F16, .rows = N, .cols = K};
    vrt_weight wf = {.data = w32, .dtype = VRT_DT_F32, .rows = N, .cols = K};
    const double bq = (double)N * words * 4 + 2.0 * N * ng * 2, bh = (double)N * K * 2,
                 bf = (double)N * K * 4;
    static const int Ts[] = {1, 4, 16, 64};
    float *x = malloc((size_t)(64 * K) * 4), *y = malloc((size_t)(64 * N) * 4);
    for (int64_t i = 0; i < 64 * K; i++)
        x[i] = (float)(i % 17) * 0.05f - 0.4f;
    printf("cpu matmul, W [%lld][%lld], %d threads (int4: g%d, %.1f MiB; f16 %.1f MiB)\n",
           (long long)N, (long long)K, ((int *)b->ctx)[0], G, bq / 1048576, bh / 1048576);
    printf("| T | int4 ms | int4 GB/s | f16 ms | f16 GB/s | f32 ms | f32 GB/s |\n");
    printf("|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++) {
        int T = Ts[i];
        double tq = time_it(b, y, x, &wq, T), th = time_it(b, y, x, &wh, T),
               tf = time_it(b, y, x, &wf, T);
        printf("| %d | %.3f | %.2f | %.3f | %.2f | %.3f | %.2f |\n", T, tq * 1e3, bq / tq / 1e9,
               th * 1e3, bh / th / 1e9, tf * 1e3, bf / tf / 1e9);
    }
    vrt_backend_destroy(b);
    free(qw);
    free(s);
    free(z);
    free(w16);
    free(w32);
    free(x);
    free(y);
    return 0;
}
