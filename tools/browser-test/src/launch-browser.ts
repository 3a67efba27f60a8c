import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

/** Debian's Chromium (installed by scripts/setup-system.sh); WEBATTN_CHROMIUM overrides it. */
export const DEFAULT_CHROMIUM = '/usr/bin/chromium';

/**
 * Flags for headless Chromium with WebGPU on a machine without a GPU: WebGPU runs on SwiftShader (Vulkan on
 * the CPU, shipped with Chromium). The rest keep the browser quiet and offline: no component downloads, no
 * sync, no first-run UI.
 */
export const WEBGPU_CHROMIUM_FLAGS: readonly string[] = [
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan',
  '--no-sandbox',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/**
 * For browser test files: whether Chromium is there. Without it they skip with a warning — unless
 * WEBATTN_REQUIRE_GPU=1 (CI), where a missing browser is an error: browser tests never skip silently in CI.
 */
export function browserAvailable(executablePath = process.env.WEBATTN_CHROMIUM ?? DEFAULT_CHROMIUM): boolean {
  if (existsSync(executablePath)) return true;
  if (process.env.WEBATTN_REQUIRE_GPU === '1') {
    throw new Error(`WEBATTN_REQUIRE_GPU=1 but there is no Chromium at ${executablePath}: run 'bash scripts/setup-system.sh'`);
  }
  console.warn(`[webattn] browser tests skipped: no Chromium at ${executablePath}`);
  return false;
}

export interface LaunchOptions {
  /** Path of the Chromium binary (default: $WEBATTN_CHROMIUM or /usr/bin/chromium). */
  readonly executablePath?: string;
  /** Extra command-line flags, after WEBGPU_CHROMIUM_FLAGS. */
  readonly extraFlags?: readonly string[];
  /** Launch timeout in milliseconds (default 60 s: a busy 2-core machine starts Chromium slowly). */
  readonly timeoutMs?: number;
}

export interface LaunchedBrowser {
  /** The browser context (a fresh profile in a temporary --user-data-dir). */
  readonly context: BrowserContext;
  /** Closes the browser and deletes its profile directory. */
  close(): Promise<void>;
}

/**
 * Deletes a profile directory. Chromium's helper processes can still be writing its cache for a moment after the
 * context closed (one CI run failed with ENOTEMPTY on Default/Cache), so removal retries with a growing wait.
 */
async function removeProfile(userDataDir: string): Promise<void> {
  await rm(userDataDir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
}

/** Starts headless Chromium with WebGPU enabled and a fresh, temporary profile. */
export async function launchBrowser(options: LaunchOptions = {}): Promise<LaunchedBrowser> {
  const executablePath = options.executablePath ?? process.env.WEBATTN_CHROMIUM ?? DEFAULT_CHROMIUM;
  const userDataDir = await mkdtemp(path.join(tmpdir(), 'webattn-chromium-'));
  let context: BrowserContext;
  try {
    // A persistent context is how Playwright takes our own --user-data-dir; the directory is new and removed after.
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: [...WEBGPU_CHROMIUM_FLAGS, ...(options.extraFlags ?? [])],
      timeout: options.timeoutMs ?? 60_000,
    });
  } catch (error) {
    await removeProfile(userDataDir);
    throw new Error(
      `could not start Chromium at ${executablePath} (run 'bash scripts/setup-system.sh' to install it, or set WEBATTN_CHROMIUM): ${(error as Error).message}`,
    );
  }
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      await removeProfile(userDataDir);
    },
  };
}
