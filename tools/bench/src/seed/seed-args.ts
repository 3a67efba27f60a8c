import {
  OPTION_SETS,
  SEED_SIZE,
  VARIANTS,
  type OptionSetName,
  type SeedConfig,
  type VariantName,
} from '@webattn/seed-model';

export interface SeedArgs {
  readonly config: SeedConfig;
  readonly variants: readonly VariantName[];
  readonly optionSets: readonly OptionSetName[];
}

export const SEED_USAGE =
  '[--steps N] [--batch N] [--seq N] [--embed N] [--heads N] [--seed N] [--profile] ' +
  `[--variants ${VARIANTS.join(',')}] [--options ${OPTION_SETS.join(',')}]`;

/** Parses the seed command's own arguments (defaults: the seed's size, every variant and option set). */
export function parseSeedArgs(args: readonly string[]): SeedArgs {
  const numbers: Record<string, number> = {};
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
    if (name === 'variants') variants = pickList(value, VARIANTS, flag);
    else if (name === 'options') optionSets = pickList(value, OPTION_SETS, flag);
    else if (['steps', 'batch', 'seq', 'embed', 'heads', 'seed'].includes(name)) {
      const number = Number(value);
      if (!Number.isInteger(number) || number < (name === 'seed' ? 0 : 1)) {
        throw new Error(`${flag} needs a positive integer, got "${value}"`);
      }
      numbers[name] = number;
    } else throw new Error(`unknown option ${flag} for seed; options: ${SEED_USAGE}`);
  }
  const config: SeedConfig = { ...SEED_SIZE, ...numbers, ...(profile ? { profile } : {}) };
  if (config.embed % config.heads !== 0) {
    throw new Error(`--embed ${config.embed} must be divisible by --heads ${config.heads}`);
  }
  return { config, variants, optionSets };
}

function pickList<T extends string>(value: string, allowed: readonly T[], flag: string): T[] {
  const items = value.split(',').filter(Boolean);
  for (const item of items) {
    if (!allowed.includes(item as T)) throw new Error(`${flag}: unknown "${item}"; choose from ${allowed.join(', ')}`);
  }
  if (items.length === 0) throw new Error(`${flag} needs at least one of ${allowed.join(', ')}`);
  return items as T[];
}
