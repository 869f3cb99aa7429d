# Sourced by demo.sh with CONSUL_HTTP_ADDR pointing at the demo agent and
# $work a scratch directory.
echo "==> two commands contend for the lock 'demo'; the second waits for the first"
repolock exec -key demo -- sh -c 'echo "first holder: fencing token $REPOLOCK_FENCING_TOKEN, session $REPOLOCK_SESSION"; sleep 2' &
first=$!
sleep 0.5
echo "==> while the first runs, its holder record in Consul KV:"
repolock status demo
repolock exec -key demo -wait 1m -- sh -c 'echo "second holder: fencing token $REPOLOCK_FENCING_TOKEN"'
wait "$first"
