/**
 * Arguments of `pnpm bench kernel` and what they default to. The defaults follow the issue: three shapes
 * (B1 H4 N1024 D64, B4 H16 N4096 D64 and the seed's B32 H8 N500 D16), every option set, flash against math.
 */
import type { ForwardTiles } from '@webattn/flash';
import { InvalidArgumentError } from '@webattn/tensor';
import { OPTION_NAMES, parseOptionSet, type OptionSet } from './option-sets';

export const BACKEND_NAMES = ['flash', 'math', 'efficient'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];

export const DTYPE_NAMES = ['f32', 'f16'] as const;
export type BenchDType = (typeof DTYPE_NAMES)[number];

/** One attention shape: q, k and v are all [batch, heads, length, headDim] (self-attention, L = S). */
export interface BenchShape {
  readonly batch: number;
  readonly heads: number;
  readonly length: number;
  readonly headDim: number;
}

export type TimingChoice = 'auto' | 'timestamp' | 'wall-clock';

export interface KernelBenchConfig {
  readonly shapes: readonly BenchShape[];
  readonly dtypes: readonly BenchDType[];
  readonly optionSets: readonly OptionSet[];
  readonly backends: readonly BackendName[];
  /** Untimed runs before measuring (the first compiles the pipelines). */
  readonly warmup: number;
  /** Timed samples; the reported time is their median. */
  readonly iterations: number;
  /** Each sample repeats the call until it lasts about this long (timestamps may be quantised to ~65 µs). */
  readonly sampleTargetMs: number;
  /** GPU milliseconds of untimed calls before sampling, so clocks have ramped up (see gpu-timer.ts). */
  readonly warmupMs: number;
  readonly timing: TimingChoice;
  /** The math backend's memory budget in bytes (undefined: its default, 1 GiB). */
  readonly mathBudgetBytes: number | undefined;
  /** Compare each backend's forward output with math's (max |difference|) where both ran. */
  readonly compare: boolean;
  /** Also append each finished case's records to this file as JSON lines (kept if a later case crashes). */
  readonly recordsFile: string | undefined;
  /** Autotune flash's forward workgroup shape, then its tiled backward's, for these dtypes and head dims first
   * (tuneFlashForward, tuneFlashBackward). */
  readonly tune: boolean;
  /** `--forward-tiles`: run flash's forward with these tiles at every dtype and head dim they fit (restoreFlashTuning). */
  readonly forwardTiles: ForwardTiles | undefined;
  /** `--profile`: after timing each pass, its GPU time per kernel (kernel-profile.ts; needs GPU timestamps). */
  readonly profile: boolean;
}

export const DEFAULT_SHAPES: readonly BenchShape[] = [
  { batch: 1, heads: 4, length: 1024, headDim: 64 },
  { batch: 4, heads: 16, length: 4096, headDim: 64 },
  { batch: 32, heads: 8, length: 500, headDim: 16 },
];

/** `--quick`: a tiny smoke run (an odd length so edge tiles are exercised). */
export const QUICK_SHAPE: BenchShape = { batch: 2, heads: 2, length: 37, headDim: 16 };

export const DEFAULT_OPTIONS = 'none,padding,padding-mask,dropout,causal';

export const KERNEL_USAGE =
  '[--shape B,H,N,D ...] [--dtype f32,f16] [--options none,padding,padding-mask,varlen,dropout,causal (join with +)]' +
  ' [--backends flash,math,efficient] [--iterations N] [--warmup N] [--timing auto|timestamp|wall-clock]' +
  ' [--math-budget MiB] [--no-compare] [--records FILE.jsonl] [--tune | --forward-tiles KERNEL:THREADS:ROWS:KEYS] [--profile] [--quick]';

const FORWARD_KERNELS = ['matrix', 'tiled', 'compact'] as const;

/** `--forward-tiles matrix:32:1:32`: kernel, threads per workgroup, rows per thread (matrix: row blocks), keys per tile. */
export function parseForwardTiles(text: string): ForwardTiles {
  const [kernel, ...numbers] = text.split(':');
  const [threads, rowsPerThread, keys] = numbers.map(Number);
  const positive = (n: number | undefined): n is number => n !== undefined && Number.isInteger(n) && n > 0;
  if (!FORWARD_KERNELS.includes(kernel as ForwardTiles['kernel']) || numbers.length !== 3 || ![threads, rowsPerThread, keys].every(positive)) {
    throw new InvalidArgumentError(
      `--forward-tiles needs KERNEL:THREADS:ROWS:KEYS with KERNEL one of ${FORWARD_KERNELS.join(', ')} and positive integers (e.g. matrix:32:1:32), got "${text}"`,
    );
  }
  return { kernel: kernel as ForwardTiles['kernel'], threads: threads!, rowsPerThread: rowsPerThread!, keys: keys! };
}

export function parseShape(text: string): BenchShape {
  const parts = text.split(',').map((part) => Number(part.trim()));
  if (parts.length !== 4 || parts.some((part) => !Number.isInteger(part) || part < 1)) {
    throw new InvalidArgumentError(`--shape needs four positive integers B,H,N,D (e.g. 1,4,1024,64), got "${text}"`);
  }
  const [batch, heads, length, headDim] = parts as [number, number, number, number];
  return { batch, heads, length, headDim };
}

function parseList<T extends string>(flag: string, text: string, allowed: readonly T[]): T[] {
  const items = text.split(',').map((item) => item.trim()).filter(Boolean);
  const unknown = items.filter((item) => !allowed.includes(item as T));
  if (items.length === 0 || unknown.length > 0) {
    throw new InvalidArgumentError(`${flag} takes a comma-separated list of ${allowed.join(', ')}; got "${text}"`);
  }
  return [...new Set(items as T[])];
}

function positiveInteger(flag: string, text: string | undefined, minimum: number): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < minimum) {
    throw new InvalidArgumentError(`${flag} needs an integer ≥ ${minimum}, got "${text ?? ''}"`);
  }
  return value;
}

/** Parses the command's own arguments (the CLI has already removed --json and --cpu). */
export function parseKernelArgs(args: readonly string[]): KernelBenchConfig {
  const shapes: BenchShape[] = [];
  let dtypes: BenchDType[] | undefined;
  let options: string | undefined;
  let backends: BackendName[] = ['flash', 'math'];
  let warmup: number | undefined;
  let iterations: number | undefined;
  let timing: TimingChoice = 'auto';
  let mathBudgetBytes: number | undefined;
  let compare = true;
  let recordsFile: string | undefined;
  let quick = false;
  let tune = false;
  let forwardTiles: ForwardTiles | undefined;
  let profile = false;
  for (let index = 0; index < args.length; index++) {
    const flag = args[index]!;
    const value = () => {
      const next = args[++index];
      if (next === undefined || next.startsWith('--')) throw new InvalidArgumentError(`${flag} needs a value`);
      return next;
    };
    switch (flag) {
      case '--shape':
        // Several shapes: repeat --shape, or list them after one --shape.
        shapes.push(parseShape(value()));
        while (args[index + 1] !== undefined && !args[index + 1]!.startsWith('--')) shapes.push(parseShape(args[++index]!));
        break;
      case '--dtype':
        dtypes = parseList(flag, value(), DTYPE_NAMES);
        break;
      case '--options':
        options = value();
        break;
      case '--backends':
        backends = parseList(flag, value(), BACKEND_NAMES);
        break;
      case '--warmup':
        warmup = positiveInteger(flag, value(), 0);
        break;
      case '--iterations':
        iterations = positiveInteger(flag, value(), 1);
        break;
      case '--timing':
        timing = parseList(flag, value(), ['auto', 'timestamp', 'wall-clock'] as const)[0]!;
        break;
      case '--math-budget':
        mathBudgetBytes = positiveInteger(flag, value(), 1) * 2 ** 20;
        break;
      case '--no-compare':
        compare = false;
        break;
      case '--records':
        recordsFile = value();
        break;
      case '--quick':
        quick = true;
        break;
      case '--tune':
        tune = true;
        break;
      case '--forward-tiles':
        forwardTiles = parseForwardTiles(value());
        break;
      case '--profile':
        profile = true;
        break;
      default:
        throw new InvalidArgumentError(`unknown option "${flag}" for kernel; options: ${KERNEL_USAGE}`);
    }
  }
  if (tune && forwardTiles) throw new InvalidArgumentError('choose one of --tune (search the forward tiles) and --forward-tiles (set them)');
  if (profile && timing === 'wall-clock') throw new InvalidArgumentError('--profile times each kernel with GPU timestamps: drop --timing wall-clock');
  const optionText = options ?? DEFAULT_OPTIONS;
  const optionSets = optionText.split(',').map((name) => name.trim()).filter(Boolean).map(parseOptionSet);
  if (optionSets.length === 0) throw new InvalidArgumentError(`--options needs at least one of ${OPTION_NAMES.join(', ')}`);
  return {
    shapes: shapes.length > 0 ? shapes : quick ? [QUICK_SHAPE] : DEFAULT_SHAPES,
    dtypes: dtypes ?? (quick ? ['f32'] : ['f32', 'f16']),
    optionSets: [...new Map(optionSets.map((set) => [set.name, set])).values()],
    backends,
    warmup: warmup ?? (quick ? 1 : 3),
    iterations: iterations ?? (quick ? 3 : 10),
    sampleTargetMs: quick ? 1 : 5,
    warmupMs: quick ? 0 : 300,
    timing,
    mathBudgetBytes,
    compare,
    recordsFile,
    tune,
    forwardTiles,
    profile,
  };
}
