/**
 * Side effects the core needs, as minimal structural ports (style.md §11–12). Concrete pieces are chosen in
 * the composition root (src/main.ts); tests pass a fixed clock and deterministic ids.
 */
export interface Clock {
  now(): Date;
}

export interface IdGenerator {
  /** A new unique id (UUID v4 in production). */
  next(): string;
}

export type LogFields = Record<string, unknown>;

/** Structured logger. Implementations must mask personal data (emails, phone numbers). */
export interface Logger {
  debug(fields: LogFields, message: string): void;
  info(fields: LogFields, message: string): void;
  warn(fields: LogFields, message: string): void;
  error(fields: LogFields, message: string): void;
  child(bindings: LogFields): Logger;
}

export const systemClock: Clock = { now: () => new Date() };
