/* test_sampler.c — penalties, logprobs, greedy and filtered sampling.
 *
 * Distributions are checked empirically: many draws with a fixed seed,
 * compared to a brute-force float64 reference of the same filters (full
 * sorts, written for clarity) with a chi-square bound. The seed is fixed, so
 * each test is deterministic; a wrong filter or a wrong temperature moves
 * the statistic by orders of magnitude past the bound.
 */
#include "test.h"

#include "core/err.h"
#include "engine/sampler.h"

#include <stdlib.h>

/* ---- reference ------------------------------------------------------------ */

/* Fills logits[0..V) with values from a fixed LCG: (-scale, scale). */
static void fill_logits(float *logits, int V, unsigned seed, float scale)
{
    for (int i = 0; i < V; i++)
        logits[i] = scale * (2.0f * (float)rand_r(&seed) / (float)RAND_MAX - 1.0f);
}

static const double *g_key; /* sort key for cmp_desc */

/* Higher key first, lower id on ties (the sampler's order). */
static int cmp_desc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    if (g_key[x] != g_key[y])
        return g_key[x] > g_key[y] ? -1 : 1;
    return x - y;
}

static void ref_penalize(const vrt_sampling_params *p, const float *logits, int V,
                         const int32_t *prompt, int np, const int32_t *gen, int ng, double *out)
{
    for (int i = 0; i < V; i++) {
        double l = logits[i];
        int seen = 0, count = 0;
        for (int j = 0; j < np; j++)
            seen |= prompt[j] == i;
        for (int j = 0; j < ng; j++)
            count += gen[j] == i;
        if (seen || count)
            l = l > 0 ? l / p->repetition_penalty : l * p->repetition_penalty;
        l -= (double)p->frequency_penalty * count + (count ? (double)p->presence_penalty : 0.0);
        out[i] = l;
    }
}

static void ref_log_softmax(const double *l, int V, double *out)
{
    double m = l[0], z = 0;
    for (int i = 1; i < V; i++)
        m = l[i] > m ? l[i] : m;
    for (int i = 0; i < V; i++)
        z += exp(l[i] - m);
    for (int i = 0; i < V; i++)
        out[i] = l[i] - m - log(z);
}

/* softmax over the kept tokens, into probs (0 elsewhere). */
static void ref_softmax_kept(const double *s, const int *keep, int V, double *probs)
{
    double m = -HUGE_VAL, z = 0;
    for (int i = 0; i < V; i++)
        if (keep[i] && s[i] > m)
            m = s[i];
    for (int i = 0; i < V; i++)
        z += keep[i] ? exp(s[i] - m) : 0;
    for (int i = 0; i < V; i++)
        probs[i] = keep[i] ? exp(s[i] - m) / z : 0;
}

/* The final distribution of a sampling request, by full sorts in double:
 * temperature, top_k, top_p, typical_p, min_p as HF / vLLM define them. */
static void ref_distribution(const vrt_sampling_params *p, const double *pen, int V, double *probs)
{
    double *s = malloc(V * sizeof *s), *key = malloc(V * sizeof *key);
    int *keep = malloc(V * sizeof *keep), *ord = malloc(V * sizeof *ord);
    for (int i = 0; i < V; i++) {
        s[i] = pen[i] / p->temperature;
        keep[i] = 1;
    }
    if (p->top_k > 0 && p->top_k < V) {
        for (int i = 0; i < V; i++)
            ord[i] = i;
        g_key = s;
        qsort(ord, V, sizeof *ord, cmp_desc);
        for (int r = p->top_k; r < V; r++)
            keep[ord[r]] = 0;
    }
    if (p->top_p < 1) {
        ref_softmax_kept(s, keep, V, probs);
        int n = 0;
        for (int i = 0; i < V; i++)
            if (keep[i])
                ord[n++] = i;
        g_key = s;
        qsort(ord, n, sizeof *ord, cmp_desc);
        double before = 0;
        for (int r = 0; r < n; r++) {
            if (before >= p->top_p)
                keep[ord[r]] = 0;
            before += probs[ord[r]];
        }
    }
    if (p->typical_p < 1) {
        ref_softmax_kept(s, keep, V, probs);
        double h = 0;
        for (int i = 0; i < V; i++)
            if (keep[i])
                h -= probs[i] * log(probs[i]);
        int n = 0;
        for (int i = 0; i < V; i++) {
            if (keep[i]) {
                ord[n++] = i;
                key[i] = -fabs(-log(probs[i]) - h);
            }
        }
        g_key = key;
        qsort(ord, n, sizeof *ord, cmp_desc);
        double cum = 0;
        int last = n - 1;
        for (int r = 0; r < n; r++) {
            cum += probs[ord[r]];
            if (cum >= p->typical_p) {
                last = r;
                break;
            }
        }
        for (int r = last + 1; r < n; r++)
            if (key[ord[r]] < key[ord[last]])
                keep[ord[r]] = 0;
    }
    if (p->min_p > 0) {
        ref_softmax_kept(s, keep, V, probs);
        double pmax = 0;
        for (int i = 0; i < V; i++)
            pmax = probs[i] > pmax ? probs[i] : pmax;
        for (int i = 0; i < V; i++)
            if (keep[i] && probs[i] < p->min_p * pmax)
                keep[i] = 0;
    }
    ref_softmax_kept(s, keep, V, probs);
    free(s);
    free(key);
    free(keep);
    free(ord);
}

/* Draws n tokens and compares their frequencies with want[0..V): no token
 * outside the support, and a chi-square statistic (bins with fewer than 10
 * expected draws pooled) under df + 8*sqrt(2 df) + 10, about 8 standard
 * deviations: never crossed by chance at this seed, crossed by far by any
 * wrong filter. Returns 0 if it passes; prints why not. */
static int check_distribution(const vrt_sampling_params *p, const float *logits, int V,
                              const int32_t *prompt, int np, const int32_t *gen, int ng,
                              const double *want, int n, int *seen_out)
{
    vrt_sample_scratch sc;
    vrt_err err = {0};
    if (vrt_sample_scratch_init(&sc, V, &err))
        return -1;
    vrt_rng rng;
    vrt_rng_seed(&rng, p->seed);
    int *count = calloc(V, sizeof *count);
    int rc = 0;
    for (int i = 0; i < n; i++) {
        vrt_sample_result r;
        if (vrt_sample(p, logits, V, prompt, np, gen, ng, &rng, &sc, &r, &err)) {
            fprintf(stderr, "  vrt_sample: %s\n", err.msg);
            rc = -1;
            goto done;
        }
        count[r.token]++;
    }
    double chi2 = 0, pool_c = 0, pool_e = 0;
    int bins = 0;
    for (int i = 0; i < V; i++) {
        if (want[i] == 0 && count[i]) {
            fprintf(stderr, "  token %d drawn %d times but outside the support\n", i, count[i]);
            rc = -1;
        }
        double e = want[i] * n;
        if (e >= 10) {
            chi2 += (count[i] - e) * (count[i] - e) / e;
            bins++;
        } else {
            pool_c += count[i];
            pool_e += e;
        }
        if (seen_out)
            seen_out[i] = count[i];
    }
    if (pool_e > 0) {
        chi2 += (pool_c - pool_e) * (pool_c - pool_e) / pool_e;
        bins++;
    }
    double df = bins > 1 ? bins - 1 : 1;
    double bound = df + 8 * sqrt(2 * df) + 10;
    if (!(chi2 < bound)) {
        fprintf(stderr, "  chi-square %.1f over %d bins, bound %.1f\n", chi2, bins, bound);
        rc = -1;
    }
done:
    free(count);
    vrt_sample_scratch_free(&sc);
    return rc;
}

/* Reference distribution + empirical check in one call. */
static int check_against_reference(const vrt_sampling_params *p, const float *logits, int V, int n,
                                   int *seen)
{
    double *pen = malloc(V * sizeof *pen), *want = malloc(V * sizeof *want);
    ref_penalize(p, logits, V, NULL, 0, NULL, 0, pen);
    ref_distribution(p, pen, V, want);
    int rc = check_distribution(p, logits, V, NULL, 0, NULL, 0, want, n, seen);
    free(pen);
    free(want);
    return rc;
}

static vrt_sampling_params sampling(float temperature, uint64_t seed)
{
    vrt_sampling_params p = vrt_sampling_params_default();
    p.do_sample = 1;
    p.temperature = temperature;
    p.seed = seed;
    return p;
}

/* ---- parameters ------------------------------------------------------------ */

TEST(sampler_defaults_are_tgi_defaults)
{
    vrt_sampling_params p = vrt_sampling_params_default();
    ASSERT_EQ_INT(p.do_sample, 0);
    ASSERT(p.temperature == 1.0f && p.top_k == 0 && p.top_p == 1.0f && p.typical_p == 1.0f);
    ASSERT(p.min_p == 0.0f && p.repetition_penalty == 1.0f);
    ASSERT(p.frequency_penalty == 0.0f && p.presence_penalty == 0.0f && p.n_logprobs == 0);
    vrt_err err = {0};
    ASSERT_OK(vrt_sampling_params_validate(&p, &err), &err);
}

TEST(sampler_validation_errors)
{
    struct {
        const char *field, *want;
        float value;
    } cases[] = {
        {"temperature", "temperature must be > 0", -1.0f},
        {"temperature", "temperature must be > 0", NAN},
        {"top_p", "top_p must be in (0, 1] (1 disables it) (got 1.5)", 1.5f},
        {"top_p", "top_p must be in (0, 1]", 0.0f},
        {"typical_p", "typical_p must be in (0, 1]", 0.0f},
        {"typical_p", "typical_p must be in (0, 1]", 2.0f},
        {"min_p", "min_p must be in [0, 1]", -0.1f},
        {"repetition_penalty", "repetition_penalty must be > 0", 0.0f},
        {"frequency_penalty", "frequency_penalty must be in [-2, 2]", 3.0f},
        {"presence_penalty", "presence_penalty must be in [-2, 2]", -2.5f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        vrt_sampling_params p = vrt_sampling_params_default();
        float *f = !strcmp(cases[i].field, "temperature")          ? &p.temperature
                   : !strcmp(cases[i].field, "top_p")              ? &p.top_p
                   : !strcmp(cases[i].field, "typical_p")          ? &p.typical_p
                   : !strcmp(cases[i].field, "min_p")              ? &p.min_p
                   : !strcmp(cases[i].field, "repetition_penalty") ? &p.repetition_penalty
                   : !strcmp(cases[i].field, "frequency_penalty")  ? &p.frequency_penalty
                                                                   : &p.presence_penalty;
        *f = cases[i].value;
        vrt_err err = {0};
        ASSERT_EQ_INT(vrt_sampling_params_validate(&p, &err), VRT_EINVAL);
        ASSERT_CONTAINS(err.msg, cases[i].want);
    }
    vrt_sampling_params p = vrt_sampling_params_default();
    vrt_err err = {0};
    p.temperature = -1;
    vrt_sampling_params_validate(&p, &err);
    ASSERT_CONTAINS(err.msg, "(got -1)");
    p = vrt_sampling_params_default();
    p.top_k = -3;
    ASSERT_EQ_INT(vrt_sampling_params_validate(&p, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "top_k must be >= 0");
    ASSERT_CONTAINS(err.msg, "(got -3)");
    p = vrt_sampling_params_default();
    p.n_logprobs = 21;
    ASSERT_EQ_INT(vrt_sampling_params_validate(&p, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "n_logprobs must be in [0, 20] (got 21)");
    /* Edges that are allowed. */
    p = vrt_sampling_params_default();
    p.temperature = 0;
    p.top_p = 1;
    p.min_p = 1;
    p.n_logprobs = 20;
    p.frequency_penalty = -2;
    ASSERT_OK(vrt_sampling_params_validate(&p, &err), &err);
}

/* ---- greedy ---------------------------------------------------------------- */

TEST(sampler_greedy_argmax_and_ties)
{
    float logits[8] = {0.1f, 2.0f, -1.0f, 5.0f, 0.0f, 3.0f, 5.0f, 4.9f};
    vrt_sample_scratch sc;
    vrt_err err = {0};
    ASSERT_OK(vrt_sample_scratch_init(&sc, 8, &err), &err);
    vrt_sampling_params p = vrt_sampling_params_default();
    vrt_sample_result r;
    ASSERT_OK(vrt_sample(&p, logits, 8, NULL, 0, NULL, 0, NULL, &sc, &r, &err), &err);
    ASSERT_EQ_INT(r.token, 3); /* 3 and 6 tie: the lowest id wins */
    /* temperature 0 is greedy even with do_sample. */
    p.do_sample = 1;
    p.temperature = 0;
    ASSERT_OK(vrt_sample(&p, logits, 8, NULL, 0, NULL, 0, NULL, &sc, &r, &err), &err);
    ASSERT_EQ_INT(r.token, 3);
    logits[6] = 5.5f;
    ASSERT_OK(vrt_sample(&p, logits, 8, NULL, 0, NULL, 0, NULL, &sc, &r, &err), &err);
    ASSERT_EQ_INT(r.token, 6);
    /* Against a plain argmax on random logits, with many ties. */
    float big[1000];
    for (unsigned s = 1; s < 30; s++) {
        fill_logits(big, 1000, s, 3.0f);
        for (int i = 0; i < 1000; i++)
            big[i] = roundf(big[i]); /* few distinct values: ties everywhere */
        int want = 0;
        for (int i = 1; i < 1000; i++)
            if (big[i] > big[want])
                want = i;
        vrt_sample_scratch sc2;
        ASSERT_OK(vrt_sample_scratch_init(&sc2, 1000, &err), &err);
        ASSERT_OK(vrt_sample(&p, big, 1000, NULL, 0, NULL, 0, NULL, &sc2, &r, &err), &err);
        vrt_sample_scratch_free(&sc2);
        ASSERT_EQ_INT(r.token, want);
    }
    vrt_sample_scratch_free(&sc);
}

TEST(sampler_top_k_1_equals_greedy)
{
    enum { V = 300 };
    float logits[V];
    vrt_sample_scratch sc;
    vrt_err err = {0};
    ASSERT_OK(vrt_sample_scratch_init(&sc, V, &err), &err);
    for (unsigned s = 1; s < 200; s++) {
        fill_logits(logits, V, s, 4.0f);
        if (s % 2)
            for (int i = 0; i < V; i++)
                logits[i] = roundf(logits[i]); /* ties */
        vrt_sampling_params g = vrt_sampling_params_default();
        vrt_sampling_params k = sampling(0.5f + (float)(s % 5), s);
        k.top_k = 1;
        vrt_rng rng;
        vrt_rng_seed(&rng, s);
        vrt_sample_result rg, rk;
        ASSERT_OK(vrt_sample(&g, logits, V, NULL, 0, NULL, 0, NULL, &sc, &rg, &err), &err);
        ASSERT_OK(vrt_sample(&k, logits, V, NULL, 0, NULL, 0, &rng, &sc, &rk, &err), &err);
        ASSERT_EQ_INT(rk.token, rg.token);
    }
    vrt_sample_scratch_free(&sc);
}

/* ---- distributions ---------------------------------------------------------- */

TEST(sampler_temperature_distribution)
{
    float logits[6] = {1.0f, 0.5f, 2.0f, -0.5f, 0.0f, 1.5f};
    float temps[] = {1.0f, 0.5f, 2.0f};
    for (int t = 0; t < 3; t++) {
        vrt_sampling_params p = sampling(temps[t], 42 + t);
        double want[6], z = 0;
        for (int i = 0; i < 6; i++)
            z += exp(logits[i] / (double)temps[t]);
        for (int i = 0; i < 6; i++)
            want[i] = exp(logits[i] / (double)temps[t]) / z;
        ASSERT_EQ_INT(check_distribution(&p, logits, 6, NULL, 0, NULL, 0, want, 100000, NULL), 0);
    }
    /* The check can fail: temperature 1's frequencies are not those of 0.5. */
    vrt_sampling_params p = sampling(1.0f, 7);
    double wrong[6], z = 0;
    for (int i = 0; i < 6; i++)
        z += exp(logits[i] / 0.5);
    for (int i = 0; i < 6; i++)
        wrong[i] = exp(logits[i] / 0.5) / z;
    fprintf(stderr, "  (expected mismatch follows)\n");
    ASSERT(check_distribution(&p, logits, 6, NULL, 0, NULL, 0, wrong, 100000, NULL) != 0);
}

TEST(sampler_top_k_distribution)
{
    enum { V = 500 };
    float logits[V];
    fill_logits(logits, V, 3, 3.0f);
    vrt_sampling_params p = sampling(0.8f, 11);
    p.top_k = 12;
    int seen[V];
    ASSERT_EQ_INT(check_against_reference(&p, logits, V, 60000, seen), 0);
    int n_seen = 0;
    for (int i = 0; i < V; i++)
        n_seen += seen[i] > 0;
    ASSERT_EQ_INT(n_seen, 12);
}

TEST(sampler_top_p_minimal_nucleus)
{
    /* probabilities 0.5 0.25 0.15 0.07 0.03, ids shuffled */
    int ids[5] = {3, 0, 4, 1, 2};
    double probs[5] = {0.5, 0.25, 0.15, 0.07, 0.03};
    float logits[5];
    for (int r = 0; r < 5; r++)
        logits[ids[r]] = (float)log(probs[r]);
    struct {
        float top_p;
        int size;
    } cases[] = {{0.8f, 3}, {0.7f, 2}, {0.3f, 1}, {0.45f, 1}, {0.91f, 4}, {0.99f, 5}};
    for (int c = 0; c < 6; c++) {
        vrt_sampling_params p = sampling(1.0f, 100 + c);
        p.top_p = cases[c].top_p;
        int seen[5];
        ASSERT_EQ_INT(check_against_reference(&p, logits, 5, 40000, seen), 0);
        for (int r = 0; r < 5; r++) {
            if ((seen[ids[r]] > 0) != (r < cases[c].size))
                TFAIL("top_p %.2f: token of rank %d drawn %d times, nucleus has %d tokens",
                      (double)cases[c].top_p, r, seen[ids[r]], cases[c].size);
        }
    }
}

TEST(sampler_top_p_large_vocab)
{
    /* Peaked (the pre-filter keeps few tokens), flat (its first threshold
     * keeps too little mass and the second one is needed) and all equal
     * (ties: the lowest ids form the nucleus). */
    enum { V = 4000 };
    static float logits[V];
    static int seen[V];
    float scales[] = {12.0f, 0.3f};
    for (int c = 0; c < 2; c++) {
        fill_logits(logits, V, 77 + c, scales[c]);
        vrt_sampling_params p = sampling(1.0f, 5 + c);
        p.top_p = 0.9f;
        ASSERT_EQ_INT(check_against_reference(&p, logits, V, 20000, seen), 0);
    }
    for (int i = 0; i < V; i++)
        logits[i] = 1.0f;
    vrt_sampling_params p = sampling(1.0f, 9);
    p.top_p = 0.2499f; /* 1000 tokens, not at a rounding boundary */
    ASSERT_EQ_INT(check_against_reference(&p, logits, V, 20000, seen), 0);
    for (int i = 0; i < V; i++)
        if ((seen[i] > 0) != (i < 1000))
            TFAIL("token %d drawn %d times; the nucleus is tokens 0..999", i, seen[i]);
}

TEST(sampler_typical_p_against_reference)
{
    float small[8] = {2.0f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, 3.0f, 1.5f};
    float masses[] = {0.2f, 0.5f, 0.9f};
    for (int c = 0; c < 3; c++) {
        vrt_sampling_params p = sampling(1.0f, 21 + c);
        p.typical_p = masses[c];
        ASSERT_EQ_INT(check_against_reference(&p, small, 8, 50000, NULL), 0);
    }
    enum { V = 1000 };
    static float logits[V];
    fill_logits(logits, V, 5, 6.0f);
    vrt_sampling_params p = sampling(0.7f, 31);
    p.typical_p = 0.6f;
    ASSERT_EQ_INT(check_against_reference(&p, logits, V, 100000, NULL), 0);
    /* The reference check can fail: plain temperature sampling differs. */
    vrt_sampling_params q = p;
    q.typical_p = 1.0f;
    double *pen = malloc(V * sizeof *pen), *want = malloc(V * sizeof *want);
    ref_penalize(&q, logits, V, NULL, 0, NULL, 0, pen);
    ref_distribution(&q, pen, V, want);
    fprintf(stderr, "  (expected mismatch follows)\n");
    ASSERT(check_distribution(&p, logits, V, NULL, 0, NULL, 0, want, 20000, NULL) != 0);
    free(pen);
    free(want);
}

TEST(sampler_min_p_against_reference)
{
    enum { V = 600 };
    static float logits[V];
    fill_logits(logits, V, 8, 5.0f);
    float mins[] = {0.05f, 0.3f, 1.0f};
    for (int c = 0; c < 3; c++) {
        vrt_sampling_params p = sampling(1.3f, 41 + c);
        p.min_p = mins[c];
        ASSERT_EQ_INT(check_against_reference(&p, logits, V, 60000, NULL), 0);
    }
}

TEST(sampler_filters_combined)
{
    enum { V = 2000 };
    static float logits[V];
    fill_logits(logits, V, 13, 8.0f);
    vrt_sampling_params p = sampling(0.9f, 51);
    p.top_k = 40;
    p.top_p = 0.95f;
    p.typical_p = 0.9f;
    p.min_p = 0.02f;
    ASSERT_EQ_INT(check_against_reference(&p, logits, V, 80000, NULL), 0);
    p.top_k = 0;
    p.seed = 52;
    ASSERT_EQ_INT(check_against_reference(&p, logits, V, 80000, NULL), 0);
}

/* ---- penalties ---------------------------------------------------------------- */

TEST(sampler_penalties_hand_computed)
{
    float logits[5] = {2.0f, -1.0f, 0.5f, 3.0f, -0.5f};
    int32_t prompt[2] = {0, 1};
    int32_t gen[4] = {1, 2, 1, 1};
    vrt_sampling_params p = vrt_sampling_params_default();
    p.repetition_penalty = 2.0f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    p.n_logprobs = 5;
    /* token 0: 2/2 = 1; token 1 (in both lists, penalized once): -1*2 = -2,
     * then 3 occurrences: -2 - 1.5 - 0.25 = -3.75; token 2: 0.5/2 = 0.25,
     * then 0.25 - 0.5 - 0.25 = -0.5; tokens 3 and 4 unchanged. */
    double want[5] = {1.0, -3.75, -0.5, 3.0, -0.5};
    double lsm[5];
    ref_log_softmax(want, 5, lsm);
    vrt_sample_scratch sc;
    vrt_err err = {0};
    ASSERT_OK(vrt_sample_scratch_init(&sc, 5, &err), &err);
    vrt_sample_result r;
    ASSERT_OK(vrt_sample(&p, logits, 5, prompt, 2, gen, 4, NULL, &sc, &r, &err), &err);
    ASSERT_EQ_INT(r.token, 3);
    ASSERT_NEAR(r.logprob, lsm[3], 1e-6);
    ASSERT_EQ_INT(r.n_top, 5);
    int order[5] = {3, 0, 2, 4, 1}; /* 2 and 4 tie at -0.5: lower id first */
    for (int i = 0; i < 5; i++) {
        ASSERT_EQ_INT(r.top_ids[i], order[i]);
        ASSERT_NEAR(r.top_logprobs[i], lsm[order[i]], 1e-6);
    }
    /* The scratch counts are back to zero. */
    for (int i = 0; i < 5; i++)
        ASSERT_EQ_INT(sc.count[i], 0);
    /* The penalty changes the greedy choice once token 3 repeats. */
    int32_t gen3[3] = {3, 3, 3};
    p.repetition_penalty = 1.5f; /* 3/1.5 = 2, then 2 - 1.5 - 0.25 = 0.25 < 2/1.5 */
    ASSERT_OK(vrt_sample(&p, logits, 5, NULL, 0, gen3, 3, NULL, &sc, &r, &err), &err);
    ASSERT_EQ_INT(r.token, 0);
    /* Same as the reference on random data. */
    enum { V = 200 };
    float big[V];
    int32_t pr[50], ge[80];
    double pen[V], ref[V];
    vrt_sample_scratch sc2;
    ASSERT_OK(vrt_sample_scratch_init(&sc2, V, &err), &err);
    unsigned seed = 99;
    for (int iter = 0; iter < 20; iter++) {
        fill_logits(big, V, 1000 + iter, 5.0f);
        for (int i = 0; i < 50; i++)
            pr[i] = rand_r(&seed) % 60;
        for (int i = 0; i < 80; i++)
            ge[i] = 30 + rand_r(&seed) % 60;
        vrt_sampling_params q = vrt_sampling_params_default();
        q.repetition_penalty = 0.5f + (float)(iter % 4) * 0.4f;
        q.frequency_penalty = -1.0f + (float)(iter % 5) * 0.5f;
        q.presence_penalty = 1.5f - (float)(iter % 3);
        q.n_logprobs = 20;
        ref_penalize(&q, big, V, pr, 50, ge, 80, pen);
        ref_log_softmax(pen, V, ref);
        ASSERT_OK(vrt_sample(&q, big, V, pr, 50, ge, 80, NULL, &sc2, &r, &err), &err);
        for (int i = 0; i < 20; i++)
            ASSERT_NEAR(r.top_logprobs[i], ref[r.top_ids[i]], 1e-5);
        int best = 0;
        for (int i = 1; i < V; i++)
            best = pen[i] > pen[best] ? i : best;
        ASSERT_EQ_INT(r.token, best);
        for (int i = 0; i < V; i++)
            ASSERT_EQ_INT(sc2.count[i], 0);
    }
    vrt_sample_scratch_free(&sc2);
    vrt_sample_scratch_free(&sc);
}

/* ---- determinism -------------------------------------------------------------- */

static int run_sequence(uint64_t seed, int32_t *out, int n, int interleave)
{
    enum { V = 64 };
    float logits[V];
    fill_logits(logits, V, 4, 1.0f);
    vrt_sample_scratch sc;
    vrt_err err = {0};
    if (vrt_sample_scratch_init(&sc, V, &err))
        return -1;
    vrt_sampling_params p = sampling(1.0f, seed);
    p.top_p = 0.95f;
    p.frequency_penalty = 0.1f;
    vrt_sampling_params other = sampling(0.7f, seed + 1);
    other.top_k = 5;
    vrt_rng rng, rng2;
    vrt_rng_seed(&rng, seed);
    vrt_rng_seed(&rng2, seed + 1);
    for (int i = 0; i < n; i++) {
        vrt_sample_result r;
        if (interleave) /* another request in the same batch, same scratch */
            for (int k = 0; k < i % 3; k++)
                if (vrt_sample(&other, logits, V, NULL, 0, out, i, &rng2, &sc, &r, &err))
                    return -1;
        if (vrt_sample(&p, logits, V, NULL, 0, out, i, &rng, &sc, &r, &err))
            return -1;
        out[i] = r.token;
    }
    vrt_sample_scratch_free(&sc);
    return 0;
}

TEST(sampler_same_seed_same_sequence)
{
    int32_t a[200], b[200], c[200], d[200];
    ASSERT_EQ_INT(run_sequence(1234, a, 200, 0), 0);
    ASSERT_EQ_INT(run_sequence(1234, b, 200, 0), 0);
    ASSERT_EQ_INT(run_sequence(1234, c, 200, 1), 0);
    ASSERT_EQ_INT(run_sequence(1235, d, 200, 0), 0);
    ASSERT(memcmp(a, b, sizeof a) == 0);
    ASSERT(memcmp(a, c, sizeof a) == 0); /* batch composition does not matter */
    int differ = 0;
    for (int i = 0; i < 200; i++)
        differ += a[i] != d[i];
    ASSERT(differ > 50);
}

TEST(sampler_rng_uniform)
{
    vrt_rng r;
    vrt_rng_seed(&r, 0);
    double sum = 0;
    int buckets[10] = {0};
    for (int i = 0; i < 100000; i++) {
        double u = vrt_rng_uniform(&r);
        ASSERT(u >= 0.0 && u < 1.0);
        sum += u;
        buckets[(int)(u * 10)]++;
    }
    ASSERT_NEAR(sum / 100000, 0.5, 0.01);
    for (int i = 0; i < 10; i++)
        ASSERT(buckets[i] > 9500 && buckets[i] < 10500);
    vrt_rng a, b;
    vrt_rng_seed(&a, 1);
    vrt_rng_seed(&b, 2);
    ASSERT(vrt_rng_next(&a) != vrt_rng_next(&b));
}

/* ---- logprobs ------------------------------------------------------------------ */

TEST(sampler_logprobs_match_double_log_softmax)
{
    enum { V = 5000 };
    static float logits[V];
    static double ref[V], pen[V];
    fill_logits(logits, V, 17, 20.0f);
    logits[123] = logits[4567] = 25.0f; /* a tie at the top */
    vrt_sample_scratch sc;
    vrt_err err = {0};
    ASSERT_OK(vrt_sample_scratch_init(&sc, V, &err), &err);
    vrt_sampling_params p = sampling(1.7f, 3);
    p.top_p = 0.9f;
    p.n_logprobs = 20;
    for (int i = 0; i < V; i++)
        pen[i] = logits[i];
    ref_log_softmax(pen, V, ref);
    int order[V];
    for (int i = 0; i < V; i++)
        order[i] = i;
    g_key = ref;
    qsort(order, V, sizeof *order, cmp_desc);
    vrt_rng rng;
    vrt_rng_seed(&rng, 3);
    for (int iter = 0; iter < 50; iter++) {
        vrt_sample_result r;
        ASSERT_OK(vrt_sample(&p, logits, V, NULL, 0, NULL, 0, &rng, &sc, &r, &err), &err);
        /* The logprob is the untempered one, whatever token was drawn. */
        ASSERT_NEAR(r.logprob, ref[r.token], 1e-5);
        ASSERT_EQ_INT(r.n_top, 20);
        for (int i = 0; i < 20; i++) {
            ASSERT_EQ_INT(r.top_ids[i], order[i]);
            ASSERT_NEAR(r.top_logprobs[i], ref[order[i]], 1e-5);
        }
    }
    ASSERT_EQ_INT(order[0], 123);
    /* n_logprobs larger than the vocabulary. */
    vrt_sampling_params g = vrt_sampling_params_default();
    g.n_logprobs = 10;
    float tiny[3] = {0.0f, 1.0f, 2.0f};
    vrt_sample_result r;
    ASSERT_OK(vrt_sample(&g, tiny, 3, NULL, 0, NULL, 0, NULL, &sc, &r, &err), &err);
    ASSERT_EQ_INT(r.n_top, 3);
    ASSERT_EQ_INT(r.top_ids[0], 2);
    ASSERT_EQ_INT(r.top_ids[2], 0);
    vrt_sample_scratch_free(&sc);
}

/* ---- bad input --------------------------------------------------------------------- */

TEST(sampler_bad_input_errors)
{
    float logits[4] = {0.0f, 1.0f, NAN, 2.0f};
    vrt_sample_scratch sc;
    vrt_err err = {0};
    ASSERT_OK(vrt_sample_scratch_init(&sc, 4, &err), &err);
    vrt_sampling_params p = vrt_sampling_params_default();
    vrt_sample_result r;
    ASSERT_EQ_INT(vrt_sample(&p, logits, 4, NULL, 0, NULL, 0, NULL, &sc, &r, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "token 2");
    ASSERT_CONTAINS(err.msg, "nan");
    logits[2] = INFINITY;
    ASSERT_EQ_INT(vrt_sample(&p, logits, 4, NULL, 0, NULL, 0, NULL, &sc, &r, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "inf");
    logits[2] = -INFINITY;
    ASSERT_EQ_INT(vrt_sample(&p, logits, 4, NULL, 0, NULL, 0, NULL, &sc, &r, &err), VRT_EINVAL);
    logits[2] = 0.5f;
    int32_t bad[2] = {1, 4};
    ASSERT_EQ_INT(vrt_sample(&p, logits, 4, bad, 2, NULL, 0, NULL, &sc, &r, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "prompt token 1 has id 4");
    ASSERT_EQ_INT(vrt_sample(&p, logits, 8, NULL, 0, NULL, 0, NULL, &sc, &r, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "scratch");
    p.do_sample = 1;
    ASSERT_EQ_INT(vrt_sample(&p, logits, 4, NULL, 0, NULL, 0, NULL, &sc, &r, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "RNG");
    p.top_p = 2.0f;
    vrt_rng rng;
    vrt_rng_seed(&rng, 1);
    ASSERT_EQ_INT(vrt_sample(&p, logits, 4, NULL, 0, NULL, 0, &rng, &sc, &r, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "top_p");
    /* Still works after the errors. */
    p = vrt_sampling_params_default();
    ASSERT_OK(vrt_sample(&p, logits, 4, NULL, 0, NULL, 0, NULL, &sc, &r, &err), &err);
    ASSERT_EQ_INT(r.token, 3);
    vrt_sample_scratch_free(&sc);
}
