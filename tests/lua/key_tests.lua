-- key_tests.lua — for every key of the config schema (lua/v100rt/config.lua),
-- the tests that prove its effect: what the key changes is observed, not only
-- that the value parses. tests/lua/test_keys.lua fails when a schema key has
-- no entry here, when an entry names a key the schema no longer has, and when
-- a named test does not exist.
--
-- A test is named "suite:name":
--   unit:NAME  TEST(NAME) in tests/unit/*.c
--   lua:NAME   T.NAME in tests/lua/test_*.lua
--   cli:NAME   T="NAME" in tests/cli/*.sh
--   e2e:NAME   def NAME( in tests/e2e/*.py
return {
  keys = {
    ["batching.max_batch_size"] = { "unit:engine_max_batch_size_limits_every_step",
      "unit:sched_max_batch_size_caps_the_running_requests" },
    ["batching.max_waiting_tokens"] = { "unit:engine_max_waiting_tokens_defers_new_prefills",
      "unit:sched_max_waiting_tokens_defers_new_requests_while_a_batch_runs" },
    ["batching.waiting_served_ratio"] = { "unit:engine_waiting_served_ratio_sets_when_waiting_requests_join",
      "unit:engine_max_waiting_tokens_defers_new_prefills" },
    ["batching.chunked_prefill"] = { "unit:engine_chunked_prefill_false_prefills_each_prompt_in_one_step",
      "unit:engine_chunked_prefill_false_with_preemption_loses_nothing",
      "unit:sched_chunked_prefill_off_prefills_each_prompt_in_one_step" },
    ["server.served_model_names"] = { "e2e:t_model_names", "unit:api_render_info_models" },
    ["server.strict_model_name"] = { "e2e:t_model_names", "e2e:t_hf_chat", "unit:api_model_name_strict_is_vllm",
      "unit:api_model_name_any_by_default" },
    ["model.path"] = { "lua:runtime_load_describes_the_model", "lua:load_src_model_dir_is_model_path_with_defaults" },
    ["model.dtype"] = { "lua:runtime_dtype_kind_and_cache_keys_take_effect",
      "lua:trained_heldout_perplexity_float32_matches_transformers" },
    ["model.quantize"] = { "unit:quant_model_quantize_key_must_agree", "unit:runtime_describe_names_int4_weights",
      "cli:check: model.quantize must agree with the checkpoint" },
    ["model.max_model_len"] = { "lua:max_model_len_sets_total" },
    ["model.tokenizer"] = { "lua:runtime_model_tokenizer_dir_is_used" },
    ["model.name"] = { "e2e:t_basic_routes" },
    ["model.chat_template"] = { "unit:chat_lua_renders_errors_and_budget", "unit:chat_detect",
      "lua:chat_template_function_or_name" },
    -- Accepted for compatibility and documented as doing nothing (v100rt
    -- never runs Python code from a model repository).
    ["model.trust_remote_code"] = { "lua:every_alias_maps" },
    ["device.kind"] = { "lua:runtime_dtype_kind_and_cache_keys_take_effect", "lua:load_src_flags_override_the_file" },
    ["device.gpus"] = { "unit:runtime_backend_opts_follow_device_and_kernels",
      "cli:check: several GPUs with tensor 1 warn that only the first is used" },
    ["device.memory_fraction"] = { "unit:plan_mistral_7b_on_v100s", "cli:plan: device.memory_fraction sets the budget" },
    ["device.threads"] = { "unit:runtime_backend_opts_follow_device_and_kernels" },
    ["parallel.tensor"] = { "lua:tensor_parallel_refused", "unit:runtime_open_refuses_tensor_parallel",
      "cli:check: tensor parallelism refused from every spelling" },
    ["cache.block_size"] = { "unit:runtime_open_takes_every_setting_from_the_config",
      "lua:runtime_dtype_kind_and_cache_keys_take_effect" },
    ["cache.swap_space"] = { "unit:engine_preemption_loses_nothing", "unit:runtime_open_takes_every_setting_from_the_config",
      "e2e:t_preemption" },
    ["cache.prefix_caching"] = { "unit:engine_prefix_caching_key_turns_the_cache_on_and_off",
      "unit:engine_prefix_cache_hits_and_changes_nothing" },
    ["cache.num_blocks"] = { "unit:runtime_open_takes_every_setting_from_the_config", "unit:engine_preemption_loses_nothing" },
    ["batching.max_input_tokens"] = { "lua:runtime_errors_carry_the_c_message" },
    ["batching.max_total_tokens"] = { "lua:runtime_errors_carry_the_c_message" },
    ["batching.max_batch_prefill_tokens"] = { "lua:runtime_chunked_prefill_gives_the_same_logits",
      "unit:runtime_open_takes_every_setting_from_the_config" },
    ["batching.max_concurrent_requests"] = { "e2e:t_overload_and_drain" },
    ["batching.preemption"] = { "unit:engine_preemption_loses_nothing", "unit:runtime_open_takes_every_setting_from_the_config" },
    ["batching.policy"] = { "unit:engine_policy_pick_victim_and_builtins", "unit:engine_policy_hook_errors_fail_only_their_request",
      "unit:runtime_open_takes_every_setting_from_the_config" },
    ["server.host"] = { "cli:serve: server.host and server.port are where it listens" },
    ["server.port"] = { "cli:serve: server.host and server.port are where it listens" },
    ["server.api_keys"] = { "cli:serve: server.api_keys and server.cors_allow_origin", "unit:http_api_keys" },
    ["server.payload_limit"] = { "e2e:t_payload_limit", "unit:http_413_payload_too_large" },
    ["server.max_connections"] = { "unit:http_connection_cap" },
    ["server.read_timeout"] = { "e2e:t_slow_header", "unit:http_408_slow_request" },
    ["server.keep_alive_timeout"] = { "unit:http_keep_alive_idle_timeout" },
    ["server.cors_allow_origin"] = { "cli:serve: server.api_keys and server.cors_allow_origin", "unit:http_cors" },
    ["kernels.custom"] = { "unit:runtime_backend_opts_follow_device_and_kernels", "unit:ops_attention" },
    ["kernels.cuda_graphs"] = { "unit:runtime_open_takes_every_setting_from_the_config", "unit:forward_cuda_graph_decode" },
    -- The nccl keys only feed the environment: proven by reading it back.
    ["nccl.debug"] = { "unit:config_nccl_every_key_reaches_the_environment",
      "cli:serve: logs the NCCL variables it applied and those the environment kept" },
    ["nccl.debug_subsys"] = { "unit:config_nccl_every_key_reaches_the_environment" },
    ["nccl.p2p_disable"] = { "unit:config_nccl_every_key_reaches_the_environment" },
    ["nccl.p2p_level"] = { "unit:config_nccl_every_key_reaches_the_environment",
      "cli:serve: logs the NCCL variables it applied and those the environment kept" },
    ["nccl.ib_disable"] = { "unit:config_nccl_every_key_reaches_the_environment" },
    ["nccl.shm_disable"] = { "unit:config_nccl_every_key_reaches_the_environment" },
    ["nccl.socket_ifname"] = { "unit:config_nccl_every_key_reaches_the_environment" },
    ["nccl.extra"] = { "unit:config_nccl_every_key_reaches_the_environment" },
    ["logging.level"] = { "unit:runtime_open_applies_logging_keys", "cli:serve: logging.format json and logging.level warn" },
    ["logging.format"] = { "unit:runtime_open_applies_logging_keys", "cli:serve: logging.format json and logging.level warn",
      "unit:log_text_and_json" },
  },

  -- PENDING: keys whose proving tests are not written yet. While this set
  -- is not empty the key-coverage test fails with this list.
  pending = {
  },
}
