/**
 * peftjs — parameter-efficient fine-tuning for TypeScript.
 * @packageDocumentation
 */
export * from './engine/index.js';
export * from './nn/index.js';
export * from './models/index.js';
export * from './peft/index.js';
export * from './train/index.js';
export * as merge from './merge/index.js';
export * as serve from './serve/index.js';
export * from './multitask/index.js';
