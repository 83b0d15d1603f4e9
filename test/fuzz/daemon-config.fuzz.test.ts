import { test } from 'node:test';
import { parseYamlConfig } from '../../src/common/yaml-config.ts';
import { daemonConfigSchema } from '../../src/dataplane/daemon-config.ts';
import { fuzz } from './fuzz-kit.ts';
import { YAML_HALF, daemonConfigs, yamlTarget } from './yaml-inputs.ts';

/** The daemon's config file: YAML (yaml-inputs.ts) → daemonConfigSchema. A valid, frozen config or a ConfigError with file and line. */
test('fuzz: daemon config file (YAML → daemonConfigSchema)', async (t) => {
  await fuzz(t, yamlTarget('yaml-daemon-config', daemonConfigs, (text, file) => parseYamlConfig(text, file, daemonConfigSchema)), { count: YAML_HALF });
});
