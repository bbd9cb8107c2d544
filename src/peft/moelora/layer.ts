/**
 * A mixture of LoRA experts on a Linear layer (MoE-LoRA; also MeteoRA's layer, whose experts are existing LoRAs):
 *
 *   y = x·Wᵀ + b + Σ_{e ∈ topk(x)} g_e(x) · s_e · x·A_eᵀ·B_eᵀ,     p(x) = softmax(x·W_rᵀ)   (W_r [E, in]: the router)
 *
 * per token. Gates g are the chosen router probabilities (renormalised over the k choices when k > 1, and always
 * for MeteoRA, see `topKGates`). Each expert runs only on the tokens routed to it (`dispatchRows`), so an expert that receives no
 * token gets no gradient. While a training step collects auxiliary losses, the layer adds
 * `router_aux_loss_coef · E · Σ f_e P_e` (load balancing) and, when a supervision coefficient is set and task ids
 * are in effect, `coef · CE(router logits, task of the token)` (MeteoRA's gate trained to pick the task's LoRA).
 * The router reads the token's input x, or [x, c] with c the causal mean of the inputs up to the token
 * (`causalPrefixMean`): the context that tells which task a token belongs to (W_r is then [E, 2·in]).
 */
import { add, concat, crossEntropy, linear, mul, randn, reshape, softmax, tensor, zeros, type Tensor } from '../../engine/index.js';
import type { Linear } from '../../nn/index.js';
import { addAuxLoss, currentTaskIds, dispatchRows, loadBalancingLoss, topK, topKGates, tokenTasks } from '../../multitask/routing.js';
import { causalPrefixMean, firstRealPositions } from '../../multitask/prefix-mean.js';
import { AdaptedLinear } from '../common/adapter-layer.js';
import { kaimingUniform } from '../common/linear-adapter.js';

type F32 = Tensor<'f32'>;
const IGNORE = -100;

export interface MoeLoraSpec {
  r: number;
  /** Scaling of each expert (its α/r). */
  scales: number[];
  topK: number;
  /** Weight of the load-balancing loss (0: none). */
  auxCoef: number;
  /** Weight of the router's cross-entropy against the token's task id (0: none). */
  supervisionCoef: number;
  /** true: B = 0 (the adapter starts as a no-op); false: B random too. */
  init: boolean;
  /** Whether the experts train with the router (false: MeteoRA, only the gate trains). */
  trainExperts: boolean;
  /**
   * Renormalise the chosen probabilities over the k choices even for k = 1 (then the gate is 1: the chosen expert
   * runs at its own scale, as a frozen LoRA must); default: only for k > 1.
   */
  renormalize?: boolean;
  /** Checkpoint name of the router (`lora_router`, `meteora_gate`). */
  router: string;
  /** What the router reads: the token's input (default) or it and the causal mean of the inputs up to it. */
  gateInput?: GateInput;
  /**
   * The expert of each sequence's first real position, where no earlier token tells the task (top-1 only; the
   * router decides when unset). That position is left out of the gate's supervision.
   */
  firstExpert?: number;
}

/** What a router reads (see the file comment). */
export type GateInput = 'token' | 'token_prefix_mean';

export class MoeLoraLinear extends AdaptedLinear {
  protected readonly method: string;
  private readonly specs = new Map<string, MoeLoraSpec>();

  constructor(
    base: Linear,
    method = 'MOELORA',
  ) {
    super(base);
    this.method = method;
  }

  addAdapter(name: string, spec: MoeLoraSpec): void {
    const E = spec.scales.length;
    if (!(spec.topK >= 1 && spec.topK <= E)) throw new Error(`${this.method}: top_k ${spec.topK} must lie in [1, ${E}] (the number of experts)`);
    const { inFeatures: inF, outFeatures: outF } = this.base;
    const experts = Array.from({ length: E }, () => ({ a: kaimingUniform([spec.r, inF]), b: spec.init ? zeros([outF, spec.r]) : kaimingUniform([outF, spec.r]) }));
    this.setAdapterTensors(name, [
      ...experts.map((x, e): [string, Tensor] => [`lora_A.${e}.weight`, x.a]),
      ...experts.map((x, e): [string, Tensor] => [`lora_B.${e}.weight`, x.b]),
      [`${spec.router}.weight`, randn([E, spec.gateInput === 'token_prefix_mean' ? 2 * inF : inF], 0.02)],
    ]);
    this.checkFirstExpert(spec, spec.firstExpert);
    this.specs.set(name, { ...spec });
  }

  /** Sets (a number) or clears (null) the expert of the first real position for adapter `name` (see MoeLoraSpec). */
  setFirstExpert(name: string, expert: number | null): void {
    const spec = this.specs.get(name);
    if (!spec) throw new Error(`${this.method}: no adapter '${name}'`);
    this.checkFirstExpert(spec, expert ?? undefined);
    spec.firstExpert = expert ?? undefined;
  }

  private checkFirstExpert(spec: MoeLoraSpec, expert: number | undefined): void {
    const E = spec.scales.length;
    if (expert !== undefined && !(spec.topK === 1 && Number.isInteger(expert) && expert >= 0 && expert < E))
      throw new Error(`${this.method}: a first-position expert (${expert}) needs top_k 1 and an expert index in [0, ${E})`);
  }

  override deleteAdapter(name: string): void {
    super.deleteAdapter(name);
    this.specs.delete(name);
  }

  override setActiveAdapters(names: readonly string[], inferenceMode: boolean): void {
    super.setActiveAdapters(names, inferenceMode);
    for (const [n, spec] of this.specs)
      if (!spec.trainExperts) for (const [k, t] of this.adapterTensors(n)) if (k.startsWith('lora_')) t.requiresGrad = false;
  }

  protected fold(name: string): void {
    throw new Error(`${this.method}: adapter '${name}' cannot be merged (its experts are chosen per token)`);
  }

  /** Expert e's factors A [r, in] and B [out, r] of adapter `name`. */
  expert(name: string, e: number): { a: F32; b: F32 } {
    return { a: this.tensor(name, `lora_A.${e}.weight`), b: this.tensor(name, `lora_B.${e}.weight`) };
  }

  /** Router logits [N, E] of adapter `name` for rows x2 [N, in] (T positions per sequence). */
  private routerLogits(name: string, x2: Tensor, T: number): F32 {
    const spec = this.specs.get(name)!;
    const input = spec.gateInput === 'token_prefix_mean' ? concat([x2, causalPrefixMean(x2, T, spec)], 1) : x2;
    return linear(input, this.tensor(name, `${spec.router}.weight`));
  }

  private mixture(name: string, x2: Tensor, T: number): F32 {
    const spec = this.specs.get(name)!;
    const E = spec.scales.length;
    const N = x2.shape[0]!;
    const first = spec.firstExpert === undefined ? null : firstRealPositions(N, T);
    const logits = this.routerLogits(name, x2, T);
    const probs = softmax(logits);
    const choice = topK(probs.toTyped() as Float32Array, N, E, spec.topK);
    if (first) first.forEach((f, i) => f && (choice[i] = spec.firstExpert!));
    if (this.training && spec.auxCoef > 0) addAuxLoss(mul(loadBalancingLoss(probs, choice), spec.auxCoef));
    const tasks = currentTaskIds();
    if (this.training && spec.supervisionCoef > 0 && tasks) {
      const labels = tokenTasks(tasks, T);
      first?.forEach((f, i) => f && (labels[i] = IGNORE));
      addAuxLoss(mul(crossEntropy(logits, tensor(labels, [N], 'i32'), { ignoreIndex: IGNORE }), spec.supervisionCoef));
    }
    const gates = topKGates(probs, choice, spec.topK, spec.renormalize ?? spec.topK > 1);
    return dispatchRows(x2, choice, spec.topK, E, this.base.outFeatures, gates, (e, xr) => {
      const { a, b } = this.expert(name, e);
      return mul(linear(linear(xr, a), b), spec.scales[e]!);
    });
  }

  forward(x: Tensor): F32 {
    const names = this.forwardAdapters();
    let y = this.base.forward(x);
    if (!names?.length) return y;
    const inF = this.base.inFeatures;
    const x2 = reshape(x, [x.size / inF, inF]);
    const T = x.rank >= 2 ? x.shape[x.rank - 2]! : 1;
    for (const n of names) y = add(y, reshape(this.mixture(n, x2, T), y.shape));
    return y;
  }
}
