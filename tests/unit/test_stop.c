/* test_stop.c — stop strings over streamed text and stop token ids. */
#include "test.h"

#include "engine/stop.h"

#include <stdlib.h>

/* Feeds pieces[0..n) in order (then flushes); the released text goes to
 * got, the stop index to *matched. Returns 0 on success. */
static int run_pieces(const char *const *stops, int n_stops, const char *const *pieces, int n,
                      char *got, size_t cap, int *matched)
{
    vrt_stop_checker s;
    vrt_err err = {0};
    if (vrt_stop_init(&s, stops, n_stops, &err) != 0)
        return -1;
    vrt_stop_out out = {0};
    *matched = -1;
    for (int i = 0; i < n; i++) {
        int m = -2;
        if (vrt_stop_feed(&s, pieces[i], strlen(pieces[i]), &out, &m, &err) != 0)
            return -1;
        *matched = m;
    }
    if (vrt_stop_flush(&s, &out, &err) != 0)
        return -1;
    snprintf(got, cap, "%s", out.data ? out.data : "");
    vrt_stop_out_free(&out);
    vrt_stop_free(&s);
    return 0;
}

TEST(stop_within_one_piece)
{
    const char *stops[] = {"###"};
    const char *pieces[] = {"hello ### world"};
    char got[256];
    int m;
    ASSERT_EQ_INT(run_pieces(stops, 1, pieces, 1, got, sizeof got, &m), 0);
    ASSERT_EQ_INT(m, 0);
    ASSERT_EQ_STR(got, "hello ");
}

TEST(stop_across_pieces_and_held_back)
{
    const char *stops[] = {"</end>"};
    vrt_stop_checker s;
    vrt_err err = {0};
    ASSERT_OK(vrt_stop_init(&s, stops, 1, &err), &err);
    vrt_stop_out out = {0};
    int m = 0;
    ASSERT_OK(vrt_stop_feed(&s, "abc</", 5, &out, &m, &err), &err);
    ASSERT_EQ_INT(m, -1);
    ASSERT_EQ_STR(out.data, "abc"); /* "</" could start the stop string */
    ASSERT_EQ_INT(vrt_stop_held(&s), 2);
    ASSERT_OK(vrt_stop_feed(&s, "en", 2, &out, &m, &err), &err);
    ASSERT_EQ_INT(m, -1);
    ASSERT_EQ_STR(out.data, "abc");
    ASSERT_EQ_INT(vrt_stop_held(&s), 4);
    ASSERT_OK(vrt_stop_feed(&s, "d>tail", 6, &out, &m, &err), &err);
    ASSERT_EQ_INT(m, 0);
    ASSERT_EQ_STR(out.data, "abc");
    /* After a match nothing more comes out. */
    ASSERT_OK(vrt_stop_feed(&s, "more", 4, &out, &m, &err), &err);
    ASSERT_EQ_INT(m, 0);
    ASSERT_OK(vrt_stop_flush(&s, &out, &err), &err);
    ASSERT_EQ_STR(out.data, "abc");
    vrt_stop_out_free(&out);
    vrt_stop_free(&s);
}

TEST(stop_held_back_released_when_it_diverges_and_by_flush)
{
    const char *stops[] = {"STOP"};
    vrt_stop_checker s;
    vrt_err err = {0};
    ASSERT_OK(vrt_stop_init(&s, stops, 1, &err), &err);
    vrt_stop_out out = {0};
    int m;
    ASSERT_OK(vrt_stop_feed(&s, "xST", 3, &out, &m, &err), &err);
    ASSERT_EQ_STR(out.data, "x");
    ASSERT_OK(vrt_stop_feed(&s, "OP", 2, &out, &m, &err), &err);
    ASSERT_EQ_INT(m, 0);
    ASSERT_EQ_STR(out.data, "x");
    vrt_stop_free(&s);
    out.len = 0;

    ASSERT_OK(vrt_stop_init(&s, stops, 1, &err), &err);
    ASSERT_OK(vrt_stop_feed(&s, "xST", 3, &out, &m, &err), &err);
    ASSERT_OK(vrt_stop_feed(&s, "Ay", 2, &out, &m, &err), &err); /* diverges */
    ASSERT_EQ_INT(m, -1);
    ASSERT_EQ_STR(out.data, "xSTAy");
    ASSERT_OK(vrt_stop_feed(&s, "ST", 2, &out, &m, &err), &err);
    ASSERT_EQ_STR(out.data, "xSTAy");
    ASSERT_EQ_INT(vrt_stop_held(&s), 2);
    ASSERT_OK(vrt_stop_flush(&s, &out, &err), &err);
    ASSERT_EQ_STR(out.data, "xSTAyST");
    ASSERT_EQ_INT(vrt_stop_held(&s), 0);
    vrt_stop_out_free(&out);
    vrt_stop_free(&s);
}

TEST(stop_overlapping_candidates)
{
    /* "abcabd": the first "ab" is a false start; KMP must not skip the
     * second "ab" that begins the real match. */
    const char *stops[] = {"abd"};
    const char *p1[] = {"abcabd"};
    const char *p2[] = {"a", "b", "c", "a", "b", "d", "zz"};
    const char *p3[] = {"aab", "d"};
    char got[64];
    int m;
    ASSERT_EQ_INT(run_pieces(stops, 1, p1, 1, got, sizeof got, &m), 0);
    ASSERT_EQ_INT(m, 0);
    ASSERT_EQ_STR(got, "abc");
    ASSERT_EQ_INT(run_pieces(stops, 1, p2, 7, got, sizeof got, &m), 0);
    ASSERT_EQ_INT(m, 0);
    ASSERT_EQ_STR(got, "abc");
    ASSERT_EQ_INT(run_pieces(stops, 1, p3, 2, got, sizeof got, &m), 0);
    ASSERT_EQ_INT(m, 0);
    ASSERT_EQ_STR(got, "a");
    /* Self-overlapping stop string. */
    const char *stops2[] = {"aab"};
    const char *p4[] = {"aa", "a", "ab!"};
    ASSERT_EQ_INT(run_pieces(stops2, 1, p4, 3, got, sizeof got, &m), 0);
    ASSERT_EQ_INT(m, 0);
    ASSERT_EQ_STR(got, "aa");
}

TEST(stop_multiple_earliest_wins)
{
    const char *stops[] = {"STOP", "END", "lo w"};
    const char *p1[] = {"xx END yy STOP"};
    char got[64];
    int m;
    ASSERT_EQ_INT(run_pieces(stops, 3, p1, 1, got, sizeof got, &m), 0);
    ASSERT_EQ_INT(m, 1);
    ASSERT_EQ_STR(got, "xx ");
    const char *p2[] = {"hel", "lo wor", "ld END"};
    ASSERT_EQ_INT(run_pieces(stops, 3, p2, 3, got, sizeof got, &m), 0);
    ASSERT_EQ_INT(m, 2);
    ASSERT_EQ_STR(got, "hel");
    /* Two stop strings complete at the same byte: the longer one starts
     * earlier and wins. */
    const char *stops2[] = {"bc", "abc"};
    const char *p3[] = {"xab", "cd"};
    ASSERT_EQ_INT(run_pieces(stops2, 2, p3, 2, got, sizeof got, &m), 0);
    ASSERT_EQ_INT(m, 1);
    ASSERT_EQ_STR(got, "x");
}

TEST(stop_utf8_multibyte)
{
    const char *stops[] = {"\xE2\x80\x94"
                           "fin",
                           "\xC3\xA9t\xC3\xA9"}; /* "—fin", "été" */
    char got[64];
    int m;
    /* Split inside the multibyte character of the stop string. */
    const char *p1[] = {"caf\xC3\xA9 \xE2\x80", "\x94", "fin!"};
    ASSERT_EQ_INT(run_pieces(stops, 2, p1, 3, got, sizeof got, &m), 0);
    ASSERT_EQ_INT(m, 0);
    ASSERT_EQ_STR(got, "caf\xC3\xA9 ");
    const char *p2[] = {"un \xC3\xA9", "t\xC3\xA9 chaud"};
    ASSERT_EQ_INT(run_pieces(stops, 2, p2, 2, got, sizeof got, &m), 0);
    ASSERT_EQ_INT(m, 1);
    ASSERT_EQ_STR(got, "un ");
    /* Shares a lead byte with the stop string but is another character. */
    const char *p3[] = {"\xC3\xA8t\xC3\xA9"}; /* "èté" */
    ASSERT_EQ_INT(run_pieces(stops, 2, p3, 1, got, sizeof got, &m), 0);
    ASSERT_EQ_INT(m, -1);
    ASSERT_EQ_STR(got, "\xC3\xA8t\xC3\xA9");
}

TEST(stop_no_false_positives)
{
    const char *stops[] = {"\n\nUser:", "<|im_end|>"};
    const char *pieces[] = {"User: hi\n", "\nUser", " is <|im_", "start|> ok\n\nUse"};
    char got[128];
    int m;
    ASSERT_EQ_INT(run_pieces(stops, 2, pieces, 4, got, sizeof got, &m), 0);
    ASSERT_EQ_INT(m, -1);
    ASSERT_EQ_STR(got, "User: hi\n\nUser is <|im_start|> ok\n\nUse");
}

TEST(stop_no_stops_passes_through)
{
    vrt_stop_checker s;
    vrt_err err = {0};
    ASSERT_OK(vrt_stop_init(&s, NULL, 0, &err), &err);
    vrt_stop_out out = {0};
    int m;
    ASSERT_OK(vrt_stop_feed(&s, "abc", 3, &out, &m, &err), &err);
    ASSERT_EQ_INT(m, -1);
    ASSERT_EQ_STR(out.data, "abc");
    vrt_stop_out_free(&out);
    vrt_stop_free(&s);
}

TEST(stop_init_errors)
{
    vrt_stop_checker s;
    vrt_err err = {0};
    const char *stops[] = {"ok", ""};
    ASSERT_EQ_INT(vrt_stop_init(&s, stops, 2, &err), -1);
    ASSERT_CONTAINS(err.msg, "stop string 1 is empty");
    vrt_stop_free(&s);
    const char *stops2[] = {"ok", NULL};
    ASSERT(vrt_stop_init(&s, stops2, 2, &err) < 0);
    ASSERT_CONTAINS(err.msg, "stop string 1");
    vrt_stop_free(&s);
}

/* Reference: the first stop (earliest end, then longest) in text[0..n). */
static int ref_first_match(const char *text, size_t n, const char *const *stops, int ns,
                           size_t *start)
{
    for (size_t end = 1; end <= n; end++) {
        int best = -1;
        for (int j = 0; j < ns; j++) {
            size_t l = strlen(stops[j]);
            if (l <= end && memcmp(text + end - l, stops[j], l) == 0 &&
                (best < 0 || l > strlen(stops[best])))
                best = j;
        }
        if (best >= 0) {
            *start = end - strlen(stops[best]);
            return best;
        }
    }
    return -1;
}

/* Reference hold: longest suffix of text[0..n) that is a proper prefix of
 * some stop string. */
static size_t ref_hold(const char *text, size_t n, const char *const *stops, int ns)
{
    size_t best = 0;
    for (int j = 0; j < ns; j++) {
        size_t l = strlen(stops[j]);
        for (size_t k = l - 1; k > best; k--) {
            if (k <= n && memcmp(text + n - k, stops[j], k) == 0) {
                best = k;
                break;
            }
        }
    }
    return best;
}

TEST(stop_random_against_reference)
{
    /* Small alphabet so that partial matches and overlaps are frequent. */
    unsigned seed = 12345;
    for (int iter = 0; iter < 3000; iter++) {
        char stopbuf[4][8];
        const char *stops[4];
        int ns = 1 + (int)(rand_r(&seed) % 4);
        for (int j = 0; j < ns; j++) {
            int l = 1 + (int)(rand_r(&seed) % 5);
            for (int i = 0; i < l; i++)
                stopbuf[j][i] = (char)('a' + rand_r(&seed) % 3);
            stopbuf[j][l] = '\0';
            stops[j] = stopbuf[j];
        }
        char text[64];
        size_t n = (size_t)(rand_r(&seed) % 40);
        for (size_t i = 0; i < n; i++)
            text[i] = (char)('a' + rand_r(&seed) % 3);
        text[n] = '\0';

        vrt_stop_checker s;
        vrt_err err = {0};
        ASSERT_OK(vrt_stop_init(&s, stops, ns, &err), &err);
        vrt_stop_out out = {0};
        size_t start = 0;
        int want = ref_first_match(text, n, stops, ns, &start);
        size_t fed = 0;
        int m = -1;
        while (fed < n) {
            size_t piece = 1 + rand_r(&seed) % 4;
            if (piece > n - fed)
                piece = n - fed;
            ASSERT_OK(vrt_stop_feed(&s, text + fed, piece, &out, &m, &err), &err);
            fed += piece;
            /* Released text is always a prefix of the final answer. */
            size_t final_len = want >= 0 ? start : n;
            ASSERT(out.len <= final_len);
            ASSERT(out.len == 0 || memcmp(out.data, text, out.len) == 0);
            if (m < 0) {
                size_t h = ref_hold(text, fed, stops, ns);
                if (vrt_stop_held(&s) != h || out.len + h != fed)
                    TFAIL("iter %d: after %zu bytes of \"%s\" held %zu, want %zu", iter, fed, text,
                          vrt_stop_held(&s), h);
            }
        }
        ASSERT_OK(vrt_stop_flush(&s, &out, &err), &err);
        if (m != want)
            TFAIL("iter %d: text \"%s\": matched %d, want %d", iter, text, m, want);
        size_t want_len = want >= 0 ? start : n;
        ASSERT_EQ_INT(out.len, want_len);
        ASSERT(want_len == 0 || memcmp(out.data, text, want_len) == 0);
        vrt_stop_out_free(&out);
        vrt_stop_free(&s);
    }
}

TEST(stop_token_ids)
{
    int32_t ids[] = {2, 32000, 7};
    ASSERT_EQ_INT(vrt_is_stop_token(ids, 3, 32000), 1);
    ASSERT_EQ_INT(vrt_is_stop_token(ids, 3, 7), 1);
    ASSERT_EQ_INT(vrt_is_stop_token(ids, 3, 3), 0);
    ASSERT_EQ_INT(vrt_is_stop_token(ids, 0, 2), 0);
}
