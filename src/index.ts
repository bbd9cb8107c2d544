/**
 * peftjs — parameter-efficient fine-tuning for TypeScript.
 * @packageDocumentation
 */
export * from './engine/index.js';
export * from './nn/index.js';
export * from './models/index.js';
export * from './peft/index.js';
