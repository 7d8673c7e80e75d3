/* chat.h — chat templates: turn a list of chat messages into prompt text.
 *
 * v100rt does not run Jinja. It ships the handful of templates the models of
 * the seed table use, written in C and checked against the Hugging Face
 * tokenizer_config.json templates of the real models (see tests/unit/
 * test_chat.c for the exact strings), and picks one from the model's own
 * chat_template text by looking for its markers.
 *
 * The rendered text already contains the BOS *text* where the model's
 * template puts it ("<s>", "<bos>"); the caller must tokenize it without
 * adding BOS again (transformers does the same: add_special_tokens=False),
 * or the prompt starts with two BOS tokens.
 */
#ifndef VRT_TOKENIZER_CHAT_H
#define VRT_TOKENIZER_CHAT_H

#include "vrt.h"

/* One chat message. role: "system", "user", "assistant" (templates decide
 * what other roles mean); content: UTF-8 text. */
typedef struct vrt_chat_msg {
    const char *role;
    const char *content;
} vrt_chat_msg;

/* Built-in template names, in the order vrt_chat_detect tries them. */
#define VRT_CHAT_LLAMA2 "llama-2"
#define VRT_CHAT_MISTRAL "mistral"
#define VRT_CHAT_CHATML "chatml"
#define VRT_CHAT_GEMMA "gemma"
#define VRT_CHAT_PHI "phi"

/* Renders msgs[0..n) with the named template into *out (malloc'd, NUL
 * terminated; the caller frees it). bos/eos: the tokenizer's BOS/EOS text
 * (NULL is ""). add_generation_prompt: end with the text that opens the
 * assistant's turn where the template has one (chatml, gemma, phi; the
 * [INST] templates end with " [/INST]" anyway).
 *
 *   llama-2   Meta/HF Llama-2-chat: "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s>"
 *             (system folded into the first user turn, contents stripped)
 *   mistral   Mistral-7B-Instruct v0.1/v0.2 and Mixtral: "<s>[INST] U [/INST]A</s>";
 *             no system role in the original template: a leading system
 *             message is prepended to the first user message ("S\n\nU")
 *   chatml    "<|im_start|>role\ncontent<|im_end|>\n", prompt "<|im_start|>assistant\n"
 *   gemma     Gemma 1 -it: "<bos><start_of_turn>user\nU<end_of_turn>\n"; "assistant"
 *             is "model"; contents trimmed; system prepended to the first user
 *             message ("S\n\nU") where the HF template raises
 *   phi       phi-2 (no official template; its model card's QA format):
 *             "Instruct: U\nOutput: A\n...", prompt "Output:"; system
 *             prepended to the first user message
 *
 * Errors: VRT_EINVAL when roles do not alternate user/assistant where the
 * template requires it ("Conversation roles must alternate
 * user/assistant/user/assistant/..."), a role the template does not know,
 * no messages, or an unknown template name; VRT_ENOMEM. */
int vrt_chat_render(const char *template_name, const vrt_chat_msg *msgs, int n, const char *bos,
                    const char *eos, int add_generation_prompt, char **out, vrt_err *err);

/* Picks a built-in template for a model: from its Jinja chat_template text
 * when there is one ("[INST]" and "<<SYS>>" -> llama-2, "[INST]" -> mistral,
 * "<|im_start|>" -> chatml, "<start_of_turn>" -> gemma), else from
 * model_type / model_name (config.json "model_type", the model id: "llama"
 * with "chat" -> llama-2, "mistral"/"mixtral" -> mistral, "gemma" -> gemma,
 * "phi" -> phi), else chatml. Logs the choice and why at info level. Any
 * argument may be NULL. Returns one of the VRT_CHAT_* names (static). */
const char *vrt_chat_detect(const char *jinja_template, const char *model_type,
                            const char *model_name);

#endif
