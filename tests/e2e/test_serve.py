#!/usr/bin/env python3
"""test_serve.py — end-to-end tests of `v100rt serve` over real sockets.

Started by tests/e2e/run_e2e.sh, which makes the tiny random model and (when
PyPI is reachable) the venv with the official client libraries. Every server
listens on 127.0.0.1 with --port 0 --port-file, is waited for with GET /health
(bounded) and stopped with SIGTERM (it must exit 0). Everything here is
bounded in time: sockets have timeouts, waits have deadlines.

Prints one line per test ("ok    name", "FAIL  name: why", "SKIP  name: why")
and "RESULT passed failed" last. Python 3.11 stdlib only, except the client
tests, which import openai / huggingface_hub when run from the venv.
"""
import argparse
import concurrent.futures as cf
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

HOST = "127.0.0.1"
passed = 0
failed = 0
ARGS = None


class Skip(Exception):
    pass


def line(s):
    print(s, flush=True)


NOTES = []


def note(s):
    """A measurement shown on the current test's ok line."""
    NOTES.append(s)


def one_line(e):
    return " | ".join(x for x in str(e).replace("\r", "").split("\n") if x)


def run_test(name, fn, *a):
    """Runs one test; an AssertionError (or any exception) is a FAIL."""
    global passed, failed
    t0 = time.monotonic()
    NOTES.clear()
    try:
        fn(*a)
    except Skip as e:
        line(f"SKIP  {name}: {one_line(e)}")
        return
    except AssertionError as e:
        failed += 1
        line(f"FAIL  {name}: {one_line(e)}")
        return
    except Exception as e:  # an unexpected error is a failure, with its type
        failed += 1
        line(f"FAIL  {name}: {type(e).__name__}: {one_line(e)}")
        return
    passed += 1
    dt = time.monotonic() - t0
    notes = NOTES + ([f"{dt:.1f}s"] if dt >= 1 else [])
    line(f"ok    {name}" + (f" ({'; '.join(notes)})" if notes else ""))


def check(cond, why):
    if not cond:
        raise AssertionError(why)


def short(b, n=300):
    if isinstance(b, bytes):
        b = b.decode("utf-8", "replace")
    return b if len(b) <= n else b[:n] + "..."


# ---- servers ----------------------------------------------------------------------


def _die_with_parent():
    """Child side of Popen: SIGKILL the server if this script dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


SERVERS = []


class Server:
    """One `v100rt serve` process with its own config, port file and log."""

    def __init__(self, name, cache, batching, server=None):
        self.name = name
        self.dir = os.path.join(ARGS.tmp, name)
        os.makedirs(self.dir, exist_ok=True)
        srv = {"port": 0, "read_timeout": 1, "payload_limit": 10000}
        srv.update(server or {})

        def lua(t):
            return "{ " + ", ".join(f"{k} = {v}" for k, v in t.items()) + " }"

        self.cfg = os.path.join(self.dir, "config.lua")
        with open(self.cfg, "w") as f:
            f.write(
                "return {\n"
                f'  model = {{ path = "{ARGS.model}", name = "tiny" }},\n'
                f'  device = {{ kind = "cpu", threads = {ARGS.threads} }},\n'
                f"  cache = {lua(cache)},\n"
                f"  batching = {lua(batching)},\n"
                f"  server = {lua(srv)},\n"
                "}\n"
            )
        self.port_file = os.path.join(self.dir, "port")
        self.log_path = os.path.join(self.dir, "log")
        self.proc = None
        self.port = None
        self.health_seen = []  # /health statuses seen while waiting
        self.health_errors = []  # connection errors after the port file appeared

    def start(self, timeout=60):
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)
        log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [ARGS.bin, "serve", self.cfg, "--port", "0", "--port-file", self.port_file],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        log.close()
        SERVERS.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the port file, complete with its newline
            try:
                with open(self.port_file) as f:
                    txt = f.read()
                if txt.endswith("\n"):
                    self.port = int(txt)
                    break
            except (OSError, ValueError):
                pass
            check(self.proc.poll() is None, f"{self.name}: server exited {self.proc.returncode} "
                  f"before writing the port file: {self.log_tail()}")
            time.sleep(0.01)
        check(self.port, f"{self.name}: no port file after {timeout}s: {self.log_tail()}")
        while time.monotonic() < deadline:
            try:
                st, _, _ = request(self.port, "GET", "/health", timeout=5)
                self.health_seen.append(st)
                if st == 200:
                    return self
            except OSError as e:
                self.health_errors.append(repr(e))
            check(self.proc.poll() is None,
                  f"{self.name}: server exited {self.proc.returncode}: {self.log_tail()}")
            time.sleep(0.02)
        raise AssertionError(f"{self.name}: /health not 200 within {timeout}s: {self.log_tail()}")

    def stop(self, timeout=15):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return None

    def log_tail(self, n=600):
        try:
            with open(self.log_path, errors="replace") as f:
                return short(f.read()[-n:], n)
        except OSError:
            return "(no log)"


def kill_all():
    for s in SERVERS:
        if s.proc and s.proc.poll() is None:
            s.proc.kill()
            try:
                s.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass


# ---- HTTP helpers -----------------------------------------------------------------


def request(port, method, path, body=None, headers=None, timeout=60):
    """One request on a fresh connection: (status, headers, body bytes)."""
    h = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    elif isinstance(body, str):
        body = body.encode()
        h.setdefault("Content-Type", "application/json")
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=h)
        r = c.getresponse()
        data = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    finally:
        c.close()


def post_json(port, path, body, expect=200, timeout=60):
    st, _, data = request(port, "POST", path, body, timeout=timeout)
    check(st == expect, f"POST {path}: status {st}, expected {expect}: {short(data)}")
    return json.loads(data) if data else None


def sse_events(port, path, body, timeout=120):
    """POSTs a streaming request; returns the list of decoded data: payloads."""
    c = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        c.request("POST", path, body=json.dumps(body).encode(),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        if r.status != 200:
            raise AssertionError(f"POST {path}: status {r.status}: {short(r.read())}")
        check(r.getheader("Content-Type", "").startswith("text/event-stream"),
              f"content-type {r.getheader('Content-Type')}")
        out = []
        while True:
            ln = r.readline()
            if not ln:
                break
            ln = ln.strip()
            if ln.startswith(b"data:"):
                p = ln[5:].strip()
                out.append(p.decode() if p == b"[DONE]" else json.loads(p))
        return out
    finally:
        c.close()


def metrics(port):
    """GET /metrics parsed to {sample name: value}, labels dropped and summed;
    labelled samples are also there under their full name{labels}."""
    st, _, data = request(port, "GET", "/metrics", timeout=30)
    check(st == 200, f"/metrics status {st}")
    out = {}
    for ln in data.decode().splitlines():
        if not ln or ln.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", ln)
        if m and not m.group(2) or (m and "le=" not in m.group(2)):
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
            if m.group(2):
                out[m.group(1) + m.group(2)] = float(m.group(3))
    return out


def wait_idle(port, timeout=60):
    """Waits until nothing runs or waits and no KV block is in use."""
    deadline = time.monotonic() + timeout
    m = {}
    while time.monotonic() < deadline:
        m = metrics(port)
        if (m.get("vllm:num_requests_running", -1) == 0 and m.get("vllm:num_requests_waiting", -1) == 0
                and m.get("vllm:kv_cache_usage_perc", -1) == 0):
            return m
        time.sleep(0.1)
    keys = ("vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc")
    raise AssertionError(f"not idle after {timeout}s: " + ", ".join(f"{k}={m.get(k)}" for k in keys))


def health_ok(port):
    st, _, data = request(port, "GET", "/health", timeout=10)
    check(st == 200, f"/health afterwards: {st} {short(data)}")


def greedy(port, prompt, max_new):
    """A greedy TGI /generate: (generated_text, [token ids], finish_reason)."""
    r = post_json(port, "/generate", {"inputs": prompt, "parameters": {
        "max_new_tokens": max_new, "details": True, "do_sample": False}}, timeout=120)
    d = r["details"]
    return r["generated_text"], [t["id"] for t in d["tokens"]], d["finish_reason"]


WORDS = ("the quick brown fox jumps over a lazy dog while seven wizards quietly "
         "mix potent elixirs under the pale northern moon and sing").split()


def prompt_of(i, n_words):
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n_words))


# ---- tests: the main server -------------------------------------------------------


def t_startup_health(s):
    check(not s.health_errors, f"connection errors after the port file appeared: {s.health_errors[:3]}")
    bad = [x for x in s.health_seen if x not in (200, 503)]
    check(not bad, f"/health statuses other than 503/200 while loading: {bad}")


def t_sigpipe_ignored(s):
    """Regression: the server died of SIGPIPE (exit -13) when a client left
    while its stream was being written; it must ignore SIGPIPE."""
    try:
        with open(f"/proc/{s.proc.pid}/status") as f:
            st = f.read()
    except OSError:
        raise Skip("no /proc/PID/status")
    ign = int(re.search(r"^SigIgn:\s*([0-9a-f]+)", st, re.M).group(1), 16)
    check(ign & (1 << (signal.SIGPIPE - 1)), f"SIGPIPE is not ignored (SigIgn {ign:#x})")


def t_basic_routes(s):
    st, _, data = request(s.port, "GET", "/info")
    check(st == 200, f"/info {st}")
    info = json.loads(data)
    check(info["model_id"] == "tiny" and info["max_input_tokens"] == 128
          and info["max_total_tokens"] == 256, f"/info: {short(data)}")
    r = post_json(s.port, "/tokenize", {"inputs": "hello world"})
    check(isinstance(r, list) and r and all("id" in t for t in r), f"/tokenize: {r}")
    r = post_json(s.port, "/", {"inputs": "hello", "parameters": {"max_new_tokens": 2}})
    check(isinstance(r, list) and "generated_text" in r[0], f"POST /: {r}")
    st, _, data = request(s.port, "GET", "/v1/models")
    check(st == 200 and json.loads(data)["data"][0]["id"] == "tiny", f"/v1/models {st}: {short(data)}")


def t_curl(s):
    if not shutil.which("curl"):
        raise Skip("curl is not installed")
    base = f"http://{HOST}:{s.port}"

    def curl(*a):
        p = subprocess.run(["curl", "-sS", "--max-time", "60", *a], capture_output=True, timeout=90)
        check(p.returncode == 0, f"curl {a}: exit {p.returncode}: {short(p.stderr)}")
        return p.stdout

    out = curl("-w", "%{http_code}", "-o", "/dev/null", base + "/health")
    check(out == b"200", f"curl /health: {out}")
    r = json.loads(curl(base + "/generate", "-H", "Content-Type: application/json", "-d",
                        '{"inputs":"hello world","parameters":{"max_new_tokens":5,"details":true}}'))
    check(r["details"]["generated_tokens"] == 5, f"curl /generate: {r}")
    out = curl("-N", base + "/v1/chat/completions", "-H", "Content-Type: application/json", "-d",
               json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
                           "max_tokens": 4, "stream": True}))
    check(out.rstrip().endswith(b"data: [DONE]"), f"curl chat stream: {short(out[-200:])}")
    out = curl(base + "/metrics")
    check(b"vllm:kv_cache_usage_perc" in out, "curl /metrics lacks vllm:kv_cache_usage_perc")


def t_openai(s):
    if ARGS.clients_skip:
        raise Skip(ARGS.clients_skip)
    import openai

    c = openai.OpenAI(base_url=f"http://{HOST}:{s.port}/v1", api_key="none", timeout=60, max_retries=0)
    ref_text, ref_ids, _ = greedy(s.port, "hello world", 8)
    r = c.completions.create(model="tiny", prompt="hello world", max_tokens=8, temperature=0)
    check(r.choices[0].text == ref_text, f"completions text {r.choices[0].text!r} != {ref_text!r}")
    check(r.choices[0].finish_reason == "length", f"finish_reason {r.choices[0].finish_reason}")
    check(r.usage.completion_tokens == 8 and r.usage.prompt_tokens > 0, f"usage {r.usage}")
    parts = [ch.choices[0].text for ch in c.completions.create(
        model="tiny", prompt="hello world", max_tokens=8, temperature=0, stream=True) if ch.choices]
    check("".join(parts) == ref_text, f"stream text {''.join(parts)!r} != {ref_text!r}")
    # Found with the client: a stream with echo left the prompt out (vLLM
    # sends it first); not streamed, it was there.
    parts = [ch.choices[0].text for ch in c.completions.create(
        model="tiny", prompt="hello world", max_tokens=8, temperature=0, stream=True, echo=True)
        if ch.choices]
    r = c.completions.create(model="tiny", prompt="hello world", max_tokens=8, temperature=0, echo=True)
    check("".join(parts) == r.choices[0].text == "hello world" + ref_text,
          f"echo: stream {''.join(parts)!r}, reply {r.choices[0].text!r}, want {'hello world' + ref_text!r}")
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]
    r = c.chat.completions.create(model="tiny", messages=msgs, max_tokens=6, temperature=0)
    text = r.choices[0].message.content
    check(r.choices[0].message.role == "assistant" and r.usage.completion_tokens == 6,
          f"chat: {r}")
    chunks = list(c.chat.completions.create(model="tiny", messages=msgs, max_tokens=6, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    stext = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    check(stext == text, f"chat stream {stext!r} != {text!r}")
    check(chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
          and not chunks[-1].choices, f"last chunk is not the usage chunk: {chunks[-1]}")
    check(any(ch.choices and ch.choices[0].finish_reason == "length" for ch in chunks),
          "no chunk with finish_reason length")
    models = [m.id for m in c.models.list()]
    check(models == ["tiny"], f"models.list: {models}")
    # Found with the client: models.retrieve (GET /v1/models/{id}) was 404.
    m = c.models.retrieve("tiny")
    check(m.id == "tiny" and m.object == "model", f"models.retrieve: {m}")
    try:
        c.models.retrieve("nope")
        raise AssertionError("models.retrieve of an unknown model succeeded")
    except openai.NotFoundError:
        pass
    # server.strict_model_name = false (default): any "model", as TGI; the
    # response reports the served name.
    r = c.completions.create(model="nope", prompt="hello world", max_tokens=8, temperature=0)
    check(r.model == "tiny" and r.choices[0].text == ref_text, f"model nope: {r.model} {r.choices[0].text!r}")


def t_openai_logprobs(s):
    """Regression: completions logprobs=N listed the chosen token twice in
    top_logprobs (" the" and "the", same logprob), and chat top_logprobs[].token
    lost the leading space of the chosen token: alternatives were decoded
    alone, the chosen token in context. Greedy, so the chosen token is the
    most likely one: it must be the only entry with the top logprob."""
    if ARGS.clients_skip:
        raise Skip(ARGS.clients_skip)
    import openai

    c = openai.OpenAI(base_url=f"http://{HOST}:{s.port}/v1", api_key="none", timeout=60, max_retries=0)
    prompt = "In the beginning God created the heaven and the earth. And the earth was"
    r = c.completions.create(model="tiny", prompt=prompt, max_tokens=16, temperature=0, logprobs=5)
    lp = r.choices[0].logprobs
    check(len(lp.tokens) == 16 and len(lp.top_logprobs) == 16, f"logprobs: {lp}")
    check("".join(lp.tokens) == r.choices[0].text, f"tokens {lp.tokens} do not make the text")
    spaced = 0
    for i, (tok, tlp, top) in enumerate(zip(lp.tokens, lp.token_logprobs, lp.top_logprobs)):
        spaced += tok.startswith(" ")
        check(top.get(tok) == tlp, f"position {i}: chosen {tok!r} ({tlp}) not in top_logprobs {top}")
        best = [k for k, v in top.items() if v == max(top.values())]
        check(best == [tok], f"position {i}: the chosen token {tok!r} is not the only most likely "
              f"entry: {top}")
        check(len(top) <= 6, f"position {i}: {len(top)} entries for logprobs=5: {top}")
    check(spaced > 0, f"no generated token starts with a space: {lp.tokens} (the test needs one)")
    # Found with the client: echo with logprobs left out the prompt tokens
    # (vLLM puts them first, the first with null logprob), for every choice.
    r = c.completions.create(model="tiny", prompt=prompt, max_tokens=4, temperature=0, logprobs=2,
                             echo=True, n=2)
    for ch in r.choices:
        elp = ch.logprobs
        check(len(elp.tokens) == r.usage.prompt_tokens + 4, f"echo: {len(elp.tokens)} tokens for "
              f"{r.usage.prompt_tokens} prompt + 4: {elp.tokens}")
        check(elp.token_logprobs[0] is None and elp.top_logprobs[0] is None
              and all(x is not None for x in elp.token_logprobs[1:]), f"echo logprobs {elp.token_logprobs}")
        check("".join(elp.tokens[1:]) == ch.text and ch.text.startswith(prompt),
              f"echo: tokens {elp.tokens[1:]} do not make the text {ch.text!r}")
    # Streamed, the same entries.
    st = [ch.choices[0].logprobs for ch in c.completions.create(
        model="tiny", prompt=prompt, max_tokens=16, temperature=0, logprobs=5, stream=True)
        if ch.choices and ch.choices[0].logprobs and ch.choices[0].logprobs.tokens]
    stoks = [t for x in st for t in x.tokens]
    check(stoks == lp.tokens, f"stream tokens {stoks} differ from {lp.tokens}")
    stop = [t for x in st for t in x.top_logprobs]
    check(stop == lp.top_logprobs, f"stream top_logprobs {stop} differ from {lp.top_logprobs}")
    # Chat: top_logprobs[0] is the chosen token, same text and bytes.
    msgs = [{"role": "user", "content": prompt}]
    r = c.chat.completions.create(model="tiny", messages=msgs, max_tokens=12, temperature=0,
                                  logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    check(len(content) == 12 and "".join(x.token for x in content) == r.choices[0].message.content,
          f"chat logprobs: {content}")
    spaced = 0
    for i, x in enumerate(content):
        spaced += x.token.startswith(" ")
        check(x.bytes == list(x.token.encode()), f"position {i}: bytes of {x.token!r}: {x.bytes}")
        check(len(x.top_logprobs) == 3, f"position {i}: {len(x.top_logprobs)} top_logprobs")
        t0 = x.top_logprobs[0]
        check(t0.token == x.token and t0.bytes == x.bytes and t0.logprob == x.logprob,
              f"position {i}: top_logprobs[0] {t0.token!r} {t0.logprob} != chosen {x.token!r} {x.logprob}")
        others = [t.token for t in x.top_logprobs[1:]]
        check(x.token not in others, f"position {i}: chosen {x.token!r} twice in {others}")
    check(spaced > 0, "no chat token starts with a space (the test needs one)")


def t_tokenize_offsets(s):
    """Regression: /tokenize offsets drifted by one character per
    space-prefixed token ("Hello world, and the LORD" ended at 21 of 25).
    As TGI: start/stop are byte offsets into the input and text is that
    slice; BOS is [0, 0) with text ""."""
    for text in ("Hello world, and the LORD", "  two  spaces ",
                 "na\u00efve caf\u00e9 \u201cquoted\u201d \u65e5\u672c\u8a9e \U0001F600!"):
        toks = post_json(s.port, "/tokenize", {"inputs": text})
        b = text.encode()
        check(toks[0]["start"] == 0 and toks[0]["stop"] == 0 and toks[0]["text"] == "",
              f"{text!r}: BOS {toks[0]}")
        for t in toks:
            check(0 <= t["start"] <= t["stop"] <= len(b), f"{text!r}: span of {t}")
            check(t["text"] == b[t["start"]:t["stop"]].decode(), f"{text!r}: {t} is not the input slice")
        check(toks[-1]["stop"] == len(b.rstrip()) or toks[-1]["stop"] == len(b),
              f"{text!r}: last token ends at {toks[-1]['stop']} of {len(b)}: {toks}")
        check([t["start"] for t in toks] == sorted(t["start"] for t in toks), f"{text!r}: order {toks}")
    toks = post_json(s.port, "/tokenize", {"inputs": "Hello world, and the LORD"})
    check([t["text"] for t in toks[-3:]] == [" and", " the", " LORD"] and toks[-1]["stop"] == 25,
          f"last tokens {toks[-3:]}")


def t_hf(s):
    if ARGS.clients_skip:
        raise Skip(ARGS.clients_skip)
    from huggingface_hub import InferenceClient

    ref_text, ref_ids, _ = greedy(s.port, "hello world", 8)
    c = InferenceClient(base_url=f"http://{HOST}:{s.port}", timeout=60)
    r = c.text_generation("hello world", max_new_tokens=8, details=True)
    check(r.generated_text == ref_text, f"text {r.generated_text!r} != {ref_text!r}")
    check(r.details.finish_reason == "length" and r.details.generated_tokens == 8,
          f"details {r.details.finish_reason} {r.details.generated_tokens}")
    check([t.id for t in r.details.tokens] == ref_ids, "token ids differ")
    text = c.text_generation("hello world", max_new_tokens=8)
    check(text == ref_text, f"plain text {text!r}")
    evs = list(c.text_generation("hello world", max_new_tokens=8, stream=True, details=True))
    check(len(evs) == 8, f"{len(evs)} stream events, expected 8")
    check([e.token.id for e in evs] == ref_ids, "stream token ids differ")
    check(evs[-1].generated_text == ref_text and evs[-1].details.finish_reason == "length"
          and evs[-1].details.generated_tokens == 8, f"last event {evs[-1]}")
    check(all(e.generated_text is None for e in evs[:-1]), "generated_text before the last event")


def t_hf_chat(s):
    """Regression: InferenceClient(base_url=...).chat_completion failed with
    404: the client sends a placeholder "model" ("tgi", "dummy"), which TGI
    accepts. server.strict_model_name = false (default) accepts it too."""
    if ARGS.clients_skip:
        raise Skip(ARGS.clients_skip)
    from huggingface_hub import InferenceClient

    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi there"}]
    want = post_json(s.port, "/v1/chat/completions", {"model": "tiny", "messages": msgs,
                                                       "max_tokens": 6, "temperature": 0})
    c = InferenceClient(base_url=f"http://{HOST}:{s.port}", timeout=60)
    r = c.chat_completion(msgs, max_tokens=6, temperature=0)
    text = want["choices"][0]["message"]["content"]
    check(r.choices[0].message.content == text, f"chat {r.choices[0].message.content!r} != {text!r}")
    check(r.model == "tiny", f"reported model {r.model!r}")
    parts = [ch.choices[0].delta.content or "" for ch in c.chat_completion(
        msgs, max_tokens=6, temperature=0, stream=True) if ch.choices]
    check("".join(parts) == text, f"chat stream {''.join(parts)!r} != {text!r}")
    r = c.chat_completion(msgs, model="tgi", max_tokens=6, temperature=0)
    check(r.model == "tiny" and r.choices[0].message.content == text, f"model tgi: {r}")


def t_model_names():
    """server.served_model_names lists more names (vLLM --served-model-name;
    a response reports the name it was asked for) and
    server.strict_model_name = true refuses other names with 404 (vLLM), also
    the huggingface_hub placeholder."""
    if ARGS.clients_skip:
        raise Skip(ARGS.clients_skip)
    import openai
    from huggingface_hub import InferenceClient

    n = Server("names", {"num_blocks": 64}, {"max_total_tokens": 256, "max_input_tokens": 128},
               {"served_model_names": '{ "alias-a", "alias-b" }', "strict_model_name": "true"})
    n.start()
    try:
        c = openai.OpenAI(base_url=f"http://{HOST}:{n.port}/v1", api_key="none", timeout=60,
                          max_retries=0)
        models = [m.id for m in c.models.list()]
        check(models == ["tiny", "alias-a", "alias-b"], f"models.list: {models}")
        r = c.completions.create(model="alias-b", prompt="hello world", max_tokens=4, temperature=0)
        check(r.model == "alias-b" and r.usage.completion_tokens == 4, f"alias-b: {r}")
        r = c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi"}],
                                      max_tokens=4, temperature=0)
        check(r.model == "tiny", f"tiny: {r.model}")
        try:
            c.completions.create(model="nope", prompt="x", max_tokens=1)
            raise AssertionError("unknown model accepted with strict_model_name = true")
        except openai.NotFoundError as e:
            body = e.body if isinstance(e.body, dict) else {}
            check("alias-a" in str(body.get("message", "")) and body.get("param") == "model",
                  f"404 body {e.body}")
        hf = InferenceClient(base_url=f"http://{HOST}:{n.port}", timeout=60)
        try:
            hf.chat_completion([{"role": "user", "content": "hi"}], max_tokens=2)
            raise AssertionError("placeholder model accepted with strict_model_name = true")
        except Exception as e:  # huggingface_hub raises HfHubHTTPError (404)
            check("404" in str(e), f"{type(e).__name__}: {one_line(e)[:300]}")
        r = hf.chat_completion([{"role": "user", "content": "hi"}], model="alias-a", max_tokens=2)
        check(r.model == "alias-a", f"hf with model alias-a: {r.model}")
        st, _, data = request(n.port, "GET", "/info")
        check(json.loads(data)["model_id"] == "tiny", f"/info: {short(data)}")
    finally:
        rc = n.stop()
    check(rc == 0, f"exit status {rc} after SIGTERM: {n.log_tail()}")


def batch_cases():
    return [(prompt_of(i, 1 + (i * 5) % 60), 4 + (i * 3) % 25) for i in range(32)]


def t_batching(s, refs):
    cases = batch_cases()
    t0 = time.monotonic()
    for p, n in cases:  # one at a time
        refs.append(greedy(s.port, p, n))
    t1 = time.monotonic()
    for (p, n), (_, ids, fin) in zip(cases, refs):
        check(len(ids) == n or fin != "length", f"{len(ids)} tokens for max_new_tokens {n}")
    with cf.ThreadPoolExecutor(32) as ex:  # all at once
        got = list(ex.map(lambda c: greedy(s.port, *c), cases))
    note(f"sequential {t1 - t0:.1f}s, concurrent {time.monotonic() - t1:.1f}s")
    bad = [i for i in range(32) if got[i] != refs[i]]
    check(not bad, f"{len(bad)} of 32 differ when batched, e.g. #{bad[0] if bad else 0}: "
          f"{got[bad[0]][1] if bad else ''} vs {refs[bad[0]][1] if bad else ''}")


def t_stream_matches(s, refs):
    p, n = batch_cases()[5]
    evs = sse_events(s.port, "/generate_stream", {"inputs": p, "parameters": {
        "max_new_tokens": n, "details": True}})
    check([e["token"]["id"] for e in evs] == refs[5][1], "stream ids differ from /generate")
    check(evs[-1]["generated_text"] == refs[5][0], "stream generated_text differs")


def preempt_cases():
    return [(prompt_of(100 + i, 2 + i), 40 + (i % 4) * 5) for i in range(16)]


def t_preempt_refs(s, prefs):
    for p, n in preempt_cases():
        prefs.append(greedy(s.port, p, n))


def t_preemption(prefs, mode):
    check(len(prefs) == 16, "no reference outputs (the reference step failed)")
    b = Server("preempt-" + mode, {"num_blocks": 12, "block_size": 16,
                                   "swap_space": 4 if mode == "swap" else 0},
               {"max_concurrent_requests": 64, "max_total_tokens": 128, "max_input_tokens": 64,
                "max_batch_prefill_tokens": 64, "preemption": f'"{mode}"'})
    b.start()
    try:
        with cf.ThreadPoolExecutor(16) as ex:
            got = list(ex.map(lambda c: greedy(b.port, *c), preempt_cases()))
        bad = [i for i in range(16) if got[i] != prefs[i]]
        check(not bad, f"{len(bad)} of 16 differ under preemption, e.g. #{bad[0] if bad else 0}")
        m = wait_idle(b.port, 30)
        note(f"{m.get('vllm:num_preemptions_total', 0):.0f} preemptions")
        check(m.get("vllm:num_preemptions_total", 0) > 0,
              f"vllm:num_preemptions_total = {m.get('vllm:num_preemptions_total')}, expected > 0")
        # Clients leaving while their requests are preempted or waiting.
        with cf.ThreadPoolExecutor(16) as ex:
            socks = list(ex.map(lambda i: open_stream(b.port, {"inputs": prompt_of(i, 2 + i), "parameters": {
                "max_new_tokens": 60}}), range(16)))
        for sk in socks:
            sk.close()
        wait_idle(b.port, 30)
        health_ok(b.port)
        check(greedy(b.port, *preempt_cases()[3]) == prefs[3], "output changed after the disconnects")
    finally:
        rc = b.stop()
    check(rc == 0, f"exit status {rc} after SIGTERM: {b.log_tail()}")


def open_stream(port, body, timeout=60):
    """Starts a /generate_stream on a raw socket and reads until the first event."""
    sk = socket.create_connection((HOST, port), timeout=timeout)
    data = json.dumps(body).encode()
    sk.sendall(b"POST /generate_stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n\r\n" % len(data) + data)
    buf = b""
    while b"data:" not in buf or b"\n\n" not in buf[buf.find(b"data:"):]:  # maybe chunked
        chunk = sk.recv(4096)
        if not chunk:
            break
        buf += chunk
        if b"\r\n\r\n" in buf and not buf.startswith(b"HTTP/1.1 200"):
            time.sleep(0.1)
            sk.close()
            raise AssertionError(f"stream start: {short(buf)}")
    check(buf.startswith(b"HTTP/1.1 200"), f"stream start: {short(buf)}")
    check(b"data:" in buf, f"no event before close: {short(buf)}")
    return sk


def t_disconnects(s, refs):
    def one(i):
        sk = open_stream(s.port, {"inputs": prompt_of(i, 1 + i % 20), "parameters": {
            "max_new_tokens": 150, "do_sample": i % 2 == 1}})
        if i % 2 == 0:  # half leave with a reset: the server's next write gets EPIPE
            sk.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sk.close()

    def gone(i):  # a non-streaming request whose client leaves at once
        data = json.dumps({"inputs": prompt_of(i, 5), "parameters": {"max_new_tokens": 150}}).encode()
        sk = socket.create_connection((HOST, s.port), timeout=30)
        sk.sendall(b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(data) + data)
        sk.close()

    m0 = metrics(s.port)
    with cf.ThreadPoolExecutor(50) as ex:
        list(ex.map(one, range(100)))
        list(ex.map(gone, range(20)))
    m1 = wait_idle(s.port, 60)
    tokens = m1["vllm:generation_tokens_total"] - m0["vllm:generation_tokens_total"]
    check(tokens < 120 * 150 / 2, f"{tokens:.0f} tokens generated for 120 dropped requests of 150: "
          "were they cancelled?")
    key = 'tgi_request_failure{err="cancelled"}'
    note(f"{tokens:.0f} tokens generated, {m1.get(key, 0) - m0.get(key, 0):.0f} cancelled")
    if key in m1:
        check(m1[key] - m0.get(key, 0) >= 100, f"cancelled went from {m0.get(key)} to {m1[key]}")
    health_ok(s.port)
    p, n = batch_cases()[0]
    check(greedy(s.port, p, n) == refs[0], "a request after the disconnects gives another output")
    m = metrics(s.port)
    check(m.get("tgi_request_failure", 0) >= 0, "metrics")


def raw(port, data, timeout=10, read_wait=None):
    """Sends bytes on a raw socket; returns everything read until close/timeout."""
    sk = socket.create_connection((HOST, port), timeout=timeout)
    try:
        try:
            sk.sendall(data)
        except OSError:
            pass  # the server may answer and close before reading everything
        if read_wait:
            time.sleep(read_wait)
        out = b""
        try:
            while True:
                c = sk.recv(65536)
                if not c:
                    break
                out += c
                if b"\r\n\r\n" in out:
                    head, _, body = out.partition(b"\r\n\r\n")
                    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
                    if m and len(body) >= int(m.group(1)):
                        break
        except (socket.timeout, ConnectionResetError):
            pass
        return out
    finally:
        sk.close()


def long_prompt(s, lo, hi):
    """A prompt of between lo and hi tokens (asks /tokenize)."""
    words = []
    while True:
        words.append(WORDS[len(words) % len(WORDS)])
        n = len(post_json(s.port, "/tokenize", {"inputs": " ".join(words)}))
        if n >= lo:
            check(n <= hi, f"prompt of {n} tokens, wanted {lo}..{hi}")
            return " ".join(words)


def bad(s, name, path, body, status, *needles, headers=None):
    def t():
        nonlocal body
        if callable(body):
            body = body()
        if isinstance(body, bytes):
            st, _, data = request(s.port, "POST", path, body,
                                  {"Content-Type": "application/json", **(headers or {})})
        else:
            st, _, data = request(s.port, "POST", path, body, headers)
        check(st == status, f"status {st}, expected {status}: {short(data)}")
        j = json.loads(data)
        if path.startswith("/v1/"):
            check(isinstance(j.get("error"), dict) and j["error"].get("message"),
                  f"not an OpenAI error body: {short(data)}")
            msg = j["error"]["message"]
        else:
            check(isinstance(j.get("error"), str) and j.get("error_type"),
                  f"not a TGI error body: {short(data)}")
            msg = j["error"]
        for nd in needles:
            check(nd in msg, f"message lacks {nd!r}: {msg!r}")
        health_ok(s.port)

    run_test("bad input: " + name, t)


def t_payload_limit(s):
    data = b'{"inputs":"' + b"a " * 10000 + b'"}'
    out = raw(s.port, b"POST /generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n" % len(data) + data)
    check(out.startswith(b"HTTP/1.1 413"), f"got {short(out)}")
    health_ok(s.port)


def t_slow_header(s):
    t0 = time.monotonic()
    out = raw(s.port, b"GET /health HT", timeout=10)
    dt = time.monotonic() - t0
    check(out.startswith(b"HTTP/1.1 408"), f"got {short(out)!r} after {dt:.1f}s")
    check(0.9 <= dt <= 5, f"408 after {dt:.1f}s, read_timeout is 1s")
    health_ok(s.port)


def t_404(s):
    st, _, data = request(s.port, "GET", "/nope")
    check(st == 404, f"GET /nope: {st}")
    check("error" in json.loads(data), f"body {short(data)}")
    st, _, data = request(s.port, "GET", "/generate")
    check(st == 405, f"GET /generate: {st}")
    health_ok(s.port)


def t_promtool(s):
    pt = shutil.which("promtool")
    if not pt:
        raise Skip("promtool is not installed (Debian package prometheus)")
    st, _, data = request(s.port, "GET", "/metrics")
    check(st == 200, f"/metrics {st}")
    p = subprocess.run([pt, "check", "metrics"], input=data, capture_output=True, timeout=60)
    # Exit 1 is a parse error; exit 3 is lint problems only. The names TGI and
    # vLLM chose (tgi_request_count without _total, vllm:* with a colon) break
    # promtool's naming lints on purpose: dashboards expect them. Any other
    # lint problem fails.
    allowed = [r'^tgi_\w+ counter metrics should have "_total" suffix$',
               r'^tgi_request_count non-histogram and non-summary metrics should not have "_count" suffix$',
               r"^vllm:\w+ metric names should not contain ':'$"]
    out = (p.stdout + p.stderr).decode(errors="replace").splitlines()
    other = [ln for ln in out if ln.strip() and not any(re.match(a, ln) for a in allowed)]
    check(p.returncode in (0, 3) and not other,
          f"promtool exit {p.returncode}: {short(chr(10).join(other or out), 600)}")


def t_overload_and_drain():
    c = Server("small", {"num_blocks": 64}, {"max_concurrent_requests": 2, "max_total_tokens": 256,
                                             "max_input_tokens": 128, "max_batch_prefill_tokens": 64})
    c.start()
    rc = None
    try:
        def t429():
            socks = [open_stream(c.port, {"inputs": "a b c", "parameters": {"max_new_tokens": 200}})
                     for _ in range(2)]
            try:
                st, _, data = request(c.port, "POST", "/generate",
                                      {"inputs": "hi", "parameters": {"max_new_tokens": 2}})
                check(st == 429, f"TGI: status {st}, expected 429: {short(data)}")
                check(json.loads(data).get("error_type") == "overloaded", f"TGI body {short(data)}")
                st, _, data = request(c.port, "POST", "/v1/completions",
                                      {"model": "tiny", "prompt": "hi", "max_tokens": 2})
                check(st == 429, f"OpenAI: status {st}, expected 429: {short(data)}")
                check("error" in json.loads(data), f"OpenAI body {short(data)}")
                health_ok(c.port)
            finally:
                for sk in socks:
                    sk.close()
            wait_idle(c.port, 30)
            post_json(c.port, "/generate", {"inputs": "hi", "parameters": {"max_new_tokens": 2}})

        run_test("bad input: 429 over max_concurrent_requests", t429)

        def drain():
            nonlocal rc
            res = [{}, {}]
            ref = greedy(c.port, "hello world", 60)
            keep = http.client.HTTPConnection(HOST, c.port, timeout=10)  # a keep-alive connection
            keep.request("GET", "/health")
            check(keep.getresponse().read() is not None, "keep-alive /health")

            def reader(k):
                try:
                    res[k]["evs"] = sse_events(c.port, "/generate_stream", {
                        "inputs": "hello world", "parameters": {"max_new_tokens": 60, "details": True}})
                except Exception as e:
                    res[k]["err"] = e

            ths = [threading.Thread(target=reader, args=(k,)) for k in range(2)]
            for th in ths:
                th.start()
            deadline = time.monotonic() + 30  # until both requests run
            while time.monotonic() < deadline and metrics(c.port).get("vllm:num_requests_running") != 2:
                time.sleep(0.02)
            c.proc.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            # While draining, a new connection is refused or answered (503),
            # never left hanging; so is a request on an open keep-alive one.
            try:
                st, _, _ = request(c.port, "GET", "/health", timeout=5)
                check(st == 503, f"/health while draining: {st}")
            except (ConnectionRefusedError, ConnectionResetError):
                pass
            try:
                keep.request("GET", "/health")
                st = keep.getresponse().status
                check(st in (200, 503), f"keep-alive /health while draining: {st}")
            except (ConnectionError, http.client.RemoteDisconnected):
                pass
            finally:
                keep.close()
            for th in ths:
                th.join(90)
                check(not th.is_alive(), "stream still open 90 s after SIGTERM")
            for r in res:
                check("err" not in r, f"stream broke: {r.get('err')!r}")
                evs = r["evs"]
                check(len(evs) == 60 and evs[-1]["details"]["generated_tokens"] == 60
                      and evs[-1]["details"]["finish_reason"] == "length",
                      f"{len(evs)} events, last {short(json.dumps(evs[-1]) if evs else '')}")
                check([e["token"]["id"] for e in evs] == ref[1], "drained stream differs from greedy")
            try:
                rc = c.proc.wait(15)
            except subprocess.TimeoutExpired:
                raise AssertionError("server still running 15 s after the drained request")
            check(rc == 0, f"exit status {rc}: {c.log_tail()}")

        run_test("SIGTERM drains 2 running streams (new connections refused or 503), then exits 0",
                 drain)
    finally:
        c.stop()


def t_policy_hooks():
    """A Lua policy whose priority hook raises for one tenant and loops
    forever for another: only those requests fail (500, error_type policy);
    the server keeps serving everyone else."""
    pol = ("{ priority = function(req) "
           "local t = req.tenant ~= nil and require('ffi').string(req.tenant) or '' "
           "if t == 'bad' then error('no priority for tenant bad') end "
           "if t == 'loop' then while true do end end "
           "return 0 end }")
    p = Server("policy", {"num_blocks": 64},
               {"max_total_tokens": 256, "max_input_tokens": 128, "policy": pol})
    p.start()
    try:
        body = {"inputs": "hello world", "parameters": {"max_new_tokens": 3}}
        want = post_json(p.port, "/generate", body)["generated_text"]
        # Regression: the 500 sent the Lua traceback and the server's file
        # paths; the client gets a short message, the log the detail.
        def no_detail(what, data):
            low = data.decode(errors="replace").lower()
            for bad_part in ("/", ".lua:", "traceback", "no priority for tenant bad"):
                check(bad_part not in low, f"{what}: {bad_part!r} in the response: {short(data, 600)}")

        for tenant in ("bad", "loop"):
            st, _, data = request(p.port, "POST", "/generate", body, headers={"X-Tenant": tenant})
            check(st == 500, f"tenant {tenant}: status {st}: {short(data)}")
            j = json.loads(data)
            check(j.get("error_type") == "policy" and "policy" in j.get("error", "")
                  and "server log" in j.get("error", ""), f"tenant {tenant}: {short(data)}")
            no_detail(f"tenant {tenant}", data)
            st, _, data = request(p.port, "POST", "/v1/completions",
                                  {"model": "tiny", "prompt": "hello world", "max_tokens": 3},
                                  headers={"X-Tenant": tenant})
            check(st == 500 and b"policy" in data, f"tenant {tenant} (OpenAI): {st} {short(data)}")
            no_detail(f"tenant {tenant} (OpenAI)", data)
        with open(p.log_path, errors="replace") as f:
            log = f.read()
        check("no priority for tenant bad" in log, f"the log lacks the hook's error: {p.log_tail()}")
        # Everyone else is served as before, also streamed.
        check(post_json(p.port, "/generate", body)["generated_text"] == want, "output changed")
        ev = sse_events(p.port, "/generate_stream", body)
        check(ev and ev[-1].get("generated_text") == want, f"stream: {ev[-1:]}")
        health_ok(p.port)
    finally:
        rc = p.stop()
    check(rc == 0, f"exit status {rc} after SIGTERM: {p.log_tail()}")


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clients-skip", default="")
    ARGS = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    try:
        a = Server("main", {"num_blocks": 256},
                   {"max_concurrent_requests": 128, "max_total_tokens": 256, "max_input_tokens": 128,
                    "max_batch_prefill_tokens": 64})
        started = []
        run_test("server starts; /health 503 or 200 from the port file on", lambda: started.append(a.start()))
        if not started:
            return
        run_test("/health while loading is 503 or 200, never a connection error", t_startup_health, a)
        run_test("server ignores SIGPIPE (a client leaving mid-write must not kill it)",
                 t_sigpipe_ignored, a)
        run_test("routes: /info /tokenize / /v1/models", t_basic_routes, a)
        run_test("curl: /health /generate chat stream /metrics", t_curl, a)
        run_test("openai SDK: completions, chat (stream + include_usage), models.list", t_openai, a)
        run_test("huggingface_hub InferenceClient: text_generation details + stream", t_hf, a)
        run_test("huggingface_hub InferenceClient.chat_completion with its placeholder model (strict_model_name = false)",
                 t_hf_chat, a)
        run_test("openai SDK logprobs: the chosen token once in top_logprobs, same text in chat",
                 t_openai_logprobs, a)
        run_test("/tokenize: byte offsets and text are slices of the input (also non-ASCII)",
                 t_tokenize_offsets, a)
        refs = []
        run_test("batching: 32 concurrent greedy requests equal sequential ones", t_batching, a, refs)
        run_test("stream tokens equal /generate tokens", t_stream_matches, a, refs)
        pl = '"hello world"'
        bad(a, "malformed JSON (TGI) -> 422", "/generate", b'{"inputs": "hi",', 422)
        bad(a, "malformed JSON (OpenAI) -> 400", "/v1/completions", b'{"model": "tiny", "prompt"', 400)
        bad(a, "malformed JSON (chat) -> 400", "/v1/chat/completions", b"[1, 2", 400)
        bad(a, "wrong type inputs -> 422", "/generate", {"inputs": 5}, 422, "inputs")
        bad(a, "wrong type max_new_tokens -> 422", "/generate",
            {"inputs": "hi", "parameters": {"max_new_tokens": "ten"}}, 422, "max_new_tokens")
        bad(a, "wrong type max_tokens (OpenAI) -> 400", "/v1/completions",
            {"model": "tiny", "prompt": "hi", "max_tokens": "x"}, 400, "max_tokens")
        bad(a, "wrong type messages -> 400", "/v1/chat/completions",
            {"model": "tiny", "messages": "hi"}, 400, "messages")

        def unknown_fields():
            r = post_json(a.port, "/generate", {"inputs": "hi", "foo": 1, "parameters": {
                "max_new_tokens": 2, "bar": [1]}})
            check("generated_text" in r, f"{r}")
            r = post_json(a.port, "/v1/completions", {"model": "tiny", "prompt": "hi", "max_tokens": 2,
                                                      "foo": {"x": 1}})
            check(r["choices"][0]["finish_reason"] == "length", f"{r}")
            health_ok(a.port)

        run_test("bad input: unknown fields are ignored -> 200", unknown_fields)
        bad(a, "empty prompt -> 422", "/generate", {"inputs": ""}, 422)
        run_test("bad input: body over server.payload_limit -> 413", t_payload_limit, a)
        bad(a, "prompt over max_input_tokens -> 422", "/generate",
            lambda: {"inputs": long_prompt(a, 130, 200), "parameters": {"max_new_tokens": 2}}, 422,
            "`inputs` must have less than 128 tokens. Given: ")
        bad(a, "prompt + max_new_tokens over max_total_tokens -> 422", "/generate",
            {"inputs": "hello world", "parameters": {"max_new_tokens": 255}}, 422,
            "`inputs` tokens + `max_new_tokens` must be <= 256. Given: ")
        bad(a, "max_tokens over max_total_tokens (OpenAI) -> 400", "/v1/completions",
            {"model": "tiny", "prompt": "hello world", "max_tokens": 255}, 400)
        bad(a, "invalid UTF-8 (TGI) -> 422", "/generate", b'{"inputs": "hi \xff\xfe there"}', 422)
        bad(a, "invalid UTF-8 (OpenAI) -> 400", "/v1/completions",
            b'{"model": "tiny", "prompt": "\xc3\x28"}', 400)
        run_test("bad input: slow request line -> 408 after server.read_timeout", t_slow_header, a)
        run_test("bad input: 404 unknown route, 405 wrong method", t_404, a)
        run_test("disconnects: 100 streams dropped after the first event, 20 /generate left; then idle, KV 0, works",
                 t_disconnects, a, refs)
        run_test("promtool check metrics", t_promtool, a)
        prefs = []
        run_test("preemption: reference outputs, unconstrained and sequential", t_preempt_refs, a, prefs)
        run_test("preemption (swap): 16 concurrent on 12 KV blocks equal references, preemptions > 0",
                 t_preemption, prefs, "swap")
        run_test("preemption (recompute): same with cache.swap_space = 0",
                 t_preemption, prefs, "recompute")

        def stop_main():
            rc = a.stop()
            check(rc == 0, f"exit status {rc} after SIGTERM: {a.log_tail()}")

        run_test("SIGTERM on an idle server: exit 0", stop_main)
        run_test("Lua policy: a hook that raises and one that loops fail only their requests",
                 t_policy_hooks)
        run_test("server.served_model_names listed and reported; server.strict_model_name = true -> 404",
                 t_model_names)
        t_overload_and_drain()
    finally:
        kill_all()
        line(f"RESULT {passed} {failed}")


if __name__ == "__main__":
    main()
