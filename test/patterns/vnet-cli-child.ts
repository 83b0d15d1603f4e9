// A `vnet` process with the commands of this area (`vnet patterns …`, `vnet relay …`),
// for tests that need them in a process of their own (to kill it, or to check exit codes and output).
import { Command } from 'commander';
import { patternsCommand } from '../../src/cli/patterns-command.ts';
import { relayCommand } from '../../src/cli/relay-command.ts';

const program = new Command('vnet');
program.addCommand(patternsCommand());
program.addCommand(relayCommand());
await program.parseAsync(process.argv);
