package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/sirupsen/logrus"

	"github.com/hubauthz/hubauthz/e2e/dockertest"
	"github.com/hubauthz/hubauthz/hub/hubtest"
)

// TestPluginPushAndInstall follows the registry path of docs/install.md
// with a registry that lives inside the test: make plugin-push on one
// dockerd, docker plugin install --disable on another, docker plugin set,
// enable, daemon.json and SIGHUP, and then the installed plugin decides.
// No registry outside the test is involved: dockerd speaks plain HTTP to
// a registry on 127.0.0.0/8 without any insecure-registries setting.
func TestPluginPushAndInstall(t *testing.T) {
	if journalErr != nil {
		dockertest.MissingDependency(t, "journald for the plugin's journal mount: %v", journalErr)
	}
	begin := time.Now()
	reg := startRegistry(t)
	ref := reg.host + "/hubauthz:e2e"

	// The admin's build machine: make plugin-push against dockerd A.
	a := dockertest.Start(t, dockertest.Options{})
	pushStart := time.Now()
	push := exec.Command("make", "-C", "..", "plugin-push", "PLUGIN="+ref,
		"PLUGIN_DIR="+filepath.Join(t.TempDir(), "plugin"))
	push.Env = pushEnv(a.Host, t.TempDir())
	out, err := push.CombinedOutput()
	if err != nil {
		t.Fatalf("make plugin-push PLUGIN=%s: %v\n%s", ref, err, out)
	}
	t.Logf("make plugin-push PLUGIN=%s in %v:\n%s", ref, time.Since(pushStart).Round(time.Millisecond), out)
	mediaType, configType := reg.manifest(t, "hubauthz", "e2e")
	t.Logf("registry holds %s: manifest %s, config %s", ref, mediaType, configType)
	if configType != "application/vnd.docker.plugin.v1+json" {
		t.Fatalf("pushed config media type %q; want a plugin config", configType)
	}
	// B must get the plugin from the registry and nowhere else.
	a.Stop(t)

	// A Docker host: docker plugin install, set, enable, daemon.json, SIGHUP.
	hub := hubtest.Start(t, hubtest.Options{})
	b := dockertest.Start(t, dockertest.Options{})
	b.MustDocker(t, "plugin", "install", "--disable", "--grant-all-permissions", ref)
	b.MustDocker(t, "plugin", "set", ref,
		"JUPYTERHUB_API_URL="+hub.APIURL,
		"JUPYTERHUB_API_TOKEN="+hub.Token,
		"HUBAUTHZ_PROTECTED_PATHS=/var/run/docker.sock,"+b.Socket,
		"docker-socket.source="+b.Socket,
	)
	b.MustDocker(t, "plugin", "enable", ref)
	b.Reload(t, map[string]any{"authorization-plugins": []string{ref}})
	s := &stack{hub: hub, docker: b, name: ref, managed: true}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("hubauthz log (from dockerd B):\n%s", s.pluginLog())
		}
	})
	// Only logged: dockerd 20.10 reports [] here after a reload, although
	// the plugin is in the chain (the denial below shows it).
	t.Logf("docker info: Plugins.Authorization = %s", strings.TrimSpace(b.MustDocker(t, "info", "--format", "{{.Plugins.Authorization}}")))

	want := "authorization denied by plugin " + ref + ": " + notMember
	_, stderr, err := b.Docker(t, "create", label("bob"), "-v", "/var/run/docker.sock:/var/run/docker.sock", dockertest.Image, "true")
	if err == nil || !strings.Contains(stderr, want) {
		t.Fatalf("bob's create with the socket: %v %q; want %q", err, stderr, want)
	}
	if names := s.containers(t); len(names) != 0 {
		t.Fatalf("containers after the deny: %v", names)
	}
	b.MustDocker(t, "create", dockertest.Image, "true")
	b.MustDocker(t, "create", label("bob"), dockertest.Image, "true")
	t.Logf("push, install and both decisions in %v", time.Since(begin).Round(time.Millisecond))
}

// pushEnv is the environment for docker CLI calls made through make: the
// test's own environment without DOCKER_* variables, plus host and a
// private client configuration directory.
func pushEnv(host, config string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") {
			env = append(env, kv)
		}
	}
	return append(env, "DOCKER_HOST="+host, "DOCKER_CONFIG="+config, "DOCKER_CLI_HINTS=false")
}

// loopRegistry is a Docker registry (distribution/v3) served by the test
// process on 127.0.0.1, with in-memory storage.
type loopRegistry struct {
	host string // 127.0.0.1:PORT
	logs *registryLog
}

// startRegistry serves a registry on a free loopback port until the test
// ends. Its log (logrus' standard logger, which distribution writes to and
// nothing else in this test process uses) is kept in memory and shown when
// the test fails.
func startRegistry(t *testing.T) *loopRegistry {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("registry: listen: %v", err)
	}
	r := &loopRegistry{host: ln.Addr().String(), logs: &registryLog{}}

	std := logrus.StandardLogger()
	oldOut, oldLevel := std.Out, std.GetLevel()
	std.SetOutput(r.logs)
	std.SetLevel(logrus.InfoLevel)

	cfg := &configuration.Configuration{
		Storage: configuration.Storage{
			"inmemory":    configuration.Parameters{},
			"maintenance": configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
		},
	}
	cfg.HTTP.Secret = "hubauthz-e2e"
	ctx, cancel := context.WithCancel(context.Background())
	app := handlers.NewApp(ctx, cfg)
	srv := &http.Server{Handler: app, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("registry: shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("registry: serve: %v", err)
		}
		if err := app.Shutdown(); err != nil {
			t.Errorf("registry: %v", err)
		}
		cancel()
		std.SetOutput(oldOut)
		std.SetLevel(oldLevel)
		if t.Failed() {
			t.Logf("registry log:\n%s", r.logs.String())
		}
	})
	return r
}

// manifest fetches repo:tag's manifest as dockerd pushed it and returns
// its media type and its config's media type.
func (r *loopRegistry) manifest(t *testing.T, repo, tag string) (mediaType, configType string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+r.host+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", strings.Join([]string{
		"application/vnd.docker.distribution.manifest.v2+json",
		"application/vnd.oci.image.manifest.v1+json",
	}, ", "))
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("registry: GET %s: %d %s (%v)", req.URL, resp.StatusCode, body, err)
	}
	var m struct {
		MediaType string `json:"mediaType"`
		Config    struct {
			MediaType string `json:"mediaType"`
		} `json:"config"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("registry: manifest %s: %v", body, err)
	}
	return m.MediaType, m.Config.MediaType
}

// registryLog is a bytes.Buffer safe for concurrent writers.
type registryLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *registryLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *registryLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
