package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := loadConfig(nil, envOf(map[string]string{"JUPYTERHUB_API_URL": "http://127.0.0.1:8081/hub/api", "JUPYTERHUB_API_TOKEN": "t"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Socket != "/run/docker/plugins/hubauthz.sock" || cfg.Group != "docker-privileged" || cfg.HubTimeout != 2*time.Second ||
		cfg.CacheTTL != 30*time.Second || cfg.DenyUnowned || len(cfg.OwnerLabels) != 1 || cfg.OwnerLabels[0] != "hub.jupyter.org/username" ||
		strings.Join(cfg.Protected.Paths(), ",") != "/var/run/docker.sock,/run/containerd/containerd.sock,/run/docker/plugins" {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestFlagsOverrideEnvironment(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig([]string{"--group", "admins", "--unowned", "deny", "--hub-token-file", tokenFile, "--owner-label", "a, b"},
		envOf(map[string]string{"JUPYTERHUB_API_URL": "http://hub/api", "HUBAUTHZ_GROUP": "ignored", "HUBAUTHZ_CACHE_TTL": "5s"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Group != "admins" || !cfg.DenyUnowned || cfg.HubToken != "from-file" || cfg.CacheTTL != 5*time.Second || strings.Join(cfg.OwnerLabels, "|") != "a|b" {
		t.Fatalf("got %+v", cfg)
	}
}

func TestInvalidConfigurationExitsWithOneLine(t *testing.T) {
	base := map[string]string{"JUPYTERHUB_API_URL": "http://hub/api", "JUPYTERHUB_API_TOKEN": "t0ken-value"}
	tests := []struct {
		name, key, value, says string
	}{
		{"no hub URL", "JUPYTERHUB_API_URL", "", "JUPYTERHUB_API_URL is required"},
		{"no token", "JUPYTERHUB_API_TOKEN", "", "JUPYTERHUB_API_TOKEN or JUPYTERHUB_API_TOKEN_FILE is required"},
		{"both token sources", "JUPYTERHUB_API_TOKEN_FILE", "/etc/hostname", "set only one"},
		{"missing token file", "JUPYTERHUB_API_TOKEN_FILE", "/nonexistent/token", "JUPYTERHUB_API_TOKEN_FILE"},
		{"bad unowned", "HUBAUTHZ_UNOWNED", "maybe", "allow or deny"},
		{"bad timeout", "HUBAUTHZ_HUB_TIMEOUT", "soon", "HUBAUTHZ_HUB_TIMEOUT"},
		{"negative ttl", "HUBAUTHZ_CACHE_TTL", "-1s", "HUBAUTHZ_CACHE_TTL"},
		{"relative protected path", "HUBAUTHZ_PROTECTED_PATHS", "docker.sock", "not absolute"},
		{"bad log level", "HUBAUTHZ_LOG_LEVEL", "loud", "HUBAUTHZ_LOG_LEVEL"},
		{"blank volume drivers", "HUBAUTHZ_VOLUME_DRIVERS", " ", "HUBAUTHZ_VOLUME_DRIVERS must name at least one volume driver"},
		{"empty volume driver name", "HUBAUTHZ_VOLUME_DRIVERS", "local,,hostpath", "HUBAUTHZ_VOLUME_DRIVERS has an empty driver name"},
		{"only commas for volume drivers", "HUBAUTHZ_VOLUME_DRIVERS", ",", "HUBAUTHZ_VOLUME_DRIVERS has an empty driver name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			env[tt.key] = tt.value
			if tt.name == "missing token file" {
				delete(env, "JUPYTERHUB_API_TOKEN")
			}
			var out, errw bytes.Buffer
			code := run(nil, envOf(env), &out, &errw)
			msg := errw.String()
			if code == 0 || strings.Count(msg, "\n") != 1 || !strings.Contains(msg, tt.says) {
				t.Fatalf("exit %d, stderr %q; want non-zero and one line saying %q", code, msg, tt.says)
			}
			if strings.Contains(msg, "t0ken-value") {
				t.Fatalf("stderr leaks the token: %q", msg)
			}
		})
	}
}

// TestVolumeDriversSetting: HUBAUTHZ_VOLUME_DRIVERS trusts local by
// default, takes exact names from the environment or --volume-drivers, and
// reaches the rule; a list with an empty name exits 2 with one line.
func TestVolumeDriversSetting(t *testing.T) {
	base := map[string]string{"JUPYTERHUB_API_URL": "http://hub/api", "JUPYTERHUB_API_TOKEN": "t"}
	for _, tt := range []struct {
		name string
		env  string
		args []string
		want string
	}{
		{name: "default", want: "local"},
		{name: "environment", env: " local , vieux/sshfs:latest,LOCAL", want: "local|vieux/sshfs:latest|LOCAL"},
		{name: "flag wins", env: "local", args: []string{"--volume-drivers", "hostpath"}, want: "hostpath"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"HUBAUTHZ_VOLUME_DRIVERS": tt.env}
			for k, v := range base {
				env[k] = v
			}
			cfg, err := loadConfig(tt.args, envOf(env))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(cfg.authzConfig().VolumeDrivers, "|"); got != tt.want {
				t.Fatalf("VolumeDrivers = %q; want %q", got, tt.want)
			}
		})
	}
	for _, bad := range [][]string{{"--volume-drivers", ""}, {"--volume-drivers", "local,"}, {"--volume-drivers", "a, ,b"}} {
		var out, errw bytes.Buffer
		if code := run(bad, envOf(base), &out, &errw); code != 2 || strings.Count(errw.String(), "\n") != 1 ||
			!strings.Contains(errw.String(), "HUBAUTHZ_VOLUME_DRIVERS") {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and one line naming HUBAUTHZ_VOLUME_DRIVERS", bad, code, errw.String())
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"version"}, envOf(nil), &out, &out); code != 0 || !strings.HasPrefix(out.String(), "hubauthz ") {
		t.Fatalf("version: exit %d, %q", code, out.String())
	}
}

// TestPluginSocketDirectoryIsAlwaysProtected: whoever can bind the directory
// where dockerd finds plugin sockets can replace hubauthz's socket with one
// that allows everything, so it is protected whatever the setting says.
func TestPluginSocketDirectoryIsAlwaysProtected(t *testing.T) {
	cfg, err := loadConfig([]string{"--protected-paths", "/srv/only.sock", "--socket", "/srv/plugins/hz.sock"},
		envOf(map[string]string{"JUPYTERHUB_API_URL": "http://hub/api", "JUPYTERHUB_API_TOKEN": "t"}))
	if err != nil {
		t.Fatal(err)
	}
	pp := cfg.authzConfig().Protected
	for _, src := range []string{"/run/docker/plugins", "/var/run/docker", "/srv/plugins", "/srv/only.sock"} {
		if _, ok := pp.Exposes(src); !ok {
			t.Errorf("%s is not protected", src)
		}
	}
}
