# The worker: announces its pid, answers each job, waits to be stopped.
trap 'echo "worker: stopped" >&2; exit 0' TERM
exec 3> /run/results
echo "worker $$" >&3
while read -r job; do
    echo "$job -> $(echo "$job" | busybox md5sum | busybox cut -c1-8)" >&3
done < /run/jobs
exec 3>&-
while :; do busybox sleep 1; done
