/* quantize.h — `v100rt quantize`: an fp16/fp32/bf16 Hugging Face model
 * directory (Llama/Mistral) in, a 4-bit checkpoint in a standard on-disk
 * format out, which other tools (AutoGPTQ, AutoAWQ, transformers, vLLM)
 * and v100rt's own loader read:
 *
 *   rtn   round-to-nearest per group, written as GPTQ v1 (docs/formats.md §3)
 *   gptq  GPTQ with calibration Hessians, written as GPTQ v1
 *   awq   AWQ scale search folded into the preceding ops, written as
 *         AutoAWQ GEMM (docs/formats.md §4)
 *
 * The seven linears of each decoder layer are quantized; embeddings,
 * norms and lm_head stay unquantized (written as F16). Tokenizer and
 * generation files are copied; config.json gains "quantization_config".
 *
 * Calibration (gptq, awq) runs the model's own forward pass on the cpu
 * backend over the calibration token ids, with the capture hook of
 * capture.h, one layer at a time: one pass per layer, stopped after that
 * layer's last input, records what it needs of the layer's four inputs
 * (q/k/v, o, gate/up, down); the inputs of layer l are computed with layers
 * 0..l-1 already quantized (so passes cost L(L+1)/2 layer evaluations).
 * Memory: the model's weights (mmapped) plus one fp16 copy of the linears
 * (what later layers run with), the packed output (~1/4 of fp16), and for
 * the layer at hand its float32 linear weights and either its four K x K
 * float64 Hessians plus two K x K float64 work matrices (GPTQ; K = D, H·hd,
 * D, F) or up to awq_max_rows calibration rows per input (AWQ).
 */
#ifndef VRT_MODEL_QUANTIZE_H
#define VRT_MODEL_QUANTIZE_H

#include "vrt.h"

#include <stdbool.h>
#include <stdint.h>

typedef enum vrt_qmethod { VRT_QM_RTN = 0, VRT_QM_GPTQ = 1, VRT_QM_AWQ = 2 } vrt_qmethod;

typedef struct vrt_quantize_opts {
    int method;          /* vrt_qmethod */
    int bits;            /* 4 (the only width supported) */
    int group_size;      /* -1 (one group per row) or > 0; 128 typical */
    bool act_order;      /* gptq: columns by descending diag(H), g_idx records groups */
    bool sym;            /* rtn, gptq: symmetric (zero 8); awq is always asymmetric */
    double damp_percent; /* gptq: fraction of mean diag(H) added (0.01) */
    /* Calibration (gptq, awq): token ids of a text, BOS first, cut into
     * `samples` consecutive sequences of `seqlen` tokens (fewer when the
     * text is shorter). */
    const int32_t *calib_ids;
    int64_t n_calib;
    int samples, seqlen;
    int awq_grid;           /* α grid points in [0, 1] (20) */
    int64_t awq_max_rows;   /* calibration rows kept per input for the loss (2048) */
    const char *calib_name; /* recorded in quantize_config.json's meta */
    int threads;            /* cpu backend threads, 0 = all */
    bool force;             /* write into a non-empty OUT_DIR */
    /* Optional progress: called before each step. */
    void (*progress)(void *ctx, int layer, int n_layers, const char *step);
    void *progress_ctx;
} vrt_quantize_opts;

/* Defaults: gptq, 4 bits, group 128, asymmetric, damp 0.01, 128 samples
 * of 512 tokens, 20 grid points, 2048 rows. */
void vrt_quantize_opts_init(vrt_quantize_opts *o);

typedef struct vrt_quantize_report {
    int n_quantized;       /* linears written quantized */
    int n_kept;            /* linears kept in F16 (AWQ: shapes the format cannot hold) */
    int n_samples, seqlen; /* calibration actually used */
    double seconds;
    double awq_mean_alpha; /* mean chosen α over the scaled groups (awq) */
    int awq_groups;        /* groups that got a scale search (awq) */
    int awq_o_skipped;     /* 1 when o_proj was not scaled (GQA: v rows != o inputs) */
} vrt_quantize_report;

/* Quantizes in_dir into out_dir (created; must be empty unless o->force).
 * Errors name the file, tensor or option and what to do. */
int vrt_quantize_model(const char *in_dir, const char *out_dir, const vrt_quantize_opts *o,
                       vrt_quantize_report *rep, vrt_err *err);

const char *vrt_qmethod_name(int method);

#endif
