/* test_emu.c — the CUDA emulator (kernels/emu) tested through the probe kernels of emu_probe.cu.
 *
 * The primitives (barrier, warp shuffles and votes, static and dynamic
 * shared memory, atomics, fp16 conversions), the failure reports (deadlock,
 * bad launch configuration) and the property the emulator exists for: the
 * fiber order is shuffled, so a reduction without its __syncthreads gives
 * wrong sums (a kernel test run on the emulator catches a missing barrier).
 */
#include "test.h"

#include "backend/half.h"
#include "emu/emu.h"

#include <stdlib.h>

int vrt_probe_block_sum(float *out, const float *x, int rows, int D, int threads, int with_barrier);
int vrt_probe_barrier(int *out, int blocks, int threads);
int vrt_probe_warp(int *out, int threads);
int vrt_probe_smem(int *out, int blocks, int threads);
int vrt_probe_atomics(float *fsum, int *isum, int blocks, int threads);
int vrt_probe_half(uint16_t *out, const uint16_t *in, int n, float *pair);
int vrt_probe_deadlock(int *out);
int vrt_probe_order(int *order, int *next, int threads);
int vrt_probe_bad_launch(int *out);

TEST(emu_barrier)
{
    enum { BLOCKS = 3, N = 96 };
    int out[BLOCKS * N];
    ASSERT_EQ_INT(vrt_probe_barrier(out, BLOCKS, N), 0);
    for (int b = 0; b < BLOCKS; b++)
        for (int t = 0; t < N; t++) /* s[t-1] = 2 * (value of thread t) */
            ASSERT_EQ_INT(out[b * N + t], 2 * (1000 * b + t));
}

TEST(emu_warp_shuffles_and_votes)
{
    enum { N = 64, K = 11 };
    int out[K * N];
    ASSERT_EQ_INT(vrt_probe_warp(out, N), 0);
    unsigned ballot = 0;
    for (int l = 0; l < 32; l += 3)
        ballot |= 1u << l;
    for (int t = 0; t < N; t++) {
        int lane = t % 32, wb = t - lane;
        ASSERT_EQ_INT(out[0 * N + t], 100 + wb + 3);
        ASSERT_EQ_INT(out[1 * N + t], 100 + (t ^ 5));
        ASSERT_EQ_INT(out[2 * N + t], lane + 4 < 32 ? 100 + t + 4 : 100 + t);
        ASSERT_EQ_INT(out[3 * N + t], lane - 2 < (lane & ~15) ? 100 + t : 100 + t - 2);
        ASSERT_EQ_INT(out[4 * N + t], 100 + wb + (lane & ~7) + 1);
        ASSERT_EQ_INT(out[5 * N + t], 1);
        ASSERT_EQ_INT(out[6 * N + t], 0);
        ASSERT_EQ_INT((unsigned)out[7 * N + t], ballot);
        ASSERT_EQ_INT(out[8 * N + t], 496);
        ASSERT_EQ_INT(out[9 * N + t], 1);
        ASSERT_EQ_INT(out[10 * N + t], lane >= 16 ? -1 : lane == 15 ? 15 : lane + 1);
    }
}

TEST(emu_shared_memory_per_block)
{
    enum { BLOCKS = 5, N = 64 };
    int out[BLOCKS * N];
    vrt_emu_set_threads(2); /* blocks on two OS threads at once */
    ASSERT_EQ_INT(vrt_probe_smem(out, BLOCKS, N), 0);
    vrt_emu_set_threads(1);
    for (int i = 0; i < BLOCKS * N; i++)
        ASSERT_EQ_INT(out[i], i / N);
}

TEST(emu_atomics)
{
    enum { BLOCKS = 7, N = 96 };
    float f = 0;
    int s = 0;
    vrt_emu_set_threads(2);
    ASSERT_EQ_INT(vrt_probe_atomics(&f, &s, BLOCKS, N), 0);
    vrt_emu_set_threads(1);
    ASSERT(f == 0.5f * BLOCKS * N); /* exact: sums of halves below 2^24 */
    ASSERT_EQ_INT(s, BLOCKS * (N * (N - 1) / 2));
}

TEST(emu_half_roundtrip)
{
    enum { N = 65536 };
    uint16_t *in = malloc(N * 2), *out = malloc(N * 2);
    float pair[5];
    for (int i = 0; i < N; i++)
        in[i] = (uint16_t)i;
    ASSERT_EQ_INT(vrt_probe_half(out, in, N, pair), 0);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        int nan = (i & 0x7c00) == 0x7c00 && (i & 0x3ff);
        if (nan) /* NaN stays a NaN of the same sign (quieted) */
            bad += (out[i] & 0x7c00) != 0x7c00 || !(out[i] & 0x3ff) || (out[i] ^ i) & 0x8000;
        else
            bad += out[i] != in[i];
    }
    free(in);
    free(out);
    ASSERT_EQ_INT(bad, 0);
    ASSERT(pair[0] == 1.5f && pair[1] == -2.25f);
    ASSERT(pair[2] == 1.0f);
    ASSERT(isinf(pair[3]) && pair[3] > 0);
    ASSERT(pair[4] == 1.5f);
}

/* Rows of D values whose sums are checked; the sum is exact in f32 (small
 * integers), so any difference is a wrong result, not rounding. */
static int block_sums_wrong(int with_barrier, uint64_t seed)
{
    enum { ROWS = 16, D = 300, THREADS = 256 };
    static float x[ROWS * D];
    float out[ROWS];
    int wrong = 0;
    for (int r = 0; r < ROWS; r++)
        for (int i = 0; i < D; i++)
            x[r * D + i] = (float)((r * 7 + i * 13) % 11);
    vrt_emu_set_seed(seed);
    if (vrt_probe_block_sum(out, x, ROWS, D, THREADS, with_barrier) != 0)
        return -1;
    for (int r = 0; r < ROWS; r++) {
        float want = 0;
        for (int i = 0; i < D; i++)
            want += x[r * D + i];
        wrong += !(out[r] == want); /* NaN (unwritten shared memory) is wrong too */
    }
    return wrong;
}

TEST(emu_missing_barrier_is_caught)
{
    /* With its barrier the reduction is right for every seed; without it,
     * lanes of warp 0 read the per-warp partial sums before the other warps
     * wrote them (the shared slots hold NaN until then), so rows come out
     * wrong — for every seed tried, not by luck. */
    for (uint64_t seed = 1; seed <= 4; seed++) {
        ASSERT_EQ_INT(block_sums_wrong(1, seed), 0);
        int wrong = block_sums_wrong(0, seed);
        printf("seed %llu: %d of 16 rows wrong without the barrier\n", (unsigned long long)seed,
               wrong);
        if (wrong <= 0)
            TFAIL("seed %llu: the reduction without __syncthreads gave %d wrong rows of 16; the "
                  "emulator's shuffled fiber order should have exposed it",
                  (unsigned long long)seed, wrong);
    }
}

TEST(emu_order_is_shuffled_by_seed)
{
    enum { N = 128 };
    int a[N], b[N], next = 0, identity = 1, same = 1;
    vrt_emu_set_seed(7);
    ASSERT_EQ_INT(vrt_probe_order(a, &next, N), 0);
    ASSERT_EQ_INT(next, N);
    next = 0;
    vrt_emu_set_seed(8);
    ASSERT_EQ_INT(vrt_probe_order(b, &next, N), 0);
    for (int i = 0; i < N; i++) {
        identity &= a[i] == i;
        same &= a[i] == b[i];
    }
    ASSERT(!identity);
    ASSERT(!same);
}

TEST(emu_deadlock_is_reported)
{
    int out[32];
    ASSERT(vrt_probe_deadlock(out) != 0);
    ASSERT_CONTAINS(vrt_emu_last_error(), "deadlock");
    ASSERT_CONTAINS(vrt_emu_last_error(), "probe_deadlock_kernel");
}

TEST(emu_bad_launch_is_reported)
{
    int out[1];
    ASSERT(vrt_probe_bad_launch(out) != 0);
    ASSERT_CONTAINS(vrt_emu_last_error(), "invalid configuration");
}
