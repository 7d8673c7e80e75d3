/* tokenizer.h — Hugging Face tokenizer.json (BPE) encode/decode and an
 * incremental detokenizer for streaming.
 *
 * vrt_tokenizer_load() reads <dir>/tokenizer.json and, when present,
 * <dir>/tokenizer_config.json (BOS/EOS, add_bos_token/add_eos_token,
 * chat_template) and <dir>/chat_template.jinja. Two families are supported:
 * byte-level BPE (GPT-2, Phi-2, Llama-3) and SentencePiece-converted BPE
 * with byte fallback (Llama-2, Mistral, TinyLlama); see docs/formats.md §5-6.
 * A loaded tokenizer is immutable: encode/decode may run on many threads.
 *
 * Invalid UTF-8 input: encode replaces every maximal invalid subsequence
 * with U+FFFD (the policy of Python's bytes.decode("utf-8", "replace") and
 * Rust's String::from_utf8_lossy) before anything else, and then encodes
 * the repaired text exactly as the `tokenizers` package would.
 */
#ifndef VRT_TOKENIZER_H
#define VRT_TOKENIZER_H

#include "vrt.h"

#include <stddef.h>
#include <stdint.h>

typedef struct vrt_tokenizer vrt_tokenizer;

/* A growable list of token ids; zero-initialize, free with vrt_tokens_free. */
typedef struct vrt_tokens {
    int32_t *ids; /* [n], capacity cap */
    size_t n, cap;
} vrt_tokens;

void vrt_tokens_free(vrt_tokens *toks);

/* Loads <dir>/tokenizer.json (+ tokenizer_config.json). On error *out is
 * NULL and err names the file, the key and the unsupported/bad value. */
int vrt_tokenizer_load(vrt_tokenizer **out, const char *dir, vrt_err *err);
void vrt_tokenizer_free(vrt_tokenizer *t);

/* Appends the ids of text[0..len) to out (out->n is not reset). With
 * add_special_tokens the post-processor runs (BOS/EOS as configured). */
int vrt_tokenizer_encode(const vrt_tokenizer *t, const char *text, size_t len,
                         int add_special_tokens, vrt_tokens *out, vrt_err *err);

/* vrt_tokenizer_encode, plus where each appended id came from:
 * (*offsets)[2i], (*offsets)[2i+1] are the byte offsets [start, stop) in
 * text of the i-th appended id (malloc'd, free with free()), as the
 * tokenizers crate's Encoding offsets (what TGI's /tokenize returns):
 * spans cover whole characters (the byte pieces of one character all cover
 * it), a space the tokenizer prepended is aligned with the character after
 * it ("▁Hello" at the start of "Hello" is [0, 5)), and the post-processor's
 * tokens (BOS/EOS) are [0, 0). For invalid UTF-8 the offsets are those in
 * the repaired text (see above). */
int vrt_tokenizer_encode_offsets(const vrt_tokenizer *t, const char *text, size_t len,
                                 int add_special_tokens, vrt_tokens *out, size_t **offsets,
                                 vrt_err *err);

/* Decodes ids into a malloc'd, NUL-terminated UTF-8 string (*text, *len,
 * free with free()). An id outside the vocabulary is VRT_ERANGE. */
int vrt_tokenizer_decode(const vrt_tokenizer *t, const int32_t *ids, size_t n,
                         int skip_special_tokens, char **text, size_t *len, vrt_err *err);

/* Number of ids (model vocab plus added tokens: highest id + 1). */
size_t vrt_tokenizer_vocab_size(const vrt_tokenizer *t);
/* The token string of id as stored in tokenizer.json ("Ġthe", "▁the",
 * "<0x0A>", "<s>"), or NULL when id is out of range. */
const char *vrt_tokenizer_piece(const vrt_tokenizer *t, int32_t id);
/* The id of a token string (added tokens first), or -1. */
int32_t vrt_tokenizer_find(const vrt_tokenizer *t, const char *piece);
/* 1 when id is an added token marked special, else 0. */
int vrt_tokenizer_is_special(const vrt_tokenizer *t, int32_t id);
/* BOS/EOS ids from tokenizer_config.json (BOS falls back to the first
 * special token of the post-processor template), or -1. */
int32_t vrt_tokenizer_bos_id(const vrt_tokenizer *t);
int32_t vrt_tokenizer_eos_id(const vrt_tokenizer *t);
/* The Jinja chat template (tokenizer_config.json "chat_template", the
 * "default" one of a named list, or chat_template.jinja), or NULL. */
const char *vrt_tokenizer_chat_template(const vrt_tokenizer *t);

/* Incremental detokenizer. Each push returns the text that became final
 * with this token (possibly empty); the pieces of all pushes plus flush
 * concatenate to vrt_tokenizer_decode() of the same ids, and no piece ends
 * inside a UTF-8 sequence. Work per push is bounded by a small window of
 * recent ids, not by the sequence length. Caller-owned: init, push...,
 * flush, free. */
typedef struct vrt_detok {
    const vrt_tokenizer *t;
    int skip_special_tokens;
    int32_t *ids; /* [n] window; ids[0] starts the decoded prefix */
    size_t n, cap;
    size_t read;  /* ids[0..read) are already emitted */
    char *prefix; /* decode(ids[0..read)), prefix_len bytes */
    size_t prefix_len;
} vrt_detok;

void vrt_detok_init(vrt_detok *d, const vrt_tokenizer *t, int skip_special_tokens);
/* Makes the text continue ctx (the prompt): the first generated token is
 * decoded after ctx's last token, as a full decode of prompt + output would
 * (so "▁unto" after "said" keeps its space, like TGI's and vLLM's streamed
 * text). Call right after init; a special or byte-piece last token is not
 * used as context. */
int vrt_detok_prime(vrt_detok *d, const int32_t *ctx, size_t n, vrt_err *err);

/* Whether the tokenizer has a token for id (a model's vocabulary may be
 * larger than its tokenizer's: padded embedding rows have no text). */
int vrt_detok_knows(const vrt_detok *d, int32_t id);

/* *piece is malloc'd and NUL-terminated (free with free()), *len its
 * length; an out-of-range id is VRT_ERANGE and leaves d unchanged. */
int vrt_detok_push(vrt_detok *d, int32_t id, char **piece, size_t *len, vrt_err *err);
/* Emits whatever is still held back and resets the window (d can be
 * reused for a new sequence). */
int vrt_detok_flush(vrt_detok *d, char **piece, size_t *len, vrt_err *err);
void vrt_detok_free(vrt_detok *d);

#endif
