/**
 * Model soups (Wortsman et al., 2022) over whole models (name → tensor maps): the uniform soup averages every
 * ingredient; the greedy soup visits the ingredients from best to worst held-out score and keeps each one whose
 * addition does not lower the soup's score.
 */
import { linear } from './linear.js';

/** A model as its parameter tensors by name. */
export type ModelState = ReadonlyMap<string, Float32Array>;

/** The uniform average of `models` (all must hold the same names and lengths), as a fresh map. */
export function uniformSoup(models: readonly ModelState[]): Map<string, Float32Array> {
  if (models.length === 0) throw new Error('uniformSoup: no models');
  const out = new Map<string, Float32Array>();
  for (const name of models[0].keys()) {
    const tensors = models.map((m, i) => {
      const t = m.get(name);
      if (t === undefined) throw new Error(`uniformSoup: model ${i} has no tensor ${JSON.stringify(name)}`);
      return t;
    });
    out.set(name, linear(tensors, tensors.map(() => 1)));
  }
  return out;
}

/** What {@link greedySoup} returns. */
export interface GreedySoup {
  soup: Map<string, Float32Array>;
  /** Indices (into the input list) of the ingredients kept, in the order they were added. */
  ingredients: number[];
  /** Held-out score of the soup. */
  score: number;
}

/**
 * Greedy soup: scores every model with `evaluate` (higher is better), starts from the best, then adds each next
 * best ingredient when the uniform soup with it scores at least as well as without.
 */
export async function greedySoup(models: readonly ModelState[], evaluate: (model: ModelState) => number | Promise<number>): Promise<GreedySoup> {
  if (models.length === 0) throw new Error('greedySoup: no models');
  const scores: number[] = [];
  for (const m of models) scores.push(await evaluate(m));
  const order = models.map((_, i) => i).sort((a, b) => scores[b] - scores[a]);
  let ingredients = [order[0]];
  let soup = uniformSoup([models[order[0]]]);
  let score = scores[order[0]];
  for (const i of order.slice(1)) {
    const candidate = uniformSoup([...ingredients, i].map((j) => models[j]));
    const s = await evaluate(candidate);
    if (s >= score) {
      ingredients = [...ingredients, i];
      soup = candidate;
      score = s;
    }
  }
  return { soup, ingredients, score };
}
