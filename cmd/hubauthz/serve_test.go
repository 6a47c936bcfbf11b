package main

import (
	"bytes"
	"context"
	"encoding/json"
	"github.com/docker/go-plugins-helpers/authorization"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hubauthz/hubauthz/hub/hubtest"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type wireResponse struct {
	Allow bool
	Msg   string
	Err   string
}

// testPlugin serves the plugin on a temporary socket next to a real hub.
type testPlugin struct {
	hub    *hubtest.Hub
	socket string
	log    *syncBuffer
	flush  chan struct{}
	http   *http.Client
	stop   func() error
}

func startPlugin(t *testing.T, extraEnv map[string]string) *testPlugin {
	t.Helper()
	jh := hubtest.Start(t, hubtest.Options{})
	dir, err := os.MkdirTemp("", "hz")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	env := map[string]string{
		"HUBAUTHZ_SOCKET":      filepath.Join(dir, "hubauthz.sock"),
		"JUPYTERHUB_API_URL":   jh.APIURL,
		"JUPYTERHUB_API_TOKEN": jh.Token,
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	cfg, err := loadConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	p := &testPlugin{hub: jh, socket: cfg.Socket, log: &syncBuffer{}, flush: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, p.log, p.flush) }()
	var once sync.Once
	var stopErr error
	p.stop = func() error {
		once.Do(func() { cancel(); stopErr = <-done })
		return stopErr
	}
	t.Cleanup(func() { _ = p.stop() })
	p.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", p.socket)
		}}}
	for i := 0; ; i++ {
		if c, err := net.Dial("unix", p.socket); err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatalf("plugin socket never appeared; log:\n%s", p.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p
}

// post sends a raw plugin call the way dockerd's plugin client does.
func (p *testPlugin) post(t *testing.T, path string, body []byte) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", "http://plugin"+path, bytes.NewReader(body))
	req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	req.Header.Set("Content-Type", "application/vnd.docker.plugins.v1.2+json")
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}

func (p *testPlugin) authz(t *testing.T, method, uri, contentType string, body []byte) wireResponse {
	t.Helper()
	in, _ := json.Marshal(authorization.Request{RequestMethod: method, RequestURI: uri, RequestBody: body,
		RequestHeaders: map[string]string{"Content-Type": contentType, "User-Agent": "docker-py/7"}})
	status, out := p.post(t, "/AuthZPlugin.AuthZReq", in)
	var r wireResponse
	if err := json.Unmarshal(out, &r); err != nil || status != 200 {
		t.Fatalf("AuthZReq answered %d %q", status, out)
	}
	return r
}

// flushCache empties the membership cache as SIGHUP does, and waits for it.
func (p *testPlugin) flushCache(t *testing.T) {
	t.Helper()
	n := strings.Count(p.log.String(), "membership cache flushed")
	p.flush <- struct{}{}
	for i := 0; strings.Count(p.log.String(), "membership cache flushed") == n; i++ {
		if i > 200 {
			t.Fatal("flush not logged")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPluginActivate(t *testing.T) {
	p := startPlugin(t, nil)
	status, out := p.post(t, "/Plugin.Activate", nil)
	var m struct{ Implements []string }
	if err := json.Unmarshal(out, &m); err != nil || status != 200 || len(m.Implements) != 1 || m.Implements[0] != "authz" {
		t.Fatalf("Activate = %d %q", status, out)
	}
}

func TestPluginDecidesOverTheSocket(t *testing.T) {
	p := startPlugin(t, nil)
	bob := []byte(`{"Image":"bb","Labels":{"hub.jupyter.org/username":"bob"},"HostConfig":{"Binds":["/var/run/docker.sock:/var/run/docker.sock"]}}`)
	alice := bytes.ReplaceAll(bob, []byte("bob"), []byte("alice"))
	tests := []struct {
		name, method, uri, ctype string
		body                     []byte
		allow                    bool
		msgHas                   string
	}{
		{"non-member create with the socket", "POST", "/v1.41/containers/create?name=jupyter-bob", "application/json", bob, false, `user "bob" is not in the JupyterHub group "docker-privileged"`},
		{"charset content type", "POST", "/v1.41/containers/create", "application/json; charset=utf-8", bob, false, "bob"},
		{"member create with the socket", "POST", "/v1.41/containers/create?name=jupyter-alice", "application/json", alice, true, ""},
		{"chunked create forwarded without body", "POST", "/v1.41/containers/create", "application/json", nil, false, "cannot inspect request body"},
		{"unversioned encoded create", "POST", "/containers%2Fcreate", "application/json", bob, false, "bob"},
		{"container list", "GET", "/v1.41/containers/json", "", nil, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := p.authz(t, tt.method, tt.uri, tt.ctype, tt.body)
			if r.Allow != tt.allow || !strings.Contains(r.Msg, tt.msgHas) || r.Err != "" {
				t.Fatalf("got %+v; want allow %v with message containing %q", r, tt.allow, tt.msgHas)
			}
		})
	}
	status, out := p.post(t, "/AuthZPlugin.AuthZRes", []byte(`{"RequestMethod":"POST","RequestUri":"/containers/create","ResponseStatusCode":201}`))
	if status != 200 || !bytes.Contains(out, []byte(`"Allow":true`)) {
		t.Fatalf("AuthZRes = %d %s", status, out)
	}
	assertAudit(t, p.log.String(), p.hub.Token)
}

// assertAudit checks the JSON audit records and that the token is absent.
func assertAudit(t *testing.T, log, token string) {
	t.Helper()
	if strings.Contains(log, token) {
		t.Fatal("the hub token appears in the log")
	}
	var deny, allow map[string]any
	for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line is not JSON: %q", line)
		}
		switch {
		case rec["decision"] == "deny" && rec["user"] == "bob" && deny == nil:
			deny = rec
		case rec["decision"] == "allow" && rec["user"] == "alice":
			allow = rec
		}
	}
	if deny == nil || allow == nil {
		t.Fatalf("missing audit records in:\n%s", log)
	}
	want := map[string]any{"level": "warning", "group": "docker-privileged", "container": "jupyter-bob", "image": "bb",
		"method": "POST", "route": "/containers/create", "api_version": "1.41", "reason": "not-member"}
	for k, v := range want {
		if deny[k] != v {
			t.Errorf("deny record %s = %v; want %v", k, deny[k], v)
		}
	}
	if src, _ := deny["sources"].([]any); len(src) != 1 || src[0] != "/var/run/docker.sock" {
		t.Errorf("deny record sources = %v", deny["sources"])
	}
	if allow["level"] != "info" {
		t.Errorf("allow record level = %v; want info", allow["level"])
	}
}

func TestPluginSurvivesBrokenWireRequests(t *testing.T) {
	p := startPlugin(t, nil)
	broken := [][]byte{
		[]byte(`not json`),
		[]byte(`{"RequestMethod":"POST","RequestUri":"/containers/create","RequestBody":"%%%"}`),
		[]byte(`{"RequestMethod":"POST","RequestUri":"/containers/create","RequestPeerCertificates":["bm90IHBlbQ=="]}`),
		[]byte(`{}`),
	}
	for _, b := range broken {
		status, out := p.post(t, "/AuthZPlugin.AuthZReq", b)
		if status == 200 && bytes.Contains(out, []byte(`"Allow":true`)) {
			t.Errorf("broken request %s was allowed: %d %s", b, status, out)
		}
	}
	// Still serving.
	if r := p.authz(t, "GET", "/_ping", "", nil); !r.Allow {
		t.Fatalf("plugin stopped answering after broken requests: %+v", r)
	}
}

func TestPluginStopsAndRemovesSocket(t *testing.T) {
	p := startPlugin(t, nil)
	p.flushCache(t)
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p.socket); !os.IsNotExist(err) {
		t.Fatalf("socket still present after stop: %v", err)
	}
}

func TestPluginWithHubDownDeniesAndKeepsServing(t *testing.T) {
	p := startPlugin(t, map[string]string{"HUBAUTHZ_HUB_TIMEOUT": "500ms"})
	p.hub.Stop(t)
	p.flushCache(t) // alice's membership was cached at start-up
	r := p.authz(t, "POST", "/v1.41/containers/create", "application/json",
		[]byte(`{"Labels":{"hub.jupyter.org/username":"alice"},"HostConfig":{"Binds":["/run:/r"]}}`))
	if r.Allow || !strings.Contains(r.Msg, "could not be checked") {
		t.Fatalf("hub down: %+v; want a deny naming the hub failure", r)
	}
	if r := p.authz(t, "POST", "/v1.41/containers/create", "application/json", []byte(`{"Image":"bb"}`)); !r.Allow {
		t.Fatalf("plain container refused while the hub is down: %+v", r)
	}
	if strings.Contains(p.log.String(), p.hub.Token) {
		t.Fatal("token in log")
	}
}
