package dockertest

import (
	"bufio"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// pluginDir is where dockerd looks for legacy plugin sockets.
	pluginDir = "/run/docker/plugins"
	// systemSocket is the path that clients use by default.
	systemSocket = "/run/docker.sock"
	// systemSocketLock is flocked by the one daemon that listens on
	// systemSocket, so two test packages never take it in turn: dockerd
	// unlinks an existing socket before it listens, and unlinks it again
	// when it stops, which would pull it from under the other daemon.
	systemSocketLock = "/run/dockertest-docker.sock.lock"
)

// claimSystemSocket takes the system socket path if it is free: no other
// daemon of this package holds the lock, and nothing is there or only a
// stale socket that refuses connections. The returned file holds the lock.
func claimSystemSocket() (*os.File, bool) {
	f, err := os.OpenFile(systemSocketLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	fi, err := os.Lstat(systemSocket)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return f, true
	case err == nil && fi.Mode()&fs.ModeSocket != 0 && refuses(systemSocket):
		return f, true
	}
	f.Close()
	return nil, false
}

// refuses reports whether nothing listens on the unix socket at path.
func refuses(path string) bool {
	c, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		c.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// releaseSystemSocket removes the system socket if a killed daemon left it
// behind, then drops the lock. The lock file itself stays: removing it would
// let two processes lock two different files.
func releaseSystemSocket(lock *os.File) {
	if fi, err := os.Lstat(systemSocket); err == nil && fi.Mode()&fs.ModeSocket != 0 && refuses(systemSocket) {
		os.Remove(systemSocket)
	}
	lock.Close()
}

// removeDir unmounts every mount point at or under dir, deepest first, and
// then removes dir. If a mount survives, dir is left in place: removing it
// could descend into a bind mount of host files.
func removeDir(dir string) error {
	for range 5 {
		mounts, err := mountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("remove %s: %w", dir, err)
			}
			return nil
		}
		for _, m := range mounts {
			_ = syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
	mounts, _ := mountsUnder(dir)
	return fmt.Errorf("left %s in place: still mounted: %s", dir, strings.Join(mounts, ", "))
}

// mountsUnder lists the mount points at or under dir, deepest first, as
// /proc/self/mountinfo shows them.
func mountsUnder(dir string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out, nil
}

// unescapeMountinfo decodes the octal escapes (\040 for a space and so on)
// that mountinfo uses in paths.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// checkStatic reports an error if the program at path is dynamically
// linked: the busybox image has no shared libraries.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("busybox at %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("busybox at %s is dynamically linked", path)
		}
	}
	return nil
}

// shortTempDir returns the temporary directory, or /tmp when the former is
// too long for the unix socket paths created under it (limit 108 bytes).
func shortTempDir() string {
	if dir := os.TempDir(); len(dir) <= 40 {
		return dir
	}
	return "/tmp"
}

// tools holds the paths of the programs a daemon needs.
type tools struct {
	dockerd, docker, busybox string
}

// lookupTools finds dockerd, the docker CLI and a static busybox, and checks
// that the test runs as root.
func lookupTools(t testing.TB) tools {
	t.Helper()
	if os.Geteuid() != 0 {
		MissingDependency(t, "dockerd needs root (euid is %d)", os.Geteuid())
	}
	var tl tools
	var err error
	if tl.dockerd, err = exec.LookPath("dockerd"); err != nil {
		MissingDependency(t, "dockerd not found (apt-get install docker.io): %v", err)
	}
	if tl.docker, err = exec.LookPath("docker"); err != nil {
		MissingDependency(t, "docker CLI not found (apt-get install docker.io): %v", err)
	}
	if tl.busybox, err = exec.LookPath("busybox"); err != nil {
		MissingDependency(t, "busybox not found (apt-get install busybox-static): %v", err)
	}
	if err := checkStatic(tl.busybox); err != nil {
		MissingDependency(t, "%v (apt-get install busybox-static)", err)
	}
	return tl
}
