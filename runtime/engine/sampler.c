/* sampler.c — penalties, logprobs, greedy and filtered sampling (see
 * sampler.h for the semantics and their sources).
 *
 * Candidates are token ids in scratch->idx[0..n). Filters shrink n; the ones
 * that need an order (top_k, top_p, typical_p) get it from a heap that is
 * sorted lazily: only as many tokens are popped as the filter keeps. The
 * scaled logit of token i is s_i = work[i] / temperature, computed in double
 * where it is used, so work[] keeps the penalized logits that logprobs are
 * reported from.
 */
#include "engine/sampler.h"

#include "core/err.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

vrt_sampling_params vrt_sampling_params_default(void)
{
    vrt_sampling_params p;
    memset(&p, 0, sizeof p);
    p.do_sample = 0;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.typical_p = 1.0f;
    p.min_p = 0.0f;
    p.repetition_penalty = 1.0f;
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.0f;
    p.seed = 0;
    p.n_logprobs = 0;
    return p;
}

int vrt_sampling_params_validate(const vrt_sampling_params *p, vrt_err *err)
{
    if (!p)
        return vrt_err_set(err, VRT_EINVAL, "sampling parameters: NULL pointer");
    /* Written as !(in range) so that NaN fails every check. */
    if (!(p->temperature >= 0.0f) || isinf(p->temperature))
        return vrt_err_set(err, VRT_EINVAL,
                           "temperature must be > 0, or 0 for greedy decoding (got %g)",
                           (double)p->temperature);
    if (p->top_k < 0)
        return vrt_err_set(err, VRT_EINVAL, "top_k must be >= 0 (0 disables it) (got %d)",
                           p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return vrt_err_set(err, VRT_EINVAL, "top_p must be in (0, 1] (1 disables it) (got %g)",
                           (double)p->top_p);
    if (!(p->typical_p > 0.0f && p->typical_p <= 1.0f))
        return vrt_err_set(err, VRT_EINVAL, "typical_p must be in (0, 1] (1 disables it) (got %g)",
                           (double)p->typical_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return vrt_err_set(err, VRT_EINVAL, "min_p must be in [0, 1] (0 disables it) (got %g)",
                           (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f) || isinf(p->repetition_penalty))
        return vrt_err_set(err, VRT_EINVAL,
                           "repetition_penalty must be > 0 (1 disables it) (got %g)",
                           (double)p->repetition_penalty);
    if (!(p->frequency_penalty >= -2.0f && p->frequency_penalty <= 2.0f))
        return vrt_err_set(err, VRT_EINVAL,
                           "frequency_penalty must be in [-2, 2] (0 disables it) (got %g)",
                           (double)p->frequency_penalty);
    if (!(p->presence_penalty >= -2.0f && p->presence_penalty <= 2.0f))
        return vrt_err_set(err, VRT_EINVAL,
                           "presence_penalty must be in [-2, 2] (0 disables it) (got %g)",
                           (double)p->presence_penalty);
    if (p->n_logprobs < 0 || p->n_logprobs > VRT_SAMPLE_MAX_LOGPROBS)
        return vrt_err_set(err, VRT_EINVAL, "n_logprobs must be in [0, %d] (got %d)",
                           VRT_SAMPLE_MAX_LOGPROBS, p->n_logprobs);
    return 0;
}

/* ---- RNG ---------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t vrt_rng_random_seed(void)
{
    static uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
    uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (n * 0x9E3779B97F4A7C15ull);
    return splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

void vrt_rng_seed(vrt_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&x);
}

uint64_t vrt_rng_next(vrt_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double vrt_rng_uniform(vrt_rng *r)
{
    return (double)(vrt_rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- scratch ------------------------------------------------------------ */

int vrt_sample_scratch_init(vrt_sample_scratch *s, int V, vrt_err *err)
{
    memset(s, 0, sizeof *s);
    if (V <= 0)
        return vrt_err_set(err, VRT_EINVAL, "sampler scratch: vocabulary size must be > 0 (got %d)",
                           V);
    s->work = malloc((size_t)V * sizeof *s->work);
    s->key = malloc((size_t)V * sizeof *s->key);
    s->idx = malloc((size_t)V * sizeof *s->idx);
    s->count = calloc((size_t)V, sizeof *s->count);
    if (!s->work || !s->key || !s->idx || !s->count) {
        vrt_sample_scratch_free(s);
        return vrt_err_set(err, VRT_ENOMEM, "sampler scratch: out of memory for a vocabulary of %d",
                           V);
    }
    s->V = V;
    return 0;
}

void vrt_sample_scratch_free(vrt_sample_scratch *s)
{
    if (!s)
        return;
    free(s->work);
    free(s->key);
    free(s->idx);
    free(s->count);
    memset(s, 0, sizeof *s);
}

/* ---- ordering helpers --------------------------------------------------- */

/* Whether token a comes before token b: higher score first, lower id on
 * ties. Every ordering in this file is this one, so results never depend on
 * the order candidates happen to be in. */
static inline int before(const float *score, int32_t a, int32_t b)
{
    return score[a] > score[b] || (score[a] == score[b] && a < b);
}

/* A max-heap (by `before`) over idx[sorted..n) that is popped into the
 * sorted prefix idx[0..sorted). Heap node i lives at idx[n - 1 - i], so
 * the heap shrinks from the front and each pop lands right after the
 * previous one. */
typedef struct {
    int32_t *idx;
    int n, sorted;
    const float *score;
} lazy_sort;

#define LS_NODE(ls, i) ((ls)->idx[(ls)->n - 1 - (i)])

static void ls_sift(lazy_sort *ls, int i, int size)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, best = i;
        if (l < size && before(ls->score, LS_NODE(ls, l), LS_NODE(ls, best)))
            best = l;
        if (r < size && before(ls->score, LS_NODE(ls, r), LS_NODE(ls, best)))
            best = r;
        if (best == i)
            return;
        int32_t t = LS_NODE(ls, i);
        LS_NODE(ls, i) = LS_NODE(ls, best);
        LS_NODE(ls, best) = t;
        i = best;
    }
}

static void ls_init(lazy_sort *ls, int32_t *idx, int n, const float *score)
{
    ls->idx = idx;
    ls->n = n;
    ls->sorted = 0;
    ls->score = score;
    for (int i = n / 2 - 1; i >= 0; i--)
        ls_sift(ls, i, n);
}

/* Moves the best remaining token to idx[sorted] and returns it; the caller
 * checks sorted < n first. */
static int32_t ls_pop(lazy_sort *ls)
{
    int size = ls->n - ls->sorted;
    int32_t top = LS_NODE(ls, 0);
    LS_NODE(ls, 0) = LS_NODE(ls, size - 1); /* that is idx[sorted] */
    ls->idx[ls->sorted++] = top;
    ls_sift(ls, 0, size - 1);
    return top;
}

/* The heap root (best remaining); the caller checks sorted < n first. */
static int32_t ls_peek(const lazy_sort *ls)
{
    return LS_NODE(ls, 0);
}

/* Min-heap (worst kept token at the root) for top-k selection. */
static void topk_sift(const float *score, int32_t *h, int i, int size)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < size && before(score, h[w], h[l]))
            w = l;
        if (r < size && before(score, h[w], h[r]))
            w = r;
        if (w == i)
            return;
        int32_t t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

/* Writes the k best tokens of score[0..V) to idx[0..k), best first. One
 * pass; a token costs one comparison unless it beats the current k-th. */
static void select_top_k(const float *score, int V, int k, int32_t *idx)
{
    for (int i = 0; i < k; i++)
        idx[i] = i;
    for (int i = k / 2 - 1; i >= 0; i--)
        topk_sift(score, idx, i, k);
    for (int i = k; i < V; i++) {
        if (before(score, i, idx[0])) {
            idx[0] = i;
            topk_sift(score, idx, 0, k);
        }
    }
    /* Heap sort: repeatedly move the worst to the end. */
    for (int end = k - 1; end > 0; end--) {
        int32_t t = idx[0];
        idx[0] = idx[end];
        idx[end] = t;
        topk_sift(score, idx, 0, end);
    }
}

/* ---- filters ------------------------------------------------------------ */

static double max_scaled(const float *work, const int32_t *idx, int n, double inv_t)
{
    double m = -HUGE_VAL;
    for (int i = 0; i < n; i++) {
        double s = (double)work[idx[i]] * inv_t;
        if (s > m)
            m = s;
    }
    return m;
}

/* Nucleus: the fewest most-likely tokens whose probability reaches top_p
 * (the token that crosses it is kept). idx_sorted says whether idx[0..n)
 * is already best-first. Returns the new n; idx[0..new n) is best-first. */
static int filter_top_p(vrt_sample_scratch *sc, int n, int idx_sorted, double inv_t, double top_p)
{
    const float *work = sc->work;
    float *q = sc->key; /* q[token] = exp(s - max), unnormalized */
    int32_t *idx = sc->idx;
    double m = max_scaled(work, idx, n, inv_t), z = 0.0;
    for (int i = 0; i < n; i++) {
        int32_t t = idx[i];
        q[t] = (float)exp((double)work[t] * inv_t - m);
        z += q[t];
    }
    double target = top_p * z;
    if (idx_sorted) {
        double cum = 0.0;
        for (int i = 0; i < n; i++) {
            cum += q[idx[i]];
            if (cum >= target)
                return i + 1;
        }
        return n;
    }
    /* Tokens below a threshold t are left out of the sort. That is exact
     * whenever the kept ones already hold top_p of the mass: the nucleus is
     * then a best-first prefix of them. With t = (1-top_p)/n of the mass
     * the dropped tokens hold less than 1-top_p, so that second try always
     * succeeds (up to rounding, where everything is kept). The first try
     * uses a larger t and usually keeps only a few hundred tokens. */
    int kept = n;
    double tries[2] = {(1.0 - top_p) * z / 256.0, (1.0 - top_p) * z / (double)n};
    for (int a = 0; a < 2; a++) {
        int w = 0;
        double mass = 0.0;
        for (int i = 0; i < n; i++) {
            int32_t t = idx[i];
            if (q[t] >= tries[a]) {
                mass += q[t];
                w++;
            }
        }
        if (mass >= target) {
            /* Compact in place: the kept ones to the front, order kept. */
            int j = 0;
            for (int i = 0; i < n; i++)
                if (q[idx[i]] >= tries[a])
                    idx[j++] = idx[i];
            kept = w;
            break;
        }
    }
    lazy_sort ls;
    ls_init(&ls, idx, kept, work);
    double cum = 0.0;
    while (ls.sorted < kept) {
        cum += q[ls_pop(&ls)];
        if (cum >= target)
            break;
    }
    return ls.sorted;
}

/* HF TypicalLogitsWarper: order tokens by |-log p - H| (H the entropy),
 * keep the shortest such prefix whose mass reaches typical_p, plus tokens
 * that tie with its last one. Returns the new n (order: typicality). */
static int filter_typical(vrt_sample_scratch *sc, int n, double inv_t, double mass)
{
    const float *work = sc->work;
    float *key = sc->key;
    int32_t *idx = sc->idx;
    double m = max_scaled(work, idx, n, inv_t), z = 0.0;
    for (int i = 0; i < n; i++)
        z += exp((double)work[idx[i]] * inv_t - m);
    double log_z = m + log(z), h = 0.0;
    for (int i = 0; i < n; i++) {
        double lp = (double)work[idx[i]] * inv_t - log_z;
        h -= exp(lp) * lp;
    }
    for (int i = 0; i < n; i++) {
        double lp = (double)work[idx[i]] * inv_t - log_z;
        key[idx[i]] = (float)-fabs(-lp - h); /* higher = more typical */
    }
    lazy_sort ls;
    ls_init(&ls, idx, n, key);
    double cum = 0.0;
    int32_t last = -1;
    while (ls.sorted < n) {
        last = ls_pop(&ls);
        cum += exp((double)work[last] * inv_t - log_z);
        if (cum >= mass)
            break;
    }
    while (ls.sorted < n && key[ls_peek(&ls)] == key[last])
        ls_pop(&ls);
    return ls.sorted;
}

/* vLLM min_p: drop tokens whose probability is below min_p times the
 * largest one. Keeps the order of idx. */
static int filter_min_p(vrt_sample_scratch *sc, int n, double inv_t, double min_p)
{
    const float *work = sc->work;
    int32_t *idx = sc->idx;
    double m = max_scaled(work, idx, n, inv_t);
    int j = 0;
    for (int i = 0; i < n; i++) {
        if (exp((double)work[idx[i]] * inv_t - m) >= min_p)
            idx[j++] = idx[i];
    }
    return j; /* the max itself always passes: exp(0) = 1 >= min_p */
}

/* One draw from softmax(s) over idx[0..n). */
static int32_t draw(const vrt_sample_scratch *sc, int n, double inv_t, vrt_rng *rng)
{
    const float *work = sc->work;
    const int32_t *idx = sc->idx;
    double m = max_scaled(work, idx, n, inv_t), z = 0.0;
    for (int i = 0; i < n; i++)
        z += exp((double)work[idx[i]] * inv_t - m);
    double u = vrt_rng_uniform(rng) * z, cum = 0.0;
    int32_t last = idx[0];
    for (int i = 0; i < n; i++) {
        double w = exp((double)work[idx[i]] * inv_t - m);
        if (w > 0.0)
            last = idx[i];
        cum += w;
        if (u < cum)
            return idx[i];
    }
    return last; /* rounding left u at the very top */
}

/* ---- penalties ---------------------------------------------------------- */

static int check_ids(const char *what, const int32_t *ids, int n, int V, vrt_err *err)
{
    if (n < 0)
        return vrt_err_set(err, VRT_EINVAL, "sampler: %s has a negative length (%d)", what, n);
    if (n > 0 && !ids)
        return vrt_err_set(err, VRT_EINVAL, "sampler: %s is NULL but has %d tokens", what, n);
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V)
            return vrt_err_set(err, VRT_EINVAL,
                               "sampler: %s token %d has id %d, outside the vocabulary [0, %d)",
                               what, i, (int)ids[i], V);
    }
    return 0;
}

static void apply_repetition(float *work, int32_t *mark, const int32_t *ids, int n, float pen)
{
    for (int i = 0; i < n; i++) {
        int32_t t = ids[i];
        if (mark[t])
            continue;
        mark[t] = 1;
        work[t] = work[t] > 0.0f ? work[t] / pen : work[t] * pen;
    }
}

static void clear_marks(int32_t *mark, const int32_t *ids, int n)
{
    for (int i = 0; i < n; i++)
        mark[ids[i]] = 0;
}

/* ---- the entry point ---------------------------------------------------- */

int vrt_sample(const vrt_sampling_params *p, const float *logits, int V, const int32_t *prompt,
               int n_prompt, const int32_t *generated, int n_generated, vrt_rng *rng,
               vrt_sample_scratch *sc, vrt_sample_result *out, vrt_err *err)
{
    int rc = vrt_sampling_params_validate(p, err);
    if (rc)
        return rc;
    if (!logits || !sc || !out)
        return vrt_err_set(err, VRT_EINVAL, "sampler: logits, scratch and result are required");
    if (V <= 0)
        return vrt_err_set(err, VRT_EINVAL, "sampler: vocabulary size must be > 0 (got %d)", V);
    if (sc->V < V || !sc->work)
        return vrt_err_set(err, VRT_EINVAL,
                           "sampler: scratch holds %d tokens, less than the vocabulary (%d); "
                           "initialize it with vrt_sample_scratch_init(s, %d, err)",
                           sc->V, V, V);
    int greedy = !p->do_sample || p->temperature == 0.0f;
    if (!greedy && !rng)
        return vrt_err_set(err, VRT_EINVAL, "sampler: do_sample is set but no RNG was given");
    if ((rc = check_ids("prompt", prompt, n_prompt, V, err)) ||
        (rc = check_ids("generated text", generated, n_generated, V, err)))
        return rc;

    float *work = sc->work;
    for (int i = 0; i < V; i++) {
        if (!isfinite(logits[i]))
            return vrt_err_set(err, VRT_EINVAL,
                               "sampler: logit of token %d is %g; the forward pass produced "
                               "non-finite values (overflow in fp16? try dtype float32)",
                               i, (double)logits[i]);
    }
    memcpy(work, logits, (size_t)V * sizeof *work);

    /* 1. Repetition penalty over the distinct tokens of prompt + output. */
    if (p->repetition_penalty != 1.0f) {
        apply_repetition(work, sc->count, prompt, n_prompt, p->repetition_penalty);
        apply_repetition(work, sc->count, generated, n_generated, p->repetition_penalty);
        clear_marks(sc->count, prompt, n_prompt);
        clear_marks(sc->count, generated, n_generated);
    }
    /* 2. Frequency and presence penalties over the output. Each token is
     * penalized at its first occurrence in the second loop, which also
     * resets its count. */
    if (p->frequency_penalty != 0.0f || p->presence_penalty != 0.0f) {
        for (int i = 0; i < n_generated; i++)
            sc->count[generated[i]]++;
        for (int i = 0; i < n_generated; i++) {
            int32_t t = generated[i];
            int32_t c = sc->count[t];
            if (c == 0)
                continue;
            work[t] -= p->frequency_penalty * (float)c + p->presence_penalty;
            sc->count[t] = 0;
        }
    }

    /* 3. Log-softmax normalizer and top-n of the penalized logits. */
    int n_top = p->n_logprobs < V ? p->n_logprobs : V;
    int32_t argmax = 0;
    float maxv = work[0];
    for (int i = 1; i < V; i++) {
        if (work[i] > maxv) { /* strict: the lowest id wins ties */
            maxv = work[i];
            argmax = i;
        }
    }
    double zsum = 0.0;
    for (int i = 0; i < V; i++)
        zsum += (double)expf(work[i] - maxv);
    double log_z = (double)maxv + log(zsum);
    int have = 0;
    for (int i = 0; i < V && n_top > 0; i++) {
        /* Ascending i: an equal later value never beats an earlier one. */
        if (have == n_top && !(work[i] > work[out->top_ids[have - 1]]))
            continue;
        int j = have < n_top ? have++ : n_top - 1;
        while (j > 0 && work[i] > work[out->top_ids[j - 1]]) {
            out->top_ids[j] = out->top_ids[j - 1];
            j--;
        }
        out->top_ids[j] = i;
    }
    out->n_top = n_top;
    for (int i = 0; i < n_top; i++)
        out->top_logprobs[i] = (float)((double)work[out->top_ids[i]] - log_z);

    /* 4. Choose. */
    int32_t token;
    if (greedy) {
        token = argmax;
    } else {
        double inv_t = 1.0 / (double)p->temperature;
        int32_t *idx = sc->idx;
        int n, sorted = 0;
        if (p->top_k > 0 && p->top_k < V) {
            select_top_k(work, V, p->top_k, idx);
            n = p->top_k;
            sorted = 1;
        } else {
            for (int i = 0; i < V; i++)
                idx[i] = i;
            n = V;
        }
        if (p->top_p < 1.0f) {
            n = filter_top_p(sc, n, sorted, inv_t, (double)p->top_p);
        }
        if (p->typical_p < 1.0f)
            n = filter_typical(sc, n, inv_t, (double)p->typical_p);
        if (p->min_p > 0.0f)
            n = filter_min_p(sc, n, inv_t, (double)p->min_p);
        token = draw(sc, n, inv_t, rng);
    }
    out->token = token;
    out->logprob = (float)((double)work[token] - log_z);
    return 0;
}

double vrt_token_logprob(const float *logits, int V, int id)
{
    double mx = logits[0];
    for (int i = 1; i < V; i++)
        if (logits[i] > mx)
            mx = logits[i];
    double s = 0;
    for (int i = 0; i < V; i++)
        s += exp((double)logits[i] - mx);
    return (double)logits[id] - mx - log(s);
}
