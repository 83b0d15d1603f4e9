import { Command } from 'commander';
import { daemonCommand } from './daemon-command.ts';

/** The `vnet` binary: one program, one subcommand per role. */
const program = new Command('vnet')
  .description('vnet: an SDN overlay for virtual networks of VMs')
  .version('0.1.0')
  .showHelpAfterError();

program.addCommand(daemonCommand());

await program.parseAsync(process.argv);
