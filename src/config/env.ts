/**
 * The only place the process environment is read. A `.env` file in the working directory is read too (never
 * written into process.env); real environment variables win over it.
 */
import fs from 'node:fs';
import path from 'node:path';
import dotenv from 'dotenv';

export function readEnvironment(cwd: string = process.cwd()): Record<string, string | undefined> {
  const file = path.join(cwd, '.env');
  const fromFile = fs.existsSync(file) ? dotenv.parse(fs.readFileSync(file)) : {};
  return { ...fromFile, ...process.env };
}
