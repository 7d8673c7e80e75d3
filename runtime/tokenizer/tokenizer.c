/* tokenizer.c — loading a Hugging Face tokenizer directory, added/special
 * tokens, the post-processor, encode, and the accessors of tokenizer.h.
 *
 * Encoding follows the tokenizers crate step by step (docs/formats.md §5.2):
 * invalid UTF-8 is first replaced by U+FFFD; added tokens with
 * normalized: false are split out of the raw text (leftmost-longest, with
 * single_word / lstrip / rstrip); each remaining segment is normalized and
 * searched for the normalized added tokens; what is left goes through the
 * pre-tokenizer and the BPE model word by word. With add_special_tokens the
 * post-processor template (TemplateProcessing, Bert/Roberta, or the
 * [bos] $A [eos] that LlamaTokenizerFast rebuilds from tokenizer_config.json
 * add_bos_token/add_eos_token) wraps the ids.
 */
#include "core/util.h"
#include "tokenizer/tok_internal.h"

#include "core/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* tokenizer.json of a 256k-vocab model is ~30 MB; refuse absurd files. */
#define MAX_JSON_BYTES (1024u << 20)

static const cJSON *obj_get(const cJSON *j, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(j, k);
}

static int opt_bool(const cJSON *j, const char *k, int dflt)
{
    const cJSON *v = obj_get(j, k);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

void vrt_tokens_free(vrt_tokens *toks)
{
    free(toks->ids);
    toks->ids = NULL;
    toks->n = toks->cap = 0;
}

/* ---- files ------------------------------------------------------------ */

/* Reads a whole file; 1 when it does not exist. */
static int slurp(const char *path, char **out, size_t *len, vrt_err *err)
{
    return vrt_read_file(path, MAX_JSON_BYTES, "a tokenizer file", 1, out, len, err);
}

/* Parses JSON text; on error names the file, line and column. */
static int parse_json(const char *text, size_t len, const char *path, cJSON **out, vrt_err *err)
{
    const char *end = NULL;
    *out = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (*out)
        return 0;
    if (!end || end < text || end > text + len)
        return vrt_err_set(err, VRT_EFORMAT, "%s: invalid JSON", path);
    size_t line = 1, col = 1;
    for (const char *p = text; p < end; p++) {
        if (*p == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    return vrt_err_set(err, VRT_EFORMAT, "%s: invalid JSON at line %zu, column %zu", path, line,
                       col);
}

/* ---- accessors -------------------------------------------------------- */

const char *vrt__tok_piece(const vrt_tokenizer *t, int32_t id)
{
    if (id < 0 || (size_t)id >= t->n_ids)
        return NULL;
    if (t->id_added[id])
        return t->id_added[id];
    if ((size_t)id < t->bpe.n_pieces)
        return t->bpe.pieces[id];
    return NULL;
}

const char *vrt__tok_dec_piece(const vrt_tokenizer *t, int32_t id)
{
    if (id < 0 || (size_t)id >= t->n_ids)
        return NULL;
    if (t->id_dec[id])
        return t->id_dec[id];
    if ((size_t)id < t->bpe.n_pieces)
        return t->bpe.pieces[id];
    return NULL;
}

size_t vrt_tokenizer_vocab_size(const vrt_tokenizer *t)
{
    return t->n_ids;
}

const char *vrt_tokenizer_piece(const vrt_tokenizer *t, int32_t id)
{
    return vrt__tok_piece(t, id);
}

int32_t vrt_tokenizer_find(const vrt_tokenizer *t, const char *piece)
{
    size_t n = strlen(piece);
    int32_t id = vrt__tok_strmap_get(&t->added_map, piece, n);
    return id >= 0 ? id : vrt__tok_strmap_get(&t->bpe.vocab, piece, n);
}

int vrt_tokenizer_is_special(const vrt_tokenizer *t, int32_t id)
{
    return id >= 0 && (size_t)id < t->n_ids && t->id_special[id];
}

int32_t vrt_tokenizer_bos_id(const vrt_tokenizer *t)
{
    return t->bos_id;
}

int32_t vrt_tokenizer_eos_id(const vrt_tokenizer *t)
{
    return t->eos_id;
}

const char *vrt_tokenizer_chat_template(const vrt_tokenizer *t)
{
    return t->chat_template;
}

/* ---- added tokens ------------------------------------------------------ */

static const char *match_pat(const tk_added *a, int norm, size_t *len)
{
    *len = norm ? a->norm_len : a->len;
    return norm ? a->norm : a->content;
}

/* Sort key of one added token: first byte, then longest first, then file
 * order (qsort has no context argument, so the key is copied out). */
typedef struct match_key {
    unsigned char first;
    size_t len;
    uint32_t idx;
} match_key;

static int cmp_key(const void *pa, const void *pb)
{
    const match_key *a = pa, *b = pb;
    if (a->first != b->first)
        return a->first < b->first ? -1 : 1;
    if (a->len != b->len)
        return a->len > b->len ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Builds the index of the added tokens with normalized == norm. */
static int build_match(vrt_tokenizer *t, tk_match *m, int norm)
{
    memset(m, 0, sizeof(*m));
    m->idx = malloc((t->n_added ? t->n_added : 1) * sizeof(*m->idx));
    if (!m->idx)
        return VRT_ENOMEM;
    for (size_t i = 0; i < t->n_added; i++) {
        size_t len;
        match_pat(&t->added[i], norm, &len);
        if (!t->added[i].normalized == !norm && len > 0)
            m->idx[m->n++] = (uint32_t)i;
    }
    match_key *keys = malloc((m->n ? m->n : 1) * sizeof(*keys));
    if (!keys)
        return VRT_ENOMEM;
    for (size_t i = 0; i < m->n; i++) {
        const char *p = match_pat(&t->added[m->idx[i]], norm, &keys[i].len);
        keys[i].first = (unsigned char)p[0];
        keys[i].idx = m->idx[i];
    }
    qsort(keys, m->n, sizeof(*keys), cmp_key);
    for (size_t i = 0; i < m->n; i++)
        m->idx[i] = keys[i].idx;
    free(keys);
    size_t k = 0;
    for (int b = 0; b < 256; b++) {
        m->start[b] = (uint32_t)k;
        while (k < m->n) {
            size_t len;
            const char *s = match_pat(&t->added[m->idx[k]], norm, &len);
            if ((unsigned char)s[0] != b)
                break;
            k++;
        }
    }
    m->start[256] = (uint32_t)m->n;
    return 0;
}

static int parse_added(vrt_tokenizer *t, const cJSON *root, const char *file, vrt_err *err)
{
    const cJSON *l = obj_get(root, "added_tokens");
    if (!l || cJSON_IsNull(l))
        return 0;
    if (!cJSON_IsArray(l))
        return vrt_err_set(err, VRT_EFORMAT, "%s: added_tokens must be a list", file);
    int cnt = cJSON_GetArraySize(l);
    t->added = calloc(cnt ? (size_t)cnt : 1, sizeof(*t->added));
    if (!t->added)
        return VRT_ENOMEM;
    int i = 0;
    for (const cJSON *e = l->child; e; e = e->next, i++) {
        const cJSON *id = obj_get(e, "id"), *c = obj_get(e, "content");
        if (!cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble > 16777216.0 ||
            id->valuedouble != (double)id->valueint)
            return vrt_err_set(err, VRT_EFORMAT,
                               "%s: added_tokens[%d].id is not an id in [0, 2^24]", file, i);
        if (!cJSON_IsString(c) || !c->valuestring[0])
            return vrt_err_set(err, VRT_EFORMAT, "%s: added_tokens[%d].content is missing or empty",
                               file, i);
        tk_added *a = &t->added[t->n_added];
        a->content = strdup(c->valuestring);
        if (!a->content)
            return VRT_ENOMEM;
        t->n_added++;
        a->len = strlen(a->content);
        a->id = id->valueint;
        a->special = opt_bool(e, "special", 0);
        a->single_word = opt_bool(e, "single_word", 0);
        a->lstrip = opt_bool(e, "lstrip", 0);
        a->rstrip = opt_bool(e, "rstrip", 0);
        /* AddedToken::from(content, special) defaults normalized to !special. */
        a->normalized = opt_bool(e, "normalized", !a->special);
    }
    return 0;
}

/* Fills id tables, the content map and the normalized patterns. */
static int index_added(vrt_tokenizer *t)
{
    size_t n_ids = t->bpe.n_pieces;
    for (size_t i = 0; i < t->n_added; i++)
        if ((size_t)t->added[i].id + 1 > n_ids)
            n_ids = (size_t)t->added[i].id + 1;
    t->n_ids = n_ids;
    t->id_added = calloc(n_ids ? n_ids : 1, sizeof(*t->id_added));
    t->id_special = calloc(n_ids ? n_ids : 1, 1);
    t->id_dec = calloc(n_ids ? n_ids : 1, sizeof(*t->id_dec));
    t->id_skip = calloc(n_ids ? n_ids : 1, 1);
    if (!t->id_added || !t->id_special || !t->id_dec || !t->id_skip)
        return VRT_ENOMEM;
    int need_word = 0;
    vrt_strbuf nb = {0};
    for (size_t i = 0; i < t->n_added; i++) {
        tk_added *a = &t->added[i];
        t->id_added[a->id] = a->content;
        t->id_special[a->id] = (unsigned char)a->special;
        if (vrt__tok_strmap_put(&t->added_map, a->content, a->len, a->id))
            return VRT_ENOMEM;
        need_word |= a->single_word;
        if (a->normalized) {
            nb.len = 0;
            int rc = t->has_norm ? vrt__tok_norm_apply(&t->norm, a->content, a->len, &nb)
                                 : vrt__tok_put(&nb, a->content, a->len);
            if (rc == 0 && !nb.p)
                rc = vrt__tok_put(&nb, "", 0);
            if (rc) {
                vrt__tok_buf_free(&nb);
                return rc;
            }
            a->norm = malloc(nb.len + 1);
            if (!a->norm) {
                vrt__tok_buf_free(&nb);
                return VRT_ENOMEM;
            }
            memcpy(a->norm, nb.p, nb.len + 1);
            a->norm_len = nb.len;
        }
    }
    vrt__tok_buf_free(&nb);
    /* Decode strings, and which of them name a special token. */
    tk_strmap specials = {0};
    for (size_t i = 0; i < t->n_added; i++) {
        tk_added *a = &t->added[i];
        t->id_dec[a->id] = a->normalized ? a->norm : a->content;
        if (a->special && vrt__tok_strmap_put(&specials, a->content, a->len, 1)) {
            vrt__tok_strmap_free(&specials);
            return VRT_ENOMEM;
        }
    }
    for (size_t i = 0; i < t->n_added; i++) {
        const char *s = t->id_dec[t->added[i].id];
        t->id_skip[t->added[i].id] = vrt__tok_strmap_get(&specials, s, strlen(s)) >= 0;
    }
    vrt__tok_strmap_free(&specials);
    if (need_word) {
        /* The \w of Rust's regex crate (added_vocabulary.rs matches
         * single_word with it): Alphabetic, marks, decimal digits,
         * connector punctuation and the joiners. PCRE2 < 10.40 lacks
         * \p{Alphabetic}; letters and letter numbers are nearly the same. */
        static const char *const WORD_RE[2] = {
            "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]",
            "[\\p{L}\\p{Nl}\\p{M}\\p{Nd}\\p{Pc}\\x{200C}\\x{200D}]"};
        for (int i = 0; i < 2 && !t->word_re; i++) {
            int ec;
            PCRE2_SIZE eo;
            t->word_re = pcre2_compile((PCRE2_SPTR)WORD_RE[i], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &ec, &eo, NULL);
        }
        if (!t->word_re)
            return VRT_ENOMEM;
    }
    int rc = build_match(t, &t->match_raw, 0);
    return rc ? rc : build_match(t, &t->match_norm, 1);
}

/* ---- post-processor ---------------------------------------------------- */

static int tmpl_add(vrt_tokenizer *t, int is_seq, const int32_t *ids, size_t n)
{
    tk_tmpl_item *v = realloc(t->tmpl, (t->n_tmpl + 1) * sizeof(*v));
    if (!v)
        return VRT_ENOMEM;
    t->tmpl = v;
    tk_tmpl_item *it = &t->tmpl[t->n_tmpl];
    memset(it, 0, sizeof(*it));
    it->is_seq = is_seq;
    if (n) {
        it->ids = malloc(n * sizeof(*it->ids));
        if (!it->ids)
            return VRT_ENOMEM;
        memcpy(it->ids, ids, n * sizeof(*ids));
        it->n_ids = n;
    }
    t->n_tmpl++;
    t->has_tmpl = 1;
    return 0;
}

static void tmpl_clear(vrt_tokenizer *t)
{
    for (size_t i = 0; i < t->n_tmpl; i++)
        free(t->tmpl[i].ids);
    free(t->tmpl);
    t->tmpl = NULL;
    t->n_tmpl = 0;
    t->has_tmpl = 0;
}

static int parse_template(vrt_tokenizer *t, const cJSON *j, const char *where, vrt_err *err)
{
    const cJSON *single = obj_get(j, "single"), *sp = obj_get(j, "special_tokens");
    if (!cJSON_IsArray(single))
        return vrt_err_set(err, VRT_EFORMAT, "%s: TemplateProcessing without a \"single\" list",
                           where);
    int i = 0;
    for (const cJSON *e = single->child; e; e = e->next, i++) {
        const cJSON *st = obj_get(e, "SpecialToken"), *sq = obj_get(e, "Sequence");
        if (cJSON_IsObject(sq)) {
            int rc = tmpl_add(t, 1, NULL, 0);
            if (rc)
                return rc;
            continue;
        }
        const cJSON *name = cJSON_IsObject(st) ? obj_get(st, "id") : NULL;
        if (!cJSON_IsString(name))
            return vrt_err_set(err, VRT_EFORMAT,
                               "%s: single[%d] is neither {\"SpecialToken\": {\"id\": ...}} nor "
                               "{\"Sequence\": ...}",
                               where, i);
        const cJSON *def = cJSON_IsObject(sp) ? obj_get(sp, name->valuestring) : NULL;
        const cJSON *ids = def ? obj_get(def, "ids") : NULL;
        if (!cJSON_IsArray(ids))
            return vrt_err_set(err, VRT_EFORMAT,
                               "%s: special token \"%s\" of single[%d] has no \"ids\" in "
                               "special_tokens",
                               where, name->valuestring, i);
        int n = cJSON_GetArraySize(ids), k = 0;
        int32_t *v = malloc((n ? (size_t)n : 1) * sizeof(*v));
        if (!v)
            return VRT_ENOMEM;
        for (const cJSON *x = ids->child; x; x = x->next, k++) {
            if (!cJSON_IsNumber(x) || x->valueint < 0 || (size_t)x->valueint >= t->n_ids) {
                free(v);
                return vrt_err_set(err, VRT_EFORMAT,
                                   "%s: special_tokens[\"%s\"].ids[%d] is not an id of the "
                                   "vocabulary (0..%zu)",
                                   where, name->valuestring, k, t->n_ids - 1);
            }
            v[k] = x->valueint;
        }
        int rc = tmpl_add(t, 0, v, (size_t)n);
        free(v);
        if (rc)
            return rc;
    }
    return 0;
}

/* Bert/Roberta: {"cls": ["<s>", 0], "sep": ["</s>", 2]} -> cls $A sep. */
static int parse_cls_sep(vrt_tokenizer *t, const cJSON *j, const char *where, vrt_err *err)
{
    const char *keys[2] = {"cls", "sep"};
    int32_t ids[2];
    for (int i = 0; i < 2; i++) {
        const cJSON *p = obj_get(j, keys[i]);
        const cJSON *id = cJSON_IsArray(p) ? cJSON_GetArrayItem(p, 1) : NULL;
        if (!cJSON_IsNumber(id) || id->valueint < 0 || (size_t)id->valueint >= t->n_ids)
            return vrt_err_set(err, VRT_EFORMAT, "%s: \"%s\" must be [token, id in the vocabulary]",
                               where, keys[i]);
        ids[i] = id->valueint;
    }
    int rc = tmpl_add(t, 0, &ids[0], 1);
    if (rc == 0)
        rc = tmpl_add(t, 1, NULL, 0);
    return rc ? rc : tmpl_add(t, 0, &ids[1], 1);
}

static int parse_post(vrt_tokenizer *t, const cJSON *j, const char *where, vrt_err *err)
{
    const cJSON *ty = obj_get(j, "type");
    const char *type = cJSON_IsString(ty) ? ty->valuestring : NULL;
    if (!type)
        return vrt_err_set(err, VRT_EFORMAT, "%s: missing \"type\"", where);
    if (strcmp(type, "ByteLevel") == 0)
        return 0; /* offsets only */
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *l = obj_get(j, "processors");
        if (!cJSON_IsArray(l))
            return vrt_err_set(err, VRT_EFORMAT, "%s: Sequence without a \"processors\" list",
                               where);
        int i = 0;
        for (const cJSON *e = l->child; e; e = e->next, i++) {
            char sub[512];
            snprintf(sub, sizeof(sub), "%s.processors[%d]", where, i);
            int rc = parse_post(t, e, sub, err);
            if (rc)
                return rc;
        }
        return 0;
    }
    if (t->has_tmpl)
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "%s: a second special-token post-processor (\"%s\") is not supported",
                           where, type);
    if (strcmp(type, "TemplateProcessing") == 0)
        return parse_template(t, j, where, err);
    if (strcmp(type, "BertProcessing") == 0 || strcmp(type, "RobertaProcessing") == 0)
        return parse_cls_sep(t, j, where, err);
    return vrt_err_set(err, VRT_EUNSUPPORTED,
                       "%s: post-processor type \"%s\" is not supported (supported: "
                       "TemplateProcessing, ByteLevel, BertProcessing, RobertaProcessing, "
                       "Sequence)",
                       where, type);
}

/* ---- tokenizer_config.json ------------------------------------------- */

/* A token given as "<s>" or {"__type": "AddedToken", "content": "<s>"}. */
static const char *token_str(const cJSON *v)
{
    if (cJSON_IsString(v))
        return v->valuestring;
    const cJSON *c = cJSON_IsObject(v) ? obj_get(v, "content") : NULL;
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

static int config_token(vrt_tokenizer *t, const cJSON *cfg, const char *key, const char *file,
                        int32_t *id)
{
    const char *s = token_str(obj_get(cfg, key));
    if (!s)
        return 0;
    *id = vrt_tokenizer_find(t, s);
    if (*id < 0)
        VRT_WARN("%s: %s \"%s\" is not a token of tokenizer.json; ignored", file, key, s);
    return *id >= 0;
}

static int set_chat_template(vrt_tokenizer *t, const cJSON *ct)
{
    const char *s = NULL;
    if (cJSON_IsString(ct)) {
        s = ct->valuestring;
    } else if (cJSON_IsArray(ct)) {
        for (const cJSON *e = ct->child; e; e = e->next) {
            const cJSON *n = obj_get(e, "name"), *tp = obj_get(e, "template");
            if (cJSON_IsString(n) && strcmp(n->valuestring, "default") == 0 && cJSON_IsString(tp))
                s = tp->valuestring;
        }
    }
    if (!s)
        return 0;
    free(t->chat_template);
    t->chat_template = strdup(s);
    return t->chat_template ? 0 : VRT_ENOMEM;
}

static int load_config(vrt_tokenizer *t, const char *dir, vrt_err *err)
{
    char *path = vrt_path_join(dir, "tokenizer_config.json");
    char *jpath = vrt_path_join(dir, "chat_template.jinja");
    char *text = NULL;
    size_t len = 0;
    cJSON *cfg = NULL;
    int rc = path && jpath ? slurp(path, &text, &len, err) : VRT_ENOMEM;
    if (rc == 1) {
        rc = 0; /* no tokenizer_config.json: tokenizer.json alone */
    } else if (rc == 0 && (rc = parse_json(text, len, path, &cfg, err)) == 0) {
        if (!cJSON_IsObject(cfg)) {
            rc = vrt_err_set(err, VRT_EFORMAT, "%s: must be a JSON object", path);
            goto done;
        }
        config_token(t, cfg, "bos_token", path, &t->bos_id);
        config_token(t, cfg, "eos_token", path, &t->eos_id);
        if ((rc = set_chat_template(t, obj_get(cfg, "chat_template"))))
            goto done;
        /* LlamaTokenizerFast (and Gemma's, CodeLlama's) replace the
         * post-processor by [bos] $A [eos] from these two flags. */
        const cJSON *cls = obj_get(cfg, "tokenizer_class");
        const char *c = cJSON_IsString(cls) ? cls->valuestring : "";
        if (strncmp(c, "LlamaTokenizer", 14) == 0 || strncmp(c, "GemmaTokenizer", 14) == 0 ||
            strncmp(c, "CodeLlamaTokenizer", 18) == 0) {
            int add_bos = opt_bool(cfg, "add_bos_token", 1);
            int add_eos = opt_bool(cfg, "add_eos_token", 0);
            const char *keys[2] = {"add_bos_token", "add_eos_token"};
            int32_t ids[2] = {t->bos_id, t->eos_id};
            for (int i = 0; i < 2; i++)
                if ((i ? add_eos : add_bos) && ids[i] < 0) {
                    rc = vrt_err_set(err, VRT_EFORMAT,
                                     "%s: %s is true but %s is missing or not a token "
                                     "(set %s to false or fix %s)",
                                     path, keys[i], i ? "eos_token" : "bos_token", keys[i],
                                     i ? "eos_token" : "bos_token");
                    goto done;
                }
            tmpl_clear(t);
            if ((add_bos && (rc = tmpl_add(t, 0, &ids[0], 1))) || (rc = tmpl_add(t, 1, NULL, 0)) ||
                (add_eos && (rc = tmpl_add(t, 0, &ids[1], 1))))
                goto done;
        }
    }
    if (rc)
        goto done;
    /* A separate chat_template.jinja wins over the config's (transformers). */
    free(text);
    text = NULL;
    rc = slurp(jpath, &text, &len, err);
    if (rc == 1) {
        rc = 0;
    } else if (rc == 0) {
        free(t->chat_template);
        t->chat_template = text;
        text = NULL;
    }
done:
    cJSON_Delete(cfg);
    free(text);
    free(path);
    free(jpath);
    return rc;
}

/* ---- load / free ------------------------------------------------------ */

void vrt_tokenizer_free(vrt_tokenizer *t)
{
    if (!t)
        return;
    free(t->dir);
    vrt__tok_bpe_free(&t->bpe);
    for (size_t i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].norm);
    }
    free(t->added);
    free(t->id_added);
    free(t->id_special);
    free(t->id_dec);
    free(t->id_skip);
    vrt__tok_strmap_free(&t->added_map);
    if (t->has_norm)
        vrt__tok_norm_free(&t->norm);
    if (t->has_pretok)
        vrt__tok_pretok_free(&t->pretok);
    if (t->has_decoder)
        vrt__tok_decoder_free(&t->decoder);
    tmpl_clear(t);
    free(t->match_raw.idx);
    free(t->match_norm.idx);
    if (t->word_re)
        pcre2_code_free(t->word_re);
    free(t->chat_template);
    free(t);
}

static int load_json(vrt_tokenizer *t, const cJSON *root, const char *file, vrt_err *err)
{
    char where[1024];
    if (!cJSON_IsObject(root))
        return vrt_err_set(err, VRT_EFORMAT, "%s: must be a JSON object", file);
    const cJSON *model = obj_get(root, "model");
    if (!cJSON_IsObject(model))
        return vrt_err_set(err, VRT_EFORMAT, "%s: \"model\" is missing or not an object", file);
    const cJSON *mt = obj_get(model, "type");
    /* Old files omit model.type; BPE is recognized by its merges. */
    if (cJSON_IsString(mt) ? strcmp(mt->valuestring, "BPE") != 0 : !obj_get(model, "merges"))
        return vrt_err_set(err, VRT_EUNSUPPORTED,
                           "%s: model.type \"%s\" is not supported (supported: BPE, as in "
                           "GPT-2, Llama, Mistral, Phi, Qwen)",
                           file, cJSON_IsString(mt) ? mt->valuestring : "(missing)");
    int rc = vrt__tok_bpe_parse(&t->bpe, model, file, err);
    if (rc)
        return rc == VRT_ENOMEM ? vrt_err_set(err, rc, "%s: out of memory", file) : rc;

    const cJSON *c;
    if ((c = obj_get(root, "normalizer")) && !cJSON_IsNull(c)) {
        snprintf(where, sizeof(where), "%s: normalizer", file);
        t->has_norm = 1;
        if ((rc = vrt__tok_norm_parse(&t->norm, c, where, err)))
            return rc;
    }
    if ((c = obj_get(root, "pre_tokenizer")) && !cJSON_IsNull(c)) {
        snprintf(where, sizeof(where), "%s: pre_tokenizer", file);
        t->has_pretok = 1;
        if ((rc = vrt__tok_pretok_parse(&t->pretok, c, where, err)))
            return rc;
    }
    if ((c = obj_get(root, "decoder")) && !cJSON_IsNull(c)) {
        snprintf(where, sizeof(where), "%s: decoder", file);
        t->has_decoder = 1;
        if ((rc = vrt__tok_decoder_parse(&t->decoder, c, where, err)))
            return rc;
    }
    if ((rc = parse_added(t, root, file, err)))
        return rc;
    if ((rc = index_added(t)))
        return rc;
    if ((c = obj_get(root, "post_processor")) && !cJSON_IsNull(c)) {
        snprintf(where, sizeof(where), "%s: post_processor", file);
        if ((rc = parse_post(t, c, where, err)))
            return rc;
    }
    return 0;
}

int vrt_tokenizer_load(vrt_tokenizer **out, const char *dir, vrt_err *err)
{
    *out = NULL;
    vrt_tokenizer *t = calloc(1, sizeof(*t));
    char *path = vrt_path_join(dir, "tokenizer.json");
    char *text = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    int rc = 0;
    if (!t || !path || !(t->dir = strdup(dir))) {
        rc = vrt_err_set(err, VRT_ENOMEM, "loading tokenizer from %s: out of memory", dir);
        goto done;
    }
    t->bos_id = t->eos_id = -1;
    rc = slurp(path, &text, &len, err);
    if (rc == 1) {
        rc = vrt_err_set(err, VRT_ENOENT,
                         "%s: not found (the model directory needs the Hugging Face "
                         "tokenizer.json; slow-only tokenizers such as tokenizer.model must be "
                         "converted with transformers first)",
                         path);
        goto done;
    }
    if (rc || (rc = parse_json(text, len, path, &root, err)))
        goto done;
    free(text);
    text = NULL;
    rc = load_json(t, root, path, err);
    if (rc == VRT_ENOMEM)
        rc = vrt_err_set(err, rc, "%s: out of memory", path);
    if (rc == 0)
        rc = load_config(t, dir, err);
    /* BOS falls back to the first special token of the template. */
    for (size_t i = 0; rc == 0 && t->bos_id < 0 && i < t->n_tmpl; i++)
        if (!t->tmpl[i].is_seq && t->tmpl[i].n_ids)
            t->bos_id = t->tmpl[i].ids[0];
done:
    cJSON_Delete(root);
    free(text);
    free(path);
    if (rc) {
        vrt_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* ---- encode ----------------------------------------------------------- */

/* One piece of a split: [a, b) of the text, and the added token's id or -1. */
typedef struct span {
    size_t a, b;
    int32_t id;
} span;

typedef struct spans {
    span *v;
    size_t n, cap;
} spans;

static int spans_push(spans *l, size_t a, size_t b, int32_t id)
{
    if (vrt_grow(&l->v, &l->cap, l->n + 1, sizeof *l->v))
        return VRT_ENOMEM;
    l->v[l->n++] = (span){a, b, id};
    return 0;
}

/* Last/first code point of s[0..n), or 0 when empty. */
static uint32_t last_cp(const char *s, size_t n)
{
    if (!n)
        return 0;
    size_t st = n - 1;
    while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80)
        st--;
    uint32_t cp;
    vrt__tok_utf8_decode((const unsigned char *)s + st, n - st, &cp);
    return cp;
}

static uint32_t first_cp(const char *s, size_t n)
{
    uint32_t cp = 0;
    if (n)
        vrt__tok_utf8_decode((const unsigned char *)s, n, &cp);
    return cp;
}

static int is_word_cp(const vrt_tokenizer *t, uint32_t cp, pcre2_match_data *md)
{
    if (!cp)
        return 0;
    vrt_strbuf b = {0};
    if (vrt__tok_put_cp(&b, cp))
        return 0;
    int m = pcre2_match(t->word_re, (PCRE2_SPTR)b.p, b.len, 0, PCRE2_NO_UTF_CHECK, md, NULL);
    vrt__tok_buf_free(&b);
    return m > 0;
}

/* The added tokens' find_matches (added_vocabulary.rs): leftmost-longest
 * matches over s[0..n), filtered by single_word and widened by lstrip /
 * rstrip, with the gaps between them; appended to out. */
static int split_added(const vrt_tokenizer *t, const tk_match *m, int norm, const char *s, size_t n,
                       spans *out)
{
    size_t start_off = 0, pos = 0;
    pcre2_match_data *md = NULL;
    int rc = 0;
    if (t->word_re && !(md = pcre2_match_data_create(1, NULL)))
        return VRT_ENOMEM;
    while (m->n && pos < n) {
        /* Leftmost position where some token matches; longest there. */
        size_t at = 0, mlen = 0;
        const tk_added *hit = NULL;
        for (size_t i = pos; i < n && !hit; i++) {
            unsigned char c = (unsigned char)s[i];
            for (uint32_t k = m->start[c]; k < m->start[c + 1]; k++) {
                const tk_added *a = &t->added[m->idx[k]];
                size_t len;
                const char *p = match_pat(a, norm, &len);
                if (len <= n - i && memcmp(s + i, p, len) == 0) {
                    hit = a;
                    at = i;
                    mlen = len;
                    break;
                }
            }
        }
        if (!hit)
            break;
        size_t a = at, b = at + mlen;
        pos = b; /* the automaton continues after the raw match */
        if (hit->single_word && ((a > 0 && is_word_cp(t, last_cp(s, a), md)) ||
                                 (b < n && is_word_cp(t, first_cp(s + b, n - b), md))))
            continue;
        if (hit->lstrip) {
            size_t ns = a;
            while (ns > 0 && vrt__tok_is_whitespace(last_cp(s, ns))) {
                ns--;
                while (ns > 0 && ((unsigned char)s[ns] & 0xC0) == 0x80)
                    ns--;
            }
            a = ns > start_off ? ns : start_off;
        }
        if (hit->rstrip)
            while (b < n) {
                uint32_t cp;
                int k = vrt__tok_utf8_decode((const unsigned char *)s + b, n - b, &cp);
                if (k <= 0 || !vrt__tok_is_whitespace(cp))
                    break;
                b += (size_t)k;
            }
        if (start_off < a && (rc = spans_push(out, start_off, a, -1)))
            break;
        if ((rc = spans_push(out, a, b, hit->id)))
            break;
        start_off = b;
    }
    if (md)
        pcre2_match_data_free(md);
    if (rc == 0 && start_off < n)
        rc = spans_push(out, start_off, n, -1);
    return rc;
}

/* Pre-tokenizes and BPE-encodes one normalized piece. */
static int encode_piece(const vrt_tokenizer *t, const char *s, size_t n, size_t off,
                        vrt_tokens *out, vrt_err *err)
{
    tk_strs words = {0};
    int rc = vrt__tok_strs_push(&words, s, n, off);
    if (rc == 0 && t->has_pretok)
        rc = vrt__tok_pretok_apply(&t->pretok, &words);
    for (size_t i = 0; rc == 0 && i < words.n; i++)
        rc = vrt__tok_bpe_word(&t->bpe, words.v[i].s, words.v[i].len, out, err);
    vrt__tok_strs_free(&words);
    return rc;
}

/* Byte offsets of tokens (vrt_tokenizer_encode_offsets): [2 * n]. */
typedef struct offs {
    size_t *v;
    size_t n, cap; /* pairs */
} offs;

static int offs_push(offs *o, size_t a, size_t b)
{
    if (vrt_grow(&o->v, &o->cap, o->n + 1, 2 * sizeof *o->v))
        return VRT_ENOMEM;
    o->v[2 * o->n] = a;
    o->v[2 * o->n + 1] = b;
    o->n++;
    return 0;
}

/* The string the decoder turns into a space ("▁" of a Replace or
 * Metaspace decoder), or NULL: such a character typed in the input is a
 * space in the surfaces too. */
static const char *space_alias(const tk_decoder *d, size_t *len)
{
    if (d->type == TK_D_SEQUENCE) {
        for (size_t i = 0; i < d->n_kids; i++) {
            const char *r = space_alias(&d->kids[i], len);
            if (r)
                return r;
        }
        return NULL;
    }
    if (d->type == TK_D_METASPACE && d->content_len) {
        *len = d->content_len;
        return d->content;
    }
    if (d->type == TK_D_REPLACE && !d->pat.is_regex && d->content_len == 1 &&
        d->content[0] == ' ' && d->pat.len) {
        *len = d->pat.len;
        return d->pat.str;
    }
    return NULL;
}

/* 1 when the normalizer replaces " " by something else. */
static int norm_replaces_space(const tk_norm *nm)
{
    for (size_t i = 0; i < nm->n_kids; i++)
        if (norm_replaces_space(&nm->kids[i]))
            return 1;
    return nm->type == TK_N_REPLACE && !nm->pat.is_regex && nm->pat.len == 1 &&
           nm->pat.str[0] == ' ' && !(nm->str_len == 1 && nm->str[0] == ' ');
}

/* What align_segment knows about one segment. */
typedef struct seg_ctx {
    const char *o; /* the segment's original text [0, n) */
    size_t n;
    const char *r; /* space alias in the input, or NULL */
    size_t rl;
    int norm_space; /* the normalizer turns spaces into something else */
} seg_ctx;

/* 1 when s[0..m) matches the text at p (a surface space matches a space
 * or the alias); *end gets where the match ends. */
static int match_at(const seg_ctx *c, size_t p, const char *s, size_t m, size_t *end)
{
    size_t q = p;
    for (size_t i = 0; i < m; i++) {
        if (q < c->n && c->o[q] == s[i]) {
            q++;
        } else if (s[i] == ' ' && c->r && c->rl <= c->n - q && memcmp(c->o + q, c->r, c->rl) == 0) {
            q += c->rl;
        } else {
            return 0;
        }
    }
    *end = q;
    return 1;
}

static size_t char_len_at(const char *s, size_t n)
{
    uint32_t cp;
    int k = n ? vrt__tok_utf8_decode((const unsigned char *)s, n, &cp) : 0;
    return k > 0 ? (size_t)k : (n ? 1 : 0);
}

/* Number of spaces in s[0..n), counting the alias as one. */
static long long count_spaces(const seg_ctx *c, const char *s, size_t n, int alias)
{
    long long k = 0;
    for (size_t i = 0; i < n;) {
        if (alias && c->r && c->rl <= n - i && memcmp(s + i, c->r, c->rl) == 0) {
            k++;
            i += c->rl;
        } else {
            k += s[i++] == ' ';
        }
    }
    return k;
}

/* Where surface s[0..m) stands at p: the literal reading or the one with a
 * prepended space (see align_segment). Returns 1 and sets [*a, *b) and the
 * new position *np, or 0. */
static int place_at(const seg_ctx *c, size_t p, const char *s, size_t m, int want_pre, size_t *a,
                    size_t *b, size_t *np, int *used_pre)
{
    size_t e_lit = 0, e_pre = 0;
    int lit = m > 0 && match_at(c, p, s, m, &e_lit);
    int pre = m > 0 && s[0] == ' ' && match_at(c, p, s + 1, m - 1, &e_pre);
    *used_pre = 0;
    if (pre && (want_pre || !lit)) {
        *used_pre = 1;
        *a = p;
        if (m == 1) { /* a lone prepended space: aligned with the next character */
            *b = p + char_len_at(c->o + p, c->n - p);
            *np = p;
        } else {
            *b = *np = e_pre;
        }
        return 1;
    }
    if (lit) {
        *a = p;
        *b = *np = e_lit;
        return 1;
    }
    return 0;
}

/* The added token with this id, or NULL. */
static const tk_added *added_of(const vrt_tokenizer *t, int32_t id)
{
    if (!t->id_added[id])
        return NULL;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id == id)
            return &t->added[i];
    return NULL;
}

static size_t prev_char(const char *s, size_t i)
{
    while (i > 0 && ((unsigned char)s[--i] & 0xC0) == 0x80)
        ;
    return i;
}

/* 1 when the character after (dir > 0) or before position i is whitespace
 * that a normalized added token's lstrip / rstrip took: whitespace of the
 * normalized text, so not a space when the normalizer turned spaces into
 * the alias. */
static int is_strip_ws(const seg_ctx *c, size_t i, int dir)
{
    size_t at = dir > 0 ? i : prev_char(c->o, i);
    uint32_t cp;
    int k = vrt__tok_utf8_decode((const unsigned char *)c->o + at, c->n - at, &cp);
    return k > 0 && vrt__tok_is_whitespace(cp) && !(cp == ' ' && c->norm_space);
}

/* How far (bytes) a token's text is looked for past where the previous one
 * ended, when a pre-tokenizer dropped what lies between (Split "Removed",
 * Whitespace). */
#define ALIGN_LOOKAHEAD 256

/* Places the ids[0..k) that encode one raw segment o[0..n) (the text
 * between two raw added tokens) in it, as the tokenizers crate's
 * alignments do. Each token stands for its surface (vrt__tok_token_surface);
 * the normalizer and pre-tokenizer only insert a prepended space (Prepend,
 * Metaspace, ByteLevel add_prefix_space), turn spaces into "▁" and back, or
 * drop text (Strip, Whitespace, Split "Removed"). So the surfaces are
 * matched against the segment in order: a surface with one space more than
 * the text it matches carries a prepended space, which the crate aligns
 * with the segment's next character (a lone prepended "▁" covers that
 * character without consuming it; "▁H" covers "H"). The first token takes
 * the prepended reading when the surfaces have spaces to spare, the others
 * only when the literal one fails. Text that matches no surface is skipped
 * (up to ALIGN_LOOKAHEAD bytes); the unknown token covers the characters up
 * to where the next token matches (one, unless the model fuses unknowns).
 * Spans are then widened to whole characters, as the crate's are: the byte
 * pieces of one character all cover it. A token found nowhere gets an empty
 * span where the text stood. Offsets are base + the segment position. */
static int align_segment(const vrt_tokenizer *t, const char *o, size_t n, size_t base,
                         const int32_t *ids, size_t k, offs *out)
{
    seg_ctx c = {.o = o, .n = n};
    if (t->has_decoder)
        c.r = space_alias(&t->decoder, &c.rl);
    c.norm_space = t->has_norm && norm_replaces_space(&t->norm);
    vrt_strbuf *sf = calloc(k ? k : 1, sizeof(*sf));
    if (!sf)
        return VRT_ENOMEM;
    int rc = 0;
    long long extra = -count_spaces(&c, o, n, 1); /* spaces that were prepended */
    for (size_t i = 0; rc == 0 && i < k; i++) {
        rc = vrt__tok_token_surface(t, ids[i], &sf[i]);
        extra += count_spaces(&c, sf[i].p ? sf[i].p : "", sf[i].len, 0);
    }
    size_t p = 0;
    for (size_t i = 0; rc == 0 && i < k; i++) {
        const char *s = sf[i].p ? sf[i].p : "";
        size_t m = sf[i].len, a = p, b = p, np = p;
        int ok = 0, used_pre = 0;
        if (ids[i] == t->bpe.unk_id && !t->id_added[ids[i]] && p < n) {
            a = p;
            b = p + char_len_at(o + p, n - p);
            while (t->bpe.fuse_unk && b < n) {
                size_t x, y, z;
                int u;
                if (i + 1 < k && place_at(&c, b, sf[i + 1].p ? sf[i + 1].p : "", sf[i + 1].len, 0,
                                          &x, &y, &z, &u))
                    break;
                b += char_len_at(o + b, n - b);
            }
            np = b;
            ok = 1;
        }
        for (size_t q = p; !ok && q <= n && q - p <= ALIGN_LOOKAHEAD;) {
            ok = place_at(&c, q, s, m, i == 0 && q == 0 && extra > 0, &a, &b, &np, &used_pre);
            if (!ok)
                q += q < n ? char_len_at(o + q, n - q) : 1;
        }
        const tk_added *ad = ok ? added_of(t, ids[i]) : NULL;
        if (ad && ad->lstrip) /* the whitespace it strips is part of its span */
            while (a > p && is_strip_ws(&c, a, -1))
                a = prev_char(o, a);
        if (ad && ad->rstrip)
            while (np < n && is_strip_ws(&c, np, 1))
                b = np = np + char_len_at(o + np, n - np);
        if (ok) {
            extra -= used_pre;
            p = np;
        } else {
            a = b = p;
        }
        while (a > 0 && a < n && ((unsigned char)o[a] & 0xC0) == 0x80)
            a--;
        while (b > a && b < n && ((unsigned char)o[b] & 0xC0) == 0x80)
            b++;
        rc = offs_push(out, base + a, base + b);
    }
    for (size_t i = 0; i < k; i++)
        vrt__tok_buf_free(&sf[i]);
    free(sf);
    return rc;
}

/* Encodes valid UTF-8 s[0..n) without the post-processor; with o, also
 * the byte span in s of each id (offsets). */
static int encode_text(const vrt_tokenizer *t, const char *s, size_t n, vrt_tokens *out, offs *o,
                       vrt_err *err)
{
    spans seg = {0}, sub = {0};
    vrt_strbuf nb = {0};
    int rc = split_added(t, &t->match_raw, 0, s, n, &seg);
    for (size_t i = 0; rc == 0 && i < seg.n; i++) {
        span g = seg.v[i];
        if (g.id >= 0) {
            rc = vrt__tok_push_id(out, g.id);
            if (rc == 0 && o)
                rc = offs_push(o, g.a, g.b);
            continue;
        }
        size_t first = out->n;
        nb.len = 0;
        rc = t->has_norm ? vrt__tok_norm_apply(&t->norm, s + g.a, g.b - g.a, &nb)
                         : vrt__tok_put(&nb, s + g.a, g.b - g.a);
        if (rc)
            break;
        sub.n = 0;
        rc = split_added(t, &t->match_norm, 1, nb.p, nb.len, &sub);
        for (size_t k = 0; rc == 0 && k < sub.n; k++) {
            span h = sub.v[k];
            /* Only "does this piece start the input" matters (Metaspace). */
            size_t off = g.a + h.a;
            rc = h.id >= 0 ? vrt__tok_push_id(out, h.id)
                           : encode_piece(t, nb.p + h.a, h.b - h.a, off, out, err);
        }
        if (rc == 0 && o)
            rc = align_segment(t, s + g.a, g.b - g.a, g.a, out->ids + first, out->n - first, o);
    }
    free(seg.v);
    free(sub.v);
    vrt__tok_buf_free(&nb);
    return rc;
}

/* vrt_tokenizer_encode, with offsets when o is not NULL. */
static int encode_impl(const vrt_tokenizer *t, const char *text, size_t len, int add_special_tokens,
                       vrt_tokens *out, offs *o, vrt_err *err)
{
    vrt_strbuf in = {0};
    size_t n0 = out->n;
    int rc = vrt__tok_utf8_lossy(&in, text ? text : "", text ? len : 0);
    if (add_special_tokens && t->has_tmpl) {
        for (size_t i = 0; rc == 0 && i < t->n_tmpl; i++) {
            const tk_tmpl_item *it = &t->tmpl[i];
            if (it->is_seq)
                rc = encode_text(t, in.p ? in.p : "", in.len, out, o, err);
            /* The post-processor's tokens stand for no text: (0, 0). */
            for (size_t k = 0; rc == 0 && k < it->n_ids; k++) {
                rc = vrt__tok_push_id(out, it->ids[k]);
                if (rc == 0 && o)
                    rc = offs_push(o, 0, 0);
            }
        }
    } else if (rc == 0) {
        rc = encode_text(t, in.p ? in.p : "", in.len, out, o, err);
    }
    vrt__tok_buf_free(&in);
    if (rc) {
        out->n = n0;
        if (rc == VRT_ENOMEM)
            return vrt_err_set(err, rc, "encode: out of memory (%zu bytes of text)", len);
        return vrt_err_set(err, rc,
                           "encode: a pre-tokenizer regex of %s/tokenizer.json failed on "
                           "this %zu-byte text (PCRE2 match limit)",
                           t->dir, len);
    }
    return 0;
}

int vrt_tokenizer_encode(const vrt_tokenizer *t, const char *text, size_t len,
                         int add_special_tokens, vrt_tokens *out, vrt_err *err)
{
    return encode_impl(t, text, len, add_special_tokens, out, NULL, err);
}

int vrt_tokenizer_encode_offsets(const vrt_tokenizer *t, const char *text, size_t len,
                                 int add_special_tokens, vrt_tokens *out, size_t **offsets,
                                 vrt_err *err)
{
    offs o = {0};
    size_t n0 = out->n;
    *offsets = NULL;
    int rc = encode_impl(t, text, len, add_special_tokens, out, &o, err);
    if (rc == 0 && o.n != out->n - n0) /* cannot happen: one span per id */
        rc = vrt_err_set(err, VRT_EINTERNAL, "encode: %zu offsets for %zu ids", o.n, out->n - n0);
    if (rc == 0 && !o.v && !(o.v = malloc(2 * sizeof(size_t))))
        rc = vrt_err_set(err, VRT_ENOMEM, "encode: out of memory");
    if (rc) {
        out->n = n0;
        free(o.v);
        return rc;
    }
    *offsets = o.v;
    return 0;
}
