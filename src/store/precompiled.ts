/**
 * Queries built and compiled once per dialect, then run with fresh parameters. Kysely rebuilds its operation
 * tree and recompiles the SQL text for every query; on the webhook request path (a handful of statements per
 * request) that was about a third of each query's CPU in the bench:ingest profile. Used only on hot paths;
 * everything else uses the query builder directly.
 */
import type { Compilable, CompiledQuery, Kysely, QueryResult } from 'kysely';
import type { Dialect } from './database';
import type { Database } from './schema';

const PLACEHOLDER = '\u0000precompiled:';

interface Template {
  readonly compiled: CompiledQuery;
  /** For each parameter of the compiled query: the argument it takes, or null for a constant. */
  readonly slots: ReadonlyArray<string | null>;
}

export class PrecompiledQuery<K extends string, R> {
  readonly #keys: readonly K[];
  readonly #build: (db: Kysely<Database>, args: Readonly<Record<K, unknown>>) => Compilable<R>;
  readonly #templates = new Map<Dialect, Template>();

  /**
   * `build` gets placeholder values and must use each one exactly once as a plain value (a comparison operand,
   * an inserted value), never inside an expression, so each becomes exactly one parameter; this is checked.
   */
  constructor(keys: readonly K[], build: (db: Kysely<Database>, args: Readonly<Record<K, unknown>>) => Compilable<R>) {
    this.#keys = keys;
    this.#build = build;
  }

  #template(db: Kysely<Database>, dialect: Dialect): Template {
    let template = this.#templates.get(dialect);
    if (template === undefined) {
      const placeholders = Object.fromEntries(this.#keys.map((k) => [k, `${PLACEHOLDER}${k}`])) as Record<K, unknown>;
      const compiled = this.#build(db, placeholders).compile();
      const slots = compiled.parameters.map((p) => (typeof p === 'string' && p.startsWith(PLACEHOLDER) ? p.slice(PLACEHOLDER.length) : null));
      for (const key of this.#keys) {
        if (slots.filter((s) => s === key).length !== 1) throw new Error(`precompiled query: argument ${key} must be used exactly once as a value`);
      }
      template = { compiled, slots };
      this.#templates.set(dialect, template);
    }
    return template;
  }

  /** The query with these arguments, compiled for `dialect`, not run (to run elsewhere: src/store/sqlite-offload.ts). */
  compile(db: Kysely<Database>, dialect: Dialect, args: Readonly<Record<K, unknown>>): CompiledQuery<R> {
    const { compiled, slots } = this.#template(db, dialect);
    const parameters = slots.map((slot, i) => (slot === null ? compiled.parameters[i] : args[slot as K]));
    return { ...compiled, parameters } as CompiledQuery<R>;
  }

  /** Run on `db` (a Kysely instance or a transaction of the given dialect) with these arguments. */
  async execute(db: Kysely<Database>, dialect: Dialect, args: Readonly<Record<K, unknown>>): Promise<QueryResult<R>> {
    return db.executeQuery<R>(this.compile(db, dialect, args));
  }
}

/**
 * Whether `row` has a defined value under each of `columns` and no other key: the shape a precompiled one-row
 * insert of those columns takes. Any other row goes through the query builder, which leaves undefined values out
 * (so column defaults apply).
 */
export function hasExactlyColumns(row: object, columns: readonly string[]): boolean {
  let count = 0;
  for (const key in row) if (Object.hasOwn(row, key)) count += 1;
  if (count !== columns.length) return false;
  for (const column of columns) if ((row as Record<string, unknown>)[column] === undefined) return false;
  return true;
}
