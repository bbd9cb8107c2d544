/** Pretrained models: loading (HF checkpoints, llama2.c files), the Llama family, KV cache, generation. */
export * from './types.js';
export { ConfigReader, readConfigJson } from './config.js';
export { ARCHITECTURES, architectureFor, supportedModelTypes, type Architecture } from './registry.js';
export { loadModel, loadCausalLM, randomModel, type LoadOptions, type WeightDType } from './load.js';
export { LlamaForCausalLM, LlamaModel, LlamaDecoderLayer, LlamaAttention, LlamaMLP, parseLlamaConfig, type LlamaConfig } from './llama.js';
export { RotaryEmbedding, parseRopeScaling, ROPE_SCALING_TYPES, type RopeScaling } from './rope.js';
export { Llama2cFile, type Llama2cHeader } from './llama2c.js';
export { generate, type GenerateOptions, type Generation } from './generate.js';
