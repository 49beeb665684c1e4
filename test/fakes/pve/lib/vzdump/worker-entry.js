// The forked vzdump worker (PVE::RESTEnvironment::fork_worker's child), started by main.js's CLI
// process in a session of its own. Not a tool of its own: its call is not recorded (the CLI's is).
import { runTool } from "../cli.js";
import { vzdumpWorker } from "./main.js";
await runTool("vzdump", vzdumpWorker, { record: false });
