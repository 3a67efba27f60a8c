import { DEFAULT_DECODE_SHAPES, benchmarkDecode, formatDecodeBenchmark, type DecodeShape } from '@webattn/sdpa';
import type { Command } from '../command';

const USAGE = '[--shape B,Hq,Hkv,L,S,D ...] [--repeats N]';

function parseShape(text: string): DecodeShape {
  const numbers = text.split(',').map(Number);
  if (numbers.length !== 6 || numbers.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`--shape needs six positive integers B,Hq,Hkv,L,S,D, got "${text}"`);
  }
  const [batch, queryHeads, kvHeads, queryLength, keyLength, headDim] = numbers as [number, number, number, number, number, number];
  return { batch, queryHeads, kvHeads, queryLength, keyLength, headDim };
}

/**
 * `decode`: few queries over long keys — the split-KV ('efficient') backend against flash and math, each forced
 * through the dispatcher, with the backend the dispatcher would pick unforced (wall clock per call, median).
 */
export const decodeCommand: Command = {
  name: 'decode',
  summary: 'decode shapes (L ≤ 16, long S): efficient (split-KV) vs flash vs math, and what the dispatcher picks',
  usage: USAGE,
  async run({ device, args, print }) {
    const shapes: DecodeShape[] = [];
    let repeats = 5;
    for (let i = 0; i < args.length; i++) {
      const [flag, inline] = args[i]!.split('=', 2) as [string, string | undefined];
      const value = inline ?? args[++i];
      if (value === undefined) throw new Error(`${flag} needs a value`);
      if (flag === '--shape') shapes.push(parseShape(value));
      else if (flag === '--repeats') {
        repeats = Number(value);
        if (!Number.isInteger(repeats) || repeats < 1) throw new Error(`--repeats needs a positive integer, got "${value}"`);
      } else throw new Error(`unknown option ${flag} for decode; options: ${USAGE}`);
    }
    if (!device.isGpu) {
      print(`decode: no WebGPU device (${device.info.reason}); the backends compared are GPU kernels`);
      return { ok: false, reason: device.info.reason };
    }
    const rows = await benchmarkDecode(device, { shapes: shapes.length > 0 ? shapes : DEFAULT_DECODE_SHAPES, repeats });
    print(`device: ${device.info.adapter}`);
    for (const line of formatDecodeBenchmark(rows).split('\n')) print(line);
    return { ok: true, device: device.info.adapter, repeats, rows };
  },
};
