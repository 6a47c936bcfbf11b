package hubtest

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Stop stops the hub now, for tests of a hub that is down. It sends SIGTERM to the
// hub's process group, waits up to 10 s, then sends SIGKILL, and also stops the
// configurable-http-proxy, which JupyterHub runs in a session of its own. Stop is
// idempotent and safe to call before the registered cleanup runs.
func (h *Hub) Stop(t testing.TB) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped || h.cmd == nil || h.pid == 0 {
		return
	}
	h.stopped = true
	h.readProxyPid()
	if err := stopGroup(h.pid, h.done); err != nil {
		t.Errorf("hubtest: stopping jupyterhub (pid %d): %v", h.pid, err)
	}
	if h.proxyPid > 0 && isProxy(h.proxyPid) {
		if err := stopGroup(h.proxyPid, nil); err != nil {
			t.Errorf("hubtest: stopping configurable-http-proxy (pid %d): %v", h.proxyPid, err)
		}
	}
	h.client.CloseIdleConnections()
}

// stopGroup sends SIGTERM to process group pgid and SIGKILL after stopTimeout.
// It waits for done when given, otherwise until the leader pgid is gone.
func stopGroup(pgid int, done <-chan struct{}) error {
	exited := func() bool {
		if done != nil {
			select {
			case <-done:
				return true
			default:
				return false
			}
		}
		return !isProxy(pgid)
	}
	syscall.Kill(-pgid, syscall.SIGTERM)
	for _, limit := range []time.Duration{stopTimeout, 5 * time.Second} {
		for end := time.Now().Add(limit); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
			if exited() {
				return nil
			}
		}
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
	if exited() {
		return nil
	}
	return errors.New("still running after SIGKILL")
}

// readProxyPid remembers the proxy's pid from its pid file, which JupyterHub removes on exit.
func (h *Hub) readProxyPid() {
	if b, err := os.ReadFile(h.proxyPidFile); err == nil {
		fmt.Sscan(string(b), &h.proxyPid)
	}
}

// isProxy reports whether pid is a live configurable-http-proxy (guards against pid reuse).
func isProxy(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(b), "configurable-http-proxy")
}
