/* quantize.c — the driver of `v100rt quantize` (quantize.h): reads a model
 * directory, runs calibration through the model's forward pass with the
 * capture hook, quantizes each decoder layer's linears with quant_algo.h
 * and writes the GPTQ v1 or AutoAWQ GEMM checkpoint with the safetensors
 * writer, plus config.json's quantization_config and the method's own
 * config file (quantize_config.json / quant_config.json).
 */
#include "model/quantize.h"

#include "backend/backend.h"
#include "backend/half.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "model/capture.h"
#include "model/checkpoint.h"
#include "model/hf_config.h"
#include "model/model.h"
#include "model/quant_algo.h"
#include "model/safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define N_LIN 7
enum { LQ, LK, LV, LO, LGATE, LUP, LDOWN };
static const char *const lin_name[N_LIN] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
/* The capture point (input) of each linear. */
static const int lin_point[N_LIN] = {VRT_CAP_ATTN_IN, VRT_CAP_ATTN_IN, VRT_CAP_ATTN_IN,
                                     VRT_CAP_O_IN,    VRT_CAP_MLP_IN,  VRT_CAP_MLP_IN,
                                     VRT_CAP_DOWN_IN};
static const char *const point_name[VRT_CAP_COUNT] = {"q/k/v", "o", "gate/up", "down"};

const char *vrt_qmethod_name(int method)
{
    switch (method) {
    case VRT_QM_RTN: return "rtn";
    case VRT_QM_GPTQ: return "gptq";
    case VRT_QM_AWQ: return "awq";
    }
    return "?";
}

void vrt_quantize_opts_init(vrt_quantize_opts *o)
{
    memset(o, 0, sizeof *o);
    o->method = VRT_QM_GPTQ;
    o->bits = 4;
    o->group_size = 128;
    o->damp_percent = 0.01;
    o->samples = 128;
    o->seqlen = 512;
    o->awq_grid = 20;
    o->awq_max_rows = 2048;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- files ------------------------------------------------------------------ */

static int copy_file(const char *in_dir, const char *out_dir, const char *name, vrt_err *err)
{
    char *src = vrt_path_join(in_dir, name), *data = NULL;
    size_t len = 0;
    if (!src)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    int rc = vrt_read_file(src, (size_t)1 << 30, name, 1, &data, &len, err);
    free(src);
    if (rc == 1)
        return 0; /* absent: nothing to copy */
    if (!rc)
        rc = vrt_write_file(out_dir, name, data, len, err);
    free(data);
    return rc;
}

static int prepare_out_dir(const char *in_dir, const char *dir, bool force, vrt_err *err)
{
    char a[4096], b[4096];
    if (realpath(in_dir, a) && realpath(dir, b) && strcmp(a, b) == 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "OUT_DIR %s is the input model directory; write to another directory",
                           dir);
    /* Files of another format left there would confuse loaders. */
    static const char *const stale[] = {"model.safetensors.index.json", "quantize_config.json",
                                        "quant_config.json"};
    return vrt_prepare_out_dir(dir, force, stale, sizeof stale / sizeof stale[0], err);
}

/* ---- the state of one run --------------------------------------------------- */

typedef struct qrun {
    const vrt_quantize_opts *o;
    vrt_model_config cfg;
    vrt_checkpoint ck; /* the input weights (RTN reads only this) */
    vrt_backend *be;   /* gptq/awq: cpu backend running the model */
    vrt_model *m;
    vrt_kv_cache kv;
    int kv_ok;
    int n_samples, seqlen;
    int32_t *table; /* [max_blocks] identity block table */
    float *logits;  /* [V]: the forward's output row (calibration stops before it) */
    int max_blocks;
    void **keep; /* buffers the model points at (dequantized linears, folded norms) */
    int n_keep;
    size_t cap_keep;
    vrt_st_writer w;
    int64_t N[N_LIN], K[N_LIN];
    int quantizable[N_LIN]; /* 0: written as F16 .weight */
    char *kept_names;       /* AWQ modules_to_not_convert, JSON array items */
    size_t kept_len;
} qrun;

static int keep(qrun *q, void *p, vrt_err *err)
{
    if (vrt_grow(&q->keep, &q->cap_keep, (size_t)q->n_keep + 1, sizeof *q->keep))
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    q->keep[q->n_keep++] = p;
    return 0;
}

/* Reads tensor name [rows][cols] (F32/F16/BF16) as float32 (malloc'd). */
static int read_f32(qrun *q, const char *name, int64_t rows, int64_t cols, float **out,
                    vrt_err *err)
{
    const vrt_st_tensor *t;
    int64_t shape[2] = {rows, cols};
    int rc = rows == 1 ? vrt_checkpoint_get(&q->ck, name, 1, &cols, &t, err)
                       : vrt_checkpoint_get(&q->ck, name, 2, shape, &t, err);
    if (rc)
        return rc;
    float *p = malloc((size_t)(rows * cols) * sizeof *p);
    if (!p)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory reading %s", name);
    rc = vrt_st_to_f32(t, p, err);
    if (rc) {
        free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static int add_f16(qrun *q, const char *name, const float *x, int ndim, const int64_t *shape,
                   vrt_err *err)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    uint16_t *h = malloc((size_t)n * 2);
    if (!h)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    vrt_f32_to_f16_n(h, x, (size_t)n);
    int rc = vrt_st_writer_add(&q->w, name, VRT_ST_F16, ndim, shape, h, (uint64_t)n * 2, err);
    free(h);
    return rc;
}

/* ---- calibration --------------------------------------------------------------- */

typedef struct capture_ctx {
    int layer, stop_after; /* stop the forward after this point of this layer */
    unsigned mask;         /* points to record */
    int reached;
    vrt_hessian *h; /* gptq: [VRT_CAP_COUNT] Hessians of the recorded points */
    /* awq, per point: Σ|x| per channel, rows seen, kept rows */
    double *absum[VRT_CAP_COUNT];
    int64_t seen[VRT_CAP_COUNT];
    float *rows[VRT_CAP_COUNT];
    int64_t n_rows[VRT_CAP_COUNT], max_rows, row_stride;
} capture_ctx;

static int on_capture(void *ud, int layer, int which, const float *x, int T, int K, vrt_err *err)
{
    capture_ctx *c = ud;
    if (layer != c->layer)
        return 0;
    if (c->mask & (1u << which)) {
        if (c->h) {
            vrt_hessian_add(&c->h[which], x, T);
        } else {
            double *a = c->absum[which];
            for (int t = 0; t < T; t++) {
                const float *xt = x + (int64_t)t * K;
                for (int k = 0; k < K; k++)
                    a[k] += fabsf(xt[k]);
                /* Every row_stride-th row overall, up to max_rows. */
                int64_t idx = c->seen[which] + t;
                if (idx % c->row_stride == 0 && c->n_rows[which] < c->max_rows)
                    memcpy(c->rows[which] + c->n_rows[which]++ * K, xt, (size_t)K * sizeof *xt);
            }
            c->seen[which] += T;
        }
    }
    if (which == c->stop_after) {
        c->reached = 1;
        return vrt_err_set(err, VRT_ECANCELED, "calibration capture done");
    }
    return 0;
}

/* Runs every calibration sample through the model up to (layer, stop_after). */
static int run_calibration(qrun *q, capture_ctx *c, vrt_err *err)
{
    int rc = vrt__model_set_capture(q->m, on_capture, c, err);
    for (int s = 0; s < q->n_samples && !rc; s++) {
        int32_t q_start[2] = {0, q->seqlen}, ctx[1] = {q->seqlen};
        vrt_batch b = {.n_seqs = 1,
                       .tokens = q->o->calib_ids + (int64_t)s * q->seqlen,
                       .q_start = q_start,
                       .ctx_len = ctx,
                       .block_table = q->table,
                       .max_blocks_per_seq = q->max_blocks};
        c->reached = 0;
        rc = vrt_model_forward(q->m, &q->kv, &b, q->logits, err);
        if (rc == VRT_ECANCELED && c->reached)
            rc = 0;
        else if (!rc)
            rc = vrt_err_set(err, VRT_EINTERNAL,
                             "calibration: the forward pass never reached layer %d", c->layer);
        else
            vrt_err_prefix(err, "calibration sample %d: ", s);
    }
    vrt_err e2 = {0};
    vrt__model_set_capture(q->m, NULL, NULL, &e2);
    return rc;
}

/* Points the model's layer at new float16 weights (a dequantized or
 * folded linear) so that later calibration passes run with them. */
static int set_linear(qrun *q, int l, int i, const float *W, vrt_err *err)
{
    int64_t n = q->N[i] * q->K[i];
    uint16_t *h = malloc((size_t)n * 2);
    if (!h)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    vrt_f32_to_f16_n(h, W, (size_t)n);
    int rc = keep(q, h, err);
    if (rc) {
        free(h);
        return rc;
    }
    vrt_layer_weights *lw = &q->m->layers[l];
    vrt_weight *dst[N_LIN] = {&lw->wq,     &lw->wk,   &lw->wv,    &lw->wo,
                              &lw->w_gate, &lw->w_up, &lw->w_down};
    *dst[i] = (vrt_weight){.data = h, .dtype = VRT_DT_F16, .rows = q->N[i], .cols = q->K[i]};
    return 0;
}

static int set_norm(qrun *q, vrt_weight *dst, const float *w, int64_t D, vrt_err *err)
{
    float *p = malloc((size_t)D * sizeof *p);
    if (!p)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    memcpy(p, w, (size_t)D * sizeof *p);
    int rc = keep(q, p, err);
    if (rc) {
        free(p);
        return rc;
    }
    *dst = (vrt_weight){.data = p, .dtype = VRT_DT_F32, .rows = 1, .cols = D};
    return 0;
}

/* ---- writing one linear ---------------------------------------------------------- */

static int write_linear(qrun *q, const char *prefix, const vrt_qlinear *ql, vrt_err *err)
{
    const int64_t N = ql->N, K = ql->K, ng = ql->n_groups;
    int awq = q->o->method == VRT_QM_AWQ;
    int64_t qw_shape[2] = {awq ? K : K / 8, awq ? N / 8 : N};
    int64_t qz_shape[2] = {ng, N / 8}, sc_shape[2] = {ng, N}, gi_shape[1] = {K};
    int32_t *qweight = malloc((size_t)(qw_shape[0] * qw_shape[1]) * 4);
    int32_t *qzeros = malloc((size_t)(qz_shape[0] * qz_shape[1]) * 4);
    int rc = !qweight || !qzeros ? vrt_err_set(err, VRT_ENOMEM, "out of memory") : 0;
    if (!rc)
        rc = awq ? vrt_pack_awq(ql, qweight, qzeros, err) : vrt_pack_gptq(ql, qweight, qzeros, err);
    char name[1024];
#define ADD(suffix, dt, shape, data, bytes)                                                        \
    do {                                                                                           \
        snprintf(name, sizeof name, "%s.%s", prefix, suffix);                                      \
        if (!rc)                                                                                   \
            rc = vrt_st_writer_add(&q->w, name, dt, 2, shape, data, bytes, err);                   \
    } while (0)
    ADD("qweight", VRT_ST_I32, qw_shape, qweight, (uint64_t)(qw_shape[0] * qw_shape[1]) * 4);
    ADD("qzeros", VRT_ST_I32, qz_shape, qzeros, (uint64_t)(qz_shape[0] * qz_shape[1]) * 4);
    ADD("scales", VRT_ST_F16, sc_shape, ql->scales, (uint64_t)(ng * N) * 2);
#undef ADD
    if (!rc && !awq) {
        snprintf(name, sizeof name, "%s.g_idx", prefix);
        rc = vrt_st_writer_add(&q->w, name, VRT_ST_I32, 1, gi_shape, ql->g_idx, (uint64_t)K * 4,
                               err);
    }
    free(qweight);
    free(qzeros);
    if (rc)
        vrt_err_prefix(err, "%s: ", prefix);
    return rc;
}

/* ---- one layer --------------------------------------------------------------- */

static void progress(qrun *q, int l, const char *step)
{
    if (q->o->progress)
        q->o->progress(q->o->progress_ctx, l, q->cfg.num_hidden_layers, step);
}

/* Folds 1/s into the columns k of W [N][K] (W ← W·diag(s)). */
static void scale_cols(float *W, int64_t N, int64_t K, const float *s)
{
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++)
            W[n * K + k] *= s[k];
}

static int awq_layer(qrun *q, int l, float *W[N_LIN], float *norm_attn, float *norm_ffn,
                     vrt_quantize_report *rep, vrt_err *err)
{
    const vrt_model_config *c = &q->cfg;
    const int64_t D = c->hidden_size, F = c->intermediate_size;
    const int64_t Kp[VRT_CAP_COUNT] = {D, (int64_t)c->num_attention_heads * c->head_dim, D, F};
    capture_ctx cc = {
        .layer = l, .stop_after = VRT_CAP_DOWN_IN, .mask = 0xF, .max_rows = q->o->awq_max_rows};
    int64_t total = (int64_t)q->n_samples * q->seqlen;
    cc.row_stride = total > cc.max_rows ? (total + cc.max_rows - 1) / cc.max_rows : 1;
    int rc = 0;
    for (int p = 0; p < VRT_CAP_COUNT && !rc; p++) {
        cc.absum[p] = calloc((size_t)Kp[p], sizeof(double));
        cc.rows[p] = malloc((size_t)(cc.max_rows * Kp[p]) * sizeof(float));
        if (!cc.absum[p] || !cc.rows[p])
            rc = vrt_err_set(err, VRT_ENOMEM,
                             "AWQ: out of memory for %lld calibration rows of %lld (lower the "
                             "number of rows kept)",
                             (long long)cc.max_rows, (long long)Kp[p]);
    }
    progress(q, l, "awq: calibration");
    if (!rc)
        rc = run_calibration(q, &cc, err);
    int64_t maxK = 0;
    for (int p = 0; p < VRT_CAP_COUNT; p++)
        maxK = Kp[p] > maxK ? Kp[p] : maxK;
    float *s = malloc((size_t)maxK * sizeof *s), *xmean = malloc((size_t)maxK * sizeof *xmean);
    if (!rc && (!s || !xmean))
        rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");
    /* The groups: which linears share the input, where 1/s is folded. */
    static const int grp_lin[VRT_CAP_COUNT][3] = {{LQ, LK, LV}, {LO}, {LGATE, LUP}, {LDOWN}};
    static const int grp_n[VRT_CAP_COUNT] = {3, 1, 2, 1};
    for (int p = 0; p < VRT_CAP_COUNT && !rc; p++) {
        const int64_t K = Kp[p];
        int ok = 1;
        for (int j = 0; j < grp_n[p]; j++)
            ok &= q->quantizable[grp_lin[p][j]];
        if (!ok)
            continue; /* a linear the format cannot hold stays F16: nothing to gain */
        if (p == VRT_CAP_O_IN && q->N[LV] != q->K[LO]) {
            /* GQA: o_proj's inputs are heads of v repeated; 1/s cannot be
             * folded into v_proj's rows (AutoAWQ skips it too). */
            rep->awq_o_skipped = 1;
            continue;
        }
        char step[64];
        snprintf(step, sizeof step, "awq: scales for %s", point_name[p]);
        progress(q, l, step);
        for (int64_t k = 0; k < K; k++)
            xmean[k] = (float)(cc.absum[p][k] / (double)cc.seen[p]);
        const float *Ws[3];
        int64_t Ns[3];
        for (int j = 0; j < grp_n[p]; j++) {
            Ws[j] = W[grp_lin[p][j]];
            Ns[j] = q->N[grp_lin[p][j]];
        }
        vrt_awq_result res;
        rc = vrt_awq_search(Ws, Ns, grp_n[p], K, cc.rows[p], cc.n_rows[p], xmean, q->o->group_size,
                            q->o->awq_grid, s, &res, err);
        if (rc)
            break;
        rep->awq_mean_alpha += res.alpha;
        rep->awq_groups++;
        VRT_DEBUG("layer %d %s: alpha %.3f, loss %.4g (unscaled %.4g)", l, point_name[p], res.alpha,
                  res.loss, res.loss_alpha0);
        /* W ← W·diag(s) for the group; the op before it ← ·diag(1/s). */
        for (int j = 0; j < grp_n[p]; j++)
            scale_cols(W[grp_lin[p][j]], Ns[j], K, s);
        switch (p) {
        case VRT_CAP_ATTN_IN:
            for (int64_t k = 0; k < K; k++)
                norm_attn[k] /= s[k];
            break;
        case VRT_CAP_O_IN:
            for (int64_t n = 0; n < q->N[LV]; n++)
                for (int64_t k = 0; k < q->K[LV]; k++)
                    W[LV][n * q->K[LV] + k] /= s[n];
            break;
        case VRT_CAP_MLP_IN:
            for (int64_t k = 0; k < K; k++)
                norm_ffn[k] /= s[k];
            break;
        case VRT_CAP_DOWN_IN:
            for (int64_t n = 0; n < q->N[LUP]; n++)
                for (int64_t k = 0; k < q->K[LUP]; k++)
                    W[LUP][n * q->K[LUP] + k] /= s[n];
            break;
        }
    }
    for (int p = 0; p < VRT_CAP_COUNT; p++) {
        free(cc.absum[p]);
        free(cc.rows[p]);
    }
    free(s);
    free(xmean);
    return rc;
}

static int do_layer(qrun *q, int l, vrt_quantize_report *rep, vrt_err *err)
{
    const vrt_model_config *c = &q->cfg;
    const vrt_quantize_opts *o = q->o;
    const int64_t D = c->hidden_size;
    char name[1024], prefix[N_LIN][128];
    float *W[N_LIN] = {0}, *norm_attn = NULL, *norm_ffn = NULL, *Wq = NULL;
    vrt_qlinear ql[N_LIN];
    memset(ql, 0, sizeof ql);
    int rc = 0;
    for (int i = 0; i < N_LIN && !rc; i++) {
        snprintf(prefix[i], sizeof prefix[i], "model.layers.%d.%s", l, lin_name[i]);
        snprintf(name, sizeof name, "%s.weight", prefix[i]);
        rc = read_f32(q, name, q->N[i], q->K[i], &W[i], err);
    }
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
    if (!rc)
        rc = read_f32(q, name, 1, D, &norm_attn, err);
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
    if (!rc)
        rc = read_f32(q, name, 1, D, &norm_ffn, err);
    int64_t maxnk = 0;
    for (int i = 0; i < N_LIN; i++)
        maxnk = q->N[i] * q->K[i] > maxnk ? q->N[i] * q->K[i] : maxnk;
    if (!rc && !(Wq = malloc((size_t)maxnk * sizeof *Wq)))
        rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");

    if (!rc && o->method == VRT_QM_RTN) {
        progress(q, l, "rtn");
        for (int i = 0; i < N_LIN && !rc; i++)
            rc = vrt_quant_rtn(W[i], q->N[i], q->K[i], o->group_size, o->sym, VRT_QSTYLE_GPTQ,
                               &ql[i], err);
    } else if (!rc && o->method == VRT_QM_GPTQ) {
        /* One calibration pass per layer records the Hessians of its four
         * inputs (layers before it already quantized). */
        vrt_hessian h[VRT_CAP_COUNT];
        memset(h, 0, sizeof h);
        const int64_t Kp[VRT_CAP_COUNT] = {q->K[LQ], q->K[LO], q->K[LGATE], q->K[LDOWN]};
        for (int p = 0; p < VRT_CAP_COUNT && !rc; p++)
            rc = vrt_hessian_init(&h[p], Kp[p], err);
        capture_ctx cc = {.layer = l, .stop_after = VRT_CAP_DOWN_IN, .mask = 0xF, .h = h};
        progress(q, l, "gptq: Hessians");
        if (!rc)
            rc = run_calibration(q, &cc, err);
        for (int p = 0; p < VRT_CAP_COUNT && !rc; p++) {
            char step[64];
            snprintf(step, sizeof step, "gptq: %s", point_name[p]);
            progress(q, l, step);
            vrt_hessian_finish(&h[p]);
            vrt_gptq_prep prep;
            rc = vrt_gptq_prepare(&prep, &h[p], o->act_order, o->damp_percent, err);
            for (int i = 0; i < N_LIN && !rc; i++) {
                if (lin_point[i] != p)
                    continue;
                rc = vrt_gptq_quantize(&prep, W[i], q->N[i], o->group_size, o->sym, &ql[i], err);
                if (!rc) {
                    vrt_qlinear_dequant(&ql[i], Wq);
                    rc = set_linear(q, l, i, Wq, err);
                }
                if (rc)
                    vrt_err_prefix(err, "layer %d %s: ", l, lin_name[i]);
            }
            vrt_gptq_prep_free(&prep);
        }
        for (int p = 0; p < VRT_CAP_COUNT; p++)
            vrt_hessian_free(&h[p]);
    } else if (!rc) {
        rc = awq_layer(q, l, W, norm_attn, norm_ffn, rep, err);
        progress(q, l, "awq: quantize");
        for (int i = 0; i < N_LIN && !rc; i++) {
            if (!q->quantizable[i]) {
                rc = set_linear(q, l, i, W[i], err);
                continue;
            }
            rc = vrt_quant_rtn(W[i], q->N[i], q->K[i], o->group_size, 0, VRT_QSTYLE_AWQ, &ql[i],
                               err);
            if (!rc) {
                vrt_qlinear_dequant(&ql[i], Wq);
                rc = set_linear(q, l, i, Wq, err);
            }
        }
        if (!rc)
            rc = set_norm(q, &q->m->layers[l].attn_norm, norm_attn, D, err);
        if (!rc)
            rc = set_norm(q, &q->m->layers[l].ffn_norm, norm_ffn, D, err);
    }
    /* Write the layer. */
    for (int i = 0; i < N_LIN && !rc; i++) {
        if (q->quantizable[i]) {
            rc = write_linear(q, prefix[i], &ql[i], err);
            rep->n_quantized++;
        } else {
            int64_t shape[2] = {q->N[i], q->K[i]};
            snprintf(name, sizeof name, "%s.weight", prefix[i]);
            rc = add_f16(q, name, W[i], 2, shape, err);
            rep->n_kept++;
        }
    }
    int64_t dshape[1] = {D};
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
    if (!rc)
        rc = add_f16(q, name, norm_attn, 1, dshape, err);
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
    if (!rc)
        rc = add_f16(q, name, norm_ffn, 1, dshape, err);
    for (int i = 0; i < N_LIN; i++) {
        free(W[i]);
        vrt_qlinear_free(&ql[i]);
    }
    free(norm_attn);
    free(norm_ffn);
    free(Wq);
    return rc;
}

/* ---- configs ------------------------------------------------------------------ */

static int write_json(const char *dir, const char *name, cJSON *j, vrt_err *err)
{
    char *s = cJSON_Print(j);
    if (!s)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    }
    t[n] = '\n';
    t[n + 1] = 0;
    int rc = vrt_write_file(dir, name, t, n + 1, err);
    free(t);
    return rc;
}

/* The method's config object (also config.json's quantization_config). */
static cJSON *quant_config(qrun *q, int for_config_json)
{
    const vrt_quantize_opts *o = q->o;
    cJSON *j = cJSON_CreateObject();
    if (!j)
        return NULL;
    if (o->method == VRT_QM_AWQ) {
        if (for_config_json) {
            cJSON_AddStringToObject(j, "quant_method", "awq");
            cJSON_AddBoolToObject(j, "zero_point", 1);
            cJSON_AddNumberToObject(j, "group_size", o->group_size);
            cJSON_AddNumberToObject(j, "bits", o->bits);
            cJSON_AddStringToObject(j, "version", "gemm");
            if (q->kept_len) {
                char *arr = malloc(q->kept_len + 3);
                if (arr) {
                    snprintf(arr, q->kept_len + 3, "[%s]", q->kept_names);
                    cJSON *a = cJSON_Parse(arr);
                    if (a)
                        cJSON_AddItemToObject(j, "modules_to_not_convert", a);
                    free(arr);
                }
            } else {
                cJSON_AddNullToObject(j, "modules_to_not_convert");
            }
        } else {
            /* quant_config.json as AutoAWQ / TheBloke write it. */
            cJSON_AddBoolToObject(j, "zero_point", 1);
            cJSON_AddNumberToObject(j, "q_group_size", o->group_size);
            cJSON_AddNumberToObject(j, "w_bit", o->bits);
            cJSON_AddStringToObject(j, "version", "GEMM");
        }
        return j;
    }
    cJSON_AddNumberToObject(j, "bits", o->bits);
    cJSON_AddNumberToObject(j, "group_size", o->group_size);
    cJSON_AddNumberToObject(j, "damp_percent", o->damp_percent);
    cJSON_AddBoolToObject(j, "desc_act", o->act_order);
    cJSON_AddBoolToObject(j, "static_groups", 0);
    cJSON_AddBoolToObject(j, "sym", o->sym);
    /* Layers are sequential (each calibrated on the quantized layers before
     * it) but the four inputs of a layer are recorded in one pass. */
    cJSON_AddBoolToObject(j, "true_sequential", 0);
    cJSON_AddNullToObject(j, "model_name_or_path");
    cJSON_AddStringToObject(j, "model_file_base_name", "model");
    cJSON_AddStringToObject(j, "quant_method", "gptq");
    cJSON_AddStringToObject(j, "checkpoint_format", "gptq");
    /* GPTQModel-style provenance: which algorithm filled the GPTQ format. */
    cJSON *meta = cJSON_AddObjectToObject(j, "meta");
    if (meta) {
        cJSON *qz = cJSON_AddArrayToObject(meta, "quantizer");
        char who[64];
        snprintf(who, sizeof who, "v100rt:%s", vrt_version());
        if (qz)
            cJSON_AddItemToArray(qz, cJSON_CreateString(who));
        cJSON_AddStringToObject(meta, "method", vrt_qmethod_name(o->method));
        if (o->method == VRT_QM_GPTQ) {
            cJSON_AddStringToObject(meta, "calibration", o->calib_name ? o->calib_name : "?");
            cJSON_AddNumberToObject(meta, "calibration_samples", q->n_samples);
            cJSON_AddNumberToObject(meta, "calibration_seqlen", q->seqlen);
        }
    }
    return j;
}

static int write_configs(qrun *q, const char *in_dir, const char *out_dir, vrt_err *err)
{
    char *path = vrt_path_join(in_dir, "config.json"), *text = NULL;
    if (!path)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    int rc = vrt_read_file(path, 1 << 24, "a config.json", 0, &text, NULL, err);
    cJSON *cfg = rc ? NULL : cJSON_Parse(text);
    if (!rc && !cJSON_IsObject(cfg))
        rc = vrt_err_set(err, VRT_EFORMAT, "%s: not a JSON object", path);
    free(text);
    free(path);
    cJSON *qc = rc ? NULL : quant_config(q, 1), *qf = rc ? NULL : quant_config(q, 0);
    if (!rc && (!qc || !qf))
        rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");
    if (!rc) {
        cJSON_DeleteItemFromObject(cfg, "quantization_config");
        cJSON_AddItemToObject(cfg, "quantization_config", qc);
        qc = NULL;
        /* The unquantized tensors are written as F16. */
        cJSON_DeleteItemFromObject(cfg, "torch_dtype");
        cJSON_AddStringToObject(cfg, "torch_dtype", "float16");
        if (cJSON_GetObjectItem(cfg, "dtype")) {
            cJSON_DeleteItemFromObject(cfg, "dtype");
            cJSON_AddStringToObject(cfg, "dtype", "float16");
        }
        rc = write_json(out_dir, "config.json", cfg, err);
    }
    if (!rc)
        rc = write_json(out_dir,
                        q->o->method == VRT_QM_AWQ ? "quant_config.json" : "quantize_config.json",
                        qf, err);
    cJSON_Delete(cfg);
    cJSON_Delete(qc);
    cJSON_Delete(qf);
    return rc;
}

/* ---- the whole model ----------------------------------------------------------- */

static int check_opts(const vrt_quantize_opts *o, vrt_err *err)
{
    if (o->method != VRT_QM_RTN && o->method != VRT_QM_GPTQ && o->method != VRT_QM_AWQ)
        return vrt_err_set(err, VRT_EINVAL, "quantize: unknown method %d", o->method);
    if (o->bits != 4)
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "--bits %d: only 4-bit quantization is implemented (use --bits 4)",
                           o->bits);
    if (o->group_size == 0 || o->group_size < -1)
        return vrt_err_set(err, VRT_EINVAL,
                           "--group-size %d: use -1 (one group per row) or a positive size "
                           "(128 is typical)",
                           o->group_size);
    if (o->act_order && o->method != VRT_QM_GPTQ)
        return vrt_err_set(err, VRT_EINVAL,
                           "--act-order orders columns by the GPTQ Hessian: it needs --method "
                           "gptq (AWQ's format has no g_idx)");
    if (o->sym && o->method == VRT_QM_AWQ)
        return vrt_err_set(err, VRT_EINVAL,
                           "--sym: AutoAWQ GEMM checkpoints are always asymmetric (zero_point: "
                           "true); drop --sym or use --method gptq");
    if (o->method != VRT_QM_RTN) {
        if (!o->calib_ids || o->n_calib < 2)
            return vrt_err_set(err, VRT_EINVAL,
                               "--method %s needs calibration text of at least 2 tokens "
                               "(--calibration FILE)",
                               vrt_qmethod_name(o->method));
        if (o->samples < 1 || o->seqlen < 2)
            return vrt_err_set(err, VRT_EINVAL, "--samples %d / --seqlen %d: need >= 1 / >= 2",
                               o->samples, o->seqlen);
        if (o->damp_percent <= 0 || o->damp_percent >= 1)
            return vrt_err_set(err, VRT_EINVAL, "damp_percent %g: must be in (0, 1)",
                               o->damp_percent);
        if (o->awq_grid < 2 || o->awq_max_rows < 1)
            return vrt_err_set(err, VRT_EINVAL, "AWQ grid %d / rows %lld", o->awq_grid,
                               (long long)o->awq_max_rows);
    }
    return 0;
}

static int add_kept_name(qrun *q, const char *name, vrt_err *err)
{
    size_t n = strlen(name) + 4;
    char *p = realloc(q->kept_names, q->kept_len + n + 1);
    if (!p)
        return vrt_err_set(err, VRT_ENOMEM, "out of memory");
    q->kept_names = p;
    q->kept_len +=
        (size_t)snprintf(p + q->kept_len, n + 1, "%s\"%s\"", q->kept_len ? ", " : "", name);
    return 0;
}

/* Shapes: which linears the chosen format can hold. */
static int plan_shapes(qrun *q, vrt_err *err)
{
    const vrt_model_config *c = &q->cfg;
    const int64_t D = c->hidden_size, F = c->intermediate_size;
    const int64_t qd = (int64_t)c->num_attention_heads * c->head_dim;
    const int64_t kvd = (int64_t)c->num_key_value_heads * c->head_dim;
    const int64_t N[N_LIN] = {qd, kvd, kvd, D, F, F, D}, K[N_LIN] = {D, D, D, qd, D, D, F};
    const int G = q->o->group_size;
    for (int i = 0; i < N_LIN; i++) {
        q->N[i] = N[i];
        q->K[i] = K[i];
        q->quantizable[i] = 1;
        if (q->o->method == VRT_QM_AWQ) {
            int64_t g = G == -1 ? K[i] : G;
            if (K[i] % g || N[i] % 8) {
                q->quantizable[i] = 0;
                VRT_WARN("%s (%lld x %lld) stays float16: the AWQ GEMM format needs "
                         "in_features divisible by the group size %d and out_features by 8; it "
                         "is listed in modules_to_not_convert (a --group-size dividing %lld "
                         "quantizes it)",
                         lin_name[i], (long long)N[i], (long long)K[i], G, (long long)K[i]);
                for (int l = 0; l < c->num_hidden_layers; l++) {
                    char name[128];
                    snprintf(name, sizeof name, "model.layers.%d.%s", l, lin_name[i]);
                    int rc = add_kept_name(q, name, err);
                    if (rc)
                        return rc;
                }
            }
        } else if (K[i] % 8 || N[i] % 8) {
            return vrt_err_set(err, VRT_EUNSUPPORTED,
                               "%s is %lld x %lld: the GPTQ format packs 8 inputs per int32 and "
                               "8 zero points per int32, so both sizes must be multiples of 8",
                               lin_name[i], (long long)N[i], (long long)K[i]);
        }
    }
    return 0;
}

/* The tensors written by do_layer (linears and per-layer norms). */
static int is_layer_tensor(const qrun *q, const char *name)
{
    int l, off = 0;
    if (sscanf(name, "model.layers.%d.%n", &l, &off) != 1 || off == 0 || l < 0 ||
        l >= q->cfg.num_hidden_layers)
        return 0;
    const char *rest = name + off;
    if (strcmp(rest, "input_layernorm.weight") == 0 ||
        strcmp(rest, "post_attention_layernorm.weight") == 0)
        return 1;
    for (int i = 0; i < N_LIN; i++) {
        size_t n = strlen(lin_name[i]);
        if (strncmp(rest, lin_name[i], n) == 0 && strcmp(rest + n, ".weight") == 0)
            return 1;
    }
    return 0;
}

static int copy_other_tensors(qrun *q, vrt_err *err)
{
    int rc = 0;
    for (int i = 0; i < vrt_checkpoint_count(&q->ck) && !rc; i++) {
        const vrt_st_tensor *t = vrt_checkpoint_tensor(&q->ck, i);
        if (is_layer_tensor(q, t->name))
            continue;
        if (t->dtype == VRT_ST_F32 || t->dtype == VRT_ST_BF16) {
            uint64_t n = vrt_st_numel(t);
            uint16_t *h = malloc(n * 2 + 2);
            if (!h)
                return vrt_err_set(err, VRT_ENOMEM, "out of memory");
            rc = vrt_st_to_f16(t, h, NULL, err);
            if (!rc)
                rc =
                    vrt_st_writer_add(&q->w, t->name, VRT_ST_F16, t->ndim, t->shape, h, n * 2, err);
            free(h);
        } else {
            rc = vrt_st_writer_add_ref(&q->w, t->name, t->dtype, t->ndim, t->shape, t->data,
                                       t->nbytes, err);
        }
    }
    return rc;
}

int vrt_quantize_model(const char *in_dir, const char *out_dir, const vrt_quantize_opts *o,
                       vrt_quantize_report *rep, vrt_err *err)
{
    memset(rep, 0, sizeof *rep);
    int rc = check_opts(o, err);
    if (rc)
        return rc;
    double t0 = now_s();
    qrun q;
    memset(&q, 0, sizeof q);
    q.o = o;
    vrt_st_writer_init(&q.w);
    rc = vrt_model_config_load(&q.cfg, in_dir, err);
    if (!rc && (q.cfg.attention_bias || q.cfg.mlp_bias) && o->method == VRT_QM_AWQ)
        rc = vrt_err_set(err, VRT_EUNSUPPORTED,
                         "%s: AWQ scale folding with attention_bias/mlp_bias is not "
                         "implemented; use --method gptq or rtn",
                         in_dir);
    if (!rc)
        rc = plan_shapes(&q, err);
    if (!rc)
        rc = vrt_checkpoint_open(&q.ck, in_dir, err);
    if (!rc)
        rc = prepare_out_dir(in_dir, out_dir, o->force, err);
    if (!rc && o->method != VRT_QM_RTN) {
        /* The fp model on the cpu backend, for calibration. */
        int64_t maxpos =
            q.cfg.max_position_embeddings > 0 ? q.cfg.max_position_embeddings : (int64_t)1 << 30;
        int64_t L = o->seqlen < maxpos ? o->seqlen : maxpos;
        if (L > o->n_calib)
            L = o->n_calib;
        q.seqlen = (int)L;
        int64_t ns = o->n_calib / L;
        q.n_samples = (int)(ns < o->samples ? ns : o->samples);
        if (o->seqlen > maxpos)
            VRT_WARN("--seqlen %d is more than the model's max_position_embeddings (%lld): "
                     "using %lld",
                     o->seqlen, (long long)maxpos, (long long)maxpos);
        rc = vrt_backend_create(&q.be, "cpu", o->threads, err);
        vrt_model_load_opts lo = {.dtype = "float16", .quiet = 1};
        if (!rc)
            rc = vrt_model_load(&q.m, in_dir, q.be, &lo, err);
        const int bs = 16;
        q.max_blocks = (q.seqlen + bs - 1) / bs;
        if (!rc)
            rc = vrt_kv_cache_init(&q.kv, q.m, q.max_blocks, bs, err);
        q.kv_ok = !rc;
        if (!rc && !(q.table = malloc((size_t)q.max_blocks * sizeof *q.table)))
            rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");
        if (!rc && !(q.logits = malloc((size_t)q.cfg.vocab_size * sizeof *q.logits)))
            rc = vrt_err_set(err, VRT_ENOMEM, "out of memory");
        for (int i = 0; !rc && i < q.max_blocks; i++)
            q.table[i] = i;
        rep->n_samples = q.n_samples;
        rep->seqlen = q.seqlen;
    }
    for (int l = 0; !rc && l < q.cfg.num_hidden_layers; l++)
        rc = do_layer(&q, l, rep, err);
    if (!rc)
        progress(&q, q.cfg.num_hidden_layers, "writing");
    if (!rc)
        rc = copy_other_tensors(&q, err);
    if (!rc) {
        char *path = vrt_path_join(out_dir, "model.safetensors");
        rc = path ? vrt_st_writer_write(&q.w, path, NULL, err)
                  : vrt_err_set(err, VRT_ENOMEM, "out of memory");
        free(path);
    }
    if (!rc)
        rc = write_configs(&q, in_dir, out_dir, err);
    const char *copies[] = {"generation_config.json",  "tokenizer.json",  "tokenizer_config.json",
                            "special_tokens_map.json", "tokenizer.model", "chat_template.jinja"};
    for (size_t i = 0; !rc && i < sizeof copies / sizeof copies[0]; i++)
        rc = copy_file(in_dir, out_dir, copies[i], err);
    if (rep->awq_groups)
        rep->awq_mean_alpha /= rep->awq_groups;
    rep->seconds = now_s() - t0;

    vrt_st_writer_free(&q.w);
    if (q.kv_ok)
        vrt_kv_cache_free(&q.kv);
    vrt_model_free(q.m);
    vrt_backend_destroy(q.be);
    vrt_checkpoint_close(&q.ck);
    for (int i = 0; i < q.n_keep; i++)
        free(q.keep[i]);
    free(q.keep);
    free(q.table);
    free(q.logits);
    free(q.kept_names);
    return rc;
}
