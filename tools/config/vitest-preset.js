/**
 * Test configuration shared by all packages. Workspace imports resolve to each package's src/ through
 * the "@webattn/source" export condition, so tests need no build. Tests run in forked processes: Dawn's
 * native addon and its Vulkan instance belong to a process, not to a worker thread.
 */
export function packageTests(overrides = {}) {
  return {
    // Vite replaces its default conditions when these are set, so they are repeated here.
    resolve: { conditions: ['@webattn/source', 'module', 'browser', 'development|production'] },
    ssr: { resolve: { conditions: ['@webattn/source', 'module', 'node', 'development|production'] } },
    test: {
      pool: 'forks',
      maxWorkers: 1,
      // Generous: a test's first call compiles its kernels, and Mesa's lavapipe needs up to ~90 s for the tiled
      // flash kernels' unrolled loops when its shader cache is cold (a fresh CI machine).
      testTimeout: 600_000,
      hookTimeout: 600_000,
      include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
      // A package without tests yet is not a failure; scripts/test-summary.mjs lists it with a warning.
      passWithNoTests: true,
      reporters: ['default', 'json'],
      outputFile: { json: 'test-results.json' },
      ...overrides,
    },
  };
}
