import { Command } from 'commander';
import { certsCommand } from './certs-command.ts';
import { controllerCommand } from './controller-command.ts';
import { ctlCommand } from './ctl-command.ts';
import { daemonCommand } from './daemon-command.ts';
import { migrateCommand } from './migrate-command.ts';
import { patternsCommand } from './patterns-command.ts';
import { relayCommand } from './relay-command.ts';
import { demoCommand } from './demo-command.ts';
import { traceCommand } from './trace-command.ts';

/** The `vnet` binary: one program, one subcommand per role. */
const program = new Command('vnet')
  .description('vnet: an SDN overlay for virtual networks of VMs')
  .version('0.1.0')
  .showHelpAfterError();

program.addCommand(demoCommand());
program.addCommand(controllerCommand());
program.addCommand(daemonCommand());
program.addCommand(ctlCommand());
program.addCommand(certsCommand());
program.addCommand(migrateCommand());
program.addCommand(traceCommand());
program.addCommand(patternsCommand());
program.addCommand(relayCommand());

await program.parseAsync(process.argv);
