import { Adam, mseLoss } from '@webattn/nn';
import { onSdpaDispatch, type SdpaDispatchEvent } from '@webattn/sdpa';
import { randn, type Device } from '@webattn/tensor';
import { OPTION_SET_DEFINITIONS, type OptionSetName, type SeedConfig, type VariantName } from './seed-config';
import { buildSeedMasks } from './seed-masks';
import { SeedModel } from './seed-model';

/** The phases of one training step, in order. */
export type SeedPhase = 'forward' | 'backward' | 'optimizer' | 'readback';

/** One (variant, option set) of the seed mini-test, ready to train: the benchmark and the demo time it. */
export interface SeedTraining {
  /**
   * One step: forward, MSE loss, backward, Adam, then the loss read back (as loss.item() would). `after` runs
   * after each phase (e.g. to drain the GPU and time it).
   */
  step(after?: (phase: SeedPhase) => Promise<void>): Promise<number>;
  /** The backends the dispatch log recorded so far (see summarizeBackends). */
  backend(): string;
  /** Frees the model, the optimizer state and the inputs, and waits for the GPU. */
  dispose(): Promise<void>;
}

/** The seed model, its inputs, masks and Adam for one variant and option set, with the dispatch log listening. */
export function seedTraining(device: Device, config: SeedConfig, variant: VariantName, optionName: OptionSetName): SeedTraining {
  const options = OPTION_SET_DEFINITIONS[optionName];
  const { batch: B, seq: L, embed: E, heads: H } = config;
  const masks = buildSeedMasks(device, config);
  const x = randn(device, [B, L, E], { seed: config.seed });
  const target = randn(device, [B, L, E], { seed: config.seed + 1 });
  const model = new SeedModel(device, variant, { embed: E, heads: H, dropout: options.dropout, seed: config.seed + 2 });
  const optimizer = new Adam(model.parameters(), { lr: 1e-3 });
  const events: SdpaDispatchEvent[] = [];
  const stopListening = onSdpaDispatch((event) => events.push(event));
  const none = async () => {};
  return {
    async step(after = none) {
      optimizer.zeroGrad();
      const prediction = model.forward(x, options, masks);
      const loss = mseLoss(prediction, target);
      prediction.dispose();
      await after('forward');
      loss.backward();
      await after('backward');
      optimizer.step();
      await after('optimizer');
      try {
        return (await loss.toArray())[0]!;
      } finally {
        loss.dispose();
        await after('readback');
      }
    },
    backend: () => summarizeBackends(events),
    async dispose() {
      stopListening();
      optimizer.zeroGrad();
      optimizer.dispose();
      model.dispose();
      masks.dispose();
      x.dispose();
      target.dispose();
      await device.sync().catch(() => undefined);
    },
  };
}

/** "flash" when every call ran on one backend, else "fwd A / bwd B"; "—" when no SDPA call happened. */
export function summarizeBackends(events: readonly SdpaDispatchEvent[]): string {
  if (events.length === 0) return '—';
  const of = (phase: 'forward' | 'backward') => [...new Set(events.filter((e) => e.phase === phase).map((e) => e.backend))].join('+');
  const forward = of('forward');
  const backward = of('backward');
  if (!backward || forward === backward) return forward || backward;
  return `fwd ${forward} / bwd ${backward}`;
}
