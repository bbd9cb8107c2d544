/**
 * Pretraining of the embedded base model with peftjs's own engine: a randomly initialised tiny Llama, every
 * parameter trained (full fine-tuning) with AdamW on the packed synthetic corpus (corpus.ts), next-token loss on
 * every token. Deterministic for a recipe (seeded corpus, weights and batch order).
 */
import { AdamW, clipGradNorm, crossEntropy, fromStorage, tidy, type Tensor } from '../engine/index.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { randomModel, type CausalLM } from '../models/index.js';
import { tokenizeExample } from '../train/data/tokenize.js';
import { buildRows } from '../train/data/pack.js';
import { BatchLoader } from '../train/data/split.js';
import { learningRate } from '../train/schedule.js';
import { corpusDocuments } from './corpus.js';
import type { PretrainRecipe } from './default-model.js';

export interface PretrainResult {
  model: CausalLM;
  /** Mean loss of the first and of the last `window` steps (nats per token). */
  firstLoss: number;
  finalLoss: number;
  /** Steps averaged in firstLoss / finalLoss: 50, or a fifth of the steps when fewer than 250. */
  window: number;
  /** Corpus tokens and how many of them one pass of training saw. */
  corpusTokens: number;
  tokensSeen: number;
  seconds: number;
}

/**
 * Trains a model of `config` from random weights on the corpus; `onLog` receives a line every `logEvery` steps.
 */
export function pretrain(config: Record<string, unknown>, tok: Tokenizer, recipe: PretrainRecipe, onLog: (line: string) => void = () => {}, logEvery = 50): PretrainResult {
  const started = performance.now();
  const docs = corpusDocuments(recipe.documents, recipe.seed);
  const examples = docs.map((text, i) => tokenizeExample(tok, { kind: 'text', text, source: { file: 'corpus', line: i + 1 } }));
  const { rows } = buildRows(examples, recipe.seqLen, true, tok.padId ?? 0);
  const corpusTokens = examples.reduce((s, e) => s + e.ids.length, 0);
  const model = randomModel(config, { seed: recipe.seed }) as CausalLM;
  const params = model.parameters() as Tensor<'f32'>[];
  for (const p of params) p.requiresGrad = true;
  const opt = new AdamW(params, { lr: recipe.lr, weightDecay: recipe.weightDecay, beta2: 0.99 });
  const loader = new BatchLoader(rows, recipe.batchSize, recipe.seed, true, tok.padId ?? 0);
  const losses: number[] = [];
  model.train();
  for (let step = 0; step < recipe.steps; step++) {
    const lr = learningRate(step, { lr: recipe.lr, kind: 'cosine', warmupSteps: recipe.warmupSteps, totalSteps: recipe.steps, minLrRatio: 0.1 });
    opt.groups[0]!.options.lr = lr;
    const b = loader.next();
    const loss = tidy(() => {
      const l = crossEntropy(model.forward(fromStorage(b.ids, [b.B, b.T], 'i32')), fromStorage(b.targets, [b.B, b.T], 'i32'));
      l.backward();
      return l.item();
    });
    clipGradNorm(params, 1);
    opt.step();
    opt.zeroGrad();
    losses.push(loss);
    if ((step + 1) % logEvery === 0 || step + 1 === recipe.steps) {
      const recent = losses.slice(-logEvery);
      const mean = recent.reduce((s, x) => s + x, 0) / recent.length;
      onLog(`step ${step + 1}/${recipe.steps}  loss ${mean.toFixed(4)}  lr ${lr.toExponential(2)}  ${((performance.now() - started) / 1000).toFixed(0)}s`);
    }
  }
  model.eval();
  for (const p of params) p.requiresGrad = false;
  const meanOf = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;
  const window = Math.max(1, Math.min(50, Math.floor(recipe.steps / 5)));
  return {
    model,
    firstLoss: meanOf(losses.slice(0, window)),
    finalLoss: meanOf(losses.slice(-window)),
    window,
    corpusTokens,
    tokensSeen: recipe.steps * recipe.batchSize * recipe.seqLen,
    seconds: (performance.now() - started) / 1000,
  };
}
