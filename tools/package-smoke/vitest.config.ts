import { defineConfig } from 'vitest/config';
import { packageTests } from '@webattn/config/vitest';

export default defineConfig(packageTests());
