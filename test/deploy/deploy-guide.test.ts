/**
 * docs/deploy.md as an operator follows it: every `vnet` command it shows is
 * one the CLI has, with options the CLI knows; its deployment file and daemon
 * files are valid and agree with each other (addresses, hub, controller); the
 * files it installs exist in the package, and the units start vnet with the
 * paths the guide writes to.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { parse } from 'yaml';
import { certsCommand } from '../../src/cli/certs-command.ts';
import { controllerCommand } from '../../src/cli/controller-command.ts';
import { ctlCommand } from '../../src/cli/ctl-command.ts';
import { daemonCommand } from '../../src/cli/daemon-command.ts';
import { statusCommand } from '../../src/cli/status-command.ts';
import { parseDeployment } from '../../src/controller/deployment-file.ts';
import { parseDaemonConfig, type DaemonConfig } from '../../src/dataplane/daemon-config.ts';

const ROOT = join(import.meta.dirname, '../..');
const guide = readFileSync(join(ROOT, 'docs/deploy.md'), 'utf8');
const blocks = [...guide.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, text: m[2]! }));
const yamlBlocks = blocks.filter((b) => b.lang === 'yaml').map((b) => parse(b.text) as Record<string, unknown>);
const shLines = blocks.filter((b) => b.lang === 'sh').flatMap((b) => b.text.split('\n')).map((l) => l.replace(/\s+#.*$/, '').trim()).filter((l) => l !== '' && !l.startsWith('#'));

function program(): Command {
  const root = new Command('vnet');
  for (const c of [certsCommand(), controllerCommand(), ctlCommand(), daemonCommand(), statusCommand()]) root.addCommand(c);
  return root;
}

/** The words of a `vnet …` command in a line (after sudo, sudo -u vnet), or undefined. */
function vnetWords(line: string): string[] | undefined {
  const m = /(?:^|&&\s*)(?:sudo\s+(?:-u\s+\S+\s+)?)?vnet\s+(.*?)(?:\s*&&|$)/.exec(line);
  return m === null ? undefined : m[1]!.split(/\s+/);
}

/** Where the YAML blocks say things: the deployment, the daemons' files, the join-token fragment, Prometheus. */
const deployment = parseDeployment(blocks.find((b) => b.lang === 'yaml' && /^hosts:/m.test(b.text))!.text, 'docs/deploy.md');
const daemons = yamlBlocks.filter((y) => 'host' in y && 'role' in y).map((y) => parseDaemonConfig(y, 'docs/deploy.md'));

describe('docs/deploy.md', () => {
  it('every vnet command is one the CLI has, with options it knows', () => {
    const root = program();
    const commands = shLines.map(vnetWords).filter((w): w is string[] => w !== undefined && w[0] !== '--version');
    assert.ok(commands.length >= 8, `${commands.length} vnet commands found`);
    for (const words of commands) {
      const line = `vnet ${words.join(' ')}`;
      let command = root;
      const known = new Map<string, boolean>(); // option → takes a value
      for (let i = 0; i < words.length; i++) {
        const w = words[i]!;
        if (w.startsWith('--')) {
          const [flag] = w.split('=');
          assert.ok(known.has(flag!), `${line}: vnet ${command.name()} has no option ${flag}`);
          if (known.get(flag!) === true && !w.includes('=')) i++;
          continue;
        }
        const sub = command.commands.find((c) => c.name() === w);
        if (sub === undefined) continue; // a positional argument
        command = sub;
        for (const o of command.options) if (o.long !== undefined) known.set(o.long, o.required || o.optional);
      }
      assert.notEqual(command, root, `${line}: no such command`);
      assert.equal(command.commands.length, 0, `${line}: names no subcommand of ${command.name()}`);
    }
  });

  it('the deployment file and the daemons\' files agree: listen addresses, the hub, the controller, the VMs', () => {
    assert.equal(deployment.hosts.length, 3);
    const hub = deployment.hosts.find((h) => h.hub === true)!;
    const control = deployment.controller.control!;
    assert.ok(daemons.length >= 1);
    for (const d of daemons) {
      const host = deployment.hosts.find((h) => h.id === d.host);
      assert.ok(host !== undefined, `daemon ${d.host} is a host of the deployment`);
      assert.deepEqual(d.listen, { host: host.listen?.host, port: host.listen?.port }, `${d.host} listens where the deployment says`);
      assert.equal(d.transport, host.listen?.transport);
      if (d.role === 'spoke') {
        assert.equal(d.hubId, hub.id);
        assert.deepEqual(d.hub, { host: hub.listen?.host, port: hub.listen?.port });
      }
      assert.equal(new URL(d.controller!.url!).port, String(control.port), 'the control channel port');
      assert.equal(new URL(d.controller!.url!).hostname, hub.listen?.host, 'the controller runs on A, the hub\'s machine');
      for (const p of d.ports) assert.ok(deployment.vms.some((v) => v.mac === p.mac && v.host === d.host && p.ip?.startsWith(`${v.ip}/`)), `port ${p.name} is a VM of ${d.host}`);
    }
  });

  it('the join-token fragment makes a valid daemon file, its credential in the unit\'s state directory', () => {
    const fragment = yamlBlocks.find((y) => !('host' in y) && (y.controller as Record<string, unknown> | undefined)?.joinToken !== undefined);
    assert.ok(fragment !== undefined);
    const c: DaemonConfig = parseDaemonConfig({ ...yamlBlocks.find((y) => y.host === daemons[0]!.host), controller: fragment.controller }, 'docs/deploy.md');
    assert.match(c.controller!.credentialFile!, /^\/var\/lib\/vnet\//);
    assert.match(c.controller!.caFile!, /^\/etc\/vnet\/certs\/ca\.pem$/);
  });

  it('Prometheus scrapes the controller\'s API and every daemon\'s metrics address', () => {
    const prom = yamlBlocks.find((y) => 'scrape_configs' in y) as { scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[] };
    const targets = (job: string): string[] => prom.scrape_configs.find((s) => s.job_name === job)!.static_configs.flatMap((s) => s.targets);
    const api = deployment.controller.api!;
    assert.deepEqual(targets('vnet-controller'), [`${api.host}:${api.port}`]);
    for (const d of daemons) assert.ok(targets('vnet-daemon').includes(`${d.metrics!.host}:${d.metrics!.port}`), `${d.host}'s metrics are scraped`);
    assert.equal(targets('vnet-daemon').length, deployment.hosts.length);
  });

  it('the files it installs are in the package, and the units use the paths it writes', () => {
    for (const [, rel] of guide.matchAll(/\$\(npm root -g\)\/vnet\/(\S+?)["`\s]/g)) assert.ok(existsSync(join(ROOT, rel!)), `${rel} is in the package`);
    const controllerUnit = readFileSync(join(ROOT, 'deploy/systemd/vnet-controller.service'), 'utf8');
    const daemonUnit = readFileSync(join(ROOT, 'deploy/systemd/vnet-daemon.service'), 'utf8');
    assert.match(controllerUnit, /--topology \/etc\/vnet\/deployment\.yaml/);
    assert.match(guide, /`\/etc\/vnet\/deployment\.yaml`/);
    assert.match(controllerUnit, /--tls-dir \/etc\/vnet\/certs/);
    assert.match(controllerUnit, /--token-file \/var\/lib\/vnet\/api-token/);
    assert.match(daemonUnit, /--config \/etc\/vnet\/daemon\.yaml/);
    assert.match(guide, /`\/etc\/vnet\/daemon\.yaml`/);
    for (const d of daemons) assert.equal(d.tls?.dir, '/etc/vnet/certs');
    assert.match(daemonUnit, /^User=vnet$/m);
  });
});
