// Package hubtest starts a real JupyterHub on loopback for tests.
//
// The hub runs Debian's /usr/bin/jupyterhub (3.0) with the dummy
// authenticator, a fresh sqlite database and free loopback ports for the
// proxy, the proxy's API and the hub's own API, so that several test
// packages can run hubs at the same time. Two external services are
// declared: "hubauthz", whose token carries Options.Scopes, and
// "hubtest-admin", whose broad token the helpers use to change state.
package hubtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ServiceName is the name of the service whose token is Hub.Token.
const ServiceName = "hubauthz"

// AdminServiceName is the name of the service whose token is Hub.AdminToken.
const AdminServiceName = "hubtest-admin"

// PrivilegedGroup is the group that hubauthz asks the hub about.
const PrivilegedGroup = "docker-privileged"

// AdminScopes are the scopes of the role given to the "hubtest-admin" service.
var AdminScopes = []string{"admin:users", "admin:groups", "read:users", "read:groups",
	"list:users", "list:groups", "read:roles", "read:hub"}

const (
	readyTimeout = 60 * time.Second
	pollInterval = 200 * time.Millisecond
	stopTimeout  = 10 * time.Second
)

// Options configures the hub that Start launches; the zero value gives the defaults.
type Options struct {
	// Scopes are the scopes of the role given to the "hubauthz" service; nil means {"read:groups", "admin:groups"}.
	Scopes []string
	// Groups become c.JupyterHub.load_groups; nil means {"docker-privileged": {"alice"}},
	// or no groups at all when ManageGroups is set, because JupyterHub 3.0 refuses to
	// start with both. Their members are added to the allowed users.
	Groups map[string][]string
	// Users are the allowed users, all created in the hub's database; nil means {"alice", "bob", "carol"}.
	Users []string
	// ManageGroups sets c.Authenticator.manage_groups = True, which disables group management through the API.
	ManageGroups bool
}

// Hub is a running JupyterHub started by Start.
type Hub struct {
	// APIURL is the hub's own API, for example http://127.0.0.1:PORT/hub/api (not through the proxy).
	APIURL string
	// ProxyURL is the public URL of the hub's configurable-http-proxy.
	ProxyURL string
	// Token is the API token of the "hubauthz" service, with Options.Scopes.
	Token string
	// AdminToken is the API token of the "hubtest-admin" service, with AdminScopes.
	AdminToken string
	// Dir holds the hub's configuration, database, pid files and log.
	Dir string
	// StartDuration is how long Start took until the API answered.
	StartDuration time.Duration

	cmd          *exec.Cmd
	pid          int
	done         chan struct{} // closed when the jupyterhub process has exited
	logPath      string
	proxyPidFile string // path of the proxy's pid file
	proxyPid     int    // pid of configurable-http-proxy, once known
	client       *http.Client
	mu           sync.Mutex
	stopped      bool
	logShown     bool // the log tail is already part of a failure message
}

var errPortInUse = errors.New("port already in use")

// Start starts JupyterHub with a fresh sqlite database on free loopback ports and
// waits until GET {APIURL}/groups/docker-privileged with Token answers 200, or, when
// the service's scopes or the configured groups do not allow that, until the API
// answers at all (JupyterHub 3.0 binds its API port only once fully initialised).
// It then makes sure every allowed user exists and registers t.Cleanup to stop the
// hub and remove its files. A missing jupyterhub binary is reported through MissingDependency.
func Start(t testing.TB, opts Options) *Hub {
	t.Helper()
	bin, err := exec.LookPath("jupyterhub")
	if err != nil {
		MissingDependency(t, "hubtest: jupyterhub not found (apt-get install jupyterhub): %v", err)
		return nil
	}
	if _, err := exec.LookPath("configurable-http-proxy"); err != nil {
		MissingDependency(t, "hubtest: configurable-http-proxy not found (apt-get install jupyterhub): %v", err)
		return nil
	}
	if opts.ManageGroups && len(opts.Groups) > 0 {
		t.Fatalf("hubtest: JupyterHub 3.0 refuses load_groups together with manage_groups " +
			"(ValueError: Group management has been offloaded to the authenticator)")
	}
	if opts.Scopes == nil {
		opts.Scopes = []string{"read:groups", "admin:groups"}
	}
	if opts.Groups == nil && !opts.ManageGroups {
		opts.Groups = map[string][]string{PrivilegedGroup: {"alice"}}
	}
	if opts.Users == nil {
		opts.Users = []string{"alice", "bob", "carol"}
	}
	began := time.Now()
	for attempt := 1; ; attempt++ {
		h, err := launch(t, bin, opts)
		if err == nil {
			h.StartDuration = time.Since(began)
			t.Logf("hubtest: JupyterHub ready at %s after %v", h.APIURL, h.StartDuration.Round(time.Millisecond))
			return h
		}
		if !errors.Is(err, errPortInUse) || attempt == 3 {
			t.Fatalf("hubtest: %v", err)
		}
		t.Logf("hubtest: attempt %d: %v; retrying with other ports", attempt, err)
	}
}

// launch makes one attempt at starting a hub; on error the hub is already stopped.
func launch(t testing.TB, bin string, opts Options) (*Hub, error) {
	dir, err := os.MkdirTemp("", "hubtest-")
	if err != nil {
		return nil, err
	}
	ports := freePorts(t, 3)
	h := &Hub{
		APIURL:       fmt.Sprintf("http://127.0.0.1:%d/hub/api", ports[0]),
		ProxyURL:     fmt.Sprintf("http://127.0.0.1:%d/", ports[1]),
		Token:        randomToken(t),
		AdminToken:   randomToken(t),
		Dir:          dir,
		done:         make(chan struct{}),
		logPath:      filepath.Join(dir, "jupyterhub.log"),
		proxyPidFile: filepath.Join(dir, "proxy.pid"),
		client:       &http.Client{Transport: &http.Transport{Proxy: nil}},
	}
	t.Cleanup(func() {
		h.Stop(t)
		if t.Failed() && !h.logShown {
			t.Logf("hubtest: JupyterHub log tail (%s):\n%s", h.Dir, tail(h.Log(), 60))
		}
		os.RemoveAll(h.Dir)
	})
	if err := os.WriteFile(filepath.Join(dir, "jupyterhub_config.py"), h.config(opts, ports), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(h.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	h.cmd = exec.Command(bin, "-f", "jupyterhub_config.py")
	h.cmd.Dir = dir
	h.cmd.Env = append(os.Environ(), "NODE_PATH=/usr/share/nodejs")
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := h.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	h.pid = h.cmd.Process.Pid
	go func() { h.cmd.Wait(); close(h.done) }()
	if err := h.waitReady(); err != nil {
		h.Stop(t)
		h.logShown = true
		log := h.Log()
		if strings.Contains(log, "Address already in use") || strings.Contains(log, "EADDRINUSE") {
			err = fmt.Errorf("%w: %v", errPortInUse, err)
		}
		return nil, fmt.Errorf("%v\nJupyterHub log tail (%s):\n%s", err, h.logPath, tail(log, 60))
	}
	h.readProxyPid()
	for _, u := range opts.Users {
		if code, body, err := h.Do(h.AdminToken, "POST", "/users/"+pathEscape(u), nil); err != nil || (code != 201 && code != 409) {
			h.Stop(t)
			return nil, fmt.Errorf("creating user %q: %d %s %v", u, code, body, err)
		}
	}
	return h, nil
}

// config renders jupyterhub_config.py; JSON literals are valid Python literals here.
func (h *Hub) config(opts Options, ports []int) []byte {
	lit := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	path := func(name string) string { return lit(filepath.Join(h.Dir, name)) }
	allowed := map[string]bool{}
	for _, u := range opts.Users {
		allowed[u] = true
	}
	for _, members := range opts.Groups {
		for _, u := range members {
			allowed[u] = true
		}
	}
	names := make([]string, 0, len(allowed))
	for u := range allowed {
		names = append(names, u)
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Generated by hubtest.")
	w("c.JupyterHub.hub_ip = '127.0.0.1'\nc.JupyterHub.hub_port = %d", ports[0])
	w("c.JupyterHub.ip = '127.0.0.1'\nc.JupyterHub.port = %d", ports[1])
	w("c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:%d'", ports[2])
	w("c.ConfigurableHTTPProxy.pid_file = %s", lit(h.proxyPidFile))
	w("c.JupyterHub.authenticator_class = 'dummy'")
	w("c.JupyterHub.db_url = %s", lit("sqlite:///"+filepath.Join(h.Dir, "jupyterhub.sqlite")))
	w("c.JupyterHub.cookie_secret_file = %s", path("cookie_secret"))
	w("c.JupyterHub.pid_file = %s", path("jupyterhub.pid"))
	w("c.JupyterHub.services = [{'name': %s, 'api_token': %s}, {'name': %s, 'api_token': %s}]",
		lit(ServiceName), lit(h.Token), lit(AdminServiceName), lit(h.AdminToken))
	w("c.JupyterHub.load_roles = [{'name': %[1]s, 'scopes': %[2]s, 'services': [%[1]s]}, {'name': %[3]s, 'scopes': %[4]s, 'services': [%[3]s]}]",
		lit(ServiceName), lit(opts.Scopes), lit(AdminServiceName), lit(AdminScopes))
	if len(opts.Groups) > 0 {
		w("c.JupyterHub.load_groups = %s", lit(opts.Groups))
	}
	if len(names) > 0 {
		w("c.Authenticator.allowed_users = set(%s)", lit(names))
	}
	if opts.ManageGroups {
		w("c.Authenticator.manage_groups = True")
	}
	return []byte(b.String())
}

// waitReady polls the API until it answers, the process exits or readyTimeout passes.
func (h *Hub) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	var last string
	for {
		code, _, err := h.do(h.Token, "GET", "/groups/"+PrivilegedGroup, nil, 2*time.Second)
		if err == nil && code == 200 {
			return nil
		}
		if err == nil {
			// The API answers, but this token may not read the group (scopes) or
			// the group is not loaded; readiness then means GET / answers 200.
			if c, _, err := h.do("", "GET", "/", nil, 2*time.Second); err == nil && c == 200 {
				return nil
			}
			last = fmt.Sprintf("GET /groups/%s answered %d", PrivilegedGroup, code)
		} else {
			last = err.Error()
		}
		select {
		case <-h.done:
			return fmt.Errorf("jupyterhub exited before its API was ready (%s)", h.cmd.ProcessState)
		case <-time.After(pollInterval):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("JupyterHub API %s not ready after %v (last: %s)", h.APIURL, readyTimeout, last)
		}
	}
}

// randomToken returns 32 random bytes as hex.
func randomToken(t testing.TB) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("hubtest: random token: %v", err)
	}
	return hex.EncodeToString(b)
}
