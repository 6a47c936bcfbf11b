package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hubauthz/hubauthz/e2e/dockertest"
	"github.com/hubauthz/hubauthz/hub/hubtest"
)

// startManaged installs hubauthz as a managed plugin the way an admin
// does: make plugin, docker plugin create, docker plugin set, docker plugin
// enable, then "authorization-plugins" in daemon.json and SIGHUP.
func startManaged(t *testing.T, env map[string]string) *stack {
	t.Helper()
	if journalErr != nil {
		dockertest.MissingDependency(t, "journald for the plugin's journal mount: %v", journalErr)
	}
	s := &stack{hub: hubtest.Start(t, hubtest.Options{}), managed: true}
	s.docker = dockertest.Start(t, dockertest.Options{})
	dir := filepath.Join(t.TempDir(), "plugin")
	mk := exec.Command("make", "-C", "..", "plugin", "PLUGIN_DIR="+dir)
	if out, err := mk.CombinedOutput(); err != nil {
		t.Fatalf("make plugin: %v\n%s", err, out)
	}
	name := fmt.Sprintf("hubauthz-e2e-%d-%d", os.Getpid(), pluginSeq.Add(1))
	s.name = name + ":latest"
	s.docker.MustDocker(t, "plugin", "create", name, dir)
	// The token goes in a root-only file on the host, read through the
	// plugin's /host mount, as docs/install.md tells admins to do.
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(s.hub.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	settings := map[string]string{
		"JUPYTERHUB_API_URL":        s.hub.APIURL,
		"JUPYTERHUB_API_TOKEN_FILE": "/host" + tokenFile,
		"HUBAUTHZ_PROTECTED_PATHS":  "/var/run/docker.sock," + s.docker.Socket,
		"HUBAUTHZ_CACHE_TTL":        ttl.String(),
		"docker-socket.source":      s.docker.Socket,
	}
	for k, v := range env {
		settings[k] = v
	}
	args := []string{"plugin", "set", name}
	for k, v := range settings {
		args = append(args, k+"="+v)
	}
	s.docker.MustDocker(t, args...)
	s.docker.MustDocker(t, "plugin", "enable", name)
	s.docker.Reload(t, map[string]any{"authorization-plugins": []string{s.name}})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("hubauthz log (from dockerd):\n%s", s.pluginLog())
		}
	})
	return s
}

func TestManagedPlugin(t *testing.T) {
	s := startManaged(t, nil)
	t.Run("journald record for a denial", func(t *testing.T) { testJournalRecord(t, s) })
	testSocketRule(t, s)
}

func TestLegacyJournal(t *testing.T) {
	if journalErr != nil {
		dockertest.MissingDependency(t, "journald: %v", journalErr)
	}
	testJournalRecord(t, startLegacy(t, nil))
}

func TestManagedBypassClasses(t *testing.T) {
	s := startManaged(t, nil)
	testBypassClasses(t, s)
	testSelfProtection(t, s)
}

// testSelfProtection shows that hubauthz cannot be switched off through
// the API, and that the documented break-glass procedure works.
func testSelfProtection(t *testing.T, s *stack) {
	bare := strings.TrimSuffix(s.name, ":latest")
	const refused = "is hubauthz, the guard of the Docker socket"
	t.Run("disable is refused", func(t *testing.T) {
		s.deniedPlugin(t, refused, "plugin", "disable", bare)
		s.deniedPlugin(t, refused, "plugin", "disable", "--force", s.name)
	})
	t.Run("set is refused", func(t *testing.T) {
		s.deniedPlugin(t, refused, "plugin", "set", bare, "HUBAUTHZ_PROTECTED_PATHS=/nothing")
	})
	t.Run("remove is refused", func(t *testing.T) { s.deniedPlugin(t, refused, "plugin", "rm", "--force", bare) })
	t.Run("upgrade is refused", func(t *testing.T) {
		status, msg := s.createRaw(t, "/v1.41/plugins/"+bare+"/upgrade?remote=evil/hubauthz", nil, []byte(`[]`))
		if status != 403 || !strings.Contains(msg, refused) {
			t.Fatalf("upgrade: %d %s", status, msg)
		}
	})
	t.Run("break glass: remove from daemon.json, SIGHUP, then disable", func(t *testing.T) {
		s.docker.Reload(t, map[string]any{})
		s.docker.MustDocker(t, "plugin", "disable", bare)
	})
}

// deniedPlugin runs a plugin management command that hubauthz must refuse,
// and checks that the plugin is still enabled.
func (s *stack) deniedPlugin(t *testing.T, msg string, args ...string) {
	t.Helper()
	_, stderr, err := s.docker.Docker(t, args...)
	if err == nil || !strings.Contains(stderr, "authorization denied by plugin "+s.name) || !strings.Contains(stderr, msg) {
		t.Fatalf("docker %v: %v %q; want hubauthz's refusal", args, err, stderr)
	}
	if out := strings.TrimSpace(s.docker.MustDocker(t, "plugin", "inspect", "-f", "{{.Enabled}}", s.name)); out != "true" {
		t.Fatalf("plugin enabled = %s after a refused %v", out, args)
	}
}
