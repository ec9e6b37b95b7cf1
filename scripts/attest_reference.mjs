// An independent check of an attested mevwatch alert, written from docs/attestation.md only:
// RFC 8785 canonical JSON (the `canonicalize` package), keccak-256 (js-sha3), the RFC 9162 audit path.
// Usage: node scripts/attest_reference.mjs bundle.json   (bundle = {"alert": record, "proof": proof},
// as written by `mevwatch attest proof ALERT_ID`). Prints {"leaf", "root", "matches"} as JSON.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const require = createRequire(join(root, "contracts", "package.json"));
const canonicalize = require("canonicalize");
const { keccak256 } = require("js-sha3");

const hex = (b) => Buffer.from(b).toString("hex");
const bytes = (h) => Buffer.from(h.replace(/^0x/, ""), "hex");
const H = (prefix, ...parts) => Buffer.from(keccak256.arrayBuffer(Buffer.concat([Buffer.from([prefix]), ...parts])));

const bundle = JSON.parse(readFileSync(process.argv[2], "utf8"));
const leaf = H(0x00, Buffer.from(canonicalize(bundle.alert), "utf8"));
const p = bundle.proof;
let fn = p.index, sn = p.size - 1, r = leaf, ok = p.index < p.size;
for (const s of p.path.map(bytes)) {
  if (sn === 0) { ok = false; break; }
  if (fn % 2 === 1 || fn === sn) {
    r = H(0x01, s, r);
    if (fn % 2 === 0) while (fn % 2 === 0 && fn !== 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
  } else {
    r = H(0x01, r, s);
  }
  fn = Math.floor(fn / 2); sn = Math.floor(sn / 2);
}
ok = ok && sn === 0 && "0x" + hex(r) === p.root.toLowerCase();
console.log(JSON.stringify({ leaf: "0x" + hex(leaf), root: "0x" + hex(r), matches: ok }));
