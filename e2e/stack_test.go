// Package e2e proves hubauthz end to end: a real dockerd (Debian's
// docker.io) with the plugin installed and a real JupyterHub as the group
// source, both started by the tests.
package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hubauthz/hubauthz/e2e/dockertest"
	"github.com/hubauthz/hubauthz/hub/hubtest"
)

// binary is the hubauthz binary built once for the suite.
var binary string

// journalErr says why no journal is available, if so.
var journalErr error

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hubauthz-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "hubauthz")
	build := exec.Command("go", "build", "-o", binary, "../cmd/hubauthz")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build hubauthz:", err)
		os.Exit(1)
	}
	stopJournal, err := startJournald()
	journalErr = err
	code := m.Run()
	if stopJournal != nil {
		stopJournal()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

var pluginSeq atomic.Int64

// stack is a JupyterHub, a hubauthz process and a private dockerd that
// consults it.
type stack struct {
	hub     *hubtest.Hub
	docker  *dockertest.Daemon
	name    string // plugin name as dockerd knows it
	logPath string // legacy mode: the plugin's stderr, JSON lines
	managed bool   // managed mode: the plugin's stderr is in dockerd's log
}

// startLegacy starts the stack with hubauthz as a legacy plugin on
// /run/docker/plugins/NAME.sock, named in dockerd's --authorization-plugin.
// The private dockerd's own socket is protected as well as the default
// path, so that a member's container can really get a Docker socket
// without touching the host's /var/run/docker.sock.
func startLegacy(t *testing.T, env map[string]string) *stack {
	t.Helper()
	s := &stack{hub: hubtest.Start(t, hubtest.Options{})}
	dir, err := os.MkdirTemp("", "dt")
	if err != nil {
		t.Fatal(err)
	}
	s.name = fmt.Sprintf("hubauthz-e2e-%d-%d", os.Getpid(), pluginSeq.Add(1))
	socket := "/run/docker/plugins/" + s.name + ".sock"
	s.logPath = filepath.Join(t.TempDir(), "hubauthz.log")
	full := map[string]string{
		"HUBAUTHZ_SOCKET":          socket,
		"HUBAUTHZ_PROTECTED_PATHS": "/var/run/docker.sock," + filepath.Join(dir, "docker.sock"),
		"JUPYTERHUB_API_URL":       s.hub.APIURL,
		"JUPYTERHUB_API_TOKEN":     s.hub.Token,
		"HUBAUTHZ_CACHE_TTL":       "2s",
		"DOCKER_HOST":              "unix://" + filepath.Join(dir, "docker.sock"),
	}
	for k, v := range env {
		full[k] = v
	}
	s.startPlugin(t, full, socket)
	s.docker = dockertest.Start(t, dockertest.Options{Dir: dir, AuthzPlugins: []string{s.name}})
	return s
}

func (s *stack) startPlugin(t *testing.T, env map[string]string, socket string) {
	t.Helper()
	logf, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	waited, err := dockertest.StartTied(cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-waited
		logf.Close()
		if t.Failed() {
			t.Logf("hubauthz log:\n%s", s.pluginLog())
		}
	})
	for i := 0; ; i++ {
		if c, err := net.Dial("unix", socket); err == nil {
			c.Close()
			return
		}
		if i > 250 {
			t.Fatalf("hubauthz never served %s; log:\n%s", socket, s.pluginLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pluginLog returns what the plugin wrote on stderr. A managed plugin's
// stderr is re-logged by dockerd, one line per entry, as
// msg="<line>" plugin=<id>.
func (s *stack) pluginLog() string {
	if !s.managed {
		b, _ := os.ReadFile(s.logPath)
		return string(b)
	}
	var out strings.Builder
	for _, line := range strings.Split(s.docker.Log(), "\n") {
		if !strings.Contains(line, " plugin=") {
			continue
		}
		_, rest, ok := strings.Cut(line, ` msg="`)
		if !ok {
			continue
		}
		quoted, _, ok := strings.Cut(rest, `" plugin=`)
		if !ok {
			continue
		}
		if msg, err := strconv.Unquote(`"` + quoted + `"`); err == nil {
			out.WriteString(msg + "\n")
		}
	}
	return out.String()
}

// audits returns the plugin's audit records.
func (s *stack) audits(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(s.pluginLog()))
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["audit"] == true {
			out = append(out, rec)
		}
	}
	return out
}

// containers lists the names of all containers on the private dockerd.
func (s *stack) containers(t *testing.T) []string {
	t.Helper()
	out := strings.TrimSpace(s.docker.MustDocker(t, "ps", "-a", "--format", "{{.Names}}"))
	if out == "" {
		return nil
	}
	return strings.Fields(out)
}

// denied runs a docker command that must be refused by hubauthz with a
// message containing msg, and checks that no container came to exist.
func (s *stack) denied(t *testing.T, msg string, args ...string) {
	t.Helper()
	before := len(s.containers(t))
	_, stderr, err := s.docker.Docker(t, args...)
	if err == nil {
		t.Fatalf("docker %v was allowed; want a deny", args)
	}
	want := "authorization denied by plugin " + s.name
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, msg) {
		t.Fatalf("docker %v: stderr %q; want %q and %q", args, stderr, want, msg)
	}
	if after := len(s.containers(t)); after != before {
		t.Fatalf("a container came to exist despite the deny (%d -> %d)", before, after)
	}
}

// waitFor retries f until it returns "" or the deadline passes.
func waitFor(t *testing.T, within time.Duration, f func() string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		problem := f()
		if problem == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, problem)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
