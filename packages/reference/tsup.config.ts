import { defineConfig } from 'tsup';
import { packageBuild } from '@webattn/config/tsup';

export default defineConfig(packageBuild({ index: 'src/index.ts', testing: 'src/testing.ts' }));
