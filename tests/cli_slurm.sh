#!/bin/sh
# freelunch study --engine slurm on a real one-node SLURM cluster started
# here (munged, slurmctld, slurmd; a generated slurm.conf in a temporary
# directory, ports picked free, no accounting database): a 6-cell micro grid
# with the same perplexities as the local engine, an array cancelled after
# two cells (collect records the rest as failed; a re-run resubmits exactly
# those), and a task whose process is killed (a failed row with SLURM's
# state). Every daemon it started is stopped by pid whatever happens.
# Prints TAP-style lines.
. "$(dirname "$0")/clilib.sh"
# the cells' rows (the dense reference rows, role dense, run by the study
# itself before submitting, are not cells: rows, col and table leave them out)
rows() { /usr/bin/python3 -c "import csv,sys
try: print(sum(r.get('role') != 'dense' for r in csv.DictReader(open(sys.argv[1]))))
except Exception: print(0)" "$1"; }
# "# cell_id status wall_s ppl message" per row, for the log
table() { /usr/bin/python3 -c "import csv,sys; [print('#', r['cell_id'], r['criterion'], r['reconstruct'], r['status'], r['wall_s'] or '-', r['ppl'] or '-', r['message']) for r in csv.DictReader(open(sys.argv[1])) if r.get('role') != 'dense']" "$1"; }
col() { /usr/bin/python3 -c "import csv,sys,signal; signal.signal(signal.SIGPIPE, signal.SIG_DFL); [print(r[sys.argv[2]]) for r in csv.DictReader(open(sys.argv[1])) if r.get('role') != 'dense']" "$1" "$2"; }
FL=$(cd "$(dirname "$FL")" && pwd)/$(basename "$FL")   # array tasks run it from elsewhere

for c in munged slurmctld slurmd sbatch squeue scancel scontrol; do
  command -v $c >/dev/null 2>&1 || PATH=$PATH:/usr/sbin:/sbin
  command -v $c >/dev/null 2>&1 || { notok "$c is not installed (make deps installs slurm-wlm and munge)"; exit 1; }
done

# ---- the cluster -----------------------------------------------------------
C="$T/cluster"
mkdir -p "$C/munge" "$C/spool" "$C/state" "$C/log"
chmod 700 "$C/munge"
pids=""
stop_cluster() {
  if [ -n "$pids" ]; then
    # no job outlives the test: cancel ours, give slurmstepd a moment, then the daemons
    SLURM_CONF="$C/slurm.conf" scancel --user "$(id -un)" >/dev/null 2>&1
    i=0
    while [ $i -lt 50 ] && [ -n "$(SLURM_CONF="$C/slurm.conf" squeue -h 2>/dev/null)" ]; do sleep 0.2; i=$((i + 1)); done
    for p in $pids; do kill "$p" 2>/dev/null; done
    for p in $pids; do
      i=0
      while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
      kill -9 "$p" 2>/dev/null
    done
  fi
  rm -rf "$T"
}
trap stop_cluster EXIT
trap 'exit 1' INT TERM HUP

# a generated key: this cluster trusts no other
dd if=/dev/urandom of="$C/munge/key" bs=1024 count=1 2>/dev/null
chmod 400 "$C/munge/key"
# -f: munged refuses a socket directory under a world-writable /tmp otherwise
munged -F -f --key-file="$C/munge/key" --socket="$C/munge/sock" --pid-file="$C/munge/pid" --seed-file="$C/munge/seed" \
  --log-file="$C/log/munged.log" >"$C/log/munged.out" 2>&1 &
pids="$pids $!"
# two ports nobody listens on (other tests may run their own cluster alongside)
ports=$(/usr/bin/python3 -c "
import socket
s=[socket.socket() for _ in range(2)]
for x in s: x.bind(('127.0.0.1',0))
print(*[x.getsockname()[1] for x in s])")
set -- $ports
mem=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
cat >"$C/slurm.conf" <<EOF
ClusterName=fl$$
SlurmctldHost=localhost
SlurmctldPort=$1
SlurmdPort=$2
AuthType=auth/munge
AuthInfo=socket=$C/munge/sock
CredType=cred/munge
SlurmUser=$(id -un)
SlurmdUser=$(id -un)
StateSaveLocation=$C/state
SlurmdSpoolDir=$C/spool
SlurmctldPidFile=$C/slurmctld.pid
SlurmdPidFile=$C/slurmd.pid
SlurmctldLogFile=$C/log/slurmctld.log
SlurmdLogFile=$C/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
MinJobAge=3600
KillWait=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$mem State=UNKNOWN
PartitionName=fl Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$C/slurm.conf"
i=0
while [ ! -S "$C/munge/sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
slurmctld -D -f "$C/slurm.conf" >"$C/log/slurmctld.out" 2>&1 &
pids="$pids $!"
slurmd -D -N localhost -f "$C/slurm.conf" >"$C/log/slurmd.out" 2>&1 &
pids="$pids $!"
i=0
while [ "$(sinfo -h -o %T 2>/dev/null)" != idle ] && [ $i -lt 150 ]; do sleep 0.2; i=$((i + 1)); done
if [ "$(sinfo -h -o %T 2>/dev/null)" = idle ]; then ok "a one-node SLURM cluster is up (ports $1, $2)"; else
  notok "the SLURM cluster did not come up: $(sinfo 2>&1 | tail -1); $(tail -3 "$C/log/slurmctld.log" "$C/log/slurmd.log" "$C/log/munged.log" 2>&1 | tr '\n' ' ')"
  exit 1
fi

# ---- the grid ----------------------------------------------------------------
"$FL" pretrain --preset micro --steps 30 --threads 2 --out "$T/m" >"$T/m.log" 2>&1 && ok "micro base model" || { notok "micro base model: $(tail -1 "$T/m.log")"; exit 1; }
cat >"$T/grid.ini" <<EOF
[grid]
criterion   = magnitude, wanda
reconstruct = none, sublayer, block
[fixed]
model         = $T/m
sparsity      = 0.5
calib-samples = 4
eval          = sotu-test
eval-windows  = 2
EOF
# a results directory whose path needs quoting in a shell script
O="$T/out dir 'q' \$(x)"
SL="--engine slurm --slurm-opt=--cpus-per-task=1 --slurm-poll 1"

"$FL" study --grid "$T/grid.ini" --out "$O" $SL --dry-run >"$T/dry.log" 2>&1
check "dry run prints an sbatch script of 6 array tasks" \
  "grep -q '^#SBATCH --array=0-5\$' '$T/dry.log' && [ \$(grep -c '^[0-9]) # cell [0-9a-f]\{12\}\$' '$T/dry.log') -eq 6 ]"
check "dry run submits nothing" "[ ! -e \"\$O/slurm\" ] && [ -z \"\$(squeue -h)\" ]"
# the script as sh sees it: task 3 gets the cell directory and the prune command, quotes intact
sed -n '/^#!/,$p' "$T/dry.log" | sed 's/^exec .*/printf "%s\\n" "$dir" "$@"/' >"$T/show.sh"
SLURM_ARRAY_TASK_ID=3 SLURM_CPUS_PER_TASK=1 sh "$T/show.sh" >"$T/show.out" 2>&1
quoting_ok() {
  d=$(sed -n 1p "$T/show.out")
  case "$d" in "$O/cells/"*) ;; *) return 1 ;; esac
  [ "$(sed -n 2p "$T/show.out")" = prune ] && [ "$(grep -A1 -x -- --out "$T/show.out" | tail -1)" = "$d" ]
}
check "the script's quoting survives a hostile path" quoting_ok
check "threads come from SLURM_CPUS_PER_TASK" "grep -A1 -x -- --threads '$T/show.out' | tail -1 | grep -qx 1"
expect 2 "need --engine slurm" "--detach without --engine slurm is refused" "$FL" study --grid "$T/grid.ini" --out "$T/x" --detach
expect 2 "an sbatch option" "a --slurm-opt that is not an option is refused" "$FL" study --grid "$T/grid.ini" --out "$T/x" --engine slurm --slurm-opt "x; rm -rf /"

# 1. the whole grid, two tasks at a time, waited for
t0=$(date +%s)
"$FL" study --grid "$T/grid.ini" --out "$O" $SL --slurm-array-max 2 >"$T/run.log" 2>&1
rc=$?
t1=$(date +%s)
check "slurm study exits 0 ($((t1 - t0)) s)" "[ $rc -eq 0 ]"
check "6 rows, every one ok" "[ $(rows "$O/results.csv") -eq 6 ] && [ \"\$(col \"\$O/results.csv\" status | sort -u)\" = ok ]"
check "every row has a perplexity and its mask hash" \
  "! col \"\$O/results.csv\" ppl | grep -qv '^[0-9]' && [ \$(col \"\$O/results.csv\" mask_sha256 | grep -cx '[0-9a-f]\{64\}') -eq 6 ]"
check "one submission of 6 array tasks recorded" \
  "[ \$(grep -vc '^#' \"\$O/slurm/submissions.tsv\") -eq 6 ] && [ \$(grep -v '^#' \"\$O/slurm/submissions.tsv\" | cut -f1 | sort -u | wc -l) -eq 1 ]"
check "each task ran its cell with one thread (SLURM_CPUS_PER_TASK)" "[ \"\$(col \"\$O/results.csv\" threads | sort -u)\" = 1 ]"
check "each cell keeps its log headed by its prune command" \
  "[ \$(head -qn1 \"\$O\"/cells/*/log | grep -c '^freelunch prune ') -eq 6 ]"
check "progress lines while waiting" "grep -q '^slurm: [0-9]/6 cells done' '$T/run.log'"
check "report written" "[ -s \"\$O/report.md\" ]"
# the same cells on the local engine: the same perplexities
"$FL" study --grid "$T/grid.ini" --out "$T/local" --set threads=1 --jobs 2 >"$T/local.log" 2>&1
for f in "$O/results.csv" "$T/local/results.csv"; do
  /usr/bin/python3 -c "
import csv,sys
for r in sorted((r for r in csv.DictReader(open(sys.argv[1])) if r.get('role') != 'dense'), key=lambda r: (r['criterion'], r['reconstruct'])): print(r['criterion'], r['reconstruct'], r['ppl'], r['mask_sha256'])" "$f"
done >"$T/both.txt"
check "the same ppl and masks as the local engine, cell by cell" \
  "[ \$(wc -l <'$T/both.txt') -eq 12 ] && [ \"\$(head -6 '$T/both.txt')\" = \"\$(tail -6 '$T/both.txt')\" ]"
echo "# the grid on SLURM ($((t1 - t0)) s):"; table "$O/results.csv"
cp "$O/results.csv" "$T/r1.csv"
"$FL" study --grid "$T/grid.ini" --out "$O" $SL >"$T/again.log" 2>&1
check "a re-run submits nothing and changes no row" \
  "grep -q '^slurm: 0 cells to submit' '$T/again.log' && [ \$(grep -vc '^#' \"\$O/slurm/submissions.tsv\") -eq 6 ] && [ \"\$(col '$T/r1.csv' finished_at)\" = \"\$(col \"\$O/results.csv\" finished_at)\" ]"

echo "# $(( $(date +%s) - t0 )) s since the grid started"
# 2. cancel the array after two cells; collect; a re-run resubmits exactly those
O2="$T/cancel"
S2="--set reconstruct=none,sublayer"   # 4 cells: two finish, two are cancelled
"$FL" study --grid "$T/grid.ini" --out "$O2" $SL $S2 --slurm-array-max 1 --detach >"$T/c1.log" 2>&1
check "--detach returns after submitting" "[ $? -eq 0 ] && grep -q '^slurm: submitted job' '$T/c1.log' && [ \$(rows '$O2/results.csv') -eq 0 ]"
job=$(grep -v '^#' "$O2/slurm/submissions.tsv" | cut -f1 | sort -u)
i=0
while [ "$(ls "$O2"/cells/*/task.status 2>/dev/null | wc -l)" -lt 2 ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
scancel "$job"
i=0
while [ -n "$(squeue -h -j "$job" 2>/dev/null)" ] && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
nok=$(grep -l '^status 0$' "$O2"/cells/*/task.status 2>/dev/null | wc -l)
"$FL" study --collect --out "$O2" >"$T/c2.log" 2>&1
check "collect exits 0" "[ $? -eq 0 ]"
ncan=$(col "$O2/results.csv" message | grep -c '^SLURM CANCELLED')
check "collect: $nok cells ok, the $ncan cancelled ones failed rows with SLURM's state" \
  "[ $(rows "$O2/results.csv") -eq 4 ] && [ $nok -ge 2 ] && [ $ncan -ge 1 ] && [ \$(col '$O2/results.csv' status | grep -cx ok) -eq $nok ] && [ $ncan -eq $((4 - nok)) ] && [ \$(col '$O2/results.csv' status | grep -cx error) -eq $ncan ]"
echo "# after scancel and --collect:"; table "$O2/results.csv"
cp "$O2/results.csv" "$T/c2.csv"
"$FL" study --collect --out "$O2" >"$T/c3.log" 2>&1
check "collecting again adds nothing" "[ $? -eq 0 ] && cmp -s '$T/c2.csv' '$O2/results.csv'"
# another merger holding the study's lock (one process, so killing it frees the lock)
/usr/bin/python3 -c "import fcntl,sys,time; f=open(sys.argv[1]); fcntl.flock(f, fcntl.LOCK_EX); open(sys.argv[2],'w').close(); time.sleep(60)" "$O2/.lock" "$T/locked" &
lockpid=$!
i=0
while [ ! -e "$T/locked" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
expect 1 "another study is running" "two merges at once are refused" "$FL" study --collect --out "$O2"
kill $lockpid; wait $lockpid 2>/dev/null
col "$O2/results.csv" cell_id >"$T/ids"
col "$O2/results.csv" status | paste "$T/ids" - | awk '$2 != "ok" {print $1}' | sort >"$T/cancelled"
"$FL" study --grid "$T/grid.ini" --out "$O2" $SL $S2 >"$T/c4.log" 2>&1
rc=$?
check "the re-run exits 0" "[ $rc -eq 0 ]"
[ $rc -eq 0 ] || sed 's/^/# /' "$T/c4.log"
check "it resubmits exactly the $ncan cancelled cells" \
  "grep -q \"^slurm: $ncan cells to submit ($ncan failed before, 0 never run)\" '$T/c4.log' && [ \"\$(grep -v '^#' '$O2/slurm/submissions.tsv' | tail -n $ncan | cut -f3 | sort)\" = \"\$(cat '$T/cancelled')\" ]"
echo "# after the re-run:"; table "$O2/results.csv"
check "every cell exactly once, every one ok" \
  "[ $(rows "$O2/results.csv") -eq 4 ] && [ \$(col '$O2/results.csv' cell_id | sort -u | wc -l) -eq 4 ] && [ \"\$(col '$O2/results.csv' status | sort -u)\" = ok ]"

echo "# $(( $(date +%s) - t0 )) s since the grid started"
# 3. a task whose cell process is killed becomes a failed row
O3="$T/kill"
"$FL" study --grid "$T/grid.ini" --out "$O3" $SL --set criterion=wanda --set reconstruct=block --set calib-samples=64 \
  --set eval-windows=64 --detach >"$T/k1.log" 2>&1
# the cell's own process (not its wrapper, whose command line holds it too): found by its unique path, killed by pid
victim=""
i=0
while [ -z "$victim" ] && [ $i -lt 600 ]; do
  victim=$(pgrep -f "^freelunch prune .*--out $O3/cells/" | head -1)
  [ -n "$victim" ] || sleep 0.1
  i=$((i + 1))
done
[ -n "$victim" ] && kill -9 "$victim"
i=0
while [ -n "$(squeue -h 2>/dev/null)" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
"$FL" study --collect --out "$O3" >"$T/k2.log" 2>&1
check "a killed task's cell is a failed row with SLURM's state and the signal" \
  "[ -n '$victim' ] && [ $(rows "$O3/results.csv") -eq 1 ] && [ \"\$(col '$O3/results.csv' status)\" = error ] && col '$O3/results.csv' message | grep -q '^SLURM FAILED (task [0-9]*_0, exit code 137:0): killed by signal 9'"
echo "# the killed task:"; table "$O3/results.csv"
cp "$O3/results.csv" "$T/k.csv"
expect 1 "sbatch failed (exit 1): .*[Pp]artition" "a refused sbatch is one error line" \
  "$FL" study --grid "$T/grid.ini" --out "$O3" $SL --set criterion=wanda --set reconstruct=block --set calib-samples=64 \
  --set eval-windows=64 --slurm-opt=--partition=nosuchpartition --detach
check "... and leaves results.csv and the submissions as they were" \
  "cmp -s '$T/k.csv' '$O3/results.csv' && [ \$(grep -vc '^#' '$O3/slurm/submissions.tsv') -eq 1 ]"
printf '12\t0\tnot-a-cell-id\n' >>"$O3/slurm/submissions.tsv"
expect 1 "submissions.tsv:3: not a submission line" "a corrupt submissions.tsv is one error line naming it" \
  "$FL" study --collect --out "$O3"
sed -i '$d' "$O3/slurm/submissions.tsv"
# a job of this study that submissions.tsv never recorded (a study killed right after sbatch): nothing is submitted over it
name=$(sed -n 's/^#SBATCH --job-name=//p' "$O3"/slurm/*.sh | head -1)
lost=$(sbatch --parsable --job-name="$name" --output=/dev/null --wrap "sleep 60")
expect 1 "SLURM job $lost (named $name, this study's) is queued but not in" "a queued job of this study missing from submissions.tsv blocks submitting" \
  "$FL" study --grid "$T/grid.ini" --out "$O3" $SL --set criterion=wanda --set reconstruct=block --set calib-samples=64 \
  --set eval-windows=64 --detach
check "... and nothing was submitted" "[ \$(grep -vc '^#' '$O3/slurm/submissions.tsv') -eq 1 ]"
scancel "$lost"
exit $bad
