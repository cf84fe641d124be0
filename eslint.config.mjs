// ESLint flat config.
//
// - TypeScript sources (src/, test/, bench/) get @eslint/js recommended plus
//   typescript-eslint's type-checked recommended set, using the project service
//   (tsconfig.json at the repository root).
// - Plain JavaScript scripts (*.mjs / *.js / *.cjs outside the ignored folders)
//   get @eslint/js recommended only, with Node globals.
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import tseslint from 'typescript-eslint';

const tsFiles = ['src/**/*.ts', 'test/**/*.ts', 'bench/**/*.ts'];
const jsFiles = ['**/*.mjs', '**/*.cjs', '**/*.js'];

// Node.js globals for plain JS scripts (the `globals` package is not a dependency).
const nodeGlobals = Object.fromEntries(
  [
    'process',
    'console',
    'Buffer',
    'URL',
    'URLSearchParams',
    'TextEncoder',
    'TextDecoder',
    'AbortController',
    'AbortSignal',
    'fetch',
    'setTimeout',
    'clearTimeout',
    'setInterval',
    'clearInterval',
    'setImmediate',
    'clearImmediate',
    'queueMicrotask',
    'structuredClone',
    'performance',
    'globalThis',
  ].map((name) => [name, 'readonly']),
);

const sharedRules = {
  'no-empty': ['error', { allowEmptyCatch: false }],
};

export default defineConfig(
  globalIgnores(['dist/', 'node_modules/', 'public/', 'bench/out/', 'coverage/', '.test-tmp/']),

  // Plain JavaScript (build/test scripts, this config file).
  {
    files: jsFiles,
    extends: [js.configs.recommended],
    languageOptions: {
      ecmaVersion: 'latest',
      sourceType: 'module',
      globals: nodeGlobals,
    },
    rules: {
      ...sharedRules,
      'no-unused-vars': ['error', { argsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    files: ['**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { ...nodeGlobals, require: 'readonly', module: 'writable', exports: 'writable', __dirname: 'readonly', __filename: 'readonly' },
    },
  },

  // TypeScript (type-checked).
  {
    files: tsFiles,
    extends: [js.configs.recommended, ...tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      ...sharedRules,
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_' },
      ],
    },
  },

  // Tests: node:test's test()/describe()/it()/suite() return promises that the
  // runner itself tracks, so calling them without await is fine.
  {
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-floating-promises': [
        'error',
        {
          allowForKnownSafeCalls: [
            { from: 'package', package: 'node:test', name: ['test', 'describe', 'it', 'suite', 'before', 'after', 'beforeEach', 'afterEach'] },
          ],
        },
      ],
    },
  },
);
