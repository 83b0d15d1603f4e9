import { test } from 'node:test';
import assert from 'node:assert/strict';
import { datapathIdOf, tunnelPortName } from '../../../src/controller/ovs/bridge-db.ts';
import { TABLE_FROM_VM } from '../../../src/controller/ovs/flow-plan.ts';
import { waitFor } from '../../helpers/wait.ts';
import { DEPLOYMENT_YAML, startHarness, testDeployment } from '../fixtures/controller-harness.ts';
import { FakeCluster, FakeMigrationAgent } from '../fixtures/fake-migration-agent.ts';
import { testPki } from '../fixtures/test-pki.ts';
import { FlowTableSwitch } from './flow-table-switch.ts';
import { MemoryBridgeDb } from './memory-bridge-db.ts';
import { flowTo, outputs } from './ovs-harness.ts';

/**
 * The migration coordinator's cutover with an OVS host in the deployment:
 * three daemons played by fake migration agents over the real control
 * channel (as test/controller/migration.test.ts), and ovs1, an OVS bridge
 * (flow-table switch, in-memory database) with fast paths to both ends of
 * the move. v1 moves from h1 to h2.
 */
const V1 = '02:00:00:00:00:01';
const YAML = DEPLOYMENT_YAML
  .replace('{ id: hub, site: lab, hub: true,', '{ id: hub, site: lab, hub: true, vtep: 10.9.0.1,')
  .replace('{ id: h1, site: lab,', '{ id: h1, site: lab, vtep: 10.9.0.2,')
  .replace('{ id: h2, site: lab,', '{ id: h2, site: lab, vtep: 10.9.0.3,')
  .replace('vms:', '  - { id: ovs1, site: lab, vtep: 10.9.0.7, ovs: { ovsdb: "unix:/run/vnet-test/db.sock", bridge: br-vnet } }\nvxlan: { vni: 4242 }\ncontroller: { openflow: { host: 127.0.0.1, port: 0, transport: tcp } }\nvms:');

test('the cutover re-points the OVS host\'s flow to the destination and waits for its acknowledgement before migrate-commit', async (t) => {
  const db = new MemoryBridgeDb();
  const h = await startHarness(t, { deployment: testDeployment(YAML) }, { ovsBridgeDb: async () => db });
  const pki = testPki();
  const c = new FakeCluster();
  const hub = new FakeMigrationAgent(c, 'hub', { role: 'hub', cert: pki.host('hub'), ca: pki.ca });
  const h1 = new FakeMigrationAgent(c, 'h1', { vms: [{ mac: V1, port: 'tap-v1' }], cert: pki.host('h1'), ca: pki.ca });
  const h2 = new FakeMigrationAgent(c, 'h2', { vms: [], cert: pki.host('h2'), ca: pki.ca });
  for (const a of [hub, h1, h2]) await a.connect(h.url());
  t.after(async () => { await Promise.all([hub, h1, h2].map((a) => a.close())); });
  const sw = new FlowTableSwitch(h.controller.openflowPort!, datapathIdOf('ovs1'));
  t.after(() => sw.close());
  await h.controller.model.addFastPathLink('ovs1', 'h1', 'test', 'operator');
  await h.controller.model.addFastPathLink('ovs1', 'h2', 'test', 'operator');
  const to = async (peer: string): Promise<number> => waitFor(() => db.ofport(tunnelPortName(peer)), `tunnel to ${peer}`);
  const [toH1, toH2] = [await to('h1'), await to('h2')];
  await waitFor(() => outputs(flowTo(sw, TABLE_FROM_VM, V1))[0] === toH1 ? true : undefined, 'v1 over the fast path to h1');

  sw.holdFlowStats = true; // the switch is slow: the OVS host cannot have the cutover's flows in place yet
  const m = await h.controller.model.startMigration!(V1, 'h2', 'admin');
  await waitFor(() => (h.controller.model.getVm(V1)?.host === 'h2' ? true : undefined), 'the commit point: v1 on h2 in the registry');
  await waitFor(() => (hub.rulesVersion === h.controller.store.getVersions('hub').rulesVersion && h1.rulesVersion === h.controller.store.getVersions('h1').rulesVersion ? true : undefined), 'the daemons acknowledged the cutover rules');
  assert.ok(!h1.received.some((x) => x.type === 'migrate-commit') && !h2.received.some((x) => x.type === 'migrate-commit'), 'no commit while the OVS host has not acknowledged');
  assert.equal(outputs(flowTo(sw, TABLE_FROM_VM, V1))[0], toH1);

  sw.release();
  await waitFor(() => (h1.received.some((x) => x.type === 'migrate-commit') ? true : undefined), 'migrate-commit once the OVS host acknowledged');
  assert.equal(outputs(flowTo(sw, TABLE_FROM_VM, V1))[0], toH2, 'v1 re-pointed to h2\'s tunnel before the commit');
  const done = await waitFor(() => { const v = h.controller.model.getMigration(m.id); return v?.state === 'succeeded' ? v : undefined; }, 'the migration succeeded');
  assert.equal(done.to, 'h2');
});
