// js-tiktoken's encode speed on a text file, for bench/bench_tokenizer.c.
//
//   node tiktoken_bench.mjs NODE_PREFIX FILE [SECONDS]
//
// NODE_PREFIX holds `npm install --prefix NODE_PREFIX js-tiktoken`. Encodes
// the whole of FILE (UTF-8) with the gpt2 encoding, special tokens as text,
// after a warm-up on its first MB; repeats until SECONDS (default 4) have
// passed, at least once. Prints one line:
//   RESULT tokenizer js-tiktoken mb_s=X tokens=N bytes=B reps=R hash=H
// with the median MB/s (MB = 1e6 bytes) and H a 32-bit FNV-1a hash over the ids (one id a step)
// (the same hash bench_tokenizer.c computes, to check the ids agree).
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const [prefix, file, secs] = process.argv.slice(2);
if (!prefix || !file) {
  console.error("usage: node tiktoken_bench.mjs NODE_PREFIX FILE [SECONDS]");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(prefix), "package.json"));
const { Tiktoken } = require("js-tiktoken/lite");
const gpt2 = require("js-tiktoken/ranks/gpt2");
const enc = new Tiktoken(gpt2.default ?? gpt2);
const buf = fs.readFileSync(file);
const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(buf);
const budget = 1000 * Number(secs ?? 4);

enc.encode(text.slice(0, 1000000), [], []); // warm-up
const rates = [];
let ids = null;
const start = performance.now();
do {
  const t0 = performance.now();
  ids = enc.encode(text, [], []);
  rates.push(buf.length / 1e6 / ((performance.now() - t0) / 1000));
} while (performance.now() - start < budget);
rates.sort((a, b) => a - b);
let h = 0x811c9dc5;
for (const id of ids) h = Math.imul(h ^ id, 16777619) >>> 0;
console.log(`RESULT tokenizer js-tiktoken mb_s=${rates[rates.length >> 1].toFixed(3)} tokens=${ids.length} ` +
            `bytes=${buf.length} reps=${rates.length} hash=${h.toString(16)}`);
