// Package dockertest starts a private, isolated dockerd for end-to-end tests.
//
// Each daemon gets its own data root, exec root, pid file, socket, daemon.json
// and containerd under a short directory in /tmp, so several test packages can
// run daemons at the same time and none of them touches a system Docker. The
// daemon has no network bridge, no iptables rules and uses the vfs storage
// driver; the only image is bb:latest, a busybox image imported at start.
//
// Every daemon is stopped by pid when the test ends. The mounts it left under
// its directory are unmounted, and the directory is removed.
package dockertest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Image is the reference of the busybox image that Start imports into every
// daemon. Its /bin holds busybox and a symlink for each applet, so commands
// such as sh, echo, cat and sleep run.
const Image = "bb:latest"

// startTimeout bounds how long Start waits for dockerd to answer /_ping.
const startTimeout = 60 * time.Second

// Options configures a daemon started by Start.
type Options struct {
	// AuthzPlugins are passed to dockerd as one --authorization-plugin flag
	// each. A legacy plugin's socket /run/docker/plugins/NAME.sock must be
	// serving before Start is called, or dockerd refuses to start.
	AuthzPlugins []string

	// DaemonJSON, if non-nil, is written to Dir/daemon.json. That file is
	// always passed with --config-file, so the host's
	// /etc/docker/daemon.json is never read, and it always gets
	// "deprecated-key-path" (unless set here) so that dockerd does not
	// write /etc/docker/key.json. A key given here must not also be set
	// by a flag: dockerd rejects such a conflict.
	DaemonJSON map[string]any

	// ListenSystemSocket makes the daemon also listen on
	// unix:///run/docker.sock when that path is free. Binding a missing
	// host path with -v makes dockerd create a directory there, so tests
	// that mount the system socket path need it to exist. Daemon.SystemSocket
	// reports whether the path was taken; at most one daemon on the machine
	// holds it at a time.
	ListenSystemSocket bool

	// Dir, if set, is an existing empty directory (short: the socket path
	// must fit 108 bytes) to use as the daemon's private directory. It lets
	// a test know Socket before the daemon starts, for example to protect
	// it in a plugin that must be serving first. It is removed at cleanup.
	Dir string
}

// Daemon is a running private dockerd. Its exported fields must not be
// changed.
type Daemon struct {
	// Dir is the daemon's private directory. Everything the daemon keeps
	// is inside it; outside it are only shared, harmless paths: the plugin
	// directory /run/docker/plugins, shim sockets in /run/containerd/s,
	// empty /opt/containerd/{bin,lib}, container cgroups under /docker
	// and, with Options.ListenSystemSocket, /run/docker.sock.
	Dir string
	// Socket is the path of the daemon's API socket, Dir/docker.sock.
	Socket string
	// Host is "unix://" + Socket, suitable for DOCKER_HOST or -H.
	Host string
	// SystemSocket reports whether the daemon also listens on
	// /run/docker.sock.
	SystemSocket bool

	mu         sync.Mutex
	stopped    bool
	dockerd    *proc
	containerd *proc // nil when dockerd started its own containerd
	sysLock    *os.File
	logPath    string
	configPath string
	cliConfig  string
	dockerPath string
}

// MissingDependency reports that something a test needs is not installed.
// With CI=true in the environment it fails the test, because CI must never
// skip an end-to-end test; otherwise it skips the test.
func MissingDependency(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("missing dependency (CI=true, so this fails): %s", msg)
	}
	t.Skipf("missing dependency: %s", msg)
}

// Start starts a private dockerd, waits until GET /_ping answers on its
// socket, and imports the busybox image Image. It registers a cleanup that
// stops the daemon and removes its directory. A missing dockerd, docker CLI
// or static busybox is reported with MissingDependency; a daemon that does
// not come up fails the test with the tail of its log.
func Start(t testing.TB, opts Options) *Daemon {
	t.Helper()
	begin := time.Now()
	tools := lookupTools(t)
	dir, err := opts.Dir, error(nil)
	if dir == "" {
		dir, err = os.MkdirTemp(shortTempDir(), "dt")
	}
	if err != nil {
		t.Fatalf("dockertest: create daemon dir: %v", err)
	}
	d := &Daemon{
		Dir:        dir,
		Socket:     filepath.Join(dir, "docker.sock"),
		logPath:    filepath.Join(dir, "dockerd.log"),
		configPath: filepath.Join(dir, "daemon.json"),
		cliConfig:  filepath.Join(dir, "cli"),
		dockerPath: tools.docker,
	}
	d.Host = "unix://" + d.Socket
	t.Cleanup(func() { d.stop(t) })

	if err := os.Mkdir(d.cliConfig, 0o700); err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	if err := d.writeConfig(opts.DaemonJSON); err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatalf("dockertest: create plugin dir: %v", err)
	}
	args, err := d.flags(opts)
	if err != nil {
		t.Fatalf("dockertest: %v", err)
	}
	if d.dockerd, err = startProc(tools.dockerd, args, d.logPath); err != nil {
		t.Fatalf("dockertest: start dockerd: %v", err)
	}
	if err := d.waitReady(startTimeout); err != nil {
		t.Fatalf("dockertest: dockerd did not come up: %v\n--- dockerd log (tail) ---\n%s", err, d.logTail(60))
	}
	ready := time.Since(begin)
	if err := d.importBusybox(tools); err != nil {
		t.Fatalf("dockertest: import %s: %v\n--- dockerd log (tail) ---\n%s", Image, err, d.logTail(30))
	}
	t.Logf("dockertest: dockerd %s ready in %v, with %s in %v (system socket: %v)",
		d.Host, ready.Round(time.Millisecond), Image, time.Since(begin).Round(time.Millisecond), d.SystemSocket)
	return d
}

// flags returns dockerd's command line. It starts a private containerd first
// when a system containerd socket exists, because dockerd would otherwise
// attach to the system containerd instead of starting its own.
func (d *Daemon) flags(opts Options) ([]string, error) {
	args := []string{
		"--data-root", filepath.Join(d.Dir, "data"),
		"--exec-root", filepath.Join(d.Dir, "exec"),
		"--pidfile", filepath.Join(d.Dir, "dockerd.pid"),
		"--config-file", d.configPath,
		"-H", d.Host,
		"--iptables=false", "--ip-masq=false", "--bridge=none",
		"--storage-driver=vfs",
	}
	for _, p := range opts.AuthzPlugins {
		args = append(args, "--authorization-plugin="+p)
	}
	if _, err := os.Lstat(systemContainerdSocket); err == nil {
		addr, err := d.startContainerd()
		if err != nil {
			return nil, err
		}
		args = append(args, "--containerd="+addr)
	}
	if opts.ListenSystemSocket {
		if lock, ok := claimSystemSocket(); ok {
			d.sysLock, d.SystemSocket = lock, true
			args = append(args, "-H", "unix://"+systemSocket)
		}
	}
	return args, nil
}

// writeConfig writes daemon.json. It adds "deprecated-key-path" (which has
// no flag) unless cfg sets it, because dockerd 20.10 otherwise creates
// /etc/docker/key.json.
func (d *Daemon) writeConfig(cfg map[string]any) error {
	full := map[string]any{"deprecated-key-path": filepath.Join(d.Dir, "key.json")}
	for k, v := range cfg {
		full[k] = v
	}
	cfg = full
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("encode daemon.json: %w", err)
	}
	tmp := d.configPath + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write daemon.json: %w", err)
	}
	return os.Rename(tmp, d.configPath)
}

// waitReady polls /_ping until it answers, dockerd exits, or timeout passes.
func (d *Daemon) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := d.ping()
		if err == nil {
			return nil
		}
		if d.dockerd.exited() {
			return fmt.Errorf("dockerd exited: %v", d.dockerd.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no answer to /_ping after %v: %v", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Log returns the contents of dockerd's log (its stdout and stderr), for
// failure messages.
func (d *Daemon) Log() string {
	b, err := os.ReadFile(d.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read dockerd log: %v)", err)
	}
	return string(b)
}

// logTail returns the last n lines of dockerd's log.
func (d *Daemon) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(d.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop stops the daemon now and removes its directory. It is idempotent, and
// the cleanup registered by Start calls it too.
func (d *Daemon) Stop(t testing.TB) {
	t.Helper()
	d.stop(t)
}

// stop stops every process the daemon started, by pid, unmounts what is left
// under Dir and removes Dir. Problems are reported with t.Errorf.
func (d *Daemon) stop(t testing.TB) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return
	}
	d.stopped = true
	begin := time.Now()
	defer func() { t.Logf("dockertest: stopped %s in %v", d.Host, time.Since(begin).Round(time.Millisecond)) }()
	if d.dockerd != nil {
		if err := d.dockerd.stop(40 * time.Second); err != nil {
			t.Errorf("dockertest: %v", err)
		}
	}
	killLeftovers(d.Dir)
	if d.containerd != nil {
		if err := d.containerd.stop(15 * time.Second); err != nil {
			t.Errorf("dockertest: %v", err)
		}
	}
	if d.sysLock != nil {
		releaseSystemSocket(d.sysLock)
		d.sysLock = nil
	}
	if err := removeDir(d.Dir); err != nil {
		t.Errorf("dockertest: %v", err)
	}
}
