import { createDevice, tensor } from '@webattn/tensor';
import { randomValues } from '@webattn/tensor/testing';
import { scaledDotProductAttention } from '@webattn/sdpa';
const shape = [1, 2, 7, 8];
const step = process.argv[3] ?? 'all';
for (const backend of (process.argv[2] ?? 'flash,math').split(',') as ('flash' | 'math')[]) {
  const device = await createDevice({ requireGpu: true });
  const [q, k, v] = [0, 1, 2].map((i) => tensor(device, randomValues(112, i), shape));
  const outs = Array.from({ length: 4 }, (_, i) => scaledDotProductAttention(q!, k!, v!, { backends: [backend], isCausal: i % 2 === 0 }));
  const pending = [...outs.map((o) => o.toArray()), device.sync()];
  console.log(backend, 'destroying');
  device.destroy();
  const r = await Promise.allSettled(pending);
  console.log(backend, r.map((x) => x.status === 'rejected' ? (x.reason as Error).name : 'ok').join(' '));
  if (step === 'short') continue;
  for (const f of [() => scaledDotProductAttention(q!, k!, v!, { backends: [backend] }), () => scaledDotProductAttention(q!, k!, v!), () => tensor(device, randomValues(112, 0), shape)]) { try { f(); console.log('no throw'); } catch (e) { console.log('later', (e as Error).name); } }
  console.log('toArray', await q!.toArray().catch((e) => (e as Error).name));
  console.log('sync', await device.sync().catch((e) => (e as Error).name));
  [q, k, v, ...outs].forEach((t) => t!.dispose());
  const fresh = await createDevice({ requireGpu: true });
  const [q2, k2, v2] = [0, 1, 2].map((i) => tensor(fresh, randomValues(112, i), shape));
  const out = scaledDotProductAttention(q2!, k2!, v2!, { backends: [backend], isCausal: true });
  console.log(backend, 'fresh', (await out.toArray())[0]);
  [q2, k2, v2, out].forEach((t) => t!.dispose());
  fresh.destroy();
  console.log(backend, 'fresh destroyed');
}
console.log('done');
