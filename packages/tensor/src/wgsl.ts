import { WebattnError } from './errors';

/**
 * WGSL loading. Kernel sources live in `.wgsl` files beside the TypeScript that runs them and are imported as
 * `import source from './kernel.wgsl?raw'` (Vite and Vitest do this natively; tsup builds inline the text through
 * @webattn/config's esbuild plugin). `composeWgsl` then joins library snippets (e.g. PHILOX_WGSL) and applies the
 * small preprocessor below, for what `override` constants cannot express (f16 vs f32, optional features).
 *
 * Preprocessor: lines `#if NAME`, `#if !NAME`, `#elif NAME`, `#else`, `#endif` (nestable), where NAME is a flag
 * given as true in `flags`; and `${NAME}` substitutions from `replacements` (for types such as `${T}` → `f16`).
 * Shapes never go through here: they belong in uniforms.
 */
export class WgslPreprocessError extends WebattnError {
  override name = 'WgslPreprocessError';
}

export interface WgslVariant {
  /** Flags for `#if`: true means the block is kept. */
  readonly flags?: Readonly<Record<string, boolean>>;
  /** `${NAME}` substitutions. Every `${...}` left in the source must have one. */
  readonly replacements?: Readonly<Record<string, string>>;
}

export function preprocessWgsl(source: string, variant: WgslVariant = {}): string {
  const flags = variant.flags ?? {};
  const replacements = variant.replacements ?? {};
  const out: string[] = [];
  // Each frame: whether the current branch is active, and whether any branch of this #if was taken.
  const stack: { active: boolean; taken: boolean; parentActive: boolean }[] = [];
  const active = () => stack.every((frame) => frame.active);
  const lines = source.split('\n');
  lines.forEach((line, index) => {
    const directive = /^\s*#(if|elif|else|endif)\b\s*(!?)\s*([A-Za-z_][A-Za-z0-9_]*)?\s*$/.exec(line);
    if (!directive) {
      if (/^\s*#/.test(line)) {
        throw new WgslPreprocessError(`line ${index + 1}: unknown directive ${JSON.stringify(line.trim())}`);
      }
      if (active()) out.push(line);
      return;
    }
    const [, kind, negate, name] = directive;
    const test = () => {
      if (!name) throw new WgslPreprocessError(`line ${index + 1}: #${kind} needs a flag name`);
      const value = flags[name] === true;
      return negate ? !value : value;
    };
    if (kind === 'if') {
      const parentActive = active();
      const value = test();
      stack.push({ active: value, taken: value, parentActive });
    } else {
      const frame = stack[stack.length - 1];
      if (!frame) throw new WgslPreprocessError(`line ${index + 1}: #${kind} without #if`);
      if (kind === 'elif') {
        const value = !frame.taken && test();
        frame.active = value;
        frame.taken ||= value;
      } else if (kind === 'else') {
        frame.active = !frame.taken;
        frame.taken = true;
      } else {
        stack.pop();
      }
    }
    out.push(''); // keep line numbers stable for compiler messages
  });
  if (stack.length > 0) throw new WgslPreprocessError(`${stack.length} #if block(s) without #endif`);
  return out.join('\n').replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const value = replacements[name];
    if (value === undefined) throw new WgslPreprocessError(`no replacement given for \${${name}}`);
    return value;
  });
}

/** Joins snippets (library code first, the kernel last) and preprocesses the result as one source. */
export function composeWgsl(parts: readonly string[], variant: WgslVariant = {}): string {
  return preprocessWgsl(parts.join('\n'), variant);
}
