package dockertest

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// systemContainerdSocket is where dockerd looks for a system containerd. If
// it exists, dockerd 20.10 uses that containerd instead of starting its own,
// so Start starts a private one. Tests may point it elsewhere.
var systemContainerdSocket = "/run/containerd/containerd.sock"

// proc is a process started by this package.
type proc struct {
	name string
	pid  int
	done chan struct{} // closed once the process has been reaped
	err  error         // the result of Wait, valid after done is closed
}

// StartTied starts cmd with SIGTERM as its parent-death signal, forked
// from an OS thread that stays alive exactly as long as the process does,
// and returns a channel that yields cmd.Wait's result once it is reaped.
//
// Linux sends the parent-death signal when the forking *thread* ends, not
// the process, and the Go runtime ends the thread of every goroutine that
// returns while locked to it (as the one here does, after reaping). A child
// forked from an ordinary thread could therefore be killed in the middle of
// a test, whenever some locked goroutine last ran on that thread; a
// journald started that way died between two tests of one run. Forked
// here, a child gets the signal only if the whole test binary dies first
// (a panic, a go test timeout), and shuts itself down instead of lingering.
func StartTied(cmd *exec.Cmd) (<-chan error, error) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	started, done := make(chan error, 1), make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with this goroutine
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}

// startProc starts path with args, its stdout and stderr appended to
// logPath, in its own process group, tied to the test binary (StartTied).
func startProc(path string, args []string, logPath string) (*proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	waited, err := StartTied(cmd)
	if err != nil {
		logFile.Close()
		return nil, err
	}
	p := &proc{name: filepath.Base(path), pid: cmd.Process.Pid, done: make(chan struct{})}
	go func() {
		p.err = <-waited
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig to the process, unless it has already been reaped.
func (p *proc) signal(sig syscall.Signal) error {
	if p.exited() {
		return fmt.Errorf("%s (pid %d) has exited: %v", p.name, p.pid, p.err)
	}
	return syscall.Kill(p.pid, sig)
}

// stop sends SIGTERM, waits up to grace, then sends SIGKILL.
func (p *proc) stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = syscall.Kill(p.pid, syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(p.pid, syscall.SIGKILL)
	select {
	case <-p.done:
		return fmt.Errorf("%s (pid %d) ignored SIGTERM for %v and was killed", p.name, p.pid, grace)
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) survived SIGKILL", p.name, p.pid)
	}
}

// startContainerd starts a private containerd whose root, state and sockets
// are all under d.Dir/ctd, and returns its gRPC socket path.
func (d *Daemon) startContainerd() (string, error) {
	path, err := exec.LookPath("containerd")
	if err != nil {
		return "", fmt.Errorf("a system containerd socket exists at %s, and no containerd binary was found to start a private one: %w", systemContainerdSocket, err)
	}
	base := filepath.Join(d.Dir, "ctd")
	if err := os.Mkdir(base, 0o700); err != nil {
		return "", err
	}
	sock := filepath.Join(base, "c.sock")
	cfg := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.internal.v1.opt"]

[grpc]
  address = %q

[debug]
  address = %q
`, filepath.Join(base, "root"), filepath.Join(base, "state"), sock, filepath.Join(base, "debug.sock"))
	cfgPath := filepath.Join(base, "config.toml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return "", err
	}
	d.containerd, err = startProc(path, []string{"--config", cfgPath}, filepath.Join(d.Dir, "containerd.log"))
	if err != nil {
		return "", fmt.Errorf("start containerd: %w", err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return sock, nil
		}
		if d.containerd.exited() || time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(d.Dir, "containerd.log"))
			return "", fmt.Errorf("private containerd did not create %s (exited: %v)\n%s", sock, d.containerd.exited(), log)
		}
	}
}

// killLeftovers kills, by pid, what a dockerd that had to be SIGKILLed can
// leave behind under dir: its containerd and the shims of its containers
// together with their init processes. A pid is only signalled after its
// command line shows that it is the expected program; after a clean
// shutdown there is nothing left to kill.
func killLeftovers(dir string) {
	if pid, ok := readPid(filepath.Join(dir, "exec", "containerd", "containerd.pid")); ok &&
		cmdlineHas(pid, "containerd", dir) {
		killPid(pid)
	}
	for _, root := range []string{filepath.Join(dir, "exec"), filepath.Join(dir, "ctd", "state")} {
		_ = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() || e.Name() != "shim.pid" {
				return nil
			}
			shim, ok := readPid(path)
			if !ok || !cmdlineHas(shim, "containerd-shim") {
				return nil
			}
			if pid, ok := readPid(filepath.Join(filepath.Dir(path), "init.pid")); ok && parentPid(pid) == shim {
				killPid(pid)
			}
			killPid(shim)
			return nil
		})
	}
}

// readPid reads a pid file.
func readPid(path string) (int, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && pid > 1
}

// cmdlineHas reports whether the command line of pid contains every word.
func cmdlineHas(pid int, words ...string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	for _, w := range words {
		if !bytes.Contains(b, []byte(w)) {
			return false
		}
	}
	return true
}

// parentPid returns the parent of pid, or 0 if it cannot be read.
func parentPid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name in field 2 may contain spaces; it ends at the last ')'.
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(fields) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(fields[1])
	return ppid
}

// killPid sends SIGKILL to pid and waits up to 5 s for it to disappear.
func killPid(pid int) {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		// A zombie that is not our child stays until its parent reaps it.
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && bytes.Contains(b, []byte(") Z ")) {
			return
		}
	}
}
