/* metrics_set.c — the metrics v100rt exposes on GET /metrics.
 *
 * Two sets of names, so that existing dashboards work unchanged: the TGI
 * router's (tgi_*, same names, types, labels and duration buckets as
 * text-generation-inference) and vLLM's (vllm:*, same buckets as vLLM; its
 * counters carry the "_total" suffix Python's prometheus_client appends, so
 * the samples read vllm:prompt_tokens_total like vLLM's). Both sets are fed
 * from the same events; the handles are in vrt_srv_metrics.
 */
#include "server/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const fail_names[VRT_FAIL_N] = {
    [VRT_FAIL_VALIDATION] = "validation",
    [VRT_FAIL_GENERATION] = "generation",
    [VRT_FAIL_OVERLOADED] = "overloaded",
    [VRT_FAIL_CANCELLED] = "cancelled",
    [VRT_FAIL_INCOMPLETE] = "incomplete_generation",
    [VRT_FAIL_TEMPLATE] = "template_error",
};

/* TGI's duration buckets: 1.5^k × 100 µs for k = 1..35 (150 µs .. ~145 s),
 * rounded to 4 significant digits so that the le labels read cleanly. */
#define N_DURATION 35
static void duration_buckets(double *b)
{
    double v = 0.0001;
    for (int k = 0; k < N_DURATION; k++) {
        v *= 1.5;
        char s[32];
        snprintf(s, sizeof s, "%.4g", v);
        b[k] = strtod(s, NULL);
    }
}

/* Token-count buckets: 20 equal steps up to max (TGI uses 100 steps of
 * max_input_tokens / max_total_tokens; 20 keep /metrics short). */
#define N_LENGTH 20
static void length_buckets(double *b, int max)
{
    if (max < N_LENGTH)
        max = N_LENGTH; /* keeps the bounds strictly increasing */
    for (int k = 0; k < N_LENGTH; k++)
        b[k] = ceil((double)max * (k + 1) / N_LENGTH);
}

/* vLLM's buckets (vllm/v1/metrics/loggers.py). */
static const double ttft_buckets[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                      0.25,  0.5,   0.75, 1.0,  2.5,  5.0,  7.5,  10.0,
                                      20.0,  40.0,  80.0, 160., 640., 2560.};
static const double itl_buckets[] = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2,  0.3,  0.4, 0.5,
                                     0.75, 1.0,   2.5,  5.0,   7.5, 10.0, 20.0, 40.0, 80.0};
static const double e2e_buckets[] = {0.3,  0.5,  0.8,  1.0,  1.5,   2.0,   2.5,
                                     5.0,  10.0, 15.0, 20.0, 30.0,  40.0,  50.0,
                                     60.0, 120., 240., 480., 960.0, 1920., 7680.};
#define NB(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct {
    vrt_metrics *m;
    const char *const *vl; /* labels of the vllm:* series */
    vrt_err *err;
    int rc;
} reg;

static vrt_metric *add(reg *r, vrt_metric_type t, const char *name, const char *help,
                       const char *const *labels, const double *b, int nb, int total)
{
    if (r->rc)
        return NULL;
    vrt_metric_desc d = {.type = t,
                         .name = name,
                         .help = help,
                         .labels = labels,
                         .buckets = b,
                         .n_buckets = nb,
                         .total_suffix = total};
    vrt_metric *s = NULL;
    r->rc = vrt_metrics_add(r->m, &d, &s, r->err);
    return s;
}

#define C VRT_METRIC_COUNTER
#define G VRT_METRIC_GAUGE
#define H VRT_METRIC_HISTOGRAM

int vrt_srv_metrics_register(vrt_metrics *m, vrt_srv_metrics *h, const vrt_srv_metrics_opts *opts,
                             vrt_err *err)
{
    memset(h, 0, sizeof *h);
    vrt_srv_metrics_opts o = opts ? *opts : (vrt_srv_metrics_opts){0};
    if (o.max_input_tokens <= 0 || o.max_total_tokens <= 0)
        return vrt_err_set(err, VRT_EINVAL,
                           "metrics: batching.max_input_tokens (%d) and batching.max_total_tokens "
                           "(%d) must be > 0 (they size the length histograms)",
                           o.max_input_tokens, o.max_total_tokens);
    const char *vl[] = {"model_name", o.model_name, NULL};
    reg r = {.m = m, .vl = (o.model_name && *o.model_name) ? vl : NULL, .err = err};

    double dur[N_DURATION], in_len[N_LENGTH], gen_len[N_LENGTH];
    duration_buckets(dur);
    length_buckets(in_len, o.max_input_tokens);
    length_buckets(gen_len, o.max_total_tokens);

    /* TGI */
    h->queue_size = add(&r, G, "tgi_queue_size", "Requests waiting in the queue", NULL, NULL, 0, 0);
    h->batch_current_size =
        add(&r, G, "tgi_batch_current_size", "Requests in the running batch", NULL, NULL, 0, 0);
    h->request_count =
        add(&r, C, "tgi_request_count", "Requests received (all outcomes)", NULL, NULL, 0, 0);
    h->request_success =
        add(&r, C, "tgi_request_success", "Requests that finished successfully", NULL, NULL, 0, 0);
    for (int k = 0; k < VRT_FAIL_N; k++) {
        const char *fl[] = {"err", fail_names[k], NULL};
        h->request_failure[k] = add(&r, C, "tgi_request_failure",
                                    "Requests that failed, by error kind", fl, NULL, 0, 0);
    }
    h->request_duration = add(&r, H, "tgi_request_duration",
                              "End-to-end request latency in seconds (successful requests)", NULL,
                              dur, N_DURATION, 0);
    h->request_queue_duration = add(
        &r, H, "tgi_request_queue_duration",
        "Seconds a request waited in the queue before its first forward", NULL, dur, N_DURATION, 0);
    h->request_inference_duration =
        add(&r, H, "tgi_request_inference_duration",
            "Seconds from a request's first forward to its last token", NULL, dur, N_DURATION, 0);
    h->request_mean_time_per_token =
        add(&r, H, "tgi_request_mean_time_per_token_duration",
            "Mean seconds per generated token of a request (inference time / tokens)", NULL, dur,
            N_DURATION, 0);
    h->request_input_length =
        add(&r, H, "tgi_request_input_length", "Prompt length of a request in tokens", NULL, in_len,
            N_LENGTH, 0);
    h->request_generated_tokens = add(&r, H, "tgi_request_generated_tokens",
                                      "Tokens generated for a request", NULL, gen_len, N_LENGTH, 0);
    const char *prefill[] = {"method", "prefill", NULL}, *decode[] = {"method", "decode", NULL};
    const char *fwd_help = "Seconds of one batched forward pass, by method";
    h->forward_prefill =
        add(&r, H, "tgi_batch_forward_duration", fwd_help, prefill, dur, N_DURATION, 0);
    h->forward_decode =
        add(&r, H, "tgi_batch_forward_duration", fwd_help, decode, dur, N_DURATION, 0);

    /* vLLM */
    h->num_running = add(&r, G, "vllm:num_requests_running",
                         "Number of requests in model execution batches", r.vl, NULL, 0, 0);
    h->num_waiting = add(&r, G, "vllm:num_requests_waiting",
                         "Number of requests waiting to be processed", r.vl, NULL, 0, 0);
    h->kv_cache_usage =
        add(&r, G, "vllm:kv_cache_usage_perc",
            "KV-cache usage: fraction of KV blocks in use, 0 to 1 (1 = 100%)", r.vl, NULL, 0, 0);
    h->num_preemptions =
        add(&r, C, "vllm:num_preemptions", "Cumulative number of preemptions", r.vl, NULL, 0, 1);
    h->prompt_tokens =
        add(&r, C, "vllm:prompt_tokens", "Number of prefill tokens processed", r.vl, NULL, 0, 1);
    h->generation_tokens = add(&r, C, "vllm:generation_tokens",
                               "Number of generation tokens processed", r.vl, NULL, 0, 1);
    h->ttft =
        add(&r, H, "vllm:time_to_first_token_seconds",
            "Histogram of time to first token in seconds", r.vl, ttft_buckets, NB(ttft_buckets), 0);
    h->itl =
        add(&r, H, "vllm:inter_token_latency_seconds",
            "Histogram of inter-token latency in seconds", r.vl, itl_buckets, NB(itl_buckets), 0);
    h->e2e = add(&r, H, "vllm:e2e_request_latency_seconds",
                 "Histogram of end-to-end request latency in seconds", r.vl, e2e_buckets,
                 NB(e2e_buckets), 0);
    h->prefix_cache_hits =
        add(&r, C, "vllm:prefix_cache_hits",
            "Prefix cache hits, in number of prompt tokens found in the cache", r.vl, NULL, 0, 1);
    h->prefix_cache_queries =
        add(&r, C, "vllm:prefix_cache_queries",
            "Prefix cache queries, in number of prompt tokens looked up", r.vl, NULL, 0, 1);

    /* process */
    const char *il[] = {"version", vrt_version(), NULL};
    h->info = add(&r, G, "v100rt_info", "v100rt build information; the value is always 1", il, NULL,
                  0, 0);
    vrt_metric_set(h->info, 1);

    if (r.rc)
        memset(h, 0, sizeof *h);
    return r.rc;
}

void vrt_srv_metrics_request_done(vrt_srv_metrics *h, const vrt_request_record *rec)
{
    if (!h || !rec)
        return;
    vrt_metric_add(h->prompt_tokens, rec->input_tokens > 0 ? rec->input_tokens : 0);
    vrt_metric_add(h->generation_tokens, rec->generated_tokens > 0 ? rec->generated_tokens : 0);
    if (rec->fail >= 0) {
        vrt_metric_inc(
            h->request_failure[rec->fail < VRT_FAIL_N ? rec->fail : VRT_FAIL_GENERATION]);
        return;
    }
    vrt_metric_inc(h->request_success);
    vrt_metric_observe(h->request_duration, rec->e2e_s);
    vrt_metric_observe(h->request_queue_duration, rec->queue_s);
    vrt_metric_observe(h->request_inference_duration, rec->inference_s);
    if (rec->generated_tokens > 0)
        vrt_metric_observe(h->request_mean_time_per_token,
                           rec->inference_s / rec->generated_tokens);
    vrt_metric_observe(h->request_input_length, rec->input_tokens);
    vrt_metric_observe(h->request_generated_tokens, rec->generated_tokens);
    vrt_metric_observe(h->e2e, rec->e2e_s);
}
