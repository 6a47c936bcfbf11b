package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
	settings := map[string]string{
		"JUPYTERHUB_API_URL":       s.hub.APIURL,
		"JUPYTERHUB_API_TOKEN":     s.hub.Token,
		"HUBAUTHZ_PROTECTED_PATHS": "/var/run/docker.sock," + s.docker.Socket,
		"HUBAUTHZ_CACHE_TTL":       ttl.String(),
		"docker-socket.source":     s.docker.Socket,
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
