/* ref.c — the float64 reference ops (see ref.h). Used only by the op tests.
 *
 * Written for clarity: one loop nest per formula, in double, with the
 * PyTorch expression each one matches. The fp16 conversions here use
 * frexp/ldexp/rint, a different method from runtime/backend/half.h, so the
 * two check each other.
 */
#include "ref/ref.h"

#include <math.h>
#include <stdlib.h>

double vrt_ref_f16_to_double(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else if (e == 0)
        v = ldexp((double)m, -24);
    else
        v = ldexp((double)(1024 + m), e - 25);
    return sign ? -v : v;
}

uint16_t vrt_ref_f16_from_double(double x)
{
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    if (isnan(x))
        return sign | 0x7e00;
    double a = fabs(x);
    if (a == 0)
        return sign;
    int ex;
    frexp(a, &ex); /* a = f * 2^ex, f in [0.5, 1) */
    int e = ex - 1;
    if (e < -14)
        e = -14;                       /* subnormal range: the quantum stays 2^-24 */
    double m = rint(ldexp(a, 10 - e)); /* round to nearest even in units of 2^(e-10) */
    if (m >= 2048) {
        m /= 2;
        e++;
    }
    if (e > 15)
        return sign | 0x7c00;
    if (m < 1024)
        return sign | (uint16_t)m; /* subnormal */
    return sign | (uint16_t)(((e + 15) << 10) | ((int)m - 1024));
}

static double wval(const vrt_weight *w, int64_t i)
{
    if (w->dtype == VRT_DT_F16)
        return vrt_ref_f16_to_double(((const uint16_t *)w->data)[i]);
    return ((const float *)w->data)[i];
}

void vrt_ref_embed(double *out, const vrt_weight *table, const int32_t *ids, int T)
{
    int64_t D = table->cols;
    for (int t = 0; t < T; t++)
        for (int64_t i = 0; i < D; i++)
            out[t * D + i] = wval(table, (int64_t)ids[t] * D + i);
}

/* x * rsqrt(mean(x^2) + eps) * (w + w_offset) */
void vrt_ref_rmsnorm(double *out, const float *x, const vrt_weight *w, int T, int D, double eps,
                     double w_offset)
{
    for (int t = 0; t < T; t++) {
        const float *r = x + (int64_t)t * D;
        double ss = 0;
        for (int i = 0; i < D; i++)
            ss += (double)r[i] * r[i];
        double inv = 1.0 / sqrt(ss / D + eps);
        for (int i = 0; i < D; i++)
            out[(int64_t)t * D + i] = r[i] * inv * (wval(w, i) + w_offset);
    }
}

/* F.layer_norm(x, (D,), w, bias, eps) */
void vrt_ref_layernorm(double *out, const float *x, const vrt_weight *w, const vrt_weight *bias,
                       int T, int D, double eps)
{
    for (int t = 0; t < T; t++) {
        const float *r = x + (int64_t)t * D;
        double mean = 0, var = 0;
        for (int i = 0; i < D; i++)
            mean += r[i];
        mean /= D;
        for (int i = 0; i < D; i++)
            var += (r[i] - mean) * (r[i] - mean);
        var /= D;
        for (int i = 0; i < D; i++)
            out[(int64_t)t * D + i] =
                (r[i] - mean) / sqrt(var + eps) * wval(w, i) + (bias ? wval(bias, i) : 0.0);
    }
}

void vrt_ref_rope(double *out, const float *x, const int32_t *pos, int T, int n_heads, int head_dim,
                  int rot_dim, int interleaved, const float *inv_freq)
{
    int half = rot_dim / 2;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < n_heads; h++) {
            const float *v = x + ((int64_t)t * n_heads + h) * head_dim;
            double *o = out + ((int64_t)t * n_heads + h) * head_dim;
            for (int d = 0; d < head_dim; d++)
                o[d] = v[d];
            for (int i = 0; i < half; i++) {
                double a = (double)pos[t] * (double)inv_freq[i];
                int i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
                o[i0] = v[i0] * cos(a) - v[i1] * sin(a);
                o[i1] = v[i0] * sin(a) + v[i1] * cos(a);
            }
        }
}

/* F.linear(x, W, bias) */
/* W[n][perm[k]] = (q(n, k) - zeros[n][k / G]) * scales[n][k / G], straight
 * from the layout description in backend.h (internal column k is nibble
 * k % 8 of word k / 8 of row n, rows Kp / 8 words long). */
void vrt_ref_q4_dequant(double *out, const vrt_weight *W)
{
    const vrt_q4 *q = W->q4;
    int64_t N = W->rows, K = W->cols;
    int64_t words = (K + VRT_Q4_KBLOCK - 1) / VRT_Q4_KBLOCK * VRT_Q4_KBLOCK / 8;
    int64_t G = q->group_size >= K ? K : q->group_size;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) {
            uint32_t word = q->qweight[n * words + k / 8];
            int nib = (int)((word >> (4 * (k % 8))) & 15u);
            int64_t g = k / G;
            double s = vrt_ref_f16_to_double(q->scales[n * q->n_groups + g]);
            double z = vrt_ref_f16_to_double(q->zeros[n * q->n_groups + g]);
            int64_t col = q->perm ? q->perm[k] : k;
            out[n * K + col] = (nib - z) * s;
        }
}

void vrt_ref_matmul(double *y, const float *x, const vrt_weight *W, const float *bias, int T)
{
    int64_t N = W->rows, K = W->cols;
    double *dq = NULL;
    if (W->dtype == VRT_DT_Q4) {
        dq = malloc((size_t)(N * K) * sizeof *dq);
        vrt_ref_q4_dequant(dq, W);
    }
    for (int t = 0; t < T; t++)
        for (int64_t n = 0; n < N; n++) {
            double s = bias ? bias[n] : 0.0;
            for (int64_t k = 0; k < K; k++)
                s += (double)x[t * K + k] * (dq ? dq[n * K + k] : wval(W, n * K + k));
            y[t * N + n] = s;
        }
    free(dq);
}

static double gelu_d(double g, int tanh_approx)
{
    if (tanh_approx)
        return 0.5 * g * (1.0 + tanh(sqrt(2.0 / M_PI) * (g + 0.044715 * g * g * g)));
    return 0.5 * g * (1.0 + erf(g / sqrt(2.0)));
}

/* F.silu(gate) * up */
void vrt_ref_silu_mul(double *out, const float *gate, const float *up, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = gate[i] / (1.0 + exp(-(double)gate[i])) * up[i];
}

/* F.gelu(gate, approximate="tanh" | "none") * up */
void vrt_ref_gelu_mul(double *out, const float *gate, const float *up, int64_t n, int tanh_approx)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = gelu_d(gate[i], tanh_approx) * up[i];
}

void vrt_ref_gelu(double *out, const float *x, int64_t n, int tanh_approx)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = gelu_d(x[i], tanh_approx);
}

void vrt_ref_add(double *out, const float *a, const float *c, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = (double)a[i] + c[i];
}

void vrt_ref_kv_store(uint16_t *k_cache, uint16_t *v_cache, const float *k, const float *v,
                      const int32_t *slots, int T, int n_kv_heads, int head_dim)
{
    int64_t row = (int64_t)n_kv_heads * head_dim;
    for (int t = 0; t < T; t++) {
        if (slots[t] < 0)
            continue;
        for (int64_t i = 0; i < row; i++) {
            k_cache[slots[t] * row + i] = vrt_ref_f16_from_double(k[t * row + i]);
            v_cache[slots[t] * row + i] = vrt_ref_f16_from_double(v[t * row + i]);
        }
    }
}

/* softmax(q·Kᵀ * scale + causal/window mask) · V, per token and head. */
void vrt_ref_attention(double *out, const float *q, const uint16_t *k_cache,
                       const uint16_t *v_cache, const vrt_attn_batch *a)
{
    int H = a->n_heads, hd = a->head_dim, group = a->n_heads / a->n_kv_heads;
    int64_t row = (int64_t)a->n_kv_heads * hd;
    for (int s = 0; s < a->n_seqs; s++) {
        int q_len = a->q_start[s + 1] - a->q_start[s];
        int ctx = a->ctx_len[s];
        double *sc = malloc(sizeof(double) * (size_t)(ctx > 0 ? ctx : 1));
        for (int j = 0; j < q_len; j++) {
            int t = a->q_start[s] + j, p = ctx - q_len + j;
            for (int h = 0; h < H; h++) {
                const float *qv = q + ((int64_t)t * H + h) * hd;
                double *o = out + ((int64_t)t * H + h) * hd;
                int kvh = h / group;
                double mx = -INFINITY;
                for (int k = 0; k < ctx; k++) {
                    int visible = k <= p && (a->sliding_window == 0 || p - k < a->sliding_window);
                    sc[k] = -INFINITY;
                    if (!visible)
                        continue;
                    int64_t slot = (int64_t)a->block_table[(int64_t)s * a->max_blocks_per_seq +
                                                           k / a->block_size] *
                                       a->block_size +
                                   k % a->block_size;
                    double d = 0;
                    for (int i = 0; i < hd; i++)
                        d += (double)qv[i] *
                             vrt_ref_f16_to_double(k_cache[slot * row + (int64_t)kvh * hd + i]);
                    sc[k] = d * a->scale;
                    if (sc[k] > mx)
                        mx = sc[k];
                }
                double sum = 0;
                for (int k = 0; k < ctx; k++) {
                    sc[k] = sc[k] == -INFINITY ? 0.0 : exp(sc[k] - mx);
                    sum += sc[k];
                }
                for (int i = 0; i < hd; i++)
                    o[i] = 0;
                for (int k = 0; k < ctx; k++) {
                    if (sc[k] == 0.0)
                        continue;
                    int64_t slot = (int64_t)a->block_table[(int64_t)s * a->max_blocks_per_seq +
                                                           k / a->block_size] *
                                       a->block_size +
                                   k % a->block_size;
                    for (int i = 0; i < hd; i++)
                        o[i] += sc[k] / sum *
                                vrt_ref_f16_to_double(v_cache[slot * row + (int64_t)kvh * hd + i]);
                }
            }
        }
        free(sc);
    }
}

typedef struct {
    double v;
    int i;
} ref_pair;

static int cmp_desc(const void *x, const void *y)
{
    const ref_pair *a = x, *b = y;
    if (a->v != b->v)
        return a->v > b->v ? -1 : 1;
    return a->i - b->i; /* ties: lower index first */
}

void vrt_ref_moe_topk(const float *router_logits, int T, int E, int k, int renormalize,
                      int32_t *idx, double *weights)
{
    ref_pair *p = malloc(sizeof *p * (size_t)E);
    for (int t = 0; t < T; t++) {
        const float *x = router_logits + (int64_t)t * E;
        double mx = -INFINITY, sum = 0, sel = 0;
        for (int e = 0; e < E; e++)
            mx = x[e] > mx ? x[e] : mx;
        for (int e = 0; e < E; e++) {
            p[e].v = x[e]; /* sorting logits = sorting probabilities */
            p[e].i = e;
            sum += exp(x[e] - mx);
        }
        qsort(p, (size_t)E, sizeof *p, cmp_desc);
        for (int j = 0; j < k; j++)
            sel += exp(p[j].v - mx) / sum;
        for (int j = 0; j < k; j++) {
            idx[(int64_t)t * k + j] = p[j].i;
            weights[(int64_t)t * k + j] = exp(p[j].v - mx) / sum / (renormalize ? sel : 1.0);
        }
    }
    free(p);
}
