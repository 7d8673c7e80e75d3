/* test_quant.c — GPTQ/AWQ loading: format fidelity, round trips and corrupt checkpoints.
 *
 * tests/fixtures/quant/ holds small GPTQ and AWQ linears written by
 * make_fixtures.py, a numpy implementation of the published packing
 * (docs/formats.md §3, §4) that shares no code with v100rt, plus the float32
 * weights they dequantize to by the published formulas. v100rt's loader
 * must repack them into the int4 layout and dequantize to the same bits,
 * and the cpu backend's int4 matmul must match x·Wᵀ on them. The packers
 * of quant.c are checked by round trips through a written checkpoint, and
 * every kind of corrupt checkpoint must give an error naming the tensor and
 * what was expected.
 */
#include "test.h"

#include "backend/half.h"
#include "core/err.h"
#include "model/checkpoint.h"
#include "model/quant.h"
#include "model/safetensors.h"
#include "ref/ref.h"

#include <stdlib.h>
#include <unistd.h>

static uint64_t g_rng;

static uint32_t rnd(void)
{
    g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(g_rng >> 33);
}

static const char *tmpdir(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/vrt_q4_XXXXXX");
    if (!mkdtemp(dir))
        return NULL;
    return dir;
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* ---- fidelity: the numpy fixtures ---- */

/* Loads fixture name, checks its dequantization bit for bit against
 * expected.safetensors and the cpu int4 matmul against it; returns the
 * loaded weight's properties through the out parameters. */
static void check_fixture(const char *name, int want_method, int want_perm, int want_format)
{
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "tests/fixtures/quant/%s", name);
    vrt_err err = {0};
    vrt_quant_config qc;
    ASSERT_OK(vrt_quant_config_load(&qc, dir, &err), &err);
    ASSERT_EQ_INT(qc.method, want_method);
    vrt_st_file ef = {0};
    snprintf(path, sizeof path, "%s/expected.safetensors", dir);
    ASSERT_OK(vrt_st_open(&ef, path, &err), &err);
    const vrt_st_tensor *et = vrt_st_find(&ef, "layer.proj.weight");
    ASSERT(et && et->ndim == 2);
    int64_t N = et->shape[0], K = et->shape[1];
    float *want = malloc((size_t)(N * K) * 4), *got = malloc((size_t)(N * K) * 4);
    ASSERT_OK(vrt_st_to_f32(et, want, &err), &err);
    vrt_checkpoint ck;
    ASSERT_OK(vrt_checkpoint_open(&ck, dir, &err), &err);
    vrt_q4_host h;
    ASSERT_OK(vrt_q4_load(&h, &ck, "layer.proj", N, K, &qc, &err), &err);
    ASSERT_EQ_INT(h.perm != NULL, want_perm);
    if (want_format)
        ASSERT_EQ_INT(qc.gptq_detected, want_format);
    vrt_q4_dequant(&h.desc, N, K, got);
    int64_t bad = 0;
    for (int64_t i = 0; i < N * K; i++)
        if (vrt_f32_to_bits(got[i]) != vrt_f32_to_bits(want[i]) && bad++ < 5)
            fprintf(stderr, "  %s: W[%lld][%lld] = %.9g, numpy %.9g\n", name, (long long)(i / K),
                    (long long)(i % K), got[i], want[i]);
    ASSERT_EQ_INT(bad, 0);

    /* The cpu kernel on the repacked weight against x·Wᵀ with numpy's W. */
    vrt_backend *be;
    ASSERT_OK(vrt_backend_create(&be, "cpu", 2, &err), &err);
    const int T = 5;
    float *x = malloc((size_t)(T * K) * 4), *y = malloc((size_t)(T * N) * 4);
    double *ref = malloc((size_t)(T * N) * 8);
    for (int64_t i = 0; i < T * K; i++)
        x[i] = (float)((int)(rnd() % 2001) - 1000) / 1000.0f;
    vrt_weight w = {.data = h.qweight, .dtype = VRT_DT_Q4, .rows = N, .cols = K, .q4 = &h.desc};
    vrt_weight dense = {.data = want, .dtype = VRT_DT_F32, .rows = N, .cols = K};
    for (int t = 1; t <= T; t += T - 1) { /* the GEMV (T = 1) and the tiled (T = 5) paths */
        ASSERT_OK(be->matmul(be, y, x, &w, NULL, t, &err), &err);
        vrt_ref_matmul(ref, x, &dense, NULL, t);
        double md = 0, mr = 0;
        for (int64_t i = 0; i < t * N; i++) {
            md = fmax(md, fabs(y[i] - ref[i]));
            mr = fmax(mr, fabs(ref[i]));
        }
        /* f32 sums of K <= 192 products: ~1e-6 of max|y| */
        if (!(md <= 1e-5 * mr))
            TFAIL("%s: int4 matmul T=%d differs from x·Wᵀ by %g (max |y| %g)", name, t, md, mr);
    }
    free(x);
    free(y);
    free(ref);
    vrt_backend_destroy(be);
    vrt_q4_host_free(&h);
    vrt_checkpoint_close(&ck);
    vrt_st_close(&ef);
    vrt_quant_config_free(&qc);
    free(want);
    free(got);
}

TEST(quant_fixture_gptq_v1_sym)
{
    check_fixture("gptq-v1-sym-g32", VRT_QUANT_GPTQ, 0, VRT_GPTQ_V1);
}
TEST(quant_fixture_gptq_v1_asym_act_order)
{
    check_fixture("gptq-v1-asym-actorder-g32", VRT_QUANT_GPTQ, 1, VRT_GPTQ_V1);
}
TEST(quant_fixture_gptq_act_order_from_config_json)
{
    check_fixture("gptq-v1-sym-actorder-g64", VRT_QUANT_GPTQ, 1, VRT_GPTQ_V1);
}
TEST(quant_fixture_gptq_one_group_zero_bias)
{
    check_fixture("gptq-v1-sym-gall-bias", VRT_QUANT_GPTQ, 0, VRT_GPTQ_V1);
}
TEST(quant_fixture_gptq_v2_asym)
{
    check_fixture("gptq-v2-asym-g32", VRT_QUANT_GPTQ, 0, VRT_GPTQ_V2);
}
TEST(quant_fixture_gptq_mislabelled_v2)
{
    /* checkpoint_format "gptq" but every zero nibble is 8: read as v2 */
    check_fixture("gptq-mislabelled-v2-sym-g32", VRT_QUANT_GPTQ, 0, VRT_GPTQ_V2);
}
TEST(quant_fixture_awq_old_quant_config)
{
    check_fixture("awq-g32", VRT_QUANT_AWQ, 0, 0);
}
TEST(quant_fixture_awq_one_group)
{
    check_fixture("awq-gall", VRT_QUANT_AWQ, 0, 0);
}

/* ---- round trips through the packers ---- */

/* Writes tensors of one linear "l" to dir/model.safetensors. */
static int write_linear(const char *dir, const uint32_t *qw, const int64_t *qw_shape,
                        const uint32_t *qz, const int64_t *qz_shape, const uint16_t *s,
                        const int64_t *s_shape, const int32_t *g_idx, int64_t K, vrt_err *err)
{
    vrt_st_writer w;
    vrt_st_writer_init(&w);
    int rc = vrt_st_writer_add_ref(&w, "l.qweight", VRT_ST_I32, 2, qw_shape, qw,
                                   (uint64_t)(qw_shape[0] * qw_shape[1]) * 4, err);
    if (!rc)
        rc = vrt_st_writer_add_ref(&w, "l.qzeros", VRT_ST_I32, 2, qz_shape, qz,
                                   (uint64_t)(qz_shape[0] * qz_shape[1]) * 4, err);
    if (!rc)
        rc = vrt_st_writer_add_ref(&w, "l.scales", VRT_ST_F16, 2, s_shape, s,
                                   (uint64_t)(s_shape[0] * s_shape[1]) * 2, err);
    if (!rc && g_idx)
        rc = vrt_st_writer_add_ref(&w, "l.g_idx", VRT_ST_I32, 1, &K, g_idx, (uint64_t)K * 4, err);
    char path[300];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!rc)
        rc = vrt_st_writer_write(&w, path, NULL, err);
    vrt_st_writer_free(&w);
    return rc;
}

/* Random q, z, s (and for act_order a g_idx that shuffles groups of G) ->
 * pack in format fmt (GPTQ v1/v2, or AWQ when awq) -> load -> the
 * dequantization must be (q - z) * s exactly, and the repacked nibbles must
 * be q. */
static void round_trip(int awq, int fmt, int64_t N, int64_t K, int G, int act_order)
{
    g_rng = (uint64_t)(N * 131 + K * 7 + G + act_order + fmt * 1000 + awq * 100000);
    int64_t gs = G < 0 ? K : G;
    int ng = (int)((K + gs - 1) / gs);
    uint8_t *q = malloc((size_t)(N * K)), *z = malloc((size_t)(ng * N));
    uint16_t *s = malloc((size_t)(ng * N) * 2);
    int32_t *g_idx = malloc((size_t)K * 4), *order = malloc((size_t)K * 4);
    for (int64_t i = 0; i < N * K; i++)
        q[i] = (uint8_t)(rnd() % 16);
    for (int64_t i = 0; i < ng * N; i++) {
        z[i] = (uint8_t)(fmt == VRT_GPTQ_V1 && !awq ? 1 + rnd() % 15 : rnd() % 16);
        s[i] = vrt_f32_to_f16((float)(1 + rnd() % 1000) * 1e-4f);
    }
    for (int64_t k = 0; k < K; k++)
        order[k] = (int32_t)k;
    for (int64_t k = K - 1; act_order && k > 0; k--) {
        int64_t j = rnd() % (uint64_t)(k + 1);
        int32_t t = order[k];
        order[k] = order[j];
        order[j] = t;
    }
    for (int64_t i = 0; i < K; i++)
        g_idx[order[i]] = (int32_t)(i / gs); /* groups formed in `order` */
    uint32_t *qw = malloc((size_t)(N * K / 8 + N) * 4), *qz = malloc((size_t)(ng * N / 8) * 4);
    vrt_err err = {0};
    int64_t qw_shape[2], qz_shape[2] = {ng, N / 8}, s_shape[2] = {ng, N};
    uint16_t *st = malloc((size_t)(ng * N) * 2); /* scales [ng][N] */
    uint8_t *zt = malloc((size_t)(ng * N));      /* z is [ng][N] already */
    memcpy(zt, z, (size_t)(ng * N));
    memcpy(st, s, (size_t)(ng * N) * 2);
    if (awq) {
        ASSERT_OK(vrt_awq_pack(q, zt, N, K, ng, qw, qz, &err), &err);
        qw_shape[0] = K;
        qw_shape[1] = N / 8;
    } else {
        ASSERT_OK(vrt_gptq_pack(q, zt, N, K, ng, fmt, qw, qz, &err), &err);
        qw_shape[0] = K / 8;
        qw_shape[1] = N;
    }
    const char *dir = tmpdir();
    ASSERT(dir);
    ASSERT_OK(
        write_linear(dir, qw, qw_shape, qz, qz_shape, st, s_shape, awq ? NULL : g_idx, K, &err),
        &err);
    char cfg[256];
    snprintf(cfg, sizeof cfg,
             "{\"quantization_config\": {\"quant_method\": \"%s\", \"bits\": 4, \"group_size\": "
             "%d, \"sym\": false, \"desc_act\": %s, \"checkpoint_format\": \"%s\"}}",
             awq ? "awq" : "gptq", G, act_order ? "true" : "false",
             fmt == VRT_GPTQ_V2 ? "gptq_v2" : "gptq");
    write_text(dir, "config.json", cfg);
    vrt_quant_config qc;
    ASSERT_OK(vrt_quant_config_load(&qc, dir, &err), &err);
    vrt_checkpoint ck;
    ASSERT_OK(vrt_checkpoint_open(&ck, dir, &err), &err);
    vrt_q4_host h;
    ASSERT_OK(vrt_q4_load(&h, &ck, "l", N, K, &qc, &err), &err);
    ASSERT_EQ_INT(h.perm != NULL, act_order && ng > 1);
    float *W = malloc((size_t)(N * K) * 4);
    vrt_q4_dequant(&h.desc, N, K, W);
    int64_t bad = 0, words = vrt_q4_kp(K) / 8;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            int64_t g = g_idx[k];
            float want = ((float)q[n * K + k] - (float)z[g * N + n]) * vrt_f16_to_f32(s[g * N + n]);
            if (vrt_f32_to_bits(W[n * K + k]) != vrt_f32_to_bits(want) && bad++ < 3)
                fprintf(stderr, "  W[%lld][%lld] = %g, want %g\n", (long long)n, (long long)k,
                        W[n * K + k], want);
        }
    /* the nibbles themselves: internal column i holds input row perm[i] */
    for (int64_t n = 0; n < N; n++)
        for (int64_t i = 0; i < K; i++) {
            int64_t k = h.perm ? h.perm[i] : i;
            uint32_t nib = (h.qweight[n * words + i / 8] >> (4 * (i % 8))) & 15u;
            if (nib != q[n * K + k] && bad++ < 6)
                fprintf(stderr, "  nibble [%lld][%lld] = %u, want %u\n", (long long)n, (long long)i,
                        nib, q[n * K + k]);
        }
    ASSERT_EQ_INT(bad, 0);
    free(W);
    vrt_q4_host_free(&h);
    vrt_checkpoint_close(&ck);
    vrt_quant_config_free(&qc);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT_EQ_INT(system(cmd), 0);
    free(q);
    free(z);
    free(s);
    free(st);
    free(zt);
    free(g_idx);
    free(order);
    free(qw);
    free(qz);
}

TEST(quant_round_trip_gptq)
{
    round_trip(0, VRT_GPTQ_V1, 16, 64, 32, 0);
    round_trip(0, VRT_GPTQ_V1, 24, 256, 64, 1);
    round_trip(0, VRT_GPTQ_V2, 8, 200, 32, 1); /* last group partial (200 = 6·32 + 8) */
    round_trip(0, VRT_GPTQ_V2, 40, 72, -1, 1); /* one group: act-order needs no permutation */
    round_trip(0, VRT_GPTQ_V1, 8, 384, 128, 1);
}

TEST(quant_round_trip_awq)
{
    round_trip(1, 0, 16, 64, 32, 0);
    round_trip(1, 0, 48, 256, 128, 0);
    round_trip(1, 0, 8, 37, -1, 0); /* K not a multiple of 8: padded in the int4 layout */
}

TEST(quant_gptq_v1_cannot_store_zero_0)
{
    uint8_t q[64] = {0}, z[8] = {0};
    uint32_t qw[8], qz[1];
    vrt_err err = {0};
    ASSERT_EQ_INT(vrt_gptq_pack(q, z, 8, 8, 1, VRT_GPTQ_V1, qw, qz, &err), VRT_ERANGE);
    ASSERT_CONTAINS(err.msg, "v1");
    ASSERT_OK(vrt_gptq_pack(q, z, 8, 8, 1, VRT_GPTQ_V2, qw, qz, &err), &err);
}

/* ---- configs ---- */

static int parse(const char *json, int gptq_file, int awq_file, vrt_quant_config *qc, vrt_err *err)
{
    int rc = vrt_quant_config_parse(qc, json, "test.json", gptq_file, awq_file, err);
    return rc;
}

TEST(quant_config_keys_and_errors)
{
    vrt_quant_config qc;
    vrt_err err = {0};
    ASSERT_OK(parse("{\"architectures\": [\"LlamaForCausalLM\"]}", 0, 0, &qc, &err), &err);
    ASSERT_EQ_INT(qc.method, VRT_QUANT_NONE);
    /* old AutoGPTQ quantize_config.json: no quant_method, sym default true */
    ASSERT_OK(parse("{\"bits\": 4, \"group_size\": 128, \"desc_act\": true}", 1, 0, &qc, &err),
              &err);
    ASSERT_EQ_INT(qc.method, VRT_QUANT_GPTQ);
    ASSERT(qc.sym && qc.desc_act);
    ASSERT_EQ_INT(qc.gptq_format, VRT_GPTQ_V1);
    vrt_quant_config_free(&qc);
    /* AutoAWQ quant_config.json synonyms */
    ASSERT_OK(parse("{\"zero_point\": true, \"q_group_size\": 64, \"w_bit\": 4, \"version\": "
                    "\"GEMM\"}",
                    0, 1, &qc, &err),
              &err);
    ASSERT_EQ_INT(qc.method, VRT_QUANT_AWQ);
    ASSERT_EQ_INT(qc.group_size, 64);
    vrt_quant_config_free(&qc);
    ASSERT_OK(parse("{\"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 4, "
                    "\"group_size\": 128, \"version\": \"gemm\", \"modules_to_not_convert\": "
                    "[\"gate\"]}}",
                    0, 0, &qc, &err),
              &err);
    ASSERT(vrt_quant_not_converted(&qc, "model.layers.0.block_sparse_moe.gate"));
    ASSERT(!vrt_quant_not_converted(&qc, "model.layers.0.self_attn.q_proj"));
    vrt_quant_config_free(&qc);
    ASSERT_OK(parse("{\"quantization_config\": {\"quant_method\": \"gptq\", \"bits\": 4, "
                    "\"group_size\": -1, \"checkpoint_format\": \"gptq_v2\"}}",
                    0, 0, &qc, &err),
              &err);
    ASSERT_EQ_INT(qc.gptq_format, VRT_GPTQ_V2);
    ASSERT_EQ_INT(qc.group_size, -1);
    vrt_quant_config_free(&qc);

    struct {
        const char *json;
        int gptq_file, awq_file, code;
        const char *msg;
    } bad[] = {
        {"{\"bits\": 8, \"group_size\": 128}", 1, 0, VRT_EUNSUPPORTED, "bits = 8"},
        {"{\"bits\": 4, \"group_size\": 16}", 1, 0, VRT_EUNSUPPORTED, "group_size = 16"},
        {"{\"bits\": 4, \"group_size\": 0}", 1, 0, VRT_ECONFIG, "group_size = 0"},
        {"{\"bits\": 4}", 1, 0, VRT_ECONFIG, "group_size"},
        {"{\"bits\": 4, \"group_size\": 128, \"is_marlin_format\": true}", 1, 0, VRT_EUNSUPPORTED,
         "Marlin"},
        {"{\"bits\": 4, \"group_size\": 128, \"checkpoint_format\": \"marlin\"}", 1, 0,
         VRT_EUNSUPPORTED, "Marlin"},
        {"{\"w_bit\": 4, \"q_group_size\": 128, \"version\": \"GEMV\"}", 0, 1, VRT_EUNSUPPORTED,
         "\"GEMV\""},
        {"{\"w_bit\": 4, \"q_group_size\": 128, \"zero_point\": false}", 0, 1, VRT_EUNSUPPORTED,
         "zero_point"},
        {"{\"quantization_config\": {\"quant_method\": \"bitsandbytes\"}}", 0, 0, VRT_EUNSUPPORTED,
         "\"bitsandbytes\""},
        {"{\"quantization_config\": {\"quant_method\": \"awq\", \"bits\": 4, \"group_size\": 128, "
         "\"modules_to_not_convert\": \"gate\"}}",
         0, 0, VRT_ECONFIG, "modules_to_not_convert"},
        {"{\"bits\": \"4\", \"group_size\": 128}", 1, 0, VRT_ECONFIG, "bits must be an integer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err = (vrt_err){0};
        int rc = parse(bad[i].json, bad[i].gptq_file, bad[i].awq_file, &qc, &err);
        if (rc != bad[i].code)
            TFAIL("case %zu (%s): rc %d, want %d (%s)", i, bad[i].json, rc, bad[i].code, err.msg);
        ASSERT_CONTAINS(err.msg, bad[i].msg);
        ASSERT_CONTAINS(err.msg, "test.json");
        vrt_quant_config_free(&qc);
    }
}

/* ---- corrupt checkpoints ---- */

/* Copies fixture src to a temp dir, leaving out tensor `drop` and
 * replacing tensor `repl` (when not NULL) by the given one; config files
 * are copied (quantize_config.json's text replaced by cfg when given). */
static const char *corrupt(const char *src, const char *drop, const char *repl, int dtype, int ndim,
                           const int64_t *shape, const void *data, uint64_t nbytes, const char *cfg)
{
    const char *dir = tmpdir();
    if (!dir)
        return NULL;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cp tests/fixtures/quant/%s/*.json %s/", src, dir);
    if (system(cmd) != 0)
        return NULL;
    if (cfg)
        write_text(dir, "quantize_config.json", cfg);
    char path[300];
    snprintf(path, sizeof path, "tests/fixtures/quant/%s/model.safetensors", src);
    vrt_st_file f = {0};
    vrt_err err = {0};
    if (vrt_st_open(&f, path, &err))
        return NULL;
    vrt_st_writer w;
    vrt_st_writer_init(&w);
    int rc = 0;
    for (int i = 0; i < f.header.n_tensors && !rc; i++) {
        const vrt_st_tensor *t = &f.header.tensors[i];
        if (drop && strcmp(t->name, drop) == 0)
            continue;
        if (repl && strcmp(t->name, repl) == 0)
            rc = vrt_st_writer_add(&w, t->name, dtype, ndim, shape, data, nbytes, &err);
        else
            rc = vrt_st_writer_add(&w, t->name, t->dtype, t->ndim, t->shape, t->data, t->nbytes,
                                   &err);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!rc)
        rc = vrt_st_writer_write(&w, path, NULL, &err);
    vrt_st_writer_free(&w);
    vrt_st_close(&f);
    if (rc)
        fprintf(stderr, "  corrupt(): %s\n", err.msg);
    return rc ? NULL : dir;
}

/* Loads linear layer.proj [N][K] of dir; returns the error code, message in err. */
static int try_load(const char *dir, int64_t N, int64_t K, vrt_err *err)
{
    vrt_quant_config qc;
    vrt_checkpoint ck;
    int rc = vrt_quant_config_load(&qc, dir, err);
    if (!rc)
        rc = vrt_checkpoint_open(&ck, dir, err);
    if (!rc) {
        vrt_q4_host h;
        rc = vrt_q4_load(&h, &ck, "layer.proj", N, K, &qc, err);
        if (!rc)
            vrt_q4_host_free(&h);
        vrt_checkpoint_close(&ck);
    }
    vrt_quant_config_free(&qc);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        return -999;
    return rc;
}

TEST(quant_corrupt_checkpoints_name_tensor_and_expectation)
{
    /* gptq-v1-asym-actorder-g32: K = 128, N = 24, 4 groups of 32, act-order */
    const char *src = "gptq-v1-asym-actorder-g32";
    vrt_err err = {0};
    const char *d;

    d = corrupt(src, "layer.proj.scales", NULL, 0, 0, NULL, NULL, 0, NULL);
    ASSERT(d);
    ASSERT_EQ_INT(try_load(d, 24, 128, &err), VRT_ENOENT);
    ASSERT_CONTAINS(err.msg, "layer.proj.scales");
    ASSERT_CONTAINS(err.msg, "GPTQ 4-bit linear layer.proj");

    d = corrupt(src, "layer.proj.qzeros", NULL, 0, 0, NULL, NULL, 0, NULL);
    ASSERT(d);
    ASSERT_EQ_INT(try_load(d, 24, 128, &err), VRT_ENOENT);
    ASSERT_CONTAINS(err.msg, "layer.proj.qzeros");

    static int32_t qw[15 * 24];
    int64_t wrong[2] = {15, 24}; /* [K/8 - 1][N] */
    d = corrupt(src, NULL, "layer.proj.qweight", VRT_ST_I32, 2, wrong, qw, sizeof qw, NULL);
    ASSERT(d);
    ASSERT_EQ_INT(try_load(d, 24, 128, &err), VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, "layer.proj.qweight");
    ASSERT_CONTAINS(err.msg, "[15, 24]");
    ASSERT_CONTAINS(err.msg, "expected [16, 24]");

    static uint16_t qwh[16 * 24];
    int64_t right[2] = {16, 24};
    d = corrupt(src, NULL, "layer.proj.qweight", VRT_ST_F16, 2, right, qwh, sizeof qwh, NULL);
    ASSERT(d);
    ASSERT_EQ_INT(try_load(d, 24, 128, &err), VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, "dtype F16, expected I32");

    /* g_idx out of range, then groups of the wrong size */
    int32_t g[128];
    for (int k = 0; k < 128; k++)
        g[k] = k / 32;
    g[77] = 4;
    int64_t K = 128;
    d = corrupt(src, NULL, "layer.proj.g_idx", VRT_ST_I32, 1, &K, g, sizeof g, NULL);
    ASSERT(d);
    ASSERT_EQ_INT(try_load(d, 24, 128, &err), VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, "g_idx[77] = 4 is out of range");
    ASSERT_CONTAINS(err.msg, "4 groups (0..3)");
    g[77] = -1;
    d = corrupt(src, NULL, "layer.proj.g_idx", VRT_ST_I32, 1, &K, g, sizeof g, NULL);
    ASSERT(d);
    ASSERT_EQ_INT(try_load(d, 24, 128, &err), VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, "g_idx[77] = -1");
    g[77] = 1;
    d = corrupt(src, NULL, "layer.proj.g_idx", VRT_ST_I32, 1, &K, g, sizeof g, NULL);
    ASSERT(d);
    ASSERT_EQ_INT(try_load(d, 24, 128, &err), VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, "puts 33 input rows in group 1, expected 32");

    /* desc_act without g_idx */
    d = corrupt(src, "layer.proj.g_idx", NULL, 0, 0, NULL, NULL, 0, NULL);
    ASSERT(d);
    ASSERT_EQ_INT(try_load(d, 24, 128, &err), VRT_ENOENT);
    ASSERT_CONTAINS(err.msg, "desc_act");
    ASSERT_CONTAINS(err.msg, "layer.proj.g_idx");

    /* a config whose group size disagrees with the tensors */
    d = corrupt(src, NULL, NULL, 0, 0, NULL, NULL, 0,
                "{\"bits\": 4, \"group_size\": 64, \"sym\": false, \"desc_act\": true}");
    ASSERT(d);
    ASSERT_EQ_INT(try_load(d, 24, 128, &err), VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, "layer.proj.qzeros");
    ASSERT_CONTAINS(err.msg, "expected [2, 3]");

    /* AWQ: scales of the wrong shape; in_features not a multiple of the group */
    static uint16_t sc[2 * 48];
    int64_t sshape[2] = {2, 48};
    d = corrupt("awq-g32", NULL, "layer.proj.scales", VRT_ST_F16, 2, sshape, sc, sizeof sc, NULL);
    ASSERT(d);
    ASSERT_EQ_INT(try_load(d, 48, 96, &err), VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, "AWQ 4-bit linear layer.proj");
    ASSERT_CONTAINS(err.msg, "expected [3, 48]");
    d = corrupt("awq-g32", NULL, NULL, 0, 0, NULL, NULL, 0, NULL);
    ASSERT(d);
    ASSERT_EQ_INT(try_load(d, 48, 100, &err), VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, "not a multiple of group_size 32");
}
