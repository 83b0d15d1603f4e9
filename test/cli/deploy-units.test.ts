import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import type { Command } from 'commander';
import { controllerCommand } from '../../src/cli/controller-command.ts';
import { daemonCommand } from '../../src/cli/daemon-command.ts';

/**
 * The systemd units in deploy/systemd start `vnet` with flags the CLI has
 * (every required option given, none unknown) and keep their files where the
 * units' own StateDirectory/ConfigurationDirectory put them.
 */

const UNIT_DIR = new URL('../../deploy/systemd/', import.meta.url);
const COMMANDS: Record<string, () => Command> = { controller: controllerCommand, daemon: daemonCommand };

function unitSettings(text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m === null) continue;
    settings.set(m[1] ?? '', [...(settings.get(m[1] ?? '') ?? []), m[2] ?? '']);
  }
  return settings;
}

describe('deploy/systemd units', () => {
  const units = readdirSync(UNIT_DIR).filter((f) => f.endsWith('.service'));

  it('there is a unit for the controller and one for the daemon', () => {
    assert.deepEqual(units.sort(), ['vnet-controller.service', 'vnet-daemon.service']);
  });

  for (const unit of units) {
    it(`${unit}: ExecStart names a vnet subcommand with known flags and every required option`, () => {
      const settings = unitSettings(readFileSync(new URL(unit, UNIT_DIR), 'utf8'));
      const exec = settings.get('ExecStart');
      assert.equal(exec?.length, 1, 'exactly one ExecStart');
      const words = (exec?.[0] ?? '').split(/\s+/);
      assert.deepEqual(words.slice(0, 2), ['/usr/bin/env', 'vnet']);
      const make = COMMANDS[words[2] ?? ''];
      assert.ok(make !== undefined, `unknown subcommand ${words[2]}`);
      const command = make();
      const given = words.filter((w) => w.startsWith('--'));
      const known = new Set(command.options.map((o) => o.long));
      for (const flag of given) assert.ok(known.has(flag), `${unit}: vnet ${words[2]} has no option ${flag}`);
      for (const o of command.options.filter((x) => x.required && x.mandatory)) {
        assert.ok(given.includes(o.long ?? ''), `${unit}: required option ${o.long} missing`);
      }
      // Paths live under the directories systemd creates for the unit.
      const dirs = [...(settings.get('StateDirectory') ?? []).map((d) => `/var/lib/${d}/`), ...(settings.get('ConfigurationDirectory') ?? []).map((d) => `/etc/${d}/`)];
      for (const path of words.filter((w) => w.startsWith('/') && !w.startsWith('/usr/bin/'))) {
        assert.ok(dirs.some((d) => path.startsWith(d)), `${unit}: ${path} is outside ${dirs.join(', ')}`);
      }
      assert.equal(settings.get('Restart')?.[0], 'on-failure');
      assert.equal(settings.get('NoNewPrivileges')?.[0], 'yes');
    });
  }

  it('vnet-daemon.service: `systemctl reload` sends SIGHUP, and the daemon has a file to read again', () => {
    const settings = unitSettings(readFileSync(new URL('vnet-daemon.service', UNIT_DIR), 'utf8'));
    assert.deepEqual(settings.get('ExecReload'), ['/bin/kill -HUP $MAINPID']);
    assert.match(settings.get('ExecStart')?.[0] ?? '', / --config \S+/);
  });
});
