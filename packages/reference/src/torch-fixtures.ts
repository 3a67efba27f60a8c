import type { HostTensor } from './host-tensor';

/**
 * PyTorch's own SDPA outputs (float64, from float32-representable inputs), shared by every backend's tests. They
 * live outside the repo at ../shared/fixtures/torch-sdpa (from the repo root; WEBATTN_FIXTURES overrides the
 * folder) and are read at test time, never copied in. Format: ../shared/fixtures/README.md.
 */
export interface TorchSdpaFixture {
  readonly name: string;
  readonly note: string;
  readonly params: {
    readonly is_causal: boolean;
    readonly scale: number | null;
    readonly enable_gqa: boolean;
    readonly causal_alignment?: string;
    readonly dropout_p?: number;
  };
  readonly inputs: Readonly<Record<string, HostTensor>>;
  readonly expected: Readonly<Record<string, HostTensor>>;
}

interface RawArray {
  readonly shape: number[];
  readonly dtype: 'f32' | 'f64' | 'bool';
  readonly b64: string;
}

function decode(raw: RawArray): HostTensor {
  const bytes = Uint8Array.from(atob(raw.b64), (c) => c.charCodeAt(0));
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const data =
    raw.dtype === 'f64' ? new Float64Array(buffer) : raw.dtype === 'f32' ? new Float32Array(buffer) : new Uint8Array(buffer);
  return { data, shape: raw.shape, dtype: raw.dtype };
}

/** The fixtures folder: WEBATTN_FIXTURES, else <repo root>/../shared/fixtures/torch-sdpa. */
export async function torchFixturesFolder(): Promise<string> {
  const { fileURLToPath } = await import('node:url');
  const path = await import('node:path');
  const override = typeof process !== 'undefined' ? process.env.WEBATTN_FIXTURES : undefined;
  if (override) return override;
  const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
  return path.resolve(repoRoot, '../shared/fixtures/torch-sdpa');
}

/**
 * The SDPA fixtures (op 'sdpa'). Returns null when the folder is missing, unless CI=true, where a missing folder
 * throws: the PyTorch check must never skip silently in CI.
 */
export async function loadTorchSdpaFixtures(): Promise<TorchSdpaFixture[] | null> {
  const fs = await import('node:fs');
  const path = await import('node:path');
  const folder = await torchFixturesFolder();
  if (!fs.existsSync(folder)) {
    if (typeof process !== 'undefined' && process.env.CI === 'true') {
      throw new Error(`PyTorch fixtures folder ${folder} is missing (CI=true); check out ../shared next to the repo`);
    }
    console.warn(`[webattn] PyTorch fixture tests skipped: ${folder} is missing`);
    return null;
  }
  const fixtures: TorchSdpaFixture[] = [];
  for (const file of fs.readdirSync(folder).filter((name) => name.endsWith('.json')).sort()) {
    const json = JSON.parse(fs.readFileSync(path.join(folder, file), 'utf8')) as {
      name?: string;
      op: string;
      note?: string;
      params: TorchSdpaFixture['params'];
      inputs: Record<string, RawArray>;
      expected: Record<string, RawArray>;
    };
    if (json.op !== 'sdpa') continue;
    const map = (record: Record<string, RawArray>) =>
      Object.fromEntries(Object.entries(record).map(([key, raw]) => [key, decode(raw)]));
    fixtures.push({
      name: json.name ?? file.replace(/\.json$/, ''),
      note: json.note ?? '',
      params: json.params,
      inputs: map(json.inputs),
      expected: map(json.expected),
    });
  }
  if (fixtures.length === 0) throw new Error(`no SDPA fixtures found in ${folder}`);
  return fixtures;
}

/** A fixture's params as reference options (attnMask from its inputs). */
export function fixtureOptions(fixture: TorchSdpaFixture) {
  const { params, inputs } = fixture;
  return {
    isCausal: params.is_causal,
    ...(params.scale !== null ? { scale: params.scale } : {}),
    enableGqa: params.enable_gqa,
    causalAlignment: params.causal_alignment === 'bottom_right' ? ('bottom-right' as const) : ('top-left' as const),
    ...(inputs.attn_mask ? { attnMask: inputs.attn_mask } : {}),
  };
}
