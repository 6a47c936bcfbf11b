package authz

import (
	"strings"
	"testing"
)

func TestExposes(t *testing.T) {
	pp, err := NewProtectedPaths([]string{"/var/run/docker.sock", "/srv/hub/secret.sock"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, source, want string
	}{
		{"the socket itself", "/var/run/docker.sock", "/var/run/docker.sock"},
		{"the socket under /run", "/run/docker.sock", "/var/run/docker.sock"},
		{"parent /var/run", "/var/run", "/var/run/docker.sock"},
		{"parent /run", "/run", "/var/run/docker.sock"},
		{"parent /var", "/var", "/var/run/docker.sock"},
		{"host root", "/", "/var/run/docker.sock"},
		{"repeated slashes", "//var//run//docker.sock", "/var/run/docker.sock"},
		{"dot segments", "/var/./run/./docker.sock", "/var/run/docker.sock"},
		{"dot-dot segments", "/var/lib/../run/docker.sock", "/var/run/docker.sock"},
		{"trailing slash", "/run/", "/var/run/docker.sock"},
		{"second protected path", "/srv/hub", "/srv/hub/secret.sock"},
		{"proc self root", "/proc/self/root/run/docker.sock", "/var/run/docker.sock"},
		{"proc thread-self root", "/proc/thread-self/root/var/run/docker.sock", "/var/run/docker.sock"},
		{"proc pid root is host root", "/proc/1/root", "/var/run/docker.sock"},
		{"nested proc roots", "/proc/self/root/proc/1/root/run", "/var/run/docker.sock"},
		{"proc pid fd", "/proc/self/fd/3", "/var/run/docker.sock"},
		{"proc pid cwd", "/proc/self/cwd/docker.sock", "/var/run/docker.sock"},
		{"proc pid dir", "/proc/42", "/var/run/docker.sock"},
		{"proc itself", "/proc", "/var/run/docker.sock"},
		{"sibling with socket prefix", "/run/docker.sock.d", ""},
		{"sibling directory with prefix", "/run/docker", ""},
		{"child of the socket path", "/run/docker.sock/x", ""},
		{"home directory", "/home/alice", ""},
		{"other var directory", "/var/lib/docker", ""},
		{"proc root of another path", "/proc/self/root/home/alice", ""},
		{"proc non-process file", "/proc/cpuinfo", ""},
		{"named volume", "jupyterhub-user-bob", ""},
		{"relative path", "var/run/docker.sock", ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := pp.Exposes(tt.source)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("Exposes(%q) = %q, %v; want %q", tt.source, got, ok, tt.want)
			}
		})
	}
}

func TestNewProtectedPathsRejectsRelative(t *testing.T) {
	if _, err := NewProtectedPaths([]string{"docker.sock"}); err == nil {
		t.Fatal("a relative protected path was accepted")
	}
	if _, err := NewProtectedPaths([]string{" ", ""}); err == nil {
		t.Fatal("an empty list of protected paths was accepted")
	}
}

func TestProtectedPathUnderRunCoversVarRun(t *testing.T) {
	pp, err := NewProtectedPaths([]string{"/run/user/1000/docker.sock"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"/var/run/user/1000/docker.sock", "/var/run/user", "/run/user/1000/"} {
		if _, ok := pp.Exposes(s); !ok {
			t.Errorf("%q does not expose /run/user/1000/docker.sock", s)
		}
	}
}

type prefixResolver struct{ from, to string }

func (r prefixResolver) Resolve(s string) (string, error) {
	if rest, ok := strings.CutPrefix(s, r.from); ok {
		return r.to + rest, nil
	}
	return s, nil
}

// TestProtectedPathsResolvedThroughTheHostRoot: a protected socket under a
// linked directory is also protected under the directory's real name.
func TestProtectedPathsResolvedThroughTheHostRoot(t *testing.T) {
	pp, err := NewProtectedPaths([]string{"/srv/sockets/docker.sock"})
	if err != nil {
		t.Fatal(err)
	}
	pp = pp.Resolved(prefixResolver{"/srv", "/data/srv"})
	for _, src := range []string{"/data/srv/sockets/docker.sock", "/data/srv", "/data", "/srv/sockets"} {
		if _, ok := pp.Exposes(src); !ok {
			t.Errorf("%s does not expose the resolved socket", src)
		}
	}
	if _, ok := pp.Exposes("/data/other"); ok {
		t.Error("/data/other exposes the socket")
	}
}
