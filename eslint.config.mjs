// Lint: typescript-eslint recommended, plus the import direction of style.md §4: the edges (connectors/,
// webhooks/) depend on the core (src/), never the reverse; only the composition root (src/main.ts) wires them.
import tseslint from 'typescript-eslint';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'data/**', 'bin/**', '**/*.js', '**/*.mjs'] },
  ...tseslint.configs.recommended,
  {
    plugins: { 'import-x': importX },
    settings: { 'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js', '.json'] })] },
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            {
              target: './src',
              from: ['./connectors', './webhooks', './simulators', './sandbox'],
              except: [],
              message: 'The core (src/) must not import the edges; wire them in src/main.ts (the composition root).',
            },
            { target: './src/domain', from: ['./src/store', './src/server', './src/ledger', './src/config', './src/log'], message: 'domain/ imports nothing.' },
            { target: './connectors', from: './webhooks', message: 'connectors/ and webhooks/ are independent edges.' },
            { target: './webhooks', from: './connectors', message: 'connectors/ and webhooks/ are independent edges (use import type through src/ ports).' },
            { target: './simulators', from: ['./src', './connectors', './webhooks', './sandbox'], message: 'Simulators behave like the platform: no app imports.' },
          ],
        },
      ],
      'no-restricted-syntax': [
        'error',
        { selector: "MemberExpression[object.name='process'][property.name='env']", message: 'Only src/config/env.ts reads process.env (style.md §13).' },
      ],
    },
  },
  { files: ['src/main.ts'], rules: { 'import-x/no-restricted-paths': 'off' } },
  { files: ['src/config/env.ts', 'test/**', 'bench/**'], rules: { 'no-restricted-syntax': 'off' } },
);
