// Opens the test device once per test file, before anything else is evaluated: importing this module first
// also installs the WebGPU globals (GPUBufferUsage, ...) that other packages may read at module load.
import { openTestDevice } from '@webattn/tensor/testing';

export const gpu = await openTestDevice();
