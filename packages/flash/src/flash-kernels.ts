import { ATTENTION_DROPOUT_WGSL, composeWgsl, type AttentionProblem, type KernelSource } from '@webattn/tensor';
import common from './flash-common.wgsl?raw';
import { FLASH_UNIFORMS } from './flash-uniforms';
import type { FlashTiles } from './flash-tiles';
import { emulatedMatrixCode, subgroupMatricesEmulated } from './subgroup-matrix-emulation';
import { rowElements, vec4Loaders, type Vec4Rows } from './vec4-loaders';

/** Setup-time facts of a problem that change the generated WGSL (never its sizes). */
export interface FlashVariant {
  readonly f16: boolean;
  readonly mask: 'none' | 'bool' | 'f32' | 'f16';
  readonly keyLengths: boolean;
  readonly varlen: boolean;
  readonly dropout: boolean;
}

export function variantOf(problem: AttentionProblem): FlashVariant {
  const mask = problem.mask.kind === 'none' ? 'none' : problem.mask.kind === 'bool' ? 'bool' : problem.mask.dtype;
  return {
    f16: problem.dtype === 'f16',
    mask: mask as FlashVariant['mask'],
    keyLengths: problem.keyLengths,
    varlen: problem.varlen,
    dropout: problem.dropout !== null && problem.dropout.p > 0,
  };
}

/** Binding numbers of flash-common.wgsl's optional inputs; kernels' own buffers start at 5. */
export const BINDING = { uniforms: 0, mask: 1, keyLengths: 2, cuSeqlensQ: 3, cuSeqlensK: 4, first: 5 } as const;

/** Extra code-level choices of a kernel: directives before everything (enables, diagnostics) and sizes it replaces. */
export interface KernelExtras {
  readonly directives?: readonly string[];
  /** `${NAME}` replacements that size arrays (part of the cache key). */
  readonly sizes?: Readonly<Record<string, number>>;
  /** `${NAME}` replacements of generated code (a function of the sizes and head dims, so not in the cache key). */
  readonly snippets?: Readonly<Record<string, string>>;
  /** Extra `#if` flags (part of the cache key when true). */
  readonly flags?: Readonly<Record<string, boolean>>;
  /** Read-only row buffers bound and read as vec4<f32> (vec4-loaders.ts; part of the cache key). */
  readonly vec4Rows?: Vec4Rows;
}

export function flashKernel(
  name: string,
  source: string,
  variant: FlashVariant,
  tiles: FlashTiles,
  constants: Readonly<Record<string, number>>,
  sizes: { readonly rows?: number; readonly keyThreads?: number } = {},
  extras: KernelExtras = {},
): KernelSource {
  // Rows per thread (and the tiled forward's key threads) size register arrays: preprocessor sizes, not overrides.
  const rows = source.includes('${ROWS}') ? (sizes.rows ?? tiles.forwardRowsPerThread) : null;
  const keyThreads = source.includes('${KEY_THREADS}') ? (sizes.keyThreads ?? null) : null;
  if (source.includes('${KEY_THREADS}') && keyThreads === null) throw new Error(`flash: ${name} needs sizes.keyThreads`);
  const dtype = variant.f16 ? 'f16' : 'f32';
  const key = [
    dtype,
    `qk${tiles.headDimQk}`,
    `v${tiles.headDimV}`,
    `mask=${variant.mask}`,
    variant.keyLengths ? 'key-lengths' : '',
    variant.varlen ? 'varlen' : '',
    variant.dropout ? 'dropout' : '',
    ...Object.entries(constants).map(([constant, value]) => `${constant}=${value}`),
    rows === null ? '' : `ROWS=${rows}`,
    keyThreads === null ? '' : `KEY_THREADS=${keyThreads}`,
    ...Object.entries(extras.sizes ?? {}).map(([size, value]) => `${size}=${value}`),
    ...Object.entries(extras.flags ?? {}).map(([flag, value]) => (value ? flag : '')),
    extras.vec4Rows?.size ? `vec4=${[...extras.vec4Rows].sort().join(',')}` : '',
  ]
    .filter(Boolean)
    .join('|');
  return {
    name,
    variant: key,
    constants,
    code: () =>
      composeWgsl([variant.f16 ? 'enable f16;' : '', ...(extras.directives ?? []), ATTENTION_DROPOUT_WGSL, common, source], {
        flags: {
          F16: variant.f16,
          MASK: variant.mask !== 'none',
          MASK_BOOL: variant.mask === 'bool',
          MASK_F32: variant.mask === 'f32',
          MASK_F16: variant.mask === 'f16',
          KEY_LENGTHS: variant.keyLengths,
          VARLEN: variant.varlen,
          DROPOUT: variant.dropout,
          ...extras.flags,
        },
        replacements: {
          UNIFORMS: FLASH_UNIFORMS.wgslStruct('Params'),
          VEC4_LOADERS: vec4Loaders(source, extras.vec4Rows, dtype),
          ...rowElements(source, extras.vec4Rows ?? new Set(), dtype),
          T: dtype,
          HEAD_DIM_QK: String(tiles.headDimQk),
          HEAD_DIM_V: String(tiles.headDimV),
          ROWS: String(rows ?? 1),
          KEY_THREADS: String(keyThreads ?? 1),
          ...Object.fromEntries(Object.entries(extras.sizes ?? {}).map(([size, value]) => [size, String(value)])),
          ...extras.snippets,
        },
      }),
  };
}

/**
 * A subgroup-matrix kernel (flash-forward-matrix, flash-backward-*-matrix): `flashKernel` with the matrix
 * extension enabled, or, on a device marked by `emulateSubgroupMatrices` (tests), with its builtins emulated.
 */
export function flashMatrixKernel(
  gpu: GPUDevice,
  name: string,
  source: string,
  variant: FlashVariant,
  tiles: FlashTiles,
  extras: Omit<KernelExtras, 'directives'>,
): KernelSource {
  const emulated = subgroupMatricesEmulated(gpu);
  const kernel = flashKernel(name, source, variant, tiles, {}, {}, {
    ...extras,
    // The builtins' offsets depend on the subgroup index: uniform per subgroup, which Tint's analysis cannot see.
    directives: emulated
      ? ['enable subgroups;']
      : ['enable subgroups;', 'enable chromium_experimental_subgroup_matrix;', 'diagnostic(off, chromium.subgroup_matrix_uniformity);'],
  });
  return emulated ? { ...kernel, variant: `${kernel.variant}|emulated`, code: () => emulatedMatrixCode(kernel.code()) } : kernel;
}
