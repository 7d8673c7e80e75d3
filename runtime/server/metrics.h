/* metrics.h — a small Prometheus metrics registry and the v100rt metric set.
 *
 * The registry holds metric families (counter, gauge, histogram with a fixed
 * bucket list), each family one or more series told apart by constant labels
 * (tgi_request_failure{err="validation"}, {err="generation"}, ...). Series
 * are registered once at startup; the server keeps the returned handles and
 * updates them from any thread. vrt_metrics_render() writes the Prometheus
 * text exposition format 0.0.4 for GET /metrics.
 *
 * Threads: updates (inc, add, set, observe) are lock-free atomics and may run
 * on the engine thread and the loop thread at once. Registration and
 * rendering take the registry's mutex; registering while another thread
 * renders is allowed. A NULL handle is a no-op everywhere, so code can run
 * with metrics switched off.
 *
 * Rendering reads each series without stopping writers: a histogram's
 * buckets, _count and +Inf are always consistent with each other (_count is
 * the +Inf bucket), _sum may include an observation a bucket does not yet.
 *
 * Names: [a-zA-Z_:][a-zA-Z0-9_:]* (colons are legal: vllm:num_requests_running).
 * Label names: [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", and not "le"
 * on a histogram. Label values are escaped (\\, \", \n) when rendered.
 */
#ifndef VRT_SERVER_METRICS_H
#define VRT_SERVER_METRICS_H

#include "core/err.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    VRT_METRIC_COUNTER,
    VRT_METRIC_GAUGE,
    VRT_METRIC_HISTOGRAM,
} vrt_metric_type;

/* One series: a family name plus one set of constant labels. Opaque; the
 * registry owns it and frees it in vrt_metrics_free(). */
typedef struct vrt_metric vrt_metric;
typedef struct vrt_metric_family vrt_metric_family;

typedef struct {
    pthread_mutex_t mu;
    vrt_metric_family **fams; /* [n_fams], in registration order */
    int n_fams;
    size_t cap_fams;
} vrt_metrics;

typedef struct {
    vrt_metric_type type;
    const char *name; /* family name */
    const char *help; /* one line; \ and newlines are escaped */
    /* Constant labels: {"name", "value", "name", "value", ..., NULL}, or NULL. */
    const char *const *labels;
    /* Histograms: upper bounds, finite and strictly increasing; +Inf is
     * implicit. All series of a family must use the same list. */
    const double *buckets; /* [n_buckets] */
    int n_buckets;
    /* Counters: render the family as name + "_total" (what Python's
     * prometheus_client and so vLLM do). Ignored for other types. */
    int total_suffix;
} vrt_metric_desc;

int vrt_metrics_init(vrt_metrics *m, vrt_err *err);
void vrt_metrics_free(vrt_metrics *m);

/* Registers one series and returns its handle in *out. A second series of an
 * existing family must agree on type, help, buckets and total_suffix and
 * have a different label set. Errors: VRT_EINVAL (bad name, label, bucket
 * list, mismatch, duplicate), VRT_ENOMEM. */
int vrt_metrics_add(vrt_metrics *m, const vrt_metric_desc *d, vrt_metric **out, vrt_err *err);

/* Shorthands for vrt_metrics_add(). */
int vrt_metrics_counter(vrt_metrics *m, const char *name, const char *help,
                        const char *const *labels, vrt_metric **out, vrt_err *err);
int vrt_metrics_gauge(vrt_metrics *m, const char *name, const char *help, const char *const *labels,
                      vrt_metric **out, vrt_err *err);
int vrt_metrics_histogram(vrt_metrics *m, const char *name, const char *help,
                          const char *const *labels, const double *buckets, int n_buckets,
                          vrt_metric **out, vrt_err *err);

/* Counter: +1 / +v (v < 0 or NaN is ignored: counters never go down).
 * Gauge: +1 / +v. Histogram: ignored. */
void vrt_metric_inc(vrt_metric *c);
void vrt_metric_add(vrt_metric *c, double v);
/* Gauge only (ignored on other types). */
void vrt_metric_set(vrt_metric *g, double v);
/* Histogram only: counts v in the first bucket with v <= bound (else +Inf)
 * and adds it to _sum. NaN is ignored. */
void vrt_metric_observe(vrt_metric *h, double v);

/* Reading back (tests, `v100rt` status lines): counter/gauge value, or a
 * histogram's _sum; a histogram's _count (0 for other types). */
double vrt_metric_value(const vrt_metric *m);
uint64_t vrt_metric_count(const vrt_metric *m);

/* Writes the text exposition format 0.0.4 (Content-Type
 * "text/plain; version=0.0.4; charset=utf-8") into a malloc'd,
 * NUL-terminated buffer: *out (free() it), *len bytes without the NUL.
 * Returns 0 or VRT_ENOMEM (then *out is NULL). */
int vrt_metrics_render(vrt_metrics *m, char **out, size_t *len);

#define VRT_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---- the v100rt metric set (TGI names, vLLM names, process info) -------- */

/* Values of tgi_request_failure's "err" label. */
typedef enum {
    VRT_FAIL_VALIDATION, /* 4xx: 422 validation, bad JSON, too many tokens */
    VRT_FAIL_GENERATION, /* error during prefill/decode */
    VRT_FAIL_OVERLOADED, /* 429: max_concurrent_requests reached */
    VRT_FAIL_CANCELLED,  /* client went away */
    VRT_FAIL_INCOMPLETE, /* "incomplete_generation": ended without a final token */
    VRT_FAIL_TEMPLATE,   /* "template_error": chat template failed */
    VRT_FAIL_N
} vrt_fail_kind;

/* Handles of every series of the set; NULL-safe to update. */
typedef struct {
    /* TGI (text-generation-inference router names) */
    vrt_metric *queue_size;                  /* gauge tgi_queue_size */
    vrt_metric *batch_current_size;          /* gauge tgi_batch_current_size */
    vrt_metric *request_count;               /* counter tgi_request_count */
    vrt_metric *request_success;             /* counter tgi_request_success */
    vrt_metric *request_failure[VRT_FAIL_N]; /* counter tgi_request_failure{err} */
    vrt_metric *request_duration;            /* hist tgi_request_duration (s) */
    vrt_metric *request_queue_duration;      /* hist tgi_request_queue_duration (s) */
    vrt_metric *request_inference_duration;  /* hist tgi_request_inference_duration (s) */
    vrt_metric *request_mean_time_per_token; /* hist tgi_request_mean_time_per_token_duration */
    vrt_metric *request_input_length;        /* hist tgi_request_input_length (tokens) */
    vrt_metric *request_generated_tokens;    /* hist tgi_request_generated_tokens */
    vrt_metric *forward_prefill;             /* hist tgi_batch_forward_duration{method="prefill"} */
    vrt_metric *forward_decode;              /* hist tgi_batch_forward_duration{method="decode"} */
    /* vLLM names (model_name label when opts.model_name is set) */
    vrt_metric *num_running;          /* gauge vllm:num_requests_running */
    vrt_metric *num_waiting;          /* gauge vllm:num_requests_waiting */
    vrt_metric *kv_cache_usage;       /* gauge vllm:kv_cache_usage_perc (0..1) */
    vrt_metric *num_preemptions;      /* counter vllm:num_preemptions(_total) */
    vrt_metric *prompt_tokens;        /* counter vllm:prompt_tokens(_total) */
    vrt_metric *generation_tokens;    /* counter vllm:generation_tokens(_total) */
    vrt_metric *ttft;                 /* hist vllm:time_to_first_token_seconds */
    vrt_metric *itl;                  /* hist vllm:inter_token_latency_seconds */
    vrt_metric *e2e;                  /* hist vllm:e2e_request_latency_seconds */
    vrt_metric *prefix_cache_hits;    /* counter vllm:prefix_cache_hits(_total) (tokens) */
    vrt_metric *prefix_cache_queries; /* counter vllm:prefix_cache_queries(_total) (tokens) */
    /* process */
    vrt_metric *info; /* gauge v100rt_info{version,git_rev} = 1 */
} vrt_srv_metrics;

typedef struct {
    const char *model_name; /* vLLM's model_name label on vllm:*; NULL or "" = none */
    int max_input_tokens;   /* tgi_request_input_length buckets; 0 = 2048 */
    int max_total_tokens;   /* tgi_request_generated_tokens buckets; 0 = 4096 */
} vrt_srv_metrics_opts;

/* Registers the whole set in m and fills h. opts may be NULL (defaults). */
int vrt_srv_metrics_register(vrt_metrics *m, vrt_srv_metrics *h, const vrt_srv_metrics_opts *opts,
                             vrt_err *err);

/* What the server knows about one finished request. */
typedef struct {
    int fail;             /* -1 = success, else a vrt_fail_kind */
    double queue_s;       /* submit → first scheduled */
    double inference_s;   /* first scheduled → finished */
    double e2e_s;         /* arrival → finished */
    int input_tokens;     /* prompt tokens */
    int generated_tokens; /* tokens sampled */
} vrt_request_record;

/* Updates everything that is per request: tgi_request_success or
 * tgi_request_failure{err}, and on success the TGI duration and length
 * histograms and vllm:e2e_request_latency_seconds; vllm:prompt_tokens and
 * vllm:generation_tokens count the tokens of every request, failed or not.
 * tgi_request_count is counted at arrival (vrt_metric_inc(h->request_count)),
 * TTFT and ITL per token (vrt_metric_observe(h->ttft / h->itl, s)). */
void vrt_srv_metrics_request_done(vrt_srv_metrics *h, const vrt_request_record *r);

#endif
