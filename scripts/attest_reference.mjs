// An independent check of an attested mevwatch alert, written from docs/attestation.md only:
// RFC 8785 canonical JSON (the `canonicalize` package), keccak-256 (js-sha3), the RFC 9162 audit path,
// and, with --rpc, raw JSON-RPC reads of the registry (no web3 library).
//
// Usage: node scripts/attest_reference.mjs bundle.json [--rpc URL --contract REGISTRY --attester ADDRESS [--at finalized]]
//   bundle = {"alert": record, "proof": proof}, as written by `mevwatch attest proof ALERT_ID`.
//   --contract and --attester are what YOU trust (never taken from the bundle).
// Prints JSON: {"leaf", "root", "inclusion", "scope", "chain"?, "matches"}. Without --rpc the scope is
// "self-consistent only": the alert leads to the proof's root, and nothing says that root is on any chain.
// Exit 0: matches; 1: does not match; 2: malformed bundle or arguments, or the node could not be read.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "contracts", "package.json"));
const canonicalize = require("canonicalize");
const { keccak256 } = require("js-sha3");

const fail = (msg) => { console.log(JSON.stringify({ error: msg })); process.exit(2); };
const HEX32 = /^0x[0-9a-fA-F]{64}$/;
const ADDR = /^0x[0-9a-fA-F]{40}$/;
const hex = (b) => Buffer.from(b).toString("hex");
const bytes32 = (h, what) => { if (typeof h !== "string" || !HEX32.test(h)) fail(`${what} is not 32 bytes of 0x hex`); return Buffer.from(h.slice(2), "hex"); };
const H = (prefix, ...parts) => Buffer.from(keccak256.arrayBuffer(Buffer.concat([Buffer.from([prefix]), ...parts])));

const args = process.argv.slice(2);
const opt = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const file = args.find((a, i) => !a.startsWith("--") && (i === 0 || !args[i - 1].startsWith("--")));
if (!file) fail("usage: attest_reference.mjs bundle.json [--rpc URL --contract ADDRESS --attester ADDRESS [--at TAG]]");
let bundle;
try { bundle = JSON.parse(readFileSync(file, "utf8")); } catch (e) { fail(`cannot read ${file}: ${e.message}`); }
const p = bundle.proof;
if (!p || typeof p !== "object") fail("the bundle has no proof");
if (!Number.isInteger(p.size) || p.size < 1) fail("proof size must be an integer >= 1");
if (!Number.isInteger(p.index)) fail("proof index must be an integer");
if (!Array.isArray(p.path)) fail("proof path must be a list");
const path = p.path.map((s, i) => bytes32(s, `proof path entry ${i}`));
const proofRoot = bytes32(p.root, "proof root");

// 1. the leaf and the audit path (RFC 9162 2.1.3.2), 0 <= index < size
const leaf = H(0x00, Buffer.from(canonicalize(bundle.alert), "utf8"));
let fn = p.index, sn = p.size - 1, r = leaf, inclusion = p.index >= 0 && p.index < p.size;
if (inclusion) {
  for (const s of path) {
    if (sn === 0) { inclusion = false; break; }
    if (fn % 2 === 1 || fn === sn) {
      r = H(0x01, s, r);
      if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = H(0x01, r, s);
    }
    fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
  }
  inclusion = inclusion && sn === 0 && r.equals(proofRoot);
}
const out = { leaf: "0x" + hex(leaf), root: "0x" + hex(r), inclusion };

// 2. the chain: the trusted registry's code, and the trusted attester's batch of this root
const rpc = opt("--rpc");
if (!rpc) {
  out.scope = "self-consistent only: no chain was queried (pass --rpc, --contract and --attester to look the root up)";
  out.matches = inclusion;
  console.log(JSON.stringify(out));
  process.exit(inclusion ? 0 : 1);
}
const contract = opt("--contract"), attester = opt("--attester"), at = opt("--at") ?? "finalized";
if (!contract || !ADDR.test(contract)) fail("--contract: the registry address you trust (0x + 40 hex digits)");
if (!attester || !ADDR.test(attester)) fail("--attester: the attester address you trust (0x + 40 hex digits)");
if (!["finalized", "safe", "latest"].includes(at)) fail("--at must be finalized, safe or latest");

let id = 0;
async function call(method, params) {
  const res = await fetch(rpc, { method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }) });
  const body = await res.json();
  if (body.error) throw new Error(`${method}: ${body.error.message}`);
  return body.result;
}
const selector = (sig) => keccak256(sig).slice(0, 8);
const word = (h) => h.replace(/^0x/, "").toLowerCase().padStart(64, "0");
const num = (n) => BigInt(n).toString(16).padStart(64, "0");
const ethCall = async (sig, ...words) => {
  const data = "0x" + selector(sig) + words.join("");
  const ret = await call("eth_call", [{ to: contract, data }, at]);
  return ret.replace(/^0x/, "");
};
const at64 = (ret, i) => ret.slice(64 * i, 64 * (i + 1));

try {
  const chain = { scope: `registry ${contract} read at the ${at} block`, attester };
  const chainId = Number(BigInt(await call("eth_chainId", [])));
  const code = (await call("eth_getCode", [contract, at])).replace(/^0x/, "");
  const art = JSON.parse(readFileSync(join(root, "monitor", "attest", "artifacts", "AttestationRegistry.json"), "utf8"));
  chain.code_matches = code.length > 0 && keccak256(Buffer.from(code, "hex")) === keccak256(Buffer.from(art.deployedBytecode.slice(2), "hex"));
  chain.chain_id = chainId;
  chain.proof_names_registry = typeof p.contract === "string" && p.contract.toLowerCase() === contract.toLowerCase()
    && p.chain_id === chainId && typeof p.attester === "string" && p.attester.toLowerCase() === attester.toLowerCase();
  const bid = chain.code_matches ? BigInt("0x" + (await ethCall("batchIdOf(address,bytes32)", word(attester), word(p.root)))) : 0n;
  chain.batch_id = Number(bid);
  let ok = chain.code_matches && chain.proof_names_registry && bid > 0n;
  if (bid > 0n) {
    // getBatch returns one dynamic tuple: word 0 is its offset, then root, modelHash, fromBlock, toBlock,
    // count, attestedAt, attester, prevOfAttester, revoked, (uri offset)
    const b = await ethCall("getBatch(uint256)", num(bid));
    const f = (i) => at64(b, 1 + i);
    const batch = { root: "0x" + f(0), from_block: Number(BigInt("0x" + f(2))), to_block: Number(BigInt("0x" + f(3))),
      count: Number(BigInt("0x" + f(4))), attester: "0x" + f(6).slice(24), revoked: BigInt("0x" + f(8)) !== 0n };
    batch.valid = BigInt("0x" + (await ethCall("batchValid(uint256)", num(bid)))) !== 0n;
    const blk = bundle.alert.block_number;
    chain.batch = batch;
    ok = ok && batch.root === p.root.toLowerCase() && batch.attester === attester.toLowerCase() && batch.count === p.size
      && Number.isInteger(blk) && batch.from_block <= blk && blk <= batch.to_block && batch.valid;
  }
  out.scope = "on chain";
  out.chain = chain;
  out.matches = inclusion && ok;
} catch (e) {
  fail(`reading the chain: ${e.message}`);
}
console.log(JSON.stringify(out));
process.exit(out.matches ? 0 : 1);
