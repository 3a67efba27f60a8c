// `node --import @webattn/config/wgsl-node-register`: registers the `?raw` WGSL hooks (wgsl-node-hooks.js).
import { register } from 'node:module';

register('./wgsl-node-hooks.js', import.meta.url);
