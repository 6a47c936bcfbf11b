package authz

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeMembers is an in-memory Membership that counts lookups.
type fakeMembers struct {
	groups map[string][]string
	err    error
	calls  atomic.Int64
}

func (f *fakeMembers) IsMember(_ context.Context, group, user string) (bool, error) {
	f.calls.Add(1)
	if f.err != nil {
		return false, f.err
	}
	for _, u := range f.groups[group] {
		if u == user {
			return true, nil
		}
	}
	return false, nil
}

func testAuthorizer(t *testing.T, m Membership, denyUnowned bool) *Authorizer {
	t.Helper()
	return testAuthorizerWith(t, m, newFakeInspector(), Config{DenyUnowned: denyUnowned})
}

func testAuthorizerWith(t *testing.T, m Membership, i Inspector, cfg Config) *Authorizer {
	t.Helper()
	pp, err := NewProtectedPaths([]string{"/var/run/docker.sock"})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Protected = pp
	cfg.OwnerLabels = []string{"hub.jupyter.org/username", "hub.docker.proxy.owner"}
	cfg.Group = "docker-privileged"
	return New(cfg, m, i)
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

const createURI = "/v1.41/containers/create?name=jupyter-bob"

// TestDecide has one case per row of the decision table in docs/policy.md,
// plus the ways a body can be spelled.
func TestDecide(t *testing.T) {
	members := map[string][]string{"docker-privileged": {"alice"}}
	tests := []struct {
		name        string
		method, uri string
		body        string
		hubErr      error
		denyUnowned bool
		allow       bool
		reason      Reason
		msgHas      []string
	}{
		{name: "no exposure", body: readTestdata(t, "dockerspawner-create.json"), allow: true, reason: ReasonNoExposure},
		{name: "exposure, owner in group", body: readTestdata(t, "dockerspawner-create-socket-alice.json"), allow: true, reason: ReasonMember},
		{name: "exposure, owner not in group", body: readTestdata(t, "dockerspawner-create-socket-bob.json"), reason: ReasonNotMember,
			msgHas: []string{`"bob"`, `"docker-privileged"`, "/var/run/docker.sock", "ask a hub admin to add you", "restart your server"}},
		{name: "exposure, no owner", body: `{"Image":"hub","HostConfig":{"Binds":["/var/run/docker.sock:/var/run/docker.sock"]}}`, allow: true, reason: ReasonUnowned},
		{name: "exposure, no owner, unowned denied", denyUnowned: true, body: `{"Image":"hub","HostConfig":{"Binds":["/var/run/docker.sock:/s"]}}`, reason: ReasonUnowned, msgHas: []string{"no hub owner"}},
		{name: "label and env disagree", body: `{"Labels":{"hub.jupyter.org/username":"alice"},"Env":["JUPYTERHUB_USER=bob"],"HostConfig":{"Binds":["/run:/r"]}}`, reason: ReasonOwnerConflict, msgHas: []string{`"alice"`, `"bob"`}},
		{name: "two owner labels disagree", body: `{"Labels":{"hub.jupyter.org/username":"alice","hub.docker.proxy.owner":"bob"},"HostConfig":{"Binds":["/run:/r"]}}`, reason: ReasonOwnerConflict},
		{name: "label and env agree", body: `{"Labels":{"hub.jupyter.org/username":"alice"},"Env":["JUPYTERHUB_USER=alice"],"HostConfig":{"Binds":["/run:/r"]}}`, allow: true, reason: ReasonMember},
		{name: "second label key names the owner", body: `{"Labels":{"hub.docker.proxy.owner":"bob"},"HostConfig":{"Binds":["/run:/r"]}}`, reason: ReasonNotMember},
		{name: "env names the owner", body: `{"Env":["PATH=/bin","JUPYTERHUB_USER=alice"],"HostConfig":{"Binds":["/run:/r"]}}`, allow: true, reason: ReasonMember},
		{name: "env entries disagree", body: `{"Env":["JUPYTERHUB_USER=alice","JUPYTERHUB_USER=bob"],"HostConfig":{"Binds":["/run:/r"]}}`, reason: ReasonOwnerConflict},
		{name: "empty body on create", body: "", reason: ReasonBadBody, msgHas: []string{"cannot inspect request body"}},
		{name: "whitespace body on create", body: " \n", reason: ReasonBadBody, msgHas: []string{"cannot inspect request body"}},
		{name: "non-JSON body on create", body: "Binds=/var/run/docker.sock", reason: ReasonBadBody, msgHas: []string{"cannot inspect request body"}},
		{name: "truncated JSON on create", body: `{"HostConfig":{"Binds":["/var/run/docker.sock:/s"]`, reason: ReasonBadBody},
		{name: "content after the JSON document", body: `{} {"HostConfig":{"Binds":["/var/run/docker.sock:/s"]}}`, reason: ReasonBadBody},
		{name: "wrong JSON type", body: `{"HostConfig":{"Binds":"/var/run/docker.sock:/s"}}`, reason: ReasonBadBody},
		{name: "hub error", body: readTestdata(t, "dockerspawner-create-socket-alice.json"), hubErr: errors.New("hub: get group: the hub did not answer in time"), reason: ReasonHubError, msgHas: []string{"did not answer in time", `"alice"`}},
		{name: "empty method", method: "-", body: "{}", reason: ReasonBadRequest},
		{name: "empty URI", uri: "-", body: "{}", reason: ReasonBadRequest},
		{name: "undecodable URI", uri: "/containers%zz/create", body: "{}", reason: ReasonBadRequest},
		{name: "lower-case keys", body: `{"labels":{"hub.jupyter.org/username":"bob"},"hostconfig":{"binds":["/var/run/docker.sock:/s"]}}`, reason: ReasonNotMember},
		{name: "mixed-case keys", body: `{"LABELS":{"hub.jupyter.org/username":"bob"},"hostConfig":{"MOUNTS":[{"type":"bind","source":"/run","target":"/r"}]}}`, reason: ReasonNotMember},
		{name: "duplicate keys, last one exposes", body: `{"Labels":{"hub.jupyter.org/username":"bob"},"HostConfig":{"Binds":[]},"hostconfig":{"Binds":["/run:/r"]}}`, reason: ReasonNotMember},
		{name: "duplicate keys, last one is clean", body: `{"Labels":{"hub.jupyter.org/username":"bob"},"HostConfig":{"Binds":["/run:/r"]},"HostConfig":{"Binds":[]}}`, allow: true, reason: ReasonNoExposure},
		{name: "duplicate owner labels, last wins", body: `{"Labels":{"hub.jupyter.org/username":"alice","hub.jupyter.org/username":"bob"},"HostConfig":{"Binds":["/run:/r"]}}`, reason: ReasonNotMember},
		{name: "top-level deprecated Binds", body: `{"Labels":{"hub.jupyter.org/username":"bob"},"Binds":["/var/run/docker.sock:/s"]}`, reason: ReasonNotMember},
		{name: "mount of type bind", body: `{"Labels":{"hub.jupyter.org/username":"bob"},"HostConfig":{"Mounts":[{"Type":"bind","Source":"/var/run/docker.sock","Target":"/s"}]}}`, reason: ReasonNotMember},
		{name: "mount of odd type with a host source", body: `{"Labels":{"hub.jupyter.org/username":"bob"},"HostConfig":{"Mounts":[{"Type":"BIND","Source":"/var/run","Target":"/s"}]}}`, reason: ReasonNotMember},
		{name: "volume mount with inline bind device", body: `{"Labels":{"hub.jupyter.org/username":"bob"},"HostConfig":{"Mounts":[{"Type":"volume","Source":"v","Target":"/s","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"type":"none","o":"bind","device":"/run"}}}}]}}`, reason: ReasonNotMember},
		{name: "parent directory bind", body: `{"Env":["JUPYTERHUB_USER=bob"],"HostConfig":{"Binds":["/:/host:ro"]}}`, reason: ReasonNotMember},
		{name: "home directory bind", body: `{"Env":["JUPYTERHUB_USER=bob"],"HostConfig":{"Binds":["/home/bob:/home/jovyan","/run/docker.sock.d:/d"]}}`, allow: true, reason: ReasonNoExposure},
		{name: "anonymous volume at the socket path", body: `{"Env":["JUPYTERHUB_USER=bob"],"HostConfig":{"Binds":["/var/run/docker.sock"]}}`, allow: true, reason: ReasonNoExposure},
		{name: "unguarded route with garbage body", method: "GET", uri: "/v1.41/containers/json", body: "not json", allow: true, reason: ReasonUnguarded},
		{name: "unversioned encoded create", uri: "/containers%2Fcreate", body: readTestdata(t, "dockerspawner-create-socket-bob.json"), reason: ReasonNotMember},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fm := &fakeMembers{groups: members, err: tt.hubErr}
			method, uri := "POST", createURI
			if tt.method != "" {
				method = strings.TrimPrefix(tt.method, "-")
			}
			if tt.uri != "" {
				uri = strings.TrimPrefix(tt.uri, "-")
			}
			d := testAuthorizer(t, fm, tt.denyUnowned).Decide(context.Background(), Request{Method: method, URI: uri, Body: []byte(tt.body)})
			if d.Allow != tt.allow || d.Reason != tt.reason {
				t.Fatalf("Decide = allow %v reason %q (%s); want allow %v reason %q", d.Allow, d.Reason, d.Msg, tt.allow, tt.reason)
			}
			if !d.Allow && (d.Msg == "" || strings.Count(strings.TrimSuffix(d.Msg, "."), ". ") > 0) {
				t.Errorf("deny message %q is not one sentence", d.Msg)
			}
			for _, s := range tt.msgHas {
				if !strings.Contains(d.Msg, s) {
					t.Errorf("message %q does not contain %q", d.Msg, s)
				}
			}
		})
	}
}

func TestUnguardedRoutesNeverAskTheHub(t *testing.T) {
	fm := &fakeMembers{err: errors.New("must not be called")}
	a := testAuthorizer(t, fm, true)
	for _, r := range []Request{
		{Method: "GET", URI: "/v1.41/containers/json"},
		{Method: "GET", URI: "/_ping"},
		{Method: "POST", URI: "/v1.41/images/create?fromImage=bb", Body: []byte(`{"Binds":["/run:/r"]}`)},
		{Method: "DELETE", URI: "/v1.41/containers/create"},
	} {
		if d := a.Decide(context.Background(), r); !d.Allow || d.Audited() {
			t.Errorf("%s %s: allow %v audited %v; want a silent allow", r.Method, r.URI, d.Allow, d.Audited())
		}
	}
	if n := fm.calls.Load(); n != 0 {
		t.Fatalf("hub asked %d times for unguarded routes", n)
	}
}

func TestNoExposureNeverAsksTheHub(t *testing.T) {
	fm := &fakeMembers{err: errors.New("must not be called")}
	d := testAuthorizer(t, fm, true).Decide(context.Background(), Request{Method: "POST", URI: createURI, Body: []byte(readTestdata(t, "dockerspawner-create.json"))})
	if !d.Allow || fm.calls.Load() != 0 {
		t.Fatalf("allow %v after %d hub calls; want allow without the hub", d.Allow, fm.calls.Load())
	}
}

func TestDecisionCarriesAuditFields(t *testing.T) {
	d := testAuthorizer(t, &fakeMembers{}, false).Decide(context.Background(), Request{Method: "POST", URI: createURI, Body: []byte(readTestdata(t, "dockerspawner-create-socket-bob.json"))})
	if d.User != "bob" || d.Group != "docker-privileged" || d.Container != "jupyter-bob" || d.Image != "jupyter/base-notebook:latest" || d.Route.Version != "1.41" {
		t.Fatalf("audit fields missing: %+v", d)
	}
	if got := d.Sources(); len(got) != 1 || got[0] != "/var/run/docker.sock" || !d.Audited() {
		t.Fatalf("sources %v audited %v", got, d.Audited())
	}
}
