import {
  OPTION_SETS,
  REDUCED_SIZE,
  SEED_SIZE,
  VARIANTS,
  type OptionSetName,
  type SeedConfig,
  type VariantName,
} from '@webattn/seed-model';

export interface SeedArgs {
  readonly config: SeedConfig;
  /** Which base size was used, and why (printed before the run). */
  readonly sizeNote: string;
  readonly variants: readonly VariantName[];
  readonly optionSets: readonly OptionSetName[];
}

export const SEED_USAGE =
  '[--size auto|seed|reduced] [--steps N] [--batch N] [--seq N] [--embed N] [--heads N] [--seed N] [--profile] ' +
  `[--variants ${VARIANTS.join(',')}] [--options ${OPTION_SETS.join(',')}]`;

/**
 * Parses the seed command's own arguments. Base size `--size auto` (default): the seed's size (B32 L500 E128 H8,
 * 100 steps) on a hardware GPU, the reduced size on a software adapter or the CPU, where the seed's size would take
 * hours; `--size seed` forces it. --steps/--batch/... override single numbers. Every variant and option set by default.
 */
export function parseSeedArgs(args: readonly string[], device: { softwareAdapter: boolean } = { softwareAdapter: false }): SeedArgs {
  const numbers: Record<string, number> = {};
  let size = 'auto';
  let variants: readonly VariantName[] = VARIANTS;
  let optionSets: readonly OptionSetName[] = OPTION_SETS;
  let profile = false;
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--profile') {
      profile = true;
      continue;
    }
    const [flag, inline] = args[i]!.split('=', 2) as [string, string | undefined];
    const value = inline ?? args[++i];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    const name = flag.replace(/^--/, '');
    if (name === 'size') {
      if (!['auto', 'seed', 'reduced'].includes(value)) throw new Error(`--size needs auto, seed or reduced, got "${value}"`);
      size = value;
    } else if (name === 'variants') variants = pickList(value, VARIANTS, flag);
    else if (name === 'options') optionSets = pickList(value, OPTION_SETS, flag);
    else if (['steps', 'batch', 'seq', 'embed', 'heads', 'seed'].includes(name)) {
      const number = Number(value);
      if (!Number.isInteger(number) || number < (name === 'seed' ? 0 : 1)) {
        throw new Error(`${flag} needs a positive integer, got "${value}"`);
      }
      numbers[name] = number;
    } else throw new Error(`unknown option ${flag} for seed; options: ${SEED_USAGE}`);
  }
  const reduced = size === 'reduced' || (size === 'auto' && device.softwareAdapter);
  const sizeNote = reduced
    ? size === 'reduced'
      ? 'reduced size (--size reduced)'
      : "reduced size: this is a software adapter or the CPU, where the seed's size would take hours (--size seed forces it)"
    : "the seed's size";
  const config: SeedConfig = { ...(reduced ? REDUCED_SIZE : SEED_SIZE), ...numbers, ...(profile ? { profile } : {}) };
  if (config.embed % config.heads !== 0) {
    throw new Error(`--embed ${config.embed} must be divisible by --heads ${config.heads}`);
  }
  return { config, sizeNote, variants, optionSets };
}

function pickList<T extends string>(value: string, allowed: readonly T[], flag: string): T[] {
  const items = value.split(',').filter(Boolean);
  for (const item of items) {
    if (!allowed.includes(item as T)) throw new Error(`${flag}: unknown "${item}"; choose from ${allowed.join(', ')}`);
  }
  if (items.length === 0) throw new Error(`${flag} needs at least one of ${allowed.join(', ')}`);
  return items as T[];
}
