# Sourced by the RPC benchmarks: start two loopback `run-fit rpc-server`s on free ports, wait until
# each listens, and stop them (and remove $work) on exit. Sets $work, $a (the first endpoint) and $ab
# (both, comma-separated); RUN_FIT_CACHE_DIR points into $work, so nothing learned earlier changes a plan.
bin=target/release/run-fit
dev=target/release/run-fit-dev
work=$(mktemp -d)
export RUN_FIT_CACHE_DIR="$work/cache"
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
endpoints=()
for _ in 1 2; do
  port=$(free_port)
  "$bin" rpc-server --port "$port" >"$work/server-$port.log" 2>&1 &
  pids+=($!)
  endpoints+=("127.0.0.1:$port")
  for _ in $(seq 100); do grep -q "^serving on" "$work/server-$port.log" && break; sleep 0.1; done
done
a=${endpoints[0]}
ab="${endpoints[0]},${endpoints[1]}"
