"""PyTorch 1.13 anchor for bench/fused.ts: times the same ops on the shapes of bench/fused-shapes.json, in fp32
and under torch.autocast('cpu', dtype=torch.bfloat16), composed the way a torch 1.13 model computes them
(no fused SDPA: matmul-softmax-matmul with a causal mask and repeat_interleave for grouped-query heads).
Prints JSON {op: {fp32_ms, bf16_ms}} (median milliseconds per call). Run with /usr/bin/python3."""
import json
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fused-shapes.json")))


def time_ms(fn):
    """Median ms of fn over >= 5 runs and >= 0.5 s after one warm-up call."""
    fn()
    times, start = [], time.perf_counter()
    while len(times) < 5 or (time.perf_counter() - start < 0.5 and len(times) < 200):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def attention(q, k, v, groups, causal):
    """q [B,H,T,D], k/v [B,KVH,T,D]."""
    k = k.repeat_interleave(groups, dim=1)
    v = v.repeat_interleave(groups, dim=1)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    if causal:
        T = q.shape[2]
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def ops():
    """(name, fn) pairs; fn runs one timed call."""
    out = []
    s = SHAPES["rmsnorm"]
    x = torch.randn(s["rows"], s["cols"], requires_grad=True)
    w = torch.randn(s["cols"], requires_grad=True)
    gy = torch.randn(s["rows"], s["cols"])
    out.append(("rmsnorm_fwd_bwd", lambda: rmsnorm(x, w, s["eps"]).backward(gy)))

    s = SHAPES["rope"]
    xr = torch.randn(s["B"], s["T"], s["H"], s["D"])
    inv = 10000 ** (-torch.arange(0, s["D"], 2).float() / s["D"])
    ang = torch.outer(torch.arange(s["T"]).float(), inv)
    emb = torch.cat((ang, ang), dim=-1)[None, :, None, :]
    cos, sin = emb.cos(), emb.sin()
    out.append(("rope", lambda: xr * cos + rotate_half(xr) * sin))

    s = SHAPES["softmax"]
    xs = torch.randn(s["rows"], s["cols"]) * 4
    out.append(("softmax", lambda: torch.softmax(xs, dim=-1)))

    for a in SHAPES["attention"]:
        B, T, H, KVH, D = a["B"], a["T"], a["H"], a["KVH"], a["D"]
        q = torch.randn(B, H, T, D, requires_grad=True)
        k = torch.randn(B, KVH, T, D, requires_grad=True)
        v = torch.randn(B, KVH, T, D, requires_grad=True)
        go = torch.randn(B, H, T, D)
        fwd = lambda q=q, k=k, v=v, g=H // KVH, c=a["causal"]: attention(q, k, v, g, c)
        out.append((f"attention_{a['name']}_fwd", lambda fwd=fwd: fwd().detach()))
        out.append((f"attention_{a['name']}_fwd_bwd", lambda fwd=fwd, go=go: fwd().backward(go)))

    s = SHAPES["crossEntropy"]
    logits = (torch.randn(s["N"], s["V"]) * 4).requires_grad_()
    targets = torch.randint(0, s["V"], (s["N"],))
    out.append(("cross_entropy_fwd_bwd", lambda: F.cross_entropy(logits, targets).backward()))

    s = SHAPES["adamw"]
    p = torch.nn.Parameter(torch.randn(s["n"]))
    p.grad = torch.randn(s["n"])
    opt = torch.optim.AdamW([p], lr=s["lr"], betas=(s["beta1"], s["beta2"]), eps=s["eps"],
                            weight_decay=s["weightDecay"], foreach=True)
    out.append(("adamw", opt.step))
    return out


def main():
    result = {}
    for name, fn in ops():
        fp32 = time_ms(fn)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = time_ms(fn)
        result[name] = {"fp32_ms": round(fp32, 3), "bf16_ms": round(bf16, 3)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
