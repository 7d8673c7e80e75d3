/* test_metrics.c — the Prometheus registry and the v100rt metric set.
 *
 * The rendered text is parsed back by a small checker of the exposition
 * format 0.0.4 (every family has # HELP then # TYPE before its samples,
 * samples belong to the family above them, histogram buckets ascend in le,
 * are cumulative, end in +Inf, and +Inf equals _count). When promtool is on
 * PATH, `promtool check metrics` reads the output too.
 */
#include "test.h"

#include "server/metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- a checker of the text format ---------------------------------------- */

#define MAX_FAMS 128

typedef struct {
    char name[128], type[16];
    int n_samples;
} fam_info;

typedef struct {
    fam_info fams[MAX_FAMS];
    int n_fams;
    char msg[512];
} parsed;

static int starts_with(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

static int ends_with(const char *s, const char *sfx)
{
    size_t a = strlen(s), b = strlen(sfx);
    return a >= b && strcmp(s + a - b, sfx) == 0;
}

/* Splits "name{labels} value" into its parts; the le label (if any) is cut
 * out of labels into le. Returns 0 on success. */
static int split_sample(const char *line, char *name, char *labels, char *le, double *value)
{
    const char *p = line;
    size_t n = strcspn(p, "{ ");
    if (n == 0 || n >= 128)
        return -1;
    memcpy(name, p, n);
    name[n] = 0;
    p += n;
    labels[0] = le[0] = 0;
    if (*p == '{') {
        p++;
        char *lo = labels;
        while (*p && *p != '}') {
            /* one pair: key="value" with escapes */
            const char *k = p;
            size_t kn = strcspn(p, "=");
            if (p[kn] != '=' || p[kn + 1] != '"')
                return -1;
            p += kn + 2;
            char val[256];
            size_t vn = 0;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1])
                    p++;
                if (vn + 1 < sizeof val)
                    val[vn++] = *p;
                p++;
            }
            if (*p != '"')
                return -1;
            val[vn] = 0;
            p++;
            if (kn == 2 && strncmp(k, "le", 2) == 0) {
                size_t c = vn < 63 ? vn : 63;
                memcpy(le, val, c);
                le[c] = 0;
            } else {
                size_t used = (size_t)(lo - labels);
                int w = snprintf(lo, used < 511 ? 512 - used : 1, "%.*s=%s;", (int)kn, k, val);
                lo += w > 0 && (size_t)w < 512 - used ? w : 0;
            }
            if (*p == ',')
                p++;
        }
        if (*p != '}')
            return -1;
        p++;
    }
    if (*p != ' ')
        return -1;
    char *end;
    *value = strtod(p + 1, &end);
    if (end == p + 1 || *end)
        return -1;
    return 0;
}

/* Returns 0 if text is valid; else fills P->msg. */
static int check_text(const char *text, parsed *P)
{
    memset(P, 0, sizeof *P);
    char *copy = strdup(text);
    char *save = NULL;
    fam_info *cur = NULL;
    char help_for[128] = "";
    /* histogram state of the current series */
    char h_labels[512] = "";
    double h_prev_le = -INFINITY, h_prev_cnt = 0, h_inf = -1;
    int rc = -1, lineno = 0;
    if (!ends_with(text, "\n")) {
        snprintf(P->msg, sizeof P->msg, "output does not end in a newline");
        goto out;
    }
    for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        lineno++;
        if (starts_with(line, "# HELP ")) {
            if (sscanf(line + 7, "%127s", help_for) != 1)
                goto bad;
            continue;
        }
        if (starts_with(line, "# TYPE ")) {
            char name[128], type[16];
            if (sscanf(line + 7, "%127s %15s", name, type) != 2)
                goto bad;
            if (strcmp(name, help_for) != 0) {
                snprintf(P->msg, sizeof P->msg, "line %d: TYPE %s without HELP before it", lineno,
                         name);
                goto out;
            }
            for (int i = 0; i < P->n_fams; i++)
                if (strcmp(P->fams[i].name, name) == 0) {
                    snprintf(P->msg, sizeof P->msg, "line %d: family %s twice", lineno, name);
                    goto out;
                }
            if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram"))
                goto bad;
            if (P->n_fams == MAX_FAMS)
                goto bad;
            cur = &P->fams[P->n_fams++];
            snprintf(cur->name, sizeof cur->name, "%s", name);
            snprintf(cur->type, sizeof cur->type, "%s", type);
            help_for[0] = 0;
            continue;
        }
        if (line[0] == '#')
            goto bad;
        char name[128], labels[512], le[64];
        double v;
        if (!cur || split_sample(line, name, labels, le, &v) != 0)
            goto bad;
        cur->n_samples++;
        if (strcmp(cur->type, "histogram") != 0) {
            if (strcmp(name, cur->name) != 0 || le[0])
                goto bad;
            continue;
        }
        size_t fl = strlen(cur->name);
        if (strncmp(name, cur->name, fl) != 0)
            goto bad;
        const char *sfx = name + fl;
        if (strcmp(sfx, "_bucket") == 0) {
            if (!le[0])
                goto bad;
            double lev = strcmp(le, "+Inf") == 0 ? INFINITY : strtod(le, NULL);
            if (strcmp(labels, h_labels) != 0 || h_inf >= 0) { /* a new series starts */
                if (h_prev_le != -INFINITY && h_inf < 0) {
                    snprintf(P->msg, sizeof P->msg, "line %d: series before has no +Inf", lineno);
                    goto out;
                }
                snprintf(h_labels, sizeof h_labels, "%s", labels);
                h_prev_le = -INFINITY;
                h_prev_cnt = 0;
                h_inf = -1;
            }
            if (!(lev > h_prev_le)) {
                snprintf(P->msg, sizeof P->msg, "line %d: le does not ascend: %s", lineno, line);
                goto out;
            }
            if (v < h_prev_cnt || v != floor(v)) {
                snprintf(P->msg, sizeof P->msg, "line %d: bucket not cumulative: %s", lineno, line);
                goto out;
            }
            h_prev_le = lev;
            h_prev_cnt = v;
            if (isinf(lev))
                h_inf = v;
        } else if (strcmp(sfx, "_sum") == 0) {
            if (h_inf < 0 || strcmp(labels, h_labels) != 0) {
                snprintf(P->msg, sizeof P->msg, "line %d: _sum before +Inf bucket", lineno);
                goto out;
            }
        } else if (strcmp(sfx, "_count") == 0) {
            if (h_inf < 0 || strcmp(labels, h_labels) != 0 || v != h_inf) {
                snprintf(P->msg, sizeof P->msg, "line %d: _count %g != +Inf bucket %g", lineno, v,
                         h_inf);
                goto out;
            }
        } else {
            goto bad;
        }
    }
    if (help_for[0]) {
        snprintf(P->msg, sizeof P->msg, "HELP %s without TYPE", help_for);
        goto out;
    }
    rc = 0;
    goto out;
bad:
    snprintf(P->msg, sizeof P->msg, "line %d malformed or misplaced", lineno);
out:
    free(copy);
    return rc;
}

static const fam_info *find_fam(const parsed *P, const char *name)
{
    for (int i = 0; i < P->n_fams; i++)
        if (strcmp(P->fams[i].name, name) == 0)
            return &P->fams[i];
    return NULL;
}

/* ---- tests ----------------------------------------------------------------- */

TEST(metrics_render_exact)
{
    vrt_metrics m;
    vrt_err err = {0};
    ASSERT_OK(vrt_metrics_init(&m, &err), &err);
    vrt_metric *c, *g, *h, *h2;
    const char *gl[] = {"b", "q\"\\\nx", "a", "1", NULL};
    const double bk[] = {0.1, 1, 2.5};
    const char *m1[] = {"method", "prefill", NULL}, *m2[] = {"method", "decode", NULL};
    ASSERT_OK(vrt_metrics_counter(&m, "vllm:num_preemptions", "Preemptions.", NULL, &c, &err),
              &err);
    ASSERT_OK(vrt_metrics_gauge(&m, "g", "Help with \\ and\nnewline", gl, &g, &err), &err);
    ASSERT_OK(vrt_metrics_histogram(&m, "lat_seconds", "Latency", m1, bk, 3, &h, &err), &err);
    ASSERT_OK(vrt_metrics_histogram(&m, "lat_seconds", "Latency", m2, bk, 3, &h2, &err), &err);
    vrt_metric_inc(c);
    vrt_metric_add(c, 2);
    vrt_metric_add(c, -5); /* ignored: counters only go up */
    vrt_metric_set(g, -0.25);
    vrt_metric_observe(h, 0.05);
    vrt_metric_observe(h, 0.1); /* le is inclusive */
    vrt_metric_observe(h, 2);
    vrt_metric_observe(h, 100);
    vrt_metric_observe(h, NAN); /* ignored */
    ASSERT_NEAR(vrt_metric_value(c), 3, 0);
    ASSERT_EQ_INT(vrt_metric_count(h), 4);
    char *out;
    size_t len;
    ASSERT_OK(vrt_metrics_render(&m, &out, &len), &err);
    const char *want = "# HELP vllm:num_preemptions Preemptions.\n"
                       "# TYPE vllm:num_preemptions counter\n"
                       "vllm:num_preemptions 3\n"
                       "# HELP g Help with \\\\ and\\nnewline\n"
                       "# TYPE g gauge\n"
                       "g{a=\"1\",b=\"q\\\"\\\\\\nx\"} -0.25\n"
                       "# HELP lat_seconds Latency\n"
                       "# TYPE lat_seconds histogram\n"
                       "lat_seconds_bucket{method=\"prefill\",le=\"0.1\"} 2\n"
                       "lat_seconds_bucket{method=\"prefill\",le=\"1\"} 2\n"
                       "lat_seconds_bucket{method=\"prefill\",le=\"2.5\"} 3\n"
                       "lat_seconds_bucket{method=\"prefill\",le=\"+Inf\"} 4\n"
                       "lat_seconds_sum{method=\"prefill\"} 102.15\n"
                       "lat_seconds_count{method=\"prefill\"} 4\n"
                       "lat_seconds_bucket{method=\"decode\",le=\"0.1\"} 0\n"
                       "lat_seconds_bucket{method=\"decode\",le=\"1\"} 0\n"
                       "lat_seconds_bucket{method=\"decode\",le=\"2.5\"} 0\n"
                       "lat_seconds_bucket{method=\"decode\",le=\"+Inf\"} 0\n"
                       "lat_seconds_sum{method=\"decode\"} 0\n"
                       "lat_seconds_count{method=\"decode\"} 0\n";
    ASSERT_EQ_STR(out, want);
    ASSERT_EQ_INT(len, strlen(want));
    parsed P;
    int prc = check_text(out, &P);
    free(out);
    vrt_metrics_free(&m);
    if (prc != 0)
        TFAIL("checker: %s", P.msg);
    ASSERT_EQ_INT(P.n_fams, 3);
}

TEST(metrics_total_suffix_and_special_values)
{
    vrt_metrics m;
    vrt_err err = {0};
    ASSERT_OK(vrt_metrics_init(&m, &err), &err);
    vrt_metric *c, *g;
    vrt_metric_desc d = {.type = VRT_METRIC_COUNTER,
                         .name = "vllm:prompt_tokens",
                         .help = "Prompt tokens",
                         .total_suffix = 1};
    ASSERT_OK(vrt_metrics_add(&m, &d, &c, &err), &err);
    ASSERT_OK(vrt_metrics_gauge(&m, "x", "", NULL, &g, &err), &err);
    vrt_metric_add(c, 1e20);
    vrt_metric_set(g, -INFINITY);
    char *out;
    size_t len;
    ASSERT_OK(vrt_metrics_render(&m, &out, &len), &err);
    ASSERT_CONTAINS(out, "# TYPE vllm:prompt_tokens_total counter\n");
    ASSERT_CONTAINS(out, "\nvllm:prompt_tokens_total 1e+20\n");
    ASSERT_CONTAINS(out, "# HELP x \n# TYPE x gauge\nx -Inf\n");
    free(out);
    vrt_metrics_free(&m);
}

TEST(metrics_rejects_bad_registrations)
{
    vrt_metrics m;
    vrt_err err = {0};
    ASSERT_OK(vrt_metrics_init(&m, &err), &err);
    vrt_metric *s = NULL;
    const double up[] = {1, 2}, down[] = {2, 1}, inf[] = {1, INFINITY};
    const char *le[] = {"le", "1", NULL}, *dunder[] = {"__x", "1", NULL};
    const char *twice[] = {"a", "1", "a", "2", NULL}, *a1[] = {"a", "1", NULL};
    const char *novalue[] = {"a", NULL};
    ASSERT_EQ_INT(vrt_metrics_counter(&m, "1abc", "", NULL, &s, &err), VRT_EINVAL);
    ASSERT_EQ_INT(vrt_metrics_counter(&m, "a-b", "", NULL, &s, &err), VRT_EINVAL);
    ASSERT_EQ_INT(vrt_metrics_counter(&m, "", "", NULL, &s, &err), VRT_EINVAL);
    ASSERT_EQ_INT(vrt_metrics_counter(&m, "ok", "", dunder, &s, &err), VRT_EINVAL);
    ASSERT_EQ_INT(vrt_metrics_counter(&m, "ok", "", twice, &s, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "given twice");
    ASSERT_EQ_INT(vrt_metrics_counter(&m, "ok", "", (const char *const *)novalue, &s, &err),
                  VRT_EINVAL);
    ASSERT_EQ_INT(vrt_metrics_histogram(&m, "h", "", le, up, 2, &s, &err), VRT_EINVAL);
    ASSERT_EQ_INT(vrt_metrics_histogram(&m, "h", "", NULL, down, 2, &s, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "increase strictly");
    ASSERT_EQ_INT(vrt_metrics_histogram(&m, "h", "", NULL, inf, 2, &s, &err), VRT_EINVAL);
    ASSERT(s == NULL);
    /* a family: same type/help/buckets, different labels */
    ASSERT_OK(vrt_metrics_histogram(&m, "h", "H", NULL, up, 2, &s, &err), &err);
    ASSERT_EQ_INT(vrt_metrics_histogram(&m, "h", "H", NULL, up, 2, &s, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "already registered");
    ASSERT_EQ_INT(vrt_metrics_histogram(&m, "h", "H", a1, up, 1, &s, &err), VRT_EINVAL);
    ASSERT_EQ_INT(vrt_metrics_gauge(&m, "h", "H", a1, &s, &err), VRT_EINVAL);
    ASSERT_OK(vrt_metrics_histogram(&m, "h", "H", a1, up, 2, &s, &err), &err);
    /* label values may be anything, label sets are compared sorted */
    const char *ab[] = {"a", "1", "b", "2", NULL}, *ba[] = {"b", "2", "a", "1", NULL};
    ASSERT_OK(vrt_metrics_gauge(&m, "g", "", ab, &s, &err), &err);
    ASSERT_EQ_INT(vrt_metrics_gauge(&m, "g", "", ba, &s, &err), VRT_EINVAL);
    /* wrong-type updates and NULL handles are no-ops */
    vrt_metric_set(NULL, 1);
    vrt_metric_inc(NULL);
    vrt_metric_observe(NULL, 1);
    vrt_metric_observe(s, 1); /* gauge */
    ASSERT_NEAR(vrt_metric_value(s), 0, 0);
    vrt_metrics_free(&m);
}

static int has_sample(const char *text, const char *prefix)
{
    char needle[256];
    snprintf(needle, sizeof needle, "\n%s", prefix);
    return strstr(text, needle) != NULL;
}

TEST(metrics_v100rt_set)
{
    vrt_metrics m;
    vrt_err err = {0};
    ASSERT_OK(vrt_metrics_init(&m, &err), &err);
    vrt_srv_metrics h;
    vrt_srv_metrics_opts o = {
        .model_name = "mistral-7b-awq", .max_input_tokens = 2048, .max_total_tokens = 4096};
    ASSERT_OK(vrt_srv_metrics_register(&m, &h, &o, &err), &err);
    /* a second registration of the same set collides */
    vrt_srv_metrics h2;
    ASSERT_EQ_INT(vrt_srv_metrics_register(&m, &h2, &o, &err), VRT_EINVAL);
    ASSERT(h2.queue_size == NULL);

    vrt_metric_inc(h.request_count);
    vrt_metric_inc(h.request_count);
    vrt_metric_set(h.queue_size, 3);
    vrt_metric_set(h.kv_cache_usage, 0.5);
    vrt_metric_observe(h.forward_prefill, 0.02);
    vrt_metric_observe(h.forward_decode, 0.005);
    vrt_metric_observe(h.ttft, 0.03);
    vrt_metric_observe(h.itl, 0.02);
    vrt_metric_inc(h.num_preemptions);
    vrt_request_record ok = {.fail = -1,
                             .queue_s = 0.01,
                             .inference_s = 0.5,
                             .e2e_s = 0.52,
                             .input_tokens = 100,
                             .generated_tokens = 50};
    vrt_srv_metrics_request_done(&h, &ok);
    vrt_request_record bad = {.fail = VRT_FAIL_VALIDATION, .input_tokens = 5000};
    vrt_srv_metrics_request_done(&h, &bad);
    ASSERT_NEAR(vrt_metric_value(h.prompt_tokens), 5100, 0);
    ASSERT_NEAR(vrt_metric_value(h.generation_tokens), 50, 0);
    ASSERT_NEAR(vrt_metric_value(h.request_success), 1, 0);
    ASSERT_NEAR(vrt_metric_value(h.request_failure[VRT_FAIL_VALIDATION]), 1, 0);
    ASSERT_EQ_INT(vrt_metric_count(h.request_mean_time_per_token), 1);
    ASSERT_NEAR(vrt_metric_value(h.request_mean_time_per_token), 0.01, 1e-12);

    char *out;
    size_t len;
    ASSERT_OK(vrt_metrics_render(&m, &out, &len), &err);
    parsed P;
    if (check_text(out, &P) != 0) {
        fprintf(stderr, "%s", out);
        free(out);
        TFAIL("checker: %s", P.msg);
    }
    static const struct {
        const char *name, *type;
    } want[] = {
        {"tgi_queue_size", "gauge"},
        {"tgi_batch_current_size", "gauge"},
        {"tgi_request_count", "counter"},
        {"tgi_request_success", "counter"},
        {"tgi_request_failure", "counter"},
        {"tgi_request_duration", "histogram"},
        {"tgi_request_queue_duration", "histogram"},
        {"tgi_request_inference_duration", "histogram"},
        {"tgi_request_mean_time_per_token_duration", "histogram"},
        {"tgi_request_input_length", "histogram"},
        {"tgi_request_generated_tokens", "histogram"},
        {"tgi_batch_forward_duration", "histogram"},
        {"vllm:num_requests_running", "gauge"},
        {"vllm:num_requests_waiting", "gauge"},
        {"vllm:kv_cache_usage_perc", "gauge"},
        {"vllm:num_preemptions_total", "counter"},
        {"vllm:prompt_tokens_total", "counter"},
        {"vllm:generation_tokens_total", "counter"},
        {"vllm:time_to_first_token_seconds", "histogram"},
        {"vllm:inter_token_latency_seconds", "histogram"},
        {"vllm:e2e_request_latency_seconds", "histogram"},
        {"vllm:prefix_cache_hits_total", "counter"},
        {"vllm:prefix_cache_queries_total", "counter"},
        {"v100rt_info", "gauge"},
    };
    int n_want = (int)(sizeof want / sizeof want[0]);
    for (int i = 0; i < n_want; i++) {
        const fam_info *f = find_fam(&P, want[i].name);
        if (!f) {
            free(out);
            TFAIL("family %s missing", want[i].name);
        }
        if (strcmp(f->type, want[i].type) != 0 || f->n_samples == 0) {
            free(out);
            TFAIL("family %s: type %s, %d samples", want[i].name, f->type, f->n_samples);
        }
    }
    ASSERT_EQ_INT(P.n_fams, n_want);
    int ok_samples =
        has_sample(out, "tgi_request_count 2\n") &&
        has_sample(out, "tgi_request_failure{err=\"validation\"} 1\n") &&
        has_sample(out, "tgi_request_failure{err=\"overloaded\"} 0\n") &&
        has_sample(out, "tgi_request_failure{err=\"cancelled\"} 0\n") &&
        has_sample(out, "tgi_batch_forward_duration_count{method=\"prefill\"} 1\n") &&
        has_sample(out, "tgi_batch_forward_duration_count{method=\"decode\"} 1\n") &&
        has_sample(out, "vllm:kv_cache_usage_perc{model_name=\"mistral-7b-awq\"} 0.5\n") &&
        has_sample(out, "vllm:num_preemptions_total{model_name=\"mistral-7b-awq\"} 1\n") &&
        has_sample(out, "tgi_request_input_length_bucket{le=\"2048\"} 1\n") &&
        has_sample(out, "v100rt_info{version=\"");
    if (!ok_samples) {
        fprintf(stderr, "%s", out);
        free(out);
        TFAIL("an expected sample is missing (output above)");
    }
    free(out);
    vrt_metrics_free(&m);
}

/* ---- threads ---------------------------------------------------------------- */

#define N_THREADS 4
#define N_ITERS 100000

typedef struct {
    vrt_metric *c, *g, *h;
    vrt_metrics *m;
    int render;
    int bad_renders;
} thr_arg;

static void *worker(void *p)
{
    thr_arg *a = p;
    if (a->render) {
        for (int i = 0; i < 200; i++) {
            char *out;
            size_t len;
            parsed P;
            if (vrt_metrics_render(a->m, &out, &len) != 0 || check_text(out, &P) != 0)
                a->bad_renders++;
            free(out);
        }
        return NULL;
    }
    for (int i = 0; i < N_ITERS; i++) {
        vrt_metric_inc(a->c);
        vrt_metric_add(a->g, (i & 1) ? 1.0 : -0.5);
        vrt_metric_observe(a->h, (double)(i % 4)); /* 0,1,2,3: exact in a double sum */
    }
    return NULL;
}

TEST(metrics_threads)
{
    vrt_metrics m;
    vrt_err err = {0};
    ASSERT_OK(vrt_metrics_init(&m, &err), &err);
    vrt_metric *c, *g, *h;
    const double bk[] = {0.5, 1.5, 2.5};
    ASSERT_OK(vrt_metrics_counter(&m, "c", "c", NULL, &c, &err), &err);
    ASSERT_OK(vrt_metrics_gauge(&m, "g", "g", NULL, &g, &err), &err);
    ASSERT_OK(vrt_metrics_histogram(&m, "h", "h", NULL, bk, 3, &h, &err), &err);
    pthread_t t[N_THREADS + 1];
    thr_arg a[N_THREADS + 1];
    for (int i = 0; i <= N_THREADS; i++) {
        a[i] = (thr_arg){.c = c, .g = g, .h = h, .m = &m, .render = i == N_THREADS};
        ASSERT_EQ_INT(pthread_create(&t[i], NULL, worker, &a[i]), 0);
    }
    for (int i = 0; i <= N_THREADS; i++)
        pthread_join(t[i], NULL);
    ASSERT_EQ_INT(a[N_THREADS].bad_renders, 0);
    ASSERT_NEAR(vrt_metric_value(c), (double)N_THREADS * N_ITERS, 0);
    ASSERT_NEAR(vrt_metric_value(g), (double)N_THREADS * N_ITERS / 4, 0);
    ASSERT_EQ_INT(vrt_metric_count(h), N_THREADS * N_ITERS);
    ASSERT_NEAR(vrt_metric_value(h), (double)N_THREADS * N_ITERS / 4 * 6, 0);
    char *out;
    size_t len;
    ASSERT_OK(vrt_metrics_render(&m, &out, &len), &err);
    ASSERT_CONTAINS(out, "\nh_bucket{le=\"0.5\"} 100000\n");
    ASSERT_CONTAINS(out, "\nh_bucket{le=\"1.5\"} 200000\n");
    ASSERT_CONTAINS(out, "\nh_bucket{le=\"2.5\"} 300000\n");
    ASSERT_CONTAINS(out, "\nh_bucket{le=\"+Inf\"} 400000\n");
    ASSERT_CONTAINS(out, "\nh_count 400000\n");
    free(out);
    vrt_metrics_free(&m);
}

/* ---- promtool ----------------------------------------------------------------- */

/* Runs `promtool check metrics` on text; returns its exit status (or -1) and
 * its output in out. */
static int promtool(const char *text, char *out, size_t cap)
{
    char in_path[] = "/tmp/vrt-metrics-XXXXXX";
    int fd = mkstemp(in_path);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n;
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s 2>&1", in_path);
    FILE *p = ok ? popen(cmd, "r") : NULL;
    int rc = -1;
    if (p) {
        size_t got = fread(out, 1, cap - 1, p);
        out[got] = 0;
        int st = pclose(p);
        rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    }
    unlink(in_path);
    return rc;
}

/* promtool's lint findings that the compatible names cause by design: vLLM's
 * names contain ':' (Prometheus reserves colons for recording rules, hence
 * the warning) and TGI's counters have no _total (tgi_request_count even
 * ends in _count). These names are what TGI/vLLM dashboards query. */
static int allowed_lint(const char *line)
{
    if (strstr(line, "metric names should not contain ':'"))
        return starts_with(line, "vllm:");
    if (strstr(line, "counter metrics should have \"_total\" suffix") ||
        strstr(line, "non-histogram and non-summary metrics should not have \"_count\" suffix"))
        return starts_with(line, "tgi_request_");
    return 0;
}

TEST(metrics_promtool)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        fprintf(stderr, "SKIP promtool not installed (Debian: apt-get install prometheus)\n");
        return;
    }
    vrt_metrics m;
    vrt_err err = {0};
    char res[16384];
    /* 1. A registry whose names follow every convention: no findings. */
    ASSERT_OK(vrt_metrics_init(&m, &err), &err);
    vrt_metric *c, *g, *h;
    const double bk[] = {0.005, 0.1, 1, 10};
    const char *lab[] = {"method", "pre\"fill\\\n", NULL};
    vrt_metric_desc cd = {.type = VRT_METRIC_COUNTER,
                          .name = "v100rt_tokens",
                          .help = "Tokens \\ generated\nsecond line",
                          .labels = lab,
                          .total_suffix = 1};
    ASSERT_OK(vrt_metrics_add(&m, &cd, &c, &err), &err);
    ASSERT_OK(vrt_metrics_gauge(&m, "v100rt_queue_requests", "Queue.", NULL, &g, &err), &err);
    ASSERT_OK(vrt_metrics_histogram(&m, "v100rt_step_seconds", "Step.", lab, bk, 4, &h, &err),
              &err);
    vrt_metric_add(c, 7);
    vrt_metric_set(g, 2.5);
    vrt_metric_observe(h, 0.05);
    vrt_metric_observe(h, 50);
    char *out;
    size_t len;
    ASSERT_OK(vrt_metrics_render(&m, &out, &len), &err);
    int rc = promtool(out, res, sizeof res);
    if (rc != 0) {
        fprintf(stderr, "%s---\n%s", out, res);
        free(out);
        TFAIL("promtool check metrics exited %d on a lint-clean registry", rc);
    }
    free(out);
    vrt_metrics_free(&m);

    /* 2. The v100rt set: parses (exit 1 would be a parse error); lint
     * findings (exit 3) only about the compatibility names. */
    ASSERT_OK(vrt_metrics_init(&m, &err), &err);
    vrt_srv_metrics sm;
    vrt_srv_metrics_opts o = {
        .model_name = "tiny", .max_input_tokens = 2048, .max_total_tokens = 4096};
    ASSERT_OK(vrt_srv_metrics_register(&m, &sm, &o, &err), &err);
    vrt_metric_observe(sm.ttft, 0.2);
    ASSERT_OK(vrt_metrics_render(&m, &out, &len), &err);
    rc = promtool(out, res, sizeof res);
    free(out);
    vrt_metrics_free(&m);
    if (rc != 0 && rc != 3)
        TFAIL("promtool check metrics exited %d:\n%s", rc, res);
    int findings = 0;
    char *save = NULL;
    for (char *line = strtok_r(res, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!allowed_lint(line))
            TFAIL("unexpected promtool finding: %s", line);
        findings++;
    }
    if (rc == 3 && findings == 0)
        TFAIL("promtool exited 3 without findings");
    fprintf(stderr,
            "  promtool: v100rt set parses; %d expected lint findings on "
            "TGI/vLLM-compatible names\n",
            findings);
}
