/* bpe.c — the BPE model of tokenizer.json (model.type "BPE").
 *
 * Loading builds a hash map token -> id and a hash map (left id, right id)
 * -> (rank, merged id) from "merges" (either "a b" strings or ["a", "b"]
 * pairs; rank = index). Encoding one pre-tokenized word follows the
 * tokenizers crate: optional ignore_merges whole-word lookup, split into
 * characters (unknown ones through <0xHH> byte fallback or the unk token,
 * fused when fuse_unk), then repeatedly merge the adjacent pair of lowest
 * rank (leftmost on ties) using a binary heap over a linked list of
 * symbols: O(n log n) per word.
 */
#include "tokenizer/tok_internal.h"

#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cJSON *obj_get(const cJSON *j, const char *k)
{
    return cJSON_GetObjectItemCaseSensitive(j, k);
}

static int opt_bool(const cJSON *j, const char *k, int dflt)
{
    const cJSON *v = obj_get(j, k);
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v);
    return dflt;
}

int vrt__tok_bpe_parse(tk_bpe *m, const cJSON *j, const char *file, vrt_err *err)
{
    memset(m, 0, sizeof(*m));
    m->unk_id = -1;
    for (int b = 0; b < 256; b++)
        m->byte_ids[b] = -1;
    const cJSON *vocab = obj_get(j, "vocab");
    const cJSON *merges = obj_get(j, "merges");
    if (!cJSON_IsObject(vocab))
        return vrt_err_set(err, VRT_EFORMAT, "%s: model.vocab is missing or not an object", file);
    const cJSON *dropout = obj_get(j, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        VRT_WARN("%s: model.dropout %g is ignored (inference encodes "
                 "deterministically)",
                 file, dropout->valuedouble);
    for (const char *k = "continuing_subword_prefix"; k;
         k = strcmp(k, "end_of_word_suffix") ? "end_of_word_suffix" : NULL) {
        const cJSON *v = obj_get(j, k);
        if (cJSON_IsString(v) && v->valuestring[0])
            return vrt_err_set(err, VRT_EUNSUPPORTED,
                               "%s: model.%s \"%s\" is not supported (only "
                               "null, as in GPT-2/Llama/Mistral files)",
                               file, k, v->valuestring);
    }
    m->fuse_unk = opt_bool(j, "fuse_unk", 0);
    m->byte_fallback = opt_bool(j, "byte_fallback", 0);
    m->ignore_merges = opt_bool(j, "ignore_merges", 0);

    /* id -> piece table: ids are not guaranteed dense, size by max id. */
    size_t max_id = 0, count = 0;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 16777216.0 ||
            e->valuedouble != (double)e->valueint || !e->string)
            return vrt_err_set(err, VRT_EFORMAT,
                               "%s: model.vocab[\"%s\"] is not an id in "
                               "[0, 2^24]",
                               file, e->string ? e->string : "?");
        if ((size_t)e->valueint > max_id)
            max_id = (size_t)e->valueint;
        count++;
    }
    m->n_pieces = count ? max_id + 1 : 0;
    m->pieces = calloc(m->n_pieces ? m->n_pieces : 1, sizeof(*m->pieces));
    if (!m->pieces)
        return VRT_ENOMEM;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        size_t id = (size_t)e->valueint;
        if (m->pieces[id]) {
            int rc = vrt_err_set(err, VRT_EFORMAT,
                                 "%s: model.vocab: id %zu is used by both \"%s\" "
                                 "and \"%s\"",
                                 file, id, m->pieces[id], e->string);
            /* Nothing is owned yet: vrt__tok_bpe_free must not free JSON strings. */
            memset(m->pieces, 0, m->n_pieces * sizeof(*m->pieces));
            return rc;
        }
        m->pieces[id] = e->string; /* borrowed from the JSON tree for now */
    }
    /* Own the strings (the JSON tree is freed after loading). */
    for (size_t id = 0; id < m->n_pieces; id++) {
        if (!m->pieces[id])
            continue;
        char *c = strdup(m->pieces[id]);
        if (!c) {
            for (size_t k = 0; k < id; k++)
                m->pieces[k] = NULL; /* already owned: freed by bpe_free */
            return VRT_ENOMEM;
        }
        m->pieces[id] = c;
        if (vrt__tok_strmap_put(&m->vocab, c, strlen(c), (int32_t)id))
            return VRT_ENOMEM;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof(name), "<0x%02X>", b);
        m->byte_ids[b] = vrt__tok_strmap_get(&m->vocab, name, 6);
    }
    const cJSON *unk = obj_get(j, "unk_token");
    if (cJSON_IsString(unk)) {
        m->unk_id = vrt__tok_strmap_get(&m->vocab, unk->valuestring, strlen(unk->valuestring));
        if (m->unk_id < 0)
            return vrt_err_set(err, VRT_EFORMAT,
                               "%s: model.unk_token \"%s\" is not in "
                               "model.vocab",
                               file, unk->valuestring);
    }

    if (merges && !cJSON_IsArray(merges) && !cJSON_IsNull(merges))
        return vrt_err_set(err, VRT_EFORMAT, "%s: model.merges must be a list", file);
    int32_t rank = 0;
    vrt_strbuf cat = {0};
    int rc = 0;
    for (const cJSON *e = merges ? merges->child : NULL; e; e = e->next) {
        const char *a, *b;
        size_t la, lb;
        if (cJSON_IsString(e)) {
            const char *s = e->valuestring;
            if (rank == 0 && strncmp(s, "#version", 8) == 0)
                continue;
            const char *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                rc = vrt_err_set(err, VRT_EFORMAT,
                                 "%s: model.merges[%d] \"%s\" is not \"left "
                                 "right\" (one space)",
                                 file, (int)rank, s);
                break;
            }
            a = s;
            la = (size_t)(sp - s);
            b = sp + 1;
            lb = strlen(b);
        } else if (cJSON_GetArraySize(e) == 2 && cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            a = cJSON_GetArrayItem(e, 0)->valuestring;
            b = cJSON_GetArrayItem(e, 1)->valuestring;
            la = strlen(a);
            lb = strlen(b);
        } else {
            rc = vrt_err_set(err, VRT_EFORMAT,
                             "%s: model.merges[%d] is neither \"left right\" "
                             "nor [\"left\", \"right\"]",
                             file, (int)rank);
            break;
        }
        int32_t ia = vrt__tok_strmap_get(&m->vocab, a, la);
        int32_t ib = vrt__tok_strmap_get(&m->vocab, b, lb);
        cat.len = 0;
        if (vrt__tok_put(&cat, a, la) || vrt__tok_put(&cat, b, lb)) {
            rc = VRT_ENOMEM;
            break;
        }
        int32_t io = vrt__tok_strmap_get(&m->vocab, cat.p, cat.len);
        if (ia < 0 || ib < 0 || io < 0) {
            rc = vrt_err_set(err, VRT_EFORMAT,
                             "%s: model.merges[%d] (\"%.*s\", \"%.*s\"): "
                             "\"%s\" is not in model.vocab",
                             file, (int)rank, (int)la, a, (int)lb, b,
                             ia < 0   ? "left"
                             : ib < 0 ? "right"
                                      : cat.p);
            break;
        }
        if (vrt__tok_pairmap_put(&m->merges, ia, ib, rank, io)) {
            rc = VRT_ENOMEM;
            break;
        }
        rank++;
    }
    vrt__tok_buf_free(&cat);
    return rc;
}

void vrt__tok_bpe_free(tk_bpe *m)
{
    if (m->pieces)
        for (size_t i = 0; i < m->n_pieces; i++)
            free(m->pieces[i]);
    free(m->pieces);
    vrt__tok_strmap_free(&m->vocab);
    vrt__tok_pairmap_free(&m->merges);
    memset(m, 0, sizeof(*m));
}

/* ---- word encoding ---------------------------------------------------- */

typedef struct sym {
    int32_t id;
    int prev, next; /* -1 at the ends */
    int alive;
} sym;

typedef struct cand {
    int32_t rank, pos, out;
} cand;

static int cand_less(const cand *a, const cand *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(cand *h, size_t *n, cand c)
{
    size_t i = (*n)++;
    h[i] = c;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&h[i], &h[p]))
            break;
        cand t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

static cand heap_pop(cand *h, size_t *n)
{
    cand top = h[0];
    h[0] = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < *n && cand_less(&h[l], &h[m]))
            m = l;
        if (r < *n && cand_less(&h[r], &h[m]))
            m = r;
        if (m == i)
            break;
        cand t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
    return top;
}

int vrt__tok_bpe_word(const tk_bpe *m, const char *w, size_t len, vrt_tokens *out, vrt_err *err)
{
    if (len == 0)
        return 0;
    if (m->ignore_merges) {
        int32_t id = vrt__tok_strmap_get(&m->vocab, w, len);
        if (id >= 0)
            return vrt__tok_push_id(out, id);
    }
    /* At most one symbol per byte. */
    sym *s = malloc(len * sizeof(*s));
    cand *heap = NULL;
    if (!s)
        return VRT_ENOMEM;
    int ns = 0, unk_pending = 0;
    const unsigned char *u = (const unsigned char *)w;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = vrt__tok_utf8_decode(u + i, len - i, &cp);
        size_t cl = k > 0 ? (size_t)k : (size_t)-k; /* input is valid UTF-8 */
        int32_t id = vrt__tok_strmap_get(&m->vocab, w + i, cl);
        if (id >= 0) {
            if (unk_pending) {
                s[ns++] = (sym){m->unk_id, 0, 0, 1};
                unk_pending = 0;
            }
            s[ns++] = (sym){id, 0, 0, 1};
        } else {
            int all = m->byte_fallback;
            for (size_t b = 0; all && b < cl; b++)
                all = m->byte_ids[u[i + b]] >= 0;
            if (all) {
                for (size_t b = 0; b < cl; b++)
                    s[ns++] = (sym){m->byte_ids[u[i + b]], 0, 0, 1};
            } else if (m->unk_id >= 0) {
                if (unk_pending && !m->fuse_unk)
                    s[ns++] = (sym){m->unk_id, 0, 0, 1};
                unk_pending = 1;
            }
            /* no unk token: the character is dropped (as tokenizers does) */
        }
        i += cl;
    }
    if (unk_pending)
        s[ns++] = (sym){m->unk_id, 0, 0, 1};
    for (int i = 0; i < ns; i++) {
        s[i].prev = i - 1;
        s[i].next = i + 1 < ns ? i + 1 : -1;
    }
    /* Each merge adds at most 2 candidates; ns - 1 initial ones. */
    size_t hcap = (size_t)ns * 3 + 1, hn = 0;
    heap = malloc(hcap * sizeof(*heap));
    if (!heap) {
        free(s);
        return VRT_ENOMEM;
    }
    for (int i = 0; i + 1 < ns; i++) {
        cand c = {0, i, 0};
        if (vrt__tok_pairmap_get(&m->merges, s[i].id, s[i + 1].id, &c.rank, &c.out) == 0)
            heap_push(heap, &hn, c);
    }
    while (hn > 0) {
        cand c = heap_pop(heap, &hn);
        sym *a = &s[c.pos];
        if (!a->alive || a->next < 0)
            continue;
        sym *b = &s[a->next];
        int32_t rank, o;
        if (vrt__tok_pairmap_get(&m->merges, a->id, b->id, &rank, &o) != 0 || o != c.out ||
            rank != c.rank)
            continue; /* stale candidate */
        a->id = o;
        b->alive = 0;
        a->next = b->next;
        if (b->next >= 0)
            s[b->next].prev = c.pos;
        if (a->prev >= 0) {
            cand p = {0, a->prev, 0};
            if (vrt__tok_pairmap_get(&m->merges, s[a->prev].id, a->id, &p.rank, &p.out) == 0)
                heap_push(heap, &hn, p);
        }
        if (a->next >= 0) {
            cand q = {0, c.pos, 0};
            if (vrt__tok_pairmap_get(&m->merges, a->id, s[a->next].id, &q.rank, &q.out) == 0)
                heap_push(heap, &hn, q);
        }
    }
    int rc = 0;
    for (int i = 0; rc == 0 && i >= 0 && i < ns; i = s[i].next)
        rc = vrt__tok_push_id(out, s[i].id);
    free(heap);
    free(s);
    (void)err;
    return rc;
}
