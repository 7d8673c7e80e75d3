/* sampler.h — picks the next token from one sequence's logits.
 *
 * The engine calls vrt_sample once per generated token for each sequence of a
 * batch. It applies, in this order (the order of TGI / Hugging Face logits
 * processors and of vLLM's sampler):
 *
 *   1. repetition_penalty (HF/TGI): over the distinct tokens of prompt +
 *      generated text, a logit > 0 is divided by the penalty, otherwise
 *      multiplied by it.
 *   2. frequency_penalty and presence_penalty (OpenAI/vLLM): over generated
 *      tokens only, logit -= frequency * count + presence * (count > 0).
 *   3. greedy (argmax, lowest id on ties) when do_sample is false or
 *      temperature is 0; otherwise temperature, top_k, top_p (nucleus),
 *      typical_p (HF TypicalLogitsWarper), min_p (vLLM), each on what the
 *      previous step left (renormalized), always keeping at least one token,
 *      then one draw from the request's own RNG.
 *
 * Logprobs (vrt_sample_result.logprob and top_logprobs) are the log-softmax
 * of the logits after the penalties, before temperature and truncation. That
 * is the model's own (penalized) distribution: it does not change when a
 * client varies temperature or top_p, and it is defined for greedy requests.
 *
 * Determinism: the result depends only on the parameters, the logits, the
 * token history and the RNG state; a sampled token consumes exactly one
 * draw, a greedy one none. One vrt_rng per request therefore gives the same
 * text for the same seed whatever else is in the batch.
 *
 * Cost: no allocation per call (the caller keeps a vrt_sample_scratch of V
 * entries per thread); greedy and plain temperature sampling are O(V);
 * top_k is a single pass with a k-entry heap, O(V log k); top_p without
 * top_k first discards, in one pass, tokens too unlikely to be in the nucleus
 * and then heap-sorts lazily only as far as the nucleus reaches; typical_p
 * sorts lazily as well (O(V + m log V) for a kept set of m tokens).
 */
#ifndef VRT_ENGINE_SAMPLER_H
#define VRT_ENGINE_SAMPLER_H

#include "vrt.h"

#include <stdint.h>

/* Most top logprobs a request may ask for (OpenAI's top_logprobs bound). */
#define VRT_SAMPLE_MAX_LOGPROBS 20

typedef struct vrt_sampling_params {
    int do_sample;            /* 0: greedy */
    float temperature;        /* > 0; 0 also means greedy */
    int top_k;                /* 0: off */
    float top_p;              /* (0, 1]; 1: off */
    float typical_p;          /* (0, 1]; 1: off */
    float min_p;              /* [0, 1]; 0: off */
    float repetition_penalty; /* > 0; 1: off */
    float frequency_penalty;  /* [-2, 2]; 0: off */
    float presence_penalty;   /* [-2, 2]; 0: off */
    uint64_t seed;            /* seeds the request's vrt_rng */
    int n_logprobs;           /* [0, 20] top logprobs to report */
} vrt_sampling_params;

/* TGI's defaults: greedy, temperature 1, every filter and penalty off. */
vrt_sampling_params vrt_sampling_params_default(void);

/* Checks every field against its range; the message names the first bad
 * parameter, its allowed range and the value, e.g.
 * "temperature must be > 0, or 0 for greedy decoding (got -1)". Returns 0
 * or VRT_EINVAL. */
int vrt_sampling_params_validate(const vrt_sampling_params *p, vrt_err *err);

/* xoshiro256** seeded through splitmix64; one per request. */
typedef struct vrt_rng {
    uint64_t s[4];
} vrt_rng;

void vrt_rng_seed(vrt_rng *r, uint64_t seed);
uint64_t vrt_rng_next(vrt_rng *r);
/* A fresh seed for a request that did not give one: clock, a process-wide
 * counter (two calls in the same nanosecond still differ) and a mix.
 * Thread-safe. */
uint64_t vrt_rng_random_seed(void);
/* Uniform in [0, 1) with 53 random bits. */
double vrt_rng_uniform(vrt_rng *r);

/* Working memory for vrt_sample, reusable across calls and sequences (one
 * per thread). count must be all zero between calls; vrt_sample leaves it
 * so. */
typedef struct vrt_sample_scratch {
    int V;          /* capacity in tokens */
    float *work;    /* [V] logits after penalties */
    float *key;     /* [V] per-token sort key / probability */
    int32_t *idx;   /* [V] candidate token ids */
    int32_t *count; /* [V] per-token occurrence counts (zero between calls) */
} vrt_sample_scratch;

int vrt_sample_scratch_init(vrt_sample_scratch *s, int V, vrt_err *err);
void vrt_sample_scratch_free(vrt_sample_scratch *s);

/* log-softmax(logits)[id] in double precision (prompt logprobs, and
 * `v100rt perplexity`). */
double vrt_token_logprob(const float *logits, int V, int id);

typedef struct vrt_sample_result {
    int32_t token;
    /* log-softmax of the penalized logits (before temperature and
     * truncation) at token; see the top of this file. */
    float logprob;
    int n_top;                                   /* = n_logprobs (or V if smaller) */
    int32_t top_ids[VRT_SAMPLE_MAX_LOGPROBS];    /* [n_top], most likely first */
    float top_logprobs[VRT_SAMPLE_MAX_LOGPROBS]; /* [n_top], descending */
} vrt_sample_result;

/* Picks the next token. logits: [V], finite (NaN or +-inf is an error
 * naming the token id, not a garbage token). prompt: [n_prompt] and
 * generated: [n_generated] token ids, each in [0, V). rng may be NULL for a
 * greedy request. scratch->V must be >= V. Returns 0 or a negative VRT_E*
 * code with err filled. */
int vrt_sample(const vrt_sampling_params *p, const float *logits, int V, const int32_t *prompt,
               int n_prompt, const int32_t *generated, int n_generated, vrt_rng *rng,
               vrt_sample_scratch *scratch, vrt_sample_result *out, vrt_err *err);

#endif
