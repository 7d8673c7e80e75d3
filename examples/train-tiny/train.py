#!/usr/bin/env python3
"""train.py - trains kjv-tiny: a small Llama-architecture model and its BPE
tokenizer on the King James Bible, for v100rt's demo and perplexity tests.

  apt-get install -y bible-kjv bible-kjv-text
  pip install -r examples/train-tiny/requirements.txt
  OMP_NUM_THREADS=1 python3 examples/train-tiny/train.py --max-minutes 40

Corpus: Debian's bible-kjv-text (public domain KJV), dumped with the
`bible` reader of the bible-kjv package (or --corpus FILE, a dump of the
same format). One document per chapter: its verses, one per line, without
verse numbers. Held out for validation: the last two books (Jude and
Revelation, about 2% of the text); nothing from them is seen in training,
tokenizer included.

Tokenizer: Llama-2 / SentencePiece style BPE like
tests/fixtures/tokenizers/make_tokenizers.py (normalizer Prepend+Replace
"▁", byte_fallback, <unk>=0 <s>=1 </s>=2, LlamaTokenizerFast config with
add_bos_token).

Model: LlamaForCausalLM, hidden 256, 6 layers, 4 heads (head_dim 64),
2 KV heads, intermediate 688, tied embeddings, vocab 4096, 512 positions.
Training: AdamW, linear warmup then cosine decay, context 256, random
windows over the token stream (each chapter is <s> text </s>), one CPU
thread by default; stops at --max-steps or when --max-minutes is up, then
saves the model in fp16 with save_pretrained(safe_serialization=True).
Writes --out (the HF directory), and next to this script train.log and
loss.png (unless --log/--plot say otherwise).
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import time

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
VALID_BOOKS = ("Jude", "Revelation")


def read_corpus(path):
    """Returns [(book, chapter_text)] from a `bible -l100000` dump."""
    if path:
        with open(path, encoding="utf-8") as f:
            raw = f.read()
    else:
        raw = subprocess.run(["bible", "-l100000", "Ge1:1-Re22:21"], check=True,
                             capture_output=True, text=True).stdout
    chapters, book, verses = [], None, []
    head = re.compile(r"^(\S.*\S) (\d+)$")
    verse = re.compile(r"^\s+\d+ (.*\S)\s*$")
    for ln in raw.splitlines():
        m = head.match(ln)
        if m:
            if verses:
                chapters.append((book, "\n".join(verses)))
            book, verses = m.group(1), []
            continue
        m = verse.match(ln)
        if m:
            verses.append(m.group(1))
    if verses:
        chapters.append((book, "\n".join(verses)))
    return chapters


def train_tokenizer(texts, vocab_size):
    byte_tokens = ["<0x%02X>" % i for i in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                           normalizers.Replace(" ", "▁")])
    # Training only: split words at ▁ (as SentencePiece does); the saved
    # tokenizer has no pre-tokenizer, like Llama-2's legacy tokenizer.json.
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never",
                                                 split=True)
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse(), decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=["<unk>", "<s>", "</s>"] + byte_tokens)
    # Rare characters stay out of the vocab and encode through byte fallback.
    counts = {}
    for t in texts:
        for ch in t:
            counts[ch] = counts.get(ch, 0) + 1
    keep = {ch for ch, n in counts.items() if n >= 50}
    tok.train_from_iterator(["".join(ch for ch in t if ch in keep) for t in texts], trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B:1", special_tokens=[("<s>", 1)])
    j = json.loads(tok.to_str())
    j["pre_tokenizer"] = None
    j["added_tokens"] = [a for a in j["added_tokens"] if a["content"] not in byte_tokens]
    config = {
        "tokenizer_class": "LlamaTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "add_eos_token": False,
        "legacy": True,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 512,
    }
    return Tokenizer.from_str(json.dumps(j)), j, config


def stream(tok, texts):
    ids = []
    for t in texts:
        ids.extend(tok.encode(t, add_special_tokens=True).ids)  # <s> text
        ids.append(2)                                          # </s>
    return np.array(ids, dtype=np.int64)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", help="a `bible -l100000 Ge1:1-Re22:21` dump (default: run bible)")
    ap.add_argument("--out", default=os.path.join(ROOT, "models-trained", "kjv-tiny"))
    ap.add_argument("--log", default=os.path.join(HERE, "train.log"))
    ap.add_argument("--plot", default=os.path.join(HERE, "loss.png"))
    ap.add_argument("--max-minutes", type=float, default=40.0)
    ap.add_argument("--max-steps", type=int, default=6000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--min-lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-batches", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--vocab", type=int, default=4096)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--intermediate", type=int, default=688)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t_start = time.time()
    logf = open(args.log, "w")

    def log(msg):
        line = "[%7.1fs] %s" % (time.time() - t_start, msg)
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    log("command: " + " ".join(["python3"] + sys.argv))
    log("torch %s, %d thread(s)" % (torch.__version__, torch.get_num_threads()))
    chapters = read_corpus(args.corpus)
    train_txt = [t for b, t in chapters if b not in VALID_BOOKS]
    valid_txt = [t for b, t in chapters if b in VALID_BOOKS]
    log("corpus: %d chapters, %d train (%d chars), %d validation (%d chars: %s)" % (
        len(chapters), len(train_txt), sum(map(len, train_txt)), len(valid_txt),
        sum(map(len, valid_txt)), ", ".join(VALID_BOOKS)))

    tok, tok_json, tok_config = train_tokenizer(train_txt, args.vocab)
    train_ids, valid_ids = stream(tok, train_txt), stream(tok, valid_txt)
    log("tokenizer: vocab %d; %d train tokens, %d validation tokens" % (
        tok.get_vocab_size(), len(train_ids), len(valid_ids)))

    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(
        vocab_size=tok.get_vocab_size(), hidden_size=args.hidden,
        intermediate_size=args.intermediate, num_hidden_layers=args.layers,
        num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        max_position_embeddings=512, rms_norm_eps=1e-5, rope_theta=10000.0,
        tie_word_embeddings=True, bos_token_id=1, eos_token_id=2, pad_token_id=None,
        hidden_act="silu", attention_bias=False, mlp_bias=False)
    model = LlamaForCausalLM(cfg)
    n_params = sum(p.numel() for p in model.parameters())
    log("model: %d parameters (%.2f MB in fp16)" % (n_params, n_params * 2 / 1e6))

    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)

    def lr_at(step, total):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        p = min(1.0, (step - args.warmup) / max(1, total - args.warmup))
        return args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * p))

    def batch(ids, n, gen):
        starts = gen.integers(0, len(ids) - args.ctx - 1, size=n)
        x = np.stack([ids[s:s + args.ctx + 1] for s in starts])
        x = torch.from_numpy(x)
        return x[:, :-1], x[:, 1:]

    # Fixed validation windows: the same every evaluation.
    vgen = np.random.default_rng(0)
    vbatches = [batch(valid_ids, args.batch, vgen) for _ in range(args.eval_batches)]

    @torch.no_grad()
    def evaluate():
        model.eval()
        tot = 0.0
        for x, y in vbatches:
            logits = model(input_ids=x).logits
            tot += torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.size(-1)), y.reshape(-1)).item()
        model.train()
        return tot / len(vbatches)

    # The schedule is planned in steps; once the first steps show the speed,
    # the total is shrunk to what fits in --max-minutes so the cosine decays
    # fully before time is up.
    total = args.max_steps
    budget = args.max_minutes * 60 - (time.time() - t_start) - 60  # keep a minute to save
    hist = {"step": [], "train": [], "val_step": [], "val": []}
    model.train()
    t_train = time.time()
    run_loss, run_n = 0.0, 0
    step = 0
    while step < total:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, total)
        x, y = batch(train_ids, args.batch, rng)
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        run_loss += loss.item()
        run_n += 1
        if step == 20:
            per_step = (time.time() - t_train) / step
            # evaluation costs about eval_batches/3 steps per eval
            per_step_eval = per_step * (1 + args.eval_batches / 3 / args.eval_every)
            fit = int(budget / per_step_eval)
            if fit < total:
                total = max(step + 1, fit)
            log("%.3f s/step (%d tokens/step); planned steps: %d" % (
                per_step, args.batch * args.ctx, total))
        if step % 10 == 0:
            hist["step"].append(step)
            hist["train"].append(run_loss / run_n)
            run_loss, run_n = 0.0, 0
        if step % args.eval_every == 0 or step == total:
            v = evaluate()
            hist["val_step"].append(step)
            hist["val"].append(v)
            log("step %5d/%d  lr %.2e  train %.4f  val %.4f (ppl %.2f)  tokens %d" % (
                step, total, opt.param_groups[0]["lr"], hist["train"][-1] if hist["train"] else float("nan"),
                v, math.exp(v), step * args.batch * args.ctx))
        if time.time() - t_start > args.max_minutes * 60 - 30:
            log("time is up (--max-minutes %g): stopping at step %d" % (args.max_minutes, step))
            break
    train_s = time.time() - t_train
    v = evaluate()
    log("done: %d steps, %.1f min training, %d tokens seen (%.2f epochs); final train %.4f, val %.4f (ppl %.2f)" % (
        step, train_s / 60, step * args.batch * args.ctx, step * args.batch * args.ctx / len(train_ids),
        hist["train"][-1], v, math.exp(v)))

    # Save: fp16 weights, tokenizer, configs.
    os.makedirs(args.out, exist_ok=True)
    model = model.to(torch.float16)
    model.config.torch_dtype = torch.float16
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=2)
    model.save_pretrained(args.out, safe_serialization=True)
    with open(os.path.join(args.out, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(tok_json, ensure_ascii=False, indent=1))
    with open(os.path.join(args.out, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tok_config, f, ensure_ascii=False, indent=2)
    log("saved %s: %s" % (args.out, ", ".join(sorted(os.listdir(args.out)))))

    # Sample (greedy, from the fp16 weights computed in fp32).
    m32 = model.to(torch.float32).eval()
    ids = torch.tensor([tok.encode("And God said", add_special_tokens=True).ids])
    with torch.no_grad():
        out = m32.generate(ids, max_new_tokens=48, do_sample=False)
    log("sample (greedy): " + repr(tok.decode(out[0].tolist(), skip_special_tokens=True)))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(hist["step"], hist["train"], label="train (mean of 10 steps)", lw=1)
    ax.plot(hist["val_step"], hist["val"], "o-", label="validation (Jude, Revelation)", ms=3)
    ax.set_xlabel("step (%d tokens each)" % (args.batch * args.ctx))
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("kjv-tiny: %.1fM params, %.0f min on %d CPU thread(s)" % (
        n_params / 1e6, train_s / 60, args.threads))
    ax.set_ylim(bottom=max(0.0, min(hist["train"] + hist["val"]) - 0.3), top=min(8.5, max(hist["train"]) + 0.1))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
    log("wrote %s and %s" % (args.log, args.plot))


if __name__ == "__main__":
    main()
