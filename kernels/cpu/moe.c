/* moe.c — CPU mixture-of-experts routing: softmax over experts, then top-k.
 *
 * Selection is done on the logits (softmax is monotonic, so the chosen
 * experts are the same, and the choice does not depend on rounding of the
 * probabilities); ties go to the lower expert index. A NaN logit is treated
 * as -inf for selection. The k weights are the softmax probabilities of the
 * chosen experts, renormalized to sum 1 when asked (Mixtral does).
 */
#include "cpu/cpu.h"

#include "core/err.h"

#include <math.h>

#define MOE_MAX_K VRT_MOE_MAX_K

int vrt__cpu_moe_topk(vrt_backend *b, const float *router_logits, int T, int E, int k,
                      int renormalize, int32_t *idx, float *weights, vrt_err *err)
{
    /* Kept here although the front checks it: best/bi/w below are stack
     * arrays of MOE_MAX_K. */
    if (k < 1 || k > MOE_MAX_K)
        return vrt_err_set(err, VRT_ERANGE, "moe_topk: k = %d (the cpu backend allows 1..%d)", k,
                           MOE_MAX_K);
    const int nt = vrt__cpu_threads(b);
#pragma omp parallel for num_threads(nt) if ((int64_t)T * E > 16384) schedule(static)
    for (int t = 0; t < T; t++) {
        const float *x = router_logits + (int64_t)t * E;
        float best[MOE_MAX_K];
        int32_t bi[MOE_MAX_K];
        int n = 0;
        float mx = -INFINITY;
        for (int e = 0; e < E; e++) {
            float v = isnan(x[e]) ? -INFINITY : x[e];
            mx = v > mx ? v : mx;
            if (n == k && !(v > best[k - 1]))
                continue;
            /* Insert after every kept entry >= v: ties keep the lower index. */
            int pos = n < k ? n : k - 1;
            while (pos > 0 && v > best[pos - 1]) {
                best[pos] = best[pos - 1];
                bi[pos] = bi[pos - 1];
                pos--;
            }
            best[pos] = v;
            bi[pos] = e;
            if (n < k)
                n++;
        }
        float sum = 0.0f;
        for (int e = 0; e < E; e++)
            sum += isnan(x[e]) ? 0.0f : expf(x[e] - mx);
        float sel = 0.0f, w[MOE_MAX_K];
        for (int j = 0; j < k; j++) {
            w[j] = expf(best[j] - mx) / sum;
            sel += w[j];
        }
        for (int j = 0; j < k; j++) {
            idx[(int64_t)t * k + j] = bi[j];
            weights[(int64_t)t * k + j] = renormalize ? w[j] / sel : w[j];
        }
    }
    return 0;
}
