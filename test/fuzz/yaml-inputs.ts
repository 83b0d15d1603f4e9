import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { z } from 'zod';
import { ConfigError } from '../../src/common/errors.ts';
import { parseYamlConfig } from '../../src/common/yaml-config.ts';
import { fuzzCount, showText, type FuzzTarget, type Rand } from './fuzz-kit.ts';
import { deepNestText, mutateJson, mutateText } from './mutate.ts';

/**
 * Inputs and oracle for YAML configuration (src/common/yaml-config.ts),
 * fuzzed through its two schemas in daemon-config.fuzz.test.ts and
 * deployment-file.fuzz.test.ts (two files, so the tier runs them side by
 * side). Inputs: the
 * repository's topologies and the README's daemon config, mutated as text
 * (YAML's own tokens: anchors, aliases, merge keys, tags, directives,
 * document markers, flow and block collections), as data (a node of another
 * type, keys dropped or unknown, then written back as YAML), and built
 * hostile: alias bombs, unresolved aliases, deep nesting, huge scalars.
 * Oracle: a frozen valid result, or a ConfigError naming the file and a line
 * — never another exception.
 *
 * One decoder (parseYamlConfig), two schemas: the count is shared between
 * them, half each (the yaml library composes about a document a
 * millisecond, the slowest decoder of the tier).
 */

/** Each schema's share of the decoder's count. */
export const YAML_HALF = Math.ceil(fuzzCount() / 2);

const root = join(import.meta.dirname, '../..');
export const topologies = ['single-site-4.yaml', 'wan-3-site.yaml', 'bsp-8.yaml'].map((f) => readFileSync(join(root, 'topologies', f), 'utf8'));

export const daemonConfigs = [
  `host: h2
role: spoke
transport: tls
tls: { dir: ./certs }
listen: { host: 127.0.0.1, port: 7502 }
hub: { host: 127.0.0.1, port: 7501 }
hubId: h1
controller: { url: "wss://127.0.0.1:7400/control" }
admin: { socket: /run/vnet/h2.sock }
migration: { host: 127.0.0.1, port: 8502 }
ports:
  - { name: vm2, type: tap, mac: "02:00:00:00:01:02", mtu: 1500, offload: true, netns: vm2,
      guest: { profile: idle, memoryMiB: 16, diskMiB: 4 } }
fastPath:
  - { peer: h3, host: 127.0.0.1, port: 7503 }
rules:
  - { id: r1, priority: 100, src: any, dst: "02:00:00:00:01:03", action: { link: h3 } }
`,
  `host: hub
role: hub
listen:
  host: 0.0.0.0
  port: 7000
admin:
  host: 127.0.0.1
  port: 7100
ports:
  - name: vm1
    type: memory
    mac: 02:00:00:00:00:01
    ip: 10.0.0.1/24
rules:
  - id: to-vm1
    priority: 10
    src: any
    dst: "02:00:00:00:00:01"
    action:
      port: vm1
keepaliveMs: 500
reconnect: { initialMs: 100, maxMs: 5000 }
`,
];

const TOKENS = [
  '&a ', '*a', '*b', '&b ', '*undefined_alias', '<<: *a\n', ': ', '- ', '? ', '[', ']', '{', '}', ',', '"', "'", '\n', '  ', '\t', '#', '|', '>-', '|+',
  '!!str ', '!!int ', '!!float ', '!!binary ', '!!set ', '!!omap ', '!!timestamp ', '!!js/function ', '!custom ', '!<tag:x> ', '%YAML 1.1\n', '%TAG ! tag:x:\n',
  '---\n', '...\n', '\u0000', '\ufeff', '\r\n', '~', 'null', '.inf', '-.nan', '0x1F', '0o17', '1_000', '2001-12-14t21:59:43.10-05:00', 'yes', 'No', '=',
  '02:00:00:00:00:01', 'hosts', 'vms', 'policy', 'ports', 'rules', 'host', 'role', '__proto__', 'constructor',
];

/** n levels of aliases, each a list of `fan` references to the level below (a billion-laughs document). */
function aliasBomb(levels: number, fan: number): string {
  const lines = ['l0: &l0 [x, x, x, x, x, x, x, x, x, x]'];
  for (let l = 1; l <= levels; l++) lines.push(`l${l}: &l${l} [${Array(fan).fill(`*l${l - 1}`).join(', ')}]`);
  return `${lines.join('\n')}\n`;
}

function hostile(rand: Rand, base: string): string {
  switch (rand.int(7)) {
    case 0: return rand.chance(0.5) ? aliasBomb(rand.range(2, 9), rand.range(2, 10)) : `${base}\n${aliasBomb(rand.range(2, 9), rand.range(2, 10))}`;
    case 1: return `${base}\nextra: *${rand.pick(['nowhere', 'a', 'l0'])}\n`;
    case 2: return `nest: ${deepNestText(rand.pick([50, 500, 5000, 20000]), 'x', rand.chance(0.5)).replace(/"a":/g, 'a: ')}\n`;
    case 3: return `${Array.from({ length: rand.pick([50, 500, 3000]) }, (_, d) => `${'  '.repeat(d)}k${d}:`).join('\n')} x\n`;
    case 4: return `host: ${'h'.repeat(rand.pick([64, 10_000, 200_000]))}\nrole: hub\n`;
    case 5: return `base: &base\n  role: spoke\n  hub: { host: 127.0.0.1, port: 1 }\n<<: *base\nhost: h${rand.int(9)}\n`;
    default: return `${base.replace(/^/gm, () => (rand.chance(0.05) ? '\t' : ''))}`;
  }
}

const anyValue = z.unknown();

export interface YamlInput {
  readonly text: string;
  readonly file: string;
}

function generator(bases: readonly string[]): (rand: Rand, i: number) => YamlInput {
  const data = bases.map((b) => parseYamlConfig(b, 'base.yaml', anyValue) as unknown);
  return (rand, i) => {
    const which = rand.int(bases.length);
    const base = bases[which]!;
    const mode = rand.int(10);
    let text: string;
    if (mode === 0) text = base;
    else if (mode === 1) text = hostile(rand, base);
    else if (mode <= 3) {
      // As data: a node of another type, a key dropped or unknown; written back as YAML (sometimes with anchors for repeats).
      // Nesting and blow-ups stay small here: the hostile inputs cover the large ones.
      const mutated = mutateJson(rand, data[which], { repeats: [2, 20], nests: [3, 40, 70] });
      text = stringify(mutated, { aliasDuplicateObjects: rand.chance(0.5) });
      if (rand.chance(0.3)) text = mutateText(rand, text, TOKENS, bases);
    } else text = mutateText(rand, base, TOKENS, bases);
    return { text, file: `fuzz-${i}.yaml` };
  };
}

function check(parse: (text: string, file: string) => unknown, { text, file }: YamlInput): string {
  let value: unknown;
  try {
    value = parse(text, file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    assert.equal(err.file, file, 'the error names the file');
    assert.match(err.message, /\bline \d+\b/, 'the error names a line');
    const kind = /YAML (syntax|alias|nesting) error/.exec(err.message)?.[1];
    return kind !== undefined ? `ConfigError:${kind}` : `ConfigError:${err.key?.split(/[.[]/)[0] ?? '-'}`;
  }
  assert.ok(Object.isFrozen(value), 'a valid configuration is frozen');
  return 'ok';
}

/** The fuzz target of one schema: `parse` is what the daemon or the controller calls on a file's text. */
export function yamlTarget(name: string, bases: readonly string[], parse: (text: string, file: string) => unknown): FuzzTarget<YamlInput> {
  return { name, generate: generator(bases), run: (input) => check(parse, input), show: (i) => showText(i.text, 1500) };
}
