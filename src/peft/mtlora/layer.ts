/**
 * MTLoRA ("MTLoRA: A Low-Rank Adaptation Approach for Efficient Multi-Task Learning"): a task-agnostic LoRA shared
 * by every task plus one task-specific LoRA per task, the latter selected per example by its task id:
 *
 *   y = x·Wᵀ + b + s·x·Aᵀ·Bᵀ + s_t·x·A_tᵀ·B_tᵀ      (t = the task of the token's batch row)
 *
 * The shared part runs through the fused LoRA op; the task parts run only on the rows of their task
 * (`dispatchRows`), so a task-specific module receives no gradient from other tasks' examples. (The paper places the
 * task-specific modules at the end of each ViT stage feeding task heads; a causal LM has one head, so here every
 * targeted layer carries both.)
 */
import { add, globalGenerator, mul, linear, reshape, zeros, type Tensor } from '../../engine/index.js';
import { dispatchRows, requireTaskIds, tokenTasks } from '../../multitask/routing.js';
import { AdaptedLinear } from '../common/adapter-layer.js';
import { kaimingUniform } from '../common/linear-adapter.js';
import { loraLinear } from '../lora/op.js';

type F32 = Tensor<'f32'>;

export interface MtloraSpec {
  r: number;
  scale: number;
  taskR: number;
  taskScale: number;
  nTasks: number;
  dropout: number;
  init: boolean;
}

export class MtloraLinear extends AdaptedLinear {
  protected readonly method = 'MTLORA';
  private readonly specs = new Map<string, MtloraSpec>();

  addAdapter(name: string, spec: MtloraSpec): void {
    const { inFeatures: inF, outFeatures: outF } = this.base;
    const b = (r: number) => (spec.init ? zeros([outF, r]) : kaimingUniform([outF, r]));
    const tasks = Array.from({ length: spec.nTasks }, (_, t) => t);
    this.setAdapterTensors(name, [
      ['lora_A.weight', kaimingUniform([spec.r, inF])],
      ['lora_B.weight', b(spec.r)],
      ...tasks.map((t): [string, Tensor] => [`task_lora_A.${t}.weight`, kaimingUniform([spec.taskR, inF])]),
      ...tasks.map((t): [string, Tensor] => [`task_lora_B.${t}.weight`, b(spec.taskR)]),
    ]);
    this.specs.set(name, spec);
  }

  override deleteAdapter(name: string): void {
    super.deleteAdapter(name);
    this.specs.delete(name);
  }

  protected fold(name: string): void {
    throw new Error(`MTLORA: adapter '${name}' cannot be merged (its task-specific part depends on each example's task)`);
  }

  forward(x: Tensor): F32 {
    const names = this.forwardAdapters();
    if (!names?.length) return this.base.forward(x);
    const shared = names.map((n) => ({
      a: this.tensor(n, 'lora_A.weight'),
      b: this.tensor(n, 'lora_B.weight'),
      scale: this.specs.get(n)!.scale,
      dropout: this.training ? this.specs.get(n)!.dropout : 0,
    }));
    let y = loraLinear(x, this.base.weightOutIn(), this.base.bias, shared, globalGenerator);
    const inF = this.base.inFeatures;
    const x2 = reshape(x, [x.size / inF, inF]);
    const rows = x.rank >= 2 ? x.size / inF / x.shape[x.rank - 2]! : 1;
    for (const n of names) {
      const spec = this.specs.get(n)!;
      const tasks = tokenTasks(requireTaskIds('MTLORA', rows, spec.nTasks), x2.shape[0]! / rows);
      const d = dispatchRows(x2, tasks, 1, spec.nTasks, this.base.outFeatures, null, (t, xr) =>
        mul(linear(linear(xr, this.tensor(n, `task_lora_A.${t}.weight`)), this.tensor(n, `task_lora_B.${t}.weight`)), spec.taskScale),
      );
      y = add(y, reshape(d, y.shape));
    }
    return y;
  }
}
