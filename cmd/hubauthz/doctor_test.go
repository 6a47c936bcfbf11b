package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hubauthz/hubauthz/e2e/dockertest"
	"github.com/hubauthz/hubauthz/hub/hubtest"
)

// leastPrivilege is the role docs/jupyterhub.md gives the hubauthz service.
var leastPrivilege = []string{"read:groups!group=docker-privileged", "admin:groups!group=docker-privileged"}

// doctorDir returns a short temporary directory, so socket paths fit.
func doctorDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "hzd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startDoctorPlugin serves the real plugin in-process on a new socket,
// asking the hub at hubURL, and returns the socket's path.
func startDoctorPlugin(t *testing.T, hubURL, token string) string {
	t.Helper()
	env := map[string]string{"HUBAUTHZ_SOCKET": filepath.Join(doctorDir(t), "hubauthz.sock"),
		"JUPYTERHUB_API_URL": hubURL, "JUPYTERHUB_API_TOKEN": token, "HUBAUTHZ_JOURNAL": "off"}
	cfg, err := loadConfig(nil, envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, log := make(chan error, 1), &syncBuffer{}
	go func() { done <- serve(ctx, cfg, log, make(chan struct{})) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("plugin: %v; log:\n%s", err, log)
		}
	})
	for i := 0; ; i++ {
		if c, err := net.Dial("unix", cfg.Socket); err == nil {
			c.Close()
			return cfg.Socket
		}
		if i > 250 {
			t.Fatalf("plugin socket never appeared; log:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// doctorRun runs `hubauthz doctor args` with env and checks what every run
// must satisfy: one line per check, each "ok  " or "FAIL", a fix on each
// failure, the exit code matching, and the token nowhere.
func doctorRun(t *testing.T, env map[string]string, args ...string) (int, map[string]string) {
	t.Helper()
	var out, errw bytes.Buffer
	code := run(append([]string{"doctor"}, args...), envOf(env), &out, &errw)
	t.Logf("hubauthz doctor: exit %d\n%s%s", code, out.String(), errw.String())
	if tok := env["JUPYTERHUB_API_TOKEN"]; tok != "" && strings.Contains(out.String()+errw.String(), tok) {
		t.Fatal("the token appears in doctor's output")
	}
	lines, failed := map[string]string{}, false
	for _, l := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		status, rest, _ := strings.Cut(l, " ")
		name, _, _ := strings.Cut(strings.TrimLeft(rest, " "), ":")
		if (status != "ok" || !strings.HasPrefix(l, "ok   ")) && status != "FAIL" {
			t.Fatalf("line %q starts neither with ok nor with FAIL", l)
		}
		if status == "FAIL" && !strings.Contains(l, "; fix: ") {
			t.Errorf("failure without a fix: %q", l)
		}
		failed = failed || status == "FAIL"
		lines[name] = l
	}
	if want := map[bool]int{false: 0, true: 1}[failed]; code != want {
		t.Errorf("exit %d, want %d", code, want)
	}
	return code, lines
}

// wantLines checks each check's status and that its line says says.
func wantLines(t *testing.T, lines map[string]string, want map[string]string) {
	t.Helper()
	if len(lines) != len(want) {
		t.Errorf("got %d lines, want %d", len(lines), len(want))
	}
	for name, says := range want {
		status, text, _ := strings.Cut(says, " ")
		if l := lines[name]; !strings.HasPrefix(l, status) || !strings.Contains(l, text) {
			t.Errorf("%s line %q; want %s containing %q", name, l, status, text)
		}
	}
}

func TestDoctorAllPass(t *testing.T) {
	h := hubtest.Start(t, hubtest.Options{Scopes: leastPrivilege})
	d := dockertest.Start(t, dockertest.Options{})
	sock := startDoctorPlugin(t, h.APIURL, h.Token)
	code, lines := doctorRun(t, map[string]string{"JUPYTERHUB_API_URL": h.APIURL, "JUPYTERHUB_API_TOKEN": h.Token,
		"DOCKER_HOST": d.Host}, "--socket", sock)
	if code != 0 {
		t.Fatalf("exit %d, want 0", code)
	}
	wantLines(t, lines, map[string]string{
		"hub":    "ok JupyterHub 3.",
		"token":  `ok the token of service "hubauthz" has read:groups and admin:groups for group "docker-privileged"`,
		"group":  `ok group "docker-privileged" exists with 1 member(s)`,
		"docker": "ok dockerd at " + d.Host + " answers, API version 1.",
		"plugin": "ok hubauthz answers Plugin.Activate on " + sock,
	})
}

func TestDoctorFailures(t *testing.T) {
	d := dockertest.Start(t, dockertest.Options{})
	shared := hubtest.Start(t, hubtest.Options{Scopes: leastPrivilege})
	narrow := hubtest.Start(t, hubtest.Options{Scopes: []string{"read:users"}})
	deadHub := "http://127.0.0.1:1/hub/api" // for plugins that must not touch the hub under test
	envFor := func(h *hubtest.Hub, sock string) map[string]string {
		return map[string]string{"JUPYTERHUB_API_URL": h.APIURL, "JUPYTERHUB_API_TOKEN": h.Token,
			"DOCKER_HOST": d.Host, "HUBAUTHZ_SOCKET": sock, "HUBAUTHZ_HUB_TIMEOUT": "1s"}
	}

	t.Run("token lacks scopes", func(t *testing.T) {
		_, lines := doctorRun(t, envFor(narrow, startDoctorPlugin(t, deadHub, "x")))
		wantLines(t, lines, map[string]string{"hub": "ok ", "docker": "ok ", "plugin": "ok ",
			"token": `FAIL lacks read:groups and admin:groups for group "docker-privileged" (it has: read:users`,
			"group": "FAIL 403 Forbidden"})
		if !strings.Contains(lines["token"], "fix: give the hubauthz service a role with read:groups and admin:groups") {
			t.Errorf("token line without the role fix: %q", lines["token"])
		}
	})
	t.Run("hub lists no scopes", func(t *testing.T) {
		sock := startDoctorPlugin(t, deadHub, "x")
		env := envFor(shared, sock)
		env["JUPYTERHUB_API_URL"] = withoutScopes(t, shared.APIURL)
		_, lines := doctorRun(t, env)
		wantLines(t, lines, map[string]string{"hub": "ok ", "group": "ok ", "docker": "ok ", "plugin": "ok ",
			"token": `ok the token reads group "docker-privileged" (the hub lists no scopes`})
		env = envFor(narrow, sock)
		env["JUPYTERHUB_API_URL"] = withoutScopes(t, narrow.APIURL)
		_, lines = doctorRun(t, env)
		wantLines(t, lines, map[string]string{"hub": "ok ", "group": "FAIL 403", "docker": "ok ", "plugin": "ok ",
			"token": `FAIL the hub lists no scopes for the token, and cannot read group "docker-privileged": GET /groups/docker-privileged answered 403`})
	})
	t.Run("token refused", func(t *testing.T) {
		env := envFor(shared, startDoctorPlugin(t, deadHub, "x"))
		env["JUPYTERHUB_API_TOKEN"] = "not-the-hubauthz-token"
		_, lines := doctorRun(t, env)
		wantLines(t, lines, map[string]string{"hub": "ok ", "docker": "ok ", "plugin": "ok ",
			"token": "FAIL the hub refused the token: GET /user answered 403 Forbidden", "group": "FAIL 403 Forbidden"})
	})
	t.Run("group missing", func(t *testing.T) {
		h := hubtest.Start(t, hubtest.Options{Scopes: leastPrivilege, Groups: map[string][]string{}})
		_, lines := doctorRun(t, envFor(h, startDoctorPlugin(t, deadHub, "x")))
		wantLines(t, lines, map[string]string{"hub": "ok ", "token": "ok ", "docker": "ok ", "plugin": "ok ",
			"group": `FAIL group "docker-privileged" does not exist in the hub (GET /groups/docker-privileged answered 404`})
		if !strings.HasSuffix(lines["group"], "fix: hubauthz creates it at start-up, or create it: POST /groups/docker-privileged") {
			t.Errorf("group line without the fix: %q", lines["group"])
		}
		if h.GroupExists(t, hubtest.PrivilegedGroup) {
			t.Fatal("doctor created the group")
		}
	})
	t.Run("hub down", func(t *testing.T) {
		h := hubtest.Start(t, hubtest.Options{Scopes: leastPrivilege})
		sock := startDoctorPlugin(t, h.APIURL, h.Token)
		h.Stop(t)
		_, lines := doctorRun(t, envFor(h, sock))
		wantLines(t, lines, map[string]string{"docker": "ok ", "plugin": "ok ",
			"hub":   "FAIL cannot reach the hub at " + h.APIURL + ": GET /: dial tcp",
			"token": "FAIL cannot ask the hub", "group": "FAIL cannot read group"})
		if !strings.Contains(lines["hub"], "; fix: start JupyterHub, or set JUPYTERHUB_API_URL") {
			t.Errorf("hub line without the fix: %q", lines["hub"])
		}
	})
	t.Run("hub hangs", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0") // accepts, never answers
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		env := envFor(shared, startDoctorPlugin(t, deadHub, "x"))
		env["JUPYTERHUB_API_URL"], env["HUBAUTHZ_HUB_TIMEOUT"] = "http://"+l.Addr().String()+"/hub/api", "300ms"
		began := time.Now()
		_, lines := doctorRun(t, env)
		if took := time.Since(began); took > 5*time.Second {
			t.Errorf("doctor took %v with a 300ms hub timeout", took)
		}
		wantLines(t, lines, map[string]string{"docker": "ok ", "plugin": "ok ",
			"hub":   "FAIL cannot reach the hub at http://" + l.Addr().String() + "/hub/api: GET /: no answer in time",
			"token": "FAIL cannot ask the hub", "group": "FAIL cannot read group"})
	})
	t.Run("plugin socket absent", func(t *testing.T) {
		sock := filepath.Join(doctorDir(t), "hubauthz.sock")
		_, lines := doctorRun(t, envFor(shared, "/elsewhere.sock"), "--socket", sock)
		wantLines(t, lines, map[string]string{"hub": "ok ", "token": "ok ", "group": "ok ", "docker": "ok ",
			"plugin": "FAIL no socket at " + sock + "; fix: start hubauthz"})
	})
	t.Run("plugin socket stale", func(t *testing.T) {
		sock := filepath.Join(doctorDir(t), "hubauthz.sock")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		l.SetUnlinkOnClose(false)
		l.Close()
		_, lines := doctorRun(t, envFor(shared, sock))
		wantLines(t, lines, map[string]string{"hub": "ok ", "token": "ok ", "group": "ok ", "docker": "ok ",
			"plugin": "FAIL " + sock + " does not answer Plugin.Activate"})
	})
	t.Run("docker absent", func(t *testing.T) {
		env := envFor(shared, startDoctorPlugin(t, deadHub, "x"))
		env["DOCKER_HOST"] = "unix://" + filepath.Join(doctorDir(t), "docker.sock")
		_, lines := doctorRun(t, env)
		wantLines(t, lines, map[string]string{"hub": "ok ", "token": "ok ", "group": "ok ", "plugin": "ok ",
			"docker": "FAIL dockerd does not answer /_ping: failed to connect to the docker API at " + env["DOCKER_HOST"]})
	})
}

// withoutScopes serves the hub at apiURL through a proxy that drops
// "scopes" from GET /user, like a hub that does not list a token's scopes.
func withoutScopes(t *testing.T, apiURL string) string {
	t.Helper()
	u, err := url.Parse(apiURL)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	rp.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasSuffix(resp.Request.URL.Path, "/user") || resp.StatusCode != http.StatusOK {
			return nil
		}
		var model map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&model); err != nil {
			return err
		}
		resp.Body.Close()
		delete(model, "scopes")
		b, _ := json.Marshal(model)
		resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		resp.Header.Del("Content-Length")
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL + u.Path
}

func TestDoctorInvalidConfiguration(t *testing.T) {
	d := dockertest.Start(t, dockertest.Options{})
	env := map[string]string{"JUPYTERHUB_API_URL": "http://127.0.0.1:1/hub/api", "DOCKER_HOST": d.Host}
	_, lines := doctorRun(t, env)
	wantLines(t, lines, map[string]string{"docker": "ok ",
		"configuration": "FAIL JUPYTERHUB_API_TOKEN or JUPYTERHUB_API_TOKEN_FILE is required; fix: set the variable or flag"})
	env["JUPYTERHUB_API_TOKEN"], env["JUPYTERHUB_API_URL"] = "s3cret-token", "ftp://hub/api"
	_, lines = doctorRun(t, env)
	wantLines(t, lines, map[string]string{"docker": "ok ", "configuration": "FAIL hub: API URL"})
	var out bytes.Buffer
	if code := doctor([]string{"-h"}, envOf(nil), &out, &out); code != 0 || !strings.Contains(out.String(), "HUBAUTHZ_SOCKET") {
		t.Fatalf("doctor -h: exit %d, %q", code, out.String())
	}
}
