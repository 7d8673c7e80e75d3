/* test.h — the C unit test framework.
 *
 * A test is a function declared with TEST(name); it registers itself at
 * startup. The runner (tests/unit/runner.c) forks one child per test, so a
 * crash or a hang fails only that test, and kills it after a timeout
 * (VRT_TEST_TIMEOUT seconds, default 60). Assertions print both values and
 * end the test (they return from the test function).
 */
#ifndef VRT_TEST_H
#define VRT_TEST_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef void (*vrt_test_fn)(void);

/* Reads a whole file (NUL-terminated; *len gets its size when len is not
 * NULL); NULL when it cannot. Free with free(). */
char *vrt_test_read_file(const char *path, size_t *len);
void vrt_test_register(const char *name, const char *file, vrt_test_fn fn);
/* Set by assertions in the child; the runner reads the exit status. */
extern int vrt_test_failed;

/* tests/unit/helpers.c. mkmodel's "tiny" preset (a Llama, f32 weights,
 * seed) written to dir = /tmp/vrt-test-TAG-PID unless dir is already set
 * (once per process); returns dir, or NULL with a message on stderr. */
const char *vrt_test_tiny_model(char *dir, size_t cap, const char *tag, uint64_t seed);
/* Removes that model and the config DIR.lua tests write next to it. */
void vrt_test_tiny_model_rm(char *dir);
/* Writes a config whose batching.policy is the given Lua text and loads
 * its policy (vrt_policy_load with the budget and deadline). */
struct vrt_policy;
struct vrt_err;
int vrt_test_load_policy(struct vrt_policy **p, const char *policy, double budget_s,
                         double deadline_s, struct vrt_err *err);
/* rm -r of a tree the tests made (no symlinks in it); a file is unlinked. */
void vrt_test_rm_tree(const char *path);

#define TEST(name)                                                                                 \
    static void test_##name(void);                                                                 \
    __attribute__((constructor)) static void register_##name(void)                                 \
    {                                                                                              \
        vrt_test_register(#name, __FILE__, test_##name);                                           \
    }                                                                                              \
    static void test_##name(void)

#define TFAIL(...)                                                                                 \
    do {                                                                                           \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                                          \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        vrt_test_failed = 1;                                                                       \
        return;                                                                                    \
    } while (0)

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            TFAIL("assertion failed: %s", #cond);                                                  \
    } while (0)

#define ASSERT_EQ_INT(a, b)                                                                        \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ != vb_)                                                                            \
            TFAIL("%s == %s: %lld != %lld", #a, #b, va_, vb_);                                     \
    } while (0)

#define ASSERT_EQ_STR(a, b)                                                                        \
    do {                                                                                           \
        const char *sa_ = (a), *sb_ = (b);                                                         \
        if (!sa_ || !sb_ || strcmp(sa_, sb_) != 0)                                                 \
            TFAIL("%s == %s: \"%s\" != \"%s\"", #a, #b, sa_ ? sa_ : "(null)",                      \
                  sb_ ? sb_ : "(null)");                                                           \
    } while (0)

#define ASSERT_CONTAINS(hay, needle)                                                               \
    do {                                                                                           \
        const char *h_ = (hay), *n_ = (needle);                                                    \
        if (!h_ || !strstr(h_, n_))                                                                \
            TFAIL("%s does not contain \"%s\": \"%s\"", #hay, n_, h_ ? h_ : "(null)");             \
    } while (0)

#define ASSERT_NEAR(a, b, tol)                                                                     \
    do {                                                                                           \
        double da_ = (double)(a), db_ = (double)(b);                                               \
        if (!(fabs(da_ - db_) <= (tol)))                                                           \
            TFAIL("%s ~= %s: %.9g vs %.9g (tol %g)", #a, #b, da_, db_, (double)(tol));             \
    } while (0)

/* For calls returning 0 or a VRT_E* code with a vrt_err: prints the message. */
#define ASSERT_OK(call, errp)                                                                      \
    do {                                                                                           \
        int rc_ = (call);                                                                          \
        if (rc_ != 0)                                                                              \
            TFAIL("%s returned %d: %s", #call, rc_, (errp)->msg);                                  \
    } while (0)

#endif
