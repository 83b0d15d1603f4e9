import { test } from 'node:test';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { fuzz } from './fuzz-kit.ts';
import { YAML_HALF, topologies, yamlTarget } from './yaml-inputs.ts';

/** The deployment (topology) file: YAML (yaml-inputs.ts) → the deployment schema. A valid, frozen deployment or a ConfigError with file and line. */
test('fuzz: deployment (topology) file (YAML → deployment schema)', async (t) => {
  await fuzz(t, yamlTarget('yaml-deployment', topologies, parseDeployment), { count: YAML_HALF });
});
