package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubauthz/hubauthz/e2e/dockertest"
	"github.com/hubauthz/hubauthz/hub/hubtest"
)

const (
	ownerLabel = "hub.jupyter.org/username"
	group      = hubtest.PrivilegedGroup
	notMember  = `user "bob" is not in the JupyterHub group "docker-privileged"`
	ttl        = 2 * time.Second // HUBAUTHZ_CACHE_TTL in the suite
	// settle bounds the wait for a hub change to take effect: one TTL, plus
	// slack for a loaded machine. Waits end as soon as the change is seen.
	settle = 15 * ttl
)

func label(user string) string { return "--label=" + ownerLabel + "=" + user }

// run starts a short-lived container and returns its output.
// It does not use --rm: when the create is allowed but the start is
// refused (membership changed in between), docker run --rm waits forever
// for a removal that never comes. The container is removed afterwards.
func (s *stack) run(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	name := fmt.Sprintf("run-%d", runSeq.Add(1))
	for i, a := range args {
		if a == "--name" && i+1 < len(args) {
			name, args = args[i+1], append(append([]string{}, args[:i]...), args[i+2:]...)
			break
		}
	}
	full := append([]string{"run", "--name", name, "--network=none"}, args...)
	stdout, stderr, err := s.docker.Docker(t, full...)
	_, _, _ = s.docker.Docker(t, "rm", "-f", name)
	return stdout, stderr, err
}

var runSeq atomic.Int64

// socketArgs mounts the private dockerd's socket as a member would.
func (s *stack) socketArgs() []string {
	return []string{"-v", s.docker.Socket + ":/var/run/docker.sock", dockertest.Image, "test", "-S", "/var/run/docker.sock"}
}

// spawnerBody is a DockerSpawner-shaped create body (captured from
// docker-py, in authz/testdata) made to run on the private dockerd.
func spawnerBody(t *testing.T, user string, binds ...string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "authz", "testdata", "dockerspawner-create.json"))
	if err != nil {
		t.Fatal(err)
	}
	var b map[string]any
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatal(err)
	}
	b["Image"] = dockertest.Image
	b["Cmd"] = []string{"true"}
	b["Labels"] = map[string]string{ownerLabel: user}
	b["Env"] = []string{"JUPYTERHUB_USER=" + user, "JUPYTERHUB_API_URL=http://127.0.0.1:1/hub/api"}
	hc := b["HostConfig"].(map[string]any)
	hc["NetworkMode"] = "none"
	hc["PortBindings"] = map[string]any{}
	hc["Binds"] = append([]string{"jupyterhub-user-" + user + ":/home/jovyan/work:rw"}, binds...)
	out, _ := json.Marshal(b)
	return out
}

// testSocketRule runs the core cases against a stack. The cases run in
// order: the last ones change the hub's state.
func testSocketRule(t *testing.T, s *stack) {
	t.Run("non-member bind of the socket is denied", func(t *testing.T) {
		s.denied(t, notMember, "run", "--rm", label("bob"), "-v", "/var/run/docker.sock:/var/run/docker.sock", dockertest.Image, "true")
	})
	t.Run("non-member mount of the socket's directory is denied", func(t *testing.T) {
		s.denied(t, notMember, "create", label("bob"), "--mount", "type=bind,src=/var/run,dst=/host-run", dockertest.Image, "true")
	})
	t.Run("non-member named by JUPYTERHUB_USER only is denied", func(t *testing.T) {
		s.denied(t, notMember, "create", "-e", "JUPYTERHUB_USER=bob", "-v", "/run:/host-run", dockertest.Image, "true")
	})
	t.Run("label and env naming different users are denied", func(t *testing.T) {
		s.denied(t, "owner is ambiguous", "create", label("alice"), "-e", "JUPYTERHUB_USER=bob", "-v", "/run:/host-run", dockertest.Image, "true")
	})
	t.Run("member gets the socket and the container runs", func(t *testing.T) {
		args := append([]string{label("alice")}, s.socketArgs()...)
		if _, stderr, err := s.run(t, args...); err != nil {
			t.Fatalf("member refused: %v %s", err, stderr)
		}
	})
	t.Run("plain containers run for everyone", func(t *testing.T) {
		for _, u := range []string{"alice", "bob", ""} {
			out, stderr, err := s.run(t, label(u), dockertest.Image, "echo", "hi")
			if err != nil || strings.TrimSpace(out) != "hi" {
				t.Fatalf("plain container for %q: %q %v %s", u, out, err, stderr)
			}
		}
	})
	t.Run("DockerSpawner-shaped create", func(t *testing.T) {
		status, body := s.docker.API(t, "POST", "/v1.41/containers/create?name=jupyter-bob",
			http.Header{"Content-Type": {"application/json"}}, bytes.NewReader(spawnerBody(t, "bob", "/var/run/docker.sock:/var/run/docker.sock:rw")))
		if status != http.StatusForbidden || !bytes.Contains(body, []byte("docker-privileged")) {
			t.Fatalf("spawner create with the socket for bob: %d %s", status, body)
		}
		status, body = s.docker.API(t, "POST", "/v1.41/containers/create?name=jupyter-bob",
			http.Header{"Content-Type": {"application/json"}}, bytes.NewReader(spawnerBody(t, "bob")))
		if status != http.StatusCreated {
			t.Fatalf("spawner create without the socket for bob: %d %s", status, body)
		}
		s.docker.MustDocker(t, "rm", "-f", "jupyter-bob")
	})
	t.Run("denials are audit records", func(t *testing.T) {
		found := false
		for _, r := range s.audits(t) {
			if r["decision"] == "deny" && r["user"] == "bob" && r["group"] == group && r["reason"] == "not-member" && r["level"] == "warning" {
				found = true
			}
		}
		if !found {
			t.Fatalf("no deny record for bob in:\n%s", s.pluginLog())
		}
	})
	t.Run("membership changed in the hub takes effect within the TTL", func(t *testing.T) {
		s.hub.AddMembers(t, group, "bob")
		waitFor(t, settle, func() string { return s.tryMember(t, "bob", true) })
		s.hub.RemoveMembers(t, group, "bob")
		waitFor(t, settle, func() string { return s.tryMember(t, "bob", false) })
	})
	t.Run("group deleted at runtime is recreated and members lose access", func(t *testing.T) {
		s.hub.DeleteGroup(t, group)
		waitFor(t, settle, func() string { return s.tryMember(t, "alice", false) })
		if !s.hub.GroupExists(t, group) {
			t.Fatal("the group was not recreated")
		}
		recreated := false
		for _, r := range s.audits(t) {
			recreated = recreated || r["decision"] == "group-recreated"
		}
		if !recreated {
			t.Fatal("no group-recreated audit record")
		}
		s.hub.AddMembers(t, group, "alice")
		waitFor(t, settle, func() string { return s.tryMember(t, "alice", true) })
	})
	t.Run("hub stopped: socket binds denied, plain containers run", func(t *testing.T) {
		s.hub.Stop(t)
		waitFor(t, settle, func() string { return s.tryMember(t, "alice", false) })
		_, stderr, _ := s.run(t, append([]string{label("alice")}, s.socketArgs()...)...)
		if !strings.Contains(stderr, "could not be checked") {
			t.Fatalf("hub-down deny does not name the hub failure: %q", stderr)
		}
		if out, stderr, err := s.run(t, label("alice"), dockertest.Image, "echo", "hi"); err != nil || strings.TrimSpace(out) != "hi" {
			t.Fatalf("plain container with the hub down: %q %v %s", out, err, stderr)
		}
	})
}

// tryMember runs a container with the socket for user and reports a
// problem if the outcome is not want (true: allowed and ran).
func (s *stack) tryMember(t *testing.T, user string, want bool) string {
	t.Helper()
	_, stderr, err := s.run(t, append([]string{label(user)}, s.socketArgs()...)...)
	denied := strings.Contains(stderr, "authorization denied by plugin "+s.name)
	switch {
	case want && err != nil:
		return user + " still refused: " + stderr
	case !want && !denied:
		return user + " still allowed"
	}
	return ""
}

func TestLegacyPlugin(t *testing.T) {
	testSocketRule(t, startLegacy(t, nil))
}

func TestLegacyBypassClasses(t *testing.T) {
	testBypassClasses(t, startLegacy(t, nil))
}
