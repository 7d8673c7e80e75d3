/* engine.h — the engine thread: continuous batching over the paged KV cache.
 *
 * The server (loop thread) tokenizes and validates a request, then submits
 * its prompt ids and parameters here. The engine thread owns the model, the
 * KV cache and its block pool; each step it runs every running decode plus
 * as many waiting prefills as batching.max_batch_prefill_tokens and the free
 * blocks allow (long prompts in chunks unless batching.chunked_prefill is
 * false), never more than batching.max_batch_size sequences, and defers new
 * prefills while a batch decodes as batching.max_waiting_tokens says (TGI);
 * it samples one token per sequence, detokenizes it incrementally, checks
 * stop ids and stop strings, and reports events through the request's
 * callback. When blocks run out, a victim is preempted (swapped out or its
 * blocks freed and its tokens recomputed later) and resumed; nothing is
 * lost. Cancel frees a request's blocks at the next step.
 *
 * The scheduling policy's Lua hooks (policy.h) run on their own thread
 * under a deadline: a hook that does not return in time is abandoned, the
 * request it was called for fails (VRT_EPOLICY) and the engine schedules
 * first come, first served from then on.
 *
 * Threads: submit, cancel, stats and stop may be called from any thread.
 * Event callbacks run on the engine thread; they must be quick (copy and
 * post to the loop, see vrt_http_server_post) and must not call back into
 * the engine except vrt_engine_cancel. The step and trace hooks may also
 * call vrt_engine_submit.
 */
#ifndef VRT_ENGINE_ENGINE_H
#define VRT_ENGINE_ENGINE_H

#include "engine/sampler.h"
#include "vrt.h"

#include <stdint.h>

typedef struct vrt_engine vrt_engine;

/* One request's parameters; the engine copies everything it keeps. */
typedef struct vrt_request_params {
    vrt_sampling_params sampling; /* sampler.h; .seed is the request's seed */
    int max_new_tokens;           /* >= 1 */
    const char *const *stop;      /* [n_stop] stop strings (not part of the output) */
    int n_stop;
    const int32_t *stop_ids; /* [n_stop_ids] extra stop token ids */
    int n_stop_ids;
    int ignore_eos;      /* 1: the model's eos ids do not stop generation */
    int prompt_logprobs; /* 1: report the logprob of every prompt token
                            (TGI decoder_input_details; costs logits for
                            every prompt position) */
    int priority;        /* larger runs first under the "priority" policy */
    const char *tenant;  /* API key or tenant name, for the "fair" policy */
    const char *log_id;  /* the id the server logs the request under
                            ("cmpl-..."); engine log lines about the request
                            use it (NULL: the engine's numeric id) */
} vrt_request_params;

enum {
    VRT_EV_TOKEN = 1,  /* one generated token (and the text it made final) */
    VRT_EV_FINISH = 2, /* the request ended normally; last event */
    VRT_EV_ERROR = 3,  /* the request failed; last event */
};

typedef struct vrt_engine_event {
    int kind; /* VRT_EV_* */
    uint64_t id;
    /* VRT_EV_TOKEN */
    int32_t token;
    float logprob;    /* log-softmax after penalties, before temperature */
    int special;      /* the token is a special token (eos, ...) */
    int index;        /* 0-based index among the generated tokens */
    const char *text; /* text that became final with this token (may be
                         empty; never half a UTF-8 character; never text a
                         stop string later takes back); text_len bytes */
    size_t text_len;
    int n_top; /* top_logprobs asked for via sampling.n_logprobs */
    const int32_t *top_ids;
    const float *top_logprobs;
    /* VRT_EV_FINISH */
    const char *finish_reason; /* "length" | "eos_token" | "stop_sequence" */
    int n_prompt_tokens, n_generated_tokens;
    uint64_t seed;
    double queue_s;               /* submit -> first scheduled */
    double ttft_s;                /* submit -> first token */
    double total_s;               /* submit -> finish */
    const float *prompt_logprobs; /* [n_prompt_tokens] when asked (first is NaN) */
    /* VRT_EV_FINISH: text still held back when generation ended (flushed
     * detokenizer / stop checker tail), text_len bytes in text. */
    /* VRT_EV_ERROR */
    int err_code; /* VRT_E* */
    const char *err_msg;
} vrt_engine_event;

typedef void (*vrt_engine_event_fn)(void *ud, const vrt_engine_event *ev);

typedef struct vrt_engine_stats {
    int running, waiting; /* requests */
    int batch_size;       /* sequences in the last step */
    double kv_usage;      /* used blocks / all blocks, 0..1 */
    int num_blocks, free_blocks;
    uint64_t preemptions;
    uint64_t swap_outs; /* preemptions that swapped K/V to the CPU swap space */
    uint64_t prompt_tokens, generation_tokens;        /* totals */
    uint64_t prefix_cache_queries, prefix_cache_hits; /* in blocks */
    uint64_t steps;
    double last_step_s;  /* duration of the last forward */
    int policy_disabled; /* 1: a policy hook overran its deadline; fcfs since */
} vrt_engine_stats;

/* Creates the engine for a runtime (it takes over the runtime's model, KV
 * cache and tokenizer for its thread; the runtime must outlive the engine
 * and not be used for generation meanwhile) and starts its thread. From
 * cfg (resolved by the schema, lua/v100rt/config.lua) it takes
 * batching.max_concurrent_requests (requests in flight, running + waiting,
 * before submit returns VRT_EOVERLOADED), max_batch_size,
 * max_waiting_tokens, chunked_prefill and policy (a built-in name, or
 * "custom": the hooks of the config file cfg->source). The prefill budget
 * (max_batch_prefill_tokens) and the KV cache are the runtime's. cfg is not
 * kept. */
int vrt_engine_create(vrt_engine **out, vrt_runtime *rt, const vrt_config *cfg, vrt_err *err);
/* Stops the thread (requests still in flight end with an ERROR event,
 * code VRT_ECANCELED) and frees the engine. */
void vrt_engine_destroy(vrt_engine *e);

/* Queues a request. prompt: [n] ids (copied). Returns 0 and *id, or an
 * error and no event will ever come: VRT_EOVERLOADED (too many in flight),
 * VRT_EINVAL/VRT_ERANGE (bad ids, limits: the message says which). */
int vrt_engine_submit(vrt_engine *e, const int32_t *prompt, int n, const vrt_request_params *p,
                      vrt_engine_event_fn fn, void *ud, uint64_t *id, vrt_err *err);
/* Cancels a request (client gone): its blocks are freed at the next step and
 * it ends with an ERROR event of code VRT_ECANCELED. Unknown ids are ignored. */
void vrt_engine_cancel(vrt_engine *e, uint64_t id);

void vrt_engine_stats_get(vrt_engine *e, vrt_engine_stats *out);

/* Called on the engine thread after every forward: its duration, the
 * prompt tokens it prefilled and the sequences it decoded (metrics). Set it
 * before the first submit. */
typedef void (*vrt_engine_step_fn)(void *ud, double seconds, int n_prefill_tokens, int n_decode);
void vrt_engine_set_step_hook(vrt_engine *e, vrt_engine_step_fn fn, void *ud);

/* What one step ran, sequence by sequence (tests, debugging): for each
 * sequence of the forward, its request id, the tokens it computed and
 * whether they were prefill (prompt, or recompute after a preemption) or
 * one decode token. */
typedef struct vrt_engine_step_seq {
    uint64_t id;
    int n_tokens;
    int prefill; /* 1: prefill (chunk), 0: decode */
} vrt_engine_step_seq;
typedef struct vrt_engine_step_info {
    uint64_t step; /* 1-based count of forwards */
    int n_seqs;    /* sequences in the forward */
    int n_prefill_tokens, n_decode;
    int waiting;                     /* requests still waiting after the batch was built */
    const vrt_engine_step_seq *seqs; /* [n_seqs] */
} vrt_engine_step_info;
typedef void (*vrt_engine_trace_fn)(void *ud, const vrt_engine_step_info *st);
/* Called on the engine thread after every forward, before its tokens are
 * reported. Set it before the first submit. */
void vrt_engine_set_trace_hook(vrt_engine *e, vrt_engine_trace_fn fn, void *ud);
/* Requests running + waiting. */
int vrt_engine_in_flight(vrt_engine *e);

/* ---- a synchronous engine (the runtime's generate) --------------------------
 * The same engine without its own thread: it runs only inside
 * vrt__engine_step_once, on the caller's thread, so between calls it holds
 * neither the model nor any KV block (once nothing is in flight), and the
 * runtime's other functions (logits, tokenize, a resize) may run. It takes
 * the runtime's KV cache as it is (no resize, no prefix cache unless one is
 * already enabled), the built-in fcfs order (no policy thread: one request
 * at a time has nothing to order) and one request in flight. Submit, cancel,
 * stats and the hooks work as for any engine; events and hooks run inside
 * vrt__engine_step_once and vrt__engine_end. */
int vrt__engine_create_sync(vrt_engine **out, vrt_runtime *rt, vrt_err *err);
/* One turn of the engine loop (what its thread does each time it wakes):
 * takes submitted requests and cancellations, runs one step. Returns 1
 * while requests are still in flight, 0 when none is (also on an engine
 * with its own thread, where it does nothing). */
int vrt__engine_step_once(vrt_engine *e);
/* Ends request id now, as if it had reached its length limit: the text the
 * detokenizer and the stop checker still hold is flushed, and it finishes
 * with a FINISH event of reason "length" (or "stop_sequence" when that text
 * completes a stop string). For a synchronous engine between its steps (a
 * caller that stops streaming); returns 1 if the request was found, 0 if
 * not (or on an engine with its own thread: use vrt_engine_cancel). */
int vrt__engine_end(vrt_engine *e, uint64_t id);

#endif
