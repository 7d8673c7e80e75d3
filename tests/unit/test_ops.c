/* test_ops.c — every op of every built-in backend against the float64 reference.
 *
 * For each backend in vrt_backend_list() and each op, several shapes (odd
 * sizes, T = 1 and 37, head_dim 64 and 80, GQA and MHA, partial rotary,
 * both rope pairings, sliding windows, block sizes 8/16/32, f32 and f16
 * weights, a mixed flattened prefill+decode batch with scattered block
 * tables) run on fresh seeded random inputs. Inputs live in device memory
 * allocated through the backend, with guard words before and after every
 * buffer; after each op the guards are checked, so an out-of-bounds write
 * fails the case. The error is normalized: max|got - ref| / max(1e-6, max|ref|),
 * compared with a per-op tolerance whose value is justified where it is
 * defined. One line is printed per op and shape; unsupported ops print SKIP.
 * Error paths (bad token id, bad dtype, decode with q_len != 1, bad slot,
 * bad block id, unknown backend) and half.h are tested too.
 */
#include "test.h"

#include "backend/backend.h"
#include "backend/half.h"
#include "backend/ops.h"
#include "core/err.h"
#include "cpu/cpu.h"
#include "model/model.h"
#include "ref/ref.h"

#include <dlfcn.h>
#include <limits.h>
#include <unistd.h>

#include <stdlib.h>

/* ---- random numbers (seeded, so a failure reproduces) ---- */

static uint64_t g_rng;

static void rng_seed(uint64_t s)
{
    g_rng = s * 0x9e3779b97f4a7c15ull + 1;
}

static uint64_t rng_u64(void)
{
    /* splitmix64 */
    uint64_t z = (g_rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static float rng_f(float lo, float hi)
{
    return lo + (hi - lo) * (float)((rng_u64() >> 40) * 0x1p-24);
}

static int rng_int(int n)
{
    return (int)(rng_u64() % (uint64_t)n);
}

static float *rand_f32(size_t n, float lo, float hi)
{
    float *p = malloc(n * sizeof *p + 1);
    for (size_t i = 0; i < n; i++)
        p[i] = rng_f(lo, hi);
    return p;
}

/* ---- device buffers with guard words ---- */

#define GUARD 256 /* bytes before and after every buffer (keeps 256-byte alignment) */

static uint8_t guard_byte(size_t i)
{
    return (uint8_t)(0xa5u ^ (i * 29u));
}

typedef struct {
    vrt_backend *b;
    uint8_t *base; /* device: [GUARD][n][GUARD] */
    void *p;       /* device: base + GUARD */
    size_t n;
} dbuf;

/* Allocates n bytes on the device, filled from init (host) or zeros. */
static int dbuf_new(dbuf *d, vrt_backend *b, size_t n, const void *init)
{
    vrt_err err = {0};
    d->b = b;
    d->n = n;
    d->base = b->alloc(b, n + 2 * GUARD, &err);
    if (!d->base) {
        fprintf(stderr, "alloc failed: %s\n", err.msg);
        return -1;
    }
    d->p = d->base + GUARD;
    uint8_t *h = calloc(1, n + 2 * GUARD);
    for (size_t i = 0; i < GUARD; i++) {
        h[i] = guard_byte(i);
        h[GUARD + n + i] = guard_byte(GUARD + i);
    }
    if (init)
        memcpy(h + GUARD, init, n);
    int rc = b->copy_to_device(b, d->base, h, n + 2 * GUARD, &err);
    free(h);
    return rc;
}

/* Copies the buffer back into host (may be NULL) and checks the guards;
 * returns 0, or -1 when a guard word was overwritten. */
static int dbuf_read(dbuf *d, void *host, const char *what)
{
    vrt_err err = {0};
    uint8_t *h = malloc(d->n + 2 * GUARD);
    int rc = d->b->sync(d->b, &err);
    if (!rc)
        rc = d->b->copy_to_host(d->b, h, d->base, d->n + 2 * GUARD, &err);
    if (rc) {
        fprintf(stderr, "  copy of %s failed: %s\n", what, err.msg);
        free(h);
        return -1;
    }
    for (size_t i = 0; i < GUARD; i++) {
        if (h[i] != guard_byte(i)) {
            fprintf(stderr, "  %s: guard word %zu bytes BEFORE the buffer was overwritten\n", what,
                    GUARD - i);
            rc = -1;
            break;
        }
    }
    for (size_t i = 0; i < GUARD; i++) {
        if (h[GUARD + d->n + i] != guard_byte(GUARD + i)) {
            fprintf(stderr, "  %s: guard word %zu bytes AFTER the buffer was overwritten\n", what,
                    i);
            rc = -1;
            break;
        }
    }
    if (host)
        memcpy(host, h + GUARD, d->n);
    free(h);
    return rc;
}

static void dbuf_free(dbuf *d)
{
    if (d->base)
        d->b->free(d->b, d->base);
    d->base = NULL;
}

/* ---- backends ---- */

#define MAX_BACKENDS 8

/* Creates the cpu backend with V100RT_CPU_ISA set to level (the variable
 * restored afterwards). */
static int cpu_at_level(vrt_backend **b, const char *level, vrt_err *err)
{
    const char *old = getenv("V100RT_CPU_ISA");
    char *keep = old ? strdup(old) : NULL;
    if (level)
        setenv("V100RT_CPU_ISA", level, 1);
    else
        unsetenv("V100RT_CPU_ISA");
    int rc = vrt_backend_create(b, "cpu", 2, err);
    if (keep)
        setenv("V100RT_CPU_ISA", keep, 1);
    else
        unsetenv("V100RT_CPU_ISA");
    free(keep);
    return rc;
}

/* Creates every built-in backend (2 threads). */
static int open_backends(vrt_backend **bs)
{
    char names[256];
    snprintf(names, sizeof names, "%s", vrt_backend_list());
    int n = 0;
    for (char *save = NULL, *k = strtok_r(names, ",", &save); k && n < MAX_BACKENDS;
         k = strtok_r(NULL, ",", &save)) {
        vrt_err err = {0};
        if (vrt_backend_create(&bs[n], k, 2, &err) == 0)
            n++;
        else
            printf("SKIP   %-8s backend unavailable: %s\n", k, err.msg);
    }
    /* cpu once more at every other kernel level this machine supports
     * (V100RT_CPU_ISA), so that each op runs on each level: "cpu-generic"
     * next to the default avx2, or "cpu-avx2" when generic is forced. */
    static const char *const levels[] = {"generic", "avx2"};
    vrt_err lerr = {0};
    int cur = -1;
    if (vrt__cpu_isa_select(&cur, &lerr) == 0)
        for (int l = 0; l <= vrt__cpu_isa_best() && n < MAX_BACKENDS; l++) {
            if (l == cur || cpu_at_level(&bs[n], levels[l], &lerr) != 0)
                continue;
            bs[n++]->name = l == VRT_CPU_ISA_GENERIC ? "cpu-generic" : "cpu-avx2";
        }
    /* cuda-emu once more with kernels.custom = false: the kernels the
     * custom ones replace (generic attention, FMA matmul) stay tested. */
    vrt_backend_opts o = {.threads = 2, .custom_kernels = 0};
    vrt_err err = {0};
    if (n < MAX_BACKENDS && vrt_backend_create_opts(&bs[n], "cuda-emu", &o, &err) == 0)
        bs[n++]->name = "emu-plain";
    return n;
}

static void close_backends(vrt_backend **bs, int n)
{
    for (int i = 0; i < n; i++)
        vrt_backend_destroy(bs[i]);
}

/* ---- comparison ---- */

static double norm_err(const float *got, const double *ref, size_t n)
{
    double md = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (!(d <= md)) /* NaN in got makes the error NaN: reported as a failure */
            md = d;
        if (fabs(ref[i]) > mr)
            mr = fabs(ref[i]);
    }
    return md / (mr > 1e-6 ? mr : 1e-6);
}

/* Prints one result line; returns 1 if the case passed. */
static int report(vrt_backend *b, const char *op, const char *shape, double err, double tol,
                  int guards_ok)
{
    int ok = err <= tol && guards_ok;
    printf("%-4s   %-8s %-17s %-52s err %.2e  tol %.0e%s\n", ok ? "ok" : "FAIL", b->name, op, shape,
           err, tol, guards_ok ? "" : "  GUARD OVERWRITTEN");
    return ok;
}

static int skip(vrt_backend *b, vrt_op op, int dtype, const char *shape)
{
    if (b->supports_op(b, op, dtype))
        return 0;
    printf("SKIP   %-8s %-17s %s\n", b->name, vrt_op_name(op), shape);
    return 1;
}

/* A weight of rows × cols, random in [lo, hi), as f32 or f16, on host and
 * device. host_w describes the host copy (for the reference). */
typedef struct {
    vrt_weight dev, host;
    dbuf buf;
    void *h;
} tweight;

static int tweight_new(tweight *w, vrt_backend *b, int dtype, int64_t rows, int64_t cols, float lo,
                       float hi)
{
    size_t n = (size_t)(rows * cols);
    size_t es = dtype == VRT_DT_F16 ? 2 : 4;
    w->h = malloc(n * es + 1);
    for (size_t i = 0; i < n; i++) {
        float v = rng_f(lo, hi);
        if (dtype == VRT_DT_F16)
            ((uint16_t *)w->h)[i] = vrt_f32_to_f16(v);
        else
            ((float *)w->h)[i] = v;
    }
    w->host = (vrt_weight){w->h, dtype, rows, cols, NULL};
    if (dbuf_new(&w->buf, b, n * es, w->h))
        return -1;
    w->dev = (vrt_weight){w->buf.p, dtype, rows, cols, NULL};
    return 0;
}

static void tweight_free(tweight *w)
{
    dbuf_free(&w->buf);
    free(w->h);
}

static const char *dtn(int dtype)
{
    return vrt_dtype_name(dtype);
}

/* ---- half.h ---- */

TEST(half_roundtrip_all_patterns)
{
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = vrt_f16_to_f32((uint16_t)h);
        double r = vrt_ref_f16_to_double((uint16_t)h);
        int nan = ((h >> 10) & 31) == 31 && (h & 1023);
        if (nan) {
            if (!isnan(f) || !isnan((float)vrt_f16_to_f32(vrt_f32_to_f16(f))) ||
                (vrt_f32_to_f16(f) & 0x7c00) != 0x7c00)
                bad++;
            continue;
        }
        if ((double)f != r || !signbit(f) != !signbit(r)) {
            if (bad++ < 5)
                fprintf(stderr, "  f16 0x%04x -> %.9g, reference %.9g\n", h, f, r);
        }
        if (vrt_f32_to_f16(f) != h && bad++ < 5)
            fprintf(stderr, "  f16 0x%04x -> f32 -> f16 0x%04x\n", h, vrt_f32_to_f16(f));
    }
    ASSERT_EQ_INT(bad, 0);
}

TEST(half_f32_to_f16_rounding)
{
    /* Edge values: largest finite, the overflow tie, subnormal ties. */
    ASSERT_EQ_INT(vrt_f32_to_f16(65504.0f), 0x7bff);
    ASSERT_EQ_INT(vrt_f32_to_f16(65519.99f), 0x7bff);
    ASSERT_EQ_INT(vrt_f32_to_f16(65520.0f), 0x7c00);
    ASSERT_EQ_INT(vrt_f32_to_f16(-1e10f), 0xfc00);
    ASSERT_EQ_INT(vrt_f32_to_f16(0x1p-25f), 0x0000);            /* tie -> even 0 */
    ASSERT_EQ_INT(vrt_f32_to_f16(0x1.000002p-25f), 0x0001);     /* just above the tie */
    ASSERT_EQ_INT(vrt_f32_to_f16(0x1.8p-24f), 0x0002);          /* 1.5 quanta -> 2 (even) */
    ASSERT_EQ_INT(vrt_f32_to_f16(0x1p-14f - 0x1p-26f), 0x0400); /* rounds up to min normal */
    ASSERT_EQ_INT(vrt_f32_to_f16(-0.0f), 0x8000);
    ASSERT_EQ_INT(vrt_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);   /* tie -> even */
    ASSERT_EQ_INT(vrt_f32_to_f16(1.0f + 0x1.8p-10f), 0x3c02); /* 1.5 ulp: tie -> even */
    ASSERT_EQ_INT(vrt_f32_to_f16(1.0f + 0x1.8p-11f), 0x3c01); /* 0.75 ulp rounds up */
    ASSERT_EQ_INT(vrt_f32_to_f16(INFINITY), 0x7c00);
    ASSERT((vrt_f32_to_f16(NAN) & 0x7c00) == 0x7c00 && (vrt_f32_to_f16(NAN) & 0x3ff));
    /* Random bit patterns against the reference's independent rounding. */
    rng_seed(11);
    int bad = 0;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = (uint32_t)rng_u64();
        if (i & 1) /* half of them in and near the fp16 range */
            u = (u & 0x80ffffffu) | ((uint32_t)(100 + rng_int(45)) << 23);
        float f = vrt_bits_to_f32(u);
        if (isnan(f))
            continue;
        uint16_t got = vrt_f32_to_f16(f), want = vrt_ref_f16_from_double(f);
        if (got != want && bad++ < 5)
            fprintf(stderr, "  f32 %a (0x%08x): got 0x%04x, reference 0x%04x\n", f, u, got, want);
    }
    ASSERT_EQ_INT(bad, 0);
}

/* The guard check itself must be able to fail. */
TEST(ops_guard_detects_overrun)
{
    vrt_backend *bs[MAX_BACKENDS];
    int nb = open_backends(bs);
    ASSERT(nb > 0);
    vrt_backend *b = bs[0];
    dbuf d;
    ASSERT_EQ_INT(dbuf_new(&d, b, 40, NULL), 0);
    ASSERT_EQ_INT(dbuf_read(&d, NULL, "clean"), 0);
    float one = 1.0f;
    vrt_err err = {0};
    ASSERT_OK(b->copy_to_device(b, (uint8_t *)d.p + 40, &one, sizeof one, &err), &err);
    fprintf(stderr, "  (the next guard message is expected)\n");
    ASSERT_EQ_INT(dbuf_read(&d, NULL, "overrun"), -1);
    dbuf_free(&d);
    close_backends(bs, nb);
}

/* ---- embed ---- */

TEST(ops_embed)
{
    /* Exact: a row copy, or an fp16 -> fp32 conversion (exact in both). */
    const double tol = 0;
    static const int shapes[][3] = {{50, 37, 1}, {1000, 64, 37}, {7, 8, 19}}; /* V, D, T */
    vrt_backend *bs[MAX_BACKENDS];
    int nb = open_backends(bs), failed = 0;
    rng_seed(1);
    for (int bi = 0; bi < nb; bi++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (int dt = VRT_DT_F32; dt <= VRT_DT_F16; dt++) {
                vrt_backend *b = bs[bi];
                int V = shapes[si][0], D = shapes[si][1], T = shapes[si][2];
                char shape[128];
                snprintf(shape, sizeof shape, "V=%d D=%d T=%d %s", V, D, T, dtn(dt));
                if (skip(b, VRT_OP_EMBED, dt, shape))
                    continue;
                tweight tab;
                ASSERT_EQ_INT(tweight_new(&tab, b, dt, V, D, -2, 2), 0);
                int32_t ids[64];
                for (int t = 0; t < T; t++)
                    ids[t] = t == 0 ? V - 1 : rng_int(V);
                dbuf did, dout;
                ASSERT_EQ_INT(dbuf_new(&did, b, sizeof(int32_t) * T, ids), 0);
                ASSERT_EQ_INT(dbuf_new(&dout, b, sizeof(float) * T * D, NULL), 0);
                vrt_err err = {0};
                ASSERT_OK(vrt_op_embed(b, dout.p, &tab.dev, did.p, T, &err), &err);
                float *got = malloc(sizeof(float) * T * D);
                double *ref = malloc(sizeof(double) * T * D);
                int g = dbuf_read(&dout, got, "embed out") == 0;
                vrt_ref_embed(ref, &tab.host, ids, T);
                failed += !report(b, "embed", shape, norm_err(got, ref, (size_t)T * D), tol, g);
                free(got);
                free(ref);
                dbuf_free(&did);
                dbuf_free(&dout);
                tweight_free(&tab);
            }
    close_backends(bs, nb);
    ASSERT_EQ_INT(failed, 0);
}

/* ---- rmsnorm / layernorm ---- */

TEST(ops_norms)
{
    /* f32 sum of D squares (SIMD partial sums), sqrt, and two products: a
     * few f32 roundings on each output, ~1e-6 relative at D = 4096. */
    const double tol = 1e-5;
    static const int shapes[][2] = {{1, 37}, {37, 64}, {5, 4096}, {37, 300}}; /* T, D */
    vrt_backend *bs[MAX_BACKENDS];
    int nb = open_backends(bs), failed = 0;
    rng_seed(2);
    for (int bi = 0; bi < nb; bi++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (int dt = VRT_DT_F32; dt <= VRT_DT_F16; dt++)
                for (int kind = 0; kind < 4; kind++) {
                    /* kind 0: rmsnorm, 1: rmsnorm w_offset 1 in place,
                     * 2: layernorm + bias, 3: layernorm no bias, mean 3 */
                    vrt_backend *b = bs[bi];
                    int T = shapes[si][0], D = shapes[si][1];
                    int ln = kind >= 2;
                    vrt_op op = ln ? VRT_OP_LAYERNORM : VRT_OP_RMSNORM;
                    char shape[128];
                    snprintf(shape, sizeof shape, "T=%d D=%d %s%s", T, D, dtn(dt),
                             kind == 1   ? " w_offset=1 in-place"
                             : kind == 2 ? " +bias"
                             : kind == 3 ? " mean=3"
                                         : "");
                    if (skip(b, op, dt, shape))
                        continue;
                    float off = kind == 3 ? 3.0f : 0.0f;
                    float *x = rand_f32((size_t)T * D, off - 2, off + 2);
                    tweight w, bias;
                    ASSERT_EQ_INT(tweight_new(&w, b, dt, 1, D, -1.5f, 1.5f), 0);
                    ASSERT_EQ_INT(tweight_new(&bias, b, dt, 1, D, -1, 1), 0);
                    dbuf dx, dout;
                    ASSERT_EQ_INT(dbuf_new(&dx, b, sizeof(float) * T * D, x), 0);
                    ASSERT_EQ_INT(dbuf_new(&dout, b, sizeof(float) * T * D, NULL), 0);
                    dbuf *res = kind == 1 ? &dx : &dout;
                    double *ref = malloc(sizeof(double) * T * D);
                    float *got = malloc(sizeof(float) * T * D);
                    vrt_err err = {0};
                    float eps = kind == 1 ? 1e-6f : 1e-5f;
                    if (!ln) {
                        float wo = kind == 1 ? 1.0f : 0.0f;
                        ASSERT_OK(vrt_op_rmsnorm(b, res->p, dx.p, &w.dev, T, D, eps, wo, &err),
                                  &err);
                        vrt_ref_rmsnorm(ref, x, &w.host, T, D, eps, wo);
                    } else {
                        ASSERT_OK(vrt_op_layernorm(b, dout.p, dx.p, &w.dev,
                                                   kind == 2 ? &bias.dev : NULL, T, D, eps, &err),
                                  &err);
                        vrt_ref_layernorm(ref, x, &w.host, kind == 2 ? &bias.host : NULL, T, D,
                                          eps);
                    }
                    int g = dbuf_read(res, got, "norm out") == 0;
                    g &= dbuf_read(kind == 1 ? &dout : &dx, NULL, "norm other") == 0;
                    failed += !report(b, vrt_op_name(op), shape, norm_err(got, ref, (size_t)T * D),
                                      tol, g);
                    free(x);
                    free(ref);
                    free(got);
                    dbuf_free(&dx);
                    dbuf_free(&dout);
                    tweight_free(&w);
                    tweight_free(&bias);
                }
    close_backends(bs, nb);
    ASSERT_EQ_INT(failed, 0);
}

/* ---- rope ---- */

TEST(ops_rope)
{
    /* cos/sin rounded to f32 and two f32 products and a sum per output:
     * ~3 roundings, well under 1e-6 of max|x|. (An f32 angle at positions
     * ~4000 would be off by ~2e-4 and fail here, on purpose.) */
    const double tol = 1e-6;
    static const int shapes[][5] = {
        /* T, n_heads, head_dim, rot_dim, interleaved */
        {1, 4, 64, 64, 0},  {37, 8, 64, 64, 0}, {37, 8, 64, 64, 1},  {37, 4, 80, 80, 0},
        {37, 4, 80, 32, 0}, {19, 2, 80, 32, 1}, {1, 32, 128, 64, 1}, {5, 3, 64, 16, 0},
    };
    vrt_backend *bs[MAX_BACKENDS];
    int nb = open_backends(bs), failed = 0;
    rng_seed(3);
    for (int bi = 0; bi < nb; bi++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            vrt_backend *b = bs[bi];
            int T = shapes[si][0], H = shapes[si][1], hd = shapes[si][2], rd = shapes[si][3],
                il = shapes[si][4];
            char shape[128];
            snprintf(shape, sizeof shape, "T=%d heads=%d hd=%d rot=%d %s", T, H, hd, rd,
                     il ? "interleaved" : "rotate-half");
            if (skip(b, VRT_OP_ROPE, VRT_DT_F32, shape))
                continue;
            size_t n = (size_t)T * H * hd;
            float *x = rand_f32(n, -2, 2);
            int32_t pos[64];
            for (int t = 0; t < T; t++)
                pos[t] = rng_int(4096);
            float inv_freq[512];
            for (int i = 0; i < rd / 2; i++)
                inv_freq[i] = (float)pow(10000.0, -2.0 * i / rd);
            dbuf dx, dp, df;
            ASSERT_EQ_INT(dbuf_new(&dx, b, n * sizeof(float), x), 0);
            ASSERT_EQ_INT(dbuf_new(&dp, b, T * sizeof(int32_t), pos), 0);
            ASSERT_EQ_INT(dbuf_new(&df, b, rd / 2 * sizeof(float), inv_freq), 0);
            vrt_err err = {0};
            ASSERT_OK(vrt_op_rope(b, dx.p, dp.p, T, H, hd, rd, il, df.p, &err), &err);
            float *got = malloc(n * sizeof(float));
            double *ref = malloc(n * sizeof(double));
            int g = dbuf_read(&dx, got, "rope x") == 0;
            vrt_ref_rope(ref, x, pos, T, H, hd, rd, il, inv_freq);
            failed += !report(b, "rope", shape, norm_err(got, ref, n), tol, g);
            free(x);
            free(got);
            free(ref);
            dbuf_free(&dx);
            dbuf_free(&dp);
            dbuf_free(&df);
        }
    close_backends(bs, nb);
    ASSERT_EQ_INT(failed, 0);
}

/* ---- matmul ---- */

/* add_rmsnorm: x += a, out = rmsnorm(x), on the backends that fuse it;
 * out aliasing a as the forward pass uses it. */
TEST(ops_add_rmsnorm)
{
    const double tol = 1e-5;
    static const int shapes[][2] = {{1, 37}, {37, 64}, {5, 4096}, {3, 300}};
    vrt_backend *bs[MAX_BACKENDS];
    int nb = open_backends(bs), failed = 0, ran = 0;
    rng_seed(15);
    for (int bi = 0; bi < nb; bi++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            vrt_backend *b = bs[bi];
            if (!b->add_rmsnorm)
                continue;
            const int T = shapes[si][0], D = shapes[si][1];
            const size_t n = (size_t)T * D;
            float *x = rand_f32(n, -2, 2), *a = rand_f32(n, -2, 2), *sum = malloc(n * 4);
            for (size_t i = 0; i < n; i++)
                sum[i] = x[i] + a[i];
            tweight w;
            ASSERT_EQ_INT(tweight_new(&w, b, VRT_DT_F16, 1, D, 0.5f, 1.5f), 0);
            dbuf dx, da;
            ASSERT_EQ_INT(dbuf_new(&dx, b, n * 4, x), 0);
            ASSERT_EQ_INT(dbuf_new(&da, b, n * 4, a), 0);
            vrt_err err = {0};
            ASSERT_OK(vrt_op_add_rmsnorm(b, dx.p, da.p, da.p, &w.dev, T, D, 1e-5f, 0.0f, &err),
                      &err);
            float *got_x = malloc(n * 4), *got = malloc(n * 4);
            double *ref = malloc(n * sizeof(double)), *ref_x = malloc(n * sizeof(double));
            int g = dbuf_read(&dx, got_x, "x") == 0 && dbuf_read(&da, got, "out") == 0;
            vrt_ref_rmsnorm(ref, sum, &w.host, T, D, 1e-5f, 0.0f);
            for (size_t i = 0; i < n; i++)
                ref_x[i] = sum[i];
            char shape[64];
            snprintf(shape, sizeof shape, "T=%d D=%d (x and out)", T, D);
            double e = fmax(norm_err(got, ref, n), norm_err(got_x, ref_x, n));
            failed += !report(b, "add_rmsnorm", shape, e, tol, g);
            ran++;
            free(x);
            free(a);
            free(sum);
            free(got_x);
            free(got);
            free(ref);
            free(ref_x);
            dbuf_free(&dx);
            dbuf_free(&da);
            tweight_free(&w);
        }
    close_backends(bs, nb);
    ASSERT(ran > 0);
    ASSERT_EQ_INT(failed, 0);
}

/* matmul_group: projections of one x in one call (q/k/v, gate/up), on
 * the backends that have it; each output against the reference. */
TEST(ops_matmul_group)
{
    const double tol = 1e-5;
    static const int shapes[][5] = {
        /* T, K, N0, N1, N2 (0 = only two) */
        {1, 256, 64, 16, 16}, {3, 40, 9, 33, 0}, {4, 1024, 128, 32, 32},
        {3, 96, 7, 5, 3},     {9, 64, 16, 8, 8}, /* above the GEMV's 4 tokens: one matmul each */
    };
    vrt_backend *bs[MAX_BACKENDS];
    int nb = open_backends(bs), failed = 0, ran = 0;
    rng_seed(14);
    for (int bi = 0; bi < nb; bi++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (int dt = VRT_DT_F32; dt <= VRT_DT_F16; dt++) {
                vrt_backend *b = bs[bi];
                if (!b->matmul_group)
                    continue;
                const int T = shapes[si][0], K = shapes[si][1], n = shapes[si][4] ? 3 : 2;
                float *x = rand_f32((size_t)T * K, -1, 1);
                dbuf dx, dy[3], dbias[3];
                tweight w[3];
                float *bias[3];
                ASSERT_EQ_INT(dbuf_new(&dx, b, sizeof(float) * T * K, x), 0);
                float *ys[3];
                const vrt_weight *ws[3];
                const float *bsv[3];
                for (int i = 0; i < n; i++) {
                    const int N = shapes[si][2 + i];
                    bias[i] = rand_f32((size_t)N, -1, 1);
                    ASSERT_EQ_INT(tweight_new(&w[i], b, dt, N, K, -1, 1), 0);
                    ASSERT_EQ_INT(dbuf_new(&dy[i], b, sizeof(float) * T * N, NULL), 0);
                    ASSERT_EQ_INT(dbuf_new(&dbias[i], b, sizeof(float) * N, bias[i]), 0);
                    ys[i] = dy[i].p;
                    ws[i] = &w[i].dev;
                    bsv[i] = i == 1 ? NULL : dbias[i].p; /* one without bias */
                }
                vrt_err err = {0};
                ASSERT_OK(vrt_op_matmul_group(b, n, ys, dx.p, ws, bsv, T, &err), &err);
                for (int i = 0; i < n; i++) {
                    const int N = shapes[si][2 + i];
                    float *got = malloc(sizeof(float) * T * N);
                    double *ref = malloc(sizeof(double) * T * N);
                    int g = dbuf_read(&dy[i], got, "matmul_group y") == 0;
                    vrt_ref_matmul(ref, x, &w[i].host, i == 1 ? NULL : bias[i], T);
                    char shape[128];
                    snprintf(shape, sizeof shape, "T=%d K=%d N=%d %s (%d of %d)", T, K, N, dtn(dt),
                             i + 1, n);
                    double t =
                        strcmp(b->name, "cuda") == 0 && dt == VRT_DT_F16 && T > 4 ? 2e-3 : tol;
                    failed +=
                        !report(b, "matmul_group", shape, norm_err(got, ref, (size_t)T * N), t, g);
                    ran++;
                    free(got);
                    free(ref);
                    dbuf_free(&dy[i]);
                    dbuf_free(&dbias[i]);
                    tweight_free(&w[i]);
                    free(bias[i]);
                }
                dbuf_free(&dx);
                free(x);
            }
    close_backends(bs, nb);
    ASSERT(ran > 0);
    ASSERT_EQ_INT(failed, 0);
}

TEST(ops_matmul)
{
    /* f32 accumulation of K products in [-1, 1]: SIMD partial sums keep the
     * error near sqrt(K)·2^-24 of the typical |y| ~ sqrt(K/9); 1e-5 leaves
     * room at K = 1000 while a wrong index (errors ~1) cannot pass. f16
     * weights are compared with the reference reading the same f16 values,
     * so their rounding does not count. */
    const double tol = 1e-5;
    static const int shapes[][4] = {
        /* T, K, N, bias */
        {1, 37, 19, 0},
        {37, 300, 129, 1},
        {5, 64, 64, 0},
        {67, 128, 33, 1},
        {1, 256, 96, 1},
        {8, 64, 24, 0},
        {3, 40, 17, 1},
        {2, 2056, 40, 1},
        {4, 1000, 70, 0},
        {2, 8, 1, 1},
        {130, 96, 40, 0},
        {1, 7, 3, 0},
        {6, 1031, 13, 1},
        {1, 4100, 9, 1},
        {33, 72, 6, 0},
        /* T = 1 row kernel: 64-byte lines, then 8-wide steps, then a scalar tail */
        {1, 59, 21, 0},
        {1, 1000, 33, 1},
    };
    vrt_backend *bs[MAX_BACKENDS];
    int nb = open_backends(bs), failed = 0;
    rng_seed(4);
    for (int bi = 0; bi < nb; bi++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (int dt = VRT_DT_F32; dt <= VRT_DT_F16; dt++) {
                vrt_backend *b = bs[bi];
                int T = shapes[si][0], K = shapes[si][1], N = shapes[si][2], hb = shapes[si][3];
                char shape[128];
                snprintf(shape, sizeof shape, "T=%d K=%d N=%d %s%s", T, K, N, dtn(dt),
                         hb ? " +bias" : "");
                if (skip(b, VRT_OP_MATMUL, dt, shape))
                    continue;
                float *x = rand_f32((size_t)T * K, -1, 1);
                float *bias = rand_f32((size_t)N, -1, 1);
                tweight w;
                ASSERT_EQ_INT(tweight_new(&w, b, dt, N, K, -1, 1), 0);
                dbuf dx, dy, dbias;
                ASSERT_EQ_INT(dbuf_new(&dx, b, sizeof(float) * T * K, x), 0);
                ASSERT_EQ_INT(dbuf_new(&dy, b, sizeof(float) * T * N, NULL), 0);
                ASSERT_EQ_INT(dbuf_new(&dbias, b, sizeof(float) * N, bias), 0);
                vrt_err err = {0};
                ASSERT_OK(vrt_op_matmul(b, dy.p, dx.p, &w.dev, hb ? dbias.p : NULL, T, &err), &err);
                float *got = malloc(sizeof(float) * T * N);
                double *ref = malloc(sizeof(double) * T * N);
                int g = dbuf_read(&dy, got, "matmul y") == 0;
                vrt_ref_matmul(ref, x, &w.host, hb ? bias : NULL, T);
                /* cuda sends f16 weights with more than 4 tokens to cuBLAS
                 * on tensor cores, which takes the activations rounded to
                 * fp16 (2^-11 relative each): errors of a few 1e-4 of the
                 * largest |y|, so 2e-3 there. */
                double t = strcmp(b->name, "cuda") == 0 && dt == VRT_DT_F16 && T > 4 ? 2e-3 : tol;
                failed += !report(b, "matmul", shape, norm_err(got, ref, (size_t)T * N), t, g);
                free(x);
                free(bias);
                free(got);
                free(ref);
                dbuf_free(&dx);
                dbuf_free(&dy);
                dbuf_free(&dbias);
                tweight_free(&w);
            }
    close_backends(bs, nb);
    ASSERT_EQ_INT(failed, 0);
}

/* ---- int4 matmul ---- */

/* A random q4 weight [N][K]: nibbles, scales in [0.01, 0.05), zero points
 * 0..16 (16 happens with GPTQ v1 files), padding nibbles 0, and a random
 * permutation when perm is set. dev points at device copies, host at the
 * host arrays (for the reference). */
typedef struct {
    vrt_q4 dq, hq;
    vrt_weight dev, host;
    dbuf bq, bs, bz, bp;
    uint32_t *qw;
    uint16_t *s, *z;
    int32_t *perm;
} tq4;

static int tq4_new(tq4 *w, vrt_backend *b, int N, int K, int G, int perm)
{
    memset(w, 0, sizeof *w);
    int Kp = (K + 31) / 32 * 32, words = Kp / 8;
    int gs = G <= 0 || G >= K ? K : G, ng = (K + gs - 1) / gs;
    w->qw = calloc((size_t)N * words, 4);
    w->s = malloc((size_t)N * ng * 2);
    w->z = malloc((size_t)N * ng * 2);
    w->perm = malloc((size_t)K * 4);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++)
            w->qw[(size_t)n * words + k / 8] |= (uint32_t)rng_int(16) << (4 * (k % 8));
    for (int i = 0; i < N * ng; i++) {
        w->s[i] = vrt_f32_to_f16(rng_f(0.01f, 0.05f));
        w->z[i] = vrt_f32_to_f16((float)rng_int(17));
    }
    for (int k = 0; k < K; k++)
        w->perm[k] = k;
    for (int k = K - 1; perm && k > 0; k--) { /* Fisher-Yates */
        int j = rng_int(k + 1), t = w->perm[k];
        w->perm[k] = w->perm[j];
        w->perm[j] = t;
    }
    if (dbuf_new(&w->bq, b, (size_t)N * words * 4, w->qw) ||
        dbuf_new(&w->bs, b, (size_t)N * ng * 2, w->s) ||
        dbuf_new(&w->bz, b, (size_t)N * ng * 2, w->z) ||
        dbuf_new(&w->bp, b, (size_t)K * 4, w->perm))
        return -1;
    w->hq = (vrt_q4){w->qw, w->s, w->z, perm ? w->perm : NULL, gs, ng};
    w->dq = (vrt_q4){w->bq.p, w->bs.p, w->bz.p, perm ? w->bp.p : NULL, gs, ng};
    w->host = (vrt_weight){w->qw, VRT_DT_Q4, N, K, &w->hq};
    w->dev = (vrt_weight){w->bq.p, VRT_DT_Q4, N, K, &w->dq};
    return 0;
}

/* Checks that no device array of the weight was written (guards and data). */
static int tq4_unchanged(tq4 *w)
{
    int ok = 1;
    dbuf *d[] = {&w->bq, &w->bs, &w->bz, &w->bp};
    const void *h[] = {w->qw, w->s, w->z, w->perm};
    for (int i = 0; i < 4; i++) {
        void *back = malloc(d[i]->n + 1);
        ok &= dbuf_read(d[i], back, "q4 weight") == 0 && memcmp(back, h[i], d[i]->n) == 0;
        free(back);
    }
    return ok;
}

static void tq4_free(tq4 *w)
{
    dbuf_free(&w->bq);
    dbuf_free(&w->bs);
    dbuf_free(&w->bz);
    dbuf_free(&w->bp);
    free(w->qw);
    free(w->s);
    free(w->z);
    free(w->perm);
}

TEST(ops_matmul_q4)
{
    /* The kernels compute s·(Σq·x − z·Σx) per group in f32: the two sums
     * are ~15× larger than their difference at worst (q, z up to 15-16,
     * x in [-1, 1]), so f32 rounding of K-long sums gives ~sqrt(K)·2^-24·15
     * relative to |y|; 2e-5 covers K = 1000 while a wrong nibble, group or
     * permutation entry (errors ~1e-2 and up) cannot pass. The reference
     * dequantizes exactly in double from the layout description. */
    const double tol = 2e-5;
    static const int shapes[][6] = {
        /* T, K, N, G (-1: one group), perm, bias */
        {1, 256, 19, 32, 0, 0},
        {1, 200, 33, 32, 1, 1},
        {3, 264, 17, 128, 1, 0},
        {1, 37, 9, -1, 1, 1},
        {37, 300, 41, -1, 0, 1},
        {37, 384, 64, 128, 1, 1},
        {17, 96, 7, 32, 1, 0},
        {4, 1000, 70, 64, 0, 0},
        {70, 160, 13, 32, 1, 1},
        {8, 2080, 5, 32, 1, 1},
        {9, 128, 130, 64, 1, 1},
        {2, 1100, 3, -1, 0, 0},
        /* an odd number of 32-column blocks per group (AVX2: pairs, then a
         * lone block), one group with an odd block count, long rows, and
         * more tokens than one pass over the rows takes (32) */
        {1, 288, 10, 96, 1, 0},
        {5, 96, 11, -1, 1, 1},
        {1, 4128, 6, 128, 0, 1},
        {34, 352, 9, 96, 1, 1},
        {2, 160, 7, 160, 0, 0},
    };
    vrt_backend *bs[MAX_BACKENDS];
    int nb = open_backends(bs), failed = 0;
    rng_seed(14);
    for (int bi = 0; bi < nb; bi++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            vrt_backend *b = bs[bi];
            int T = shapes[si][0], K = shapes[si][1], N = shapes[si][2], G = shapes[si][3];
            int perm = shapes[si][4], hb = shapes[si][5];
            char shape[128];
            snprintf(shape, sizeof shape, "T=%d K=%d N=%d q4 g%d%s%s", T, K, N, G,
                     perm ? " perm" : "", hb ? " +bias" : "");
            if (skip(b, VRT_OP_MATMUL, VRT_DT_Q4, shape))
                continue;
            float *x = rand_f32((size_t)T * K, -1, 1);
            float *bias = rand_f32((size_t)N, -1, 1);
            tq4 w;
            ASSERT_EQ_INT(tq4_new(&w, b, N, K, G, perm), 0);
            dbuf dx, dy, dbias;
            ASSERT_EQ_INT(dbuf_new(&dx, b, sizeof(float) * T * K, x), 0);
            ASSERT_EQ_INT(dbuf_new(&dy, b, sizeof(float) * T * N, NULL), 0);
            ASSERT_EQ_INT(dbuf_new(&dbias, b, sizeof(float) * N, bias), 0);
            vrt_err err = {0};
            ASSERT_OK(vrt_op_matmul(b, dy.p, dx.p, &w.dev, hb ? dbias.p : NULL, T, &err), &err);
            float *got = malloc(sizeof(float) * T * N);
            double *ref = malloc(sizeof(double) * T * N);
            int g = dbuf_read(&dy, got, "matmul y") == 0;
            g &= dbuf_read(&dx, NULL, "matmul x") == 0 && tq4_unchanged(&w);
            vrt_ref_matmul(ref, x, &w.host, hb ? bias : NULL, T);
            /* cuda takes more than 4 tokens through an fp16 dequantized
             * weight and fp16-rounded activations (cuBLAS): 2^-11 relative
             * per factor, so 3e-3 there, as for f16 matmul. */
            double t = strcmp(b->name, "cuda") == 0 && T > 4 ? 3e-3 : tol;
            failed += !report(b, "matmul", shape, norm_err(got, ref, (size_t)T * N), t, g);
            free(x);
            free(bias);
            free(got);
            free(ref);
            dbuf_free(&dx);
            dbuf_free(&dy);
            dbuf_free(&dbias);
            tq4_free(&w);
        }
    close_backends(bs, nb);
    ASSERT_EQ_INT(failed, 0);
}

/* A q4 descriptor that does not describe the weight is an error, not a crash. */
TEST(ops_matmul_q4_errors)
{
    vrt_backend *bs[MAX_BACKENDS];
    int nb = open_backends(bs);
    rng_seed(15);
    for (int bi = 0; bi < nb; bi++) {
        vrt_backend *b = bs[bi];
        if (!b->supports_op(b, VRT_OP_MATMUL, VRT_DT_Q4))
            continue;
        tq4 w;
        ASSERT_EQ_INT(tq4_new(&w, b, 8, 96, 32, 0), 0);
        dbuf dx, dy;
        ASSERT_EQ_INT(dbuf_new(&dx, b, 96 * 4, NULL), 0);
        ASSERT_EQ_INT(dbuf_new(&dy, b, 8 * 4, NULL), 0);
        vrt_err err = {0};
        vrt_weight bad = w.dev;
        bad.q4 = NULL;
        ASSERT_EQ_INT(vrt_op_matmul(b, dy.p, dx.p, &bad, NULL, 1, &err), VRT_EINVAL);
        ASSERT_CONTAINS(err.msg, "descriptor");
        vrt_q4 q = w.dq;
        q.n_groups = 2;
        bad.q4 = &q;
        ASSERT_EQ_INT(vrt_op_matmul(b, dy.p, dx.p, &bad, NULL, 1, &err), VRT_EINVAL);
        ASSERT_CONTAINS(err.msg, "expected ceil(96 / 32) = 3");
        q = w.dq;
        q.group_size = 48;
        ASSERT_EQ_INT(vrt_op_matmul(b, dy.p, dx.p, &bad, NULL, 1, &err), VRT_EINVAL);
        ASSERT_CONTAINS(err.msg, "group_size 48");
        q = w.dq;
        q.scales = NULL;
        ASSERT_EQ_INT(vrt_op_matmul(b, dy.p, dx.p, &bad, NULL, 1, &err), VRT_EINVAL);
        /* q4 is a matmul dtype only */
        ASSERT(!b->supports_op(b, VRT_OP_RMSNORM, VRT_DT_Q4));
        ASSERT_EQ_INT(vrt_op_rmsnorm(b, dy.p, dy.p, &w.dev, 1, 8, 1e-5f, 0, &err),
                      VRT_EUNSUPPORTED);
        dbuf_free(&dx);
        dbuf_free(&dy);
        tq4_free(&w);
    }
    close_backends(bs, nb);
}

/* ---- element-wise ---- */

TEST(ops_elementwise)
{
    /* expf/erff/tanhf are within a few f32 ulps, plus one or two products:
     * relative to max|ref| that is < 1e-6; 1e-5 leaves room for libm
     * differences. */
    const double tol = 1e-5;
    static const int64_t sizes[] = {1, 37, 1000, 100003};
    /* 0 silu_mul, 1 gelu_mul erf, 2 gelu_mul tanh, 3 gelu erf, 4 gelu tanh,
     * 5 add, 6 add in place (out = a) */
    static const char *names[] = {"silu_mul",  "gelu_mul", "gelu_mul tanh", "gelu",
                                  "gelu tanh", "add",      "add in-place"};
    static const vrt_op ops[] = {VRT_OP_SILU_MUL, VRT_OP_GELU_MUL, VRT_OP_GELU_MUL, VRT_OP_GELU,
                                 VRT_OP_GELU,     VRT_OP_ADD,      VRT_OP_ADD};
    vrt_backend *bs[MAX_BACKENDS];
    int nb = open_backends(bs), failed = 0;
    for (int bi = 0; bi < nb; bi++) {
        /* Every backend gets the same inputs: with n = 1 the one output can
         * fall in a GELU tail (|ref| ~ 1e-8, below norm_err's floor) where
         * every f32 formula cancels, so a backend must not get a draw the
         * others did not. */
        rng_seed(5);
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++)
            for (int k = 0; k < 7; k++) {
                vrt_backend *b = bs[bi];
                int64_t n = sizes[si];
                char shape[128];
                snprintf(shape, sizeof shape, "n=%lld", (long long)n);
                if (skip(b, ops[k], VRT_DT_F32, shape))
                    continue;
                float *a = rand_f32((size_t)n, -6, 6), *c = rand_f32((size_t)n, -3, 3);
                dbuf da, dc, dout;
                ASSERT_EQ_INT(dbuf_new(&da, b, sizeof(float) * n, a), 0);
                ASSERT_EQ_INT(dbuf_new(&dc, b, sizeof(float) * n, c), 0);
                ASSERT_EQ_INT(dbuf_new(&dout, b, sizeof(float) * n, NULL), 0);
                double *ref = malloc(sizeof(double) * n);
                float *got = malloc(sizeof(float) * n);
                vrt_err err = {0};
                int rc = 0;
                dbuf *res = &dout;
                switch (k) {
                case 0:
                    rc = vrt_op_silu_mul(b, dout.p, da.p, dc.p, n, &err);
                    vrt_ref_silu_mul(ref, a, c, n);
                    break;
                case 1:
                case 2:
                    rc = vrt_op_gelu_mul(b, dout.p, da.p, dc.p, n, k == 2, &err);
                    vrt_ref_gelu_mul(ref, a, c, n, k == 2);
                    break;
                case 3:
                case 4:
                    rc = vrt_op_gelu(b, dout.p, da.p, n, k == 4, &err);
                    vrt_ref_gelu(ref, a, n, k == 4);
                    break;
                case 5:
                    rc = vrt_op_add(b, dout.p, da.p, dc.p, n, &err);
                    vrt_ref_add(ref, a, c, n);
                    break;
                default:
                    rc = vrt_op_add(b, da.p, da.p, dc.p, n, &err);
                    vrt_ref_add(ref, a, c, n);
                    res = &da;
                }
                ASSERT_OK(rc, &err);
                int g = dbuf_read(res, got, "elementwise out") == 0;
                g &= dbuf_read(&dc, NULL, "elementwise c") == 0;
                failed += !report(b, names[k], shape, norm_err(got, ref, (size_t)n), tol, g);
                free(a);
                free(c);
                free(ref);
                free(got);
                dbuf_free(&da);
                dbuf_free(&dc);
                dbuf_free(&dout);
            }
    }
    close_backends(bs, nb);
    ASSERT_EQ_INT(failed, 0);
}

/* ---- moe routing ---- */

TEST(ops_moe_topk)
{
    /* Indices must match exactly. Weights: f32 softmax over E <= 64 terms,
     * relative error <= ~E·2^-24 = 4e-6 in the sum; 1e-5. */
    const double tol = 1e-5;
    static const int shapes[][4] = {{1, 8, 2, 1},
                                    {37, 8, 2, 0},
                                    {37, 60, 4, 1},
                                    {19, 64, 1, 0},
                                    {5, 16, 16, 1}}; /* T, E, k, renorm */
    vrt_backend *bs[MAX_BACKENDS];
    int nb = open_backends(bs), failed = 0;
    rng_seed(6);
    for (int bi = 0; bi < nb; bi++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (int ties = 0; ties < 2; ties++) {
                vrt_backend *b = bs[bi];
                int T = shapes[si][0], E = shapes[si][1], k = shapes[si][2], rn = shapes[si][3];
                char shape[128];
                snprintf(shape, sizeof shape, "T=%d E=%d k=%d%s%s", T, E, k, rn ? " renorm" : "",
                         ties ? " with ties" : "");
                if (skip(b, VRT_OP_MOE_TOPK, VRT_DT_F32, shape))
                    continue;
                float *x = rand_f32((size_t)T * E, -4, 4);
                if (ties) /* few distinct values: many exact ties */
                    for (int i = 0; i < T * E; i++)
                        x[i] = (float)rng_int(4);
                dbuf dx, di, dw;
                ASSERT_EQ_INT(dbuf_new(&dx, b, sizeof(float) * T * E, x), 0);
                ASSERT_EQ_INT(dbuf_new(&di, b, sizeof(int32_t) * T * k, NULL), 0);
                ASSERT_EQ_INT(dbuf_new(&dw, b, sizeof(float) * T * k, NULL), 0);
                vrt_err err = {0};
                ASSERT_OK(vrt_op_moe_topk(b, dx.p, T, E, k, rn, di.p, dw.p, &err), &err);
                int32_t *gi = malloc(sizeof(int32_t) * T * k),
                        *ri = malloc(sizeof(int32_t) * T * k);
                float *gw = malloc(sizeof(float) * T * k);
                double *rw = malloc(sizeof(double) * T * k);
                int g = dbuf_read(&di, gi, "moe idx") == 0;
                g &= dbuf_read(&dw, gw, "moe weights") == 0;
                vrt_ref_moe_topk(x, T, E, k, rn, ri, rw);
                int mism = 0;
                for (int i = 0; i < T * k; i++)
                    if (gi[i] != ri[i] && mism++ < 3)
                        fprintf(stderr, "  moe idx[%d]: got %d, reference %d\n", i, gi[i], ri[i]);
                double e = norm_err(gw, rw, (size_t)T * k);
                failed += !report(b, "moe_topk", shape, mism ? INFINITY : e, tol, g);
                free(x);
                free(gi);
                free(ri);
                free(gw);
                free(rw);
                dbuf_free(&dx);
                dbuf_free(&di);
                dbuf_free(&dw);
            }
    close_backends(bs, nb);
    ASSERT_EQ_INT(failed, 0);
}

/* ---- kv_store ---- */

TEST(ops_kv_store)
{
    /* Bit-exact: both sides round the same f32 values to fp16 (round to
     * nearest even), by different code. */
    static const int shapes[][4] = {{37, 2, 64, 16}, {1, 8, 80, 8}, {19, 4, 80, 32}};
    vrt_backend *bs[MAX_BACKENDS];
    int nb = open_backends(bs), failed = 0;
    rng_seed(7);
    for (int bi = 0; bi < nb; bi++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            vrt_backend *b = bs[bi];
            int T = shapes[si][0], KVH = shapes[si][1], hd = shapes[si][2], bsz = shapes[si][3];
            int num_blocks = (T + bsz - 1) / bsz + 3;
            int64_t num_slots = (int64_t)num_blocks * bsz;
            char shape[128];
            snprintf(shape, sizeof shape, "T=%d kv_heads=%d hd=%d slots=%lld", T, KVH, hd,
                     (long long)num_slots);
            if (skip(b, VRT_OP_KV_STORE, VRT_DT_F32, shape))
                continue;
            size_t row = (size_t)KVH * hd, csz = (size_t)num_slots * row;
            float *k = rand_f32(T * row, -3, 3), *v = rand_f32(T * row, -3, 3);
            /* Distinct random slots (a shuffled prefix), every 5th token skipped. */
            int32_t *perm = malloc(sizeof(int32_t) * num_slots), slots[64];
            for (int64_t i = 0; i < num_slots; i++)
                perm[i] = (int32_t)i;
            for (int64_t i = num_slots - 1; i > 0; i--) {
                int j = rng_int((int)i + 1);
                int32_t tmp = perm[i];
                perm[i] = perm[j];
                perm[j] = tmp;
            }
            for (int t = 0; t < T; t++)
                slots[t] = t % 5 == 3 ? -1 : perm[t];
            slots[0] = (int32_t)num_slots - 1; /* the last slot */
            uint16_t *kc = malloc(csz * 2), *vc = malloc(csz * 2);
            for (size_t i = 0; i < csz; i++)
                kc[i] = vc[i] = (uint16_t)rng_u64();
            dbuf dk, dv, ds, dkc, dvc;
            ASSERT_EQ_INT(dbuf_new(&dk, b, T * row * 4, k), 0);
            ASSERT_EQ_INT(dbuf_new(&dv, b, T * row * 4, v), 0);
            ASSERT_EQ_INT(dbuf_new(&ds, b, T * 4, slots), 0);
            ASSERT_EQ_INT(dbuf_new(&dkc, b, csz * 2, kc), 0);
            ASSERT_EQ_INT(dbuf_new(&dvc, b, csz * 2, vc), 0);
            vrt_err err = {0};
            ASSERT_OK(
                vrt_op_kv_store(b, dkc.p, dvc.p, dk.p, dv.p, ds.p, T, KVH, hd, num_slots, &err),
                &err);
            uint16_t *gk = malloc(csz * 2), *gv = malloc(csz * 2);
            int g = dbuf_read(&dkc, gk, "k_cache") == 0;
            g &= dbuf_read(&dvc, gv, "v_cache") == 0;
            vrt_ref_kv_store(kc, vc, k, v, slots, T, KVH, hd);
            size_t mism = 0;
            for (size_t i = 0; i < csz; i++)
                mism += (gk[i] != kc[i]) + (gv[i] != vc[i]);
            failed += !report(b, "kv_store", shape, (double)mism, 0, g);
            free(k);
            free(v);
            free(perm);
            free(kc);
            free(vc);
            free(gk);
            free(gv);
            dbuf_free(&dk);
            dbuf_free(&dv);
            dbuf_free(&ds);
            dbuf_free(&dkc);
            dbuf_free(&dvc);
        }
    close_backends(bs, nb);
    ASSERT_EQ_INT(failed, 0);
}

/* ---- attention ---- */

typedef struct {
    const char *name;
    int n_seqs;
    int q_len[4], ctx[4];
    int block_size, window, H, KVH, hd;
} attn_case;

static const attn_case attn_cases[] = {
    /* one prefilling sequence of 19 tokens and two decodes (context 40 and 1) */
    {"mixed GQA", 3, {19, 1, 1}, {19, 40, 1}, 16, 0, 8, 2, 64},
    {"mixed MHA", 3, {19, 1, 1}, {19, 40, 1}, 8, 0, 4, 4, 80},
    {"mixed chunked", 3, {19, 1, 1}, {50, 40, 1}, 32, 0, 8, 2, 80},
    {"mixed window=7", 3, {19, 1, 1}, {19, 40, 1}, 8, 7, 8, 2, 64},
    {"chunked window=20", 2, {19, 1}, {70, 33}, 16, 20, 4, 4, 64},
    {"prefill T=37", 1, {37}, {37}, 16, 0, 4, 4, 64},
    {"prefill T=1", 1, {1}, {1}, 8, 0, 8, 2, 80},
    {"decode x4 GQA", 4, {1, 1, 1, 1}, {40, 1, 77, 16}, 16, 0, 8, 2, 64},
    {"decode x3 window=10", 3, {1, 1, 1}, {40, 9, 33}, 8, 10, 4, 4, 80},
    {"decode x2 bs=32", 2, {1, 1}, {65, 2}, 32, 0, 8, 2, 80},
    /* head_dim 64/128/256: the split-context decode kernel (attn_decode.cu)
     * on cuda and cuda-emu; long contexts span many blocks and splits */
    {"decode long GQA=4 hd=128", 3, {1, 1, 1}, {700, 1, 333}, 16, 0, 16, 4, 128},
    {"decode GQA=8 window=100", 2, {1, 1}, {300, 150}, 8, 100, 8, 1, 128},
    {"decode MHA hd=64 1500", 1, {1}, {1500}, 32, 0, 2, 2, 64},
    {"decode GQA=2 hd=256", 2, {1, 1}, {90, 5}, 16, 0, 4, 2, 256},
    {"decode GQA=3 hd=64", 2, {1, 1}, {50, 129}, 16, 0, 6, 2, 64},
    /* head_dim with an 8-wide step after the 16-wide ones, and with a
     * scalar tail (the cpu avx2 kernel, attn_avx2.c) */
    {"decode hd=72", 2, {1, 1}, {45, 3}, 16, 0, 4, 2, 72},
    {"mixed hd=20", 2, {5, 1}, {5, 30}, 8, 0, 4, 2, 20},
};

/* Runs one case on b with op (prefill or decode); returns 1 if it passed. */
static int attn_run(vrt_backend *b, const attn_case *c, int decode)
{
    /* Both sides read the same fp16 K/V from the cache (written by the
     * reference's own rounding), so fp16 rounding does not count; what
     * remains is f32 dot products over head_dim, expf, and the streaming
     * softmax's rescaling over <= 77 keys: ~1e-6 of max|out|. Unused cache
     * slots hold NaN, so reading a masked or foreign key fails the case. */
    double tol = 1e-5;
    const int bs = c->block_size, H = c->H, KVH = c->KVH, hd = c->hd;
    /* Prefill on tensor cores (cuda, cuda-emu; head_dim a multiple of 16
     * up to 128) multiplies fp16 Q·scale and fp16 probabilities: 2^-11
     * relative each, a few 1e-4 of max|out|; 4e-3 still fails any wrong
     * key, mask or block (errors ~1). */
    if (!decode && (strcmp(b->name, "cuda") == 0 || strcmp(b->name, "cuda-emu") == 0) &&
        hd % 16 == 0 && hd <= 128)
        tol = 4e-3;
    int q_start[5] = {0}, T, maxb = 0, used = 0;
    for (int s = 0; s < c->n_seqs; s++) {
        q_start[s + 1] = q_start[s] + c->q_len[s];
        int nbk = (c->ctx[s] + bs - 1) / bs;
        maxb = nbk > maxb ? nbk : maxb;
        used += nbk;
    }
    T = q_start[c->n_seqs];
    maxb += 1; /* a spare entry, -1: must never be read */
    int num_blocks = used + 5;
    /* Non-contiguous block tables: a shuffled list of physical blocks. */
    int32_t *perm = malloc(sizeof(int32_t) * num_blocks);
    for (int i = 0; i < num_blocks; i++)
        perm[i] = i;
    for (int i = num_blocks - 1; i > 0; i--) {
        int j = rng_int(i + 1), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    int32_t *table = malloc(sizeof(int32_t) * c->n_seqs * maxb);
    for (int i = 0, u = 0; i < c->n_seqs * maxb; i++) {
        int s = i / maxb, j = i % maxb;
        table[i] = j < (c->ctx[s] + bs - 1) / bs ? perm[u++] : -1;
    }
    /* K/V of every context position, through the reference's kv_store;
     * everything else NaN. */
    size_t row = (size_t)KVH * hd, csz = (size_t)num_blocks * bs * row;
    uint16_t *kc = malloc(csz * 2), *vc = malloc(csz * 2);
    for (size_t i = 0; i < csz; i++)
        kc[i] = vc[i] = 0x7e00;
    for (int s = 0; s < c->n_seqs; s++)
        for (int k = 0; k < c->ctx[s]; k++) {
            int32_t slot = table[s * maxb + k / bs] * bs + k % bs;
            float *kv = rand_f32(row, -2, 2), *vv = rand_f32(row, -2, 2);
            vrt_ref_kv_store(kc, vc, kv, vv, &slot, 1, KVH, hd);
            free(kv);
            free(vv);
        }
    size_t n = (size_t)T * H * hd;
    float *q = rand_f32(n, -2, 2);
    dbuf dq, dout, dkc, dvc, dqs, dctx, dtab;
    int ok = dbuf_new(&dq, b, n * 4, q) == 0 && dbuf_new(&dout, b, n * 4, NULL) == 0 &&
             dbuf_new(&dkc, b, csz * 2, kc) == 0 && dbuf_new(&dvc, b, csz * 2, vc) == 0 &&
             dbuf_new(&dqs, b, sizeof(int32_t) * (c->n_seqs + 1), q_start) == 0 &&
             dbuf_new(&dctx, b, sizeof(int32_t) * c->n_seqs, c->ctx) == 0 &&
             dbuf_new(&dtab, b, sizeof(int32_t) * c->n_seqs * maxb, table) == 0;
    vrt_attn_batch dev = {
        .n_seqs = c->n_seqs,
        .q_start = dqs.p,
        .ctx_len = dctx.p,
        .block_table = dtab.p,
        .max_blocks_per_seq = maxb,
        .block_size = bs,
        .sliding_window = c->window,
        .scale = 1.0f / sqrtf((float)hd),
        .n_heads = H,
        .n_kv_heads = KVH,
        .head_dim = hd,
        .num_blocks = num_blocks,
    };
    vrt_attn_batch host = dev;
    host.q_start = q_start;
    host.ctx_len = c->ctx;
    host.block_table = table;
    char shape[160];
    snprintf(shape, sizeof shape, "%s T=%d heads=%d:%d hd=%d bs=%d", c->name, T, H, KVH, hd, bs);
    vrt_err err = {0};
    int rc = !ok      ? -1
             : decode ? vrt_op_attention_decode(b, dout.p, dq.p, dkc.p, dvc.p, &dev, &err)
                      : vrt_op_attention_prefill(b, dout.p, dq.p, dkc.p, dvc.p, &dev, &err);
    double e = INFINITY;
    int g = 0;
    if (rc == 0) {
        float *got = malloc(n * 4);
        double *ref = malloc(n * sizeof(double));
        g = dbuf_read(&dout, got, "attention out") == 0;
        g &= dbuf_read(&dkc, NULL, "k_cache") == 0 && dbuf_read(&dvc, NULL, "v_cache") == 0;
        vrt_ref_attention(ref, q, kc, vc, &host);
        e = norm_err(got, ref, n);
        free(got);
        free(ref);
    } else {
        fprintf(stderr, "  %s returned %d: %s\n", decode ? "decode" : "prefill", rc, err.msg);
    }
    int pass = report(b, decode ? "attention_decode" : "attention_prefill", shape, e, tol, g);
    dbuf_free(&dq);
    dbuf_free(&dout);
    dbuf_free(&dkc);
    dbuf_free(&dvc);
    dbuf_free(&dqs);
    dbuf_free(&dctx);
    dbuf_free(&dtab);
    free(perm);
    free(table);
    free(kc);
    free(vc);
    free(q);
    return pass;
}

TEST(ops_attention)
{
    vrt_backend *bs[MAX_BACKENDS];
    int nb = open_backends(bs), failed = 0;
    rng_seed(8);
    for (int bi = 0; bi < nb; bi++)
        for (size_t ci = 0; ci < sizeof attn_cases / sizeof attn_cases[0]; ci++) {
            const attn_case *c = &attn_cases[ci];
            int all_decode = 1;
            for (int s = 0; s < c->n_seqs; s++)
                all_decode &= c->q_len[s] == 1;
            for (int decode = 0; decode <= all_decode; decode++) {
                vrt_op op = decode ? VRT_OP_ATTN_DECODE : VRT_OP_ATTN_PREFILL;
                if (skip(bs[bi], op, VRT_DT_F32, c->name))
                    continue;
                failed += !attn_run(bs[bi], c, decode);
            }
        }
    close_backends(bs, nb);
    ASSERT_EQ_INT(failed, 0);
}

/* ---- error paths ---- */

TEST(ops_errors)
{
    vrt_backend *bs[MAX_BACKENDS];
    int nb = open_backends(bs);
    ASSERT(nb > 0);
    for (int bi = 0; bi < nb; bi++) {
        vrt_backend *b = bs[bi];
        vrt_err err = {0};
        rng_seed(9);
        /* embed: token id out of range, both ends */
        tweight tab;
        ASSERT_EQ_INT(tweight_new(&tab, b, VRT_DT_F32, 10, 8, -1, 1), 0);
        int32_t ids[3] = {1, 10, 2};
        dbuf did, dout;
        ASSERT_EQ_INT(dbuf_new(&did, b, sizeof ids, ids), 0);
        ASSERT_EQ_INT(dbuf_new(&dout, b, 3 * 8 * 4, NULL), 0);
        ASSERT_EQ_INT(vrt_op_embed(b, dout.p, &tab.dev, did.p, 3, &err), VRT_ERANGE);
        ASSERT_CONTAINS(err.msg, "token id 10");
        ASSERT_CONTAINS(err.msg, "10 rows");
        ids[1] = -1;
        ASSERT_OK(b->copy_to_device(b, did.p, ids, sizeof ids, &err), &err);
        ASSERT_EQ_INT(vrt_op_embed(b, dout.p, &tab.dev, did.p, 3, &err), VRT_ERANGE);
        /* matmul: unknown dtype, and q4 where unsupported */
        vrt_weight bad = tab.dev;
        bad.dtype = 7;
        err = (vrt_err){0};
        int rc = vrt_op_matmul(b, dout.p, dout.p, &bad, NULL, 1, &err);
        ASSERT(rc == VRT_EINVAL || rc == VRT_EUNSUPPORTED);
        ASSERT_CONTAINS(err.msg, "dtype");
        ASSERT(!b->supports_op(b, VRT_OP_MATMUL, 7));
        if (!b->supports_op(b, VRT_OP_MATMUL, VRT_DT_Q4)) {
            bad.dtype = VRT_DT_Q4;
            ASSERT_EQ_INT(vrt_op_matmul(b, dout.p, dout.p, &bad, NULL, 1, &err), VRT_EUNSUPPORTED);
            ASSERT_CONTAINS(err.msg, "q4");
        }
        /* rmsnorm: weight of the wrong size */
        ASSERT_EQ_INT(vrt_op_rmsnorm(b, dout.p, dout.p, &tab.dev, 1, 8, 1e-5f, 0, &err),
                      VRT_EINVAL);
        ASSERT_CONTAINS(err.msg, "expected 8");
        /* moe: k > E (an op without a kernel says so instead) */
        ASSERT_EQ_INT(vrt_op_moe_topk(b, dout.p, 1, 4, 5, 1, did.p, dout.p, &err),
                      b->supports_op(b, VRT_OP_MOE_TOPK, VRT_DT_F32) ? VRT_ERANGE
                                                                     : VRT_EUNSUPPORTED);
        /* rope: odd rot_dim */
        ASSERT_EQ_INT(vrt_op_rope(b, dout.p, did.p, 1, 1, 8, 3, 0, dout.p, &err), VRT_EINVAL);
        dbuf_free(&did);
        dbuf_free(&dout);
        tweight_free(&tab);

        /* kv_store: a slot past the cache, nothing written */
        enum { KVH = 2, HD = 8, SLOTS = 16 };
        uint16_t cache[SLOTS * KVH * HD], back[SLOTS * KVH * HD];
        for (int i = 0; i < SLOTS * KVH * HD; i++)
            cache[i] = 0x1234;
        float kv[2 * KVH * HD] = {0};
        int32_t slots[2] = {3, SLOTS};
        dbuf dk, dv, dkv, ds;
        ASSERT_EQ_INT(dbuf_new(&dk, b, sizeof cache, cache), 0);
        ASSERT_EQ_INT(dbuf_new(&dv, b, sizeof cache, cache), 0);
        ASSERT_EQ_INT(dbuf_new(&dkv, b, sizeof kv, kv), 0);
        ASSERT_EQ_INT(dbuf_new(&ds, b, sizeof slots, slots), 0);
        ASSERT_EQ_INT(vrt_op_kv_store(b, dk.p, dv.p, dkv.p, dkv.p, ds.p, 2, KVH, HD, SLOTS, &err),
                      VRT_ERANGE);
        ASSERT_CONTAINS(err.msg, "slot 16");
        ASSERT_EQ_INT(dbuf_read(&dk, back, "k_cache"), 0);
        ASSERT(memcmp(back, cache, sizeof cache) == 0);

        /* attention: decode with q_len 2; a block id past num_blocks */
        int32_t q_start[3] = {0, 2, 3}, ctx[2] = {5, 3}, table[2][2] = {{0, -1}, {1, -1}};
        dbuf dqs, dctx, dtab, dq;
        ASSERT_EQ_INT(dbuf_new(&dqs, b, sizeof q_start, q_start), 0);
        ASSERT_EQ_INT(dbuf_new(&dctx, b, sizeof ctx, ctx), 0);
        ASSERT_EQ_INT(dbuf_new(&dtab, b, sizeof table, table), 0);
        ASSERT_EQ_INT(dbuf_new(&dq, b, 3 * 2 * HD * 4, NULL), 0);
        vrt_attn_batch a = {.n_seqs = 2,
                            .q_start = dqs.p,
                            .ctx_len = dctx.p,
                            .block_table = dtab.p,
                            .max_blocks_per_seq = 2,
                            .block_size = 8,
                            .scale = 0.5f,
                            .n_heads = 2,
                            .n_kv_heads = 2,
                            .head_dim = HD,
                            .num_blocks = 2};
        ASSERT_EQ_INT(vrt_op_attention_decode(b, dq.p, dq.p, dk.p, dv.p, &a, &err), VRT_EINVAL);
        ASSERT_CONTAINS(err.msg, "2 query tokens");
        table[1][0] = 2; /* num_blocks is 2 */
        ASSERT_OK(b->copy_to_device(b, dtab.p, table, sizeof table, &err), &err);
        ASSERT_EQ_INT(vrt_op_attention_prefill(b, dq.p, dq.p, dk.p, dv.p, &a, &err), VRT_ERANGE);
        ASSERT_CONTAINS(err.msg, "physical block 2");
        a.n_kv_heads = 3; /* does not divide n_heads */
        ASSERT_EQ_INT(vrt_op_attention_prefill(b, dq.p, dq.p, dk.p, dv.p, &a, &err), VRT_EINVAL);
        dbuf_free(&dk);
        dbuf_free(&dv);
        dbuf_free(&dkv);
        dbuf_free(&ds);
        dbuf_free(&dqs);
        dbuf_free(&dctx);
        dbuf_free(&dtab);
        dbuf_free(&dq);
    }
    close_backends(bs, nb);
}

/* V100RT_CPU_ISA picks the cpu kernels' level: each supported level is
 * taken and named by device_name, an absent one and an unknown value are
 * errors naming the variable. */
TEST(cpu_isa_env)
{
    vrt_backend *b = NULL;
    vrt_err err = {0};
    const int best = vrt__cpu_isa_best();
    ASSERT_OK(cpu_at_level(&b, "generic", &err), &err);
    ASSERT(b->device_name != NULL);
    ASSERT_CONTAINS(b->device_name(b), "kernels generic");
    ASSERT_CONTAINS(b->device_name(b), "2 threads");
    vrt_backend_destroy(b);
    ASSERT_OK(cpu_at_level(&b, NULL, &err), &err);
    ASSERT_CONTAINS(b->device_name(b),
                    best == VRT_CPU_ISA_AVX2 ? "kernels avx2" : "kernels generic");
    vrt_backend_destroy(b);
    ASSERT_OK(cpu_at_level(&b, "auto", &err), &err);
    ASSERT_CONTAINS(b->device_name(b),
                    best == VRT_CPU_ISA_AVX2 ? "kernels avx2" : "kernels generic");
    vrt_backend_destroy(b);
    if (best == VRT_CPU_ISA_AVX2) {
        ASSERT_OK(cpu_at_level(&b, "avx2", &err), &err);
        ASSERT_CONTAINS(b->device_name(b), "kernels avx2");
        vrt_backend_destroy(b);
    } else {
        ASSERT_EQ_INT(cpu_at_level(&b, "avx2", &err), VRT_EUNSUPPORTED);
        ASSERT_CONTAINS(err.msg, "V100RT_CPU_ISA=avx2");
    }
    ASSERT_EQ_INT(cpu_at_level(&b, "avx512", &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "V100RT_CPU_ISA");
    ASSERT_CONTAINS(err.msg, "generic");
}

TEST(backend_registry)
{
    vrt_backend *b = NULL;
    vrt_err err = {0};
    ASSERT_EQ_INT(vrt_backend_create(&b, "tpu", 0, &err), VRT_EINVAL);
    ASSERT(b == NULL);
    ASSERT_CONTAINS(err.msg, "tpu");
    ASSERT_CONTAINS(err.msg, vrt_backend_list());
    /* cuda: listed when libv100rt-cuda.so was built; creating it fails
     * with what to do where it cannot load or finds no GPU. */
    if (!strstr(vrt_backend_list(), ",cuda")) {
        ASSERT_EQ_INT(vrt_backend_create(&b, "cuda", 0, &err), VRT_EUNSUPPORTED);
        ASSERT_CONTAINS(err.msg, "libv100rt-cuda.so not found");
    } else if (vrt_backend_create(&b, "cuda", 0, &err) == 0) {
        ASSERT_EQ_STR(b->name, "cuda");
        ASSERT(!b->host_memory);
        ASSERT(b->mem_info != NULL);
        vrt_backend_destroy(b);
    } else {
        ASSERT(b == NULL);
        ASSERT_CONTAINS(err.msg, "device.kind = \"cpu\"");
    }
    ASSERT_OK(vrt_backend_create(&b, "cpu", 0, &err), &err);
    ASSERT_EQ_STR(b->name, "cpu");
    vrt_backend_destroy(b);
    /* cuda-emu: always built in; runs the CUDA kernels on the CPU, with
     * device-style memory (the model copies its weights). */
    ASSERT(strncmp(vrt_backend_list(), "cpu,cuda-emu", 12) == 0);
    ASSERT_OK(vrt_backend_create(&b, "cuda-emu", 1, &err), &err);
    ASSERT_EQ_STR(b->name, "cuda-emu");
    ASSERT(!b->host_memory);
    ASSERT(b->supports_op(b, VRT_OP_RMSNORM, VRT_DT_F16));
    ASSERT(b->supports_op(b, VRT_OP_MATMUL, VRT_DT_Q4)); /* kernels/cuda/matmul_q4.cu */
    ASSERT(!b->supports_op(b, VRT_OP_EMBED, VRT_DT_Q4));
    vrt_backend_destroy(b);
    for (int op = 0; op < VRT_OP_COUNT; op++)
        ASSERT(strcmp(vrt_op_name((vrt_op)op), "unknown") != 0);
    ASSERT_EQ_STR(vrt_op_name(VRT_OP_COUNT), "unknown");
    ASSERT_EQ_STR(vrt_op_name(VRT_OP_ATTN_DECODE), "attention_decode");
}

/* ---- the validation seam: the checked front, the unchecked table ---- */

/* A cpu backend whose ops count their calls: what reaches the table. */
static int spy_calls;
static vrt_backend *spy_inner;
static vrt_attn_batch spy_batch; /* the batch the last attention call got */
static int spy_embed(vrt_backend *b, float *out, const vrt_weight *table, const int32_t *ids, int T,
                     vrt_err *err)
{
    spy_calls++;
    return spy_inner->embed(spy_inner, out, table, ids, T, err);
}
static int spy_kv_store(vrt_backend *b, uint16_t *kc, uint16_t *vc, const float *k, const float *v,
                        const int32_t *slots, int T, int kvh, int hd, int64_t num_slots,
                        vrt_err *err)
{
    spy_calls++;
    return spy_inner->kv_store(spy_inner, kc, vc, k, v, slots, T, kvh, hd, num_slots, err);
}
static int spy_prefill(vrt_backend *b, float *out, const float *q, const uint16_t *kc,
                       const uint16_t *vc, const vrt_attn_batch *a, vrt_err *err)
{
    spy_calls++;
    spy_batch = *a;
    return spy_inner->attention_prefill(spy_inner, out, q, kc, vc, a, err);
}

/* The front refuses bad token ids, slots and batches before the backend
 * is called, and passes good ones through (with n_tokens filled in). */
TEST(ops_front_refuses_before_the_backend)
{
    vrt_err err = {0};
    ASSERT_OK(vrt_backend_create(&spy_inner, "cpu", 1, &err), &err);
    vrt_backend spy = *spy_inner;
    spy.embed = spy_embed;
    spy.kv_store = spy_kv_store;
    spy.attention_prefill = spy_prefill;
    spy_calls = 0;

    float table[4 * 8] = {0}, out[2 * 8 * 2];
    vrt_weight tab = {.data = table, .dtype = VRT_DT_F32, .rows = 4, .cols = 8};
    int32_t ids[2] = {1, 4};
    ASSERT_EQ_INT(vrt_op_embed(&spy, out, &tab, ids, 2, &err), VRT_ERANGE);
    ASSERT_CONTAINS(err.msg, "token id 4 at position 1");
    ids[1] = -1;
    ASSERT_EQ_INT(vrt_op_embed(&spy, out, &tab, ids, 2, &err), VRT_ERANGE);
    vrt_weight w3 = tab;
    w3.dtype = 9; /* unknown dtype */
    ids[1] = 3;
    ASSERT_EQ_INT(vrt_op_embed(&spy, out, &w3, ids, 2, &err), VRT_EINVAL);
    ASSERT_EQ_INT(vrt_op_embed(&spy, out, &tab, ids, -1, &err), VRT_EINVAL); /* bad shape */
    ASSERT_EQ_INT(spy_calls, 0);
    ASSERT_OK(vrt_op_embed(&spy, out, &tab, ids, 0, &err), &err); /* nothing to do */
    ASSERT_EQ_INT(spy_calls, 0);
    ASSERT_OK(vrt_op_embed(&spy, out, &tab, ids, 2, &err), &err);
    ASSERT_EQ_INT(spy_calls, 1);

    enum { KVH = 1, HD = 8, SLOTS = 8 };
    uint16_t kc[SLOTS * KVH * HD] = {0}, vc[SLOTS * KVH * HD] = {0};
    float kv[2 * KVH * HD] = {0};
    int32_t slots[2] = {3, SLOTS};
    spy_calls = 0;
    ASSERT_EQ_INT(vrt_op_kv_store(&spy, kc, vc, kv, kv, slots, 2, KVH, HD, SLOTS, &err),
                  VRT_ERANGE);
    ASSERT_CONTAINS(err.msg, "slot 8 of token 1");
    ASSERT_EQ_INT(vrt_op_kv_store(&spy, kc, vc, kv, kv, slots, 2, 0, HD, SLOTS, &err), VRT_EINVAL);
    ASSERT_EQ_INT(spy_calls, 0);
    slots[1] = -1; /* skipped, not an error */
    ASSERT_OK(vrt_op_kv_store(&spy, kc, vc, kv, kv, slots, 2, KVH, HD, SLOTS, &err), &err);
    ASSERT_EQ_INT(spy_calls, 1);

    float q[3 * HD] = {0}, o[3 * HD];
    int32_t qs[3] = {0, 2, 3}, ctx[2] = {2, 1}, bt[4] = {0, 1, 1, 0};
    vrt_attn_batch a = {.n_seqs = 2,
                        .q_start = qs,
                        .ctx_len = ctx,
                        .block_table = bt,
                        .max_blocks_per_seq = 2,
                        .block_size = 4,
                        .scale = 0.35f,
                        .n_heads = 1,
                        .n_kv_heads = 1,
                        .head_dim = HD,
                        .num_blocks = 2};
    spy_calls = 0;
    bt[2] = 2; /* seq 1 reads block 2 of a 2-block cache */
    ASSERT_EQ_INT(vrt_op_attention_prefill(&spy, o, q, kc, vc, &a, &err), VRT_ERANGE);
    ASSERT_CONTAINS(err.msg, "physical block 2");
    bt[2] = 1;
    ctx[1] = 0; /* fewer cached tokens than new ones */
    ASSERT_EQ_INT(vrt_op_attention_prefill(&spy, o, q, kc, vc, &a, &err), VRT_ERANGE);
    ctx[1] = 1;
    a.n_tokens = 2; /* q_start says 3 */
    ASSERT_EQ_INT(vrt_op_attention_prefill(&spy, o, q, kc, vc, &a, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "n_tokens = 2");
    a.n_heads = 3;
    a.n_kv_heads = 2; /* not a multiple */
    a.n_tokens = 0;
    ASSERT_EQ_INT(vrt_op_attention_prefill(&spy, o, q, kc, vc, &a, &err), VRT_EINVAL);
    ASSERT_EQ_INT(spy_calls, 0);
    a.n_heads = a.n_kv_heads = 1;
    ASSERT_OK(vrt_op_attention_prefill(&spy, o, q, kc, vc, &a, &err), &err);
    ASSERT_EQ_INT(spy_calls, 1);
    ASSERT_EQ_INT(spy_batch.n_tokens, 3); /* filled in for the backend */
    ASSERT_EQ_INT(a.n_tokens, 0);         /* the caller's batch is left alone */
    vrt_backend_destroy(spy_inner);
}

/* The table itself does not check: a negative position, which the front
 * refuses, is simply rotated backwards by the backend's op. */
TEST(ops_table_computes_without_checks)
{
    const char *kinds[] = {"cpu", "cuda-emu"};
    for (int i = 0; i < 2; i++) {
        vrt_err err = {0};
        vrt_backend *b;
        ASSERT_OK(vrt_backend_create(&b, kinds[i], 1, &err), &err);
        float host[4] = {1, 0, 1, 0}, inv[1] = {1.0f};
        int32_t pos[2] = {-1, 1};
        float *x = b->alloc(b, sizeof host, &err), *f = b->alloc(b, sizeof inv, &err);
        int32_t *p = b->alloc(b, sizeof pos, &err);
        ASSERT(x && f && p);
        ASSERT_OK(b->copy_to_device(b, x, host, sizeof host, &err), &err);
        ASSERT_OK(b->copy_to_device(b, f, inv, sizeof inv, &err), &err);
        ASSERT_OK(b->copy_to_device(b, p, pos, sizeof pos, &err), &err);
        ASSERT_EQ_INT(vrt_op_rope(b, x, p, 2, 1, 2, 2, 0, f, &err), VRT_ERANGE);
        ASSERT_CONTAINS(err.msg, "position -1 of token 0 is negative");
        ASSERT_OK(b->rope(b, x, p, 2, 1, 2, 2, 0, f, &err), &err);
        ASSERT_OK(b->sync(b, &err), &err);
        ASSERT_OK(b->copy_to_host(b, host, x, sizeof host, &err), &err);
        /* (1, 0) rotated by -1 and by +1 radian */
        ASSERT_NEAR(host[0], cos(-1.0), 1e-6);
        ASSERT_NEAR(host[1], sin(-1.0), 1e-6);
        ASSERT_NEAR(host[2], cos(1.0), 1e-6);
        ASSERT_NEAR(host[3], sin(1.0), 1e-6);
        b->free(b, x);
        b->free(b, f);
        b->free(b, p);
        vrt_backend_destroy(b);
    }
}

/* The forward pass checks its batch once on the host and calls the table:
 * on a backend whose memory is not host memory (cuda-emu), a step reads
 * nothing back but its logits — the front would read back the index
 * arrays of every embed, rope, kv_store and attention call. */
static int host_copies;
static int (*real_copy_to_host)(vrt_backend *, void *, const void *, size_t, vrt_err *);
static int counting_copy_to_host(vrt_backend *b, void *dst, const void *src, size_t n, vrt_err *err)
{
    host_copies++;
    return real_copy_to_host(b, dst, src, n, err);
}

TEST(ops_forward_calls_the_table_unchecked)
{
    vrt_err err = {0};
    vrt_backend *be;
    ASSERT_OK(vrt_backend_create(&be, "cuda-emu", 1, &err), &err);
    ASSERT(!be->host_memory);
    vrt_model *m;
    vrt_model_load_opts o = {.dtype = "auto", .quiet = 1};
    ASSERT_OK(vrt_model_load(&m, "tests/fixtures/hf/llama-gqa", be, &o, &err), &err);
    vrt_kv_cache kv;
    ASSERT_OK(vrt_kv_cache_init(&kv, m, 4, 4, &err), &err);
    static float out[2 * 4096];
    int32_t toks[3] = {1, 5, 7}, qs[3] = {0, 2, 3}, ctx[2] = {2, 1}, table[2] = {0, 1};
    vrt_batch b = {2, toks, qs, ctx, table, 1, NULL, 0};
    ASSERT(m->cfg.vocab_size <= 4096);
    real_copy_to_host = be->copy_to_host;
    be->copy_to_host = counting_copy_to_host;
    host_copies = 0;
    ASSERT_OK(vrt_model_forward(m, &kv, &b, out, &err), &err);
    ASSERT_EQ_INT(host_copies, 1); /* the logits */
    /* A bad batch is refused by the forward pass's own check. */
    toks[1] = m->cfg.vocab_size;
    ASSERT_EQ_INT(vrt_model_forward(m, &kv, &b, out, &err), VRT_ERANGE);
    be->copy_to_host = real_copy_to_host;
    vrt_kv_cache_free(&kv);
    vrt_model_free(m);
    vrt_backend_destroy(be);
}

/* ---- the cuda plugin's ABI version ---- */

/* build/<variant>/test_plugins/fake_cuda_<which>.so, beside unit_tests. */
static void fake_plugin(char *out, size_t n, const char *which)
{
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[len > 0 ? len : 0] = 0;
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = 0;
    snprintf(out, n, "%s/test_plugins/fake_cuda_%s.so", exe, which);
}

TEST(cuda_plugin_abi_version_checked)
{
    char path[PATH_MAX + 64], want[64];
    void *h, *create, *count;
    vrt_err err = {0};
    snprintf(want, sizeof want, "needs version %d", VRT_BACKEND_ABI_VERSION);

    fake_plugin(path, sizeof path, "ok");
    ASSERT_OK(vrt__cuda_plugin_open(path, &h, &create, &count, &err), &err);
    ASSERT(h && create && count);
    ASSERT_EQ_INT(((int (*)(void))(uintptr_t)count)(), 42);
    dlclose(h);

    fake_plugin(path, sizeof path, "bad");
    ASSERT_EQ_INT(vrt__cuda_plugin_open(path, &h, &create, &count, &err), VRT_EDEVICE);
    ASSERT(!h && !create && !count);
    char have[64];
    snprintf(have, sizeof have, "backend ABI version %d,", VRT_BACKEND_ABI_VERSION + 1);
    ASSERT_CONTAINS(err.msg, have);
    ASSERT_CONTAINS(err.msg, want);
    ASSERT_CONTAINS(err.msg, "fake_cuda_bad.so");
    ASSERT_CONTAINS(err.msg, "rebuild it with `make`");

    fake_plugin(path, sizeof path, "none");
    ASSERT_EQ_INT(vrt__cuda_plugin_open(path, &h, &create, &count, &err), VRT_EDEVICE);
    ASSERT_CONTAINS(err.msg, "no version (built before versioning)");
    ASSERT_CONTAINS(err.msg, want);

    fake_plugin(path, sizeof path, "absent");
    ASSERT_EQ_INT(vrt__cuda_plugin_open(path, &h, &create, &count, &err), VRT_EDEVICE);
    ASSERT_CONTAINS(err.msg, "cannot load");
}
