package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hubauthz/hubauthz/e2e/dockertest"
)

// socketDir is the directory holding the private dockerd's socket, which
// the suite protects: binding it exposes the socket.
func (s *stack) socketDir() string { return filepath.Dir(s.docker.Socket) }

// createRaw sends a raw POST to dockerd and returns the status and the
// error message (or the body when it is not an error document). It writes
// the body while it reads the answer, because dockerd may answer (and close)
// before it has read a body it will not forward.
func (s *stack) createRaw(t *testing.T, uri string, header http.Header, body []byte) (int, string) {
	t.Helper()
	if header == nil {
		header = http.Header{"Content-Type": {"application/json"}}
	}
	conn, err := net.Dial("unix", s.docker.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	var head bytes.Buffer
	fmt.Fprintf(&head, "POST %s HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n", uri)
	chunked := header.Get("Transfer-Encoding") == "chunked"
	if !chunked {
		fmt.Fprintf(&head, "Content-Length: %d\r\n", len(body))
	}
	_ = header.Write(&head)
	head.WriteString("\r\n")
	go func() {
		_, _ = conn.Write(head.Bytes())
		if chunked {
			fmt.Fprintf(conn, "%x\r\n%s\r\n0\r\n\r\n", len(body), body)
		} else {
			_, _ = conn.Write(body)
		}
	}()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("POST %s: %v", uri, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	var e struct{ Message string }
	if json.Unmarshal(out, &e) == nil && e.Message != "" {
		return resp.StatusCode, e.Message
	}
	return resp.StatusCode, string(out)
}

// assertNoSocketContainer checks that no container on the daemon has a
// mount whose source reaches the protected socket or its directories.
func (s *stack) assertNoSocketContainer(t *testing.T) {
	t.Helper()
	ids := strings.Fields(s.docker.MustDocker(t, "ps", "-aq", "--no-trunc"))
	for _, id := range ids {
		out := s.docker.MustDocker(t, "inspect", "--format", "{{json .Mounts}}|{{index .Config.Labels \"hub.jupyter.org/username\"}}", id)
		mounts, owner, _ := strings.Cut(strings.TrimSpace(out), "|")
		if owner != "bob" {
			continue
		}
		var ms []struct{ Source string }
		_ = json.Unmarshal([]byte(mounts), &ms)
		for _, m := range ms {
			for _, bad := range []string{"/", "/run", "/var/run", "/var", s.socketDir(), s.docker.Socket} {
				if m.Source == bad {
					t.Fatalf("container %s of bob has %s mounted", id[:12], m.Source)
				}
			}
		}
	}
}

func bobBody(extra string) []byte {
	return []byte(`{"Image":"` + dockertest.Image + `","Cmd":["true"],"Labels":{"hub.jupyter.org/username":"bob"}` + extra + `}`)
}

// testBypassClasses attempts every known way around the rule and checks
// that bob gets no socket, next to the legitimate traffic that must work.
func testBypassClasses(t *testing.T, s *stack) {
	dir := s.socketDir()
	t.Run("named volume binding the socket directory", func(t *testing.T) {
		s.docker.MustDocker(t, "volume", "create", "--driver", "local", "--opt", "type=none", "--opt", "o=bind", "--opt", "device="+dir, "sockvol")
		s.denied(t, notMember, "create", label("bob"), "-v", "sockvol:/x", dockertest.Image, "true")
		s.denied(t, notMember, "create", label("bob"), "--mount", "type=volume,src=sockvol,dst=/x", dockertest.Image, "true")
	})
	t.Run("volume recreated with bind options under a cached name", func(t *testing.T) {
		s.docker.MustDocker(t, "volume", "create", "swapvol")
		s.docker.MustDocker(t, "create", "--name", "uses-swapvol", label("bob"), "-v", "swapvol:/x", dockertest.Image, "true") // cached as plain
		s.docker.MustDocker(t, "rm", "uses-swapvol")
		s.docker.MustDocker(t, "volume", "rm", "swapvol")
		s.docker.MustDocker(t, "volume", "create", "--opt", "type=none", "--opt", "o=bind", "--opt", "device="+dir, "swapvol")
		s.denied(t, notMember, "create", label("bob"), "-v", "swapvol:/x", dockertest.Image, "true")
	})
	t.Run("inline volume options binding the socket directory", func(t *testing.T) {
		s.denied(t, notMember, "create", label("bob"), "--mount",
			"type=volume,src=inline1,dst=/x,volume-opt=type=none,volume-opt=o=bind,volume-opt=device="+dir, dockertest.Image, "true")
	})
	t.Run("volumes-from a container holding the socket", func(t *testing.T) {
		s.docker.MustDocker(t, "create", "--name", "hubctr", "-v", s.docker.Socket+":/var/run/docker.sock", dockertest.Image, "true")
		s.denied(t, notMember, "create", label("bob"), "--volumes-from", "hubctr:ro", dockertest.Image, "true")
	})
	t.Run("PID namespace of a container holding the socket", func(t *testing.T) {
		s.denied(t, notMember, "create", label("bob"), "--pid", "container:hubctr", dockertest.Image, "true")
		s.denied(t, notMember, "create", label("bob"), "--pid", "host", dockertest.Image, "true")
	})
	t.Run("volume of type proc", func(t *testing.T) {
		s.denied(t, notMember, "create", label("bob"), "--mount", "type=volume,src=hostproc,dst=/hp,volume-opt=type=proc,volume-opt=device=proc", dockertest.Image, "true")
	})
	t.Run("host config in a start body (API 1.23)", func(t *testing.T) {
		s.docker.MustDocker(t, "create", "--name", "jupyter-bob-old-api", "--network=none", label("bob"), dockertest.Image, "true")
		status, msg := s.createRaw(t, "/v1.23/containers/jupyter-bob-old-api/start", nil, []byte(`{"Binds":["`+s.docker.Socket+`:/var/run/docker.sock"]}`))
		if status != http.StatusForbidden || !strings.Contains(msg, notMember) {
			t.Fatalf("start with a host config body: %d %s", status, msg)
		}
		s.docker.MustDocker(t, "rm", "-f", "jupyter-bob-old-api")
	})
	t.Run("reused container after its owner left the group", func(t *testing.T) {
		s.hub.AddMembers(t, group, "bob")
		waitFor(t, settle, func() string { return s.tryMember(t, "bob", true) })
		s.docker.MustDocker(t, "create", "--name", "jupyter-bob-old", "--network=none", label("bob"), "-v", s.docker.Socket+":/var/run/docker.sock", dockertest.Image, "sleep", "30")
		s.hub.RemoveMembers(t, group, "bob")
		waitFor(t, settle, func() string { return s.tryMember(t, "bob", false) })
		_, stderr, err := s.docker.Docker(t, "start", "jupyter-bob-old")
		if err == nil || !strings.Contains(stderr, notMember) {
			t.Fatalf("stopped container with the socket started for a former member: %v %q", err, stderr)
		}
		if out := strings.TrimSpace(s.docker.MustDocker(t, "inspect", "--format", "{{.State.Running}}", "jupyter-bob-old")); out != "false" {
			t.Fatalf("container running: %s", out)
		}
		_, stderr, err = s.docker.Docker(t, "restart", "jupyter-bob-old")
		if err == nil || !strings.Contains(stderr, notMember) {
			t.Fatalf("restart allowed for a former member: %v %q", err, stderr)
		}
		s.docker.MustDocker(t, "rm", "-f", "jupyter-bob-old")
	})
	t.Run("service with the socket", func(t *testing.T) {
		body := `{"Name":"svc-bob","TaskTemplate":{"ContainerSpec":{"Image":"bb","Labels":{"hub.jupyter.org/username":"bob"},"Mounts":[{"Type":"bind","Source":"/var/run/docker.sock","Target":"/s"}]}}}`
		status, out := s.createRaw(t, "/v1.41/services/create", nil, []byte(body))
		if status != http.StatusForbidden || !strings.Contains(out, notMember) {
			t.Fatalf("service with the socket: %d %s", status, out)
		}
		// Without the socket the plugin lets it through: dockerd then says it is no swarm manager.
		status, out = s.createRaw(t, "/v1.41/services/create", nil, []byte(strings.Replace(body, "/var/run/docker.sock", "/home/bob", 1)))
		if status == http.StatusForbidden {
			t.Fatalf("plain service refused by the plugin: %s", out)
		}
	})
	t.Run("magic link to the host root", func(t *testing.T) {
		s.denied(t, notMember, "create", label("bob"), "-v", "/proc/self/root"+s.docker.Socket+":/s", dockertest.Image, "true")
		s.denied(t, notMember, "create", label("bob"), "-v", "/proc/1/root/run:/s", dockertest.Image, "true")
	})
	t.Run("spellings of the socket path", func(t *testing.T) {
		for _, src := range []string{"/var/run/docker.sock", "/run/docker.sock", "//var//run//docker.sock", "/var/lib/../run/docker.sock", "/var/run/", "/", dir + "/./docker.sock"} {
			s.denied(t, notMember, "create", label("bob"), "-v", src+":/s", dockertest.Image, "true")
		}
	})
	testSymlinks(t, s)
	testBodiesAndRoutes(t, s)
	testLegitimateTraffic(t, s)
	s.assertNoSocketContainer(t)
}

// testBodiesAndRoutes sends the odd wire forms straight to dockerd. Each is
// either decided exactly as dockerd acts on it, or denied.
func testBodiesAndRoutes(t *testing.T, s *stack) {
	bind := `,"HostConfig":{"Binds":["` + s.docker.Socket + `:/s"]}`
	plain := http.Header{"Content-Type": {"application/json"}}
	cases := []struct {
		name     string
		uri      string
		header   http.Header
		body     []byte
		wantDeny string
	}{
		{"charset content type", "/v1.41/containers/create", http.Header{"Content-Type": {"application/json; charset=utf-8"}}, bobBody(bind), notMember},
		{"chunked transfer", "/v1.41/containers/create", http.Header{"Content-Type": {"application/json"}, "Transfer-Encoding": {"chunked"}}, bobBody(bind), ""},
		{"lower-case keys", "/v1.41/containers/create", plain, []byte(`{"image":"bb:latest","labels":{"hub.jupyter.org/username":"bob"},"hostconfig":{"binds":["` + s.docker.Socket + `:/s"]}}`), ""},
		{"duplicate keys, last exposes", "/v1.41/containers/create", plain, bobBody(`,"HostConfig":{"Binds":[]},"HostConfig":{"Binds":["` + s.docker.Socket + `:/s"]}`), ""},
		{"deprecated top-level binds", "/v1.41/containers/create", plain, bobBody(`,"Binds":["` + s.docker.Socket + `:/s"]`), ""},
		{"encoded slash in the path", "/v1.41/containers%2Fcreate", plain, bobBody(bind), ""},
		{"unversioned path", "/containers/create", plain, bobBody(bind), ""},
		{"absolute-form request target", "http://docker/v1.41/containers/create", plain, bobBody(bind), notMember},
		{"odd version", "/v1.4/containers/create", plain, bobBody(bind), ""},
		{"body over 1 MiB", "/v1.41/containers/create", plain, bobBody(`,"Env":["PAD=` + strings.Repeat("x", 1<<20) + `"]` + bind), "cannot inspect request body"},
		{"body over 1 MiB without the socket", "/v1.41/containers/create", plain, bobBody(`,"Env":["PAD=` + strings.Repeat("x", 1<<20) + `"]`), "cannot inspect request body"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, out := s.createRaw(t, c.uri, c.header, c.body)
			if status == http.StatusCreated {
				t.Fatalf("dockerd created bob's container with the socket: %s", out)
			}
			if status == http.StatusForbidden && !strings.Contains(out, "authorization denied by plugin "+s.name) {
				t.Fatalf("403 not from the plugin: %s", out)
			}
			if c.wantDeny != "" && (status != http.StatusForbidden || !strings.Contains(out, c.wantDeny)) {
				t.Fatalf("%d %s; want a deny saying %q", status, out, c.wantDeny)
			}
			t.Logf("%d %s", status, truncate(out))
		})
	}
	t.Run("chunked create without the socket is decided, not lost", func(t *testing.T) {
		status, out := s.createRaw(t, "/v1.41/containers/create", http.Header{"Content-Type": {"application/json"}, "Transfer-Encoding": {"chunked"}}, bobBody(""))
		if status != http.StatusCreated && !strings.Contains(out, "cannot inspect request body") {
			t.Fatalf("chunked plain create: %d %s", status, out)
		}
		t.Logf("%d %s", status, truncate(out))
	})
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// testLegitimateTraffic shows that the hub's own traffic keeps working.
func testLegitimateTraffic(t *testing.T, s *stack) {
	home, err := os.MkdirTemp("", "home-bob")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(home) })
	ok := func(t *testing.T, args ...string) {
		t.Helper()
		if _, stderr, err := s.run(t, args...); err != nil {
			t.Fatalf("docker run %v refused: %v %s", args, err, stderr)
		}
	}
	t.Run("home-directory bind", func(t *testing.T) { ok(t, label("bob"), "-v", home+":/home/jovyan", dockertest.Image, "true") })
	t.Run("plain named volume", func(t *testing.T) {
		ok(t, label("bob"), "-v", "jupyterhub-user-bob:/home/jovyan/work", dockertest.Image, "true")
	})
	t.Run("unowned certs helper", func(t *testing.T) { ok(t, "-v", "certs:/certs", dockertest.Image, "true") })
	t.Run("the hub container itself", func(t *testing.T) {
		ok(t, "--name", "jupyterhub", "-v", s.docker.Socket+":/var/run/docker.sock", dockertest.Image, "test", "-S", "/var/run/docker.sock")
	})
	t.Run("volumes-from a container without the socket", func(t *testing.T) {
		s.docker.MustDocker(t, "create", "--name", "data-bob", "-v", "jupyterhub-user-bob:/data", dockertest.Image, "true")
		ok(t, label("bob"), "--volumes-from", "data-bob", dockertest.Image, "true")
	})
	t.Run("stopped server without the socket starts again", func(t *testing.T) {
		s.docker.MustDocker(t, "create", "--name", "jupyter-bob-plain", "--network=none", label("bob"), dockertest.Image, "true")
		s.docker.MustDocker(t, "start", "jupyter-bob-plain")
	})
}

// testSymlinks shows that links in bind sources are followed on the host:
// through the host root in the managed plugin, and directly in legacy mode.
func testSymlinks(t *testing.T, s *stack) {
	dir, err := os.MkdirTemp("", "links")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink(s.socketDir(), filepath.Join(dir, "to-socket-dir")))                      // absolute link to the directory
	must(os.Symlink(s.docker.Socket, filepath.Join(dir, "to-socket")))                        // absolute link to the socket
	must(os.Symlink("to-socket", filepath.Join(dir, "chain")))                                // relative link to a link
	must(os.Symlink("../"+filepath.Base(dir)+"/to-socket-dir", filepath.Join(dir, "dotdot"))) // relative link with ..
	must(os.Symlink("/proc/self/root", filepath.Join(dir, "to-proc-root")))                   // link to the magic link
	must(os.Symlink("loop-b", filepath.Join(dir, "loop-a")))
	must(os.Symlink("loop-a", filepath.Join(dir, "loop-b")))
	for _, src := range []string{"to-socket-dir", "to-socket-dir/docker.sock", "to-socket", "chain", "dotdot/docker.sock", "to-proc-root" + s.docker.Socket} {
		t.Run("link "+src, func(t *testing.T) {
			s.denied(t, notMember, "create", label("bob"), "-v", filepath.Join(dir, src)+":/s", dockertest.Image, "true")
		})
	}
	t.Run("link loop", func(t *testing.T) {
		s.denied(t, "too many levels of symbolic links", "create", label("bob"), "-v", filepath.Join(dir, "loop-a")+":/s", dockertest.Image, "true")
	})
	t.Run("link elsewhere is fine", func(t *testing.T) {
		home := filepath.Join(dir, "home")
		must(os.Mkdir(home, 0o755))
		must(os.Symlink(home, filepath.Join(dir, "to-home")))
		if _, stderr, err := s.run(t, label("bob"), "-v", filepath.Join(dir, "to-home")+":/home/jovyan", dockertest.Image, "true"); err != nil {
			t.Fatalf("link to a home directory refused: %s", stderr)
		}
	})
}
