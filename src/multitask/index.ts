/** Multi-task adaptation: task mixtures, task-id routing, per-task training and evaluation. */
export { samplingProbabilities, TaskMixture, type MixtureOptions, type SamplingOptions, type TaskBatch, type TaskData, type TaskRecord } from './data.js';
export { taskEvalLoss, taskExactMatch, type ExactMatch } from './eval.js';
export {
  addAuxLoss,
  auxLossHooks,
  currentTaskIds,
  dispatchRows,
  gatherRows,
  loadBalancingLoss,
  requireTaskIds,
  routedFractions,
  tokenTasks,
  topK,
  topKGates,
  withAuxLosses,
  withTaskIds,
} from './routing.js';
export { evaluateTasks, trainMultitask, type MultitaskTrainOptions, type MultitaskTrainResult, type TaskScore } from './train.js';
export { chooseFirstTokenExpert, type FirstExpertChoice } from './first-expert.js';
