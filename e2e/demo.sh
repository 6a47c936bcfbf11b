#!/usr/bin/env bash
# make demo: hubauthz on a private dockerd next to a real JupyterHub.
# alice (in docker-privileged) gets the Docker socket, bob is refused, and
# the audit records are printed. Nothing outside a temporary directory is
# touched except the plugin socket, and everything is stopped at the end.
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "make demo needs root (it starts a dockerd)"; exit 1; }
here=$(cd "$(dirname "$0")/.." && pwd)
bin="$here/bin/hubauthz"
[ -x "$bin" ] || { echo "missing $bin: run make build"; exit 1; }

D=$(mktemp -d /tmp/hzdemo.XXXXXX)
name="hubauthz-demo-$$"
plugin_sock="/run/docker/plugins/$name.sock"
pids=()

cleanup() {
  set +e
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$pid" 2>/dev/null
  done
  # dockerd leaves mounts under its roots; unmount deepest first.
  mounts() { awk -v d="$D/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r; }
  mounts | xargs -r -n1 umount -l
  rm -f "$plugin_sock"
  # Never remove through a mount that is still there.
  if [ -z "$(mounts)" ]; then rm -rf "$D"; else echo "left $D in place: still mounted"; fi
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

t0=$(date +%s)
journal_up() { python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.connect("/run/systemd/journal/socket")' 2>/dev/null; }
if ! journal_up && [ -x /lib/systemd/systemd-journald ]; then
  step "Starting systemd-journald (this machine runs none), for native audit records"
  /lib/systemd/systemd-journald & pids+=($!)
  for i in $(seq 50); do journal_up && break; sleep 0.1; done
fi

step "Starting JupyterHub 3.0 (alice is in docker-privileged, bob is not)"
token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
hub_port=$(free_port); proxy_port=$(free_port); proxy_api=$(free_port)
cat > "$D/jupyterhub_config.py" <<PY
c.JupyterHub.ip = '127.0.0.1'; c.JupyterHub.port = $proxy_port
c.JupyterHub.hub_ip = '127.0.0.1'; c.JupyterHub.hub_port = $hub_port
c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:$proxy_api'
c.JupyterHub.authenticator_class = 'dummy'
c.JupyterHub.db_url = 'sqlite:///$D/jupyterhub.sqlite'
c.JupyterHub.cookie_secret_file = '$D/cookie_secret'
c.JupyterHub.pid_file = '$D/jupyterhub.pid'
c.JupyterHub.services = [{'name': 'hubauthz', 'api_token': '$token'}]
c.JupyterHub.load_roles = [{'name': 'hubauthz', 'services': ['hubauthz'],
    'scopes': ['read:groups!group=docker-privileged', 'admin:groups!group=docker-privileged']}]
c.JupyterHub.load_groups = {'docker-privileged': ['alice']}
c.Authenticator.allowed_users = {'alice', 'bob'}
PY
(cd "$D" && NODE_PATH=/usr/share/nodejs exec jupyterhub -f "$D/jupyterhub_config.py" >"$D/jupyterhub.log" 2>&1) &
pids+=($!)
api="http://127.0.0.1:$hub_port/hub/api"
for i in $(seq 150); do
  curl -fsS -H "Authorization: token $token" "$api/groups/docker-privileged" >/dev/null 2>&1 && break
  [ "$i" = 150 ] && { tail -20 "$D/jupyterhub.log"; exit 1; }
  sleep 0.2
done
show "curl -H 'Authorization: token ...' $api/groups/docker-privileged"
curl -fsS -H "Authorization: token $token" "$api/groups/docker-privileged"; echo

step "Starting hubauthz as a legacy plugin on $plugin_sock"
printf '%s\n' "$token" > "$D/token"; chmod 600 "$D/token"
HUBAUTHZ_SOCKET="$plugin_sock" \
HUBAUTHZ_PROTECTED_PATHS="/var/run/docker.sock,$D/docker.sock" \
JUPYTERHUB_API_URL="$api" JUPYTERHUB_API_TOKEN_FILE="$D/token" DOCKER_HOST="unix://$D/docker.sock" \
  "$bin" 2>"$D/hubauthz.log" &
hz_pid=$!
pids+=($hz_pid)
for i in $(seq 100); do [ -S "$plugin_sock" ] && break; sleep 0.1; done
echo "protected: /var/run/docker.sock and this demo's own dockerd socket $D/docker.sock"

step "Starting a private dockerd with --authorization-plugin=$name"
echo '{"deprecated-key-path": "'"$D"'/key.json"}' > "$D/daemon.json"
dockerd --data-root "$D/data" --exec-root "$D/exec" --pidfile "$D/dockerd.pid" \
  -H "unix://$D/docker.sock" --iptables=false --ip-masq=false --bridge=none \
  --storage-driver=vfs --config-file "$D/daemon.json" \
  --authorization-plugin="$name" >"$D/dockerd.log" 2>&1 &
pids+=($!)
export DOCKER_HOST="unix://$D/docker.sock" DOCKER_CONFIG="$D/cli"
for i in $(seq 150); do docker version >/dev/null 2>&1 && break; sleep 0.2; done
docker version --format 'dockerd {{.Server.Version}}, API {{.Server.APIVersion}}'

# An image without a registry: static busybox with a link for each applet.
mkdir -p "$D/rootfs/bin" "$D/rootfs/tmp"
cp "$(command -v busybox)" "$D/rootfs/bin/busybox"
for a in $("$D/rootfs/bin/busybox" --list); do [ "$a" = busybox ] || ln -s busybox "$D/rootfs/bin/$a"; done
tar -C "$D/rootfs" -c . | docker import - bb:latest >/dev/null

step "alice is in docker-privileged: she gets the socket"
cmd=(docker run --rm --network=none --name jupyter-alice --label hub.jupyter.org/username=alice
     -v "$D/docker.sock:/var/run/docker.sock" bb:latest
     sh -c 'test -S /var/run/docker.sock && echo "alice: /var/run/docker.sock is here"')
show "${cmd[*]}"
"${cmd[@]}"

step "bob is not: the socket is refused, whichever way he asks"
try() { show "$*"; if "$@" 2>&1; then echo "UNEXPECTED: allowed"; exit 1; fi; echo; }
try docker run --rm --network=none --name jupyter-bob --label hub.jupyter.org/username=bob \
  -v /var/run/docker.sock:/var/run/docker.sock bb:latest true
try docker run --rm --network=none -e JUPYTERHUB_USER=bob \
  --mount type=bind,src=/run,dst=/host-run bb:latest true

step "bob's ordinary server still starts"
cmd=(docker run --rm --network=none --label hub.jupyter.org/username=bob bb:latest echo "bob: plain container runs")
show "${cmd[*]}"
"${cmd[@]}"

step "Audit records (hubauthz's stderr, JSON lines)"
grep '"audit":true' "$D/hubauthz.log" || true

if journal_up; then
  step "The same denials in the journal"
  show "journalctl -t hubauthz HUBAUTHZ_DECISION=deny _PID=$hz_pid -o verbose --output-fields=..."
  sleep 0.5
  journalctl --no-pager -t hubauthz HUBAUTHZ_DECISION=deny _PID="$hz_pid" --since "@$t0" -o verbose \
    --output-fields=MESSAGE,PRIORITY,HUBAUTHZ_USER,HUBAUTHZ_GROUP,HUBAUTHZ_REASON,HUBAUTHZ_CONTAINER,HUBAUTHZ_SOURCE || true
fi

step "Cleaning up"
