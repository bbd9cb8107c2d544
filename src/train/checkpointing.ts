/**
 * Gradient checkpointing: run a segment of the network (a decoder layer) without recording its activations, and
 * recompute it during the backward pass.
 *
 * The engine's `backward()` runs every GradFn with grad mode off, so a segment cannot re-record itself from inside
 * one. Instead each segment's output is made a leaf: `loss.backward()` stops there and leaves the gradient in the
 * leaf's `.grad`; `tape.backward()` then walks the segments last to first, re-runs each with grad mode on from its
 * saved input and back-propagates the output gradient through it — into the parameters inside, and into the input,
 * which is the previous segment's output leaf (or an ordinary tensor whose graph the recompute extends).
 * Only the segment inputs stay alive between forward and backward; the random-generator state is replayed so
 * dropout masks match.
 */
import { backward, globalGenerator, isGradEnabled, noGrad, tidy, type Tensor } from '../engine/index.js';
import { Module } from '../nn/index.js';

type F32 = Tensor<'f32'>;

interface Segment {
  fn: (x: Tensor) => F32;
  input: Tensor;
  output: F32;
  rng: number[];
}

export class CheckpointTape {
  private segments: Segment[] = [];

  /** `fn(x)` computed without keeping its activations; the result is a leaf that collects its gradient. */
  run(fn: (x: Tensor) => F32, x: Tensor): F32 {
    if (!isGradEnabled()) return fn(x);
    const rng = globalGenerator.getState();
    const output = noGrad(() => tidy(() => fn(x)));
    output.requiresGrad_();
    this.segments.push({ fn, input: x, output, rng });
    return output;
  }

  /** Whether segments wait for `backward()`. */
  get pending(): boolean {
    return this.segments.length > 0;
  }

  /** Back-propagates through every recorded segment (call right after `loss.backward()`). */
  backward(): void {
    const after = globalGenerator.getState();
    try {
      for (let i = this.segments.length - 1; i >= 0; i--) {
        const s = this.segments[i]!;
        const g = s.output.grad;
        s.output.grad = null;
        if (!g) continue;
        globalGenerator.setState(s.rng);
        tidy(() => backward(s.fn(s.input), g));
        g.dispose();
      }
    } finally {
      globalGenerator.setState(after);
      this.segments = [];
    }
  }

  /** Drops recorded segments without back-propagating (evaluation or an aborted step). */
  clear(): void {
    for (const s of this.segments) {
      s.output.grad?.dispose();
      s.output.grad = null;
    }
    this.segments = [];
  }
}

/** A module's `forward` whose first argument is the hidden state and result the new hidden state. */
type LayerForward = (x: Tensor, ...rest: unknown[]) => F32;

/**
 * Wraps a layer so its forward runs through `tape`. The wrapper adopts the layer's children, so parameter names
 * (`model.layers.0.self_attn.q_proj.weight`) and module paths are unchanged.
 */
export class CheckpointedLayer extends Module {
  constructor(
    readonly inner: Module,
    private readonly tape: CheckpointTape,
  ) {
    super();
    for (const [name, child] of inner.namedChildren()) this.addModule(name, child);
    for (const [name, p] of inner.namedParameters().filter(([n]) => !n.includes('.'))) this.addParameter(name, p);
  }

  forward(x: Tensor, ...rest: unknown[]): F32 {
    const f = (this.inner as unknown as { forward: LayerForward }).forward.bind(this.inner);
    return this.tape.run((h) => f(h, ...rest), x);
  }
}

/** Wraps every module at `paths` (e.g. `model.layers.0` …) with {@link CheckpointedLayer}. */
export function enableCheckpointing(root: Module, paths: readonly string[], tape: CheckpointTape): void {
  for (const p of paths) root.setModule(p, new CheckpointedLayer(root.getModule(p), tape));
}
