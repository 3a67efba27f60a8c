// `import source from './kernel.wgsl?raw'`: the file's text (Vite/Vitest natively, tsup via @webattn/config).
declare module '*.wgsl?raw' {
  const source: string;
  export default source;
}
