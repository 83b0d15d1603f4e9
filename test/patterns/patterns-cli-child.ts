// A `vnet patterns …` process for the tests that need a worker in a process of
// its own (one that can be killed): runs the patterns command on its argv.
import { patternsCommand } from '../../src/cli/patterns-command.ts';

await patternsCommand().parseAsync(process.argv);
