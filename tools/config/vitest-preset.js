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
      // Mesa's lavapipe (the GPU-less CI's WebGPU) compiles every kernel with LLVM when its shader cache is cold,
      // and that compile dominates the suite: 4-wide SIMD (subgroups of 4, which WebGPU allows) and no LLVM
      // optimisation passes compile it 3-4x faster (the tiled dK/dV kernel 35 -> 9 s). Set either variable to
      // run otherwise (LP_NATIVE_VECTOR_WIDTH=256 gives subgroups of 8 on AVX2). Other drivers ignore both.
      env: {
        GALLIVM_PERF: process.env.GALLIVM_PERF ?? 'nopt',
        LP_NATIVE_VECTOR_WIDTH: process.env.LP_NATIVE_VECTOR_WIDTH ?? '128',
      },
      pool: 'forks',
      // Two test files at once: on a CPU-only machine each compiles its kernels on its own driver thread
      // (openTestDevice lowers the polling JS thread's priority so that the compiles get the cores).
      maxWorkers: 2,
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
