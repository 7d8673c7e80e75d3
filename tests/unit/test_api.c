/* test_api.c — TGI / OpenAI request parsing and validation (api_req) and
 * response rendering (api_res): every field, the defaults, every
 * validation error with its status and body, and each response kind checked
 * with cJSON for the exact structure and JSON types of TGI / OpenAI. */
#include "test.h"

#include "core/err.h"
#include "server/api_req.h"
#include "server/api_res.h"

#include <cJSON.h>
#include <stdlib.h>

static int parse(vrt_api_request *r, int api, const char *body, vrt_api_error *e)
{
    return vrt_api_parse(r, api, body, strlen(body), e);
}

/* Parses body expecting an error: status, a message fragment, and (OpenAI)
 * the param; also checks the rendered error body's shape. */
#define EXPECT_ERR(api, body, status_, frag, param_)                                               \
    do {                                                                                           \
        vrt_api_request r_;                                                                        \
        vrt_api_error e_;                                                                          \
        int rc_ = parse(&r_, api, body, &e_);                                                      \
        vrt_api_request_free(&r_);                                                                 \
        if (rc_ != VRT_EINVAL)                                                                     \
            TFAIL("%s: expected VRT_EINVAL, got %d", body, rc_);                                   \
        ASSERT_EQ_INT(e_.status, status_);                                                         \
        ASSERT_CONTAINS(e_.msg, frag);                                                             \
        if (param_)                                                                                \
            ASSERT_EQ_STR(e_.param, (const char *)param_);                                         \
        if (!check_error_body(api, &e_))                                                           \
            TFAIL("bad error body for %s", body);                                                  \
    } while (0)

static int check_error_body(int api, const vrt_api_error *e)
{
    char *s = vrt_api_error_body(api, e);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    int ok = 0;
    if (j && vrt_api_is_openai(api)) {
        cJSON *err = cJSON_GetObjectItem(j, "error");
        cJSON *param = cJSON_GetObjectItem(err, "param");
        ok = cJSON_IsObject(err) && cJSON_IsString(cJSON_GetObjectItem(err, "message")) &&
             strcmp(cJSON_GetObjectItem(err, "message")->valuestring, e->msg) == 0 &&
             cJSON_IsString(cJSON_GetObjectItem(err, "type")) &&
             strcmp(cJSON_GetObjectItem(err, "type")->valuestring, "invalid_request_error") == 0 &&
             (cJSON_IsNull(param) || cJSON_IsString(param)) &&
             cJSON_IsNull(cJSON_GetObjectItem(err, "code")) && cJSON_GetArraySize(j) == 1;
    } else if (j) {
        ok = cJSON_IsString(cJSON_GetObjectItem(j, "error")) &&
             strcmp(cJSON_GetObjectItem(j, "error")->valuestring, e->msg) == 0 &&
             cJSON_IsString(cJSON_GetObjectItem(j, "error_type")) &&
             strcmp(cJSON_GetObjectItem(j, "error_type")->valuestring, "validation") == 0 &&
             cJSON_GetArraySize(j) == 2;
    }
    cJSON_Delete(j);
    free(s);
    return ok;
}

/* ---- parsing: TGI ---------------------------------------------------------- */

TEST(api_tgi_defaults)
{
    vrt_api_request r;
    vrt_api_error e;
    ASSERT_OK(parse(&r, VRT_API_TGI_GENERATE, "{\"inputs\":\"Hello\"}", &e), &e);
    ASSERT_EQ_STR(r.prompt, "Hello");
    ASSERT_EQ_INT(r.stream, 0);
    ASSERT_EQ_INT(r.params.max_new_tokens, 100);
    ASSERT_EQ_INT(r.params.sampling.do_sample, 0);
    ASSERT_NEAR(r.params.sampling.temperature, 1.0, 0);
    ASSERT_NEAR(r.params.sampling.top_p, 1.0, 0);
    ASSERT_EQ_INT(r.params.sampling.top_k, 0);
    ASSERT_EQ_INT(r.params.n_stop, 0);
    ASSERT_EQ_INT(r.details, 0);
    ASSERT_EQ_INT(r.seed_set, 0);
    ASSERT_EQ_INT(r.n, 1);
    ASSERT(r.model == NULL);
    vrt_api_request_free(&r);

    ASSERT_OK(parse(&r, VRT_API_TGI_GENERATE_STREAM, "{\"inputs\":\"x\",\"parameters\":null}", &e),
              &e);
    ASSERT_EQ_INT(r.stream, 1);
    vrt_api_request_free(&r);
    ASSERT_OK(parse(&r, VRT_API_TGI_COMPAT, "{\"inputs\":\"x\",\"stream\":true}", &e), &e);
    ASSERT_EQ_INT(r.stream, 1);
    vrt_api_request_free(&r);
    /* "stream" means nothing on /generate. */
    ASSERT_OK(parse(&r, VRT_API_TGI_GENERATE, "{\"inputs\":\"x\",\"stream\":true}", &e), &e);
    ASSERT_EQ_INT(r.stream, 0);
    vrt_api_request_free(&r);
}

TEST(api_tgi_all_fields)
{
    const char *body =
        "{\"inputs\":\"My name is\",\"parameters\":{\"best_of\":1,\"temperature\":0.5,"
        "\"repetition_penalty\":1.2,\"frequency_penalty\":-0.5,\"top_k\":10,\"top_p\":0.9,"
        "\"typical_p\":0.95,\"do_sample\":false,\"max_new_tokens\":20,\"stop\":[\"\\n\",\"END\"],"
        "\"truncate\":512,\"seed\":42,\"watermark\":false,\"details\":true,"
        "\"decoder_input_details\":true,\"return_full_text\":true,\"top_n_tokens\":3,"
        "\"grammar\":null,\"adapter_id\":null,\"unknown_field\":{\"x\":1}},\"other\":1}";
    vrt_api_request r;
    vrt_api_error e;
    ASSERT_OK(parse(&r, VRT_API_TGI_GENERATE, body, &e), &e);
    vrt_sampling_params *s = &r.params.sampling;
    ASSERT_NEAR(s->temperature, 0.5, 1e-7);
    ASSERT_NEAR(s->repetition_penalty, 1.2, 1e-6);
    ASSERT_NEAR(s->frequency_penalty, -0.5, 1e-7);
    ASSERT_EQ_INT(s->top_k, 10);
    ASSERT_NEAR(s->top_p, 0.9, 1e-6);
    ASSERT_NEAR(s->typical_p, 0.95, 1e-6);
    /* Warpers set: TGI samples even with do_sample false. */
    ASSERT_EQ_INT(s->do_sample, 1);
    ASSERT_EQ_INT(r.params.max_new_tokens, 20);
    ASSERT_EQ_INT(r.params.n_stop, 2);
    ASSERT_EQ_STR(r.params.stop[0], "\n");
    ASSERT_EQ_STR(r.params.stop[1], "END");
    ASSERT_EQ_INT(r.truncate, 512);
    ASSERT_EQ_INT(r.seed_set, 1);
    ASSERT_EQ_INT(s->seed, 42);
    ASSERT_EQ_INT(r.details, 1);
    ASSERT_EQ_INT(r.decoder_input_details, 1);
    ASSERT_EQ_INT(r.params.prompt_logprobs, 1);
    ASSERT_EQ_INT(r.return_full_text, 1);
    ASSERT_EQ_INT(r.top_n_tokens, 3);
    ASSERT_EQ_INT(s->n_logprobs, 3);
    vrt_api_request_free(&r);

    ASSERT_OK(parse(&r, VRT_API_TGI_GENERATE,
                    "{\"inputs\":\"x\",\"parameters\":{\"do_sample\":true,\"seed\":"
                    "18446744073709549568}}",
                    &e),
              &e);
    ASSERT_EQ_INT(r.params.sampling.do_sample, 1);
    ASSERT(r.params.sampling.seed == 18446744073709549568ULL);
    vrt_api_request_free(&r);
    /* temperature 1.0 alone is no warper: greedy, as TGI's server does. */
    ASSERT_OK(parse(&r, VRT_API_TGI_GENERATE,
                    "{\"inputs\":\"x\",\"parameters\":{\"temperature\":1.0}}", &e),
              &e);
    ASSERT_EQ_INT(r.params.sampling.do_sample, 0);
    vrt_api_request_free(&r);
}

TEST(api_tgi_validation_errors)
{
    int G = VRT_API_TGI_GENERATE;
#define P(x) "{\"inputs\":\"hi\",\"parameters\":{" x "}}"
    EXPECT_ERR(G, P("\"temperature\":0"), 422, "`temperature` must be strictly positive", NULL);
    EXPECT_ERR(G, P("\"temperature\":-1"), 422, "`temperature` must be strictly positive", NULL);
    EXPECT_ERR(G, P("\"repetition_penalty\":0"), 422,
               "`repetition_penalty` must be strictly positive", NULL);
    EXPECT_ERR(G, P("\"frequency_penalty\":2.5"), 422,
               "`frequency_penalty` must be >= -2.0 and <= 2.0", NULL);
    EXPECT_ERR(G, P("\"top_p\":1.0"), 422, "`top_p` must be > 0.0 and < 1.0", NULL);
    EXPECT_ERR(G, P("\"top_p\":0"), 422, "`top_p` must be > 0.0 and < 1.0", NULL);
    EXPECT_ERR(G, P("\"typical_p\":1"), 422, "`typical_p` must be > 0.0 and < 1.0", NULL);
    EXPECT_ERR(G, P("\"top_k\":0"), 422, "`top_k` must be strictly positive", NULL);
    EXPECT_ERR(G, P("\"top_k\":-5"), 422, "`top_k` must be strictly positive", NULL);
    EXPECT_ERR(G, P("\"max_new_tokens\":0"), 422, "`max_new_tokens` must be strictly positive",
               NULL);
    EXPECT_ERR(G, P("\"max_new_tokens\":-1"), 422, "invalid value: integer `-1`", NULL);
    EXPECT_ERR(G, P("\"best_of\":2"), 422, "`best_of` != 1 is not allowed for this endpoint", NULL);
    EXPECT_ERR(VRT_API_TGI_GENERATE_STREAM, P("\"best_of\":2"), 422,
               "`best_of` != 1 is not supported when streaming tokens", NULL);
    EXPECT_ERR(G, P("\"watermark\":true"), 422, "`watermark` is not supported", NULL);
    EXPECT_ERR(G, P("\"grammar\":{\"type\":\"json\",\"value\":{}}"), 422,
               "grammar is not supported", NULL);
    EXPECT_ERR(VRT_API_TGI_GENERATE_STREAM, P("\"decoder_input_details\":true"), 422,
               "`decoder_input_details` == true is not supported when streaming tokens", NULL);
    EXPECT_ERR(G, P("\"top_n_tokens\":21"), 422, "`top_n_tokens` must be >= 0 and <= 20. Given: 21",
               NULL);
    EXPECT_ERR(G, P("\"truncate\":0"), 422, "`truncate` must be strictly positive", NULL);
    /* Wrong types: serde's wording. */
    EXPECT_ERR(G, P("\"temperature\":\"hot\""), 422,
               "Failed to deserialize the JSON body into the target type: parameters.temperature: "
               "invalid type: string, expected a number",
               NULL);
    EXPECT_ERR(G, P("\"do_sample\":1"), 422, "parameters.do_sample: invalid type: number", NULL);
    EXPECT_ERR(G, P("\"max_new_tokens\":1.5"), 422, "expected an integer", NULL);
    EXPECT_ERR(G, P("\"stop\":\"x\""), 422,
               "parameters.stop: invalid type: string, expected a "
               "sequence",
               NULL);
    EXPECT_ERR(G, P("\"stop\":[1]"), 422, "parameters.stop", NULL);
    EXPECT_ERR(G, P("\"seed\":-1"), 422, "`seed` must be an integer", NULL);
    EXPECT_ERR(G, "{\"inputs\":\"x\",\"parameters\":[]}", 422, "parameters: invalid type: array",
               NULL);
#undef P
    EXPECT_ERR(G, "{\"inputs\":\"\"}", 422, "`inputs` cannot be empty", NULL);
    EXPECT_ERR(G, "{\"parameters\":{}}", 422, "missing field `inputs`", NULL);
    EXPECT_ERR(G, "{\"inputs\":5}", 422, "inputs: invalid type: number, expected a string", NULL);
    EXPECT_ERR(G, "[1,2]", 422, "expected struct GenerateRequest", NULL);
    EXPECT_ERR(G, "{\"inputs\":\"x\"", 422,
               "Failed to parse the request body as JSON: invalid JSON at line 1 column", NULL);
    EXPECT_ERR(G, "", 422, "invalid JSON", NULL);
    EXPECT_ERR(G, "{\"inputs\":\"x\"} trailing", 422, "invalid JSON", NULL);
    EXPECT_ERR(G, "{\"inputs\":\"\xff\xfe\"}", 422, "not valid UTF-8 (byte offset 11)", NULL);
    EXPECT_ERR(G, "{\"inputs\":\"\xc0\xaf\"}", 422, "not valid UTF-8", NULL);     /* overlong */
    EXPECT_ERR(G, "{\"inputs\":\"\xed\xa0\x80\"}", 422, "not valid UTF-8", NULL); /* surrogate */
}

TEST(api_tgi_limits)
{
    vrt_api_limits lim = {.max_input_tokens = 10,
                          .max_total_tokens = 20,
                          .max_stop_sequences = 2,
                          .max_top_n_tokens = 5};
    vrt_api_request r;
    vrt_api_error e;
    int n_in = 0;
    ASSERT_OK(parse(&r, VRT_API_TGI_GENERATE,
                    "{\"inputs\":\"x\",\"parameters\":{\"max_new_tokens\":10}}", &e),
              &e);
    ASSERT_OK(vrt_api_check_limits(&r, &lim, 10, &n_in, &e), &e);
    ASSERT_EQ_INT(n_in, 10);
    ASSERT_EQ_INT(vrt_api_check_limits(&r, &lim, 11, &n_in, &e), VRT_EINVAL);
    ASSERT_EQ_INT(e.status, 422);
    ASSERT_EQ_STR(e.msg, "`inputs` tokens + `max_new_tokens` must be <= 20. Given: 11 "
                         "`inputs` tokens and 10 `max_new_tokens`");
    r.params.max_new_tokens = 1;
    ASSERT_EQ_INT(vrt_api_check_limits(&r, &lim, 11, &n_in, &e), VRT_EINVAL);
    ASSERT_EQ_STR(e.msg, "`inputs` must have less than 10 tokens. Given: 11");
    /* Auto max_new_tokens: what is left of max_total_tokens. */
    r.params.max_new_tokens = 0;
    ASSERT_OK(vrt_api_check_limits(&r, &lim, 4, &n_in, &e), &e);
    ASSERT_EQ_INT(r.params.max_new_tokens, 16);
    vrt_api_request_free(&r);

    ASSERT_OK(parse(&r, VRT_API_TGI_GENERATE,
                    "{\"inputs\":\"x\",\"parameters\":{\"max_new_tokens\":5,\"truncate\":8}}", &e),
              &e);
    ASSERT_OK(vrt_api_check_limits(&r, &lim, 50, &n_in, &e), &e);
    ASSERT_EQ_INT(n_in, 8);
    r.truncate = 11;
    ASSERT_EQ_INT(vrt_api_check_limits(&r, &lim, 50, &n_in, &e), VRT_EINVAL);
    ASSERT_EQ_STR(e.msg, "`truncate` must be strictly positive and less than 10. Given: 11");
    vrt_api_request_free(&r);

    ASSERT_OK(parse(&r, VRT_API_TGI_GENERATE,
                    "{\"inputs\":\"x\",\"parameters\":{\"stop\":[\"a\",\"b\",\"c\"]}}", &e),
              &e);
    ASSERT_EQ_INT(vrt_api_check_limits(&r, &lim, 1, &n_in, &e), VRT_EINVAL);
    ASSERT_EQ_STR(e.msg, "`stop` supports up to 2 stop sequences. Given: 3");
    vrt_api_request_free(&r);
    ASSERT_OK(parse(&r, VRT_API_TGI_GENERATE,
                    "{\"inputs\":\"x\",\"parameters\":{\"top_n_tokens\":6}}", &e),
              &e);
    ASSERT_EQ_INT(vrt_api_check_limits(&r, &lim, 1, &n_in, &e), VRT_EINVAL);
    ASSERT_EQ_STR(e.msg, "`top_n_tokens` must be >= 0 and <= 5. Given: 6");
    vrt_api_request_free(&r);
}

/* ---- parsing: OpenAI --------------------------------------------------------- */

TEST(api_oai_completions_fields)
{
    vrt_api_request r;
    vrt_api_error e;
    ASSERT_OK(parse(&r, VRT_API_OAI_COMPLETIONS, "{\"model\":\"m\",\"prompt\":\"Once\"}", &e), &e);
    ASSERT_EQ_STR(r.prompt, "Once");
    ASSERT_EQ_STR(r.model, "m");
    ASSERT_EQ_INT(r.params.max_new_tokens, 16);
    ASSERT_EQ_INT(r.params.sampling.do_sample, 1);
    ASSERT_NEAR(r.params.sampling.temperature, 1.0, 0);
    ASSERT_EQ_INT(r.logprobs, -1);
    ASSERT_EQ_INT(r.echo, 0);
    ASSERT_EQ_INT(r.skip_special_tokens, 1);
    vrt_api_request_free(&r);

    const char *body =
        "{\"model\":\"m\",\"prompt\":[\"Once\"],\"max_tokens\":7,\"temperature\":0,\"top_p\":0.5,"
        "\"n\":1,\"stop\":\"\\n\",\"seed\":-1,\"logprobs\":2,\"echo\":true,"
        "\"presence_penalty\":0.5,\"frequency_penalty\":-1,\"stream\":true,"
        "\"stream_options\":{\"include_usage\":true},\"user\":\"u1\",\"top_k\":-1,\"min_p\":0.1,"
        "\"repetition_penalty\":1.1,\"priority\":3,\"ignore_eos\":true,"
        "\"skip_special_tokens\":false,\"stop_token_ids\":[2,7],\"best_of\":1,\"suffix\":null}";
    ASSERT_OK(parse(&r, VRT_API_OAI_COMPLETIONS, body, &e), &e);
    vrt_sampling_params *s = &r.params.sampling;
    ASSERT_EQ_STR(r.prompt, "Once");
    ASSERT_EQ_INT(r.params.max_new_tokens, 7);
    ASSERT_EQ_INT(s->do_sample, 0); /* temperature 0: greedy */
    ASSERT_NEAR(s->top_p, 0.5, 0);
    ASSERT_EQ_INT(r.params.n_stop, 1);
    ASSERT_EQ_STR(r.params.stop[0], "\n");
    ASSERT_EQ_INT(r.seed_set, 1);
    ASSERT(s->seed == UINT64_MAX);
    ASSERT_EQ_INT(r.logprobs, 2);
    ASSERT_EQ_INT(s->n_logprobs, 2);
    ASSERT_EQ_INT(r.echo, 1);
    ASSERT_EQ_INT(r.params.prompt_logprobs, 1);
    ASSERT_NEAR(s->presence_penalty, 0.5, 0);
    ASSERT_NEAR(s->frequency_penalty, -1, 0);
    ASSERT_EQ_INT(r.stream, 1);
    ASSERT_EQ_INT(r.include_usage, 1);
    ASSERT_EQ_STR(r.user, "u1");
    ASSERT_EQ_INT(s->top_k, 0);
    ASSERT_NEAR(s->min_p, 0.1, 1e-7);
    ASSERT_NEAR(s->repetition_penalty, 1.1, 1e-6);
    ASSERT_EQ_INT(r.params.priority, 3);
    ASSERT_EQ_INT(r.params.ignore_eos, 1);
    ASSERT_EQ_INT(r.skip_special_tokens, 0);
    ASSERT_EQ_INT(r.params.n_stop_ids, 2);
    ASSERT_EQ_INT(r.params.stop_ids[1], 7);
    vrt_api_request_free(&r);

    ASSERT_OK(parse(&r, VRT_API_OAI_COMPLETIONS, "{\"prompt\":[1,2,3],\"temperature\":0.7}", &e),
              &e);
    ASSERT(r.prompt == NULL);
    ASSERT_EQ_INT(r.n_prompt_ids, 3);
    ASSERT_EQ_INT(r.prompt_ids[2], 3);
    ASSERT_NEAR(r.params.sampling.temperature, 0.7, 1e-7);
    ASSERT_EQ_INT(r.params.sampling.do_sample, 1);
    vrt_api_request_free(&r);
    ASSERT_OK(parse(&r, VRT_API_OAI_COMPLETIONS, "{\"prompt\":[[5,6]]}", &e), &e);
    ASSERT_EQ_INT(r.n_prompt_ids, 2);
    ASSERT_EQ_INT(r.prompt_ids[0], 5);
    vrt_api_request_free(&r);
    /* Empty strings in stop lists are dropped (they would stop at once). */
    ASSERT_OK(parse(&r, VRT_API_OAI_COMPLETIONS, "{\"prompt\":\"a\",\"stop\":[\"\",\"x\"]}", &e),
              &e);
    ASSERT_EQ_INT(r.params.n_stop, 1);
    vrt_api_request_free(&r);
}

TEST(api_oai_chat_fields)
{
    vrt_api_request r;
    vrt_api_error e;
    const char *body =
        "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"},{\"type\":\"text\","
        "\"text\":\"there\"}]},{\"role\":\"assistant\",\"content\":null}],"
        "\"max_completion_tokens\":9,\"max_tokens\":3,\"logprobs\":true,\"top_logprobs\":4}";
    ASSERT_OK(parse(&r, VRT_API_OAI_CHAT, body, &e), &e);
    ASSERT_EQ_INT(r.n_messages, 3);
    ASSERT_EQ_STR(r.messages[0].role, "system");
    ASSERT_EQ_STR(r.messages[0].content, "Be brief.");
    ASSERT_EQ_STR(r.messages[1].content, "Hi\nthere");
    ASSERT_EQ_STR(r.messages[2].content, "");
    ASSERT_EQ_INT(r.params.max_new_tokens, 9);
    ASSERT_EQ_INT(r.logprobs, 1);
    ASSERT_EQ_INT(r.top_logprobs, 4);
    ASSERT_EQ_INT(r.params.sampling.n_logprobs, 4);
    vrt_api_request_free(&r);
    ASSERT_OK(parse(&r, VRT_API_OAI_CHAT,
                    "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                    "\"add_generation_prompt\":false}",
                    &e),
              &e);
    ASSERT_EQ_INT(r.add_generation_prompt, 0);
    vrt_api_request_free(&r);
    /* Chat max tokens default: auto (0), resolved by the limits. */
    ASSERT_OK(
        parse(&r, VRT_API_OAI_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &e),
        &e);
    ASSERT_EQ_INT(r.params.max_new_tokens, 0);
    ASSERT_EQ_INT(r.logprobs, -1);
    ASSERT_EQ_INT(r.add_generation_prompt, 1);
    vrt_api_limits lim = {100, 4096, 4, 5};
    int n_in;
    ASSERT_OK(vrt_api_check_limits(&r, &lim, 96, &n_in, &e), &e);
    ASSERT_EQ_INT(r.params.max_new_tokens, 4000);
    r.params.max_new_tokens = 4001;
    ASSERT_EQ_INT(vrt_api_check_limits(&r, &lim, 96, &n_in, &e), VRT_EINVAL);
    ASSERT_EQ_INT(e.status, 400);
    ASSERT_CONTAINS(e.msg, "This model's maximum context length is 4096 tokens. However, you "
                           "requested 4097 tokens (96 in the messages, 4001 in the completion)");
    vrt_api_request_free(&r);
}

TEST(api_oai_validation_errors)
{
    int C = VRT_API_OAI_COMPLETIONS, H = VRT_API_OAI_CHAT;
#define Q(x) "{\"prompt\":\"hi\"," x "}"
    EXPECT_ERR(C, Q("\"temperature\":-0.5"), 400, "temperature must be non-negative, got -0.5.",
               "temperature");
    EXPECT_ERR(C, Q("\"top_p\":0"), 400, "top_p must be in (0, 1], got 0.", "top_p");
    EXPECT_ERR(C, Q("\"top_p\":1.5"), 400, "top_p must be in (0, 1]", "top_p");
    EXPECT_ERR(C, Q("\"top_k\":-2"), 400, "top_k must be -1 or 0 (disable), or at least 1, got -2.",
               "top_k");
    EXPECT_ERR(C, Q("\"min_p\":1.5"), 400, "min_p must be in [0, 1], got 1.5.", "min_p");
    EXPECT_ERR(C, Q("\"presence_penalty\":3"), 400, "presence_penalty must be in [-2, 2], got 3.",
               "presence_penalty");
    EXPECT_ERR(C, Q("\"frequency_penalty\":-3"), 400, "frequency_penalty must be in [-2, 2]",
               "frequency_penalty");
    EXPECT_ERR(C, Q("\"repetition_penalty\":0"), 400,
               "repetition_penalty must be greater than zero", "repetition_penalty");
    EXPECT_ERR(C, Q("\"max_tokens\":0"), 400, "max_tokens must be at least 1, got 0.",
               "max_tokens");
    EXPECT_ERR(C, Q("\"n\":0"), 400, "n must be at least 1, got 0.", "n");
    EXPECT_ERR(C, Q("\"n\":17"), 400, "n must be at most 16, got 17.", "n");
    EXPECT_ERR(C, Q("\"best_of\":3"), 400, "best_of is not supported", "best_of");
    EXPECT_ERR(C, Q("\"logprobs\":21"), 400, "logprobs must be in [0, 20], got 21.", "logprobs");
    EXPECT_ERR(C, Q("\"logprobs\":true"), 400, "`logprobs` must be an integer (got boolean)",
               "logprobs");
    EXPECT_ERR(C, Q("\"stream_options\":{\"include_usage\":true}"), 400,
               "Stream options can only be defined when `stream=True`.", "stream_options");
    EXPECT_ERR(C, Q("\"stop\":5"), 400, "`stop` must be a string or a list of strings", "stop");
    EXPECT_ERR(C, Q("\"temperature\":\"0\""), 400, "`temperature` must be a number (got string)",
               "temperature");
    EXPECT_ERR(C, Q("\"stream\":\"yes\""), 400, "`stream` must be a boolean", "stream");
    EXPECT_ERR(C, Q("\"model\":1"), 400, "`model` must be a string", "model");
    EXPECT_ERR(C, Q("\"stop_token_ids\":[-1]"), 400, "`stop_token_ids`", "stop_token_ids");
    EXPECT_ERR(C, Q("\"tools\":[{}]"), 400, "`tools` is not supported", "tools");
    EXPECT_ERR(C, Q("\"logit_bias\":{\"1\":5}"), 400, "`logit_bias` is not supported",
               "logit_bias");
    EXPECT_ERR(C, Q("\"response_format\":{\"type\":\"json_object\"}"), 400, "`response_format`",
               "response_format");
#undef Q
    EXPECT_ERR(C, "{\"prompt\":\"\"}", 400, "`prompt` cannot be empty", "prompt");
    EXPECT_ERR(C, "{\"prompt\":[]}", 400, "`prompt` cannot be empty", "prompt");
    EXPECT_ERR(C, "{\"prompt\":[[]]}", 400, "`prompt` cannot be empty", "prompt");
    EXPECT_ERR(C, "{\"model\":\"m\"}", 400, "`prompt` is required", "prompt");
    EXPECT_ERR(C, "{\"prompt\":[\"a\",\"b\"]}", 400, "only one prompt per request", "prompt");
    EXPECT_ERR(C, "{\"prompt\":[1,-2]}", 400, "token ids must be non-negative", "prompt");
    EXPECT_ERR(C, "{\"prompt\":{}}", 400, "`prompt` must be a string", "prompt");
    EXPECT_ERR(C, "{\"prompt\":\"x\",", 400, "invalid JSON at line 1 column", "");
    EXPECT_ERR(C, "\"str\"", 400, "must be a JSON object", "");
    EXPECT_ERR(C, "{\"prompt\":\"a\xf5\"}", 400, "not valid UTF-8", "");

    EXPECT_ERR(H, "{\"messages\":[]}", 400, "at least one message", "messages");
    EXPECT_ERR(H, "{\"model\":\"m\"}", 400, "`messages` is required", "messages");
    EXPECT_ERR(H, "{\"messages\":{}}", 400, "`messages` must be a list", "messages");
    EXPECT_ERR(H, "{\"messages\":[\"hi\"]}", 400, "`messages[0]` must be an object", "messages");
    EXPECT_ERR(H, "{\"messages\":[{\"content\":\"hi\"}]}", 400, "`messages[0].role`", "messages");
    EXPECT_ERR(H, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", 400,
               "`messages[0].content` must be a string", "messages");
    EXPECT_ERR(H,
               "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
               "\"image_url\":{\"url\":\"x\"}}]}]}",
               400, "only content parts of type \"text\"", "messages");
    EXPECT_ERR(H, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_logprobs\":2}", 400,
               "when using `top_logprobs`, `logprobs` must be set to true.", "top_logprobs");
    EXPECT_ERR(H, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":1}", 400,
               "`logprobs` must be a boolean", "logprobs");
    EXPECT_ERR(H,
               "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
               "\"max_completion_tokens\":0}",
               400, "max_completion_tokens must be at least 1, got 0.", "max_completion_tokens");
}

/* Each row of the parameter tables at both ends of its range: the value
 * just outside is refused with the exact message (and param), the end
 * itself is accepted. */
typedef struct bound_case {
    int api;
    const char *body;
    const char *msg; /* NULL: accepted */
} bound_case;

TEST(api_param_table_bounds)
{
    int G = VRT_API_TGI_GENERATE, S = VRT_API_TGI_GENERATE_STREAM, C = VRT_API_OAI_COMPLETIONS,
        H = VRT_API_OAI_CHAT;
#define P(x) "{\"inputs\":\"hi\",\"parameters\":{" x "}}"
#define Q(x) "{\"prompt\":\"hi\"," x "}"
#define M(x) "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]," x "}"
    static const char deser[] = "Failed to deserialize the JSON body into the target type: ";
    const bound_case cases[] = {
        {G, P("\"best_of\":1"), NULL},
        {G, P("\"best_of\":0"), "`best_of` != 1 is not allowed for this endpoint"},
        {S, P("\"best_of\":1"), NULL},
        {G, P("\"best_of\":-1"),
         "parameters.best_of: invalid value: integer `-1`, expected an "
         "integer in [0, 4294967295]"},
        {G, P("\"temperature\":1e-9"), NULL},
        {G, P("\"repetition_penalty\":-0.5"), "`repetition_penalty` must be strictly positive"},
        {G, P("\"repetition_penalty\":1e-9"), NULL},
        {G, P("\"frequency_penalty\":-2.5"), "`frequency_penalty` must be >= -2.0 and <= 2.0"},
        {G, P("\"frequency_penalty\":-2"), NULL},
        {G, P("\"frequency_penalty\":2"), NULL},
        {G, P("\"top_p\":0.999"), NULL},
        {G, P("\"typical_p\":0"), "`typical_p` must be > 0.0 and < 1.0"},
        {G, P("\"typical_p\":0.001"), NULL},
        {G, P("\"top_k\":1"), NULL},
        {G, P("\"top_k\":2147483648"),
         "parameters.top_k: invalid value: integer `2147483648`, "
         "expected an integer in [-2147483648, 2147483647]"},
        {G, P("\"max_new_tokens\":1"), NULL},
        {G, P("\"max_new_tokens\":4294967295"), NULL},
        {G, P("\"max_new_tokens\":4294967296"),
         "parameters.max_new_tokens: invalid value: integer `4294967296`, expected an integer in "
         "[0, 4294967295]"},
        {G, P("\"truncate\":0"),
         "`truncate` must be strictly positive and less than "
         "max_input_tokens. Given: 0"},
        {G, P("\"truncate\":1"), NULL},
        {G, P("\"seed\":18446744073709551616"),
         "`seed` must be an integer in [0, 18446744073709551615] (got 18446744073709551616)"},
        {G, P("\"watermark\":false"), NULL},
        {G, P("\"decoder_input_details\":true"), NULL},
        {S, P("\"decoder_input_details\":false"), NULL},
        {G, P("\"top_n_tokens\":0"), NULL},
        {G, P("\"top_n_tokens\":20"), NULL},
        {G, P("\"grammar\":null"), NULL},

        {C, Q("\"temperature\":0"), NULL},
        {C, Q("\"top_p\":1"), NULL},
        {C, Q("\"top_k\":-1"), NULL},
        {C, Q("\"top_k\":0"), NULL},
        {C, Q("\"min_p\":-0.5"), "min_p must be in [0, 1], got -0.5."},
        {C, Q("\"min_p\":0"), NULL},
        {C, Q("\"min_p\":1"), NULL},
        {C, Q("\"presence_penalty\":-2.5"), "presence_penalty must be in [-2, 2], got -2.5."},
        {C, Q("\"presence_penalty\":-2"), NULL},
        {C, Q("\"presence_penalty\":2"), NULL},
        {C, Q("\"frequency_penalty\":2.5"), "frequency_penalty must be in [-2, 2], got 2.5."},
        {C, Q("\"frequency_penalty\":2"), NULL},
        {C, Q("\"repetition_penalty\":-1"),
         "repetition_penalty must be greater than zero, got -1."},
        {C, Q("\"repetition_penalty\":0.01"), NULL},
        {C, Q("\"max_tokens\":1"), NULL},
        {C, Q("\"max_tokens\":2147483648"),
         "`max_tokens` must be an integer in [-2147483648, "
         "2147483647] (got 2147483648)"},
        {C, Q("\"n\":1"), NULL},
        {C, Q("\"n\":16"), NULL},
        {C, Q("\"best_of\":0"), "best_of must be 1: best_of is not supported, got 0."},
        {C, Q("\"best_of\":1"), NULL},
        {C, Q("\"logprobs\":-1"), "logprobs must be in [0, 20], got -1."},
        {C, Q("\"logprobs\":0"), NULL},
        {C, Q("\"logprobs\":20"), NULL},
        {C, Q("\"seed\":-9223372036854775808"), NULL},
        {C, Q("\"seed\":-1e19"),
         "`seed` must be an integer in [0, 18446744073709551615] (got -10000000000000000000)"},
        {C, Q("\"tools\":[]"), NULL},
        {C, Q("\"logit_bias\":{}"), NULL},
        {C, Q("\"response_format\":{\"type\":\"text\"}"), NULL},
        /* Completions have no max_completion_tokens: max_tokens is checked. */
        {C, Q("\"max_tokens\":0,\"max_completion_tokens\":5"),
         "max_tokens must be at least 1, got 0."},
        {H, M("\"max_completion_tokens\":1"), NULL},
        /* Chat: max_completion_tokens replaces max_tokens, whose range is
         * then not checked; its type still is. */
        {H, M("\"max_tokens\":0,\"max_completion_tokens\":5"), NULL},
        {H, M("\"max_tokens\":\"x\",\"max_completion_tokens\":5"),
         "`max_tokens` must be an integer (got string)"},
        {H, M("\"max_tokens\":0"), "max_tokens must be at least 1, got 0."},
        {H, M("\"logprobs\":true,\"top_logprobs\":21"), "top_logprobs must be in [0, 20], got 21."},
        {H, M("\"logprobs\":true,\"top_logprobs\":-1"), "top_logprobs must be in [0, 20], got -1."},
        {H, M("\"logprobs\":true,\"top_logprobs\":20"), NULL},
        {H, M("\"logprobs\":false,\"top_logprobs\":0"), NULL},
        {H, M("\"logprobs\":false,\"top_logprobs\":1"),
         "when using `top_logprobs`, `logprobs` must be set to true."},
    };
#undef P
#undef Q
#undef M
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bound_case *k = &cases[i];
        vrt_api_request r;
        vrt_api_error e;
        int rc = parse(&r, k->api, k->body, &e);
        vrt_api_request_free(&r);
        if (!k->msg) {
            if (rc != 0)
                TFAIL("%s: refused: %s", k->body, e.msg);
            continue;
        }
        if (rc != VRT_EINVAL)
            TFAIL("%s: expected VRT_EINVAL, got %d", k->body, rc);
        ASSERT_EQ_INT(e.status, vrt_api_is_openai(k->api) ? 400 : 422);
        int serde = strncmp(k->msg, "parameters.", 11) == 0;
        char want[1024];
        snprintf(want, sizeof want, "%s%s", serde ? deser : "", k->msg);
        ASSERT_EQ_STR(e.msg, want);
        /* The param names a field of the body. */
        char quoted[80];
        snprintf(quoted, sizeof quoted, "\"%s\"", e.param);
        ASSERT(e.param[0] != '\0');
        ASSERT_CONTAINS(k->body, quoted);
        if (!check_error_body(k->api, &e))
            TFAIL("bad error body for %s", k->body);
    }
}

TEST(api_utf8_helpers)
{
    size_t bad = 99;
    ASSERT(vrt_api_utf8_valid("h\xc3\xa9llo \xf0\x9f\x98\x80", 11, &bad));
    ASSERT(!vrt_api_utf8_valid("ab\xe2\x82", 4, &bad));
    ASSERT_EQ_INT(bad, 2);
    char *s = vrt_api_utf8_sanitize("a\xff"
                                    "b\xe2\x82",
                                    5);
    ASSERT_EQ_STR(s, "a\xef\xbf\xbd"
                     "b\xef\xbf\xbd\xef\xbf\xbd");
    free(s);
    s = vrt_api_utf8_sanitize("a\0b", 3);
    ASSERT_EQ_STR(s, "a\xef\xbf\xbd"
                     "b");
    free(s);
}

/* ---- rendering ----------------------------------------------------------- */

static cJSON *jparse(const char *s)
{
    return s ? cJSON_Parse(s) : NULL;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(j) ? j->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *k)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(j) ? j->valuedouble : -12345;
}

/* The names of o's keys, comma separated, in order. */
static void keys(const cJSON *o, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (const cJSON *c = o ? o->child : NULL; c; c = c->next) {
        if (buf[0])
            strncat(buf, ",", cap - strlen(buf) - 1);
        strncat(buf, c->string ? c->string : "?", cap - strlen(buf) - 1);
    }
}

#define ASSERT_KEYS(obj, want)                                                                     \
    do {                                                                                           \
        char kb_[512];                                                                             \
        keys(obj, kb_, sizeof kb_);                                                                \
        ASSERT_EQ_STR(kb_, want);                                                                  \
    } while (0)

static const vrt_api_token TOKS[] = {
    {17, " Hello", -0.25f, 0}, {18, " w\xc3\xb6rld", -1.5f, 0}, {2, "</s>", -0.0625f, 1}};
static const vrt_api_token TOP[] = {{17, " Hello", -0.25f, 0},       {99, " Hi", -2.0f, 0},
                                    {18, " w\xc3\xb6rld", -1.5f, 0}, {98, " there", -1.75f, 0},
                                    {2, "</s>", -0.0625f, 1},        {3, "\xff", -4.0f, 0}};
static const vrt_api_token PRE[] = {{1, "<s>", NAN, 1}, {5, "Hi", -3.5f, 0}};

static vrt_api_result sample_result(void)
{
    vrt_api_result res = {0};
    res.id = "cmpl-abc";
    res.model = "tiny";
    res.created = 1700000000;
    res.system_fingerprint = "v100rt-0.1.0";
    res.prompt = "Say:";
    res.text = " Hello w\xc3\xb6rld";
    res.text_len = strlen(res.text);
    res.finish_reason = "eos_token";
    res.seed = 18446744073709551615ULL;
    res.has_seed = 1;
    res.n_prompt_tokens = 2;
    res.n_generated_tokens = 3;
    res.tokens = TOKS;
    res.n_tokens = 3;
    res.top = TOP;
    res.n_top = 2;
    res.prefill = PRE;
    res.n_prefill = 2;
    return res;
}

static int parse_ok(vrt_api_request *r, int api, const char *body)
{
    vrt_api_error e;
    int rc = parse(r, api, body, &e);
    if (rc)
        fprintf(stderr, "  parse: %s\n", e.msg);
    return rc;
}

TEST(api_render_tgi_generate)
{
    vrt_api_request rq;
    ASSERT_EQ_INT(parse_ok(&rq, VRT_API_TGI_GENERATE, "{\"inputs\":\"Say:\"}"), 0);
    vrt_api_result res = sample_result();
    char *s = vrt_api_render_generate(&rq, &res);
    ASSERT_EQ_STR(s, "{\"generated_text\":\" Hello w\xc3\xb6rld\"}");
    free(s);
    vrt_api_request_free(&rq);

    ASSERT_EQ_INT(parse_ok(&rq, VRT_API_TGI_GENERATE,
                           "{\"inputs\":\"Say:\",\"parameters\":{\"details\":true,"
                           "\"decoder_input_details\":true,\"top_n_tokens\":2,"
                           "\"return_full_text\":true}}"),
                  0);
    s = vrt_api_render_generate(&rq, &res);
    cJSON *j = jparse(s);
    ASSERT(j);
    ASSERT_KEYS(j, "generated_text,details");
    ASSERT_EQ_STR(jstr(j, "generated_text"), "Say: Hello w\xc3\xb6rld");
    cJSON *d = cJSON_GetObjectItem(j, "details");
    ASSERT_KEYS(d, "finish_reason,generated_tokens,seed,prefill,tokens,top_tokens");
    ASSERT_EQ_STR(jstr(d, "finish_reason"), "eos_token");
    ASSERT_EQ_INT(jnum(d, "generated_tokens"), 3);
    /* u64 seeds print exactly. */
    ASSERT_CONTAINS(s, "\"seed\":18446744073709551615,");
    cJSON *pre = cJSON_GetObjectItem(d, "prefill");
    ASSERT_EQ_INT(cJSON_GetArraySize(pre), 2);
    ASSERT_KEYS(cJSON_GetArrayItem(pre, 0), "id,text,logprob");
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(pre, 0), "logprob")));
    ASSERT_NEAR(jnum(cJSON_GetArrayItem(pre, 1), "logprob"), -3.5, 0);
    cJSON *toks = cJSON_GetObjectItem(d, "tokens");
    ASSERT_EQ_INT(cJSON_GetArraySize(toks), 3);
    cJSON *t2 = cJSON_GetArrayItem(toks, 2);
    ASSERT_KEYS(t2, "id,text,logprob,special");
    ASSERT_EQ_INT(jnum(t2, "id"), 2);
    ASSERT(cJSON_IsTrue(cJSON_GetObjectItem(t2, "special")));
    ASSERT(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetArrayItem(toks, 0), "special")));
    /* Shortest float form, as serde/ryu prints f32. */
    ASSERT_CONTAINS(s, "\"logprob\":-0.25,");
    ASSERT_CONTAINS(s, "\"logprob\":-0.0625,");
    cJSON *tt = cJSON_GetObjectItem(d, "top_tokens");
    ASSERT_EQ_INT(cJSON_GetArraySize(tt), 3);
    ASSERT_EQ_INT(cJSON_GetArraySize(cJSON_GetArrayItem(tt, 2)), 2);
    /* Invalid UTF-8 in a token text becomes U+FFFD. */
    ASSERT_EQ_STR(jstr(cJSON_GetArrayItem(cJSON_GetArrayItem(tt, 2), 1), "text"), "\xef\xbf\xbd");
    cJSON_Delete(j);
    free(s);

    /* No seed -> null; no top tokens asked -> no top_tokens key; no
     * decoder_input_details -> empty prefill. */
    rq.top_n_tokens = 0;
    rq.decoder_input_details = 0;
    res.has_seed = 0;
    s = vrt_api_render_generate(&rq, &res);
    j = jparse(s);
    d = cJSON_GetObjectItem(j, "details");
    ASSERT_KEYS(d, "finish_reason,generated_tokens,seed,prefill,tokens");
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(d, "seed")));
    ASSERT_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(d, "prefill")), 0);
    cJSON_Delete(j);
    free(s);
    vrt_api_request_free(&rq);

    /* POST / answers with an array. */
    ASSERT_EQ_INT(parse_ok(&rq, VRT_API_TGI_COMPAT, "{\"inputs\":\"Say:\"}"), 0);
    s = vrt_api_render_generate(&rq, &res);
    ASSERT_EQ_STR(s, "[{\"generated_text\":\" Hello w\xc3\xb6rld\"}]");
    free(s);
    vrt_api_request_free(&rq);
}

TEST(api_render_tgi_stream)
{
    vrt_api_request rq;
    ASSERT_EQ_INT(parse_ok(&rq, VRT_API_TGI_GENERATE_STREAM,
                           "{\"inputs\":\"Say:\",\"parameters\":{\"details\":true}}"),
                  0);
    vrt_api_result res = sample_result();
    char *s = vrt_api_render_tgi_stream_event(&rq, &TOKS[0], 0, NULL, 0, NULL);
    ASSERT_EQ_STR(s, "data:{\"index\":1,\"token\":{\"id\":17,\"text\":\" Hello\",\"logprob\":-0.25,"
                     "\"special\":false},\"generated_text\":null,\"details\":null}\n\n");
    free(s);
    s = vrt_api_render_tgi_stream_event(&rq, &TOKS[2], 2, NULL, 0, &res);
    ASSERT(strncmp(s, "data:{", 6) == 0);
    ASSERT(strcmp(s + strlen(s) - 3, "}\n\n") == 0);
    cJSON *j = jparse(s + 5);
    ASSERT(j);
    ASSERT_KEYS(j, "index,token,generated_text,details");
    ASSERT_EQ_INT(jnum(j, "index"), 3);
    ASSERT_EQ_STR(jstr(j, "generated_text"), " Hello w\xc3\xb6rld");
    cJSON *d = cJSON_GetObjectItem(j, "details");
    ASSERT_KEYS(d, "finish_reason,generated_tokens,seed,input_length");
    ASSERT_EQ_INT(jnum(d, "input_length"), 2);
    cJSON_Delete(j);
    free(s);
    /* Top tokens, and details null without "details". */
    rq.top_n_tokens = 2;
    rq.details = 0;
    s = vrt_api_render_tgi_stream_event(&rq, &TOKS[2], 2, TOP + 4, 2, &res);
    j = jparse(s + 5);
    ASSERT_KEYS(j, "index,token,top_tokens,generated_text,details");
    ASSERT_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "top_tokens")), 2);
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(j, "details")));
    cJSON_Delete(j);
    free(s);
    vrt_api_request_free(&rq);

    s = vrt_api_render_stream_error(VRT_API_TGI_GENERATE_STREAM, 500, "generation", "boom \"x\"");
    ASSERT_EQ_STR(s, "data:{\"error\":\"boom \\\"x\\\"\",\"error_type\":\"generation\"}\n\n");
    free(s);
}

TEST(api_render_oai_completion)
{
    vrt_api_request rq;
    ASSERT_EQ_INT(
        parse_ok(&rq, VRT_API_OAI_COMPLETIONS, "{\"prompt\":\"Say:\",\"model\":\"tiny\"}"), 0);
    vrt_api_result res = sample_result();
    char *s = vrt_api_render_completion(&rq, &res);
    cJSON *j = jparse(s);
    ASSERT(j);
    ASSERT_KEYS(j, "id,object,created,model,system_fingerprint,choices,usage");
    ASSERT_EQ_STR(jstr(j, "id"), "cmpl-abc");
    ASSERT_EQ_STR(jstr(j, "object"), "text_completion");
    ASSERT_EQ_INT(jnum(j, "created"), 1700000000);
    ASSERT_EQ_STR(jstr(j, "model"), "tiny");
    cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    ASSERT_KEYS(c, "index,text,logprobs,finish_reason");
    ASSERT_EQ_STR(jstr(c, "text"), " Hello w\xc3\xb6rld");
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(c, "logprobs")));
    ASSERT_EQ_STR(jstr(c, "finish_reason"), "stop");
    cJSON *u = cJSON_GetObjectItem(j, "usage");
    ASSERT_KEYS(u, "prompt_tokens,completion_tokens,total_tokens");
    ASSERT_EQ_INT(jnum(u, "total_tokens"), 5);
    cJSON_Delete(j);
    free(s);
    vrt_api_request_free(&rq);

    /* echo + logprobs: prompt tokens first, offsets in characters. */
    ASSERT_EQ_INT(parse_ok(&rq, VRT_API_OAI_COMPLETIONS,
                           "{\"prompt\":\"Say:\",\"echo\":true,\"logprobs\":2}"),
                  0);
    res.finish_reason = "length";
    s = vrt_api_render_completion(&rq, &res);
    j = jparse(s);
    c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    ASSERT_EQ_STR(jstr(c, "text"), "Say: Hello w\xc3\xb6rld");
    ASSERT_EQ_STR(jstr(c, "finish_reason"), "length");
    cJSON *lp = cJSON_GetObjectItem(c, "logprobs");
    ASSERT_KEYS(lp, "tokens,token_logprobs,top_logprobs,text_offset");
    ASSERT_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(lp, "tokens")), 5);
    ASSERT(cJSON_IsNull(cJSON_GetArrayItem(cJSON_GetObjectItem(lp, "token_logprobs"), 0)));
    ASSERT(cJSON_IsNull(cJSON_GetArrayItem(cJSON_GetObjectItem(lp, "top_logprobs"), 0)));
    cJSON *off = cJSON_GetObjectItem(lp, "text_offset");
    /* "<s>" (3) "Hi" (2) " Hello" (6) " wörld" (6 characters). */
    ASSERT_EQ_INT(cJSON_GetArrayItem(off, 0)->valuedouble, 0);
    ASSERT_EQ_INT(cJSON_GetArrayItem(off, 2)->valuedouble, 5);
    ASSERT_EQ_INT(cJSON_GetArrayItem(off, 3)->valuedouble, 11);
    ASSERT_EQ_INT(cJSON_GetArrayItem(off, 4)->valuedouble, 17);
    /* Sampled token " Hello" is also the top one: one entry, plus " Hi". */
    cJSON *top2 = cJSON_GetArrayItem(cJSON_GetObjectItem(lp, "top_logprobs"), 2);
    ASSERT_KEYS(top2, " Hello, Hi");
    cJSON_Delete(j);
    free(s);
    vrt_api_request_free(&rq);
}

TEST(api_render_oai_chat)
{
    vrt_api_request rq;
    ASSERT_EQ_INT(parse_ok(&rq, VRT_API_OAI_CHAT,
                           "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":"
                           "true,\"top_logprobs\":1}"),
                  0);
    vrt_api_result res = sample_result();
    res.id = "chatcmpl-1";
    char *s = vrt_api_render_completion(&rq, &res);
    cJSON *j = jparse(s);
    ASSERT(j);
    ASSERT_KEYS(j, "id,object,created,model,system_fingerprint,choices,usage");
    ASSERT_EQ_STR(jstr(j, "object"), "chat.completion");
    cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    ASSERT_KEYS(c, "index,message,logprobs,finish_reason");
    cJSON *m = cJSON_GetObjectItem(c, "message");
    ASSERT_KEYS(m, "role,content");
    ASSERT_EQ_STR(jstr(m, "role"), "assistant");
    ASSERT_EQ_STR(jstr(m, "content"), " Hello w\xc3\xb6rld");
    cJSON *content = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "logprobs"), "content");
    ASSERT_EQ_INT(cJSON_GetArraySize(content), 3);
    cJSON *e1 = cJSON_GetArrayItem(content, 1);
    ASSERT_KEYS(e1, "token,logprob,bytes,top_logprobs");
    cJSON *bytes = cJSON_GetObjectItem(e1, "bytes");
    ASSERT_EQ_INT(cJSON_GetArraySize(bytes), 7); /* " w\xc3\xb6rld" */
    ASSERT_EQ_INT(cJSON_GetArrayItem(bytes, 2)->valuedouble, 0xc3);
    cJSON *tl = cJSON_GetObjectItem(e1, "top_logprobs");
    ASSERT_EQ_INT(cJSON_GetArraySize(tl), 1);
    ASSERT_KEYS(cJSON_GetArrayItem(tl, 0), "token,logprob,bytes");
    ASSERT_EQ_STR(jstr(c, "finish_reason"), "stop");
    cJSON_Delete(j);
    free(s);
    vrt_api_request_free(&rq);
}

/* Regression: logprobs=N listed the chosen token twice ("▁the" chosen in
 * context as " the", and again among the alternatives decoded alone as
 * "the"); in chat, top_logprobs[0].token differed from the chosen token.
 * The chosen token among the alternatives is the same entry, with the
 * chosen token's text, whatever text the alternative carried. */
TEST(api_render_logprobs_chosen_token_once)
{
    static const vrt_api_token toks[] = {{7, " the", -0.5f, 0}};
    static const vrt_api_token top[] = {{7, "the", -0.5f, 0}, {9, " The", -1.5f, 0}};
    vrt_api_result res = sample_result();
    res.tokens = toks;
    res.n_tokens = 1;
    res.top = top;
    res.n_top = 2;
    res.text = " the";
    res.text_len = 4;
    vrt_api_request rq;
    ASSERT_EQ_INT(parse_ok(&rq, VRT_API_OAI_COMPLETIONS, "{\"prompt\":\"x\",\"logprobs\":2}"), 0);
    char *s = vrt_api_render_completion(&rq, &res);
    cJSON *j = jparse(s);
    cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    cJSON *tl = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "logprobs"), "top_logprobs");
    ASSERT_KEYS(cJSON_GetArrayItem(tl, 0), " the, The");
    cJSON_Delete(j);
    free(s);
    vrt_api_request_free(&rq);
    ASSERT_EQ_INT(parse_ok(&rq, VRT_API_OAI_CHAT,
                           "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":"
                           "true,\"top_logprobs\":2}"),
                  0);
    s = vrt_api_render_completion(&rq, &res);
    j = jparse(s);
    c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    cJSON *e0 =
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(c, "logprobs"), "content"), 0);
    cJSON *t0 = cJSON_GetArrayItem(cJSON_GetObjectItem(e0, "top_logprobs"), 0);
    ASSERT_EQ_STR(jstr(e0, "token"), " the");
    ASSERT_EQ_STR(jstr(t0, "token"), " the");
    ASSERT_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(t0, "bytes")), 4);
    ASSERT_EQ_STR(jstr(cJSON_GetArrayItem(cJSON_GetObjectItem(e0, "top_logprobs"), 1), "token"),
                  " The");
    cJSON_Delete(j);
    free(s);
    vrt_api_request_free(&rq);
}

TEST(api_render_oai_stream)
{
    vrt_api_request rq;
    ASSERT_EQ_INT(parse_ok(&rq, VRT_API_OAI_CHAT,
                           "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":true,"
                           "\"stream_options\":{\"include_usage\":true}}"),
                  0);
    vrt_api_result meta = sample_result();
    meta.id = "chatcmpl-1";
    char *s = vrt_api_render_oai_role_chunk(&rq, &meta);
    ASSERT(strncmp(s, "data: {", 7) == 0);
    ASSERT(strcmp(s + strlen(s) - 3, "}\n\n") == 0);
    cJSON *j = jparse(s + 6);
    ASSERT_KEYS(j, "id,object,created,model,system_fingerprint,choices,usage");
    ASSERT_EQ_STR(jstr(j, "object"), "chat.completion.chunk");
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(j, "usage")));
    cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    ASSERT_KEYS(c, "index,delta,logprobs,finish_reason");
    ASSERT_KEYS(cJSON_GetObjectItem(c, "delta"), "role,content");
    ASSERT_EQ_STR(jstr(cJSON_GetObjectItem(c, "delta"), "content"), "");
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(c, "finish_reason")));
    cJSON_Delete(j);
    free(s);

    vrt_api_delta d = {.text = " Hello", .text_len = 6, .tokens = TOKS, .n_tokens = 1};
    s = vrt_api_render_oai_chunk(&rq, &meta, &d);
    j = jparse(s + 6);
    c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    ASSERT_KEYS(cJSON_GetObjectItem(c, "delta"), "content");
    ASSERT_EQ_STR(jstr(cJSON_GetObjectItem(c, "delta"), "content"), " Hello");
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(c, "logprobs")));
    cJSON_Delete(j);
    free(s);

    vrt_api_delta fin = {.text = "", .text_len = 0, .finish_reason = "stop_sequence"};
    s = vrt_api_render_oai_chunk(&rq, &meta, &fin);
    j = jparse(s + 6);
    c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    ASSERT_KEYS(cJSON_GetObjectItem(c, "delta"), "");
    ASSERT_EQ_STR(jstr(c, "finish_reason"), "stop");
    cJSON_Delete(j);
    free(s);

    s = vrt_api_render_oai_usage_chunk(&rq, &meta);
    j = jparse(s + 6);
    ASSERT_EQ_INT(cJSON_GetArraySize(cJSON_GetObjectItem(j, "choices")), 0);
    ASSERT_EQ_INT(jnum(cJSON_GetObjectItem(j, "usage"), "completion_tokens"), 3);
    cJSON_Delete(j);
    free(s);
    ASSERT_EQ_STR(VRT_API_SSE_DONE, "data: [DONE]\n\n");
    vrt_api_request_free(&rq);

    /* Completions stream chunks, with logprobs and offsets. */
    ASSERT_EQ_INT(
        parse_ok(&rq, VRT_API_OAI_COMPLETIONS, "{\"prompt\":\"x\",\"stream\":true,\"logprobs\":1}"),
        0);
    vrt_api_delta d2 = {.text = " w\xc3\xb6rld",
                        .text_len = 7,
                        .tokens = TOKS + 1,
                        .n_tokens = 1,
                        .top = TOP + 2,
                        .n_top = 2,
                        .text_offset = 6,
                        .finish_reason = "length"};
    s = vrt_api_render_oai_chunk(&rq, &meta, &d2);
    j = jparse(s + 6);
    ASSERT_KEYS(j, "id,object,created,model,system_fingerprint,choices");
    ASSERT_EQ_STR(jstr(j, "object"), "text_completion");
    c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    ASSERT_KEYS(c, "index,text,logprobs,finish_reason");
    ASSERT_EQ_STR(jstr(c, "finish_reason"), "length");
    cJSON *off = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "logprobs"), "text_offset");
    ASSERT_EQ_INT(cJSON_GetArrayItem(off, 0)->valuedouble, 6);
    cJSON_Delete(j);
    free(s);
    vrt_api_request_free(&rq);

    s = vrt_api_render_stream_error(VRT_API_OAI_CHAT, 500, "internal_error", "boom");
    ASSERT_EQ_STR(s, "data: {\"error\":{\"message\":\"boom\",\"type\":\"internal_error\","
                     "\"param\":null,\"code\":500}}\n\n");
    free(s);
}

TEST(api_render_invalid_utf8_text)
{
    vrt_api_request rq;
    ASSERT_EQ_INT(parse_ok(&rq, VRT_API_OAI_COMPLETIONS, "{\"prompt\":\"x\"}"), 0);
    vrt_api_result res = sample_result();
    res.text = "ok\xe2\x82 \xff\0tail";
    res.text_len = 11;
    char *s = vrt_api_render_completion(&rq, &res);
    cJSON *j = jparse(s);
    ASSERT(j);
    cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    ASSERT_EQ_STR(jstr(c, "text"), "ok\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbdtail");
    cJSON_Delete(j);
    free(s);
    vrt_api_request_free(&rq);

    vrt_api_error e = {0};
    vrt_api_error_set(&e, VRT_API_TGI_GENERATE, 0, NULL, "bad \xff byte");
    s = vrt_api_error_body(VRT_API_TGI_GENERATE, &e);
    j = jparse(s);
    ASSERT(j);
    ASSERT_EQ_STR(jstr(j, "error"), "bad \xef\xbf\xbd byte");
    cJSON_Delete(j);
    free(s);
}

TEST(api_render_info_models)
{
    vrt_api_info in = {.model_id = "models/tiny",
                       .model_dtype = "float16",
                       .model_device_type = "cuda",
                       .max_concurrent_requests = 8,
                       .max_best_of = 1,
                       .max_stop_sequences = 4,
                       .max_input_tokens = 2048,
                       .max_total_tokens = 4096,
                       .validation_workers = 2,
                       .max_client_batch_size = 4,
                       .version = "0.1.0",
                       .created = 1700000000};
    char *s = vrt_api_render_info(&in);
    cJSON *j = jparse(s);
    ASSERT(j);
    ASSERT_KEYS(j, "model_id,model_sha,model_dtype,model_device_type,model_pipeline_tag,"
                   "max_concurrent_requests,max_best_of,max_stop_sequences,max_input_tokens,"
                   "max_total_tokens,validation_workers,max_client_batch_size,router,version,sha,"
                   "docker_label");
    ASSERT_EQ_STR(jstr(j, "router"), "v100rt");
    ASSERT_EQ_INT(jnum(j, "max_total_tokens"), 4096);
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(j, "sha")));
    ASSERT(cJSON_IsNull(cJSON_GetObjectItem(j, "docker_label")));
    cJSON_Delete(j);
    free(s);
    s = vrt_api_render_models(&in);
    j = jparse(s);
    ASSERT_KEYS(j, "object,data");
    ASSERT_EQ_STR(jstr(j, "object"), "list");
    cJSON *m = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "data"), 0);
    ASSERT_KEYS(m, "id,object,created,owned_by,root,parent,max_model_len");
    ASSERT_EQ_STR(jstr(m, "id"), "models/tiny");
    ASSERT_EQ_STR(jstr(m, "object"), "model");
    cJSON_Delete(j);
    free(s);
    /* server.served_model_names: one entry per name, root the model's path. */
    const char *names[] = {"tiny", "gpt-3.5-turbo"};
    in.model_names = names;
    in.n_model_names = 2;
    in.model_root = "/models/tiny";
    s = vrt_api_render_models(&in);
    j = jparse(s);
    cJSON *data = cJSON_GetObjectItem(j, "data");
    ASSERT_EQ_INT(cJSON_GetArraySize(data), 2);
    ASSERT_EQ_STR(jstr(cJSON_GetArrayItem(data, 0), "id"), "tiny");
    ASSERT_EQ_STR(jstr(cJSON_GetArrayItem(data, 1), "id"), "gpt-3.5-turbo");
    ASSERT_EQ_STR(jstr(cJSON_GetArrayItem(data, 1), "root"), "/models/tiny");
    cJSON_Delete(j);
    free(s);
    /* GET /v1/models/{id}: the one entry. */
    s = vrt_api_render_model(&in, "gpt-3.5-turbo");
    j = jparse(s);
    ASSERT_KEYS(j, "id,object,created,owned_by,root,parent,max_model_len");
    ASSERT_EQ_STR(jstr(j, "id"), "gpt-3.5-turbo");
    cJSON_Delete(j);
    free(s);
}

/* Regression: huggingface_hub's InferenceClient(base_url=...).chat_completion
 * sends "model": "tgi" and got 404. server.strict_model_name = false (the
 * default) accepts any "model" as TGI does and reports the served name;
 * a listed name (server.served_model_names) is reported as given. */
TEST(api_model_name_any_by_default)
{
    const char *names[] = {"tiny", "alias-b"};
    vrt_api_models m = {.names = names, .n_names = 2, .paths = {"models/tiny", "/abs/models/tiny"}};
    vrt_api_error e = {0};
    const char *got = NULL;
    ASSERT_EQ_INT(vrt_api_model_name(&m, VRT_API_OAI_CHAT, "tgi", &got, &e), 0);
    ASSERT_EQ_STR(got, "tiny");
    ASSERT_EQ_INT(vrt_api_model_name(&m, VRT_API_OAI_CHAT, NULL, &got, &e), 0);
    ASSERT_EQ_STR(got, "tiny");
    ASSERT_EQ_INT(vrt_api_model_name(&m, VRT_API_OAI_COMPLETIONS, "alias-b", &got, &e), 0);
    ASSERT_EQ_STR(got, "alias-b");
    ASSERT_EQ_INT(vrt_api_model_name(&m, VRT_API_OAI_COMPLETIONS, "models/tiny", &got, &e), 0);
    ASSERT_EQ_STR(got, "tiny");
}

/* server.strict_model_name = true is vLLM: a name that is neither listed
 * nor the model's path is 404 with the OpenAI error envelope. */
TEST(api_model_name_strict_is_vllm)
{
    const char *names[] = {"tiny", "alias-b"};
    vrt_api_models m = {
        .names = names, .n_names = 2, .paths = {"models/tiny", "/abs/models/tiny"}, .strict = 1};
    vrt_api_error e = {0};
    const char *got = NULL;
    ASSERT_EQ_INT(vrt_api_model_name(&m, VRT_API_OAI_CHAT, "alias-b", &got, &e), 0);
    ASSERT_EQ_STR(got, "alias-b");
    ASSERT_EQ_INT(vrt_api_model_name(&m, VRT_API_OAI_CHAT, "/abs/models/tiny", &got, &e), 0);
    ASSERT_EQ_STR(got, "tiny");
    ASSERT_EQ_INT(vrt_api_model_name(&m, VRT_API_OAI_CHAT, "tgi", &got, &e), VRT_ENOENT);
    ASSERT_EQ_INT(e.status, 404);
    char *s = vrt_api_error_body(VRT_API_OAI_CHAT, &e);
    cJSON *j = jparse(s);
    cJSON *eo = cJSON_GetObjectItem(j, "error");
    ASSERT_KEYS(eo, "message,type,param,code");
    ASSERT_EQ_STR(jstr(eo, "type"), "NotFoundError");
    ASSERT_EQ_STR(jstr(eo, "param"), "model");
    ASSERT_CONTAINS(jstr(eo, "message"), "The model `tgi` does not exist");
    ASSERT_CONTAINS(jstr(eo, "message"), "`tiny`, `alias-b`");
    cJSON_Delete(j);
    free(s);
}
