/* metrics.c — the Prometheus registry (families, series, text rendering).
 *
 * Values are doubles stored as their bit patterns in 64-bit atomics so that
 * updates need no lock: counters and gauges add with a compare-and-swap loop,
 * histograms count each observation in one (non-cumulative) bucket and add
 * it to the sum; rendering turns the buckets into the cumulative form the
 * format wants. The v100rt metric set is in metrics_set.c.
 */
#include "server/metrics.h"

#include "core/util.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct vrt_metric {
    vrt_metric_family *fam;
    char *labels;          /* rendered pairs without braces: a="x",b="y", or "" */
    _Atomic uint64_t val;  /* double bits: counter/gauge value, histogram _sum */
    _Atomic uint64_t *cnt; /* histogram: [n_buckets + 1], last is +Inf; not cumulative */
};

struct vrt_metric_family {
    vrt_metric_type type;
    char *name, *help;
    double *buckets; /* [n_buckets] */
    int n_buckets;
    int total_suffix;
    vrt_metric **series; /* [n_series] in registration order */
    int n_series;
    size_t cap_series;
};

static uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void atomic_add_double(_Atomic uint64_t *a, double v)
{
    uint64_t old = atomic_load_explicit(a, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(a, &old, d2u(u2d(old) + v), memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

/* ---- names ---------------------------------------------------------------- */

static int valid_metric_name(const char *s)
{
    if (!s || !*s)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                 (p != s && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

static int valid_label_name(const char *s)
{
    if (!s || !*s || strncmp(s, "__", 2) == 0)
        return 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (p != s && c >= '0' && c <= '9');
        if (!ok)
            return 0;
    }
    return 1;
}

/* Escapes for label values ("\\", "\"", "\n") or, with quote = 0, for HELP
 * text ("\\", "\n"). */
static void put_escaped(vrt_strbuf *b, const char *s, int quote)
{
    for (; *s; s++) {
        if (*s == '\\')
            vrt_strbuf_puts(b, "\\\\");
        else if (*s == '\n')
            vrt_strbuf_puts(b, "\\n");
        else if (quote && *s == '"')
            vrt_strbuf_puts(b, "\\\"");
        else
            vrt_strbuf_put(b, s, 1);
    }
}

/* The shortest of %.15g..%.17g that reads back as v; Go's spelling of the
 * special values, which is what Prometheus parses. */
static void fmt_double(char *out, size_t cap, double v)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, cap, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

/* ---- registry ------------------------------------------------------------- */

int vrt_metrics_init(vrt_metrics *m, vrt_err *err)
{
    memset(m, 0, sizeof *m);
    if (pthread_mutex_init(&m->mu, NULL) != 0)
        return vrt_err_set(err, VRT_EINTERNAL, "metrics: pthread_mutex_init failed");
    return 0;
}

static void metric_free(vrt_metric *s)
{
    if (!s)
        return;
    free(s->labels);
    free((void *)s->cnt);
    free(s);
}

static void family_free(vrt_metric_family *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n_series; i++)
        metric_free(f->series[i]);
    free(f->series);
    free(f->name);
    free(f->help);
    free(f->buckets);
    free(f);
}

void vrt_metrics_free(vrt_metrics *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_fams; i++)
        family_free(m->fams[i]);
    free(m->fams);
    pthread_mutex_destroy(&m->mu);
    memset(m, 0, sizeof *m);
}

static const char *type_name(vrt_metric_type t)
{
    switch (t) {
    case VRT_METRIC_COUNTER: return "counter";
    case VRT_METRIC_GAUGE: return "gauge";
    case VRT_METRIC_HISTOGRAM: return "histogram";
    }
    return "untyped";
}

static int cmp_label_idx(const void *a, const void *b, void *ctx)
{
    const char *const *labels = ctx;
    return strcmp(labels[2 * *(const int *)a], labels[2 * *(const int *)b]);
}

/* Checks d->labels and renders them, sorted by name, into *out. */
static int render_labels(const vrt_metric_desc *d, char **out, vrt_err *err)
{
    *out = NULL;
    int n = 0;
    if (d->labels)
        while (d->labels[2 * n]) {
            if (!d->labels[2 * n + 1])
                return vrt_err_set(err, VRT_EINVAL, "metric %s: label \"%s\" has no value", d->name,
                                   d->labels[2 * n]);
            n++;
        }
    int idx[32];
    if (n > (int)(sizeof idx / sizeof idx[0]))
        return vrt_err_set(err, VRT_EINVAL, "metric %s: more than 32 labels", d->name);
    for (int i = 0; i < n; i++) {
        const char *ln = d->labels[2 * i];
        if (!valid_label_name(ln))
            return vrt_err_set(err, VRT_EINVAL,
                               "metric %s: label name \"%s\" is not [a-zA-Z_][a-zA-Z0-9_]* "
                               "or starts with \"__\"",
                               d->name, ln);
        if (d->type == VRT_METRIC_HISTOGRAM && strcmp(ln, "le") == 0)
            return vrt_err_set(err, VRT_EINVAL,
                               "metric %s: \"le\" is reserved for histogram buckets", d->name);
        idx[i] = i;
    }
    qsort_r(idx, (size_t)n, sizeof idx[0], cmp_label_idx, (void *)d->labels);
    vrt_strbuf b = {0};
    vrt_strbuf_puts(&b, "");
    for (int i = 0; i < n; i++) {
        if (i > 0 && strcmp(d->labels[2 * idx[i]], d->labels[2 * idx[i - 1]]) == 0) {
            free(b.p);
            return vrt_err_set(err, VRT_EINVAL, "metric %s: label \"%s\" given twice", d->name,
                               d->labels[2 * idx[i]]);
        }
        if (i)
            vrt_strbuf_puts(&b, ",");
        vrt_strbuf_puts(&b, d->labels[2 * idx[i]]);
        vrt_strbuf_puts(&b, "=\"");
        put_escaped(&b, d->labels[2 * idx[i] + 1], 1);
        vrt_strbuf_puts(&b, "\"");
    }
    if (b.oom) {
        free(b.p);
        return vrt_err_set(err, VRT_ENOMEM, "metric %s: out of memory", d->name);
    }
    *out = b.p;
    return 0;
}

static int check_desc(const vrt_metric_desc *d, vrt_err *err)
{
    if (!valid_metric_name(d->name))
        return vrt_err_set(err, VRT_EINVAL, "metric name \"%s\" is not [a-zA-Z_:][a-zA-Z0-9_:]*",
                           d->name ? d->name : "(null)");
    if (d->type != VRT_METRIC_COUNTER && d->type != VRT_METRIC_GAUGE &&
        d->type != VRT_METRIC_HISTOGRAM)
        return vrt_err_set(err, VRT_EINVAL, "metric %s: unknown type %d", d->name, (int)d->type);
    if (d->type == VRT_METRIC_HISTOGRAM) {
        if (d->n_buckets < 0 || (d->n_buckets > 0 && !d->buckets))
            return vrt_err_set(err, VRT_EINVAL, "metric %s: bad bucket list", d->name);
        for (int i = 0; i < d->n_buckets; i++) {
            if (!isfinite(d->buckets[i]))
                return vrt_err_set(err, VRT_EINVAL,
                                   "metric %s: bucket %d is not finite (+Inf is implicit)", d->name,
                                   i);
            if (i > 0 && !(d->buckets[i] > d->buckets[i - 1]))
                return vrt_err_set(err, VRT_EINVAL,
                                   "metric %s: buckets must increase strictly (%g after %g)",
                                   d->name, d->buckets[i], d->buckets[i - 1]);
        }
    }
    return 0;
}

static int same_family(const vrt_metric_family *f, const vrt_metric_desc *d)
{
    const char *help = d->help ? d->help : "";
    if (f->type != d->type || strcmp(f->help, help) != 0)
        return 0;
    if (f->type == VRT_METRIC_COUNTER && f->total_suffix != (d->total_suffix != 0))
        return 0;
    if (f->type == VRT_METRIC_HISTOGRAM) {
        if (f->n_buckets != d->n_buckets)
            return 0;
        for (int i = 0; i < f->n_buckets; i++)
            if (f->buckets[i] != d->buckets[i])
                return 0;
    }
    return 1;
}

static vrt_metric_family *family_new(const vrt_metric_desc *d)
{
    vrt_metric_family *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->type = d->type;
    f->name = strdup(d->name);
    f->help = strdup(d->help ? d->help : "");
    f->total_suffix = d->type == VRT_METRIC_COUNTER && d->total_suffix;
    if (d->type == VRT_METRIC_HISTOGRAM && d->n_buckets > 0) {
        f->n_buckets = d->n_buckets;
        f->buckets = malloc((size_t)d->n_buckets * sizeof *f->buckets);
        if (f->buckets)
            memcpy(f->buckets, d->buckets, (size_t)d->n_buckets * sizeof *f->buckets);
    }
    if (!f->name || !f->help || (f->n_buckets && !f->buckets)) {
        family_free(f);
        return NULL;
    }
    return f;
}

static int add_locked(vrt_metrics *m, const vrt_metric_desc *d, vrt_metric **out, vrt_err *err)
{
    char *labels = NULL;
    int rc = render_labels(d, &labels, err);
    if (rc)
        return rc;

    vrt_metric_family *f = NULL;
    for (int i = 0; i < m->n_fams && !f; i++)
        if (strcmp(m->fams[i]->name, d->name) == 0)
            f = m->fams[i];
    if (f) {
        if (!same_family(f, d)) {
            free(labels);
            return vrt_err_set(err, VRT_EINVAL,
                               "metric %s: registered again with a different type, help, "
                               "bucket list or _total suffix",
                               d->name);
        }
        for (int i = 0; i < f->n_series; i++)
            if (strcmp(f->series[i]->labels, labels) == 0) {
                rc = vrt_err_set(err, VRT_EINVAL, "metric %s{%s} is already registered", d->name,
                                 labels);
                free(labels);
                return rc;
            }
    }

    vrt_metric *s = calloc(1, sizeof *s);
    if (!s) {
        free(labels);
        return vrt_err_set(err, VRT_ENOMEM, "metric %s: out of memory", d->name);
    }
    s->labels = labels;
    atomic_init(&s->val, d2u(0.0));
    if (d->type == VRT_METRIC_HISTOGRAM) {
        s->cnt = calloc((size_t)d->n_buckets + 1, sizeof *s->cnt);
        if (!s->cnt)
            goto oom;
        for (int i = 0; i <= d->n_buckets; i++)
            atomic_init(&s->cnt[i], 0);
    }

    int new_family = !f;
    if (new_family) {
        f = family_new(d);
        if (!f)
            goto oom;
        if (vrt_grow(&m->fams, &m->cap_fams, (size_t)m->n_fams + 1, sizeof *m->fams)) {
            family_free(f);
            goto oom;
        }
    }
    if (vrt_grow(&f->series, &f->cap_series, (size_t)f->n_series + 1, sizeof *f->series)) {
        if (new_family)
            family_free(f);
        goto oom;
    }
    f->series[f->n_series++] = s;
    s->fam = f;
    if (new_family)
        m->fams[m->n_fams++] = f;
    *out = s;
    return 0;
oom:
    metric_free(s);
    return vrt_err_set(err, VRT_ENOMEM, "metric %s: out of memory", d->name);
}

int vrt_metrics_add(vrt_metrics *m, const vrt_metric_desc *d, vrt_metric **out, vrt_err *err)
{
    *out = NULL;
    int rc = check_desc(d, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&m->mu);
    rc = add_locked(m, d, out, err);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

int vrt_metrics_counter(vrt_metrics *m, const char *name, const char *help,
                        const char *const *labels, vrt_metric **out, vrt_err *err)
{
    vrt_metric_desc d = {.type = VRT_METRIC_COUNTER, .name = name, .help = help, .labels = labels};
    return vrt_metrics_add(m, &d, out, err);
}

int vrt_metrics_gauge(vrt_metrics *m, const char *name, const char *help, const char *const *labels,
                      vrt_metric **out, vrt_err *err)
{
    vrt_metric_desc d = {.type = VRT_METRIC_GAUGE, .name = name, .help = help, .labels = labels};
    return vrt_metrics_add(m, &d, out, err);
}

int vrt_metrics_histogram(vrt_metrics *m, const char *name, const char *help,
                          const char *const *labels, const double *buckets, int n_buckets,
                          vrt_metric **out, vrt_err *err)
{
    vrt_metric_desc d = {.type = VRT_METRIC_HISTOGRAM,
                         .name = name,
                         .help = help,
                         .labels = labels,
                         .buckets = buckets,
                         .n_buckets = n_buckets};
    return vrt_metrics_add(m, &d, out, err);
}

/* ---- updates -------------------------------------------------------------- */

void vrt_metric_inc(vrt_metric *c)
{
    vrt_metric_add(c, 1.0);
}

void vrt_metric_add(vrt_metric *c, double v)
{
    if (!c || isnan(v))
        return;
    if (c->fam->type == VRT_METRIC_COUNTER && v >= 0)
        atomic_add_double(&c->val, v);
    else if (c->fam->type == VRT_METRIC_GAUGE)
        atomic_add_double(&c->val, v);
}

void vrt_metric_set(vrt_metric *g, double v)
{
    if (g && g->fam->type == VRT_METRIC_GAUGE)
        atomic_store_explicit(&g->val, d2u(v), memory_order_relaxed);
}

void vrt_metric_observe(vrt_metric *h, double v)
{
    if (!h || h->fam->type != VRT_METRIC_HISTOGRAM || isnan(v))
        return;
    const vrt_metric_family *f = h->fam;
    /* Binary search for the first bound >= v; n_buckets means +Inf. */
    int lo = 0, hi = f->n_buckets;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (v <= f->buckets[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    atomic_add_double(&h->val, v);
    atomic_fetch_add_explicit(&h->cnt[lo], 1, memory_order_relaxed);
}

double vrt_metric_value(const vrt_metric *m)
{
    if (!m)
        return 0;
    return u2d(atomic_load_explicit(&((vrt_metric *)m)->val, memory_order_relaxed));
}

uint64_t vrt_metric_count(const vrt_metric *m)
{
    if (!m || m->fam->type != VRT_METRIC_HISTOGRAM)
        return 0;
    uint64_t n = 0;
    for (int i = 0; i <= m->fam->n_buckets; i++)
        n += atomic_load_explicit(&m->cnt[i], memory_order_relaxed);
    return n;
}

/* ---- rendering ------------------------------------------------------------ */

/* name{labels[,extra]} value\n */
static void sample(vrt_strbuf *b, const char *name, const char *suffix, const char *labels,
                   const char *extra, double v)
{
    char num[40];
    fmt_double(num, sizeof num, v);
    vrt_strbuf_puts(b, name);
    vrt_strbuf_puts(b, suffix);
    int has = labels && *labels, has_extra = extra && *extra;
    if (has || has_extra) {
        vrt_strbuf_puts(b, "{");
        if (has)
            vrt_strbuf_puts(b, labels);
        if (has && has_extra)
            vrt_strbuf_puts(b, ",");
        if (has_extra)
            vrt_strbuf_puts(b, extra);
        vrt_strbuf_puts(b, "}");
    }
    vrt_strbuf_puts(b, " ");
    vrt_strbuf_puts(b, num);
    vrt_strbuf_puts(b, "\n");
}

static void render_family(vrt_strbuf *b, const vrt_metric_family *f)
{
    const char *sfx = f->total_suffix ? "_total" : "";
    vrt_strbuf_printf(b, "# HELP %s%s ", f->name, sfx);
    put_escaped(b, f->help, 0);
    vrt_strbuf_printf(b, "\n# TYPE %s%s %s\n", f->name, sfx, type_name(f->type));
    for (int i = 0; i < f->n_series; i++) {
        vrt_metric *s = f->series[i];
        double v = u2d(atomic_load_explicit(&s->val, memory_order_relaxed));
        if (f->type != VRT_METRIC_HISTOGRAM) {
            sample(b, f->name, sfx, s->labels, NULL, v);
            continue;
        }
        uint64_t cum = 0;
        char le[64], num[40];
        for (int k = 0; k <= f->n_buckets; k++) {
            cum += atomic_load_explicit(&s->cnt[k], memory_order_relaxed);
            if (k < f->n_buckets)
                fmt_double(num, sizeof num, f->buckets[k]);
            else
                snprintf(num, sizeof num, "+Inf");
            snprintf(le, sizeof le, "le=\"%s\"", num);
            sample(b, f->name, "_bucket", s->labels, le, (double)cum);
        }
        sample(b, f->name, "_sum", s->labels, NULL, v);
        sample(b, f->name, "_count", s->labels, NULL, (double)cum);
    }
}

int vrt_metrics_render(vrt_metrics *m, char **out, size_t *len)
{
    vrt_strbuf b = {0};
    vrt_strbuf_puts(&b, "");
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n_fams; i++)
        render_family(&b, m->fams[i]);
    pthread_mutex_unlock(&m->mu);
    if (b.oom) {
        free(b.p);
        *out = NULL;
        *len = 0;
        return VRT_ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}
