import { defineConfig } from 'vitest/config';
import { packageTests } from './vitest-preset.js';

export default defineConfig(packageTests());
