"""PyTorch anchor for bench/infer.ts: prefill and decode tokens/s of a plain-torch Llama forward with a KV cache.

    OMP_NUM_THREADS=2 /usr/bin/python3 bench/torch_infer.py '<json spec>'

The spec (written by bench/infer.ts) lists models {name, config (HF config.json fields), weights: path to an HF
folder or null for random weights} and {prefill, decodePrompt, decodeTokens}. Prints one JSON object:
{name: {f32: {prefill, decode}, bf16: {...}}} in tokens/s. bf16 runs under torch.autocast('cpu', bfloat16).
"""
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", "this benchmark reads F32 checkpoints"
        a, b = info["data_offsets"]
        out[name] = torch.tensor(np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"]))
    return out


class Llama:
    """HF LlamaForCausalLM inference with a preallocated KV cache (rotate_half RoPE, GQA by repeat_interleave)."""

    def __init__(self, cfg, W):
        self.c = cfg
        self.H, self.KVH = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        self.D = cfg.get("head_dim") or cfg["hidden_size"] // self.H
        self.eps = cfg["rms_norm_eps"]
        # Parameters (leaves requiring grad) so autocast caches their bf16 casts.
        self.W = {k: torch.nn.Parameter(v) for k, v in W.items()}
        self.inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, self.D, 2).float() / self.D))

    def new_cache(self, B, cap):
        L = self.c["num_hidden_layers"]
        return [(torch.zeros(B, self.KVH, cap, self.D), torch.zeros(B, self.KVH, cap, self.D)) for _ in range(L)], [0]

    def rms(self, x, w):
        x32 = x.float()
        return w * (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps))

    def forward(self, ids, cache):
        W, H, KVH, D = self.W, self.H, self.KVH, self.D
        layers, pos = cache
        B, T = ids.shape
        past = pos[0]
        freqs = torch.arange(past, past + T).float()[:, None] * self.inv[None]
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos(), emb.sin()

        def rot(x):
            h = x.shape[-1] // 2
            return x * cos + torch.cat((-x[..., h:], x[..., :h]), -1) * sin

        x = W["model.embed_tokens.weight"][ids]
        for l in range(self.c["num_hidden_layers"]):
            p = f"model.layers.{l}."
            h = self.rms(x, W[p + "input_layernorm.weight"])
            q = rot((h @ W[p + "self_attn.q_proj.weight"].T).view(B, T, H, D).transpose(1, 2).float())
            k = rot((h @ W[p + "self_attn.k_proj.weight"].T).view(B, T, KVH, D).transpose(1, 2).float())
            v = (h @ W[p + "self_attn.v_proj.weight"].T).view(B, T, KVH, D).transpose(1, 2).float()
            kc, vc = layers[l]
            kc[:, :, past:past + T] = k
            vc[:, :, past:past + T] = v
            S = past + T
            kk = kc[:, :, :S].repeat_interleave(H // KVH, dim=1)
            vv = vc[:, :, :S].repeat_interleave(H // KVH, dim=1)
            s = (q @ kk.transpose(2, 3)) / math.sqrt(D)
            if T > 1:
                s = s + torch.full((T, S), float("-inf")).triu(S - T + 1)
            a = torch.softmax(s, -1) @ vv
            x = x + a.transpose(1, 2).reshape(B, T, H * D) @ W[p + "self_attn.o_proj.weight"].T
            h = self.rms(x, W[p + "post_attention_layernorm.weight"])
            g = torch.nn.functional.silu(h @ W[p + "mlp.gate_proj.weight"].T) * (h @ W[p + "mlp.up_proj.weight"].T)
            x = x + g @ W[p + "mlp.down_proj.weight"].T
        pos[0] = past + T
        x = self.rms(x[:, -1:], W["model.norm.weight"])
        head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
        return (x @ head.T).float()


def random_weights(cfg, gen):
    C, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, KVH = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = C // H
    W = {"model.embed_tokens.weight": torch.randn(V, C, generator=gen) * 0.02, "model.norm.weight": torch.ones(C)}
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        for n, o, i in [("self_attn.q_proj", H * D, C), ("self_attn.k_proj", KVH * D, C), ("self_attn.v_proj", KVH * D, C),
                        ("self_attn.o_proj", C, H * D), ("mlp.gate_proj", I, C), ("mlp.up_proj", I, C), ("mlp.down_proj", C, I)]:
            W[p + n + ".weight"] = torch.randn(o, i, generator=gen) * 0.02
        W[p + "input_layernorm.weight"] = torch.ones(C)
        W[p + "post_attention_layernorm.weight"] = torch.ones(C)
    if not cfg.get("tie_word_embeddings", False):
        W["lm_head.weight"] = torch.randn(V, C, generator=gen) * 0.02
    return W


def best_time(fn, reps):
    """The fastest of `reps` timed runs after a warm-up (the least disturbed by other load on the machine)."""
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def bench(model, spec, vocab):
    gen = torch.Generator().manual_seed(0)
    P, DP, N = spec["prefill"], spec["decodePrompt"], spec["decodeTokens"]
    ids = torch.randint(3, vocab, (1, P), generator=gen)

    def prefill():
        model.forward(ids, model.new_cache(1, P))

    t_prefill = best_time(prefill, spec["reps"])

    def decode():
        cache = model.new_cache(1, DP + N)
        nxt = int(torch.argmax(model.forward(ids[:, :DP], cache)[0, -1]))
        t = time.perf_counter()
        for _ in range(N):
            nxt = int(torch.argmax(model.forward(torch.tensor([[nxt]]), cache)[0, -1]))
        return time.perf_counter() - t

    decode()
    t_decode = min(decode() for _ in range(spec["reps"]))
    return {"prefill": P / t_prefill, "decode": N / t_decode}


def main():
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    out = {}
    for m in spec["models"]:
        cfg = m["config"]
        W = read_safetensors(os.path.join(m["weights"], "model.safetensors")) if m["weights"] else random_weights(cfg, torch.Generator().manual_seed(0))
        model = Llama(cfg, W)
        res = {}
        with torch.no_grad():
            res["f32"] = bench(model, spec, cfg["vocab_size"])
            with torch.autocast("cpu", dtype=torch.bfloat16):
                res["bf16"] = bench(model, spec, cfg["vocab_size"])
        out[m["name"]] = res
    print(json.dumps(out))


if __name__ == "__main__":
    main()
