// Reference token ids from js-tiktoken's gpt2 encoding, for tests/test_bpe.c.
//
//   node tiktoken_ref.mjs NODE_PREFIX OUT.bin FILE...
//
// NODE_PREFIX is a directory where `npm install --prefix NODE_PREFIX
// js-tiktoken` has been run (js-tiktoken's gpt2 ranks are bundled in the
// package: "js-tiktoken/ranks/gpt2"). Each FILE is read as UTF-8 (it must be
// valid UTF-8: js-tiktoken encodes JavaScript strings) and encoded with
// special tokens treated as plain text, as freelunch does. OUT.bin receives,
// per file in order, an int32 count then that many int32 ids (little endian).
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const [prefix, out, ...files] = process.argv.slice(2);
if (!prefix || !out) {
  console.error("usage: node tiktoken_ref.mjs NODE_PREFIX OUT.bin FILE...");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(prefix), "package.json"));
const { Tiktoken } = require("js-tiktoken/lite");
const gpt2 = require("js-tiktoken/ranks/gpt2");
const enc = new Tiktoken(gpt2.default ?? gpt2);
const dec = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

const chunks = [];
for (const f of files) {
  let text;
  try {
    text = dec.decode(fs.readFileSync(f));
  } catch (e) {
    console.error(`${f}: ${e.message}`);
    process.exit(1);
  }
  const ids = enc.encode(text, [], []);
  const buf = Buffer.alloc(4 * (ids.length + 1));
  buf.writeInt32LE(ids.length, 0);
  for (let i = 0; i < ids.length; i++) buf.writeInt32LE(ids[i], 4 * (i + 1));
  chunks.push(buf);
}
fs.writeFileSync(out, Buffer.concat(chunks));
