// The workgroup storage a composed WGSL kernel declares, counted as WebGPU's pipeline limit counts it (each
// workgroup variable's size rounded up to 16 bytes), so that tests can hold the hand-written estimates of
// flash-tiles.ts and the matrix kernels' files to the shaders they describe.
import type { KernelSource } from '@webattn/tensor';
import { roundUp } from '../src/stored-scores';

/** Size and alignment of the element types the flash kernels put in workgroup memory. */
const TYPES: Readonly<Record<string, { readonly size: number; readonly align: number }>> = {
  f16: { size: 2, align: 2 },
  f32: { size: 4, align: 4 },
  u32: { size: 4, align: 4 },
  'atomic<u32>': { size: 4, align: 4 },
  'vec2<f32>': { size: 8, align: 8 },
  'vec4<f32>': { size: 16, align: 16 },
  'vec4<i32>': { size: 16, align: 16 },
  // flash-common.wgsl: five u32.
  Sequence: { size: 20, align: 4 },
};

/** Bytes of the workgroup variables `kernel`'s code declares (pipeline-overridable sizes from its constants). */
export function workgroupBytes(kernel: KernelSource): number {
  const code = kernel.code();
  const values = new Map<string, number>();
  for (const [, kind, name, expression] of code.matchAll(/^(const|override) (\w+): (?:u32|i32) = (.+);$/gm)) {
    values.set(name!, (kind === 'override' ? kernel.constants?.[name!] : undefined) ?? evaluateU32(expression!, values));
  }
  const layout = (type: string): { size: number; align: number } => {
    const array = /^array<(.+), ([^,]+)>$/.exec(type);
    if (!array) {
      const known = TYPES[type];
      if (!known) throw new Error(`workgroupBytes: no size known for ${type}`);
      return known;
    }
    const element = layout(array[1]!);
    return { size: roundUp(element.size, element.align) * evaluateU32(array[2]!, values), align: element.align };
  };
  let bytes = 0;
  for (const [, type] of code.matchAll(/^var<workgroup> \w+: (.+);$/gm)) bytes += roundUp(layout(type!).size, 16);
  return bytes;
}

/**
 * A WGSL u32 const-expression of the kinds these kernels size arrays with: integers, names, + - * / % (division
 * truncating, as u32's), comparisons, parentheses and max, min, select.
 */
function evaluateU32(expression: string, values: ReadonlyMap<string, number>): number {
  const tokens = expression.match(/\d+u?|\w+|==|!=|<=|>=|[-+*/%(),<>]/g) ?? [];
  let at = 0;
  const fail = (why: string): never => {
    throw new Error(`workgroupBytes: ${why} in "${expression}"`);
  };
  const take = (token?: string): string => {
    const next = tokens[at++];
    if (next === undefined || (token !== undefined && next !== token)) fail(`expected ${token ?? 'more'} at token ${at}`);
    return next!;
  };
  const primary = (): number => {
    const token = take();
    if (token === '(') {
      const value = comparison();
      take(')');
      return value;
    }
    if (/^\d/.test(token)) return Number.parseInt(token, 10);
    if (tokens[at] === '(') {
      take('(');
      const args = [comparison()];
      while (tokens[at] === ',') {
        take(',');
        args.push(comparison());
      }
      take(')');
      if (token === 'max') return Math.max(...args);
      if (token === 'min') return Math.min(...args);
      if (token === 'select' && args.length === 3) return args[2] ? args[1]! : args[0]!;
      return fail(`unknown function ${token}`);
    }
    const value = values.get(token);
    return value ?? fail(`unknown name ${token}`);
  };
  const product = (): number => {
    let value = primary();
    while (tokens[at] === '*' || tokens[at] === '/' || tokens[at] === '%') {
      const operator = take();
      const right = primary();
      value = operator === '*' ? value * right : operator === '/' ? Math.trunc(value / right) : value % right;
    }
    return value;
  };
  const sum = (): number => {
    let value = product();
    while (tokens[at] === '+' || tokens[at] === '-') value = take() === '+' ? value + product() : value - product();
    return value;
  };
  const comparison = (): number => {
    const left = sum();
    const operator = tokens[at];
    if (operator !== '==' && operator !== '!=' && operator !== '<' && operator !== '>' && operator !== '<=' && operator !== '>=') return left;
    take();
    const right = sum();
    const holds = { '==': left === right, '!=': left !== right, '<': left < right, '>': left > right, '<=': left <= right, '>=': left >= right }[operator];
    return holds ? 1 : 0;
  };
  const value = comparison();
  if (at !== tokens.length) fail(`unexpected ${tokens[at]}`);
  return value;
}
