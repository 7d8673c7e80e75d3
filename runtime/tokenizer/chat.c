/* chat.c — the built-in chat templates and their detection (see chat.h).
 *
 * Each template is a short function over the message list that mirrors its
 * Hugging Face Jinja source step by step; the Jinja is quoted above each one
 * so the two can be compared.
 */
#include "tokenizer/chat.h"

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <stdlib.h>
#include <string.h>

typedef vrt_strbuf sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    vrt_strbuf_put(b, s, n);
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Python str.strip() / Jinja trim over ASCII whitespace. */
static void sb_put_stripped(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    size_t i = 0;
    while (i < n && is_space(s[i]))
        i++;
    while (n > i && is_space(s[n - 1]))
        n--;
    sb_putn(b, s + i, n - i);
}

static const char ALTERNATE[] =
    "Conversation roles must alternate user/assistant/user/assistant/...";

static int is_role(const vrt_chat_msg *m, const char *role)
{
    return m->role && strcmp(m->role, role) == 0;
}

/* Split a leading system message off: *sys is its content or NULL, and the
 * loop runs over msgs[*first..n). */
static void split_system(const vrt_chat_msg *msgs, int n, const char **sys, int *first)
{
    *sys = NULL;
    *first = 0;
    if (n > 0 && is_role(&msgs[0], "system")) {
        *sys = msgs[0].content ? msgs[0].content : "";
        *first = 1;
    }
}

/* The (role == 'user') != (loop.index0 % 2 == 0) check of the HF templates,
 * plus: only user and assistant after the optional leading system message
 * (llama-2's template would drop other roles silently, gemma's would print
 * them; both are surprises, so they are errors here). */
static int check_alternate(const vrt_chat_msg *msgs, int first, int n, vrt_err *err)
{
    for (int i = first; i < n; i++)
        if (!is_role(&msgs[i], "user") && !is_role(&msgs[i], "assistant"))
            return vrt_err_set(err, VRT_EINVAL,
                               "Only user and assistant roles are supported! (message %d has "
                               "role \"%s\"; a system message is allowed only first)",
                               i, msgs[i].role);
    for (int i = first; i < n; i++)
        if (is_role(&msgs[i], "user") != ((i - first) % 2 == 0))
            return vrt_err_set(err, VRT_EINVAL, "%s (message %d has role \"%s\")", ALTERNATE, i,
                               msgs[i].role ? msgs[i].role : "(null)");
    return 0;
}

/* Llama-2-chat (meta-llama/Llama-2-7b-chat-hf tokenizer_config.json):
 *   {% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}
 *   {% set system_message = messages[0]['content'] %}{% else %}...{% endif %}
 *   {% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0)
 * %}
 *   {{ raise_exception('Conversation roles must alternate ...') }}{% endif %}
 *   {% if loop.index0 == 0 and system_message != false %}
 *   {% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}
 *   {% else %}{% set content = message['content'] %}{% endif %}
 *   {% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}
 *   {% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}
 *   {% endif %}{% endfor %} */
static int render_llama2(sbuf *b, const vrt_chat_msg *msgs, int n, const char *bos, const char *eos,
                         vrt_err *err)
{
    const char *sys;
    int first;
    split_system(msgs, n, &sys, &first);
    int rc = check_alternate(msgs, first, n, err);
    if (rc)
        return rc;
    for (int i = first; i < n; i++) {
        const char *c = msgs[i].content ? msgs[i].content : "";
        sbuf content = {0};
        if (i == first && sys) {
            sb_puts(&content, "<<SYS>>\n");
            sb_puts(&content, sys);
            sb_puts(&content, "\n<</SYS>>\n\n");
        }
        sb_puts(&content, c);
        if (content.oom) {
            free(content.p);
            return vrt_err_set(err, VRT_ENOMEM, "out of memory rendering a chat template");
        }
        if (is_role(&msgs[i], "user")) {
            sb_puts(b, bos);
            sb_puts(b, "[INST] ");
            sb_put_stripped(b, content.p);
            sb_puts(b, " [/INST]");
        } else if (is_role(&msgs[i], "assistant")) {
            sb_puts(b, " ");
            sb_put_stripped(b, content.p);
            sb_puts(b, " ");
            sb_puts(b, eos);
        }
        free(content.p);
    }
    return 0;
}

/* Mistral-7B-Instruct-v0.1/v0.2, Mixtral-8x7B-Instruct-v0.1:
 *   {{ bos_token }}{% for message in messages %}
 *   {% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception(...) }}{%
 * endif %}
 *   {% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}
 *   {% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}
 *   {% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}
 *   {% endfor %}
 * A leading system message, which the template rejects, is prepended to
 * the first user message instead (what Mistral's later templates do). */
static int render_mistral(sbuf *b, const vrt_chat_msg *msgs, int n, const char *bos,
                          const char *eos, vrt_err *err)
{
    const char *sys;
    int first;
    split_system(msgs, n, &sys, &first);
    int rc = check_alternate(msgs, first, n, err);
    if (rc)
        return rc;
    sb_puts(b, bos);
    for (int i = first; i < n; i++) {
        const char *c = msgs[i].content ? msgs[i].content : "";
        if (is_role(&msgs[i], "user")) {
            sb_puts(b, "[INST] ");
            if (i == first && sys) {
                sb_puts(b, sys);
                sb_puts(b, "\n\n");
            }
            sb_puts(b, c);
            sb_puts(b, " [/INST]");
        } else if (is_role(&msgs[i], "assistant")) {
            sb_puts(b, c);
            sb_puts(b, eos);
        } else {
            return vrt_err_set(err, VRT_EINVAL,
                               "Only user and assistant roles are supported! (message %d has "
                               "role \"%s\"; a system message is allowed only first)",
                               i, msgs[i].role ? msgs[i].role : "(null)");
        }
    }
    return 0;
}

/* ChatML (Qwen, OpenHermes, ...):
 *   {% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']
 *   + '<|im_end|>' + '\n'}}{% endfor %}
 *   {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %} */
static int render_chatml(sbuf *b, const vrt_chat_msg *msgs, int n, int gen, vrt_err *err)
{
    for (int i = 0; i < n; i++) {
        sb_puts(b, "<|im_start|>");
        sb_puts(b, msgs[i].role ? msgs[i].role : "");
        sb_puts(b, "\n");
        sb_puts(b, msgs[i].content ? msgs[i].content : "");
        sb_puts(b, "<|im_end|>\n");
    }
    if (gen)
        sb_puts(b, "<|im_start|>assistant\n");
    return 0;
}

/* Gemma 1 -it (google/gemma-2b-it):
 *   {{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not
 *   supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') !=
 *   (loop.index0 % 2 == 0) %}{{ raise_exception(...) }}{% endif %}
 *   {% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}
 *   {% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' +
 *   message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}
 *   {% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}
 * A leading system message is prepended to the first user message. */
static int render_gemma(sbuf *b, const vrt_chat_msg *msgs, int n, const char *bos, int gen,
                        vrt_err *err)
{
    const char *sys;
    int first;
    split_system(msgs, n, &sys, &first);
    int rc = check_alternate(msgs, first, n, err);
    if (rc)
        return rc;
    sb_puts(b, bos);
    for (int i = first; i < n; i++) {
        const char *c = msgs[i].content ? msgs[i].content : "";
        sb_puts(b, "<start_of_turn>");
        sb_puts(b, is_role(&msgs[i], "assistant") ? "model" : msgs[i].role);
        sb_puts(b, "\n");
        if (i == first && sys) {
            sbuf t = {0};
            sb_puts(&t, sys);
            sb_puts(&t, "\n\n");
            sb_puts(&t, c);
            if (t.oom) {
                free(t.p);
                return vrt_err_set(err, VRT_ENOMEM, "out of memory rendering a chat template");
            }
            sb_put_stripped(b, t.p);
            free(t.p);
        } else {
            sb_put_stripped(b, c);
        }
        sb_puts(b, "<end_of_turn>\n");
    }
    if (gen)
        sb_puts(b, "<start_of_turn>model\n");
    return 0;
}

/* phi-2 has no chat template; its model card's QA format is
 * "Instruct: <prompt>\nOutput:". Turns continue as "Output: <answer>\n". */
static int render_phi(sbuf *b, const vrt_chat_msg *msgs, int n, int gen, vrt_err *err)
{
    const char *sys;
    int first;
    split_system(msgs, n, &sys, &first);
    int rc = check_alternate(msgs, first, n, err);
    if (rc)
        return rc;
    for (int i = first; i < n; i++) {
        const char *c = msgs[i].content ? msgs[i].content : "";
        if (is_role(&msgs[i], "user")) {
            sb_puts(b, "Instruct: ");
            if (i == first && sys) {
                sb_puts(b, sys);
                sb_puts(b, "\n\n");
            }
            sb_puts(b, c);
            sb_puts(b, "\n");
        } else {
            sb_puts(b, "Output: ");
            sb_puts(b, c);
            sb_puts(b, "\n");
        }
    }
    if (gen)
        sb_puts(b, "Output:");
    return 0;
}

int vrt_chat_render(const char *template_name, const vrt_chat_msg *msgs, int n, const char *bos,
                    const char *eos, int add_generation_prompt, char **out, vrt_err *err)
{
    if (!out)
        return vrt_err_set(err, VRT_EINVAL, "vrt_chat_render: out is NULL");
    *out = NULL;
    if (!template_name)
        template_name = VRT_CHAT_CHATML;
    if (!msgs || n <= 0)
        return vrt_err_set(err, VRT_EINVAL, "a chat needs at least one message");
    for (int i = 0; i < n; i++)
        if (!msgs[i].role)
            return vrt_err_set(err, VRT_EINVAL, "chat message %d has no role", i);
    if (!bos)
        bos = "";
    if (!eos)
        eos = "";
    sbuf b = {0};
    int rc;
    if (strcmp(template_name, VRT_CHAT_LLAMA2) == 0)
        rc = render_llama2(&b, msgs, n, bos, eos, err);
    else if (strcmp(template_name, VRT_CHAT_MISTRAL) == 0)
        rc = render_mistral(&b, msgs, n, bos, eos, err);
    else if (strcmp(template_name, VRT_CHAT_CHATML) == 0)
        rc = render_chatml(&b, msgs, n, add_generation_prompt, err);
    else if (strcmp(template_name, VRT_CHAT_GEMMA) == 0)
        rc = render_gemma(&b, msgs, n, bos, add_generation_prompt, err);
    else if (strcmp(template_name, VRT_CHAT_PHI) == 0)
        rc = render_phi(&b, msgs, n, add_generation_prompt, err);
    else
        rc = vrt_err_set(err, VRT_EINVAL,
                         "unknown chat template \"%s\" (built in: llama-2, mistral, chatml, "
                         "gemma, phi)",
                         template_name);
    if (rc == 0 && !b.oom && !b.p)
        sb_puts(&b, "");
    if (rc == 0 && b.oom)
        rc = vrt_err_set(err, VRT_ENOMEM, "out of memory rendering a chat template");
    if (rc) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    return 0;
}

static int contains_ci(const char *hay, const char *needle)
{
    if (!hay)
        return 0;
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++)
        if (strncasecmp(p, needle, n) == 0)
            return 1;
    return 0;
}

const char *vrt_chat_detect(const char *jinja_template, const char *model_type,
                            const char *model_name)
{
    const char *t = jinja_template;
    if (t && *t) {
        const char *pick = NULL;
        if (strstr(t, "[INST]") && strstr(t, "<<SYS>>"))
            pick = VRT_CHAT_LLAMA2;
        else if (strstr(t, "[INST]"))
            pick = VRT_CHAT_MISTRAL;
        else if (strstr(t, "<|im_start|>"))
            pick = VRT_CHAT_CHATML;
        else if (strstr(t, "<start_of_turn>"))
            pick = VRT_CHAT_GEMMA;
        if (pick) {
            VRT_INFO("chat template: %s (recognized from the tokenizer's chat_template)", pick);
            return pick;
        }
    }
    const char *pick = NULL;
    if (contains_ci(model_type, "mixtral") || contains_ci(model_type, "mistral") ||
        contains_ci(model_name, "mistral") || contains_ci(model_name, "mixtral"))
        pick = VRT_CHAT_MISTRAL;
    else if (contains_ci(model_type, "gemma") || contains_ci(model_name, "gemma"))
        pick = VRT_CHAT_GEMMA;
    else if (contains_ci(model_type, "phi") || contains_ci(model_name, "phi"))
        pick = VRT_CHAT_PHI;
    else if ((contains_ci(model_type, "llama") || contains_ci(model_name, "llama")) &&
             contains_ci(model_name, "llama-2") && contains_ci(model_name, "chat"))
        pick = VRT_CHAT_LLAMA2;
    if (pick) {
        VRT_INFO("chat template: %s (from model type \"%s\" / name \"%s\"; the tokenizer has %s)",
                 pick, model_type ? model_type : "", model_name ? model_name : "",
                 t && *t ? "an unrecognized chat_template" : "no chat_template");
        return pick;
    }
    VRT_INFO("chat template: chatml (fallback: %s)",
             t && *t ? "the tokenizer's chat_template has no known markers"
                     : "no chat_template and no known model type");
    return VRT_CHAT_CHATML;
}
