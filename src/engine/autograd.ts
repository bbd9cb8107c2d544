/**
 * Tape-based reverse-mode autograd. Every op whose inputs require grad records a `GradFn` on its output;
 * `backward()` walks the recorded graph in reverse topological order, calling each op's backward once with the
 * summed gradient of its output, and accumulates into the `.grad` of leaf tensors (parameters).
 */
import { ones, view, type Tensor } from './tensor.js';
import { keep } from './scope.js';
import { backend } from './backend/index.js';
import { add } from './ops/elementwise.js';
import { contiguousCopy } from './tensor.js';

/** The backward of one recorded op. */
export interface GradFn {
  readonly name: string;
  readonly inputs: readonly (Tensor | null)[];
  /** Given the gradient of the op's output, returns one gradient per input (null where none is needed). */
  backward(gy: Tensor<'f32'>): (Tensor<'f32'> | null)[];
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs `fn` without recording ops for autograd (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const previous = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = previous;
  }
}

/** Whether an input needs a gradient: `inputNeedsGrad(fn, i)` inside backward closures. */
export function needsGrad(t: Tensor | null | undefined): boolean {
  return !!t && t.requiresGrad;
}

/**
 * Records `out` as produced by op `name` from `inputs` when grad mode is on and an input requires grad.
 * `backward` maps the output gradient to per-input gradients (same order as `inputs`).
 */
export function record(out: Tensor, name: string, inputs: readonly (Tensor | null)[], backward: GradFn['backward']): void {
  if (!gradEnabled || !inputs.some(needsGrad)) return;
  out.requiresGrad = true;
  out.gradFn = { name, inputs, backward };
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const inputs = top[0].gradFn?.inputs ?? [];
    if (top[1] < inputs.length) {
      const next = inputs[top[1]++];
      if (next && next.requiresGrad && !seen.has(next)) {
        seen.add(next);
        stack.push([next, 0]);
      }
    } else {
      order.push(top[0]);
      stack.pop();
    }
  }
  return order.reverse();
}

/** A tensor object of our own for `g`, sharing storage when `g` is referenced elsewhere. */
function own(g: Tensor<'f32'>, claimed: Set<Tensor>): Tensor<'f32'> {
  if (!claimed.has(g)) {
    claimed.add(g);
    return g;
  }
  const v = view(g, g.shape, g.strides, g.offset);
  claimed.add(v);
  return v;
}

/** `acc + g`, in place when `acc` is the sole owner of contiguous storage. */
function accumulate(acc: Tensor<'f32'>, g: Tensor<'f32'>): Tensor<'f32'> {
  if (acc.box.refs === 1 && acc.isContiguous() && g.isContiguous()) {
    backend().axpy(g.data, acc.data, acc.size, 1);
    return acc;
  }
  const sum = add(acc, g) as Tensor<'f32'>;
  acc.dispose();
  return sum;
}

/**
 * Back-propagates from `root` (a scalar unless `grad` is given) and accumulates gradients into the `.grad` of
 * every leaf that requires grad. The graph is freed afterwards (call the forward again to backward again).
 */
export function backward(root: Tensor, grad?: Tensor<'f32'>): void {
  if (!root.requiresGrad)
    throw new Error(`backward: ${root.describe()} does not require grad (no input of its computation requires grad)`);
  if (!grad && root.size !== 1)
    throw new Error(`backward: ${root.describe()} is not a scalar; pass the output gradient explicitly`);
  if (grad && grad.shape.join() !== root.shape.join())
    throw new Error(`backward: gradient ${grad.describe()} does not match output ${root.describe()}`);
  const order = topoOrder(root);
  noGrad(() => {
    const claimed = new Set<Tensor>();
    const grads = new Map<Tensor, Tensor<'f32'>>();
    // A view of the caller's gradient, so disposing it here leaves theirs alive.
    grads.set(root, own(grad ? view(grad, grad.shape, grad.strides, grad.offset) : (ones(root.shape) as Tensor<'f32'>), claimed));
    for (const t of order) {
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      const fn = t.gradFn;
      if (!fn) {
        accumulateLeaf(t, g);
        continue;
      }
      let gs: (Tensor<'f32'> | null)[];
      try {
        gs = fn.backward(g);
      } catch (e) {
        throw new Error(`backward of ${fn.name}: ${(e as Error).message}`);
      }
      fn.inputs.forEach((input, i) => {
        const gi = gs[i];
        if (!gi) return;
        if (!input || !input.requiresGrad) {
          if (gi !== g) gi.dispose();
          return;
        }
        if (gi.shape.join() !== input.shape.join())
          throw new Error(`backward of ${fn.name}: gradient ${gi.describe()} does not match input ${input.describe()}`);
        const mine = own(gi, claimed);
        const existing = grads.get(input);
        if (!existing) {
          grads.set(input, mine);
          return;
        }
        const total = accumulate(existing, mine);
        claimed.add(total);
        grads.set(input, total);
        mine.dispose();
      });
      g.dispose();
      t.gradFn = null;
    }
  });
}

function accumulateLeaf(leaf: Tensor, g: Tensor<'f32'>): void {
  if (leaf.grad) {
    backend().axpy(g.isContiguous() ? g.data : contiguousCopy(g).data, leaf.grad.data, leaf.grad.size, 1);
    g.dispose();
    return;
  }
  // A leaf's gradient outlives the step's scope and is accumulated into in place: give it private storage.
  leaf.grad = keep(g.box.refs === 1 && g.isContiguous() ? g : contiguousCopy(g)) as Tensor<'f32'>;
  if (leaf.grad !== g) g.dispose();
}
