export { createVariant, type AttentionBlock } from './attention-variants';
export {
  OPTION_SETS,
  OPTION_SET_DEFINITIONS,
  REDUCED_SIZE,
  SEED_SIZE,
  VARIANTS,
  VARIANT_LABELS,
  type OptionSet,
  type OptionSetName,
  type SeedConfig,
  type VariantName,
} from './seed-config';
export { buildSeedMasks, type SeedMasks } from './seed-masks';
export { SeedModel } from './seed-model';
export { seedTraining, summarizeBackends, type SeedPhase, type SeedTraining } from './seed-training';
