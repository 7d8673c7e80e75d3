/* test_quant_model.c — the trained kjv-tiny model quantized to GPTQ and AWQ, end to end.
 *
 * tests/fixtures/quant/make_fixtures.py (numpy, the published formats)
 * quantizes models-trained/kjv-tiny with round-to-nearest into
 * build/quant-models/<variant> (made at test time: each is ~4.5 MB, too
 * large to commit; regenerated when the script is newer). Variants cover
 * both formats, group sizes 32/128/-1, act-order, asymmetric v2 zeros and
 * modules_to_not_convert. Each is loaded on cpu and on cuda-emu:
 *  - greedy tokens must be identical on both backends, and their logits
 *    agree to 2e-3: f32 sums in another order, amplified where an fp16
 *    K/V rounding flips (up to 5e-4 seen);
 *  - logits must stay within a bound of the fp16 model's (logits of std
 *    ~4.5 on this prompt). RTN 4-bit moves every weight by up to half a
 *    quantization step: measured max |Δlogit| over the 12 prompt positions
 *    are 0.44 (AWQ g128, down_proj fp16) to 0.79 (GPTQ g128 act-order),
 *    mean |Δlogit| 0.08 to 0.15. The bounds, max 1.5 and mean 0.3, are
 *    about twice the worst measured figure; a loader bug (zeros without
 *    the v1 +1, act-order rows left unpermuted) was measured at max 18-21,
 *    mean 3.1-3.7 with no greedy token in common, so they cannot pass a
 *    broken loader or kernel. Greedy continuations of the quantized models
 *    agree with the fp16 model's on 9-12 of 12 tokens (printed, not
 *    asserted: a near-tie may flip legitimately).
 * The config key model.quantize must agree with the checkpoint.
 */
#include "test.h"

#include "core/err.h"
#include "model/model.h"

#include <stdlib.h>
#include <sys/stat.h>

#define SRC "models-trained/kjv-tiny"
#define SCRIPT "tests/fixtures/quant/make_fixtures.py"
#define OUT "build/quant-models"

static double mtime(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return -1;
    return (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec * 1e-9;
}

/* Makes OUT/name with the script unless it is newer than the script. */
static int make_variant(const char *name, const char *args)
{
    char path[256], cmd[1024];
    snprintf(path, sizeof path, OUT "/%s/model.safetensors", name);
    double have = mtime(path);
    if (have >= 0 && have >= mtime(SCRIPT))
        return 0;
    snprintf(cmd, sizeof cmd, "mkdir -p " OUT " && python3 " SCRIPT " model " SRC " " OUT "/%s %s",
             name, args);
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr,
                "  `%s` failed (%d): the quantized-model tests need python3 with numpy "
                "(`make test` puts build/test-venv, made by scripts/test-env.sh, first on "
                "PATH)\n",
                cmd, rc);
    return rc;
}

enum { MAXT = 48, BS = 16, NB = 4 };

typedef struct run {
    float *logits; /* [n_prompt + n_gen][V]: prompt positions, then one per decode step */
    int32_t toks[MAXT];
    int n;
} run;

/* Prompt prefill (logits of every position), then n_gen greedy steps. */
static int generate(vrt_model *m, const int32_t *prompt, int np, int n_gen, run *r, vrt_err *err)
{
    const int V = m->cfg.vocab_size;
    vrt_kv_cache kv;
    int rc = vrt_kv_cache_init(&kv, m, NB, BS, err);
    if (rc)
        return rc;
    r->logits = malloc((size_t)(np + n_gen) * V * sizeof(float));
    memcpy(r->toks, prompt, (size_t)np * 4);
    r->n = np;
    int32_t table[NB] = {0, 1, 2, 3}, rows[MAXT];
    for (int i = 0; i < MAXT; i++)
        rows[i] = i;
    int32_t q_start[2] = {0, np}, ctx[1] = {np};
    vrt_batch b = {.n_seqs = 1,
                   .tokens = r->toks,
                   .q_start = q_start,
                   .ctx_len = ctx,
                   .block_table = table,
                   .max_blocks_per_seq = NB,
                   .out_rows = rows,
                   .n_out = np};
    rc = vrt_model_forward(m, &kv, &b, r->logits, err);
    for (int g = 0; !rc && g < n_gen; g++) {
        const float *l = r->logits + (size_t)(np + g - 1) * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (l[v] > l[best])
                best = v;
        r->toks[r->n++] = best;
        q_start[1] = 1;
        ctx[0] = r->n;
        b.tokens = r->toks + r->n - 1;
        b.n_out = 1;
        rc = vrt_model_forward(m, &kv, &b, r->logits + (size_t)(np + g) * V, err);
    }
    vrt_kv_cache_free(&kv);
    return rc;
}

/* the first tokens of tests/fixtures/kjv/heldout.txt (expected.json "ids") */
static const int32_t PROMPT[] = {1, 595, 368, 941, 324, 1860, 848, 332, 324, 1860, 2609, 384};
#define NP ((int)(sizeof PROMPT / sizeof PROMPT[0]))
#define NGEN 12

static int load_run(const char *dir, const char *backend, const char *quantize, run *r,
                    vrt_err *err)
{
    vrt_backend *be;
    int rc = vrt_backend_create(&be, backend, 2, err);
    if (rc)
        return rc;
    vrt_model *m = NULL;
    vrt_model_load_opts o = {.dtype = "float16", .quiet = 1, .quantize = quantize};
    rc = vrt_model_load(&m, dir, be, &o, err);
    if (!rc)
        rc = generate(m, PROMPT, NP, NGEN, r, err);
    vrt_model_free(m);
    vrt_backend_destroy(be);
    return rc;
}

static void check_variant(const char *name, const char *args, const char *method)
{
    ASSERT_EQ_INT(make_variant(name, args), 0);
    char dir[256];
    snprintf(dir, sizeof dir, OUT "/%s", name);
    vrt_err err = {0};
    run ref = {0}, cpu = {0}, emu = {0};
    ASSERT_OK(load_run(SRC, "cpu", "none", &ref, &err), &err);
    ASSERT_OK(load_run(dir, "cpu", method, &cpu, &err), &err);
    ASSERT_OK(load_run(dir, "cuda-emu", method, &emu, &err), &err);
    const int V = 4096, n = NP + NGEN;
    /* cpu and cuda-emu: same tokens, same logits up to f32 summation order */
    for (int i = 0; i < cpu.n; i++)
        if (cpu.toks[i] != emu.toks[i])
            TFAIL("%s: greedy token %d is %d on cpu, %d on cuda-emu", name, i, cpu.toks[i],
                  emu.toks[i]);
    double d_be = 0;
    for (size_t i = 0; i < (size_t)n * V; i++)
        d_be = fmax(d_be, fabs(cpu.logits[i] - emu.logits[i]));
    /* against the fp16 model, over the prompt positions (same inputs) */
    double dmax = 0, dsum = 0;
    for (size_t i = 0; i < (size_t)NP * V; i++) {
        double d = fabs(cpu.logits[i] - ref.logits[i]);
        dmax = fmax(dmax, d);
        dsum += d;
    }
    double dmean = dsum / ((double)NP * V);
    int same = 0;
    for (int i = NP; i < cpu.n; i++)
        same += cpu.toks[i] == ref.toks[i];
    printf("  %-28s cpu~emu %.1e  vs fp16: max|dlogit| %.3f mean %.3f, greedy %d/%d same\n", name,
           d_be, dmax, dmean, same, NGEN);
    if (!(d_be <= 2e-3))
        TFAIL("%s: cpu and cuda-emu logits differ by %g (tol 2e-3)", name, d_be);
    if (!(dmax <= 1.5 && dmean <= 0.3))
        TFAIL("%s: logits differ from the fp16 model by max %g, mean %g (bounds 1.5, 0.3)", name,
              dmax, dmean);
    /* On a GPU (skipped without one): the same checkpoint on cuda. Its
     * fp16 layers (lm_head, kept modules) take fp16-rounded activations
     * in cuBLAS above 4 tokens, hence a looser bound than cuda-emu's. */
    run gpu = {0};
    vrt_err gerr = {0};
    if (load_run(dir, "cuda", method, &gpu, &gerr) == 0) {
        double d_gpu = 0;
        int same_gpu = 0;
        for (size_t i = 0; i < (size_t)n * V; i++)
            d_gpu = fmax(d_gpu, fabs(cpu.logits[i] - gpu.logits[i]));
        for (int i = 0; i < cpu.n; i++)
            same_gpu += cpu.toks[i] == gpu.toks[i];
        printf("  %-28s cpu~cuda max|dlogit| %.1e, tokens %d/%d same\n", name, d_gpu, same_gpu,
               cpu.n);
        if (!(d_gpu <= 5e-2))
            TFAIL("%s: cpu and cuda logits differ by %g (tol 5e-2)", name, d_gpu);
        free(gpu.logits);
    } else if (strstr(gerr.msg, "not found") == NULL) {
        printf("  %-28s cuda skipped: %s\n", name, gerr.msg);
    }
    free(ref.logits);
    free(cpu.logits);
    free(emu.logits);
}

TEST(quant_model_gptq_g128_act_order)
{
    check_variant("gptq-g128-act", "--method gptq --group-size 128 --act-order", "gptq");
}
TEST(quant_model_gptq_g32_asym_v2)
{
    check_variant("gptq-g32-asym-v2", "--method gptq --group-size 32 --asym --v2", "gptq");
}
TEST(quant_model_gptq_gall)
{
    check_variant("gptq-gall", "--method gptq --group-size -1", "gptq");
}
TEST(quant_model_awq_g128_not_convert_down)
{
    /* intermediate_size 688 is no multiple of 128: down_proj stays fp16 */
    check_variant("awq-g128", "--method awq --group-size 128 --not-convert down_proj", "awq");
}
TEST(quant_model_awq_gall)
{
    check_variant("awq-gall", "--method awq --group-size -1", "awq");
}

TEST(quant_model_quantize_key_must_agree)
{
    ASSERT_EQ_INT(make_variant("gptq-gall", "--method gptq --group-size -1"), 0);
    vrt_err err = {0};
    run r = {0};
    ASSERT_EQ_INT(load_run(OUT "/gptq-gall", "cpu", "awq", &r, &err), VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "4-bit gptq checkpoint");
    ASSERT_CONTAINS(err.msg, "model.quantize = \"gptq\"");
    ASSERT_EQ_INT(load_run(OUT "/gptq-gall", "cpu", "none", &r, &err), VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "model.quantize is nil");
    ASSERT_EQ_INT(load_run(SRC, "cpu", "gptq", &r, &err), VRT_ECONFIG);
    ASSERT_CONTAINS(err.msg, "not quantized");
    /* NULL: whatever the checkpoint is (loading a bare model directory) */
    ASSERT_OK(load_run(OUT "/gptq-gall", "cpu", NULL, &r, &err), &err);
    free(r.logits);
}

TEST(quant_model_missing_linear_names_it)
{
    /* a quantized model whose layer 0 q_proj lost its qweight (and has no
     * unquantized weight): the error names the tensor and why it is expected */
    ASSERT_EQ_INT(make_variant("gptq-gall", "--method gptq --group-size -1"), 0);
    char dir[] = "/tmp/vrt_q4m_XXXXXX";
    ASSERT(mkdtemp(dir));
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp " OUT "/gptq-gall/*.json %s/", dir);
    ASSERT_EQ_INT(system(cmd), 0);
    vrt_err err = {0};
    vrt_st_file f = {0};
    ASSERT_OK(vrt_st_open(&f, OUT "/gptq-gall/model.safetensors", &err), &err);
    vrt_st_writer w;
    vrt_st_writer_init(&w);
    for (int i = 0; i < f.header.n_tensors; i++) {
        const vrt_st_tensor *t = &f.header.tensors[i];
        if (strcmp(t->name, "model.layers.0.self_attn.q_proj.qweight") != 0)
            ASSERT_OK(vrt_st_writer_add_ref(&w, t->name, t->dtype, t->ndim, t->shape, t->data,
                                            t->nbytes, &err),
                      &err);
    }
    char path[300];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ASSERT_OK(vrt_st_writer_write(&w, path, NULL, &err), &err);
    vrt_st_writer_free(&w);
    vrt_st_close(&f);
    run r = {0};
    ASSERT_EQ_INT(load_run(dir, "cpu", "gptq", &r, &err), VRT_ENOENT);
    ASSERT_CONTAINS(err.msg, "model.layers.0.self_attn.q_proj.qweight");
    ASSERT_CONTAINS(err.msg, "gptq-quantized");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    ASSERT_EQ_INT(system(cmd), 0);
}
