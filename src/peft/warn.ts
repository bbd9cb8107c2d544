/** Where PEFT warnings go (the console by default); tests and tools can capture them. */
export type WarningHandler = (message: string) => void;

let handler: WarningHandler = (message) => console.warn(`peftjs: ${message}`);

/** Emits one PEFT warning. */
export function peftWarn(message: string): void {
  handler(message);
}

/** Replaces the warning handler; returns the previous one (restore it when done). */
export function setPeftWarningHandler(next: WarningHandler): WarningHandler {
  const previous = handler;
  handler = next;
  return previous;
}
