#!/bin/sh
# pretrain: SIGKILL mid-run, resume, and get exactly the model of an
# uninterrupted run (same seed, same threads). Prints TAP-style lines.
. "$(dirname "$0")/clilib.sh"

"$FL" pretrain --preset micro --steps 120 --threads 2 --out "$T/a" >"$T/a.log" 2>&1 && ok "uninterrupted micro run" || { notok "uninterrupted micro run: $(tail -1 "$T/a.log")"; exit 1; }
grep -q '"unigram_val_ppl"' "$T/a/freelunch.json" && ok "freelunch.json records the unigram baseline" || notok "no unigram baseline"
[ ! -e "$T/a/ckpt" ] && ok "checkpoints removed after a finished run" || notok "ckpt left behind"

# the second run reuses the tokenizer and token files, so it starts at once
mkdir -p "$T/b" && cp -r "$T/a/vocab.json" "$T/a/merges.txt" "$T/a/data" "$T/b/"
"$FL" pretrain --preset micro --steps 120 --threads 2 --out "$T/b" >"$T/b.log" 2>&1 &
pid=$!
i=0
while [ ! -e "$T/b/ckpt/state.json" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
if [ -e "$T/b/freelunch.json" ]; then notok "the run finished before it could be killed"; exit 1; fi
[ -e "$T/b/ckpt/state.json" ] && ok "killed after checkpoint $(cat "$T/b/ckpt/state.json" | tr -d '\n ')" || { notok "no checkpoint written"; exit 1; }
"$FL" pretrain --preset micro --steps 120 --threads 2 --out "$T/b" --resume >"$T/r.log" 2>&1 && ok "resumed run finished" || notok "resume failed: $(tail -1 "$T/r.log")"
grep -q "resumed from" "$T/r.log" && ok "it resumed rather than restarted" || notok "did not resume"
cmp -s "$T/a/model.safetensors" "$T/b/model.safetensors" && ok "resumed model is bit-identical to the uninterrupted one" || notok "resumed model differs"
"$FL" pretrain --preset micro --out "$T/a" >"$T/c.log" 2>&1 && grep -q "already holds" "$T/c.log" && ok "a finished model is reused" || notok "finished model not reused"
# an output directory whose name holds a quote and a command substitution:
# the checkpoints' removal must not hand it to a shell (it once did, as
# system("rm -rf '...'")). Two checkpoints (steps 20 and 40) exercise the
# swap's removal of ckpt.old, the end of the run the removal of both.
q="q'\$(touch PWNED)'x"
fl=$(cd "$(dirname "$FL")" && pwd)/$(basename "$FL")
( cd "$T" && "$fl" pretrain --preset micro --steps 45 --threads 2 --out "$q" ) >"$T/q.log" 2>&1 && ok "a run into a directory named with a quote finished" || notok "quoted --out: $(tail -1 "$T/q.log")"
[ ! -e "$T/PWNED" ] && ok "nothing in the directory's name ran as a command" || notok "the directory's name ran as a command"
[ -e "$T/$q/freelunch.json" ] && [ ! -e "$T/$q/ckpt" ] && [ ! -e "$T/$q/ckpt.old" ] && ok "its checkpoints were removed" || notok "checkpoints left in the quoted directory"
echo "# $n checks"
exit $bad
