// A warm promptfoo: loads promptfoo's module graph ahead of time, then runs exactly ONE job as
// `node <entry> <argv>` would, and exits. Started by steps/promptfoo_warm.py (the run's broker).
//
// Usage: node promptfoo_warm_shim.mjs <entry.js> <socket>
//
// What it relies on in promptfoo 0.123.1 (dist/src):
// * entrypoint.js checks the Node version, sets process.argv[1] to main.js and `await import("./main.js")`.
// * main.js runs `main()` only when `isMainModule(import.meta.url, process.argv[1])`, i.e. when
//   realpath(main.js) === realpath(argv[1]). Importing `main.js?promptci-warm` while argv[1] is the
//   entry evaluates main.js's whole static graph (every chunk and package) WITHOUT running the CLI;
//   that copy of main.js is never used again. The job then imports entrypoint.js for real: it
//   imports the plain `./main.js` URL, not yet evaluated, so main.js's top level (isMainModule,
//   main()) runs once, with the job's argv, env and cwd, on the already-evaluated chunks.
// * Some chunks read env, cwd and argv at evaluation time (e.g. logger's PROMPTFOO_CONFIG_DIR and
//   LOG_LEVEL, cache's PROMPTFOO_CACHE_TYPE, dotenv.config() reading <cwd>/.env, chalk's colour
//   flags). Those reads are recorded during the preload; the job is DECLINED (the caller runs it
//   cold) unless the job's env equals the preload's on every key read, and on the keys Node reads
//   at its own start.
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [entryArg, socketPath] = process.argv.slice(2);
const entry = path.resolve(entryArg);
const realEnv = process.env;
const realCwd = process.cwd;
const realArgv = process.argv;
const startEnv = { ...realEnv };

// Keys Node itself reads when it starts (not through process.env): they must match the job's.
const STARTUP_KEY = /^(NODE_|UV_|OPENSSL_|SSL_CERT_|LC_)|^(LANG|LANGUAGE|TZ)$/;
// Flags colour detectors scan argv for at import (chalk's supports-color, @colors/colors has-flag).
const COLOR_FLAG = /^--(no-)?colou?rs?(=|$)/;
// The one env enumeration allowed at import: the `debug` package collects DEBUG_* options.
const DEBUG_KEY = /^debug_/i;

const reads = new Set();
const writes = new Set();
const enumerations = [];
let listed = [];
let cwdRead = false;
let recording = true;
const caller = () => (new Error().stack || "").split("\n").slice(3, 6).join(" ").trim();

process.env = new Proxy(realEnv, {
  get(t, k) { if (recording && typeof k === "string") reads.add(k); return Reflect.get(t, k); },
  has(t, k) { if (recording && typeof k === "string") reads.add(k); return Reflect.has(t, k); },
  getOwnPropertyDescriptor(t, k) {
    // Object.keys() asks for each key's descriptor right after ownKeys(): part of the enumeration.
    if (listed[0] === k) listed.shift();
    else if (recording && typeof k === "string") reads.add(k);
    return Reflect.getOwnPropertyDescriptor(t, k);
  },
  ownKeys(t) {
    const keys = Reflect.ownKeys(t);
    if (recording) { enumerations.push(caller()); listed = [...keys]; }
    return keys;
  },
  set(t, k, v) { if (recording && typeof k === "string") writes.add(k); return Reflect.set(t, k, v); },
  deleteProperty(t, k) { if (recording && typeof k === "string") writes.add(k); return Reflect.deleteProperty(t, k); },
});
process.cwd = function cwd() { if (recording) cwdRead = true; return realCwd.call(process); };
// argv at import time: [node, entry] (argv[1] must not be main.js, or main() would run).
process.argv = [realArgv[0], entry];

let preloadError = null;
try {
  await import(new URL("./main.js", pathToFileURL(entry)).href + "?promptci-warm");
} catch (err) {
  preloadError = String(err && err.stack || err);
}
recording = false;
const warmEnv = { ...realEnv };
process.env = realEnv;
process.cwd = realCwd;
const preloadCwd = realCwd.call(process);

/** Return why ``job`` cannot run in this process exactly as it would cold, or null. */
function declineReason(job) {
  if (preloadError) return `preload failed: ${preloadError.split("\n")[0]}`;
  if (fs.fstatSync(1).size || fs.fstatSync(2).size) return "the preload wrote output";
  const unknown = enumerations.filter((where) => !/node_modules\/(.*\/)?debug\/src\/node\.js:/.test(where));
  if (unknown.length) return `env enumerated at import (${unknown[0]})`;
  const env = job.env;
  const keys = new Set([...reads, ...Object.keys(env), ...Object.keys(startEnv)]);
  for (const k of keys) {
    const checked = reads.has(k) || STARTUP_KEY.test(k) || (enumerations.length && DEBUG_KEY.test(k));
    if (checked && env[k] !== startEnv[k]) return `env ${k} differs from the preload's`;
  }
  for (const k of writes) if (!reads.has(k)) return `env ${k} written at import without being read`;
  const args = job.argv.slice(0, job.argv.indexOf("--") >>> 0);
  if (args.some((a) => COLOR_FLAG.test(a))) return "a colour flag in argv";
  // dotenv.config() at import reads <cwd>/.env: only a cwd without one behaves the same.
  if (cwdRead && fs.existsSync(path.join(job.cwd, ".env")) !== fs.existsSync(path.join(preloadCwd, ".env"))) {
    return "a .env in the job's directory";
  }
  return null;
}

/** Return the one job the broker sends: a JSON line {argv, cwd, env}; exit quietly on EOF. */
function readJob() {
  return new Promise((resolve) => {
    const sock = net.createConnection(socketPath);
    let buf = "";
    sock.setEncoding("utf8");
    sock.on("data", (chunk) => {
      buf += chunk;
      const nl = buf.indexOf("\n");
      if (nl >= 0) resolve({ sock, job: JSON.parse(buf.slice(0, nl)) });
    });
    sock.on("error", () => process.exit(3));
    sock.on("end", () => { if (buf.indexOf("\n") < 0) process.exit(3); });
    sock.write(JSON.stringify({ ready: true, pid: process.pid }) + "\n");
  });
}

const { sock, job } = await readJob();
const reason = declineReason(job);
if (reason) {
  sock.end(JSON.stringify({ accepted: false, reason }) + "\n", () => process.exit(3));
} else {
  await new Promise((resolve) => sock.end(JSON.stringify({ accepted: true }) + "\n", resolve));
  sock.destroy();
  // The job's env exactly: every key replaced; values the preload's imports wrote (from keys it read,
  // equal to the job's) are written again, as those imports would have written them cold.
  for (const k of Object.keys(realEnv)) if (!(k in job.env)) delete realEnv[k];
  for (const [k, v] of Object.entries(job.env)) realEnv[k] = v;
  for (const k of writes) {
    if (warmEnv[k] === undefined) delete realEnv[k];
    else realEnv[k] = warmEnv[k];
  }
  process.chdir(job.cwd);
  process.argv = [realArgv[0], entry, ...job.argv];
  await import(pathToFileURL(entry).href);
}
