/**
 * Shopify's search syntax for the `query` argument of connections (shopify.dev/docs/api/usage/search-syntax), the
 * part the app and a sandbox need: `field:value`, comparators `field:>v`, `:>=`, `:<`, `:<=`, prefix `value*`,
 * quoted values (`'…'` or `"…"`), `AND` (also implicit between terms), `OR`, `NOT` / leading `-`, and parentheses.
 * A term without a field searches the resource's default text fields. A field the resource does not know
 * matches nothing (Shopify then treats the term as text, which in practice finds nothing either).
 */

/** How a resource exposes one search field. */
export type SearchValue =
  | { readonly kind: 'number'; readonly value: number | null }
  | { readonly kind: 'date'; readonly value: Date | null }
  | { readonly kind: 'text'; readonly values: readonly string[] };

export type SearchFields = (field: string) => SearchValue | undefined;

export type SearchPredicate = (fields: SearchFields) => boolean;

export class SearchSyntaxError extends Error {}

type Token = { kind: 'open' } | { kind: 'close' } | { kind: 'word'; text: string };

function tokenize(query: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < query.length) {
    const c = query[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '(') {
      tokens.push({ kind: 'open' });
      i++;
    } else if (c === ')') {
      tokens.push({ kind: 'close' });
      i++;
    } else {
      let text = '';
      while (i < query.length && !/[\s()]/.test(query[i]!)) {
        const ch = query[i]!;
        if (ch === "'" || ch === '"') {
          const end = query.indexOf(ch, i + 1);
          if (end < 0) throw new SearchSyntaxError(`unterminated quote in search query`);
          text += query.slice(i, end + 1);
          i = end + 1;
        } else {
          text += ch;
          i++;
        }
      }
      tokens.push({ kind: 'word', text });
    }
  }
  return tokens;
}

function unquote(value: string): string {
  return value.length >= 2 && (value[0] === "'" || value[0] === '"') && value[value.length - 1] === value[0] ? value.slice(1, -1) : value;
}

type Comparator = ':' | '>' | '>=' | '<' | '<=';

function compare(a: number, b: number, op: Comparator): boolean {
  switch (op) {
    case ':':
      return a === b;
    case '>':
      return a > b;
    case '>=':
      return a >= b;
    case '<':
      return a < b;
    case '<=':
      return a <= b;
  }
}

function term(text: string): SearchPredicate {
  const colon = text.indexOf(':');
  if (colon <= 0) {
    const needle = unquote(text).toLowerCase().replace(/\*$/, '');
    return (fields) => {
      const found = fields('');
      return found !== undefined && found.kind === 'text' && found.values.some((v) => v.toLowerCase().includes(needle));
    };
  }
  const field = text.slice(0, colon).toLowerCase();
  let rest = text.slice(colon + 1);
  let op: Comparator = ':';
  for (const candidate of ['>=', '<=', '>', '<'] as const) {
    if (rest.startsWith(candidate)) {
      op = candidate;
      rest = rest.slice(candidate.length);
      break;
    }
  }
  const raw = unquote(rest);
  return (fields) => {
    const found = fields(field);
    if (found === undefined) return false;
    if (found.kind === 'number') {
      const wanted = Number(raw);
      return found.value !== null && raw.trim() !== '' && Number.isFinite(wanted) && compare(found.value, wanted, op);
    }
    if (found.kind === 'date') {
      const wanted = Date.parse(raw);
      return found.value !== null && Number.isFinite(wanted) && compare(found.value.getTime(), wanted, op);
    }
    const needle = raw.toLowerCase();
    if (op !== ':') return found.values.some((v) => compareText(v.toLowerCase(), needle, op));
    if (needle.endsWith('*')) return found.values.some((v) => v.toLowerCase().startsWith(needle.slice(0, -1)));
    return found.values.some((v) => v.toLowerCase() === needle);
  };
}

function compareText(a: string, b: string, op: Exclude<Comparator, ':'>): boolean {
  return compare(a < b ? -1 : a > b ? 1 : 0, 0, op);
}

class Parser {
  #i = 0;
  constructor(private readonly tokens: Token[]) {}

  parse(): SearchPredicate {
    if (this.tokens.length === 0) return () => true;
    const predicate = this.#or();
    if (this.#i < this.tokens.length) throw new SearchSyntaxError('unbalanced parentheses in search query');
    return predicate;
  }

  #word(text: string): boolean {
    const token = this.tokens[this.#i];
    return token !== undefined && token.kind === 'word' && token.text === text;
  }

  #or(): SearchPredicate {
    const parts = [this.#and()];
    while (this.#word('OR')) {
      this.#i++;
      parts.push(this.#and());
    }
    return parts.length === 1 ? parts[0]! : (fields) => parts.some((p) => p(fields));
  }

  #and(): SearchPredicate {
    const parts = [this.#unary()];
    for (;;) {
      const token = this.tokens[this.#i];
      if (token === undefined || token.kind === 'close' || this.#word('OR')) break;
      if (this.#word('AND')) this.#i++;
      parts.push(this.#unary());
    }
    return parts.length === 1 ? parts[0]! : (fields) => parts.every((p) => p(fields));
  }

  #unary(): SearchPredicate {
    const token = this.tokens[this.#i];
    if (token === undefined) throw new SearchSyntaxError('search query ends early');
    if (token.kind === 'open') {
      this.#i++;
      const inner = this.#or();
      if (this.tokens[this.#i]?.kind !== 'close') throw new SearchSyntaxError('unbalanced parentheses in search query');
      this.#i++;
      return inner;
    }
    if (token.kind === 'close') throw new SearchSyntaxError('unbalanced parentheses in search query');
    this.#i++;
    if (token.text === 'NOT') {
      const inner = this.#unary();
      return (fields) => !inner(fields);
    }
    if (token.text.startsWith('-') && token.text.length > 1) {
      const inner = term(token.text.slice(1));
      return (fields) => !inner(fields);
    }
    return term(token.text);
  }
}

/** A predicate for `query`; null or blank matches everything. Throws SearchSyntaxError. */
export function parseSearchQuery(query: string | null | undefined): SearchPredicate {
  if (query === null || query === undefined || query.trim() === '') return () => true;
  return new Parser(tokenize(query)).parse();
}
