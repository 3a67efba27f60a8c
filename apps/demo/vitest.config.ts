import { defineConfig } from 'vitest/config';
import { packageTests } from '@webattn/config/vitest';

// The browser test builds the app with Vite, serves dist/ and drives it in headless Chromium (WebGPU on SwiftShader).
export default defineConfig(packageTests());
