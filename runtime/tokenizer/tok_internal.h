/* tok_internal.h — the tokenizer's internal data structures, shared by the
 * files of runtime/tokenizer/ and nothing else.
 *
 * tok_util.c   hash maps, byte buffers, string lists, UTF-8 and the GPT-2
 *              byte<->unicode table
 * bpe.c        the BPE model (vocab, merge ranks, word -> ids)
 * pretok.c     normalizers and pre-tokenizers (tokenizer.json components)
 * decoder.c    decoders and vrt_tokenizer_decode
 * detok.c      the incremental detokenizer
 * tokenizer.c  loading, added tokens, post-processor, encode, accessors
 */
#ifndef VRT_TOK_INTERNAL_H
#define VRT_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cJSON.h>
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/util.h"
#include "tokenizer/tokenizer.h"

/* ---- byte buffer ---------------------------------------------------- */

/* The tokenizer builds text in the project's vrt_strbuf (core/util.h).
 * These append to it and return 0 or VRT_ENOMEM, so that every step can
 * stop at the first failure; after any of them b->p is non-NULL and
 * NUL-terminated (also for n == 0). */
int vrt__tok_put(vrt_strbuf *b, const void *s, size_t n);
int vrt__tok_putc(vrt_strbuf *b, char c);
/* Appends the UTF-8 encoding of code point cp. */
int vrt__tok_put_cp(vrt_strbuf *b, uint32_t cp);
/* Frees b->p and empties b (oom cleared). */
void vrt__tok_buf_free(vrt_strbuf *b);

/* Appends id to out: 0 or VRT_ENOMEM. */
int vrt__tok_push_id(vrt_tokens *out, int32_t id);

/* ---- list of owned strings (pieces, words, decoder tokens) ------------ */

typedef struct tk_str {
    char *s; /* [len] owned bytes, NUL-terminated */
    size_t len;
    size_t off; /* byte offset of the piece in its segment's original text
                 * (only "is it 0" matters: Metaspace prepend_scheme first) */
} tk_str;

typedef struct tk_strs {
    tk_str *v; /* [n] */
    size_t n, cap;
} tk_strs;

int vrt__tok_strs_push(tk_strs *l, const char *s, size_t len, size_t off);
/* Takes ownership of s (malloc'd, NUL-terminated). */
int vrt__tok_strs_push_owned(tk_strs *l, char *s, size_t len, size_t off);
void vrt__tok_strs_free(tk_strs *l);

/* ---- string -> int32 hash map (open addressing) ------------------------ */

typedef struct tk_strmap {
    const char **keys; /* [cap] borrowed, NULL = empty slot */
    uint32_t *klen;    /* [cap] */
    int32_t *vals;     /* [cap] */
    size_t cap, n;
} tk_strmap;

int vrt__tok_strmap_put(tk_strmap *m, const char *k, size_t len, int32_t v);
/* -1 when absent. */
int32_t vrt__tok_strmap_get(const tk_strmap *m, const char *k, size_t len);
void vrt__tok_strmap_free(tk_strmap *m);

/* ---- (id, id) -> (rank, merged id) hash map -------------------------- */

typedef struct tk_pairmap {
    uint64_t *keys; /* [cap] (left << 32 | right), UINT64_MAX = empty */
    int32_t *rank;  /* [cap] */
    int32_t *out;   /* [cap] id of the merged token */
    size_t cap, n;
} tk_pairmap;

int vrt__tok_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t out);
/* 0 and fills rank/out when present, -1 when absent. */
int vrt__tok_pairmap_get(const tk_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *out);
void vrt__tok_pairmap_free(tk_pairmap *m);

/* ---- UTF-8 ----------------------------------------------------------- */

/* Decodes one code point at s[0..n). Returns its length (> 0) when valid;
 * when invalid returns minus the length of the maximal invalid subpart
 * (what one U+FFFD replaces) and sets *cp = 0xFFFD. n must be > 0. */
int vrt__tok_utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
/* Appends s[0..n) to b with invalid subparts replaced by U+FFFD. */
int vrt__tok_utf8_lossy(vrt_strbuf *b, const char *s, size_t n);
int vrt__tok_is_whitespace(uint32_t cp); /* Unicode White_Space (Rust is_whitespace) */

/* GPT-2 byte <-> unicode table. */
extern const uint16_t vrt__tok_byte_to_cp[256];
/* Byte for code point cp (< 0x144), or -1. */
int vrt__tok_cp_to_byte(uint32_t cp);

/* ---- patterns (Split, Replace) ------------------------------------- */

typedef struct tk_pattern {
    int is_regex;
    char *str; /* [len] literal, or the regex source */
    size_t len;
    pcre2_code *re;
} tk_pattern;

/* Parses {"String": s} | {"Regex": r}; `where` names the JSON key. */
int vrt__tok_pattern_parse(tk_pattern *p, const cJSON *j, const char *where, vrt_err *err);
int vrt__tok_regex_compile(tk_pattern *p, const char *src, const char *where, vrt_err *err);
void vrt__tok_pattern_free(tk_pattern *p);
/* Finds the non-overlapping matches in s[0..n) in order, as [start, end)
 * pairs appended to *spans (2 entries each). */
int vrt__tok_pattern_find(const tk_pattern *p, const char *s, size_t n, size_t **spans,
                          size_t *n_spans, size_t *cap);
/* Replaces every match of p in s by content (literally) into out. */
int vrt__tok_pattern_replace(const tk_pattern *p, const char *s, size_t n, const char *content,
                             size_t clen, vrt_strbuf *out);

/* ---- normalizers and pre-tokenizers (pretok.c) ---------------------- */

enum {
    TK_N_SEQUENCE = 1,
    TK_N_PREPEND,
    TK_N_REPLACE,
    TK_N_STRIP,
};

typedef struct tk_norm {
    int type;
    struct tk_norm *kids; /* [n_kids] for Sequence */
    size_t n_kids;
    char *str; /* Prepend's string / Replace's content */
    size_t str_len;
    tk_pattern pat; /* Replace */
    int strip_left, strip_right;
} tk_norm;

enum {
    TK_P_SEQUENCE = 1,
    TK_P_BYTELEVEL,
    TK_P_SPLIT,
    TK_P_METASPACE,
    TK_P_DIGITS,
    TK_P_WHITESPACE,
    TK_P_WHITESPACESPLIT,
    TK_P_PUNCTUATION,
};
enum {
    TK_B_REMOVED = 0,
    TK_B_ISOLATED,
    TK_B_MERGED_PREV,
    TK_B_MERGED_NEXT,
    TK_B_CONTIGUOUS,
};
enum { TK_PREPEND_ALWAYS = 0, TK_PREPEND_FIRST, TK_PREPEND_NEVER };

typedef struct tk_pretok {
    int type;
    struct tk_pretok *kids; /* [n_kids] for Sequence */
    size_t n_kids;
    tk_pattern pat; /* Split / Digits / Whitespace / ByteLevel regex */
    int behavior, invert;
    int add_prefix_space, use_regex; /* ByteLevel */
    char repl[8];                    /* Metaspace replacement (UTF-8) */
    size_t repl_len;
    int prepend_scheme, split; /* Metaspace */
} tk_pretok;

int vrt__tok_norm_parse(tk_norm *n, const cJSON *j, const char *where, vrt_err *err);
void vrt__tok_norm_free(tk_norm *n);
/* Normalizes s[0..len) into out (cleared first). */
int vrt__tok_norm_apply(const tk_norm *n, const char *s, size_t len, vrt_strbuf *out);

int vrt__tok_pretok_parse(tk_pretok *p, const cJSON *j, const char *where, vrt_err *err);
void vrt__tok_pretok_free(tk_pretok *p);
/* Splits/transforms the words of l in place. */
int vrt__tok_pretok_apply(const tk_pretok *p, tk_strs *l);

/* ---- BPE model (bpe.c) --------------------------------------------- */

typedef struct tk_bpe {
    tk_strmap vocab; /* token string -> id */
    char **pieces;   /* [n_pieces] id -> token string (NULL = hole) */
    size_t n_pieces;
    tk_pairmap merges; /* (left id, right id) -> (rank, merged id) */
    int32_t unk_id;    /* -1 when none */
    int fuse_unk, byte_fallback, ignore_merges;
    int32_t byte_ids[256]; /* id of "<0xHH>", -1 when absent */
} tk_bpe;

int vrt__tok_bpe_parse(tk_bpe *m, const cJSON *j, const char *file, vrt_err *err);
void vrt__tok_bpe_free(tk_bpe *m);
/* Appends the ids of one pre-tokenized word. */
int vrt__tok_bpe_word(const tk_bpe *m, const char *w, size_t len, vrt_tokens *out, vrt_err *err);

/* ---- decoders (decoder.c) ------------------------------------------ */

enum {
    TK_D_SEQUENCE = 1,
    TK_D_BYTELEVEL,
    TK_D_REPLACE,
    TK_D_BYTEFALLBACK,
    TK_D_FUSE,
    TK_D_STRIP,
    TK_D_METASPACE,
};

typedef struct tk_decoder {
    int type;
    struct tk_decoder *kids; /* [n_kids] for Sequence */
    size_t n_kids;
    tk_pattern pat; /* Replace */
    char *content;  /* Replace content / Strip char / Metaspace replacement */
    size_t content_len;
    int start, stop;    /* Strip */
    int prepend_scheme; /* Metaspace */
} tk_decoder;

int vrt__tok_decoder_parse(tk_decoder *d, const cJSON *j, const char *where, vrt_err *err);
void vrt__tok_decoder_free(tk_decoder *d);
/* 1 when the chain contains ByteFallback. */
int vrt__tok_decoder_has_bytefallback(const tk_decoder *d);
/* The text id stands for in the input, as raw bytes (into out, cleared
 * first): the decoder chain applied to this token alone, without what
 * depends on its place in a sequence (Fuse, Strip, Metaspace's dropped
 * first space) and without UTF-8 repair, so a <0xHH> or byte-level piece of
 * a character stays a raw partial byte sequence ("▁the" -> " the", "Ġthe"
 * -> " the", "<0xE2>" -> the byte E2). Without a decoder: the piece. */
int vrt__tok_token_surface(const vrt_tokenizer *t, int32_t id, vrt_strbuf *out);

/* ---- the tokenizer -------------------------------------------------- */

typedef struct tk_added {
    char *content; /* as in the file */
    size_t len;
    char *norm; /* content after the normalizer (normalized tokens) */
    size_t norm_len;
    int32_t id;
    int special, single_word, lstrip, rstrip, normalized;
} tk_added;

/* One entry of the post-processor template: ids, or the sequence. */
typedef struct tk_tmpl_item {
    int is_seq;
    int32_t *ids; /* [n_ids] */
    size_t n_ids;
} tk_tmpl_item;

/* Added tokens of one kind (raw or normalized) indexed for leftmost-longest
 * matching: idx[start[b]..start[b+1]) are the tokens whose pattern begins
 * with byte b, longest first. */
typedef struct tk_match {
    uint32_t *idx; /* [n] indexes into vrt_tokenizer.added */
    size_t n;
    uint32_t start[257];
} tk_match;

struct vrt_tokenizer {
    char *dir;
    tk_bpe bpe;
    tk_added *added; /* [n_added] */
    size_t n_added;
    char **id_added;           /* [n_ids] content of the added token with that id */
    unsigned char *id_special; /* [n_ids] */
    /* What decode sees for an added token: tokenizers' id_to_token gives
     * the normalized form of a normalized token ("▁qz" for "qz" under
     * Prepend), and decode(skip_special_tokens) drops an id only when that
     * string is the content of a special token. */
    const char **id_dec;    /* [n_ids] NULL when not an added token */
    unsigned char *id_skip; /* [n_ids] */
    size_t n_ids;           /* highest id + 1 */
    tk_strmap added_map;    /* content -> id */
    int has_norm, has_pretok, has_decoder;
    tk_norm norm;
    tk_pretok pretok;
    tk_decoder decoder;
    tk_tmpl_item *tmpl; /* [n_tmpl]; NULL = no post-processor */
    size_t n_tmpl;
    int has_tmpl;
    tk_match match_raw;  /* normalized: false, matched in the input */
    tk_match match_norm; /* normalized: true, matched after the normalizer */
    pcre2_code *word_re; /* "\w" for single_word added tokens, or NULL */
    int32_t bos_id, eos_id;
    char *chat_template;
};

/* id -> token string (added tokens first), NULL when out of range. */
const char *vrt__tok_piece(const vrt_tokenizer *t, int32_t id);
/* The string decode uses for id (see id_dec), NULL when out of range. */
const char *vrt__tok_dec_piece(const vrt_tokenizer *t, int32_t id);

#endif
