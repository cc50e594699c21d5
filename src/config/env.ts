/**
 * The only place the process environment is read. A `.env` file in the working directory is read too (never
 * written into process.env); real environment variables win over it.
 */
import fs from 'node:fs';
import path from 'node:path';
import dotenv from 'dotenv';
import { ConfigError } from './config';

/** Throws a ConfigError when a `.env` exists but cannot be read (a directory, no permission). */
export function readEnvironment(cwd: string = process.cwd()): Record<string, string | undefined> {
  const file = path.join(cwd, '.env');
  let fromFile: Record<string, string> = {};
  if (fs.existsSync(file)) {
    try {
      fromFile = dotenv.parse(fs.readFileSync(file));
    } catch (err) {
      throw new ConfigError([`${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
    }
  }
  return { ...fromFile, ...process.env };
}
