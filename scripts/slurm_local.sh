#!/usr/bin/env bash
# A single-node Slurm cluster on localhost, for CI (Debian slurm-wlm 22.05 + munge, as root,
# no systemd). Usage: scripts/slurm_local.sh start DIR | stop DIR
# After start, `export SLURM_CONF=DIR/slurm.conf` makes sbatch/squeue/sacct use it.
set -euo pipefail
cmd=${1:?start or stop}
dir=$(realpath -m "${2:?state folder}")

alive() {  # a pid file's process exists and is not a zombie
  local pidfile=$1
  [ -s "$pidfile" ] || return 1
  local pid state
  pid=$(cat "$pidfile")
  state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
  [ -n "$state" ] && [ "$state" != "Z" ]
}

if [ "$cmd" = start ]; then
  mkdir -p "$dir"/{state,spool,log} /run/munge /var/log/munge /var/lib/munge /etc/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  if ! pgrep -x munged > /dev/null; then
    su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/munged.pid"
  fi
  cpus=$(nproc)
  mem=$(awk '/MemAvailable/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
  cat > "$dir/slurm.conf" <<CONF
ClusterName=swigapp-ci
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$dir/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerParameters=batch_sched_delay=0
DependencyParameters=kill_invalid_depend
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$dir/slurm.conf"
  /usr/sbin/slurmctld -f "$SLURM_CONF"
  /usr/sbin/slurmd -f "$SLURM_CONF"
  for _ in $(seq 60); do
    if sinfo -h -o %t 2>/dev/null | grep -q idle; then
      echo "slurm: node idle (SLURM_CONF=$SLURM_CONF)"
      exit 0
    fi
    sleep 1
  done
  echo "slurm: node did not become idle; logs in $dir/log" >&2
  exit 1
elif [ "$cmd" = stop ]; then
  export SLURM_CONF="$dir/slurm.conf"
  scancel --user root 2>/dev/null || true
  for daemon in slurmd slurmctld; do
    if alive "$dir/$daemon.pid"; then kill "$(cat "$dir/$daemon.pid")"; fi
  done
  echo "slurm: stopped"
else
  echo "usage: $0 start|stop DIR" >&2
  exit 2
fi
