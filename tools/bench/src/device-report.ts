import type { Device, SubgroupMatrixConfig } from '@webattn/tensor';

export interface DeviceReport {
  readonly kind: 'gpu' | 'cpu';
  readonly adapter: string;
  readonly vendor: string;
  readonly architecture: string;
  readonly description: string;
  readonly reason: string;
  readonly features: readonly string[];
  readonly shaderF16: boolean;
  readonly subgroups: boolean;
  readonly subgroupSizes: { readonly min: number; readonly max: number };
  readonly subgroupMatrix: boolean;
  readonly subgroupMatrixConfigs: readonly SubgroupMatrixConfig[];
  readonly timestampQuery: boolean;
  readonly limits: Readonly<Record<string, number>>;
}

/** The device's identity and capabilities as one JSON-friendly record. */
export function describeDevice(device: Device): DeviceReport {
  const caps = device.caps;
  return {
    kind: device.kind,
    adapter: device.info.adapter,
    vendor: device.info.vendor,
    architecture: device.info.architecture,
    description: device.info.description,
    reason: device.info.reason,
    features: [...caps.features].sort(),
    shaderF16: caps.shaderF16,
    subgroups: caps.subgroups,
    subgroupSizes: { min: caps.subgroupMinSize, max: caps.subgroupMaxSize },
    subgroupMatrix: caps.subgroupMatrix,
    subgroupMatrixConfigs: caps.subgroupMatrixConfigs,
    timestampQuery: caps.timestampQuery,
    limits: {
      maxComputeWorkgroupStorageSize: caps.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: caps.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: caps.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupsPerDimension: caps.maxComputeWorkgroupsPerDimension,
      maxStorageBufferBindingSize: caps.maxStorageBufferBindingSize,
      maxBufferSize: caps.maxBufferSize,
      maxStorageBuffersPerShaderStage: caps.maxStorageBuffersPerShaderStage,
    },
  };
}

const yesNo = (value: boolean) => (value ? 'yes' : 'no');

function bytes(value: number): string {
  if (value >= 2 ** 30 && value % 2 ** 30 === 0) return `${value / 2 ** 30} GiB`;
  if (value >= 2 ** 20 && value % 2 ** 20 === 0) return `${value / 2 ** 20} MiB`;
  if (value >= 2 ** 10 && value % 2 ** 10 === 0) return `${value / 2 ** 10} KiB`;
  return `${value} B`;
}

/** Lines for a person reading a terminal. */
export function formatDeviceReport(report: DeviceReport): string[] {
  const lines = [`device: ${report.kind} — ${report.adapter}`, `  why: ${report.reason}`];
  if (report.kind === 'cpu') return lines;
  const configs = report.subgroupMatrixConfigs.map(
    (config) => `${config.componentType}→${config.resultComponentType} ${config.M}x${config.N}x${config.K}`,
  );
  lines.push(
    `  vendor / architecture: ${report.vendor || '?'} / ${report.architecture || '?'}${report.description ? ` (${report.description})` : ''}`,
    `  features: ${report.features.join(', ') || 'none'}`,
    `  shader-f16: ${yesNo(report.shaderF16)}   timestamp-query: ${yesNo(report.timestampQuery)}`,
    `  subgroups: ${yesNo(report.subgroups)}${report.subgroups ? ` (sizes ${report.subgroupSizes.min}..${report.subgroupSizes.max})` : ''}`,
    `  subgroup matrices: ${yesNo(report.subgroupMatrix)}${configs.length ? ` — ${configs.join('; ')}` : ''}`,
    '  limits:',
  );
  for (const [name, value] of Object.entries(report.limits)) {
    const shown = /Size$/.test(name) && /Storage|Buffer/.test(name) ? `${value} (${bytes(value)})` : String(value);
    lines.push(`    ${name}: ${shown}`);
  }
  return lines;
}
