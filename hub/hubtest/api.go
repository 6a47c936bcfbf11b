package hubtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// requestTimeout bounds every API call made by the helpers.
const requestTimeout = 10 * time.Second

// Do sends one request to the hub's API with "Authorization: token TOKEN" (no header
// when token is empty) and a JSON body when body is not nil. path is relative to
// APIURL, for example "/groups/docker-privileged". It returns the status code and
// the response body; err is set only when no HTTP answer arrived.
func (h *Hub) Do(token, method, path string, body any) (code int, respBody []byte, err error) {
	return h.do(token, method, path, body, requestTimeout)
}

func (h *Hub) do(token, method, path string, body any, timeout time.Duration) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.APIURL+path, r)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "token "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// admin performs a request with AdminToken and calls t.Fatalf unless the status is want.
func (h *Hub) admin(t testing.TB, want int, method, path string, body any) []byte {
	t.Helper()
	code, b, err := h.Do(h.AdminToken, method, path, body)
	if err != nil || code != want {
		t.Fatalf("hubtest: %s %s%s: got %d %s (err %v), want %d", method, h.APIURL, path, code, bytes.TrimSpace(b), err, want)
	}
	return b
}

// AddMembers adds users to group (POST /groups/{group}/users) with AdminToken; it fails the test unless the hub answers 200.
func (h *Hub) AddMembers(t testing.TB, group string, users ...string) {
	t.Helper()
	h.admin(t, 200, "POST", "/groups/"+pathEscape(group)+"/users", map[string][]string{"users": users})
}

// RemoveMembers removes users from group (DELETE /groups/{group}/users) with AdminToken; it fails the test unless the hub answers 200.
func (h *Hub) RemoveMembers(t testing.TB, group string, users ...string) {
	t.Helper()
	h.admin(t, 200, "DELETE", "/groups/"+pathEscape(group)+"/users", map[string][]string{"users": users})
}

// CreateGroup creates group with the given members (POST /groups/{group}); it fails the test unless the hub answers 201.
func (h *Hub) CreateGroup(t testing.TB, group string, users ...string) {
	t.Helper()
	if users == nil {
		users = []string{}
	}
	h.admin(t, 201, "POST", "/groups/"+pathEscape(group), map[string][]string{"users": users})
}

// DeleteGroup deletes group (DELETE /groups/{group}); it fails the test unless the hub answers 204.
func (h *Hub) DeleteGroup(t testing.TB, group string) {
	t.Helper()
	h.admin(t, 204, "DELETE", "/groups/"+pathEscape(group), nil)
}

// Members returns the sorted members of group as read with AdminToken; it fails the test unless the hub answers 200.
func (h *Hub) Members(t testing.TB, group string) []string {
	t.Helper()
	b := h.admin(t, 200, "GET", "/groups/"+pathEscape(group), nil)
	var g struct {
		Users []string `json:"users"`
	}
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatalf("hubtest: decoding group %q: %v: %s", group, err, b)
	}
	if g.Users == nil {
		g.Users = []string{}
	}
	sort.Strings(g.Users)
	return g.Users
}

// GroupExists reports whether group exists: true on 200, false on 404; any other answer fails the test.
func (h *Hub) GroupExists(t testing.TB, group string) bool {
	t.Helper()
	code, b, err := h.Do(h.AdminToken, "GET", "/groups/"+pathEscape(group), nil)
	switch {
	case err != nil:
		t.Fatalf("hubtest: GET group %q: %v", group, err)
	case code == 200:
		return true
	case code == 404:
		return false
	}
	t.Fatalf("hubtest: GET group %q: unexpected %d %s", group, code, bytes.TrimSpace(b))
	return false
}

// Log returns the contents of the hub's log file (JupyterHub and its proxy), for failure messages.
// It returns an empty string once the cleanup has removed the hub's files.
func (h *Hub) Log() string {
	b, _ := os.ReadFile(h.logPath)
	return string(b)
}

// MissingDependency reports that a real component (binary) needed by the test is absent:
// with CI=true in the environment it calls t.Fatalf, because CI must never skip; otherwise it calls t.Skipf.
func MissingDependency(t testing.TB, format string, args ...any) {
	t.Helper()
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("missing dependency (CI=true, not skipping): "+format, args...)
	}
	t.Skipf("missing dependency: "+format, args...)
}

// FreePort returns a free loopback TCP port.
func FreePort(t testing.TB) int {
	t.Helper()
	return freePorts(t, 1)[0]
}

// freePorts returns n distinct free loopback TCP ports, holding all of them open until each is chosen.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, 0, n)
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("hubtest: free port: %v", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

// pathEscape escapes one path segment of an API URL.
func pathEscape(s string) string { return url.PathEscape(s) }

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines omitted)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
