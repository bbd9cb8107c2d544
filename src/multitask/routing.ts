/**
 * Routing utilities the multi-task PEFT methods share (engine only, no model knowledge):
 * - the **task-id context**: which task each batch row belongs to, set around a forward or a generation with
 *   {@link withTaskIds} and read by the layers that select task-specific parameters (MTLoRA, Poly/MHR, multitask
 *   prompt tuning). The model's forward signature stays untouched, the way PEFT passes `task_ids` by hooks.
 * - the **auxiliary-loss sink**: router layers add their load-balancing loss while a training step collects them
 *   ({@link withAuxLosses}); outside one, nothing is recorded.
 * - **top-k routing** and the **load-balancing loss** (Switch Transformer / Shazeer et al.): with N experts,
 *   f_i the share of routing slots sent to expert i and P_i the mean router probability of expert i,
 *   `L_balance = N · Σ_i f_i · P_i` (1 when perfectly balanced; f is a constant, gradients flow through P).
 * - **sparse dispatch** ({@link dispatchRows}): every expert runs only on the rows routed to it (gathered with the
 *   engine's differentiable row gather), outputs are gathered back per row and weighted by the gates. An expert
 *   that receives no rows is never called, so its parameters get no gradient at all.
 */
import { add, concat, embedding, isGradEnabled, mean, mul, reshape, sum, tensor, zeros, type Tensor } from '../engine/index.js';
import { ContextVariable } from '../nn/index.js';

type F32 = Tensor<'f32'>;

const taskIds = new ContextVariable<Int32Array | null>(null);

/**
 * Runs `fn` with `ids[b]` as the task of batch row b (null: no task ids). Every forward inside — training steps,
 * `generate` — routes row b to task `ids[b]`.
 * @example withTaskIds([0, 0, 2], () => generate(model, tok, prompts, { maxNewTokens: 8 }))
 */
export function withTaskIds<T>(ids: ArrayLike<number> | null, fn: () => T): T {
  return taskIds.with(ids === null ? null : Int32Array.from(ids), fn);
}

/** The task ids in effect (null outside {@link withTaskIds}). */
export function currentTaskIds(): Int32Array | null {
  return taskIds.get();
}

/** The task ids for a batch of `rows` rows, checked against `nTasks`; the error names `method`. */
export function requireTaskIds(method: string, rows: number, nTasks: number): Int32Array {
  const ids = taskIds.get();
  if (!ids) throw new Error(`${method}: this adapter routes by task: run the forward / generate inside withTaskIds(ids, …) (one task id per batch row)`);
  if (ids.length !== rows) throw new Error(`${method}: ${ids.length} task ids for a batch of ${rows} rows`);
  for (const t of ids) if (!(t >= 0 && t < nTasks)) throw new Error(`${method}: task id ${t} outside [0, ${nTasks}) (the adapter has ${nTasks} tasks)`);
  return ids;
}

const auxSink = new ContextVariable<F32[] | null>(null);
/** Losses added outside {@link withAuxLosses} once {@link drainAuxLosses} has been armed (the trainer's method hooks). */
let pending: F32[] | null = null;

/** Runs `fn`, collecting the auxiliary losses layers add meanwhile; returns `fn`'s result and their sum (or null). */
export function withAuxLosses<T>(fn: () => T): { result: T; aux: F32 | null } {
  const sink: F32[] = [];
  return auxSink.with(sink, () => ({ result: fn(), aux: total(sink) }));
}

function total(list: readonly F32[]): F32 | null {
  let aux: F32 | null = null;
  for (const l of list) if (!l.isDisposed) aux = aux ? add(aux, l) : l;
  return aux;
}

/** Adds a scalar loss term to the collecting training step (ignored without grad, or with no collector). */
export function addAuxLoss(loss: F32): void {
  if (!isGradEnabled()) return;
  (auxSink.get() ?? pending)?.push(loss);
}

/**
 * Training hooks for a trainer that asks for a regulariser after each forward (`PeftMethod.trainingHooks`): from
 * now on the auxiliary losses layers add outside {@link withAuxLosses} are kept, and `regularizer()` returns their
 * sum since its last call (0 when none; losses of forwards whose scope has ended are skipped).
 */
export function auxLossHooks(): { regularizer(): F32 } {
  pending ??= [];
  return {
    regularizer: () => {
      const list = pending ?? [];
      pending = [];
      return total(list) ?? (zeros([]) as F32);
    },
  };
}

/** The indices of the `k` largest entries of each row of `scores` [rows, n] (row-major), largest first, ties to the lower index. */
export function topK(scores: Float32Array, rows: number, n: number, k: number): Int32Array {
  if (!(Number.isInteger(k) && k >= 1 && k <= n)) throw new Error(`topK: k must be an integer in [1, ${n}], got ${k}`);
  const out = new Int32Array(rows * k);
  const order = Array.from({ length: n }, (_, i) => i);
  for (let r = 0; r < rows; r++) {
    const base = r * n;
    order.sort((a, b) => scores[base + b]! - scores[base + a]! || a - b);
    for (let j = 0; j < k; j++) out[r * k + j] = order[j]!;
    order.sort((a, b) => a - b);
  }
  return out;
}

/** Per expert, the share of the `rows·k` routing slots in `choice` [rows·k] sent to it (f_i). */
export function routedFractions(choice: Int32Array, n: number): Float32Array {
  const f = new Float32Array(n);
  for (const e of choice) f[e]! += 1 / choice.length;
  return f;
}

/**
 * The load-balancing loss `n · Σ_i f_i · P_i` for router probabilities `probs` [rows, n] and the top-k choices
 * `choice` [rows·k] (f_i: {@link routedFractions}, P_i: mean of column i of `probs`). Differentiable in `probs`.
 */
export function loadBalancingLoss(probs: Tensor, choice: Int32Array): F32 {
  const n = probs.shape[probs.rank - 1]!;
  const p = mean(reshape(probs, [-1, n]), 0);
  return mul(sum(mul(p, tensor(routedFractions(choice, n)))), n);
}

/** Rows `rows` of `x2` [N, D] (a differentiable gather; the gradient scatters back). */
export function gatherRows(x2: Tensor, rows: ArrayLike<number>): F32 {
  return embedding(x2, tensor(rows, [rows.length], 'i32'));
}

/**
 * Sparse mixture over `n` experts for the rows of `x2` [N, in]: row i is sent to experts `choice[i·k … i·k+k)`;
 * `expert(e, xRows)` maps the rows routed to expert e ([m, in]) to [m, out]; the result [N, out] is
 * `Σ_j gates[i, j] · expert(choice[i·k+j], x_i)` (gates [N, k], or null for weight 1). Experts with no rows are not run.
 */
export function dispatchRows(x2: Tensor, choice: Int32Array, k: number, n: number, outF: number, gates: Tensor | null, expert: (e: number, xRows: F32) => F32): F32 {
  const N = x2.shape[0]!;
  if (choice.length !== N * k) throw new Error(`dispatchRows: ${choice.length} choices for ${N} rows × k=${k}`);
  // Slot 0 of the gathered table is a zero row; slot s > 0 is one (row, expert) output.
  const slot = new Int32Array(N * k);
  const parts: F32[] = [zeros([1, outF]) as F32];
  let next = 1;
  for (let e = 0; e < n; e++) {
    const picks: number[] = [];
    for (let i = 0; i < N * k; i++) if (choice[i] === e) picks.push(i);
    if (picks.length === 0) continue;
    const out = expert(e, gatherRows(x2, picks.map((i) => Math.floor(i / k))));
    picks.forEach((i, j) => (slot[i] = next + j));
    next += picks.length;
    parts.push(out);
  }
  const table = parts.length === 1 ? parts[0]! : (concat(parts, 0) as F32);
  const picked = embedding(table, tensor(slot, [N, k], 'i32')); // [N, k, out]
  const weighted = gates ? mul(picked, reshape(gates, [N, k, 1])) : picked;
  return k === 1 ? (reshape(weighted, [N, outF]) as F32) : sum(weighted, 1);
}

/**
 * Gate values for top-k routing from router probabilities `probs` [N, n]: the chosen probabilities [N, k],
 * renormalised over the k choices (top-k softmax, as Mixtral) when `renormalize` (default: when k > 1). For k = 1
 * the raw probability (Switch) lets the router learn from the task loss; renormalised, the gate is exactly 1.
 */
export function topKGates(probs: Tensor, choice: Int32Array, k: number, renormalize = k > 1): F32 {
  const [N, n] = probs.shape as [number, number];
  const flat = Int32Array.from(choice, (e, i) => Math.floor(i / k) * n + e);
  const g = reshape(embedding(reshape(probs, [N * n, 1]), tensor(flat, [N, k], 'i32')), [N, k]) as F32;
  return renormalize ? (g.div(sum(g, 1, true)) as F32) : g;
}

/** The task of every token of a [rows, T] batch, from one task id per row. */
export function tokenTasks(ids: Int32Array, T: number): Int32Array {
  const out = new Int32Array(ids.length * T);
  ids.forEach((t, r) => out.fill(t, r * T, (r + 1) * T));
  return out;
}
