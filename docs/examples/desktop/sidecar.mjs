// A desktop app's side of the sandbox sidecar: start `sandbox-tool mcp`, speak MCP to it
// over its stdin and stdout (one JSON-RPC message a line), show the code's output as it
// comes, stop a call, shut the sidecar down. Plain Node (an Electron main process runs it
// as it is); no package needed.
//
//   node sidecar.mjs [COMMAND ARGS...]      (default: sandbox-tool mcp)
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";

export class McpSidecar {
  constructor(command, args) {
    this.child = spawn(command, args, { stdio: ["pipe", "pipe", "inherit"] });
    this.exited = new Promise((resolve) => this.child.on("exit", resolve));
    this.nextId = 1;
    this.pending = new Map(); // request id -> { resolve, reject, onProgress }
    this.onLog = () => {}; // ({ logger: "stdout" | "stderr", data: text }) while code runs
    createInterface({ input: this.child.stdout }).on("line", (line) => this.#receive(line));
  }

  #send(message) {
    this.child.stdin.write(JSON.stringify({ jsonrpc: "2.0", ...message }) + "\n");
  }

  #receive(line) {
    const message = JSON.parse(line);
    if (message.method === "notifications/message") return this.onLog(message.params);
    if (message.method === "notifications/progress") {
      return this.pending.get(message.params.progressToken)?.onProgress?.(message.params);
    }
    if (message.method === "ping") return this.#send({ id: message.id, result: {} });
    const call = this.pending.get(message.id);
    if (call === undefined) return; // an answer to a call the app stopped
    this.pending.delete(message.id);
    if (message.error) call.reject(new Error(message.error.message));
    else call.resolve(message.result);
  }

  // Sends a request; `done` is its result. With `onProgress`, progress comes to it.
  request(method, params = {}, onProgress = undefined) {
    const id = this.nextId++;
    const done = new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, onProgress });
    });
    const meta = onProgress ? { _meta: { progressToken: id } } : {};
    this.#send({ id, method, params: { ...params, ...meta } });
    return { id, done };
  }

  async start() {
    const hello = await this.request("initialize", {
      protocolVersion: "2025-11-25",
      capabilities: {},
      clientInfo: { name: "my-desktop-app", version: "1.0.0" },
    }).done;
    this.#send({ method: "notifications/initialized" });
    return hello;
  }

  // The tool as the model must see it: name, description and input schema.
  async tool() {
    const { tools } = await this.request("tools/list").done;
    return tools[0];
  }

  // Runs code; returns { id, done } so that the app can stop it (cancel(id)).
  run(code, onProgress = undefined) {
    return this.request("tools/call", { name: "run_python", arguments: { code } }, onProgress);
  }

  // The user pressed Stop: the sidecar kills the code's sandbox; no answer will come.
  cancel(id) {
    this.#send({ method: "notifications/cancelled", params: { requestId: id } });
    this.pending.get(id)?.reject(new Error("stopped"));
    this.pending.delete(id);
  }

  // Closing stdin ends the sidecar and every sandbox; SIGTERM if it takes too long.
  async close() {
    this.child.stdin.end();
    const late = setTimeout(() => this.child.kill("SIGTERM"), 5000);
    const code = await this.exited;
    clearTimeout(late);
    return code;
  }
}

async function main() {
  const given = process.argv.slice(2);
  const [command, ...args] = given.length > 0 ? given : ["sandbox-tool", "mcp"];
  const sidecar = new McpSidecar(command, args);
  sidecar.onLog = ({ logger, data }) => process.stdout.write(`[${logger}] ${data}`);
  await sidecar.start();

  const tool = await sidecar.tool(); // give tool.description and tool.inputSchema to the model
  console.log(`tool: ${tool.name}`);

  const code = "import matplotlib.pyplot as plt\nprint('plotting')\nplt.plot([1, 3, 2])\nn = 3\nn";
  const plot = await sidecar.run(code).done;
  const image = plot.content.find((block) => block.type === "image");
  writeFileSync("plot.png", Buffer.from(image.data, "base64"));
  console.log(`result: ${plot.structuredContent.result}, plot.png written`);

  const failed = await sidecar.run("n / 0").done; // the model reads the message and retries
  console.log(`isError: ${failed.isError}: ${failed.content[0].text.split("\n")[1]}`);

  let started;
  const working = new Promise((resolve) => (started = resolve));
  sidecar.onLog = ({ data }) => data.includes("working") && started();
  const long = sidecar.run("import time\nprint('working', flush=True)\ntime.sleep(600)");
  await working;
  sidecar.cancel(long.id);
  await long.done.catch((error) => console.log(`long call: ${error.message}`));

  const after = await sidecar.run("'still here'").done; // a fresh session: the state went
  console.log(`after the stop: ${after.structuredContent.result}`);
  console.log(`sidecar exited with ${await sidecar.close()}`);
}

// run as a script (not imported by the app)
if (import.meta.url === pathToFileURL(process.argv[1]).href) await main();
