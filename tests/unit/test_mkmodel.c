/* test_mkmodel.c — `v100rt mkmodel`'s library part (runtime/model/mkmodel.c)
 * and the safetensors writer's generated tensors it relies on.
 *
 * Every model written here is read back with the loaders the runtime uses
 * (vrt_model_config_load, vrt_checkpoint_open), so a file mkmodel writes
 * is a file the runtime accepts. The tokenizer files are only compared
 * byte for byte with the fixtures they are embedded from.
 */
#include "test.h"

#include "core/err.h"
#include "model/checkpoint.h"
#include "model/hf_config.h"
#include "model/mkmodel.h"
#include "model/safetensors.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOK_FIXTURES "tests/fixtures/tokenizers/sentencepiece"

/* A fresh temporary directory per test (tests run in forked children). */
static const char *tmpdir(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/vrt_mk_XXXXXX");
    if (!mkdtemp(dir))
        return NULL;
    return dir;
}

/* 1 when the two files exist and hold the same bytes. */
static int same_file(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    unsigned char *x = (unsigned char *)vrt_test_read_file(a, &na),
                  *y = (unsigned char *)vrt_test_read_file(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static void path_in(char *buf, size_t cap, const char *dir, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* Checks that ck holds exactly the tensors o describes, with their shapes
 * and dtype; returns a message on the first difference (static), or NULL. */
static const char *check_tensors(const vrt_checkpoint *ck, const vrt_mkmodel_opts *o)
{
    static char msg[4200];
    int D = o->hidden_size, F = o->intermediate_size, V = o->vocab_size;
    int hd = o->head_dim ? o->head_dim : D / o->num_attention_heads;
    int q = o->num_attention_heads * hd, kv = o->num_key_value_heads * hd;
    struct {
        const char *fmt;
        int64_t r, c;
    } per_layer[] = {
        {"model.layers.%d.input_layernorm.weight", D, 0},
        {"model.layers.%d.self_attn.q_proj.weight", q, D},
        {"model.layers.%d.self_attn.k_proj.weight", kv, D},
        {"model.layers.%d.self_attn.v_proj.weight", kv, D},
        {"model.layers.%d.self_attn.o_proj.weight", D, q},
        {"model.layers.%d.post_attention_layernorm.weight", D, 0},
        {"model.layers.%d.mlp.gate_proj.weight", F, D},
        {"model.layers.%d.mlp.up_proj.weight", F, D},
        {"model.layers.%d.mlp.down_proj.weight", D, F},
    };
    int want_n = 2 + 9 * o->num_hidden_layers + (o->tie_word_embeddings ? 0 : 1);
    if (vrt_checkpoint_count(ck) != want_n) {
        snprintf(msg, sizeof msg, "%d tensors, expected %d", vrt_checkpoint_count(ck), want_n);
        return msg;
    }
    for (int i = -3; i < 9 * o->num_hidden_layers; i++) {
        char name[128];
        int64_t shape[2];
        int ndim;
        if (i == -3) {
            snprintf(name, sizeof name, "model.embed_tokens.weight");
            shape[0] = V, shape[1] = D, ndim = 2;
        } else if (i == -2) {
            snprintf(name, sizeof name, "model.norm.weight");
            shape[0] = D, ndim = 1;
        } else if (i == -1) {
            if (o->tie_word_embeddings) {
                if (vrt_checkpoint_find(ck, "lm_head.weight"))
                    return "lm_head.weight present with tied embeddings";
                continue;
            }
            snprintf(name, sizeof name, "lm_head.weight");
            shape[0] = V, shape[1] = D, ndim = 2;
        } else {
            int l = i / 9, k = i % 9;
            snprintf(name, sizeof name, per_layer[k].fmt, l);
            shape[0] = per_layer[k].r, shape[1] = per_layer[k].c;
            ndim = per_layer[k].c ? 2 : 1;
        }
        const vrt_st_tensor *t;
        vrt_err err = {0};
        if (vrt_checkpoint_get(ck, name, ndim, shape, &t, &err) != 0) {
            snprintf(msg, sizeof msg, "%.4000s", err.msg);
            return msg;
        }
        if (t->dtype != o->dtype) {
            snprintf(msg, sizeof msg, "%s: dtype %s, expected %s", name,
                     vrt_st_dtype_name(t->dtype), vrt_st_dtype_name(o->dtype));
            return msg;
        }
    }
    return NULL;
}

/* Mean and standard deviation of a tensor's values. */
static int tensor_stats(const vrt_st_tensor *t, double *mean, double *sd)
{
    uint64_t n = vrt_st_numel(t);
    float *v = malloc(n * sizeof *v);
    vrt_err err = {0};
    if (!v || vrt_st_to_f32(t, v, &err) != 0) {
        free(v);
        return -1;
    }
    double s = 0, s2 = 0;
    for (uint64_t i = 0; i < n; i++)
        s += v[i];
    *mean = s / (double)n;
    for (uint64_t i = 0; i < n; i++)
        s2 += (v[i] - *mean) * (v[i] - *mean);
    *sd = sqrt(s2 / (double)n);
    free(v);
    return 0;
}

TEST(mkmodel_tiny_llama_loads)
{
    const char *tmp = tmpdir();
    char dir[256], p[300];
    path_in(dir, sizeof dir, tmp, "a/b/tiny"); /* parents are created */
    vrt_err err = {0};
    vrt_mkmodel_opts o;
    ASSERT_OK(vrt_mkmodel_preset(&o, "tiny", VRT_ARCH_LLAMA, &err), &err);
    o.seed = 1;
    ASSERT_OK(vrt_mkmodel_write(&o, dir, &err), &err);

    vrt_model_config c;
    ASSERT_OK(vrt_model_config_load(&c, dir, &err), &err);
    ASSERT_EQ_INT(c.arch, VRT_ARCH_LLAMA);
    ASSERT_EQ_STR(c.arch_name, "LlamaForCausalLM");
    ASSERT_EQ_STR(c.model_type, "llama");
    ASSERT_EQ_INT(c.hidden_size, 128);
    ASSERT_EQ_INT(c.intermediate_size, 344);
    ASSERT_EQ_INT(c.num_hidden_layers, 4);
    ASSERT_EQ_INT(c.num_attention_heads, 4);
    ASSERT_EQ_INT(c.num_key_value_heads, 2);
    ASSERT_EQ_INT(c.head_dim, 32);
    ASSERT_EQ_INT(c.vocab_size, 3000);
    ASSERT_EQ_INT(c.max_position_embeddings, 2048);
    ASSERT_NEAR(c.rms_norm_eps, 1e-5, 0);
    ASSERT_NEAR(c.rope_theta, 10000.0, 0);
    ASSERT_EQ_INT(c.rope_scaling.type, VRT_ROPE_DEFAULT);
    ASSERT(!c.tie_word_embeddings);
    ASSERT_EQ_INT(c.sliding_window, 0);
    ASSERT_EQ_STR(c.hidden_act, "silu");
    ASSERT_EQ_STR(c.torch_dtype, "float16");
    ASSERT_EQ_INT(c.bos_token_id, 1);
    ASSERT_EQ_INT(c.n_eos, 1);
    ASSERT_EQ_INT(c.eos_token_ids[0], 2);
    ASSERT(c.gen.present);

    vrt_checkpoint ck;
    int rc = vrt_checkpoint_open(&ck, dir, &err);
    if (rc != 0) {
        vrt_checkpoint_close(&ck);
        TFAIL("vrt_checkpoint_open: %s", err.msg);
    }
    const char *bad = check_tensors(&ck, &o);
    double emb_mean = 0, emb_sd = 0, norm_mean = 0, norm_sd = 0;
    int st =
        tensor_stats(vrt_checkpoint_find(&ck, "model.embed_tokens.weight"), &emb_mean, &emb_sd) |
        tensor_stats(vrt_checkpoint_find(&ck, "model.layers.3.input_layernorm.weight"), &norm_mean,
                     &norm_sd);
    vrt_checkpoint_close(&ck);
    if (bad)
        TFAIL("%s", bad);
    ASSERT_EQ_INT(st, 0);
    /* 384000 samples of N(0, 0.02): the mean is within 5 sigma/sqrt(n)
     * of 0 and the sample deviation within 1% of 0.02. */
    ASSERT_NEAR(emb_mean, 0.0, 5 * 0.02 / sqrt(384000.0));
    ASSERT_NEAR(emb_sd, 0.02, 0.0002);
    /* Norm weights are 1 + N(0, 0.02): 128 samples. */
    ASSERT_NEAR(norm_mean, 1.0, 0.01);
    ASSERT(norm_sd > 0.01 && norm_sd < 0.03);

    /* The file is exactly header + the advertised bytes. */
    uint64_t params, bytes;
    vrt_mkmodel_size(&o, &params, &bytes);
    ASSERT_EQ_INT(params, 1494144);
    ASSERT_EQ_INT(bytes, 2 * params);
    path_in(p, sizeof p, dir, "model.safetensors");
    struct stat sb;
    ASSERT(stat(p, &sb) == 0);
    ASSERT((uint64_t)sb.st_size > bytes && (uint64_t)sb.st_size < bytes + 16384);
    vrt_test_rm_tree(tmp);
}

TEST(mkmodel_tokenizer_files_are_the_fixtures)
{
    const char *tmp = tmpdir();
    vrt_err err = {0};
    vrt_mkmodel_opts o;
    ASSERT_OK(vrt_mkmodel_preset(&o, "tiny", VRT_ARCH_LLAMA, &err), &err);
    ASSERT_OK(vrt_mkmodel_write(&o, tmp, &err), &err);
    char p[300];
    path_in(p, sizeof p, tmp, "tokenizer.json");
    ASSERT(same_file(p, TOK_FIXTURES "/tokenizer.json"));
    path_in(p, sizeof p, tmp, "tokenizer_config.json");
    ASSERT(same_file(p, TOK_FIXTURES "/tokenizer_config.json"));
    ASSERT_EQ_INT(vrt_mkmodel_tokenizer_vocab(), 3000);
    vrt_test_rm_tree(tmp);
}

TEST(mkmodel_tied_f32)
{
    const char *tmp = tmpdir();
    vrt_err err = {0};
    vrt_mkmodel_opts o;
    ASSERT_OK(vrt_mkmodel_preset(&o, "tiny", VRT_ARCH_LLAMA, &err), &err);
    o.tie_word_embeddings = true;
    o.dtype = VRT_ST_F32;
    o.num_hidden_layers = 2;
    o.vocab_size = 3001; /* an odd vocabulary is fine */
    ASSERT_OK(vrt_mkmodel_write(&o, tmp, &err), &err);
    vrt_model_config c;
    ASSERT_OK(vrt_model_config_load(&c, tmp, &err), &err);
    ASSERT(c.tie_word_embeddings);
    ASSERT_EQ_STR(c.torch_dtype, "float32");
    ASSERT_EQ_INT(c.vocab_size, 3001);
    ASSERT_EQ_INT(c.num_hidden_layers, 2);
    vrt_checkpoint ck;
    int rc = vrt_checkpoint_open(&ck, tmp, &err);
    const char *bad = rc == 0 ? check_tensors(&ck, &o) : err.msg;
    vrt_checkpoint_close(&ck);
    if (bad)
        TFAIL("%s", bad);
    vrt_test_rm_tree(tmp);
}

TEST(mkmodel_mistral_sliding_window_and_head_dim)
{
    const char *tmp = tmpdir();
    char dir[256];
    vrt_err err = {0};
    vrt_mkmodel_opts o;
    vrt_model_config c;
    /* Default window: Mistral-7B-v0.1's 4096. */
    ASSERT_OK(vrt_mkmodel_preset(&o, "tiny", VRT_ARCH_MISTRAL, &err), &err);
    ASSERT_EQ_INT(o.sliding_window, 4096);
    path_in(dir, sizeof dir, tmp, "sw4096");
    ASSERT_OK(vrt_mkmodel_write(&o, dir, &err), &err);
    ASSERT_OK(vrt_model_config_load(&c, dir, &err), &err);
    ASSERT_EQ_INT(c.arch, VRT_ARCH_MISTRAL);
    ASSERT_EQ_STR(c.arch_name, "MistralForCausalLM");
    ASSERT_EQ_STR(c.model_type, "mistral");
    ASSERT_EQ_INT(c.sliding_window, 4096);

    /* An explicit window, an explicit head_dim (H * hd != D) and theta. */
    o.sliding_window = 64;
    o.head_dim = 16;
    o.rope_theta = 1e6;
    path_in(dir, sizeof dir, tmp, "sw64");
    ASSERT_OK(vrt_mkmodel_write(&o, dir, &err), &err);
    ASSERT_OK(vrt_model_config_load(&c, dir, &err), &err);
    ASSERT_EQ_INT(c.sliding_window, 64);
    ASSERT_EQ_INT(c.head_dim, 16);
    ASSERT_NEAR(c.rope_theta, 1e6, 0);
    vrt_checkpoint ck;
    int rc = vrt_checkpoint_open(&ck, dir, &err);
    const char *bad = rc == 0 ? check_tensors(&ck, &o) : err.msg;
    vrt_checkpoint_close(&ck);
    if (bad)
        TFAIL("%s", bad);

    /* 0 = no window: written as null. */
    o.sliding_window = 0;
    path_in(dir, sizeof dir, tmp, "nosw");
    ASSERT_OK(vrt_mkmodel_write(&o, dir, &err), &err);
    char p[300];
    path_in(p, sizeof p, dir, "config.json");
    size_t n;
    char *text = vrt_test_read_file(p, &n);
    ASSERT(text);
    text[n] = '\0';
    int has_null = strstr(text, "\"sliding_window\": null") != NULL;
    free(text);
    ASSERT(has_null);
    ASSERT_OK(vrt_model_config_load(&c, dir, &err), &err);
    ASSERT_EQ_INT(c.sliding_window, 0);
    vrt_test_rm_tree(tmp);
}

TEST(mkmodel_deterministic)
{
    const char *tmp = tmpdir();
    char a[256], b[256], d[256], pa[300], pb[300], pd[300];
    path_in(a, sizeof a, tmp, "a");
    path_in(b, sizeof b, tmp, "b");
    path_in(d, sizeof d, tmp, "d");
    vrt_err err = {0};
    vrt_mkmodel_opts o;
    ASSERT_OK(vrt_mkmodel_preset(&o, "tiny", VRT_ARCH_LLAMA, &err), &err);
    o.seed = 42;
    ASSERT_OK(vrt_mkmodel_write(&o, a, &err), &err);
    ASSERT_OK(vrt_mkmodel_write(&o, b, &err), &err);
    o.seed = 43;
    ASSERT_OK(vrt_mkmodel_write(&o, d, &err), &err);
    static const char *const files[] = {"config.json", "generation_config.json",
                                        "model.safetensors", "tokenizer.json",
                                        "tokenizer_config.json"};
    for (int i = 0; i < 5; i++) {
        path_in(pa, sizeof pa, a, files[i]);
        path_in(pb, sizeof pb, b, files[i]);
        path_in(pd, sizeof pd, d, files[i]);
        if (!same_file(pa, pb))
            TFAIL("%s differs between two runs with seed 42", files[i]);
        if (i == 2 && same_file(pa, pd))
            TFAIL("model.safetensors is the same for seeds 42 and 43");
        if (i != 2 && !same_file(pa, pd))
            TFAIL("%s depends on the seed", files[i]);
    }
    /* Different tensors of one model get different values. */
    vrt_checkpoint ck;
    int rc = vrt_checkpoint_open(&ck, a, &err);
    int same = -1;
    if (rc == 0) {
        const vrt_st_tensor *g = vrt_checkpoint_find(&ck, "model.layers.0.mlp.gate_proj.weight");
        const vrt_st_tensor *u = vrt_checkpoint_find(&ck, "model.layers.0.mlp.up_proj.weight");
        same = g && u && memcmp(g->data, u->data, 1024) == 0;
    }
    vrt_checkpoint_close(&ck);
    ASSERT_EQ_INT(rc, 0);
    ASSERT_EQ_INT(same, 0);
    vrt_test_rm_tree(tmp);
}

TEST(mkmodel_refuses_non_empty_dir)
{
    const char *tmp = tmpdir();
    char p[300];
    vrt_err err = {0};
    vrt_mkmodel_opts o;
    ASSERT_OK(vrt_mkmodel_preset(&o, "tiny", VRT_ARCH_LLAMA, &err), &err);
    /* An empty existing directory is fine. */
    ASSERT_OK(vrt_mkmodel_write(&o, tmp, &err), &err);
    /* Now it is not empty. */
    ASSERT_EQ_INT(vrt_mkmodel_write(&o, tmp, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "not empty");
    ASSERT_CONTAINS(err.msg, "--force");
    /* A stale shard index would shadow model.safetensors: --force drops it
     * and leaves other files alone. */
    path_in(p, sizeof p, tmp, "model.safetensors.index.json");
    FILE *f = fopen(p, "w");
    ASSERT(f);
    fputs("{\"weight_map\": {}}", f);
    fclose(f);
    path_in(p, sizeof p, tmp, "README.md");
    f = fopen(p, "w");
    ASSERT(f);
    fclose(f);
    o.force = true;
    o.seed = 7;
    ASSERT_OK(vrt_mkmodel_write(&o, tmp, &err), &err);
    struct stat sb;
    path_in(p, sizeof p, tmp, "model.safetensors.index.json");
    ASSERT(stat(p, &sb) != 0);
    path_in(p, sizeof p, tmp, "README.md");
    ASSERT(stat(p, &sb) == 0);
    vrt_checkpoint ck;
    int rc = vrt_checkpoint_open(&ck, tmp, &err);
    vrt_checkpoint_close(&ck);
    ASSERT_OK(rc, &err);
    /* A path that is a file. */
    ASSERT_EQ_INT(vrt_mkmodel_write(&o, p, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "not a directory");
    vrt_test_rm_tree(tmp);
}

TEST(mkmodel_validation_messages)
{
    vrt_err err = {0};
    vrt_mkmodel_opts o, base;
    ASSERT_EQ_INT(vrt_mkmodel_preset(&o, "tinyy", VRT_ARCH_LLAMA, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "did you mean \"tiny\"?");
    for (int i = 0; vrt_mkmodel_presets[i]; i++) {
        ASSERT_OK(vrt_mkmodel_preset(&o, vrt_mkmodel_presets[i], VRT_ARCH_LLAMA, &err), &err);
        ASSERT_OK(vrt_mkmodel_validate(&o, &err), &err);
        ASSERT_OK(vrt_mkmodel_preset(&o, vrt_mkmodel_presets[i], VRT_ARCH_MISTRAL, &err), &err);
        ASSERT_OK(vrt_mkmodel_validate(&o, &err), &err);
    }
    uint64_t params;
    ASSERT_OK(vrt_mkmodel_preset(&o, "small", VRT_ARCH_LLAMA, &err), &err);
    vrt_mkmodel_size(&o, &params, NULL);
    ASSERT(params > 100000000 && params < 120000000);
    ASSERT_OK(vrt_mkmodel_preset(&o, "tinyllama", VRT_ARCH_LLAMA, &err), &err);
    vrt_mkmodel_size(&o, &params, NULL);
    ASSERT_EQ_INT(params, 1100048384); /* TinyLlama-1.1B's parameter count */

    ASSERT_OK(vrt_mkmodel_preset(&base, "tiny", VRT_ARCH_LLAMA, &err), &err);
    struct {
        const char *field;
        const char *want;
    } cases[] = {
        {"heads3", "must divide num_attention_heads 3 (--heads)"},
        {"heads6kv3", "not a multiple of num_attention_heads 6 (--heads)"},
        {"oddhd", "must be even"},
        {"vocab", "use --vocab 3000 or more"},
        {"dim0", "hidden_size (--dim) must be in 1.."},
        {"layers", "num_hidden_layers (--layers)"},
        {"sw_llama", "add --arch mistral"},
        {"sw_neg", "sliding_window (--sliding-window) must be 0"},
        {"dtype", "must be f16 or f32, got BF16"},
        {"theta", "rope_theta (--rope-theta) must be positive"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        o = base;
        const char *f = cases[i].field;
        if (!strcmp(f, "heads3"))
            o.num_attention_heads = 3;
        else if (!strcmp(f, "heads6kv3"))
            o.num_attention_heads = 6, o.num_key_value_heads = 3;
        else if (!strcmp(f, "oddhd"))
            o.head_dim = 15;
        else if (!strcmp(f, "vocab"))
            o.vocab_size = 2999;
        else if (!strcmp(f, "dim0"))
            o.hidden_size = 0;
        else if (!strcmp(f, "layers"))
            o.num_hidden_layers = 100000;
        else if (!strcmp(f, "sw_llama"))
            o.sliding_window = 16;
        else if (!strcmp(f, "sw_neg"))
            o.arch = VRT_ARCH_MISTRAL, o.sliding_window = -1;
        else if (!strcmp(f, "dtype"))
            o.dtype = VRT_ST_BF16;
        else if (!strcmp(f, "theta"))
            o.rope_theta = 0;
        err.msg[0] = '\0';
        int rc = vrt_mkmodel_validate(&o, &err);
        if (rc != VRT_EINVAL)
            TFAIL("case %s: rc %d, expected VRT_EINVAL", f, rc);
        if (!strstr(err.msg, cases[i].want))
            TFAIL("case %s: \"%s\" lacks \"%s\"", f, err.msg, cases[i].want);
        /* write validates before touching the file system. */
        if (vrt_mkmodel_write(&o, "/nonexistent/never/created", &err) != VRT_EINVAL)
            TFAIL("case %s: write did not refuse", f);
    }
}

/* ---- the writer's generated tensors ------------------------------------ */

typedef struct {
    int calls;
    uint64_t next_off; /* chunks must come in order */
    int fail_at;       /* call number that fails; 0 = never */
} fill_probe;

static int fill_pattern(void *ctx, void *buf, uint64_t off, uint64_t n, vrt_err *err)
{
    fill_probe *p = ctx;
    p->calls++;
    if (off != p->next_off)
        return vrt_err_set(err, VRT_EINTERNAL, "chunk at %llu, expected %llu",
                           (unsigned long long)off, (unsigned long long)p->next_off);
    if (p->fail_at && p->calls == p->fail_at)
        return vrt_err_set(err, VRT_EIO, "probe failure");
    uint32_t *w = buf;
    for (uint64_t i = 0; i < n / 4; i++)
        w[i] = (uint32_t)(off / 4 + i);
    p->next_off = off + n;
    return 0;
}

TEST(st_writer_fill_streams_in_chunks)
{
    const char *tmp = tmpdir();
    char p[300];
    path_in(p, sizeof p, tmp, "f.safetensors");
    vrt_err err = {0};
    /* 3 Mi elements of U32 = 12 MiB: several chunks and a partial one. */
    int64_t shp[2] = {3, 1 << 20};
    fill_probe probe = {0, 0, 0};
    float small[3] = {1, 2, 3};
    int64_t sshp[1] = {3};
    vrt_st_writer w;
    vrt_st_writer_init(&w);
    ASSERT_OK(vrt_st_writer_add_fill(&w, "big", VRT_ST_U32, 2, shp, fill_pattern, &probe, &err),
              &err);
    ASSERT_OK(vrt_st_writer_add(&w, "small", VRT_ST_F32, 1, sshp, small, sizeof small, &err), &err);
    ASSERT_EQ_INT(vrt_st_writer_add_fill(&w, "nofill", VRT_ST_F32, 1, sshp, NULL, NULL, &err),
                  VRT_EINVAL);
    ASSERT_OK(vrt_st_writer_write(&w, p, NULL, &err), &err);
    vrt_st_writer_free(&w);
    ASSERT(probe.calls >= 3);
    vrt_st_file f;
    int rc = vrt_st_open(&f, p, &err);
    const vrt_st_tensor *t = rc == 0 ? vrt_st_find(&f, "big") : NULL;
    int bad = -1;
    if (t) {
        bad = 0;
        for (uint32_t i = 0; i < 3u << 20 && !bad; i += 4099) {
            uint32_t v;
            memcpy(&v, (const unsigned char *)t->data + 4 * (uint64_t)i, 4);
            bad = v != i;
        }
    }
    vrt_st_close(&f);
    ASSERT_OK(rc, &err);
    ASSERT_EQ_INT(bad, 0);

    /* A failing fill fails the write, names the tensor and leaves no file. */
    path_in(p, sizeof p, tmp, "g.safetensors");
    fill_probe probe2 = {0, 0, 2};
    vrt_st_writer_init(&w);
    ASSERT_OK(vrt_st_writer_add_fill(&w, "big", VRT_ST_U32, 2, shp, fill_pattern, &probe2, &err),
              &err);
    rc = vrt_st_writer_write(&w, p, NULL, &err);
    vrt_st_writer_free(&w);
    ASSERT_EQ_INT(rc, VRT_EIO);
    ASSERT_CONTAINS(err.msg, "tensor 'big'");
    ASSERT_CONTAINS(err.msg, "probe failure");
    struct stat sb;
    ASSERT(stat(p, &sb) != 0);
    int n_left = 0;
    DIR *d = opendir(tmp);
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        n_left += strncmp(de->d_name, "g.safetensors", 13) == 0;
    if (d)
        closedir(d);
    ASSERT_EQ_INT(n_left, 0); /* no temporary file either */
    vrt_test_rm_tree(tmp);
}

/* Writing a model much larger than a chunk keeps the resident set small:
 * the tensors are generated while written, never held whole. */
TEST(mkmodel_memory_stays_bounded)
{
    const char *tmp = tmpdir();
    vrt_err err = {0};
    vrt_mkmodel_opts o;
    ASSERT_OK(vrt_mkmodel_preset(&o, "tiny", VRT_ARCH_LLAMA, &err), &err);
    o.vocab_size = 32000;
    o.hidden_size = 256;
    o.num_attention_heads = 8;
    o.num_key_value_heads = 8;
    o.num_hidden_layers = 2;
    o.dtype = VRT_ST_F32; /* two 32 MB embedding matrices, ~70 MB in all */
    uint64_t bytes;
    vrt_mkmodel_size(&o, NULL, &bytes);
    ASSERT(bytes > 64u << 20);
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    ASSERT_OK(vrt_mkmodel_write(&o, tmp, &err), &err);
    getrusage(RUSAGE_SELF, &ru1);
    long grew_kb = ru1.ru_maxrss - ru0.ru_maxrss;
    vrt_test_rm_tree(tmp);
    /* A 4 MiB chunk plus the tokenizer parse; far below one 32 MB tensor. */
    if (grew_kb > 24 * 1024)
        TFAIL("resident set grew by %ld kB writing %llu bytes", grew_kb, (unsigned long long)bytes);
}
