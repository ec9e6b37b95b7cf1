// Compiles contracts/src/*.sol with the pinned npm solc (contracts/package.json) and writes
// <dir>/<Contract>.json (shipped with the Python package) = {contract, abi, bytecode, deployedBytecode, compiler, settings}:
// the attestation registry goes to monitor/attest/artifacts (the product uses it), the lab's
// contracts to sim/artifacts.
// Reproducible: same sources + same solc + same settings give byte-identical output
// (sources are keyed by file name; the metadata hash is left out of the bytecode).
// Usage: node scripts/build_contracts.mjs [--out DIR]   (--out: every artifact into DIR, for comparison)
import { createRequire } from "node:module";
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "contracts", "package.json"));
const solc = require("solc");

const outIdx = process.argv.indexOf("--out");
const outAll = outIdx > 0 ? process.argv[outIdx + 1] : null;
const PRODUCT = new Set(["AttestationRegistry"]);
const outDirOf = (name) =>
  outAll ?? (PRODUCT.has(name) ? join(root, "monitor", "attest", "artifacts") : join(root, "sim", "artifacts"));
const srcDir = join(root, "contracts", "src");

const settings = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
  metadata: { bytecodeHash: "none" },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};
const sources = {};
for (const f of readdirSync(srcDir).filter((f) => f.endsWith(".sol")).sort()) {
  sources[f] = { content: readFileSync(join(srcDir, f), "utf8") };
}
const output = JSON.parse(solc.compile(JSON.stringify({ language: "Solidity", sources, settings }), {
  import: (path) => {
    try {
      return { contents: readFileSync(join(srcDir, path.replace(/^\.\//, "")), "utf8") };
    } catch {
      return { error: `not found: ${path}` };
    }
  },
}));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

const names = [];
for (const file of Object.keys(output.contracts).sort()) {
  for (const [name, c] of Object.entries(output.contracts[file]).sort()) {
    if (!c.evm.bytecode.object) continue; // interfaces
    const artifact = {
      contract: name,
      source: file,
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
      compiler: solc.version(),
      settings: { optimizer: settings.optimizer, evmVersion: settings.evmVersion, metadata: settings.metadata },
    };
    mkdirSync(outDirOf(name), { recursive: true });
    writeFileSync(join(outDirOf(name), `${name}.json`), JSON.stringify(artifact, null, 1) + "\n");
    names.push(name);
  }
}
console.log(`compiled ${names.join(", ")} with solc ${solc.version()} -> ${outAll ?? "sim/artifacts, monitor/attest/artifacts"}`);
