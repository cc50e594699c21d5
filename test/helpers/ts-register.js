/**
 * Lets a child process `require` the TypeScript sources directly (node -r test/helpers/ts-register.js x.ts), so
 * e2e tests can run test programs without a build. Same compiler and settings as jest (@swc/core, CommonJS).
 */
'use strict';
const fs = require('node:fs');
const { transformSync } = require('@swc/core');

require.extensions['.ts'] = function compileTypeScript(module, filename) {
  const source = fs.readFileSync(filename, 'utf8');
  const { code } = transformSync(source, {
    filename,
    sourceMaps: 'inline',
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
    module: { type: 'commonjs' },
  });
  module._compile(code, filename);
};
