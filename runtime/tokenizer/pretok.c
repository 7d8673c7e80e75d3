/* pretok.c — tokenizer.json normalizers and pre-tokenizers.
 *
 * Normalizers (Sequence, Prepend, Replace, Strip) rewrite one text segment.
 * Pre-tokenizers (Sequence, ByteLevel, Split, Metaspace, Digits, Whitespace,
 * WhitespaceSplit, Punctuation) turn a list of pieces into a list of words
 * for the BPE model, with the split behaviours of the tokenizers crate
 * (Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous, and
 * invert). Anything else is refused at load time with the type's name, so
 * a tokenizer we cannot reproduce exactly never loads silently.
 */
#include "tokenizer/tok_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The GPT-2 split regex (tokenizers byte_level.rs). */
static const char GPT2_RE[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|"
                              "\\s+(?!\\S)|\\s+";
/* One character of Rust's char::is_whitespace / is_numeric /
 * is_ascii_punctuation || is_punctuation. */
static const char WS_CHAR_RE[] =
    "[\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
    "\\x{202F}\\x{205F}\\x{3000}]";
static const char NUM_CHAR_RE[] = "\\p{N}";
static const char PUNCT_CHAR_RE[] = "[\\p{P}!-\\/:-@\\[-`{-~]";
/* Whitespace: \w+|[^\w\s]+ of Rust's regex crate, whose \w is Alphabetic,
 * marks, decimal digits, connector punctuation and the joiners, and \s is
 * White_Space (PCRE2's \w and \s differ on ZWJ, U+FE0F and U+0085). */
#define RUST_W "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}"
#define RUST_S                                                                                     \
    "\\t-\\r "                                                                                     \
    "\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"
static const char WHITESPACE_RE[] = "[" RUST_W "]+|[^" RUST_W RUST_S "]+";
/* PCRE2 < 10.40 has no \p{Alphabetic}: letters and letter numbers are the
 * same but for a few symbols such as the circled letters. */
#define OLD_W "\\p{L}\\p{Nl}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}"
static const char WHITESPACE_RE_OLD[] = "[" OLD_W "]+|[^" OLD_W RUST_S "]+";

static const cJSON *obj_get(const cJSON *j, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(j, k);
}

static int opt_bool(const cJSON *j, const char *k, int dflt)
{
    const cJSON *v = obj_get(j, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

static const char *type_of(const cJSON *j)
{
    const cJSON *t = obj_get(j, "type");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

/* ---- normalizers ------------------------------------------------------ */

int vrt__tok_norm_parse(tk_norm *n, const cJSON *j, const char *where, vrt_err *err)
{
    memset(n, 0, sizeof(*n));
    const char *type = type_of(j);
    if (!type)
        return vrt_err_set(err, VRT_EFORMAT, "%s: missing \"type\"", where);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *l = obj_get(j, "normalizers");
        if (!cJSON_IsArray(l))
            return vrt_err_set(err, VRT_EFORMAT, "%s: Sequence without a \"normalizers\" list",
                               where);
        n->type = TK_N_SEQUENCE;
        int cnt = cJSON_GetArraySize(l);
        n->kids = calloc(cnt ? (size_t)cnt : 1, sizeof(*n->kids));
        if (!n->kids)
            return VRT_ENOMEM;
        for (int i = 0; i < cnt; i++) {
            char sub[512];
            snprintf(sub, sizeof(sub), "%s.normalizers[%d]", where, i);
            n->n_kids = (size_t)i + 1;
            int rc = vrt__tok_norm_parse(&n->kids[i], cJSON_GetArrayItem(l, i), sub, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (strcmp(type, "Prepend") == 0) {
        const cJSON *p = obj_get(j, "prepend");
        if (!cJSON_IsString(p))
            return vrt_err_set(err, VRT_EFORMAT, "%s: Prepend without a \"prepend\" string", where);
        n->type = TK_N_PREPEND;
        n->str = strdup(p->valuestring);
        n->str_len = strlen(p->valuestring);
        return n->str ? 0 : VRT_ENOMEM;
    }
    if (strcmp(type, "Replace") == 0) {
        const cJSON *c = obj_get(j, "content");
        if (!cJSON_IsString(c))
            return vrt_err_set(err, VRT_EFORMAT, "%s: Replace without a \"content\" string", where);
        n->type = TK_N_REPLACE;
        n->str = strdup(c->valuestring);
        if (!n->str)
            return VRT_ENOMEM;
        n->str_len = strlen(c->valuestring);
        return vrt__tok_pattern_parse(&n->pat, obj_get(j, "pattern"), where, err);
    }
    if (strcmp(type, "Strip") == 0) {
        n->type = TK_N_STRIP;
        n->strip_left = opt_bool(j, "strip_left", 0);
        n->strip_right = opt_bool(j, "strip_right", 0);
        return 0;
    }
    return vrt_err_set(err, VRT_EUNSUPPORTED,
                       "%s: normalizer type \"%s\" is not supported "
                       "(supported: Sequence, Prepend, Replace, Strip)",
                       where, type);
}

void vrt__tok_norm_free(tk_norm *n)
{
    for (size_t i = 0; i < n->n_kids; i++)
        vrt__tok_norm_free(&n->kids[i]);
    free(n->kids);
    free(n->str);
    vrt__tok_pattern_free(&n->pat);
    memset(n, 0, sizeof(*n));
}

/* Byte length of the whitespace run at the start (dir > 0) or end of s. */
static size_t ws_prefix(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int k = vrt__tok_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (k <= 0 || !vrt__tok_is_whitespace(cp))
            break;
        i += (size_t)k;
    }
    return i;
}

static size_t ws_suffix(const char *s, size_t n)
{
    size_t end = n;
    while (end > 0) {
        size_t st = end - 1;
        while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80)
            st--;
        uint32_t cp;
        int k = vrt__tok_utf8_decode((const unsigned char *)s + st, end - st, &cp);
        if (k <= 0 || !vrt__tok_is_whitespace(cp))
            break;
        end = st;
    }
    return n - end;
}

int vrt__tok_norm_apply(const tk_norm *n, const char *s, size_t len, vrt_strbuf *out)
{
    out->len = 0;
    switch (n->type) {
    case TK_N_PREPEND:
        if (len && vrt__tok_put(out, n->str, n->str_len))
            return VRT_ENOMEM;
        return vrt__tok_put(out, s, len);
    case TK_N_REPLACE: return vrt__tok_pattern_replace(&n->pat, s, len, n->str, n->str_len, out);
    case TK_N_STRIP: {
        size_t a = n->strip_left ? ws_prefix(s, len) : 0;
        size_t b = n->strip_right && a < len ? ws_suffix(s + a, len - a) : 0;
        return vrt__tok_put(out, s + a, len - a - b);
    }
    case TK_N_SEQUENCE: {
        vrt_strbuf cur = {0};
        int rc = vrt__tok_put(&cur, s, len);
        for (size_t i = 0; rc == 0 && i < n->n_kids; i++) {
            rc = vrt__tok_norm_apply(&n->kids[i], cur.p, cur.len, out);
            vrt_strbuf t = cur;
            cur = *out;
            *out = t;
        }
        out->len = 0;
        if (rc == 0)
            rc = vrt__tok_put(out, cur.p, cur.len);
        vrt__tok_buf_free(&cur);
        return rc;
    }
    }
    return vrt__tok_put(out, s, len);
}

/* ---- pre-tokenizers ------------------------------------------------- */

static int parse_behavior(const cJSON *j, const char *where, int dflt, int *out, vrt_err *err)
{
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                  "Contiguous"};
    const cJSON *b = obj_get(j, "behavior");
    if (!b || cJSON_IsNull(b)) {
        *out = dflt;
        return 0;
    }
    for (int i = 0; cJSON_IsString(b) && i < 5; i++)
        if (strcmp(b->valuestring, names[i]) == 0) {
            *out = i;
            return 0;
        }
    return vrt_err_set(err, VRT_EFORMAT,
                       "%s: behavior \"%s\" is not one of Removed, Isolated, "
                       "MergedWithPrevious, MergedWithNext, Contiguous",
                       where, cJSON_IsString(b) ? b->valuestring : "?");
}

int vrt__tok_pretok_parse(tk_pretok *p, const cJSON *j, const char *where, vrt_err *err)
{
    memset(p, 0, sizeof(*p));
    const char *type = type_of(j);
    if (!type)
        return vrt_err_set(err, VRT_EFORMAT, "%s: missing \"type\"", where);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *l = obj_get(j, "pretokenizers");
        if (!cJSON_IsArray(l))
            return vrt_err_set(err, VRT_EFORMAT, "%s: Sequence without a \"pretokenizers\" list",
                               where);
        p->type = TK_P_SEQUENCE;
        int cnt = cJSON_GetArraySize(l);
        p->kids = calloc(cnt ? (size_t)cnt : 1, sizeof(*p->kids));
        if (!p->kids)
            return VRT_ENOMEM;
        for (int i = 0; i < cnt; i++) {
            char sub[512];
            snprintf(sub, sizeof(sub), "%s.pretokenizers[%d]", where, i);
            p->n_kids = (size_t)i + 1;
            int rc = vrt__tok_pretok_parse(&p->kids[i], cJSON_GetArrayItem(l, i), sub, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        p->type = TK_P_BYTELEVEL;
        p->add_prefix_space = opt_bool(j, "add_prefix_space", 1);
        p->use_regex = opt_bool(j, "use_regex", 1);
        p->behavior = TK_B_ISOLATED;
        return p->use_regex ? vrt__tok_regex_compile(&p->pat, GPT2_RE, where, err) : 0;
    }
    if (strcmp(type, "Split") == 0) {
        p->type = TK_P_SPLIT;
        p->invert = opt_bool(j, "invert", 0);
        int rc = parse_behavior(j, where, TK_B_ISOLATED, &p->behavior, err);
        if (rc)
            return rc;
        return vrt__tok_pattern_parse(&p->pat, obj_get(j, "pattern"), where, err);
    }
    if (strcmp(type, "Metaspace") == 0) {
        p->type = TK_P_METASPACE;
        const cJSON *r = obj_get(j, "replacement");
        const char *repl = cJSON_IsString(r) ? r->valuestring : "\xE2\x96\x81";
        p->repl_len = strlen(repl);
        if (p->repl_len == 0 || p->repl_len >= sizeof(p->repl))
            return vrt_err_set(err, VRT_EFORMAT,
                               "%s: Metaspace replacement \"%s\" must be one "
                               "character",
                               where, repl);
        memcpy(p->repl, repl, p->repl_len + 1);
        p->split = opt_bool(j, "split", 1);
        const cJSON *ps = obj_get(j, "prepend_scheme");
        p->prepend_scheme = TK_PREPEND_ALWAYS;
        if (cJSON_IsString(ps)) {
            if (strcmp(ps->valuestring, "first") == 0)
                p->prepend_scheme = TK_PREPEND_FIRST;
            else if (strcmp(ps->valuestring, "never") == 0)
                p->prepend_scheme = TK_PREPEND_NEVER;
            else if (strcmp(ps->valuestring, "always") != 0)
                return vrt_err_set(err, VRT_EFORMAT,
                                   "%s: Metaspace prepend_scheme \"%s\" is not "
                                   "always, first or never",
                                   where, ps->valuestring);
        } else if (!opt_bool(j, "add_prefix_space", 1)) {
            p->prepend_scheme = TK_PREPEND_NEVER;
        }
        p->pat.str = p->repl; /* literal, not owned (see vrt__tok_pretok_free) */
        p->pat.len = p->repl_len;
        p->behavior = TK_B_MERGED_NEXT;
        return 0;
    }
    if (strcmp(type, "Digits") == 0) {
        p->type = TK_P_DIGITS;
        p->behavior = opt_bool(j, "individual_digits", 0) ? TK_B_ISOLATED : TK_B_CONTIGUOUS;
        return vrt__tok_regex_compile(&p->pat, NUM_CHAR_RE, where, err);
    }
    if (strcmp(type, "Whitespace") == 0) {
        p->type = TK_P_WHITESPACE;
        p->behavior = TK_B_REMOVED;
        p->invert = 1;
        if (vrt__tok_regex_compile(&p->pat, WHITESPACE_RE, where, NULL) == 0)
            return 0;
        return vrt__tok_regex_compile(&p->pat, WHITESPACE_RE_OLD, where, err);
    }
    if (strcmp(type, "WhitespaceSplit") == 0) {
        p->type = TK_P_WHITESPACESPLIT;
        p->behavior = TK_B_REMOVED;
        return vrt__tok_regex_compile(&p->pat, WS_CHAR_RE, where, err);
    }
    if (strcmp(type, "Punctuation") == 0) {
        p->type = TK_P_PUNCTUATION;
        int rc = parse_behavior(j, where, TK_B_ISOLATED, &p->behavior, err);
        if (rc)
            return rc;
        return vrt__tok_regex_compile(&p->pat, PUNCT_CHAR_RE, where, err);
    }
    return vrt_err_set(err, VRT_EUNSUPPORTED,
                       "%s: pre-tokenizer type \"%s\" is not supported "
                       "(supported: Sequence, ByteLevel, Split, Metaspace, "
                       "Digits, Whitespace, WhitespaceSplit, Punctuation)",
                       where, type);
}

void vrt__tok_pretok_free(tk_pretok *p)
{
    for (size_t i = 0; i < p->n_kids; i++)
        vrt__tok_pretok_free(&p->kids[i]);
    free(p->kids);
    if (p->type == TK_P_METASPACE)
        p->pat.str = NULL; /* points into p->repl */
    vrt__tok_pattern_free(&p->pat);
    memset(p, 0, sizeof(*p));
}

/* Splits one piece by pattern matches with the crate's behaviours; pushes
 * the non-empty parts onto out. */
static int split_piece(const tk_pattern *pat, int behavior, int invert, const tk_str *pc,
                       tk_strs *out)
{
    size_t *sp = NULL, ns = 0, cap = 0;
    int rc = vrt__tok_pattern_find(pat, pc->s, pc->len, &sp, &ns, &cap);
    if (rc) {
        free(sp);
        return rc;
    }
    /* (start, end, is_match) covering the piece, as find_matches gives. */
    size_t nseg = 0;
    size_t(*seg)[3] = malloc((ns + 2) * sizeof(*seg));
    if (!seg) {
        free(sp);
        return VRT_ENOMEM;
    }
    size_t prev = 0;
    for (size_t i = 0; i < ns; i += 2) {
        if (sp[i] != prev) {
            seg[nseg][0] = prev;
            seg[nseg][1] = sp[i];
            seg[nseg++][2] = invert;
        }
        seg[nseg][0] = sp[i];
        seg[nseg][1] = sp[i + 1];
        seg[nseg++][2] = !invert;
        prev = sp[i + 1];
    }
    if (prev != pc->len || nseg == 0) {
        seg[nseg][0] = prev;
        seg[nseg][1] = pc->len;
        seg[nseg++][2] = invert;
    }
    free(sp);
    /* Apply the behaviour in place: out spans are (start, end, keep). */
    size_t no = 0;
    int prev_match = 0;
    switch (behavior) {
    case TK_B_REMOVED:
        for (size_t i = 0; i < nseg; i++)
            if (!seg[i][2]) {
                seg[no][0] = seg[i][0];
                seg[no++][1] = seg[i][1];
            }
        break;
    case TK_B_ISOLATED: no = nseg; break;
    case TK_B_MERGED_PREV:
        for (size_t i = 0; i < nseg; i++) {
            int m = (int)seg[i][2];
            size_t a = seg[i][0], b = seg[i][1];
            if (m && !prev_match && no > 0)
                seg[no - 1][1] = b;
            else {
                seg[no][0] = a;
                seg[no++][1] = b;
            }
            prev_match = m;
        }
        break;
    case TK_B_MERGED_NEXT: {
        /* Walk backwards: a match absorbs the part that follows it. */
        size_t w = nseg; /* parts are written from the end */
        for (size_t i = nseg; i-- > 0;) {
            int m = (int)seg[i][2];
            size_t a = seg[i][0], b = seg[i][1];
            if (m && !prev_match && w < nseg)
                seg[w][0] = a;
            else {
                w--;
                seg[w][0] = a;
                seg[w][1] = b;
            }
            prev_match = m;
        }
        memmove(seg, seg + w, (nseg - w) * sizeof(*seg));
        no = nseg - w;
        break;
    }
    case TK_B_CONTIGUOUS:
        for (size_t i = 0; i < nseg; i++) {
            int m = (int)seg[i][2];
            size_t a = seg[i][0], b = seg[i][1];
            if (i > 0 && m == prev_match && no > 0)
                seg[no - 1][1] = b;
            else {
                seg[no][0] = a;
                seg[no++][1] = b;
            }
            prev_match = m;
        }
        break;
    }
    for (size_t i = 0; rc == 0 && i < no; i++)
        if (seg[i][1] > seg[i][0])
            rc = vrt__tok_strs_push(out, pc->s + seg[i][0], seg[i][1] - seg[i][0],
                                    pc->off + seg[i][0]);
    free(seg);
    return rc;
}

static int bytelevel_map(const tk_str *pc, tk_strs *out)
{
    vrt_strbuf b = {0};
    for (size_t i = 0; i < pc->len; i++)
        if (vrt__tok_put_cp(&b, vrt__tok_byte_to_cp[(unsigned char)pc->s[i]])) {
            vrt__tok_buf_free(&b);
            return VRT_ENOMEM;
        }
    if (!b.p && vrt__tok_put(&b, "", 0))
        return VRT_ENOMEM;
    return vrt__tok_strs_push_owned(out, b.p, b.len, pc->off);
}

static int apply_one(const tk_pretok *p, const tk_str *pc, tk_strs *out)
{
    switch (p->type) {
    case TK_P_BYTELEVEL: {
        tk_str cur = *pc;
        char *tmp = NULL;
        /* NormalizedString::prepend is a no-op on an empty string. */
        if (p->add_prefix_space && pc->len > 0 && pc->s[0] != ' ') {
            tmp = malloc(pc->len + 2);
            if (!tmp)
                return VRT_ENOMEM;
            tmp[0] = ' ';
            memcpy(tmp + 1, pc->s, pc->len + 1);
            cur.s = tmp;
            cur.len = pc->len + 1;
        }
        int rc = 0;
        if (p->use_regex) {
            tk_strs parts = {0};
            rc = split_piece(&p->pat, TK_B_ISOLATED, 0, &cur, &parts);
            for (size_t i = 0; rc == 0 && i < parts.n; i++)
                rc = bytelevel_map(&parts.v[i], out);
            vrt__tok_strs_free(&parts);
        } else {
            rc = bytelevel_map(&cur, out);
        }
        free(tmp);
        return rc;
    }
    case TK_P_METASPACE: {
        tk_pattern sp = {0};
        sp.str = " ";
        sp.len = 1;
        vrt_strbuf b = {0};
        int rc = 0;
        int pre = 0;
        if (pc->len > 0 && !(pc->len >= p->repl_len && memcmp(pc->s, p->repl, p->repl_len) == 0)) {
            if (p->prepend_scheme == TK_PREPEND_ALWAYS)
                pre = 1;
            else if (p->prepend_scheme == TK_PREPEND_FIRST && pc->off == 0)
                pre = 1;
        }
        /* The replace runs first, so a piece starting with ' ' counts as
         * starting with the replacement. */
        if (pre && pc->len > 0 && pc->s[0] == ' ')
            pre = 0;
        if (pre)
            rc = vrt__tok_put(&b, p->repl, p->repl_len);
        if (rc == 0)
            rc = vrt__tok_pattern_replace(&sp, pc->s, pc->len, p->repl, p->repl_len, &b);
        if (rc == 0 && !b.p)
            rc = vrt__tok_put(&b, "", 0);
        if (rc) {
            vrt__tok_buf_free(&b);
            return rc;
        }
        tk_str cur = {b.p, b.len, pc->off};
        if (p->split)
            rc = split_piece(&p->pat, TK_B_MERGED_NEXT, 0, &cur, out);
        else if (cur.len)
            rc = vrt__tok_strs_push(out, cur.s, cur.len, cur.off);
        vrt__tok_buf_free(&b);
        return rc;
    }
    default: return split_piece(&p->pat, p->behavior, p->invert, pc, out);
    }
}

int vrt__tok_pretok_apply(const tk_pretok *p, tk_strs *l)
{
    if (p->type == TK_P_SEQUENCE) {
        for (size_t i = 0; i < p->n_kids; i++) {
            int rc = vrt__tok_pretok_apply(&p->kids[i], l);
            if (rc)
                return rc;
        }
        return 0;
    }
    tk_strs out = {0};
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < l->n; i++)
        rc = apply_one(p, &l->v[i], &out);
    if (rc) {
        vrt__tok_strs_free(&out);
        return rc;
    }
    vrt__tok_strs_free(l);
    *l = out;
    return 0;
}
