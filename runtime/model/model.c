/* model.c — loading a Hugging Face model directory onto a backend: the
 * architecture description, weights (in place from the mapping or
 * converted into backend memory), the KV cache memory and the workspace.
 * The forward pass itself is in forward.c.
 */
#include "model/model.h"

#include "backend/half.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "model/forward_graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* ---- weights ----------------------------------------------------------- */

static int own(vrt_model *m, void *p, vrt_err *err)
{
    if (vrt_grow(&m->owned_, &m->cap_owned_, (size_t)m->n_owned_ + 1, sizeof *m->owned_)) {
        m->be->free(m->be, p);
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    }
    m->owned_[m->n_owned_++] = p;
    return 0;
}

static void *dev_alloc(vrt_model *m, size_t bytes, vrt_err *err)
{
    void *p = m->be->alloc(m->be, bytes, err);
    if (!p)
        return NULL;
    if (own(m, p, err))
        return NULL;
    return p;
}

static int st_elem_bytes(int st_dtype)
{
    switch (st_dtype) {
    case VRT_ST_F32: return 4;
    case VRT_ST_F16:
    case VRT_ST_BF16: return 2;
    }
    return 0;
}

/* Puts checkpoint tensor t on the backend as dtype want (VRT_DT_F16/F32). */
static int place(vrt_model *m, const vrt_st_tensor *t, int want, int64_t rows, int64_t cols,
                 vrt_weight *w, vrt_err *err)
{
    int eb = st_elem_bytes(t->dtype);
    if (!eb)
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "%s: tensor %s has dtype %s; unquantized weights must be F32, F16 or "
                           "BF16",
                           t->file ? t->file : "checkpoint", t->name, vrt_st_dtype_name(t->dtype));
    int64_t n = rows * cols;
    size_t out_bytes = (size_t)n * (want == VRT_DT_F16 ? 2 : 4);
    w->rows = rows;
    w->cols = cols;
    w->dtype = want;
    m->weight_bytes += (int64_t)out_bytes;
    int same = (t->dtype == VRT_ST_F32 && want == VRT_DT_F32) ||
               (t->dtype == VRT_ST_F16 && want == VRT_DT_F16);
    if (same && m->be->host_memory && ((uintptr_t)t->data % (uintptr_t)eb) == 0) {
        w->data = t->data; /* in place from the mapping */
        return 0;
    }
    void *dst = dev_alloc(m, out_bytes, err);
    if (!dst)
        return vrt_err_prefix(err, "tensor %s: ", t->name);
    void *host = m->be->host_memory ? dst : malloc(out_bytes);
    if (!host)
        return vrt_err_set(err, VRT_ENOMEM, "tensor %s: out of host memory (%zu bytes)", t->name,
                           out_bytes);
    int rc;
    if (want == VRT_DT_F16) {
        uint64_t overflow = 0;
        rc = vrt_st_to_f16(t, host, &overflow, err);
        if (!rc && overflow)
            VRT_WARN("tensor %s: %llu values overflow float16 and became infinite (the V100 "
                     "has no bfloat16); the model may produce NaN: try model.dtype = "
                     "\"float32\" on cpu",
                     t->name, (unsigned long long)overflow);
    } else {
        rc = vrt_st_to_f32(t, host, err);
    }
    if (!rc && host != dst)
        rc = m->be->copy_to_device(m->be, dst, host, out_bytes, err);
    if (host != dst)
        free(host);
    m->copied_bytes += (int64_t)out_bytes;
    w->data = dst;
    return rc;
}

/* Loading progress, on stderr: a bar redrawn in place on a terminal; else
 * (Kubernetes logs, a file) an INFO line when loading starts, one at most
 * every VRT_PROGRESS_LOG_S seconds, and one at the end. Bytes are those of
 * the checkpoint's tensors as stored. */
#define VRT_PROGRESS_LOG_S 5.0

typedef struct loader {
    vrt_model *m;
    int done, total;
    int tty; /* draw the bar */
    int log; /* log lines (no terminal) */
    int64_t done_bytes, total_bytes;
    double t0, last_log; /* seconds (monotonic) */
} loader;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Bytes in the unit of scale (GiB from 1 GiB on, else MiB): "%.2f GiB". */
static double in_unit(int64_t bytes, int64_t scale, const char **unit)
{
    int gib = scale >= ((int64_t)1 << 30);
    *unit = gib ? "GiB" : "MiB";
    return (double)bytes / (gib ? 1073741824.0 : 1048576.0);
}

static void progress_start(loader *ld)
{
    ld->t0 = ld->last_log = mono_s();
    for (int i = 0; i < vrt_checkpoint_count(&ld->m->ck); i++)
        ld->total_bytes += (int64_t)vrt_checkpoint_tensor(&ld->m->ck, i)->nbytes;
    const char *u;
    double t = in_unit(ld->total_bytes, ld->total_bytes, &u);
    if (ld->log)
        VRT_INFO("loading %s: %d tensors, %.2f %s", ld->m->ck.dir, ld->total, t, u);
}

/* One more tensor (or quantized linear) of bytes bytes is loaded. */
static void progress(loader *ld, int64_t bytes)
{
    ld->done++;
    ld->done_bytes += bytes;
    if (ld->log) {
        double now = mono_s();
        const char *u;
        double d = in_unit(ld->done_bytes, ld->total_bytes, &u);
        double t = in_unit(ld->total_bytes, ld->total_bytes, &u);
        if (ld->done == ld->total)
            VRT_INFO("loaded %s: %d tensors, %.2f %s in %.1f s", ld->m->ck.dir, ld->done, d, u,
                     now - ld->t0);
        else if (now - ld->last_log >= VRT_PROGRESS_LOG_S) {
            ld->last_log = now;
            VRT_INFO("loading: %d/%d tensors, %.2f/%.2f %s, %d%%", ld->done, ld->total, d, t, u,
                     ld->total_bytes ? (int)(100 * ld->done_bytes / ld->total_bytes)
                                     : 100 * ld->done / ld->total);
        }
    }
    if (!ld->tty)
        return;
    int width = 30, fill = ld->total ? ld->done * width / ld->total : width;
    fprintf(stderr, "\rloading [%.*s%*s] %d/%d tensors", fill,
            "==============================", width - fill, "", ld->done, ld->total);
    if (ld->done == ld->total)
        fputc('\n', stderr);
    fflush(stderr);
}

static int64_t tensor_bytes(const vrt_st_tensor *t)
{
    return t ? (int64_t)t->nbytes : 0;
}

/* The stored bytes of a quantized linear prefix.{qweight,qzeros,scales,g_idx}. */
static int64_t q4_bytes(const vrt_checkpoint *ck, const char *prefix)
{
    static const char *const parts[] = {"qweight", "qzeros", "scales", "g_idx"};
    int64_t n = 0;
    char name[320];
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        snprintf(name, sizeof name, "%s.%s", prefix, parts[i]);
        n += tensor_bytes(vrt_checkpoint_find(ck, name));
    }
    return n;
}

/* A 2-D weight [rows][cols] named name. */
static int load_mat(loader *ld, const char *name, int64_t rows, int64_t cols, vrt_weight *w,
                    vrt_err *err)
{
    const vrt_st_tensor *t;
    int64_t shape[2] = {rows, cols};
    int rc = vrt_checkpoint_get(&ld->m->ck, name, 2, shape, &t, err);
    if (!rc)
        rc = place(ld->m, t, ld->m->wdtype, rows, cols, w, err);
    progress(ld, rc ? 0 : tensor_bytes(t));
    return rc;
}

/* A 1-D tensor (norm weight), always kept in f32: it is tiny and f16
 * would only add rounding. */
static int load_vec(loader *ld, const char *name, int64_t n, vrt_weight *w, vrt_err *err)
{
    const vrt_st_tensor *t;
    int rc = vrt_checkpoint_get(&ld->m->ck, name, 1, &n, &t, err);
    if (!rc)
        rc = place(ld->m, t, VRT_DT_F32, 1, n, w, err);
    progress(ld, rc ? 0 : tensor_bytes(t));
    return rc;
}

static int load_bias(loader *ld, const char *name, int64_t n, float **out, vrt_err *err)
{
    vrt_weight w;
    int rc = load_vec(ld, name, n, &w, err);
    *out = (float *)w.data;
    return rc;
}

/* Places a repacked int4 linear on the backend as a VRT_DT_Q4 weight. */
static int place_q4(vrt_model *m, vrt_q4_host *h, vrt_weight *w, vrt_err *err)
{
    const int64_t words = vrt_q4_kp(h->K) / 8, ng = h->desc.n_groups;
    struct {
        const void *src;
        size_t bytes;
        void *dst;
    } arr[4] = {{h->qweight, (size_t)(h->N * words) * 4, NULL},
                {h->scales, (size_t)(h->N * ng) * 2, NULL},
                {h->zeros, (size_t)(h->N * ng) * 2, NULL},
                {h->perm, h->perm ? (size_t)h->K * 4 : 0, NULL}};
    for (int i = 0; i < 4; i++) {
        if (!arr[i].src)
            continue;
        arr[i].dst = dev_alloc(m, arr[i].bytes, err);
        if (!arr[i].dst)
            return err ? err->code : VRT_ENOMEM;
        int rc = m->be->copy_to_device(m->be, arr[i].dst, arr[i].src, arr[i].bytes, err);
        if (rc)
            return rc;
        m->weight_bytes += (int64_t)arr[i].bytes;
        m->copied_bytes += (int64_t)arr[i].bytes;
    }
    vrt_q4 *d = &m->q4_desc[m->n_q4++];
    *d = (vrt_q4){arr[0].dst, arr[1].dst,         arr[2].dst,
                  arr[3].dst, h->desc.group_size, h->desc.n_groups};
    *w = (vrt_weight){.data = d->qweight, .dtype = VRT_DT_Q4, .rows = h->N, .cols = h->K, .q4 = d};
    return 0;
}

/* True when all n values of an F16/F32/BF16 vector are zero. */
static int all_zero(const vrt_st_tensor *t, int64_t n, vrt_err *err, int *rc)
{
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) {
        *rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");
        return 0;
    }
    *rc = vrt_st_to_f32(t, v, err);
    int z = 1;
    for (int64_t i = 0; !*rc && i < n && z; i++)
        z = v[i] == 0.0f;
    free(v);
    return z;
}

/* A projection prefix ("model.layers.0.self_attn.q_proj") of [rows][cols]:
 * the dense prefix.weight, or on a quantized checkpoint the int4 linear
 * prefix.qweight/qzeros/scales(/g_idx) unless modules_to_not_convert lists
 * it. Old AutoGPTQ files carry a prefix.bias for every quantized linear
 * (docs/formats.md §3.1): when the architecture has no bias there, an all-zero
 * one is ignored and a non-zero one is used (*bias). */
static int load_proj(loader *ld, const char *prefix, int64_t rows, int64_t cols, vrt_weight *w,
                     float **bias, int arch_bias, vrt_err *err)
{
    vrt_model *m = ld->m;
    char name[300];
    snprintf(name, sizeof name, "%s.qweight", prefix);
    int quant = m->qc.method != VRT_QUANT_NONE && !vrt_quant_not_converted(&m->qc, prefix);
    if (quant && !vrt_checkpoint_find(&m->ck, name)) {
        snprintf(name, sizeof name, "%s.weight", prefix);
        if (!vrt_checkpoint_find(&m->ck, name)) {
            progress(ld, 0);
            return vrt_err_set(err, VRT_ENOENT,
                               "tensor %s.qweight not found in checkpoint %s: %s says the model "
                               "is %s-quantized and %s is not in modules_to_not_convert (and "
                               "there is no unquantized %s.weight either)",
                               prefix, m->ck.dir, m->qc.source, vrt_quant_method_name(m->qc.method),
                               prefix, prefix);
        }
        VRT_WARN("%s: no %s.qweight, loading the unquantized %s.weight", m->ck.dir, prefix, prefix);
        quant = 0;
    }
    if (!quant) {
        snprintf(name, sizeof name, "%s.weight", prefix);
        if (m->qc.method != VRT_QUANT_NONE && !vrt_checkpoint_find(&m->ck, name)) {
            progress(ld, 0);
            return vrt_err_set(err, VRT_ENOENT,
                               "tensor %s not found in checkpoint %s: %s lists %s in "
                               "modules_to_not_convert, so it must be stored unquantized",
                               name, m->ck.dir, m->qc.source, prefix);
        }
        return load_mat(ld, name, rows, cols, w, err);
    }
    vrt_q4_host h;
    int rc = vrt_q4_load(&h, &m->ck, prefix, rows, cols, &m->qc, err);
    if (!rc)
        rc = place_q4(m, &h, w, err);
    vrt_q4_host_free(&h);
    snprintf(name, sizeof name, "%s.bias", prefix);
    const vrt_st_tensor *bt = vrt_checkpoint_find(&m->ck, name);
    if (!rc && !arch_bias && bt) {
        int64_t shape = rows;
        rc = vrt_checkpoint_get(&m->ck, name, 1, &shape, &bt, err);
        if (!rc && !all_zero(bt, rows, err, &rc) && !rc) {
            VRT_INFO("%s: %s is not all zero: applying it", m->ck.dir, name);
            vrt_weight bw;
            rc = place(m, bt, VRT_DT_F32, 1, rows, &bw, err);
            *bias = (float *)bw.data;
        }
    }
    progress(ld, q4_bytes(&m->ck, prefix) + tensor_bytes(bt));
    return rc;
}

/* The checkpoint name of a tensor of the model's architecture (arch.h's
 * tensor map) into buf[256]. */
static int tname(const vrt_model *m, int role, int layer, const char *suffix, char *buf,
                 vrt_err *err)
{
    const vrt_arch_info *row = vrt_arch_get(m->cfg.arch);
    if (!row)
        return vrt_err_set(err, VRT_EINTERNAL, "architecture %d is not in the table", m->cfg.arch);
    return vrt_arch_tensor(row, role, layer, suffix, buf, 256, err);
}

/* The norm weight and the projections (bias after them) of one block of a
 * layer: attention (q, k, v, o) or MLP (gate, up, down). */
typedef struct block_spec {
    int norm_role;
    vrt_weight *norm;
    int n;
    struct {
        int role;
        int64_t rows, cols;
        vrt_weight *w;
        float **bias;
        bool has_bias;
    } proj[4];
} block_spec;

static int load_block(loader *ld, const block_spec *b, int l, int64_t D, vrt_err *err)
{
    vrt_model *m = ld->m;
    char name[256];
    int rc = tname(m, b->norm_role, l, ".weight", name, err);
    if (!rc)
        rc = load_vec(ld, name, D, b->norm, err);
    for (int i = 0; i < b->n && !rc; i++) {
        rc = tname(m, b->proj[i].role, l, "", name, err);
        if (!rc)
            rc = load_proj(ld, name, b->proj[i].rows, b->proj[i].cols, b->proj[i].w,
                           b->proj[i].bias, b->proj[i].has_bias, err);
    }
    for (int i = 0; i < b->n && !rc; i++) {
        if (!b->proj[i].has_bias)
            continue;
        rc = tname(m, b->proj[i].role, l, ".bias", name, err);
        if (!rc)
            rc = load_bias(ld, name, b->proj[i].rows, b->proj[i].bias, err);
    }
    return rc;
}

static int load_weights(loader *ld, vrt_err *err)
{
    vrt_model *m = ld->m;
    const vrt_model_config *c = &m->cfg;
    const vrt_arch_desc *a = &m->arch;
    int64_t D = c->hidden_size, F = c->intermediate_size, V = c->vocab_size;
    int64_t qd = (int64_t)c->num_attention_heads * c->head_dim;
    int64_t kvd = (int64_t)c->num_key_value_heads * c->head_dim;
    int L = c->num_hidden_layers;
    ld->total =
        2 + (a->tied_embeddings ? 0 : 1) + L * (9 + 3 * a->qkv_bias + a->o_bias + 3 * a->mlp_bias);
    progress_start(ld);
    m->layers = calloc((size_t)L, sizeof *m->layers);
    m->q4_desc = calloc((size_t)L * 7 + 1, sizeof *m->q4_desc);
    if (!m->layers || !m->q4_desc)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    char name[256];
    int rc = tname(m, VRT_T_EMBED, 0, ".weight", name, err);
    if (!rc)
        rc = load_mat(ld, name, V, D, &m->embed, err);
    for (int l = 0; l < L && !rc; l++) {
        vrt_layer_weights *lw = &m->layers[l];
        const block_spec attn = {VRT_T_ATTN_NORM,
                                 &lw->attn_norm,
                                 4,
                                 {{VRT_T_Q, qd, D, &lw->wq, &lw->bq, a->qkv_bias},
                                  {VRT_T_K, kvd, D, &lw->wk, &lw->bk, a->qkv_bias},
                                  {VRT_T_V, kvd, D, &lw->wv, &lw->bv, a->qkv_bias},
                                  {VRT_T_O, D, qd, &lw->wo, &lw->bo, a->o_bias}}};
        const block_spec mlp = {VRT_T_FFN_NORM,
                                &lw->ffn_norm,
                                3,
                                {{VRT_T_GATE, F, D, &lw->w_gate, &lw->b_gate, a->mlp_bias},
                                 {VRT_T_UP, F, D, &lw->w_up, &lw->b_up, a->mlp_bias},
                                 {VRT_T_DOWN, D, F, &lw->w_down, &lw->b_down, a->mlp_bias}}};
        rc = load_block(ld, &attn, l, D, err);
        if (!rc)
            rc = load_block(ld, &mlp, l, D, err);
    }
    if (!rc)
        rc = tname(m, VRT_T_FINAL_NORM, 0, ".weight", name, err);
    if (!rc)
        rc = load_vec(ld, name, D, &m->final_norm, err);
    if (rc)
        return rc;
    if (a->tied_embeddings) {
        m->lm_head = m->embed;
        return 0;
    }
    if ((rc = tname(m, VRT_T_LM_HEAD, 0, ".weight", name, err)) != 0)
        return rc;
    if (!vrt_checkpoint_find(&m->ck, name))
        return vrt_err_set(err, VRT_ENOENT,
                           "%s: tensor %s is missing and tie_word_embeddings is false in "
                           "config.json; the checkpoint is incomplete",
                           m->ck.dir, name);
    return load_mat(ld, name, V, D, &m->lm_head, err);
}

static int parse_dtype(const char *s, int *auto_dtype, int *dt, vrt_err *err)
{
    *auto_dtype = 0;
    if (!s || strcmp(s, "float16") == 0 || strcmp(s, "f16") == 0) {
        *dt = VRT_DT_F16;
        return 0;
    }
    if (strcmp(s, "float32") == 0 || strcmp(s, "f32") == 0) {
        *dt = VRT_DT_F32;
        return 0;
    }
    if (strcmp(s, "auto") == 0) {
        *auto_dtype = 1;
        *dt = VRT_DT_F16;
        return 0;
    }
    return vrt_err_set(err, VRT_EINVAL,
                       "model.dtype \"%s\" is not supported; use \"float16\", \"float32\" or "
                       "\"auto\" (bfloat16 checkpoints run as float16: the V100 has no bf16)",
                       s);
}

int vrt_model_load(vrt_model **out, const char *dir, vrt_backend *be,
                   const vrt_model_load_opts *opts, vrt_err *err)
{
    *out = NULL;
    if (!be)
        return vrt_err_set(err, VRT_EINVAL, "vrt_model_load: no backend");
    vrt_model *m = calloc(1, sizeof *m);
    if (!m)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    m->be = be;
    int auto_dtype;
    int rc = parse_dtype(opts ? opts->dtype : NULL, &auto_dtype, &m->wdtype, err);
    if (!rc)
        rc = vrt_model_config_load(&m->cfg, dir, err);
    if (!rc)
        rc = vrt_arch_describe(&m->cfg, &m->arch, err);
    if (!rc)
        rc = vrt_checkpoint_open(&m->ck, dir, err);
    if (!rc)
        rc = vrt_quant_config_load(&m->qc, dir, err);
    if (!rc && opts && opts->quantize)
        rc = vrt_quant_config_agrees(&m->qc, opts->quantize, err);
    if (!rc && auto_dtype) {
        /* The storage dtype of the embedding decides (BF16 runs as F16). */
        char name[256];
        rc = tname(m, VRT_T_EMBED, 0, ".weight", name, err);
        const vrt_st_tensor *t = rc ? NULL : vrt_checkpoint_find(&m->ck, name);
        m->wdtype = t && t->dtype == VRT_ST_F32 ? VRT_DT_F32 : VRT_DT_F16;
    }
    if (!rc) {
        vrt_op ops[VRT_OP_COUNT];
        int n_ops = vrt_arch_ops(&m->arch, ops, VRT_OP_COUNT);
        for (int i = 0; i < n_ops && !rc; i++)
            if (!be->supports_op(be, ops[i], m->wdtype))
                rc = vrt_err_set(err, VRT_EUNSUPPORTED,
                                 "backend %s cannot run %s with %s weights; set model.dtype to "
                                 "another value or use device.kind = \"cpu\"",
                                 be->name, vrt_op_name(ops[i]), vrt_dtype_name(m->wdtype));
        if (!rc && m->qc.method != VRT_QUANT_NONE && !be->supports_op(be, VRT_OP_MATMUL, VRT_DT_Q4))
            rc = vrt_err_set(err, VRT_EUNSUPPORTED,
                             "backend %s cannot run int4 (%s) matmuls; use device.kind = "
                             "\"cpu\" or the fp16 model",
                             be->name, vrt_quant_method_name(m->qc.method));
    }
    if (!rc) {
        int show = !(opts && opts->quiet);
        loader ld = {.m = m, .tty = show && isatty(2), .log = show && !isatty(2)};
        rc = load_weights(&ld, err);
    }
    if (!rc) {
        m->inv_freq_host = malloc((size_t)(m->arch.rot_dim / 2 + 1) * sizeof(float));
        if (!m->inv_freq_host)
            rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");
        m->inv_freq_len = -1;
    }
    if (rc) {
        vrt_err_prefix(err, "loading model %s: ", dir);
        vrt_model_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

static void ws_free(vrt_model *m);

void vrt_model_free(vrt_model *m)
{
    if (!m)
        return;
    vrt__model_graphs_free(m);
    ws_free(m);
    for (int i = 0; i < m->n_owned_; i++)
        m->be->free(m->be, m->owned_[i]);
    free(m->owned_);
    free(m->layers);
    free(m->q4_desc);
    vrt_quant_config_free(&m->qc);
    free(m->inv_freq_host);
    vrt_checkpoint_close(&m->ck);
    free(m);
}

/* ---- KV cache ------------------------------------------------------------ */

int64_t vrt_kv_block_bytes(const vrt_model_config *c, int block_size)
{
    return 2 /* K and V */ * (int64_t)c->num_hidden_layers * block_size * c->num_key_value_heads *
           c->head_dim * 2 /* fp16 */;
}

int vrt_kv_cache_init(vrt_kv_cache *kv, const vrt_model *m, int num_blocks, int block_size,
                      vrt_err *err)
{
    memset(kv, 0, sizeof *kv);
    if (num_blocks <= 0 || block_size <= 0)
        return vrt_err_set(err, VRT_EINVAL, "KV cache: %d blocks of %d tokens", num_blocks,
                           block_size);
    kv->be = m->be;
    kv->num_blocks = num_blocks;
    kv->block_size = block_size;
    kv->n_layers = m->cfg.num_hidden_layers;
    kv->n_kv_heads = m->cfg.num_key_value_heads;
    kv->head_dim = m->cfg.head_dim;
    kv->k = calloc((size_t)kv->n_layers, sizeof *kv->k);
    kv->v = calloc((size_t)kv->n_layers, sizeof *kv->v);
    if (!kv->k || !kv->v) {
        vrt_kv_cache_free(kv);
        return vrt_err_set(err, VRT_ENOMEM, "KV cache: out of memory");
    }
    size_t bytes = (size_t)num_blocks * block_size * kv->n_kv_heads * kv->head_dim * 2;
    for (int l = 0; l < kv->n_layers; l++) {
        kv->k[l] = m->be->alloc(m->be, bytes, err);
        kv->v[l] = kv->k[l] ? m->be->alloc(m->be, bytes, err) : NULL;
        if (!kv->v[l]) {
            vrt_kv_cache_free(kv);
            return vrt_err_prefix(err, "KV cache of %d blocks x %d tokens: ", num_blocks,
                                  block_size);
        }
    }
    return 0;
}

void vrt_kv_cache_free(vrt_kv_cache *kv)
{
    for (int l = 0; kv->be && l < kv->n_layers; l++) {
        if (kv->k && kv->k[l])
            kv->be->free(kv->be, kv->k[l]);
        if (kv->v && kv->v[l])
            kv->be->free(kv->be, kv->v[l]);
    }
    free(kv->k);
    free(kv->v);
    memset(kv, 0, sizeof *kv);
}

/* ---- workspace ------------------------------------------------------------ */

static void ws_free(vrt_model *m)
{
    vrt_workspace *w = &m->ws;
    void *ptrs[] = {w->x,     w->xn,   w->q,       w->k,       w->v,           w->attn,
                    w->gate,  w->up,   w->out_h,   w->logits,  w->tokens,      w->pos,
                    w->slots, w->rows, w->q_start, w->ctx_len, w->block_table, w->inv_freq};
    for (size_t i = 0; i < sizeof ptrs / sizeof ptrs[0]; i++)
        if (ptrs[i])
            m->be->free(m->be, ptrs[i]);
    uint64_t epoch = w->epoch;
    memset(w, 0, sizeof *w);
    w->epoch = epoch + 1; /* recorded graphs point to the freed buffers */
}

int vrt__model_workspace(vrt_model *m, int T, int n_out, int n_seqs, int max_blocks, vrt_err *err)
{
    vrt_workspace *w = &m->ws;
    if (T <= w->max_tokens && n_out <= w->max_out && n_seqs <= w->max_seqs &&
        max_blocks <= w->max_blocks && w->x)
        return 0;
    int nT = T > w->max_tokens ? T : w->max_tokens;
    int nO = n_out > w->max_out ? n_out : w->max_out;
    int nS = n_seqs > w->max_seqs ? n_seqs : w->max_seqs;
    int nB = max_blocks > w->max_blocks ? max_blocks : w->max_blocks;
    ws_free(m);
    const vrt_model_config *c = &m->cfg;
    size_t D = (size_t)c->hidden_size, F = (size_t)c->intermediate_size, V = (size_t)c->vocab_size;
    size_t qd = (size_t)c->num_attention_heads * c->head_dim;
    size_t kvd = (size_t)c->num_key_value_heads * c->head_dim;
    size_t t = (size_t)nT, o = (size_t)(nO ? nO : 1), s = (size_t)nS;
    struct {
        void **p;
        size_t bytes;
    } want[] = {
        {(void **)&w->x, t * D * 4},
        {(void **)&w->xn, t * D * 4},
        {(void **)&w->q, t * qd * 4},
        {(void **)&w->k, t * kvd * 4},
        {(void **)&w->v, t * kvd * 4},
        {(void **)&w->attn, t * qd * 4},
        {(void **)&w->gate, t * F * 4},
        {(void **)&w->up, t * F * 4},
        {(void **)&w->out_h, o * D * 4},
        {(void **)&w->logits, o * V * 4},
        {(void **)&w->tokens, t * 4},
        {(void **)&w->pos, t * 4},
        {(void **)&w->slots, t * 4},
        {(void **)&w->rows, o * 4},
        {(void **)&w->q_start, (s + 1) * 4},
        {(void **)&w->ctx_len, s * 4},
        {(void **)&w->block_table, s * (size_t)nB * 4},
        {(void **)&w->inv_freq, (size_t)(m->arch.rot_dim / 2 + 1) * 4},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        *want[i].p = m->be->alloc(m->be, want[i].bytes, err);
        if (!*want[i].p) {
            ws_free(m);
            return vrt_err_prefix(err, "workspace for %d tokens: ", nT);
        }
    }
    w->max_tokens = nT;
    w->max_out = nO;
    w->max_seqs = nS;
    w->max_blocks = nB;
    m->inv_freq_len = -1; /* the device copy is gone */
    return 0;
}
