// The `vnet patterns` and `vnet relay` commands on their own, for the
// benefit bench when the `vnet` binary does not (yet) register them:
//   node --import tsx bench/adaptation/vnet-tools.ts patterns worker ...
//   node --import tsx bench/adaptation/vnet-tools.ts relay --listen ... --target ... --delay ...
import { Command } from 'commander';
import { patternsCommand } from '../../src/cli/patterns-command.ts';
import { relayCommand } from '../../src/cli/relay-command.ts';

const program = new Command('vnet-tools').showHelpAfterError();
program.addCommand(patternsCommand());
program.addCommand(relayCommand());
await program.parseAsync(process.argv);
