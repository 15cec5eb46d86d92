# The producer: three jobs out, the results back, then the worker stopped.
for i in 1 2 3; do echo "job $i"; done > /run/jobs
{
    read -r _ worker
    while read -r line; do echo "producer: $line"; done
} < /run/results
kill -TERM "$worker"
while kill -0 "$worker" 2> /dev/null; do busybox sleep 1; done
echo "producer: worker $worker has ended"
