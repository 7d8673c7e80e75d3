/* capture.h — a hook that hands the inputs of a layer's linear projections
 * to a callback while the forward pass runs: how `v100rt quantize` collects
 * calibration activations (GPTQ Hessians, AWQ channel magnitudes) from the
 * model's own forward pass instead of a second implementation of it.
 *
 * The hook is per thread and per model (a thread-local registration in
 * forward.c, so vrt_model and model.h stay as they are): a forward pass of
 * another model, or on another thread, never sees it. When no hook is set
 * the forward pass pays one thread-local load and compare per layer group.
 * Only backends whose memory is host memory can have one (x is then a host
 * pointer); the hook is refused on the others.
 */
#ifndef VRT_MODEL_CAPTURE_H
#define VRT_MODEL_CAPTURE_H

#include "model/model.h"

/* Which input of a layer: the four distinct inputs of a Llama layer's seven
 * linears. */
typedef enum vrt_capture_point {
    VRT_CAP_ATTN_IN = 0, /* input_layernorm(x): q_proj, k_proj, v_proj    [T][D]     */
    VRT_CAP_O_IN = 1,    /* attention output: o_proj                      [T][H*hd]  */
    VRT_CAP_MLP_IN = 2,  /* post_attention_layernorm(x): gate_proj, up_proj [T][D]   */
    VRT_CAP_DOWN_IN = 3, /* act(gate) * up: down_proj                     [T][F]     */
    VRT_CAP_COUNT
} vrt_capture_point;

/* Called with x [T][K] (host memory, valid only during the call). Returns
 * 0 to go on, or a VRT_E* code with err set, which ends the forward pass
 * with that code: VRT_ECANCELED is the way to stop early once the input of
 * interest has been seen (the layers after it are then not computed). */
typedef int (*vrt_capture_fn)(void *ud, int layer, int which, const float *x, int T, int K,
                              vrt_err *err);

/* Sets (fn != NULL) or clears (fn == NULL) the hook of model m for the
 * calling thread. VRT_EUNSUPPORTED when m's backend memory is not host
 * memory. */
int vrt__model_set_capture(vrt_model *m, vrt_capture_fn fn, void *ud, vrt_err *err);

#endif
