/* half.h — IEEE binary16 (fp16) <-> binary32 conversion, in plain C.
 *
 * The KV cache and f16 weights are stored as uint16_t bit patterns; these
 * helpers convert them without relying on F16C or _Float16, so the result is
 * the same on every host. fp16 -> fp32 is exact (subnormals included, NaN
 * payloads kept); fp32 -> fp16 rounds to nearest, ties to even, overflows to
 * inf, keeps NaN a (quiet) NaN and produces fp16 subnormals exactly. Both use
 * integer arithmetic only, so the FPU rounding mode and flush-to-zero
 * settings do not change the result.
 */
#ifndef VRT_BACKEND_HALF_H
#define VRT_BACKEND_HALF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline float vrt_bits_to_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t vrt_f32_to_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Branch-free (masks instead of branches) so that loops over it vectorize. */
static inline float vrt_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t o = (uint32_t)(h & 0x7fffu) << 13; /* exponent and mantissa in place */
    uint32_t e = o & 0x0f800000u;
    uint32_t normal = o + 0x38000000u;      /* rebias 15 -> 127 */
    uint32_t infnan = normal + 0x38000000u; /* exponent 31 -> 255 */
    /* Subnormal (or zero): value = man * 2^-24, exact in f32. */
    union {
        float f;
        uint32_t u;
    } sub = {.f = (float)(int32_t)(h & 0x3ffu) * 0x1p-24f}, r;
    uint32_t m_inf = 0u - (uint32_t)(e == 0x0f800000u), m_sub = 0u - (uint32_t)(e == 0);
    r.u = (normal & ~(m_inf | m_sub)) | (infnan & m_inf) | (sub.u & m_sub) | sign;
    return r.f;
}

static inline uint16_t vrt_f32_to_f16(float f)
{
    uint32_t x = vrt_f32_to_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x >= 0x7f800000u) { /* inf or NaN; a NaN stays a quiet NaN */
        if (x == 0x7f800000u)
            return (uint16_t)(sign | 0x7c00u);
        return (uint16_t)(sign | 0x7e00u | ((x >> 13) & 0x3ffu));
    }
    if (x >= 0x477ff000u) /* >= 65520: rounds to inf (65504 is odd, ties go up) */
        return (uint16_t)(sign | 0x7c00u);
    if (x >= 0x38800000u) { /* normal fp16 range: drop 13 mantissa bits */
        uint32_t r = (x - 0x38000000u) >> 13;
        uint32_t rem = x & 0x1fffu;
        if (rem > 0x1000u || (rem == 0x1000u && (r & 1u)))
            r++; /* a carry into the exponent is the correct result */
        return (uint16_t)(sign | r);
    }
    if (x <= 0x33000000u) /* <= 2^-25: rounds to zero (the tie goes to even 0) */
        return sign;
    /* fp16 subnormal: result = round(value / 2^-24) with value = m * 2^(e-150). */
    uint32_t m = (x & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126u - (x >> 23); /* 14..24 here */
    uint32_t r = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u)))
        r++;
    return (uint16_t)(sign | r);
}

/* bfloat16 -> fp32: the upper half of the fp32 bit pattern (exact). */
static inline float vrt_bf16_to_f32(uint16_t h)
{
    return vrt_bits_to_f32((uint32_t)h << 16);
}

/* dst[i] = fp32(src[i]) for i < n. */
static inline void vrt_f16_to_f32_n(float *dst, const uint16_t *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = vrt_f16_to_f32(src[i]);
}

/* dst[i] = fp16(src[i]) for i < n (round to nearest even). */
static inline void vrt_f32_to_f16_n(uint16_t *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = vrt_f32_to_f16(src[i]);
}

#endif
