import { afterEach, describe, expect, it } from 'vitest';
import { loadTorchSdpaFixtures, torchFixturesFolder } from './torch-fixtures';

const saved = { CI: process.env.CI, WEBATTN_FIXTURES: process.env.WEBATTN_FIXTURES };

afterEach(() => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
});

describe('PyTorch fixtures loader', () => {
  it('looks in ../shared/fixtures/torch-sdpa beside the repo unless WEBATTN_FIXTURES says otherwise', async () => {
    delete process.env.WEBATTN_FIXTURES;
    expect(await torchFixturesFolder()).toMatch(/shared\/fixtures\/torch-sdpa$/);
    process.env.WEBATTN_FIXTURES = '/elsewhere/fixtures';
    expect(await torchFixturesFolder()).toBe('/elsewhere/fixtures');
  });

  it('fails loudly when the folder is missing in CI, and skips (null) locally', async () => {
    process.env.WEBATTN_FIXTURES = '/nonexistent/webattn-fixtures';
    process.env.CI = 'true';
    await expect(loadTorchSdpaFixtures()).rejects.toThrow(/\/nonexistent\/webattn-fixtures is missing \(CI=true\)/);
    delete process.env.CI;
    expect(await loadTorchSdpaFixtures()).toBeNull();
  });
});
