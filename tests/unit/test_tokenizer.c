/* test_tokenizer.c — tokenizer.json encode/decode against the tokenizers
 * package, the incremental detokenizer, and error paths.
 *
 * The fixtures in tests/fixtures/tokenizers/ (made by make_tokenizers.py)
 * hold a Llama-3 style byte-level tokenizer and a Llama-2 style
 * SentencePiece/byte-fallback one, each with expected.json: for every test
 * string the ids with and without special tokens and the three decodes, as
 * produced by the Python tokenizers package. Every case must match exactly,
 * and streaming every id list through vrt_detok must give the same text.
 * Strings are read from the *_hex copies because cJSON strings end at NUL.
 */
#include "test.h"

#include "core/err.h"
#include "core/util.h"
#include "tokenizer/tokenizer.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIX "tests/fixtures/tokenizers/"

/* ---- helpers ---------------------------------------------------------- */

/* Hex string -> malloc'd bytes (NUL-terminated), *len bytes. */
static char *unhex(const char *h, size_t *len)
{
    size_t n = strlen(h) / 2;
    char *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        out[i] = (char)v;
    }
    out[n] = '\0';
    *len = n;
    return out;
}

static int utf8_ok(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        size_t k = c < 0x80             ? 1
                   : (c & 0xE0) == 0xC0 ? 2
                   : (c & 0xF0) == 0xE0 ? 3
                   : (c & 0xF8) == 0xF0 ? 4
                                        : 0;
        if (!k || i + k > n)
            return 0;
        for (size_t j = 1; j < k; j++)
            if ((u[i + j] & 0xC0) != 0x80)
                return 0;
        i += k;
    }
    return 1;
}

static int ids_equal(const vrt_tokens *a, const cJSON *exp)
{
    if ((size_t)cJSON_GetArraySize(exp) != a->n)
        return 0;
    size_t i = 0;
    for (const cJSON *e = exp->child; e; e = e->next, i++)
        if (e->valueint != a->ids[i])
            return 0;
    return 1;
}

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
    fprintf(stderr, "    %s:", what);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %d", (int)ids[i]);
    fputc('\n', stderr);
}

/* Streams ids through vrt_detok; returns the concatenation (malloc'd) or
 * NULL when a piece is not valid UTF-8 or a call fails. */
static char *stream(const vrt_tokenizer *t, const int32_t *ids, size_t n, int skip, size_t *len)
{
    vrt_detok d;
    vrt_detok_init(&d, t, skip);
    vrt_err err = {0};
    size_t cap = 0, used = 0;
    char *acc = NULL;
    int ok = 1;
    for (size_t i = 0; ok && i <= n; i++) {
        char *p;
        size_t pl;
        int rc =
            i < n ? vrt_detok_push(&d, ids[i], &p, &pl, &err) : vrt_detok_flush(&d, &p, &pl, &err);
        if (rc || !p || p[pl] != '\0' || !utf8_ok(p, pl)) {
            ok = 0;
            if (!rc)
                free(p);
            break;
        }
        if (vrt_grow(&acc, &cap, used + pl + 1, 1)) {
            ok = 0;
            free(p);
            break;
        }
        memcpy(acc + used, p, pl);
        used += pl;
        free(p);
    }
    vrt_detok_free(&d);
    if (!ok) {
        free(acc);
        return NULL;
    }
    acc[used] = '\0';
    *len = used;
    return acc;
}

/* Compares one decode (and its streamed version) with the expected hex. */
static int check_decode(const vrt_tokenizer *t, const vrt_tokens *ids, int skip, const char *hex,
                        const char *what, int idx)
{
    size_t elen, dlen = 0, slen = 0;
    char *exp = unhex(hex, &elen), *dec = NULL;
    vrt_err err = {0};
    int bad = 0;
    if (vrt_tokenizer_decode(t, ids->ids, ids->n, skip, &dec, &dlen, &err) != 0) {
        fprintf(stderr, "    case %d %s: decode failed: %s\n", idx, what, err.msg);
        bad = 1;
    } else if (dlen != elen || memcmp(dec, exp, elen) != 0) {
        fprintf(stderr, "    case %d %s: decode \"%s\" != expected \"%s\"\n", idx, what, dec, exp);
        bad = 1;
    }
    char *st = stream(t, ids->ids, ids->n, skip, &slen);
    if (!st || slen != elen || memcmp(st, exp, elen) != 0) {
        fprintf(stderr, "    case %d %s: detok stream \"%s\" != expected \"%s\"\n", idx, what,
                st ? st : "(failed or invalid UTF-8 piece)", exp);
        bad = 1;
    }
    free(st);
    free(dec);
    free(exp);
    return bad;
}

/* vrt_tokenizer_encode_offsets on in[0..len): the same ids as encode, and
 * spans that lie in the text, cover whole characters and start in order.
 * Returns 0, or 1 after printing what is wrong. */
static int check_offsets(const vrt_tokenizer *t, const char *in, size_t len, const char *name,
                         int idx)
{
    vrt_err err = {0};
    vrt_tokens a = {0}, b = {0};
    size_t *off = NULL;
    int bad = vrt_tokenizer_encode(t, in, len, 1, &a, &err) != 0 ||
              vrt_tokenizer_encode_offsets(t, in, len, 1, &b, &off, &err) != 0;
    if (!bad && (a.n != b.n || (a.n && memcmp(a.ids, b.ids, a.n * sizeof(int32_t)) != 0))) {
        fprintf(stderr, "    %s case %d: encode_offsets ids differ from encode\n", name, idx);
        bad = 1;
    }
    /* The text as encode sees it (invalid UTF-8 repaired) is what the
     * offsets index; only check the char boundaries for valid input. */
    int valid = utf8_ok(in, len);
    for (size_t i = 0; !bad && i < b.n; i++) {
        size_t s = off[2 * i], e = off[2 * i + 1];
        int inside = s <= e && (!valid || e <= len);
        int whole = !valid || ((s == len || ((unsigned char)in[s] & 0xC0) != 0x80) &&
                               (e == len || ((unsigned char)in[e] & 0xC0) != 0x80));
        int ordered = i == 0 || s >= off[2 * (i - 1)] || e == 0;
        if (!inside || !whole || !ordered) {
            fprintf(stderr, "    %s case %d \"%s\": token %zu (id %d) has span [%zu, %zu)%s%s%s\n",
                    name, idx, in, i, (int)b.ids[i], s, e, inside ? "" : " outside the text",
                    whole ? "" : " inside a character", ordered ? "" : " before the previous");
            bad = 1;
        }
    }
    free(off);
    vrt_tokens_free(&a);
    vrt_tokens_free(&b);
    return bad;
}

/* Runs every case of <dir>/expected.json; returns the number of failures. */
static int run_expected(const char *dir, int *n_cases)
{
    vrt_tokenizer *t = NULL;
    vrt_err err = {0};
    if (vrt_tokenizer_load(&t, dir, &err) != 0) {
        fprintf(stderr, "    load %s: %s\n", dir, err.msg);
        return 1;
    }
    char path[512];
    snprintf(path, sizeof(path), "%s/expected.json", dir);
    char *text = vrt_test_read_file(path, NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *cases = cJSON_GetObjectItem(root, "cases");
    int fails = 0, idx = 0;
    *n_cases = cJSON_GetArraySize(cases);
    if (!cJSON_IsArray(cases) || *n_cases < 40) {
        fprintf(stderr, "    %s: no cases\n", path);
        fails++;
    }
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next, idx++) {
        size_t len;
        char *in = unhex(cJSON_GetObjectItem(c, "text_hex")->valuestring, &len);
        vrt_tokens a = {0}, b = {0};
        int bad = 0;
        if (vrt_tokenizer_encode(t, in, len, 0, &a, &err) ||
            vrt_tokenizer_encode(t, in, len, 1, &b, &err)) {
            fprintf(stderr, "    case %d: encode failed: %s\n", idx, err.msg);
            bad = 1;
        } else {
            if (!ids_equal(&a, cJSON_GetObjectItem(c, "ids"))) {
                fprintf(stderr, "    case %d \"%s\": ids differ\n", idx, in);
                print_ids("got", a.ids, a.n);
                fprintf(stderr, "    want: %s\n",
                        cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "ids")));
                bad = 1;
            }
            if (!ids_equal(&b, cJSON_GetObjectItem(c, "ids_special"))) {
                fprintf(stderr, "    case %d \"%s\": ids with special tokens differ\n", idx, in);
                print_ids("got", b.ids, b.n);
                bad = 1;
            }
            /* Decode the expected ids (so a decode bug is not masked). */
            vrt_tokens ea = {0}, eb = {0};
            for (const cJSON *e = cJSON_GetObjectItem(c, "ids")->child; e; e = e->next) {
                if (vrt_grow(&ea.ids, &ea.cap, ea.n + 1, sizeof *ea.ids)) {
                    bad = 1;
                    break;
                }
                ea.ids[ea.n++] = e->valueint;
            }
            for (const cJSON *e = cJSON_GetObjectItem(c, "ids_special")->child; e; e = e->next) {
                if (vrt_grow(&eb.ids, &eb.cap, eb.n + 1, sizeof *eb.ids)) {
                    bad = 1;
                    break;
                }
                eb.ids[eb.n++] = e->valueint;
            }
            bad |= check_decode(t, &ea, 0, cJSON_GetObjectItem(c, "decoded_hex")->valuestring,
                                "decoded", idx);
            bad |=
                check_decode(t, &eb, 0, cJSON_GetObjectItem(c, "decoded_special_hex")->valuestring,
                             "decoded_special", idx);
            bad |= check_decode(t, &eb, 1,
                                cJSON_GetObjectItem(c, "decoded_special_skip_hex")->valuestring,
                                "decoded_special_skip", idx);
            vrt_tokens_free(&ea);
            vrt_tokens_free(&eb);
        }
        bad |= check_offsets(t, in, len, dir, idx);
        fails += bad;
        vrt_tokens_free(&a);
        vrt_tokens_free(&b);
        free(in);
    }
    cJSON_Delete(root);
    vrt_tokenizer_free(t);
    return fails;
}

/* A fresh temp directory with tokenizer.json (and tokenizer_config.json
 * when cfg is not NULL); dir must hold 64 bytes. */
static void make_dir(char *dir, const char *tj, const char *cfg)
{
    strcpy(dir, "/tmp/vrt_tok_XXXXXX");
    if (!mkdtemp(dir))
        return;
    char p[128];
    if (tj) {
        snprintf(p, sizeof(p), "%s/tokenizer.json", dir);
        FILE *f = fopen(p, "w");
        fputs(tj, f);
        fclose(f);
    }
    if (cfg) {
        snprintf(p, sizeof(p), "%s/tokenizer_config.json", dir);
        FILE *f = fopen(p, "w");
        fputs(cfg, f);
        fclose(f);
    }
}

static void remove_dir(const char *dir)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/tokenizer.json", dir);
    remove(p);
    snprintf(p, sizeof(p), "%s/tokenizer_config.json", dir);
    remove(p);
    snprintf(p, sizeof(p), "%s/chat_template.jinja", dir);
    remove(p);
    rmdir(dir);
}

/* A tiny hand-written tokenizer: SentencePiece style with Metaspace. */
static const char *TINY_JSON =
    "{\"version\":\"1.0\",\"added_tokens\":["
    "{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false},"
    "{\"id\":1,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":2,\"content\":\"</s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":9,\"content\":\"ab\",\"special\":false,\"normalized\":false,\"single_word\":true}],"
    "\"normalizer\":null,"
    "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\","
    "\"prepend_scheme\":\"first\",\"split\":false},"
    "\"post_processor\":null,"
    "\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"\\u2581\",\"prepend_scheme\":\"first\"},"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":false,"
    "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2,\"\\u2581\":3,\"a\":4,\"b\":5,\"\\u2581a\":6,"
    "\"\\u2581ab\":7,\"c\":8},"
    "\"merges\":[\"\\u2581 a\",\"\\u2581a b\"]}}";

/* ---- fixtures: every case of expected.json ----------------------------- */

TEST(tokenizer_bytelevel_matches_tokenizers)
{
    int n = 0, fails = run_expected(FIX "bytelevel", &n);
    if (fails)
        TFAIL("%d of %d byte-level cases differ from the tokenizers package", fails, n);
}

TEST(tokenizer_sentencepiece_matches_tokenizers)
{
    int n = 0, fails = run_expected(FIX "sentencepiece", &n);
    if (fails)
        TFAIL("%d of %d sentencepiece cases differ from the tokenizers package", fails, n);
}

/* ---- variants.json: components the two trained fixtures do not use ----- */

/* Replaces (or adds) every key of patch in obj. */
static void apply_patch(cJSON *obj, const cJSON *patch)
{
    for (const cJSON *e = patch ? patch->child : NULL; e; e = e->next) {
        cJSON *dup = cJSON_Duplicate(e, 1);
        if (cJSON_GetObjectItemCaseSensitive(obj, e->string))
            cJSON_ReplaceItemInObjectCaseSensitive(obj, e->string, dup);
        else
            cJSON_AddItemToObject(obj, e->string, dup);
    }
}

/* Builds one variant in a temp dir, checks its cases; returns failures. */
static int run_variant(const cJSON *v)
{
    const char *name = cJSON_GetObjectItem(v, "name")->valuestring;
    char path[512];
    snprintf(path, sizeof(path), FIX "%s/tokenizer.json",
             cJSON_GetObjectItem(v, "base")->valuestring);
    char *text = vrt_test_read_file(path, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (!j) {
        fprintf(stderr, "    %s: cannot read %s\n", name, path);
        return 1;
    }
    apply_patch(j, cJSON_GetObjectItem(v, "set"));
    apply_patch(cJSON_GetObjectItem(j, "model"), cJSON_GetObjectItem(v, "model_set"));
    cJSON *at = cJSON_GetObjectItem(j, "added_tokens");
    for (const cJSON *a = cJSON_GetObjectItem(v, "added")->child; a; a = a->next)
        cJSON_AddItemToArray(at, cJSON_Duplicate(a, 1));
    char *tj = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    char dir[64];
    make_dir(dir, tj, NULL);
    free(tj);
    vrt_tokenizer *t = NULL;
    vrt_err err = {0};
    int rc = vrt_tokenizer_load(&t, dir, &err);
    remove_dir(dir);
    if (rc) {
        fprintf(stderr, "    %s: load: %s\n", name, err.msg);
        return 1;
    }
    int fails = 0, idx = 0;
    for (const cJSON *c = cJSON_GetObjectItem(v, "cases")->child; c; c = c->next, idx++) {
        size_t len;
        char *in = unhex(cJSON_GetObjectItem(c, "text_hex")->valuestring, &len);
        vrt_tokens a = {0}, b = {0};
        int bad = vrt_tokenizer_encode(t, in, len, 0, &a, &err) ||
                  vrt_tokenizer_encode(t, in, len, 1, &b, &err);
        if (!bad && (!ids_equal(&a, cJSON_GetObjectItem(c, "ids")) ||
                     !ids_equal(&b, cJSON_GetObjectItem(c, "ids_special")))) {
            fprintf(stderr, "    %s case %d \"%s\": ids differ\n", name, idx, in);
            print_ids("got", a.ids, a.n);
            bad = 1;
        }
        if (!bad) {
            bad |= check_decode(t, &a, 0, cJSON_GetObjectItem(c, "decoded_hex")->valuestring, name,
                                idx);
            bad |= check_decode(t, &b, 1,
                                cJSON_GetObjectItem(c, "decoded_special_skip_hex")->valuestring,
                                name, idx);
        }
        bad |= check_offsets(t, in, len, name, idx);
        fails += bad;
        vrt_tokens_free(&a);
        vrt_tokens_free(&b);
        free(in);
    }
    /* Random ids stream to exactly the decode with this decoder too. */
    unsigned seed = 99;
    int32_t nv = (int32_t)vrt_tokenizer_vocab_size(t);
    for (int round = 0; round < 300; round++) {
        int32_t ids[24];
        size_t n = (size_t)(rand_r(&seed) % 24);
        for (size_t i = 0; i < n; i++)
            ids[i] = rand_r(&seed) % 2 ? (int32_t)(rand_r(&seed) % 320)
                                       : (int32_t)(rand_r(&seed) % (unsigned)nv);
        int skip = round % 2;
        char *dec = NULL, *st;
        size_t dl = 0, sl = 0;
        if (vrt_tokenizer_decode(t, ids, n, skip, &dec, &dl, &err) != 0)
            fails++;
        st = stream(t, ids, n, skip, &sl);
        if (!dec || !st || sl != dl || memcmp(st, dec, dl) != 0) {
            fprintf(stderr, "    %s: random ids stream \"%s\" != decode \"%s\"\n", name,
                    st ? st : "(null)", dec ? dec : "(null)");
            fails++;
        }
        free(st);
        free(dec);
    }
    vrt_tokenizer_free(t);
    return fails;
}

TEST(tokenizer_variants_match_tokenizers)
{
    char *text = vrt_test_read_file(FIX "variants.json", NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *vs = cJSON_GetObjectItem(root, "variants");
    ASSERT(cJSON_GetArraySize(vs) >= 8);
    int fails = 0, n = 0;
    for (const cJSON *v = vs->child; v; v = v->next, n++)
        fails += run_variant(v);
    cJSON_Delete(root);
    if (fails)
        TFAIL("%d cases of %d variants differ from the tokenizers package", fails, n);
}

/* ---- accessors ------------------------------------------------------- */

TEST(tokenizer_accessors)
{
    vrt_tokenizer *t = NULL;
    vrt_err err = {0};
    ASSERT_OK(vrt_tokenizer_load(&t, FIX "bytelevel", &err), &err);
    ASSERT_EQ_INT(vrt_tokenizer_vocab_size(t), 3006);
    ASSERT_EQ_INT(vrt_tokenizer_find(t, "<|begin_of_text|>"), 3000);
    ASSERT_EQ_INT(vrt_tokenizer_bos_id(t), 3000);
    ASSERT_EQ_INT(vrt_tokenizer_eos_id(t), 3002);
    ASSERT_EQ_STR(vrt_tokenizer_piece(t, 3002), "<|eot_id|>");
    ASSERT_EQ_STR(vrt_tokenizer_piece(t, 220), "\xC4\xA0"); /* "Ġ" */
    ASSERT_EQ_INT(vrt_tokenizer_find(t, "\xC4\xA0"), 220);
    ASSERT_EQ_INT(vrt_tokenizer_find(t, "no such piece"), -1);
    ASSERT(vrt_tokenizer_piece(t, 3006) == NULL);
    ASSERT(vrt_tokenizer_piece(t, -1) == NULL);
    ASSERT(vrt_tokenizer_is_special(t, 3000));
    ASSERT(!vrt_tokenizer_is_special(t, 3004)); /* <think>: added, not special */
    ASSERT(!vrt_tokenizer_is_special(t, 100));
    ASSERT(!vrt_tokenizer_is_special(t, -5));
    ASSERT(vrt_tokenizer_chat_template(t) != NULL);
    ASSERT_CONTAINS(vrt_tokenizer_chat_template(t), "<|start_header_id|>");
    vrt_tokenizer_free(t);

    ASSERT_OK(vrt_tokenizer_load(&t, FIX "sentencepiece", &err), &err);
    ASSERT_EQ_INT(vrt_tokenizer_bos_id(t), 1);
    ASSERT_EQ_INT(vrt_tokenizer_eos_id(t), 2);
    ASSERT_EQ_STR(vrt_tokenizer_piece(t, 3 + 0x0A), "<0x0A>");
    ASSERT(vrt_tokenizer_is_special(t, 0));
    ASSERT_CONTAINS(vrt_tokenizer_chat_template(t), "[INST]");
    vrt_tokenizer_free(t);
}

/* encode appends to out; an empty text gives only the template ids. */
TEST(tokenizer_encode_appends)
{
    vrt_tokenizer *t = NULL;
    vrt_err err = {0};
    ASSERT_OK(vrt_tokenizer_load(&t, FIX "sentencepiece", &err), &err);
    vrt_tokens ids = {0};
    ASSERT_OK(vrt_tokenizer_encode(t, "", 0, 1, &ids, &err), &err);
    ASSERT_EQ_INT(ids.n, 1);
    ASSERT_EQ_INT(ids.ids[0], 1);
    ASSERT_OK(vrt_tokenizer_encode(t, "a", 1, 0, &ids, &err), &err);
    ASSERT(ids.n >= 2);
    ASSERT_EQ_INT(ids.ids[0], 1);
    vrt_tokens_free(&ids);
    ASSERT(ids.ids == NULL && ids.n == 0);
    vrt_tokenizer_free(t);
}

/* ---- invalid UTF-8 ---------------------------------------------------- */

TEST(tokenizer_invalid_utf8_is_replaced)
{
    /* Maximal subparts: \xFF, \xFE, and the truncated \xE4\xB8 are one
     * U+FFFD each (Python bytes.decode("utf-8", "replace")). */
    static const char bad[] = "a\xFF\xFE"
                              "b\xE4\xB8";
    static const char good[] = "a\xEF\xBF\xBD\xEF\xBF\xBD"
                               "b\xEF\xBF\xBD";
    const char *dirs[2] = {FIX "bytelevel", FIX "sentencepiece"};
    for (int k = 0; k < 2; k++) {
        vrt_tokenizer *t = NULL;
        vrt_err err = {0};
        ASSERT_OK(vrt_tokenizer_load(&t, dirs[k], &err), &err);
        vrt_tokens x = {0}, y = {0};
        ASSERT_OK(vrt_tokenizer_encode(t, bad, sizeof(bad) - 1, 0, &x, &err), &err);
        ASSERT_OK(vrt_tokenizer_encode(t, good, sizeof(good) - 1, 0, &y, &err), &err);
        ASSERT_EQ_INT(x.n, y.n);
        ASSERT(memcmp(x.ids, y.ids, x.n * sizeof(int32_t)) == 0);
        char *s = NULL;
        size_t n = 0;
        ASSERT_OK(vrt_tokenizer_decode(t, x.ids, x.n, 0, &s, &n, &err), &err);
        ASSERT_EQ_STR(s, good);
        free(s);
        /* Lone continuation bytes, overlong forms, surrogates, NULs. */
        static const char worse[] = "\x80\xC0\xAF\xED\xA0\x80\xF4\x90\x80\x80\x00z\xF0";
        vrt_tokens z = {0};
        ASSERT_OK(vrt_tokenizer_encode(t, worse, sizeof(worse) - 1, 1, &z, &err), &err);
        ASSERT_OK(vrt_tokenizer_decode(t, z.ids, z.n, 1, &s, &n, &err), &err);
        ASSERT(utf8_ok(s, n));
        free(s);
        vrt_tokens_free(&x);
        vrt_tokens_free(&y);
        vrt_tokens_free(&z);
        vrt_tokenizer_free(t);
    }
}

/* ---- out-of-range ids ------------------------------------------------- */

TEST(tokenizer_out_of_range_ids)
{
    vrt_tokenizer *t = NULL;
    vrt_err err = {0};
    ASSERT_OK(vrt_tokenizer_load(&t, FIX "sentencepiece", &err), &err);
    int32_t v = (int32_t)vrt_tokenizer_vocab_size(t);
    int32_t bad1[] = {15, v}, bad2[] = {-1};
    char *s = (char *)1;
    size_t n = 7;
    ASSERT_EQ_INT(vrt_tokenizer_decode(t, bad1, 2, 0, &s, &n, &err), VRT_ERANGE);
    ASSERT(s == NULL);
    ASSERT_CONTAINS(err.msg, "position 1");
    ASSERT_EQ_INT(vrt_tokenizer_decode(t, bad2, 1, 1, &s, &n, &err), VRT_ERANGE);

    /* detok: an out-of-range push fails and leaves the stream intact. */
    vrt_tokens ids = {0};
    const char *txt = "Hello world, 中文测试";
    ASSERT_OK(vrt_tokenizer_encode(t, txt, strlen(txt), 0, &ids, &err), &err);
    vrt_detok d;
    vrt_detok_init(&d, t, 0);
    char acc[256] = "";
    for (size_t i = 0; i <= ids.n; i++) {
        char *p;
        size_t pl;
        if (i == 2) {
            ASSERT_EQ_INT(vrt_detok_push(&d, v + 5, &p, &pl, &err), VRT_ERANGE);
            ASSERT_EQ_INT(vrt_detok_push(&d, -3, &p, &pl, &err), VRT_ERANGE);
        }
        ASSERT_OK(i < ids.n ? vrt_detok_push(&d, ids.ids[i], &p, &pl, &err)
                            : vrt_detok_flush(&d, &p, &pl, &err),
                  &err);
        strcat(acc, p);
        free(p);
    }
    ASSERT_EQ_STR(acc, txt);
    vrt_detok_free(&d);
    vrt_tokens_free(&ids);
    vrt_tokenizer_free(t);
}

/* ---- the detokenizer never splits a character ------------------------ */

TEST(tokenizer_detok_holds_partial_characters)
{
    const char *dirs[2] = {FIX "bytelevel", FIX "sentencepiece"};
    const char *txt = "日本語 😀👍🏽 ǅ\nx";
    for (int k = 0; k < 2; k++) {
        vrt_tokenizer *t = NULL;
        vrt_err err = {0};
        ASSERT_OK(vrt_tokenizer_load(&t, dirs[k], &err), &err);
        vrt_tokens ids = {0};
        ASSERT_OK(vrt_tokenizer_encode(t, txt, strlen(txt), 1, &ids, &err), &err);
        ASSERT(ids.n > 10);
        size_t n = 0;
        char *st = stream(t, ids.ids, ids.n, 1, &n);
        ASSERT(st != NULL); /* each piece was valid UTF-8 */
        ASSERT_EQ_STR(st, txt);
        free(st);
        /* The detokenizer is reusable after flush. */
        vrt_detok d;
        vrt_detok_init(&d, t, 1);
        for (int round = 0; round < 2; round++) {
            char acc[256] = "";
            for (size_t i = 0; i <= ids.n; i++) {
                char *p;
                size_t pl;
                ASSERT_OK(i < ids.n ? vrt_detok_push(&d, ids.ids[i], &p, &pl, &err)
                                    : vrt_detok_flush(&d, &p, &pl, &err),
                          &err);
                strcat(acc, p);
                free(p);
            }
            ASSERT_EQ_STR(acc, txt);
        }
        vrt_detok_free(&d);
        vrt_tokens_free(&ids);
        vrt_tokenizer_free(t);
    }
}

/* The window stays small on a long stream (work per push is bounded). */
TEST(tokenizer_detok_window_is_bounded)
{
    const char *dirs[2] = {FIX "bytelevel", FIX "sentencepiece"};
    const char *unit = "In the beginning 中文 😀 caf\xC3\xA9.\n";
    size_t ul = strlen(unit), reps = 300;
    char *txt = malloc(ul * reps + 1);
    for (size_t i = 0; i < reps; i++)
        memcpy(txt + i * ul, unit, ul);
    txt[ul * reps] = '\0';
    for (int k = 0; k < 2; k++) {
        vrt_tokenizer *t = NULL;
        vrt_err err = {0};
        ASSERT_OK(vrt_tokenizer_load(&t, dirs[k], &err), &err);
        vrt_tokens ids = {0};
        ASSERT_OK(vrt_tokenizer_encode(t, txt, ul * reps, 0, &ids, &err), &err);
        vrt_detok d;
        vrt_detok_init(&d, t, 0);
        size_t max_n = 0, used = 0;
        char *acc = malloc(ul * reps + 1);
        for (size_t i = 0; i <= ids.n; i++) {
            char *p;
            size_t pl;
            ASSERT_OK(i < ids.n ? vrt_detok_push(&d, ids.ids[i], &p, &pl, &err)
                                : vrt_detok_flush(&d, &p, &pl, &err),
                      &err);
            ASSERT(used + pl <= ul * reps);
            memcpy(acc + used, p, pl);
            used += pl;
            free(p);
            max_n = d.n > max_n ? d.n : max_n;
        }
        acc[used] = '\0';
        ASSERT_EQ_INT(used, ul * reps);
        ASSERT(memcmp(acc, txt, used) == 0);
        ASSERT(max_n <= 8); /* anchor + the 6 byte tokens of "中文" + one */
        free(acc);
        vrt_detok_free(&d);
        vrt_tokens_free(&ids);
        vrt_tokenizer_free(t);
    }
    free(txt);
}

/* Random id sequences (byte pieces that form invalid UTF-8, specials, "▁"
 * pieces, anything): streamed text always equals decode. */
TEST(tokenizer_detok_random_ids_equal_decode)
{
    const char *dirs[2] = {FIX "bytelevel", FIX "sentencepiece"};
    unsigned seed = 12345;
    for (int k = 0; k < 2; k++) {
        vrt_tokenizer *t = NULL;
        vrt_err err = {0};
        ASSERT_OK(vrt_tokenizer_load(&t, dirs[k], &err), &err);
        int32_t v = (int32_t)vrt_tokenizer_vocab_size(t);
        for (int round = 0; round < 400; round++) {
            int32_t ids[40];
            size_t n = (size_t)(rand_r(&seed) % 40);
            for (size_t i = 0; i < n; i++) {
                int r = rand_r(&seed) % 10;
                /* Low ids: bytes (sentencepiece 3..258, byte-level single
                 * bytes); high ids: specials; else anything. */
                ids[i] = r < 5   ? (int32_t)(rand_r(&seed) % 260)
                         : r < 6 ? v - 1 - (int32_t)(rand_r(&seed) % 6)
                                 : (int32_t)(rand_r(&seed) % (unsigned)v);
            }
            for (int skip = 0; skip < 2; skip++) {
                char *dec = NULL, *st;
                size_t dl = 0, sl = 0;
                ASSERT_OK(vrt_tokenizer_decode(t, ids, n, skip, &dec, &dl, &err), &err);
                st = stream(t, ids, n, skip, &sl);
                int same = st && sl == dl && memcmp(st, dec, dl) == 0;
                if (!same) {
                    print_ids("ids", ids, n);
                    fprintf(stderr, "    decode \"%s\" stream \"%s\"\n", dec, st ? st : "(null)");
                }
                free(st);
                free(dec);
                if (!same)
                    TFAIL("%s: streamed text differs from decode (skip %d)", dirs[k], skip);
            }
        }
        vrt_tokenizer_free(t);
    }
}

/* A loaded tokenizer is immutable: encode from several threads at once. */
typedef struct enc_job {
    const vrt_tokenizer *t;
    const char *txt;
    vrt_tokens out;
    int rc;
} enc_job;

static void *enc_thread(void *arg)
{
    enc_job *j = arg;
    vrt_err err = {0};
    for (int r = 0; r < 20 && j->rc == 0; r++) {
        j->out.n = 0;
        j->rc = vrt_tokenizer_encode(j->t, j->txt, strlen(j->txt), 1, &j->out, &err);
    }
    return NULL;
}

TEST(tokenizer_encode_from_threads)
{
    vrt_tokenizer *t = NULL;
    vrt_err err = {0};
    ASSERT_OK(vrt_tokenizer_load(&t, FIX "bytelevel", &err), &err);
    const char *txt =
        "Hello world  12345 I'm\n\n  ok!! <|eot_id|> <think> caf\xC3\xA9 \xE4\xB8\xAD";
    vrt_tokens ref = {0};
    ASSERT_OK(vrt_tokenizer_encode(t, txt, strlen(txt), 1, &ref, &err), &err);
    enc_job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (enc_job){t, txt, {0}, 0};
        pthread_create(&th[i], NULL, enc_thread, &jobs[i]);
    }
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        bad |= jobs[i].rc != 0 || jobs[i].out.n != ref.n ||
               memcmp(jobs[i].out.ids, ref.ids, ref.n * sizeof(int32_t)) != 0;
        vrt_tokens_free(&jobs[i].out);
    }
    vrt_tokens_free(&ref);
    vrt_tokenizer_free(t);
    ASSERT(!bad);
}

/* ---- a hand-written tokenizer: Metaspace(first), single_word, merges --- */

TEST(tokenizer_tiny_metaspace_single_word)
{
    char dir[64];
    make_dir(dir, TINY_JSON, NULL);
    vrt_tokenizer *t = NULL;
    vrt_err err = {0};
    int rc = vrt_tokenizer_load(&t, dir, &err);
    remove_dir(dir);
    ASSERT_OK(rc, &err);
    ASSERT_EQ_INT(vrt_tokenizer_bos_id(t), -1); /* no config, no template */
    struct {
        const char *in;
        int32_t want[8];
        int n;
    } cases[] = {
        {"ab", {9}, 1},              /* single word: the added token */
        {"ab c", {9, 3, 8}, 3},      /* Metaspace first: only at offset 0 */
        {"abc", {7, 8}, 2},          /* "ab" inside a word is not single */
        {"a b", {6, 3, 5}, 3},       /* merges "▁ a" then no "▁ b" */
        {"x</s>a", {3, 0, 2, 4}, 4}, /* unk; no prepend after a special */
        {"xyz a", {3, 0, 6}, 3},     /* fused unknowns */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        vrt_tokens ids = {0};
        ASSERT_OK(vrt_tokenizer_encode(t, cases[i].in, strlen(cases[i].in), 1, &ids, &err), &err);
        if (ids.n != (size_t)cases[i].n ||
            memcmp(ids.ids, cases[i].want, ids.n * sizeof(int32_t)) != 0) {
            print_ids("got", ids.ids, ids.n);
            print_ids("want", cases[i].want, (size_t)cases[i].n);
            vrt_tokens_free(&ids);
            TFAIL("tiny tokenizer: \"%s\"", cases[i].in);
        }
        vrt_tokens_free(&ids);
    }
    int32_t dec[] = {6, 3, 5, 9};
    char *s;
    size_t n;
    ASSERT_OK(vrt_tokenizer_decode(t, dec, 4, 0, &s, &n, &err), &err);
    ASSERT_EQ_STR(s, "a bab");
    free(s);
    vrt_tokenizer_free(t);
}

TEST(tokenizer_llama_config_adds_eos)
{
    char dir[64];
    make_dir(dir, TINY_JSON,
             "{\"tokenizer_class\": \"LlamaTokenizerFast\", \"bos_token\": \"<s>\","
             " \"eos_token\": {\"content\": \"</s>\"}, \"add_eos_token\": true,"
             " \"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"},"
             " {\"name\": \"default\", \"template\": \"D\"}]}");
    vrt_tokenizer *t = NULL;
    vrt_err err = {0};
    int rc = vrt_tokenizer_load(&t, dir, &err);
    remove_dir(dir);
    ASSERT_OK(rc, &err);
    ASSERT_EQ_STR(vrt_tokenizer_chat_template(t), "D");
    vrt_tokens ids = {0};
    ASSERT_OK(vrt_tokenizer_encode(t, "a", 1, 1, &ids, &err), &err);
    ASSERT_EQ_INT(ids.n, 3);
    ASSERT_EQ_INT(ids.ids[0], 1);
    ASSERT_EQ_INT(ids.ids[1], 6);
    ASSERT_EQ_INT(ids.ids[2], 2);
    vrt_tokens_free(&ids);
    vrt_tokenizer_free(t);
}

/* TINY_JSON with the first occurrence of `from` replaced by `to`. */
static char *tiny_with(const char *from, const char *to);

TEST(tokenizer_roberta_post_processor_and_jinja_file)
{
    char *s =
        tiny_with("\"post_processor\":null", "\"post_processor\":{\"type\":\"RobertaProcessing\","
                                             "\"cls\":[\"<s>\",1],\"sep\":[\"</s>\",2]}");
    char dir[64], p[128];
    make_dir(dir, s, "{\"chat_template\": \"from config\", \"eos_token\": \"</s>\"}");
    free(s);
    snprintf(p, sizeof(p), "%s/chat_template.jinja", dir);
    FILE *f = fopen(p, "w");
    fputs("{{ from_file }}", f);
    fclose(f);
    vrt_tokenizer *t = NULL;
    vrt_err err = {0};
    int rc = vrt_tokenizer_load(&t, dir, &err);
    remove_dir(dir);
    ASSERT_OK(rc, &err);
    ASSERT_EQ_STR(vrt_tokenizer_chat_template(t), "{{ from_file }}");
    ASSERT_EQ_INT(vrt_tokenizer_bos_id(t), 1); /* from the template */
    ASSERT_EQ_INT(vrt_tokenizer_eos_id(t), 2);
    vrt_tokens ids = {0};
    ASSERT_OK(vrt_tokenizer_encode(t, "a", 1, 1, &ids, &err), &err);
    ASSERT_EQ_INT(ids.n, 3);
    ASSERT_EQ_INT(ids.ids[0], 1);
    ASSERT_EQ_INT(ids.ids[1], 6);
    ASSERT_EQ_INT(ids.ids[2], 2);
    vrt_tokens_free(&ids);
    vrt_tokenizer_free(t);
}

/* ---- errors ---------------------------------------------------------- */

static int load_err(const char *tj, const char *cfg, vrt_err *err)
{
    char dir[64];
    make_dir(dir, tj, cfg);
    vrt_tokenizer *t = (vrt_tokenizer *)1;
    int rc = vrt_tokenizer_load(&t, dir, err);
    remove_dir(dir);
    if (rc == 0)
        vrt_tokenizer_free(t);
    else if (t != NULL)
        return 1; /* *out must be NULL on error */
    return rc;
}

/* TINY_JSON with the first occurrence of `from` replaced by `to`. */
static char *tiny_with(const char *from, const char *to)
{
    const char *p = strstr(TINY_JSON, from);
    size_t a = (size_t)(p - TINY_JSON), fl = strlen(from), tl = strlen(to);
    char *s = malloc(strlen(TINY_JSON) - fl + tl + 1);
    memcpy(s, TINY_JSON, a);
    memcpy(s + a, to, tl);
    strcpy(s + a + tl, p + fl);
    return s;
}

TEST(tokenizer_load_errors)
{
    vrt_tokenizer *t = (vrt_tokenizer *)1;
    vrt_err err = {0};
    ASSERT_EQ_INT(vrt_tokenizer_load(&t, "tests/fixtures/tokenizers/nope", &err), VRT_ENOENT);
    ASSERT(t == NULL);
    ASSERT_CONTAINS(err.msg, "tests/fixtures/tokenizers/nope/tokenizer.json");

    ASSERT_EQ_INT(load_err("{\"model\": {\n  \"type\": \"BPE\",, }", NULL, &err), VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, "tokenizer.json: invalid JSON at line 2");

    char *s = tiny_with("\"type\":\"BPE\"", "\"type\":\"WordPiece\"");
    ASSERT_EQ_INT(load_err(s, NULL, &err), VRT_EUNSUPPORTED);
    free(s);
    ASSERT_CONTAINS(err.msg, "model.type \"WordPiece\" is not supported");

    s = tiny_with("\"normalizer\":null", "\"normalizer\":{\"type\":\"NFKC\"}");
    ASSERT_EQ_INT(load_err(s, NULL, &err), VRT_EUNSUPPORTED);
    free(s);
    ASSERT_CONTAINS(err.msg, "normalizer: normalizer type \"NFKC\"");

    s = tiny_with("\"decoder\":{\"type\":\"Metaspace\"", "\"decoder\":{\"type\":\"CTC\"");
    ASSERT_EQ_INT(load_err(s, NULL, &err), VRT_EUNSUPPORTED);
    free(s);
    ASSERT_CONTAINS(err.msg, "decoder type \"CTC\"");

    s = tiny_with("\"\\u2581a b\"", "\"\\u2581a zz\"");
    ASSERT_EQ_INT(load_err(s, NULL, &err), VRT_EFORMAT);
    free(s);
    ASSERT_CONTAINS(err.msg, "model.merges[1]");

    ASSERT_EQ_INT(load_err(TINY_JSON, "{\"add_bos_token\": tru}", &err), VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, "tokenizer_config.json: invalid JSON");

    ASSERT_EQ_INT(load_err(TINY_JSON, "{\"tokenizer_class\": \"LlamaTokenizerFast\"}", &err),
                  VRT_EFORMAT);
    ASSERT_CONTAINS(err.msg, "add_bos_token is true but bos_token");

    s = tiny_with("\"c\":8", "\"c\":7");
    ASSERT_EQ_INT(load_err(s, NULL, &err), VRT_EFORMAT);
    free(s);
    ASSERT_CONTAINS(err.msg, "id 7 is used by both");

    s = tiny_with("\"c\":8", "\"c\":8.5");
    ASSERT_EQ_INT(load_err(s, NULL, &err), VRT_EFORMAT);
    free(s);
    ASSERT_CONTAINS(err.msg, "model.vocab[\"c\"]");

    s = tiny_with("\"post_processor\":null",
                  "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":"
                  "[{\"SpecialToken\":{\"id\":\"<x>\",\"type_id\":0}}],"
                  "\"special_tokens\":{}}");
    ASSERT_EQ_INT(load_err(s, NULL, &err), VRT_EFORMAT);
    free(s);
    ASSERT_CONTAINS(err.msg, "special token \"<x>\"");

    s = tiny_with("\"added_tokens\":[", "\"added_tokens\":[{\"id\":-1,\"content\":\"x\"},");
    ASSERT_EQ_INT(load_err(s, NULL, &err), VRT_EFORMAT);
    free(s);
    ASSERT_CONTAINS(err.msg, "added_tokens[0].id");

    ASSERT_EQ_INT(load_err("[1, 2]", NULL, &err), VRT_EFORMAT);
    ASSERT_EQ_INT(load_err("", NULL, &err), VRT_EFORMAT);
}

/* Regression: generated text lost its leading space ("And God saidunto")
 * because the first generated "▁unto" was decoded as the first token of a
 * sequence, whose space the Strip decoder removes. Primed with the prompt,
 * the detokenizer emits what the output adds to decode(prompt + output). */
TEST(tokenizer_detok_prime_keeps_the_leading_space)
{
    vrt_err err = {0};
    vrt_tokenizer *t;
    ASSERT_OK(vrt_tokenizer_load(&t, FIX "sentencepiece", &err), &err);
    vrt_tokens prompt = {0}, out = {0};
    ASSERT_OK(vrt_tokenizer_encode(t, "And God said", 12, 1, &prompt, &err), &err);
    ASSERT_OK(vrt_tokenizer_encode(t, " unto them", 10, 0, &out, &err), &err);
    /* The SentencePiece normalizer prepends "▁": drop a lone "▁" token. */
    size_t first = 0;
    const char *p0 = vrt_tokenizer_piece(t, out.ids[0]);
    if (p0 && strcmp(p0, "\xe2\x96\x81") == 0)
        first = 1;
    for (int primed = 0; primed < 2; primed++) {
        vrt_detok d;
        vrt_detok_init(&d, t, 1);
        if (primed)
            ASSERT_OK(vrt_detok_prime(&d, prompt.ids, prompt.n, &err), &err);
        char text[256] = "";
        for (size_t i = first; i < out.n; i++) {
            char *piece;
            size_t len;
            ASSERT_OK(vrt_detok_push(&d, out.ids[i], &piece, &len, &err), &err);
            strncat(text, piece, sizeof text - strlen(text) - 1);
            free(piece);
        }
        char *piece;
        size_t len;
        ASSERT_OK(vrt_detok_flush(&d, &piece, &len, &err), &err);
        strncat(text, piece, sizeof text - strlen(text) - 1);
        free(piece);
        vrt_detok_free(&d);
        ASSERT_EQ_STR(text, primed ? " unto them" : "unto them");
    }
    /* A prompt ending in a special token gives no context. */
    int32_t bos = vrt_tokenizer_bos_id(t);
    vrt_detok d;
    vrt_detok_init(&d, t, 1);
    ASSERT_OK(vrt_detok_prime(&d, &bos, 1, &err), &err);
    ASSERT_EQ_INT(d.n, 0);
    vrt_detok_free(&d);
    vrt_tokens_free(&prompt);
    vrt_tokens_free(&out);
    vrt_tokenizer_free(t);
}

/* Regression: TGI's /tokenize gave offsets that drifted by one character per
 * space-prefixed token ("Hello world, and the LORD" ended at 21 of 25),
 * because each token's text was decoded alone. The byte offsets must be
 * those of the tokenizers crate (the Rust Encoding that TGI returns; the
 * values below were computed with tokenizers 0.23.3): a prepended "▁" is
 * aligned with the next character, a lone one covers it without consuming
 * it, the byte pieces of a character all cover the whole character, and
 * BOS is [0, 0). kjv-tiny and the SentencePiece fixture (the tokenizer of
 * `v100rt mkmodel`) are Llama-2 style, the byte-level one Llama-3 style. */
TEST(tokenizer_offsets_match_tokenizers)
{
    static const char *texts[] = {"Hello world, and the LORD", "  two  spaces ",
                                  "na\xc3\xafve caf\xc3\xa9 \xe2\x80\x9cquoted\xe2\x80\x9d "
                                  "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80!"};
    static const struct {
        const char *dir;
        int text;
        size_t n;
        size_t off[80];
    } cases[] = {
        {"models-trained/kjv-tiny", 0, 8, {0, 0, 0, 1, 1, 4, 4, 5, 5, 12, 12, 16, 16, 20, 20, 25}},
        {"models-trained/kjv-tiny",
         1,
         9,
         {0, 0, 0, 1, 0, 1, 1, 5, 5, 6, 6, 9, 9, 11, 11, 13, 13, 14}},
        {"models-trained/kjv-tiny", 2, 36, {0,  0,  0,  1,  1,  2,  2,  4,  2,  4,  4,  6,
                                            6,  9,  9,  10, 10, 12, 10, 12, 12, 13, 13, 16,
                                            13, 16, 13, 16, 16, 18, 18, 20, 20, 22, 22, 25,
                                            22, 25, 22, 25, 25, 26, 26, 29, 26, 29, 26, 29,
                                            29, 32, 29, 32, 29, 32, 32, 35, 32, 35, 32, 35,
                                            35, 36, 36, 40, 36, 40, 36, 40, 36, 40, 40, 41}},
        {FIX "sentencepiece", 0, 7, {0, 0, 0, 5, 5, 11, 11, 12, 12, 16, 16, 20, 20, 25}},
        {FIX "sentencepiece", 1, 8, {0, 0, 0, 1, 0, 1, 1, 5, 5, 6, 6, 9, 9, 13, 13, 14}},
        {FIX "sentencepiece", 2, 36, {0,  0,  0,  1,  1,  2,  2,  4,  2,  4,  4,  6,  6,  10, 10,
                                      12, 10, 12, 12, 13, 13, 16, 13, 16, 13, 16, 16, 17, 17, 18,
                                      18, 20, 20, 22, 22, 25, 22, 25, 22, 25, 25, 26, 26, 29, 26,
                                      29, 26, 29, 29, 32, 29, 32, 29, 32, 32, 35, 32, 35, 32, 35,
                                      35, 36, 36, 40, 36, 40, 36, 40, 36, 40, 40, 41}},
        {FIX "bytelevel", 0, 7, {0, 0, 0, 5, 5, 11, 11, 12, 12, 16, 16, 20, 20, 25}},
        {FIX "bytelevel", 1, 7, {0, 0, 0, 1, 1, 5, 5, 6, 6, 9, 9, 13, 13, 14}},
        {FIX "bytelevel", 2, 29, {0,  0,  0,  1,  1,  2,  2,  4,  2,  4,  4,  6,  6,  12, 12,
                                  13, 13, 16, 13, 16, 16, 18, 18, 20, 20, 22, 22, 25, 22, 25,
                                  25, 26, 26, 29, 26, 29, 26, 29, 29, 32, 29, 32, 29, 32, 32,
                                  35, 32, 35, 32, 35, 35, 40, 36, 40, 36, 40, 40, 41}},
    };
    vrt_err err = {0};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        vrt_tokenizer *t;
        ASSERT_OK(vrt_tokenizer_load(&t, cases[c].dir, &err), &err);
        const char *in = texts[cases[c].text];
        vrt_tokens ids = {0};
        size_t *off = NULL;
        ASSERT_OK(vrt_tokenizer_encode_offsets(t, in, strlen(in), 1, &ids, &off, &err), &err);
        if (ids.n != cases[c].n || memcmp(off, cases[c].off, 2 * ids.n * sizeof(size_t)) != 0) {
            fprintf(stderr, "    %s \"%s\":\n    want", cases[c].dir, in);
            for (size_t i = 0; i < cases[c].n; i++)
                fprintf(stderr, " [%zu,%zu)", cases[c].off[2 * i], cases[c].off[2 * i + 1]);
            fprintf(stderr, "\n    got ");
            for (size_t i = 0; i < ids.n; i++)
                fprintf(stderr, " [%zu,%zu)", off[2 * i], off[2 * i + 1]);
            fprintf(stderr, "\n");
            TFAIL("offsets of %s differ from the tokenizers crate", cases[c].dir);
        }
        free(off);
        vrt_tokens_free(&ids);
        vrt_tokenizer_free(t);
    }
}
