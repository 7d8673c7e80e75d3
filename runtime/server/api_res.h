/* api_res.h — generation results -> TGI / OpenAI response bodies and SSE events.
 *
 * The glue accumulates what the engine reported for a request (text, token
 * ids with text and logprob, top tokens, prompt logprobs, finish reason) in
 * a vrt_api_result and asks for the body of its route; for streams it asks
 * for one event per token (TGI) or per text delta (OpenAI). Every function
 * returns a malloc'd, NUL-terminated string (the caller frees it), or NULL
 * when out of memory.
 *
 * Schemas follow the servers v100rt stands in for, field for field and in
 * the same order: TGI's router/src/lib.rs (GenerateResponse, Details,
 * StreamResponse, StreamDetails, Token, PrefillToken, ErrorResponse, Info)
 * and the OpenAI / vLLM protocol (text_completion, chat.completion,
 * chat.completion.chunk, the error envelope, /v1/models).
 *
 * SSE framing differs on purpose: TGI (axum) writes "data:{...}\n\n" with no
 * space; OpenAI and vLLM write "data: {...}\n\n" and end with
 * "data: [DONE]\n\n".
 *
 * Text is written as valid JSON whatever the bytes: invalid UTF-8 (and NUL)
 * becomes U+FFFD. Logprobs print as the shortest decimal that reads back as
 * the same float (as serde/ryu does); NaN and infinities print as null.
 */
#ifndef VRT_SERVER_API_RES_H
#define VRT_SERVER_API_RES_H

#include "server/api_req.h"

#include <stddef.h>
#include <stdint.h>

typedef struct vrt_api_token {
    int32_t id;
    const char *text; /* the token's text (NULL is "") */
    float logprob;    /* NaN: unknown (null), e.g. the first prompt token */
    int special;
} vrt_api_token;

typedef struct vrt_api_result {
    const char *id;                 /* OpenAI: "cmpl-..." / "chatcmpl-..." */
    int index;                      /* OpenAI: the choice (0 .. n-1) */
    const char *model;              /* OpenAI "model" */
    int64_t created;                /* unix seconds */
    const char *system_fingerprint; /* NULL: null */
    const char *prompt;             /* return_full_text / echo; NULL is "" */
    const char *text;               /* the generated text, text_len bytes */
    size_t text_len;
    const char *finish_reason; /* engine's: "length" | "eos_token" | "stop_sequence" */
    uint64_t seed;
    int has_seed; /* 0: TGI prints "seed": null */
    int n_prompt_tokens, n_generated_tokens;
    const vrt_api_token *tokens; /* [n_tokens] generated tokens */
    int n_tokens;
    const vrt_api_token *top; /* [n_tokens][n_top] most likely first, or NULL */
    int n_top;
    const vrt_api_token *prefill; /* [n_prefill] prompt tokens (decoder_input_details /
                                     echo with logprobs) */
    int n_prefill;
} vrt_api_result;

/* ---- TGI ---- */

/* POST /generate: {"generated_text", "details"?}; for VRT_API_TGI_COMPAT
 * (POST /) the same object inside a one-element array, as TGI does. */
char *vrt_api_render_generate(const vrt_api_request *rq, const vrt_api_result *res);

/* One /generate_stream event, "data:{...}\n\n". index: 0-based position of
 * tok among the generated tokens (TGI numbers events from 1). top: [n_top]
 * top tokens of this position (rendered when rq->top_n_tokens > 0). final:
 * NULL for every token but the last; for the last, the result, which adds
 * generated_text and (with details) {finish_reason, generated_tokens, seed,
 * input_length}. The glue therefore holds each token event back until the
 * next token or the finish event arrives. */
char *vrt_api_render_tgi_stream_event(const vrt_api_request *rq, const vrt_api_token *tok,
                                      int index, const vrt_api_token *top, int n_top,
                                      const vrt_api_result *final);

/* ---- OpenAI ---- */

/* POST /v1/completions or /v1/chat/completions (by rq->api), non-stream. */
char *vrt_api_render_completion(const vrt_api_request *rq, const vrt_api_result *res);

/* A piece of a stream: text that became final, the tokens that made it
 * (for logprobs), and on the last chunk the finish reason. */
typedef struct vrt_api_delta {
    const char *text;
    size_t text_len;
    const vrt_api_token *tokens; /* [n_tokens] (logprobs); may be 0 tokens */
    int n_tokens;
    const vrt_api_token *top; /* [n_tokens][n_top] */
    int n_top;
    size_t text_offset;        /* completions logprobs: characters before this chunk */
    const char *finish_reason; /* NULL while running; the engine's reason at the end */
} vrt_api_delta;

/* "data: {chunk}\n\n": text_completion (completions) or chat.completion.chunk
 * with delta {"content"}. meta supplies id, model, created. */
char *vrt_api_render_oai_chunk(const vrt_api_request *rq, const vrt_api_result *meta,
                               const vrt_api_delta *d);
/* Chat streams start with delta {"role": "assistant", "content": ""}. */
char *vrt_api_render_oai_role_chunk(const vrt_api_request *rq, const vrt_api_result *meta);
/* With stream_options.include_usage: the chunk with "choices": [] and usage
 * (sent after the finish chunk, before [DONE]). */
char *vrt_api_render_oai_usage_chunk(const vrt_api_request *rq, const vrt_api_result *meta);
/* The terminator of OpenAI streams. */
#define VRT_API_SSE_DONE "data: [DONE]\n\n"

/* An error inside an already started stream: TGI "data:{"error": message,
 * "error_type": type}\n\n" (type "generation", "overloaded", ...); OpenAI
 * "data: {"error": {"message", "type", "param": null, "code": status}}\n\n". */
char *vrt_api_render_stream_error(int api_kind, int status, const char *type, const char *message);

/* ---- info ---- */

typedef struct vrt_api_info {
    const char *model_id;
    const char *const *model_names; /* /v1/models: [n_model_names] (NULL: model_id) */
    int n_model_names;
    const char *model_root;        /* /v1/models "root" (the model's path); NULL: the id */
    const char *model_dtype;       /* "float16" */
    const char *model_device_type; /* "cuda" | "cpu" */
    int max_concurrent_requests;
    int max_best_of; /* 1 */
    int max_stop_sequences;
    int max_input_tokens;
    int max_total_tokens;
    int validation_workers;
    int max_client_batch_size;
    const char *version;
    int64_t created; /* /v1/models "created" (server start) */
} vrt_api_info;

/* GET /info (TGI Info, router "v100rt", sha and docker_label null). */
char *vrt_api_render_info(const vrt_api_info *info);
/* GET /v1/models: {"object": "list", "data": [{id, object "model", created,
 * owned_by "v100rt", root, parent null, max_model_len}]}, one entry per
 * name (as vLLM lists each --served-model-name). */
char *vrt_api_render_models(const vrt_api_info *info);
/* GET /v1/models/{id}: that one entry (the OpenAI "retrieve model"). */
char *vrt_api_render_model(const vrt_api_info *info, const char *id);

#endif
