import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { OvsdbRequestError, OvsdbTransactionError, OvsdbConnectionError } from '../../src/ovsdb/errors.ts';
import { OvsdbClient } from '../../src/ovsdb/ovsdb-client.ts';
import { addVxlanPort, createBridge, readBridgePorts, removePort, setControllers, watchInterfaces, VSWITCH_DB, type BridgePort } from '../../src/ovsdb/vswitch.ts';
import { SwitchListener } from '../../src/openflow/switch-listener.ts';
import { startOvs } from '../helpers/ovs.ts';
import { waitFor } from '../helpers/wait.ts';

/** The OVSDB client against a live ovsdb-server (and ovs-vswitchd, userspace datapath) in a directory the test owns. */
describe('OVSDB client against a live Open vSwitch', () => {
  it('creates a netdev bridge in fail_mode secure whose controller is our OpenFlow listener, and refuses a second of that name', async (t) => {
    const ovs = await startOvs(t);
    const client = await OvsdbClient.connect({ path: ovs.dbSocket });
    t.after(() => client.close());
    assert.ok((await client.listDbs()).includes(VSWITCH_DB));
    const listener = new SwitchListener({ port: 0 });
    const { port } = await listener.listen();
    t.after(() => listener.close());

    const bridge = ovs.bridgeName();
    await createBridge(client, { name: bridge, controllers: [`tcp:127.0.0.1:${port}`], externalIds: { 'vnet-host': 'ovs-1' } });
    assert.equal(await ovs.vsctl('get', 'bridge', bridge, 'datapath_type'), 'netdev');
    assert.equal(await ovs.vsctl('get', 'bridge', bridge, 'fail_mode'), 'secure');
    assert.equal(await ovs.vsctl('get', 'bridge', bridge, 'protocols'), '[OpenFlow13]');
    assert.equal(await ovs.vsctl('get-controller', bridge), `tcp:127.0.0.1:${port}`);
    assert.equal(await ovs.vsctl('br-get-external-id', bridge, 'vnet-host'), 'ovs-1');
    const sw = await waitFor(() => [...listener.switches.values()][0], 'ovs-vswitchd connected to our listener', 20_000);
    assert.equal(sw.datapathId, BigInt(`0x${JSON.parse(await ovs.vsctl('get', 'bridge', bridge, 'datapath_id')) as string}`));

    await assert.rejects(createBridge(client, { name: bridge }), (e: unknown) => e instanceof OvsdbTransactionError && /create bridge .*: operation 0 failed: timed out/.test(e.message));
    assert.equal((await ovs.vsctl('list-br')).split('\n').filter((b) => b === bridge).length, 1, 'nothing half-written');

    await setControllers(client, bridge, ['tcp:127.0.0.1:1', `tcp:127.0.0.1:${port}`]);
    assert.deepEqual((await ovs.vsctl('get-controller', bridge)).split('\n').sort(), ['tcp:127.0.0.1:1', `tcp:127.0.0.1:${port}`].sort());
  });

  it('adds VXLAN tunnel ports and reads the bridge ports with the external_ids OpenStack sets; a monitor sees ports come and go', async (t) => {
    const ovs = await startOvs(t);
    const client = await OvsdbClient.connect({ path: ovs.dbSocket });
    t.after(() => client.close());
    const bridge = ovs.bridgeName();
    await createBridge(client, { name: bridge });

    const changes: [string, BridgePort | undefined][] = [];
    const cancel = await watchInterfaces(client, (name, row) => changes.push([name, row]));

    const tunnel = ovs.bridgeName();
    await addVxlanPort(client, bridge, { name: tunnel, remoteIp: '127.0.0.2', vni: 5000, dstPort: 4789, ofport: 10, externalIds: { 'vnet-peer': 'host-b' } });
    const vm = ovs.bridgeName();
    await ovs.vsctl('add-port', bridge, vm, '--', 'set', 'interface', vm, 'type=internal', 'external_ids:iface-id=vm-a', 'external_ids:attached-mac="02:00:00:00:00:0a"', 'ofport_request=3');

    const ports = await waitFor(async () => {
      const p = await readBridgePorts(client, bridge);
      return p.length === 3 && p.every((x) => x.ofport !== undefined) ? p : undefined;
    }, 'ovs-vswitchd assigning port numbers');
    const byName = new Map(ports.map((p) => [p.name, p]));
    assert.deepEqual(byName.get(tunnel)?.options, { dst_port: '4789', key: '5000', remote_ip: '127.0.0.2' });
    assert.equal(byName.get(tunnel)?.type, 'vxlan');
    assert.equal(byName.get(tunnel)?.ofport, 10);
    assert.deepEqual(byName.get(tunnel)?.externalIds, { 'vnet-peer': 'host-b' });
    assert.deepEqual(byName.get(vm)?.externalIds, { 'iface-id': 'vm-a', 'attached-mac': '02:00:00:00:00:0a' });
    assert.equal(byName.get(vm)?.ofport, 3);
    assert.equal(byName.get(bridge)?.type, 'internal');

    await waitFor(() => changes.some(([n, r]) => n === vm && r?.externalIds['iface-id'] === 'vm-a'), 'the monitor seeing the VM port');
    await removePort(client, bridge, vm);
    await waitFor(() => changes.some(([n, r]) => n === vm && r === undefined), 'the monitor seeing it go');
    assert.deepEqual((await readBridgePorts(client, bridge)).map((p) => p.name).sort(), [bridge, tunnel].sort());
    await cancel();
  });

  it('checks its input before sending anything, and names a failed operation and a missing server', async (t) => {
    const ovs = await startOvs(t, { vswitchd: false });
    const client = await OvsdbClient.connect({ path: ovs.dbSocket });
    t.after(() => client.close());
    const bad: [Promise<unknown>, RegExp][] = [
      [createBridge(client, { name: 'br with space' }), /bridge name "br with space" is not an interface name/],
      [createBridge(client, { name: 'br0', controllers: ['http://x'] }), /controller target "http:\/\/x"/],
      [addVxlanPort(client, 'br0', { name: 'vx0', remoteIp: '10.0.0.300', vni: 1 }), /remote_ip "10.0.0.300" is not an IP address/],
      [addVxlanPort(client, 'br0', { name: 'vx0', remoteIp: '10.0.0.3', vni: 1 << 24 }), /VNI 16777216/],
      [readBridgePorts(client, 'nope'), /no bridge nope/],
      [removePort(client, 'nope', 'p0'), /has no port p0/],
    ];
    for (const [p, re] of bad) await assert.rejects(p, (e: unknown) => e instanceof OvsdbRequestError && re.test(e.message));
    await assert.rejects(client.transact(VSWITCH_DB, [{ op: 'select', table: 'NoSuchTable', where: [] }], 'select'), (e: unknown) => e instanceof OvsdbTransactionError && /unknown table|NoSuchTable/.test(e.message));
    await assert.rejects(OvsdbClient.connect({ path: `${ovs.dir}/missing.sock` }), OvsdbConnectionError);
  });

  it('speaks TCP as well, and fails a pending request when the server goes away', async (t) => {
    const ovs = await startOvs(t, { vswitchd: false });
    const port = await ovs.addTcpRemote();
    const client = await waitFor(() => OvsdbClient.connect({ host: '127.0.0.1', port }).catch(() => undefined), 'ovsdb-server on TCP');
    t.after(() => client.close());
    const bridge = ovs.bridgeName();
    await createBridge(client, { name: bridge });
    assert.deepEqual((await readBridgePorts(client, bridge)).map((p) => p.name), [bridge]);
    // a wait that never holds keeps the transaction pending until the server is stopped
    const pending = client.transact(VSWITCH_DB, [{ op: 'wait', table: 'Bridge', where: [], columns: ['name'], until: '==', rows: [], timeout: 60_000 }], 'a wait').then(
      () => undefined,
      (e: unknown) => e,
    );
    const closed = new Promise((r) => client.once('close', r));
    await ovs.stop();
    const err = await pending;
    // A killed server closes the connection, or resets it if our last bytes were still unread: either fails the request.
    assert.ok(err instanceof OvsdbConnectionError && /closed the connection|ECONNRESET/.test(err.message), String(err));
    assert.ok((await closed) instanceof OvsdbConnectionError);
  });
});
