/** The module layer: a named module tree and the basic layers models are built from. */
export { Module, ModuleList } from './module.js';
export { Linear } from './linear.js';
export { Embedding } from './embedding.js';
export { RMSNorm, LayerNorm } from './norm.js';
export { ContextVariable } from './context-variable.js';
export { withSequenceContext, currentSequenceContext, type SequenceContext } from './sequence-context.js';
