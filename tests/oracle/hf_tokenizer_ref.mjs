// Reference token ids from HF's own JavaScript tokenizers
// (@huggingface/tokenizers, the encoder of transformers.js), for
// tests/test_tokjson.c and bench/run.sh.
//
//   node hf_tokenizer_ref.mjs NODE_PREFIX TOKDIR OUT.bin FILE...
//
// NODE_PREFIX is a directory where `npm install --prefix NODE_PREFIX
// @huggingface/tokenizers` has been run. TOKDIR holds tokenizer.json and,
// optionally, tokenizer_config.json. Each FILE is read as UTF-8 (it must be
// valid UTF-8: the encoder takes JavaScript strings) and encoded as HF's
// encode(text) does by default (special tokens in the text recognised, the
// post-processor's BOS added). OUT.bin receives, per file in order, an int32
// count then that many int32 ids (little endian). The encoding time (load
// excluded; CPU seconds) and the token count go to stdout as
// "encode_s=... tokens=...".
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

//
//   node hf_tokenizer_ref.mjs --lines NODE_PREFIX TOKDIR
//
// reads one JSON string per line on stdin and answers each with one line,
// the JSON list of its ids as encode(text, {add_special_tokens: false})
// gives them (as lm-eval's HFLM encodes a request; tests/oracle/mc_ref.py).
const argv = process.argv.slice(2);
const lines = argv[0] === "--lines";
if (lines) argv.shift();
const [prefix, tokdir, out, ...files] = argv;
if (!prefix || !tokdir || (!out && !lines)) {
  console.error("usage: node hf_tokenizer_ref.mjs NODE_PREFIX TOKDIR OUT.bin FILE...\n" +
                "       node hf_tokenizer_ref.mjs --lines NODE_PREFIX TOKDIR");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(prefix), "package.json"));
const { Tokenizer } = require("@huggingface/tokenizers");
const tj = JSON.parse(fs.readFileSync(path.join(tokdir, "tokenizer.json"), "utf8"));
const cp = path.join(tokdir, "tokenizer_config.json");
const cfg = fs.existsSync(cp) ? JSON.parse(fs.readFileSync(cp, "utf8")) : {};
const tok = new Tokenizer(tj, cfg);
if (lines) {
  const { createInterface } = await import("node:readline");
  for await (const l of createInterface({ input: process.stdin })) {
    process.stdout.write(JSON.stringify(tok.encode(JSON.parse(l), { add_special_tokens: false }).ids) + "\n");
  }
  process.exit(0);
}
const dec = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

const texts = files.map((f) => {
  try {
    return dec.decode(fs.readFileSync(f));
  } catch (e) {
    console.error(`${f}: ${e.message}`);
    process.exit(1);
  }
});
const chunks = [];
let total = 0;
// CPU time, not wall time: on a shared machine the wall clock measures the
// neighbours (the encoder is single-threaded; the GC's threads count too).
const c0 = process.cpuUsage();
const all = texts.map((t) => tok.encode(t).ids);
const c1 = process.cpuUsage(c0);
const dt = (c1.user + c1.system) / 1e6;
for (const ids of all) {
  const buf = Buffer.alloc(4 * (ids.length + 1));
  buf.writeInt32LE(ids.length, 0);
  for (let i = 0; i < ids.length; i++) buf.writeInt32LE(ids[i], 4 * (i + 1));
  chunks.push(buf);
  total += ids.length;
}
fs.writeFileSync(out, Buffer.concat(chunks));
console.log(`encode_s=${dt.toFixed(4)} tokens=${total}`);
