/**
 * pino behind the Logger port, with every record masked (mask.ts) before it is written: the message, the
 * fields and the child bindings. `destination` is injectable so tests can capture and scan the output.
 */
import pino, { type DestinationStream } from 'pino';
import type { LogLevel } from '../config/config';
import type { LogFields, Logger } from '../ports';
import { maskString, maskValue } from './mask';

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Default: stdout. */
  readonly destination?: DestinationStream;
}

function wrap(instance: pino.Logger): Logger {
  return {
    debug: (fields, message) => instance.debug(fields, message),
    info: (fields, message) => instance.info(fields, message),
    warn: (fields, message) => instance.warn(fields, message),
    error: (fields, message) => instance.error(fields, message),
    // pino does not apply formatters.bindings to children, so mask child bindings here.
    child: (bindings: LogFields) => wrap(instance.child(maskValue(bindings) as pino.Bindings)),
  };
}

export function createLogger(options: LoggerOptions): Logger {
  const instance = pino(
    {
      level: options.level,
      base: { app: 'consent-bridge' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        bindings: (bindings) => maskValue(bindings) as Record<string, unknown>,
        log: (record) => maskValue(record) as Record<string, unknown>,
      },
      hooks: {
        logMethod(args, method) {
          const masked = args.map((arg) => (typeof arg === 'string' ? maskString(arg) : arg)) as Parameters<typeof method>;
          method.apply(this, masked);
        },
      },
      serializers: { err: (err: unknown) => maskValue(err) },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
  return wrap(instance);
}

/** A logger that writes nothing (CLI commands that print their own output, some tests). */
export const silentLogger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
  child: () => silentLogger,
};
