/* api_req.h — request bodies of the TGI and OpenAI APIs -> validated parameters.
 *
 * The HTTP glue hands a route's body here; what comes back is either a
 * vrt_api_request with everything the engine needs (vrt_request_params,
 * sampling parameters, stop strings) plus what the response renderer needs
 * (details, logprobs, echo, stream options), or a vrt_api_error carrying the
 * HTTP status and the message, in the wording the real servers use:
 *
 *   TGI routes      422 {"error": "`top_p` must be > 0.0 and < 1.0", "error_type": "validation"}
 *   OpenAI routes   400 {"error": {"message": "...", "type": "invalid_request_error",
 *                                  "param": "top_p", "code": null}}   (vLLM's BadRequestError)
 *
 * Pure code: no sockets, no threads, no tokenizer. Checks that need the
 * prompt's token count or the server's limits (max_input_tokens, ...) are in
 * vrt_api_check_limits, called after tokenization.
 *
 * Unknown fields are ignored (serde's and pydantic's default); a known field
 * of the wrong JSON type is an error naming the field; JSON null means "not
 * given". The body must be valid UTF-8.
 */
#ifndef VRT_SERVER_API_REQ_H
#define VRT_SERVER_API_REQ_H

#include "engine/engine.h"
#include "tokenizer/chat.h"
#include "vrt.h"

#include <stddef.h>
#include <stdint.h>

/* Which route a body came from. */
enum {
    VRT_API_TGI_GENERATE = 1,        /* POST /generate */
    VRT_API_TGI_GENERATE_STREAM = 2, /* POST /generate_stream */
    VRT_API_TGI_COMPAT = 3,          /* POST / : like /generate plus "stream": bool */
    VRT_API_OAI_COMPLETIONS = 4,     /* POST /v1/completions */
    VRT_API_OAI_CHAT = 5,            /* POST /v1/chat/completions */
};

/* 1 for the OpenAI routes, 0 for TGI's. */
int vrt_api_is_openai(int api_kind);

/* Most stop strings the parser itself accepts; the server's own (smaller)
 * limit is checked in vrt_api_check_limits. */
#define VRT_API_MAX_STOP 64

typedef struct vrt_api_error {
    int status;     /* HTTP status: 422 (TGI) / 400 (OpenAI), or as set */
    char type[32];  /* TGI error_type ("validation") / OpenAI type ("invalid_request_error") */
    char param[64]; /* OpenAI "param": the offending field, "" for none (null) */
    char msg[1024];
} vrt_api_error;

typedef struct vrt_api_request {
    int api;    /* VRT_API_* */
    int stream; /* 1: answer with server-sent events */

    /* The prompt. TGI "inputs" and OpenAI completions "prompt" (a string or
     * a list of one string) set prompt; a completions prompt of token ids
     * (a list of ints, or a list of one such list) sets prompt_ids instead.
     * Chat leaves both empty and fills messages (render them with
     * vrt_chat_render, then tokenize). */
    const char *prompt; /* UTF-8, NUL-terminated, or NULL */
    int32_t *prompt_ids;
    int n_prompt_ids;
    vrt_chat_msg *messages; /* [n_messages], role + content (text parts joined) */
    int n_messages;

    const char *model; /* OpenAI "model"; NULL when absent (and for TGI) */
    const char *user;  /* OpenAI "user"; NULL when absent */
    int n;             /* OpenAI n: choices, 1..16; 1 for TGI (best_of must be 1) */

    /* Engine parameters. params.stop points into this request;
     * params.max_new_tokens is 0 when the client did not say ("auto": the
     * glue computes max_total_tokens - prompt tokens, see
     * vrt_api_check_limits). params.sampling.seed is valid only when
     * seed_set; otherwise the glue draws one (and reports it back).
     * params.tenant is left NULL for the glue (API key, or user). */
    vrt_request_params params;
    int seed_set;

    /* TGI parameters the renderer needs. */
    int details;               /* include "details" */
    int decoder_input_details; /* prefill tokens in details (params.prompt_logprobs) */
    int return_full_text;      /* prepend the prompt to generated_text */
    int truncate;              /* keep only the last `truncate` prompt tokens; 0: off */
    int top_n_tokens;          /* top tokens per position, 0: off */

    /* OpenAI parameters the renderer needs. */
    int logprobs;              /* completions: top-n logprobs 0..20, -1 none;
                                  chat: 1 when "logprobs": true else -1 */
    int top_logprobs;          /* chat: 0..20 (needs logprobs) */
    int echo;                  /* completions: prepend the prompt to the text */
    int include_usage;         /* stream_options.include_usage */
    int skip_special_tokens;   /* vLLM extra, default 1 */
    int add_generation_prompt; /* chat, vLLM extra, default 1: pass to vrt_chat_render */

    /* Owned storage (strings, stop list); use vrt_api_request_free. */
    const char **stop_strs;
    char **owned;
    int n_owned;
    size_t cap_owned;
} vrt_api_request;

/* Parses and validates body[0..len) for route api_kind into r (which it
 * initializes; free it with vrt_api_request_free whatever the result).
 * Returns 0, or VRT_EINVAL with e filled (status, type, param, message), or
 * VRT_ENOMEM. */
int vrt_api_parse(vrt_api_request *r, int api_kind, const char *body, size_t len, vrt_api_error *e);
void vrt_api_request_free(vrt_api_request *r);

/* Server limits checked once the prompt is tokenized (TGI's wording). */
typedef struct vrt_api_limits {
    int max_input_tokens;   /* prompt tokens after truncation */
    int max_total_tokens;   /* prompt + new tokens */
    int max_stop_sequences; /* TGI default 4 */
    int max_top_n_tokens;   /* TGI default 5 */
} vrt_api_limits;

/* Checks the request against the limits given its prompt length in tokens
 * (before truncation) and resolves params.max_new_tokens when it is 0 (auto:
 * max_total_tokens - input tokens, for TGI capped at 1024 as TGI does). On
 * success *n_input is the prompt length after truncation. Errors: 422 / 400
 * as for parsing, e.g. "`inputs` tokens + `max_new_tokens` must be <= 4096.
 * Given: 4000 `inputs` tokens and 200 `max_new_tokens`". */
int vrt_api_check_limits(vrt_api_request *r, const vrt_api_limits *lim, int n_prompt_tokens,
                         int *n_input, vrt_api_error *e);

/* Fills e for a route: TGI gets type "validation", OpenAI
 * "invalid_request_error", with the given status (422 / 400 when status is
 * 0). Returns VRT_EINVAL. */
int vrt_api_error_set(vrt_api_error *e, int api_kind, int status, const char *param,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* The names the served model answers to: names[0] is the one reported
 * (model.name, else the first of server.served_model_names, else the
 * model directory's base name), the others are listed too; paths are
 * model.path as configured and as resolved (either may be NULL). */
typedef struct vrt_api_models {
    const char *const *names; /* [n_names], n_names >= 1 */
    int n_names;
    const char *paths[2];
    int strict; /* server.strict_model_name */
} vrt_api_models;

/* The name a response reports for a request whose "model" was requested
 * (NULL when absent): a listed name is reported as given; absent, a path
 * or (unless strict) any other value reports names[0], as TGI accepts the
 * placeholders clients send ("tgi"). Strict (vLLM): another value is 404
 * NotFoundError naming the served names; returns VRT_ENOENT with e filled. */
int vrt_api_model_name(const vrt_api_models *m, int api_kind, const char *requested,
                       const char **reported, vrt_api_error *e);

/* The JSON body of an error for a route (malloc'd; NULL when out of memory):
 * TGI {"error","error_type"}, OpenAI {"error":{"message","type","param","code"}}. */
char *vrt_api_error_body(int api_kind, const vrt_api_error *e);

/* UTF-8 helpers: 1 when s[0..n) is valid UTF-8 (no overlongs, surrogates or
 * code points past U+10FFFF); *bad gets the first bad byte offset. */
int vrt_api_utf8_valid(const char *s, size_t n, size_t *bad);
/* A malloc'd, NUL-terminated copy of s[0..n) with each byte that does not
 * start a valid sequence replaced by U+FFFD (so a truncated 3-byte sequence
 * gives two; Python's errors="replace" would give one), NUL bytes as well,
 * since the JSON writer takes C strings. NULL when out of memory. */
char *vrt_api_utf8_sanitize(const char *s, size_t n);

#endif
