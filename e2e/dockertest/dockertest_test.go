package dockertest

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const createBody = `{"Image":"bb:latest","Cmd":["true"]}`

var jsonHeader = http.Header{"Content-Type": {"application/json"}}

func TestContainerRuns(t *testing.T) {
	d := Start(t, Options{})
	if got := d.MustDocker(t, "run", "--rm", "--network", "none", Image, "echo", "hi"); got != "hi\n" {
		t.Fatalf("docker run echo hi printed %q, want %q", got, "hi\n")
	}

	t.Run("API chunked create", func(t *testing.T) {
		h := http.Header{"Content-Type": {"application/json"}, "Transfer-Encoding": {"chunked"}}
		status, body := d.API(t, "POST", "/v1.41/containers/create?name=chunked", h, strings.NewReader(createBody))
		if status != http.StatusCreated {
			t.Fatalf("chunked create: %d %s", status, body)
		}
		if got := d.MustDocker(t, "inspect", "--format", "{{.Path}}", "chunked"); got != "true\n" {
			t.Fatalf("container created with a chunked body runs %q, want true", got)
		}
	})
}

func TestAuthzPluginDeniesCreate(t *testing.T) {
	p := startDenyPlugin(t)
	d := Start(t, Options{AuthzPlugins: []string{p.name}})
	want := "authorization denied by plugin " + p.name + ": test deny"

	version := d.MustDocker(t, "version", "--format", "{{.Server.Version}} API {{.Server.APIVersion}}")
	t.Logf("docker version through the plugin: %s", strings.TrimSpace(version))

	stdout, stderr, err := d.Docker(t, "create", Image, "true")
	if err == nil {
		t.Fatalf("docker create succeeded (%q) despite the plugin", stdout)
	}
	if !strings.Contains(stderr, want) {
		t.Fatalf("docker create stderr = %q, want it to contain %q", stderr, want)
	}
	t.Logf("CLI stderr on deny: %q", stderr)

	status, body := d.API(t, "POST", "/v1.41/containers/create", jsonHeader, strings.NewReader(createBody))
	if status != http.StatusForbidden || !strings.Contains(string(body), want) {
		t.Fatalf("raw create: %d %s, want 403 containing %q", status, body, want)
	}
	t.Logf("raw API on deny: %d %s", status, body)

	// The request URI reaches dockerd, and so the plugin, undecoded.
	status, body = d.API(t, "POST", "/v1.41/containers%2Fcreate?name=encoded", jsonHeader, strings.NewReader(createBody))
	if !p.saw("POST", "/v1.41/containers%2Fcreate?name=encoded") {
		t.Fatalf("plugin did not see the raw URI; it saw %q", p.seen())
	}
	t.Logf("POST /v1.41/containers%%2Fcreate (allowed by this naive plugin): %d %s", status, body)
}

func TestReloadAddsPlugin(t *testing.T) {
	p := startDenyPlugin(t)
	d := Start(t, Options{})
	d.MustDocker(t, "create", Image, "true")

	d.Reload(t, map[string]any{"authorization-plugins": []string{p.name}})
	_, stderr, err := d.Docker(t, "create", Image, "true")
	want := "authorization denied by plugin " + p.name + ": test deny"
	if err == nil || !strings.Contains(stderr, want) {
		t.Fatalf("after reload, docker create: err=%v stderr=%q, want a deny containing %q", err, stderr, want)
	}

	d.Reload(t, nil)
	d.MustDocker(t, "create", Image, "true")
}

func TestTwoDaemonsAtOnce(t *testing.T) {
	a := Start(t, Options{})
	b := Start(t, Options{})
	a.MustDocker(t, "create", "--name", "only-in-a", Image, "true")
	if got := b.MustDocker(t, "ps", "-aq", "--filter", "name=only-in-a"); got != "" {
		t.Fatalf("daemon b sees daemon a's container: %q", got)
	}

	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	for i, d := range []*Daemon{a, b} {
		wg.Go(func() {
			var stderr string
			outs[i], stderr, errs[i] = d.Docker(t, "run", "--rm", "--network", "none", Image, "echo", "hi")
			if errs[i] != nil {
				errs[i] = errors.New(stderr)
			}
		})
	}
	wg.Wait()
	for i := range outs {
		if errs[i] != nil || outs[i] != "hi\n" {
			t.Errorf("daemon %d: run echo hi: %q, %v", i, outs[i], errs[i])
		}
	}
}

func TestPrivateContainerdWhenSystemOneExists(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "containerd.sock")
	if err := os.WriteFile(fake, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	saved := systemContainerdSocket
	systemContainerdSocket = fake
	t.Cleanup(func() { systemContainerdSocket = saved })

	d := Start(t, Options{})
	if d.containerd == nil {
		t.Fatal("Start did not start a private containerd")
	}
	if strings.Contains(d.Log(), "started new containerd process") {
		t.Fatal("dockerd started its own containerd despite --containerd")
	}
	if got := d.MustDocker(t, "run", "--rm", "--network", "none", Image, "echo", "hi"); got != "hi\n" {
		t.Fatalf("docker run echo hi printed %q", got)
	}
}

func TestStopCleansUp(t *testing.T) {
	d := Start(t, Options{ListenSystemSocket: true})
	d.MustDocker(t, "run", "-d", "--stop-timeout", "1", "--network", "none", Image, "sleep", "300")
	if d.SystemSocket {
		if err := pingSocket(systemSocket); err != nil {
			t.Fatalf("daemon claims %s but it does not answer: %v", systemSocket, err)
		}
	} else {
		t.Logf("%s was not free; not testing it", systemSocket)
	}
	pid := d.dockerd.pid

	d.Stop(t)
	d.Stop(t) // idempotent
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("dockerd pid %d still exists after Stop (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(d.Dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still exists after Stop (%v)", d.Dir, err)
	}
	if m, _ := mountsUnder(d.Dir); len(m) > 0 {
		t.Errorf("mounts left after Stop: %v", m)
	}
	if d.SystemSocket {
		if _, err := os.Lstat(systemSocket); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still exists after Stop (%v)", systemSocket, err)
		}
	}
}

// pingSocket sends GET /_ping to the daemon listening on a unix socket.
func pingSocket(path string) error {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
	resp, err := c.Get("http://docker/_ping")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

func TestReloadReportsRejectedConfig(t *testing.T) {
	d := Start(t, Options{})
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Reload(rec, map[string]any{"no-such-option": true})
	}()
	<-done
	if !strings.Contains(rec.msg, "no-such-option") {
		t.Fatalf("Reload with an unknown option: fatal message %q, want one naming the option", rec.msg)
	}
	d.MustDocker(t, "version") // the daemon keeps its old configuration
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends
// the calling goroutine, so a test can check how a helper fails.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper() {}

func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}
