//go:build linux

package authz

import (
	"errors"
	"path"
	"path/filepath"
	"syscall"
	"testing"
	"unsafe"
)

// The oracle asks the kernel itself: openat2(2) with RESOLVE_IN_ROOT resolves
// a path as if the fake host root were "/", so absolute links and ".." stay
// inside it, and the fake /proc links behave as the magic ones do for runc.
const (
	sysOpenat2    = 437      // openat2 on every Linux architecture Go supports except mips
	resolveInRoot = 0x10     // RESOLVE_IN_ROOT
	oPath         = 0x200000 // O_PATH
)

// openHow is struct open_how of openat2(2).
type openHow struct{ flags, mode, resolve uint64 }

// fileID identifies a file by device and inode.
type fileID struct{ dev, ino uint64 }

// kernelOracle resolves sources inside a fake host root with the kernel.
type kernelOracle struct {
	dirfd   int
	exposed map[fileID]bool // the socket and the directories above it
}

// newKernelOracle opens root and notes the files that expose the socket, or
// returns an error when the kernel has no openat2.
func newKernelOracle(root string) (*kernelOracle, error) {
	fd, err := syscall.Open(root, syscall.O_DIRECTORY|syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	o := &kernelOracle{dirfd: fd, exposed: map[fileID]bool{}}
	for _, p := range []string{"/", "/run", "/run/docker.sock"} {
		id, err := o.resolve(p)
		if err != nil {
			syscall.Close(fd)
			return nil, err
		}
		o.exposed[id] = true
	}
	return o, nil
}

// resolve returns the file the kernel reaches for source inside the root,
// following every link, as runc's bind mount does.
func (o *kernelOracle) resolve(source string) (fileID, error) {
	name, err := syscall.BytePtrFromString(path.Clean(source))
	if err != nil {
		return fileID{}, err
	}
	how := openHow{flags: oPath | syscall.O_CLOEXEC, resolve: resolveInRoot}
	fd, _, errno := syscall.Syscall6(sysOpenat2, uintptr(o.dirfd), uintptr(unsafe.Pointer(name)),
		uintptr(unsafe.Pointer(&how)), unsafe.Sizeof(how), 0, 0)
	if errno != 0 {
		return fileID{}, errno
	}
	defer syscall.Close(int(fd))
	var st syscall.Stat_t
	if err := syscall.Fstat(int(fd), &st); err != nil {
		return fileID{}, err
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino)}, nil
}

// FuzzResolve checks, over the fake host root of TestResolve, that Resolve
// never panics, returns absolute clean paths, is idempotent, and never hides
// the socket: when the kernel reaches /run/docker.sock or a directory above it,
// the result must expose /var/run/docker.sock by the text rule.
func FuzzResolve(f *testing.F) {
	root := fakeHost(f)
	r := NewHostRoot(root)
	pp, err := NewProtectedPaths([]string{"/var/run/docker.sock"})
	if err != nil {
		f.Fatal(err)
	}
	oracle, err := newKernelOracle(root)
	if err != nil {
		f.Logf("no kernel oracle, the socket is not checked: %v", err)
	} else {
		f.Cleanup(func() { syscall.Close(oracle.dirfd) })
	}
	f.Fuzz(func(t *testing.T, source string) {
		res, err := r.Resolve(source)
		if err == nil && (!path.IsAbs(res) || path.Clean(res) != res) {
			t.Fatalf("Resolve(%q) = %q, not absolute and clean", source, res)
		}
		if err == nil {
			again, err := r.Resolve(res)
			if err != nil || again != res {
				t.Fatalf("Resolve(%q) = %q, but Resolve(%q) = %q, %v", source, res, res, again, err)
			}
		}
		if oracle == nil || !path.IsAbs(source) {
			return
		}
		id, kerr := oracle.resolve(source)
		if kerr != nil || !oracle.exposed[id] {
			return
		}
		if _, ok := pp.Exposes(res); err != nil || !ok {
			t.Fatalf("the kernel reaches the socket from %q, but Resolve = %q, %v does not expose it", source, res, err)
		}
	})
}

// TestKernelOracleAgrees checks the oracle itself on a few sources of
// TestResolve, so that FuzzResolve cannot pass by an oracle that sees nothing.
func TestKernelOracleAgrees(t *testing.T) {
	root := fakeHost(t)
	o, err := newKernelOracle(root)
	if errors.Is(err, syscall.ENOSYS) {
		t.Skip("no openat2 here")
	}
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(o.dirfd)
	for _, s := range []string{"/var/run/docker.sock", "/tmp/procroot/run", "/tmp/procup", "/tmp/dotty", "/tmp/n1"} {
		if id, err := o.resolve(s); err != nil || !o.exposed[id] {
			t.Errorf("the oracle does not reach the socket from %q: %v", s, err)
		}
	}
	for _, s := range []string{"/tmp/n0", "/tmp/ghost", "/home/alice/work", filepath.Join("/srv", "a", "x")} {
		if id, err := o.resolve(s); err == nil && o.exposed[id] {
			t.Errorf("the oracle reaches the socket from %q", s)
		}
	}
}
