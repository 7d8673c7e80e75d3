/* test_chat.c — built-in chat templates against the strings the models'
 * Hugging Face Jinja templates produce, and template detection. */
#include "test.h"

#include "core/err.h"
#include "tokenizer/chat.h"

#include <stdlib.h>

static const vrt_chat_msg CONV[] = {
    {"system", "sys"}, {"user", "hi"}, {"assistant", "hello"}, {"user", "again"}};

/* Renders and compares; returns 0 when equal. */
#define CHECK_RENDER(tpl, msgs, n, bos, eos, gen, want)                                            \
    do {                                                                                           \
        char *out_ = NULL;                                                                         \
        vrt_err err_ = {0};                                                                        \
        ASSERT_OK(vrt_chat_render(tpl, msgs, n, bos, eos, gen, &out_, &err_), &err_);              \
        int eq_ = strcmp(out_, want) == 0;                                                         \
        if (!eq_)                                                                                  \
            fprintf(stderr, "  got:  [%s]\n  want: [%s]\n", out_, want);                           \
        free(out_);                                                                                \
        ASSERT(eq_);                                                                               \
    } while (0)

TEST(chat_llama2_system_multi_turn)
{
    CHECK_RENDER(
        "llama-2", CONV, 4, "<s>", "</s>", 1,
        "<s>[INST] <<SYS>>\nsys\n<</SYS>>\n\nhi [/INST] hello </s><s>[INST] again [/INST]");
}

TEST(chat_llama2_no_system_strips)
{
    vrt_chat_msg m[] = {{"user", "  hi there \n"}, {"assistant", " ok "}};
    CHECK_RENDER("llama-2", m, 2, "<s>", "</s>", 0, "<s>[INST] hi there [/INST] ok </s>");
    CHECK_RENDER("llama-2", m, 1, "<s>", "</s>", 1, "<s>[INST] hi there [/INST]");
}

TEST(chat_mistral)
{
    /* The Mixtral/Mistral v0.1 template's own example (huggingface.js tests). */
    vrt_chat_msg m[] = {{"user", "Hello, how are you?"},
                        {"assistant", "I'm doing great. How can I help you today?"},
                        {"user", "I'd like to show off how chat templating works!"}};
    CHECK_RENDER("mistral", m, 3, "<s>", "</s>", 1,
                 "<s>[INST] Hello, how are you? [/INST]I'm doing great. How can I help you "
                 "today?</s>[INST] I'd like to show off how chat templating works! [/INST]");
    CHECK_RENDER("mistral", CONV, 4, "<s>", "</s>", 1,
                 "<s>[INST] sys\n\nhi [/INST]hello</s>[INST] again [/INST]");
}

TEST(chat_chatml)
{
    CHECK_RENDER("chatml", CONV, 4, "<s>", "</s>", 1,
                 "<|im_start|>system\nsys<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n"
                 "<|im_start|>assistant\nhello<|im_end|>\n<|im_start|>user\nagain<|im_end|>\n"
                 "<|im_start|>assistant\n");
    CHECK_RENDER("chatml", CONV + 1, 1, "", "", 0, "<|im_start|>user\nhi<|im_end|>\n");
}

TEST(chat_gemma)
{
    CHECK_RENDER("gemma", CONV + 1, 3, "<bos>", "<eos>", 1,
                 "<bos><start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\nhello"
                 "<end_of_turn>\n<start_of_turn>user\nagain<end_of_turn>\n<start_of_turn>model\n");
    CHECK_RENDER("gemma", CONV, 2, "<bos>", "<eos>", 0,
                 "<bos><start_of_turn>user\nsys\n\nhi<end_of_turn>\n");
    vrt_chat_msg m[] = {{"user", " padded \n"}};
    CHECK_RENDER("gemma", m, 1, "<bos>", "<eos>", 1,
                 "<bos><start_of_turn>user\npadded<end_of_turn>\n<start_of_turn>model\n");
}

TEST(chat_phi)
{
    vrt_chat_msg m[] = {{"user", "Write a poem."}};
    CHECK_RENDER("phi", m, 1, "", "<|endoftext|>", 1, "Instruct: Write a poem.\nOutput:");
    CHECK_RENDER("phi", CONV, 4, "", "", 1,
                 "Instruct: sys\n\nhi\nOutput: hello\nInstruct: again\nOutput:");
}

TEST(chat_null_bos_eos)
{
    CHECK_RENDER("llama-2", CONV + 1, 2, NULL, NULL, 1, "[INST] hi [/INST] hello ");
}

TEST(chat_errors)
{
    vrt_chat_msg bad[] = {{"user", "a"}, {"user", "b"}};
    vrt_chat_msg asst_first[] = {{"assistant", "a"}};
    vrt_chat_msg tool[] = {{"user", "a"}, {"tool", "b"}};
    const char *alt[] = {"llama-2", "mistral", "gemma", "phi"};
    for (int i = 0; i < 4; i++) {
        char *out = (char *)1;
        vrt_err err = {0};
        ASSERT_EQ_INT(vrt_chat_render(alt[i], bad, 2, "<s>", "</s>", 1, &out, &err), VRT_EINVAL);
        ASSERT(out == NULL);
        ASSERT_CONTAINS(err.msg,
                        "Conversation roles must alternate user/assistant/user/assistant/...");
        ASSERT_EQ_INT(vrt_chat_render(alt[i], asst_first, 1, "", "", 1, &out, &err), VRT_EINVAL);
        ASSERT_EQ_INT(vrt_chat_render(alt[i], tool, 2, "", "", 1, &out, &err), VRT_EINVAL);
    }
    vrt_err err = {0};
    char *out = NULL;
    /* chatml takes any roles and any order. */
    ASSERT_OK(vrt_chat_render("chatml", bad, 2, "", "", 0, &out, &err), &err);
    free(out);
    ASSERT_EQ_INT(vrt_chat_render("jinja", bad, 2, "", "", 0, &out, &err), VRT_EINVAL);
    ASSERT_CONTAINS(err.msg, "unknown chat template");
    ASSERT_EQ_INT(vrt_chat_render("chatml", bad, 0, "", "", 0, &out, &err), VRT_EINVAL);
    ASSERT_EQ_INT(vrt_chat_render("chatml", bad, 2, "", "", 0, NULL, &err), VRT_EINVAL);
}

TEST(chat_detect)
{
    const char *llama2 =
        "{% if messages[0]['role'] == 'system' %}...{{ bos_token + '[INST] ' + content.strip() "
        "+ ' [/INST]' }}... '<<SYS>>\\n' + system_message";
    const char *mistral = "{{ bos_token }}{% for message in messages %}{{ '[INST] ' + "
                          "message['content'] + ' [/INST]' }}{% endfor %}";
    const char *chatml = "{% for message in messages %}{{'<|im_start|>' + message['role']}}";
    const char *gemma = "{{ bos_token }}{{ '<start_of_turn>' + role + '\\n' }}";
    ASSERT_EQ_STR(vrt_chat_detect(llama2, "llama", NULL), "llama-2");
    ASSERT_EQ_STR(vrt_chat_detect(mistral, "mistral", NULL), "mistral");
    ASSERT_EQ_STR(vrt_chat_detect(chatml, "qwen2", NULL), "chatml");
    ASSERT_EQ_STR(vrt_chat_detect(gemma, "llama", NULL), "gemma");
    ASSERT_EQ_STR(vrt_chat_detect("{{ messages }}", NULL, NULL), "chatml");
    ASSERT_EQ_STR(vrt_chat_detect(NULL, "phi", "microsoft/phi-2"), "phi");
    ASSERT_EQ_STR(vrt_chat_detect(NULL, "gemma", NULL), "gemma");
    ASSERT_EQ_STR(vrt_chat_detect("", "mixtral", NULL), "mistral");
    ASSERT_EQ_STR(vrt_chat_detect(NULL, "llama", "TheBloke/Llama-2-7B-Chat-AWQ"), "llama-2");
    ASSERT_EQ_STR(vrt_chat_detect(NULL, "llama", "TinyLlama"), "chatml");
    ASSERT_EQ_STR(vrt_chat_detect(NULL, NULL, NULL), "chatml");
}
