/**
 * A small GraphQL document parser for the simulator (the `graphql` package is not a dependency). It reads the
 * executable subset of the GraphQL spec (October 2021, §2): operations with variable definitions, fields with
 * aliases and arguments, inline fragments, named fragments, directives, and every literal kind. Type-system
 * definitions and subscriptions' semantics are out of scope; an unsupported or malformed document is a
 * `GraphqlSyntaxError`, answered like Shopify's parse errors (HTTP 200, `errors[]`, no data).
 */

export type ValueNode =
  | { readonly kind: 'Variable'; readonly name: string }
  | { readonly kind: 'Scalar'; readonly value: string | number | boolean | null }
  | { readonly kind: 'Enum'; readonly value: string }
  | { readonly kind: 'List'; readonly values: readonly ValueNode[] }
  | { readonly kind: 'Object'; readonly fields: ReadonlyArray<readonly [string, ValueNode]> };

export interface DirectiveNode {
  readonly name: string;
  readonly args: ReadonlyArray<readonly [string, ValueNode]>;
}

export interface FieldNode {
  readonly kind: 'Field';
  readonly alias: string | null;
  readonly name: string;
  readonly args: ReadonlyArray<readonly [string, ValueNode]>;
  readonly directives: readonly DirectiveNode[];
  readonly selections: readonly SelectionNode[] | null;
  readonly line: number;
  readonly column: number;
}

export interface InlineFragmentNode {
  readonly kind: 'InlineFragment';
  readonly typeCondition: string | null;
  readonly directives: readonly DirectiveNode[];
  readonly selections: readonly SelectionNode[];
}

export interface FragmentSpreadNode {
  readonly kind: 'FragmentSpread';
  readonly name: string;
  readonly directives: readonly DirectiveNode[];
}

export type SelectionNode = FieldNode | InlineFragmentNode | FragmentSpreadNode;

export type TypeRef = { readonly kind: 'Named'; readonly name: string } | { readonly kind: 'List'; readonly of: TypeRef } | { readonly kind: 'NonNull'; readonly of: TypeRef };

export interface VariableDefinition {
  readonly name: string;
  readonly type: TypeRef;
  readonly defaultValue: ValueNode | null;
}

export interface OperationNode {
  readonly operation: 'query' | 'mutation' | 'subscription';
  readonly name: string | null;
  readonly variables: readonly VariableDefinition[];
  readonly selections: readonly SelectionNode[];
}

export interface FragmentDefinition {
  readonly typeCondition: string;
  readonly selections: readonly SelectionNode[];
}

export interface DocumentNode {
  readonly operations: readonly OperationNode[];
  readonly fragments: ReadonlyMap<string, FragmentDefinition>;
}

export class GraphqlSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(message);
    this.name = 'GraphqlSyntaxError';
  }
}

type TokenKind = 'punct' | 'name' | 'int' | 'float' | 'string' | 'eof';

interface Token {
  readonly kind: TokenKind;
  readonly value: string;
  readonly start: number;
}

const PUNCTUATORS = new Set(['!', '$', '&', '(', ')', ':', '=', '@', '[', ']', '{', '|', '}']);
const NAME_START = /[_A-Za-z]/;
const NAME_CONTINUE = /[_0-9A-Za-z]/;

function position(source: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < offset && i < source.length; i++) {
    if (source[i] === '\n') {
      line++;
      lineStart = i + 1;
    }
  }
  return { line, column: offset - lineStart + 1 };
}

function fail(source: string, offset: number, message: string): never {
  const { line, column } = position(source, offset);
  throw new GraphqlSyntaxError(`Parse error on ${message} (line ${line}, column ${column})`, line, column);
}

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    // Ignored tokens: white space, line terminators, commas, comments, the BOM.
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === ',' || c === '\ufeff') {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < source.length && source[i] !== '\n' && source[i] !== '\r') i++;
      continue;
    }
    const start = i;
    if (c === '.') {
      if (source.startsWith('...', i)) {
        tokens.push({ kind: 'punct', value: '...', start });
        i += 3;
        continue;
      }
      fail(source, i, '"." (expected "...")');
    }
    if (PUNCTUATORS.has(c)) {
      tokens.push({ kind: 'punct', value: c, start });
      i++;
      continue;
    }
    if (NAME_START.test(c)) {
      while (i < source.length && NAME_CONTINUE.test(source[i]!)) i++;
      tokens.push({ kind: 'name', value: source.slice(start, i), start });
      continue;
    }
    if (c === '-' || (c >= '0' && c <= '9')) {
      const match = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?/.exec(source.slice(i));
      if (match === null) fail(source, i, `"${c}"`);
      i += match[0].length;
      if (i < source.length && (NAME_START.test(source[i]!) || source[i] === '.')) fail(source, i, `"${source[i]}" after a number`);
      tokens.push({ kind: match[2] !== undefined || match[3] !== undefined ? 'float' : 'int', value: match[0], start });
      continue;
    }
    if (c === '"') {
      if (source.startsWith('"""', i)) {
        const end = source.indexOf('"""', i + 3);
        if (end < 0) fail(source, i, 'an unterminated block string');
        tokens.push({ kind: 'string', value: blockString(source.slice(i + 3, end)), start });
        i = end + 3;
        continue;
      }
      let value = '';
      i++;
      for (;;) {
        if (i >= source.length || source[i] === '\n' || source[i] === '\r') fail(source, start, 'an unterminated string');
        const ch = source[i]!;
        if (ch === '"') {
          i++;
          break;
        }
        if (ch === '\\') {
          const esc = source[i + 1];
          const simple: Record<string, string> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
          if (esc !== undefined && esc in simple) {
            value += simple[esc];
            i += 2;
            continue;
          }
          if (esc === 'u' && /^[0-9a-fA-F]{4}$/.test(source.slice(i + 2, i + 6))) {
            value += String.fromCharCode(parseInt(source.slice(i + 2, i + 6), 16));
            i += 6;
            continue;
          }
          fail(source, i, 'an invalid escape sequence');
        }
        value += ch;
        i++;
      }
      tokens.push({ kind: 'string', value, start });
      continue;
    }
    fail(source, i, `"${c}"`);
  }
  tokens.push({ kind: 'eof', value: '', start: source.length });
  return tokens;
}

/** Block string value (spec §2.9.4): common indentation and blank first/last lines removed. */
function blockString(raw: string): string {
  const lines = raw.replace(/\\"""/g, '"""').split(/\r\n|\n|\r/);
  let common: number | null = null;
  for (const line of lines.slice(1)) {
    const indent = line.length - line.trimStart().length;
    if (indent < line.length && (common === null || indent < common)) common = indent;
  }
  const out = lines.map((line, i) => (i === 0 || common === null ? line : line.slice(common)));
  while (out.length > 0 && out[0]!.trim() === '') out.shift();
  while (out.length > 0 && out[out.length - 1]!.trim() === '') out.pop();
  return out.join('\n');
}

class Parser {
  #i = 0;
  constructor(
    private readonly source: string,
    private readonly tokens: Token[],
  ) {}

  get #token(): Token {
    return this.tokens[this.#i]!;
  }

  #fail(message?: string): never {
    const token = this.#token;
    return fail(this.source, token.start, message ?? (token.kind === 'eof' ? 'end of document' : `"${token.value}"`));
  }

  #peek(value: string): boolean {
    const token = this.#token;
    return (token.kind === 'punct' || token.kind === 'name') && token.value === value;
  }

  #skip(value: string): boolean {
    if (!this.#peek(value)) return false;
    this.#i++;
    return true;
  }

  #expect(value: string): void {
    if (!this.#skip(value)) this.#fail(`${this.#token.kind === 'eof' ? 'end of document' : `"${this.#token.value}"`} (expected "${value}")`);
  }

  #name(): string {
    const token = this.#token;
    if (token.kind !== 'name') this.#fail(`${token.kind === 'eof' ? 'end of document' : `"${token.value}"`} (expected a name)`);
    this.#i++;
    return token.value;
  }

  document(): DocumentNode {
    const operations: OperationNode[] = [];
    const fragments = new Map<string, FragmentDefinition>();
    while (this.#token.kind !== 'eof') {
      if (this.#peek('{')) {
        operations.push({ operation: 'query', name: null, variables: [], selections: this.#selectionSet() });
      } else if (this.#peek('query') || this.#peek('mutation') || this.#peek('subscription')) {
        const operation = this.#name() as OperationNode['operation'];
        const name = this.#token.kind === 'name' ? this.#name() : null;
        const variables = this.#peek('(') ? this.#variableDefinitions() : [];
        this.#directives();
        operations.push({ operation, name, variables, selections: this.#selectionSet() });
      } else if (this.#peek('fragment')) {
        this.#i++;
        const name = this.#name();
        if (name === 'on') this.#fail('"on" (a fragment cannot be named "on")');
        this.#expect('on');
        const typeCondition = this.#name();
        this.#directives();
        fragments.set(name, { typeCondition, selections: this.#selectionSet() });
      } else {
        this.#fail();
      }
    }
    if (operations.length === 0) this.#fail('a document without an operation');
    return { operations, fragments };
  }

  #variableDefinitions(): VariableDefinition[] {
    this.#expect('(');
    const out: VariableDefinition[] = [];
    while (!this.#skip(')')) {
      this.#expect('$');
      const name = this.#name();
      this.#expect(':');
      const type = this.#type();
      const defaultValue = this.#skip('=') ? this.#value(true) : null;
      this.#directives();
      out.push({ name, type, defaultValue });
    }
    return out;
  }

  #type(): TypeRef {
    let type: TypeRef;
    if (this.#skip('[')) {
      type = { kind: 'List', of: this.#type() };
      this.#expect(']');
    } else {
      type = { kind: 'Named', name: this.#name() };
    }
    return this.#skip('!') ? { kind: 'NonNull', of: type } : type;
  }

  #directives(): DirectiveNode[] {
    const out: DirectiveNode[] = [];
    while (this.#skip('@')) out.push({ name: this.#name(), args: this.#peek('(') ? this.#arguments() : [] });
    return out;
  }

  #arguments(): Array<readonly [string, ValueNode]> {
    this.#expect('(');
    const out: Array<readonly [string, ValueNode]> = [];
    while (!this.#skip(')')) {
      const name = this.#name();
      this.#expect(':');
      out.push([name, this.#value(false)]);
    }
    return out;
  }

  #value(constant: boolean): ValueNode {
    const token = this.#token;
    if (token.kind === 'punct') {
      if (token.value === '$' && !constant) {
        this.#i++;
        return { kind: 'Variable', name: this.#name() };
      }
      if (token.value === '[') {
        this.#i++;
        const values: ValueNode[] = [];
        while (!this.#skip(']')) values.push(this.#value(constant));
        return { kind: 'List', values };
      }
      if (token.value === '{') {
        this.#i++;
        const fields: Array<readonly [string, ValueNode]> = [];
        while (!this.#skip('}')) {
          const name = this.#name();
          this.#expect(':');
          fields.push([name, this.#value(constant)]);
        }
        return { kind: 'Object', fields };
      }
      this.#fail();
    }
    this.#i++;
    switch (token.kind) {
      case 'int':
      case 'float':
        return { kind: 'Scalar', value: Number(token.value) };
      case 'string':
        return { kind: 'Scalar', value: token.value };
      case 'name':
        if (token.value === 'true' || token.value === 'false') return { kind: 'Scalar', value: token.value === 'true' };
        if (token.value === 'null') return { kind: 'Scalar', value: null };
        return { kind: 'Enum', value: token.value };
      default:
        this.#i--;
        return this.#fail();
    }
  }

  #selectionSet(): SelectionNode[] {
    this.#expect('{');
    const out: SelectionNode[] = [];
    do {
      out.push(this.#selection());
    } while (!this.#skip('}'));
    return out;
  }

  #selection(): SelectionNode {
    if (this.#skip('...')) {
      if (this.#peek('on')) {
        this.#i++;
        const typeCondition = this.#name();
        return { kind: 'InlineFragment', typeCondition, directives: this.#directives(), selections: this.#selectionSet() };
      }
      if (this.#token.kind === 'name') return { kind: 'FragmentSpread', name: this.#name(), directives: this.#directives() };
      return { kind: 'InlineFragment', typeCondition: null, directives: this.#directives(), selections: this.#selectionSet() };
    }
    const start = position(this.source, this.#token.start);
    let name = this.#name();
    let alias: string | null = null;
    if (this.#skip(':')) {
      alias = name;
      name = this.#name();
    }
    const args = this.#peek('(') ? this.#arguments() : [];
    const directives = this.#directives();
    const selections = this.#peek('{') ? this.#selectionSet() : null;
    return { kind: 'Field', alias, name, args, directives, selections, line: start.line, column: start.column };
  }
}

export function parseDocument(source: string): DocumentNode {
  return new Parser(source, tokenize(source)).document();
}
