package authz

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fakeHostLinks are the symlinks of the fake host root, as link path and
// target.
var fakeHostLinks = [][2]string{
	{"var/run", "/run"},
	{"run/fakeonly", "/run/docker.sock"}, // exists only in the fake root
	{"srv/a", "../run"},
	{"tmp/chain1", "chain2"},
	{"tmp/chain2", "/srv/a"},
	{"home/alice/work", "projects/w"},
	{"tmp/loop1", "loop2"},
	{"tmp/loop2", "loop1"},
	{"tmp/self", "self"},
	{"tmp/procroot", "/proc/self/root"},
	{"tmp/proc1", "/proc/1/root/run"},
	{"tmp/rootup", "/proc/self/root/../run"},
	{"tmp/procup", "/proc/net/../../self/root/run/docker.sock"},
	{"tmp/torun", "/run"},
	{"tmp/dangling", "/run/newdir"},
	{"tmp/ghost", "/nope/../var/run"},
	{"tmp/dotty", "/..//run/./docker.sock"},
	{"tmp/escape", "../../../../run"},
	// A stand-in for the host's /proc, made of plain links that behave as
	// the magic ones do for runc. Resolve must never read it; the kernel
	// oracle of FuzzResolve does.
	{"proc/self", "1"},
	{"proc/thread-self", "1/task/1"},
	{"proc/net", "self/net"},
	{"proc/1/root", "/"},
	{"proc/1/cwd", "/tmp"},
	{"proc/1/task/1/root", "/"},
}

// fakeHost builds a small host root filesystem under a temporary directory:
// the socket stand-in run/docker.sock, the links above, and a chain of links
// tmp/n0 -> n1 -> ... -> n40 -> /run.
func fakeHost(tb testing.TB) string {
	tb.Helper()
	root := tb.TempDir()
	for _, d := range []string{"run", "var", "srv", "tmp", "home/alice/projects/w", "proc/1/net", "proc/1/task/1"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(root, "run/docker.sock"), nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	links := fakeHostLinks
	for i := 0; i < maxLinks; i++ {
		links = append(links, [2]string{fmt.Sprintf("tmp/n%d", i), fmt.Sprintf("n%d", i+1)})
	}
	links = append(links, [2]string{fmt.Sprintf("tmp/n%d", maxLinks), "/run"})
	for _, l := range links {
		if err := os.Symlink(l[1], filepath.Join(root, l[0])); err != nil {
			tb.Fatal(err)
		}
	}
	return root
}

func TestResolve(t *testing.T) {
	r := NewHostRoot(fakeHost(t))
	tests := []struct {
		name, source, want string
	}{
		{"the socket itself", "/run/docker.sock", "/run/docker.sock"},
		{"absolute link var/run resolves through the root", "/var/run/docker.sock", "/run/docker.sock"},
		{"absolute link target is looked up inside the root", "/var/run/fakeonly", "/run/docker.sock"},
		{"relative link with dot-dot", "/srv/a/docker.sock", "/run/docker.sock"},
		{"chain of links", "/tmp/chain1/docker.sock", "/run/docker.sock"},
		{"relative link into a directory", "/home/alice/work/nb.ipynb", "/home/alice/projects/w/nb.ipynb"},
		{"forty links are followed", "/tmp/n1/docker.sock", "/run/docker.sock"},
		{"link to proc self root", "/tmp/procroot", "/proc/self/root"},
		{"path through a link to proc self root", "/tmp/procroot/run/docker.sock", "/proc/self/root/run/docker.sock"},
		{"link to another process's root", "/tmp/proc1/docker.sock", "/proc/1/root/run/docker.sock"},
		{"links after a proc root are followed from the host root", "/proc/self/root/var/run/docker.sock", "/proc/self/root/run/docker.sock"},
		{"relative links after a thread-self root", "/proc/thread-self/root/tmp/torun/docker.sock", "/proc/thread-self/root/run/docker.sock"},
		{"proc links are never looked up", "/proc/1/cwd/torun", "/proc/1/cwd/torun"},
		{"dot-dot after a proc root stays at the root", "/tmp/rootup", "/proc/self/root/run"},
		{"dot-dot below proc gives proc", "/tmp/procup", "/proc"},
		{"dangling link is judged by its target", "/tmp/dangling/docker.sock", "/run/newdir/docker.sock"},
		{"missing source is judged by its text", "/srv/new//dir/./x/", "/srv/new/dir/x"},
		{"path through a regular file is judged by its text", "/run/docker.sock/x", "/run/docker.sock/x"},
		{"dot-dot after a missing directory resumes at its parent", "/tmp/ghost/docker.sock", "/run/docker.sock"},
		{"dot-dot in the source is cleaned before links", "/tmp/procroot/../srv", "/tmp/srv"},
		{"dot-dot above the root", "/../../run/docker.sock", "/run/docker.sock"},
		{"link escaping above the root", "/tmp/escape/docker.sock", "/run/docker.sock"},
		{"absolute target with dot-dot, dots and slashes", "/tmp/dotty", "/run/docker.sock"},
		{"the root", "/", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Resolve(tt.source)
			if err != nil || got != tt.want {
				t.Errorf("Resolve(%q) = %q, %v; want %q", tt.source, got, err, tt.want)
			}
		})
	}
}

func TestResolveErrors(t *testing.T) {
	r := NewHostRoot(fakeHost(t))
	tests := []struct {
		name, source string
		want         error
	}{
		{"two links in a loop", "/tmp/loop1/docker.sock", ErrLinkLoop},
		{"link to itself", "/tmp/self", ErrLinkLoop},
		{"forty-one links are a loop", "/tmp/n0", ErrLinkLoop},
		{"relative source", "run/docker.sock", errNotAbsolute},
		{"empty source", "", errNotAbsolute},
		{"name too long", "/run/" + strings.Repeat("a", 300), syscall.ENAMETOOLONG},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Resolve(tt.source)
			if !errors.Is(err, tt.want) || got != "" {
				t.Fatalf("Resolve(%q) = %q, %v; want error %v", tt.source, got, err, tt.want)
			}
			if !strings.Contains(err.Error(), strconv.Quote(tt.source)) {
				t.Errorf("error %q does not name the source", err)
			}
		})
	}
}

func TestResolveHugeSourcesInLinearTime(t *testing.T) {
	r := NewHostRoot(fakeHost(t))
	tail := strings.Repeat("/a", 1<<20)
	tests := []struct{ name, source, want string }{
		{"below a missing directory", "/nope" + tail, "/nope" + tail},
		{"below a regular file", "/var/run/docker.sock" + tail, "/run/docker.sock" + tail},
		{"below a proc root link", "/tmp/proc1" + tail, "/proc/1/root/run" + tail},
		{"dot-dot everywhere", strings.Repeat("/..", 1<<20) + "/tmp/escape/docker.sock", "/run/docker.sock"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := r.Resolve(tt.source); err != nil || got != tt.want {
				t.Errorf("Resolve(%.40q...) = %.40q..., %v", tt.source, got, err)
			}
		})
	}
}

func TestResolveReportsPermissionErrors(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads directories without search permission")
	}
	root := t.TempDir()
	locked := filepath.Join(root, "locked")
	if err := os.Mkdir(locked, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(locked, 0o755) })
	if got, err := NewHostRoot(root).Resolve("/locked/docker.sock"); !errors.Is(err, os.ErrPermission) {
		t.Fatalf("Resolve = %q, %v; want a permission error", got, err)
	}
}

func TestResolveOnTheRealRoot(t *testing.T) {
	if fi, err := os.Lstat("/run"); err != nil || !fi.IsDir() {
		t.Skip("/run is not a directory here")
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink("/run", link); err != nil {
		t.Fatal(err)
	}
	r := NewHostRoot("/")
	if got, err := r.Resolve(link + "/foo"); err != nil || got != "/run/foo" {
		t.Errorf("Resolve(%q) = %q, %v; want /run/foo", link+"/foo", got, err)
	}
	if target, err := os.Readlink("/var/run"); err != nil || (target != "/run" && target != "../run") {
		t.Logf("/var/run is not a link to /run here (%q, %v)", target, err)
		return
	}
	if got, err := r.Resolve("/var/run/docker.sock"); err != nil || got != "/run/docker.sock" {
		t.Errorf("Resolve(/var/run/docker.sock) = %q, %v; want /run/docker.sock", got, err)
	}
}

func TestZeroHostRootReadsTheRealRoot(t *testing.T) {
	var zero HostRoot
	for _, dir := range []string{"", "/", "//"} {
		if NewHostRoot(dir) != zero {
			t.Errorf("NewHostRoot(%q) does not read /", dir)
		}
	}
	if NewHostRoot("/host/") != (HostRoot{prefix: "/host"}) {
		t.Errorf("NewHostRoot(/host/) = %+v", NewHostRoot("/host/"))
	}
}
