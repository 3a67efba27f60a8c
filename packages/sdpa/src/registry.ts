/**
 * The backends in priority order. The cost model picks among eligible backends; equal estimates go to the
 * earlier one. Adding a backend = one adapter module in src/backends/ and one entry here.
 */
import type { SdpaBackend } from './backend';
import { cpuBackend } from './backends/cpu';
import { efficientBackend } from './backends/efficient';
import { flashBackend } from './backends/flash';
import { mathBackend } from './backends/math';

export const SDPA_BACKENDS: readonly SdpaBackend[] = [flashBackend, efficientBackend, mathBackend, cpuBackend];

/** The priority order by name. */
export const SDPA_PRIORITY = SDPA_BACKENDS.map((backend) => backend.name);
