/* quant.h — GPTQ and AWQ checkpoints: their config, and repacking their
 * 4-bit linears into the one internal int4 layout (vrt_q4, backend.h).
 *
 * The on-disk formats are those of docs/formats.md §3 (GPTQ: AutoGPTQ,
 * GPTQModel, TheBloke; qweight packed along K, qzeros along N, the v1
 * "zero stored minus one", act-order g_idx) and §4 (AutoAWQ GEMM: both
 * packed along N with the interleave [0, 2, 4, 6, 1, 3, 5, 7]). Loading
 * turns either into the internal layout on the host; model.c then places
 * the arrays on the backend. The packers are the published layouts too:
 * they serve the round-trip tests and any writer of these formats.
 */
#ifndef VRT_MODEL_QUANT_H
#define VRT_MODEL_QUANT_H

#include "backend/backend.h"
#include "model/checkpoint.h"

#include <stdbool.h>
#include <stdint.h>

enum { VRT_QUANT_NONE = 0, VRT_QUANT_GPTQ = 1, VRT_QUANT_AWQ = 2 };
/* GPTQ zero-point storage: v1 stores zero - 1 (AutoGPTQ), v2 the zero. */
enum { VRT_GPTQ_V1 = 1, VRT_GPTQ_V2 = 2 };

typedef struct vrt_quant_config {
    int method;         /* VRT_QUANT_* */
    int bits;           /* 4 */
    int group_size;     /* > 0, or -1: one group over all of K */
    bool sym;           /* GPTQ: symmetric (zero 8) */
    bool desc_act;      /* GPTQ: act-order (g_idx is read either way) */
    int gptq_format;    /* VRT_GPTQ_V1 / V2, as labelled (checkpoint_format) */
    int gptq_detected;  /* 0 until the first layer's zeros were looked at */
    char source[64];    /* the file the config came from, for messages */
    char **not_convert; /* modules_to_not_convert (substrings), [n_not_convert] */
    int n_not_convert;
} vrt_quant_config;

/* "none", "gptq", "awq". */
const char *vrt_quant_method_name(int method);
/* Whether model.quantize (want: "gptq", "awq", or NULL / "none" for an
 * unquantized checkpoint) agrees with the checkpoint's quantization config;
 * VRT_ECONFIG saying what to set otherwise. Used by the loader and by
 * `v100rt check`. */
int vrt_quant_config_agrees(const vrt_quant_config *qc, const char *want, vrt_err *err);

/* Reads dir's quantization config: quantize_config.json, else
 * quant_config.json, else config.json "quantization_config"; method NONE
 * when there is none. Unsupported settings (bits other than 4, Marlin or
 * GEMV layouts, other methods, group sizes the int4 layout cannot hold) are
 * VRT_EUNSUPPORTED naming the file and key. Free with
 * vrt_quant_config_free (also after an error). */
int vrt_quant_config_load(vrt_quant_config *qc, const char *dir, vrt_err *err);
/* The same from JSON text (what, a file name for messages); is_awq_file:
 * the text is a quant_config.json (AWQ when it names no method), is_gptq_file
 * likewise for quantize_config.json; a config.json otherwise. */
int vrt_quant_config_parse(vrt_quant_config *qc, const char *json, const char *what,
                           int is_gptq_file, int is_awq_file, vrt_err *err);
void vrt_quant_config_free(vrt_quant_config *qc);
/* Whether module (e.g. "model.layers.0.mlp.gate_proj") is listed in
 * modules_to_not_convert (substring match, as AutoAWQ does). */
bool vrt_quant_not_converted(const vrt_quant_config *qc, const char *module);

/* One linear in the internal layout, on the host (malloc'd arrays). */
typedef struct vrt_q4_host {
    int64_t N, K;
    uint32_t *qweight; /* [N][Kp/8] */
    uint16_t *scales;  /* [N][ng] fp16 */
    uint16_t *zeros;   /* [N][ng] fp16 */
    int32_t *perm;     /* [K] or NULL */
    vrt_q4 desc;       /* pointing at the arrays above */
} vrt_q4_host;

/* K rounded up to VRT_Q4_KBLOCK. */
int64_t vrt_q4_kp(int64_t K);

/* Reads the 4-bit linear prefix (e.g. "model.layers.0.self_attn.q_proj":
 * prefix.qweight, .qzeros, .scales and for GPTQ .g_idx) of in_features K
 * and out_features N from ck and repacks it. A missing tensor, a wrong
 * shape or dtype, a g_idx value out of range or groups of the wrong size is
 * VRT_EFORMAT (VRT_ENOENT when missing) naming the tensor and what was
 * expected. qc->gptq_detected is set by the first GPTQ layer (the v1/v2
 * nibble heuristic: with sym, zeros all 7 are v1 and all 8 are v2 whatever
 * the label says). */
int vrt_q4_load(vrt_q4_host *out, const vrt_checkpoint *ck, const char *prefix, int64_t N,
                int64_t K, vrt_quant_config *qc, vrt_err *err);
void vrt_q4_host_free(vrt_q4_host *h);

/* W[n][perm[k]] = (q - z) * s in f32: the weight a q4 linear stands for,
 * in activation column order (q: host arrays). */
void vrt_q4_dequant(const vrt_q4 *q, int64_t N, int64_t K, float *W /* [N][K] */);

/* Packers of the published layouts from unpacked integers.
 * q: [N][K] values 0..15 (nn.Linear order), z: [ng][N] zero points 0..15,
 * group of input row k = g_idx[k] (GPTQ, may be NULL: k / G) or k / G.
 * gptq_pack: qweight [K/8][N] along K, qzeros [ng][N/8] along N; v1 stores
 * z - 1 (so z = 0 cannot be written: VRT_ERANGE), v2 stores z. Requires
 * K % 8 == 0 and N % 8 == 0. awq_pack: qweight [K][N/8] and qzeros
 * [ng][N/8], interleaved; requires N % 8 == 0. */
int vrt_gptq_pack(const uint8_t *q, const uint8_t *z, int64_t N, int64_t K, int ng, int format,
                  uint32_t *qweight, uint32_t *qzeros, vrt_err *err);
int vrt_awq_pack(const uint8_t *q, const uint8_t *z, int64_t N, int64_t K, int ng,
                 uint32_t *qweight, uint32_t *qzeros, vrt_err *err);

#endif
