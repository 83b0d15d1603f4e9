import { Command } from 'commander';

/**
 * The `vnet` binary: one program, one subcommand per role.
 *
 * Each subcommand's module is imported only when it runs: `vnet ctl hosts`
 * must not load the controller, the data plane and SQLite just to print a
 * table (docs/operations: the CLI answers in well under 0.3 s). `vnet --help`
 * and unknown commands load them all (`--version` none) so that help lists every subcommand.
 */
type CommandLoader = () => Promise<Command>;

const COMMANDS: ReadonlyMap<string, CommandLoader> = new Map<string, CommandLoader>([
  ['demo', async () => (await import('./demo-command.ts')).demoCommand()],
  ['controller', async () => (await import('./controller-command.ts')).controllerCommand()],
  ['daemon', async () => (await import('./daemon-command.ts')).daemonCommand()],
  ['status', async () => (await import('./status-command.ts')).statusCommand()],
  ['ctl', async () => (await import('./ctl-command.ts')).ctlCommand()],
  ['certs', async () => (await import('./certs-command.ts')).certsCommand()],
  ['migrate', async () => (await import('./migrate-command.ts')).migrateCommand()],
  ['trace', async () => (await import('./trace-command.ts')).traceCommand()],
  ['patterns', async () => (await import('./patterns-command.ts')).patternsCommand()],
  ['relay', async () => (await import('./relay-command.ts')).relayCommand()],
]);

const program = new Command('vnet')
  .description('vnet: an SDN overlay for virtual networks of VMs')
  .version('0.1.0')
  .showHelpAfterError();

const first = process.argv[2] ?? '';
const requested = COMMANDS.get(first);
const loaders = requested !== undefined ? [requested] : first === '-V' || first === '--version' ? [] : [...COMMANDS.values()];
for (const command of await Promise.all(loaders.map((load) => load()))) program.addCommand(command);
exitTwoOnUsageErrors(program);

await program.parseAsync(process.argv);

/**
 * Bad usage exits 2 everywhere (README: 0 ok, 1 refused, 2 usage…); commander
 * exits 1 on its own parse errors, and a command added with `addCommand`
 * does not inherit an override, so every command in the tree gets one.
 */
function exitTwoOnUsageErrors(command: Command): void {
  command.exitOverride((err) => process.exit(err.exitCode === 1 && err.code.startsWith('commander.') ? 2 : err.exitCode));
  for (const sub of command.commands) exitTwoOnUsageErrors(sub);
}
