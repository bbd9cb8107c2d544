/** A one-block decoder built from engine ops, for engine-level training and memory tests. */
import * as pj from '../../src/index.js';

export interface TinyConfig {
  vocab: number;
  dim: number;
  heads: number;
  kvHeads: number;
  hidden: number;
  seq: number;
}

export class TinyBlock {
  readonly params: pj.Tensor<'f32'>[];
  private cos: pj.Tensor;
  private sin: pj.Tensor;

  constructor(
    readonly cfg: TinyConfig,
    gen: pj.Generator,
  ) {
    const { vocab, dim, heads, kvHeads, hidden, seq } = cfg;
    const hd = dim / heads;
    const lin = (o: number, i: number) => pj.keep(pj.randn([o, i], 1 / Math.sqrt(i), 0, gen).requiresGrad_());
    this.params = [
      pj.keep(pj.randn([vocab, dim], 0.5, 0, gen).requiresGrad_()), // embedding
      lin(dim, dim), // q
      lin(kvHeads * hd, dim), // k
      lin(kvHeads * hd, dim), // v
      lin(dim, dim), // o
      lin(hidden, dim), // gate
      lin(hidden, dim), // up
      lin(dim, hidden), // down
      pj.keep(pj.ones([dim]).requiresGrad_()), // norm 1
      pj.keep(pj.ones([dim]).requiresGrad_()), // norm 2
      lin(vocab, dim), // head
    ];
    const ang = Float32Array.from({ length: seq * (hd / 2) }, (_, i) => Math.floor(i / (hd / 2)) * 10000 ** (-(i % (hd / 2)) / (hd / 2)));
    this.cos = pj.keep(pj.tensor(ang.map(Math.cos), [seq, hd / 2]));
    this.sin = pj.keep(pj.tensor(ang.map(Math.sin), [seq, hd / 2]));
  }

  /** Mean next-token cross-entropy of ids [B, T] (i32) against targets [B, T]. */
  loss(ids: pj.Tensor, targets: pj.Tensor): pj.Tensor<'f32'> {
    const { dim, heads, kvHeads } = this.cfg;
    const [emb, wq, wk, wv, wo, wg, wu, wd, n1, n2, head] = this.params as [pj.Tensor, ...pj.Tensor[]];
    const [B, T] = ids.shape as [number, number];
    const hd = dim / heads;
    const x = pj.embedding(emb, ids);
    const h = pj.rmsNorm(x, n1!, 1e-5);
    const q = pj.rope(pj.reshape(pj.linear(h, wq!), [B, T, heads, hd]), this.cos, this.sin, false);
    const k = pj.rope(pj.reshape(pj.linear(h, wk!), [B, T, kvHeads, hd]), this.cos, this.sin, false);
    const v = pj.reshape(pj.linear(h, wv!), [B, T, kvHeads, hd]);
    const a = pj.reshape(pj.attention(q, k, v), [B, T, dim]);
    const x2 = pj.add(x, pj.linear(a, wo!));
    const h2 = pj.rmsNorm(x2, n2!, 1e-5);
    const x3 = pj.add(x2, pj.linear(pj.swiglu(pj.linear(h2, wg!), pj.linear(h2, wu!)), wd!));
    return pj.crossEntropy(pj.linear(x3, head!), targets);
  }
}

/** A batch of the "copy the token seen `lag` positions ago" task: learnable only through attention. */
export function copyTaskBatch(gen: pj.Generator, B: number, T: number, vocab: number, lag = 3): { ids: pj.Tensor; targets: pj.Tensor } {
  const ids = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++)
    for (let t = 0; t < T; t++) {
      ids[b * T + t] = Math.floor(gen.uniform() * vocab);
      targets[b * T + t] = t >= lag - 1 ? ids[b * T + t - lag + 1]! : -100;
    }
  return { ids: pj.fromStorage(ids, [B, T], 'i32'), targets: pj.fromStorage(targets, [B, T], 'i32') };
}
