package authz

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// fakeInspector is an in-memory Inspector.
type fakeInspector struct {
	containers map[string]Container
	volumes    map[string]Volume
	plugins    map[string]Plugin
	err        error
	forgets    int
}

func newFakeInspector() *fakeInspector {
	return &fakeInspector{
		containers: map[string]Container{
			"hub": {ID: "c0ffee", Name: "/jupyterhub", Binds: []string{"/var/run/docker.sock:/var/run/docker.sock"},
				MountPoints: []MountPoint{{Type: "bind", Source: "/var/run/docker.sock"}}},
			"plain": {ID: "beef", Name: "/plain", Binds: []string{"/home/bob:/home/jovyan"},
				MountPoints: []MountPoint{{Type: "bind", Source: "/home/bob"}}},
			"jupyter-bob": {ID: "b0b", Name: "/jupyter-bob", Labels: map[string]string{"hub.jupyter.org/username": "bob"},
				Binds: []string{"/var/run/docker.sock:/var/run/docker.sock"}},
			"jupyter-alice": {ID: "a11ce", Name: "/jupyter-alice", Labels: map[string]string{"hub.jupyter.org/username": "alice"},
				MountPoints: []MountPoint{{Type: "bind", Source: "/run/docker.sock"}}},
			"jupyter-bob-plain": {ID: "b0b2", Name: "/jupyter-bob-plain", Env: []string{"JUPYTERHUB_USER=bob"},
				MountPoints: []MountPoint{{Type: "volume", Name: "jupyterhub-user-bob", Source: "/var/lib/docker/volumes/jupyterhub-user-bob/_data"}}},
			"borrower":   {ID: "b0rr0w", Name: "/borrower", VolumesFrom: []string{"hub:ro"}},
			"pid-sharer": {ID: "p1d", Name: "/pid-sharer", Labels: map[string]string{"hub.jupyter.org/username": "bob"}, PidMode: "container:hub"},
		},
		volumes: map[string]Volume{
			"jupyterhub-user-bob": {Name: "jupyterhub-user-bob", Driver: "local"},
			"sockvol":             {Name: "sockvol", Driver: "local", Options: map[string]string{"type": "none", "o": "bind", "device": "/run"}},
			"procvol":             {Name: "procvol", Driver: "local", Options: map[string]string{"type": "proc", "device": "proc"}},
			"overlayvol":          {Name: "overlayvol", Driver: "local", Options: map[string]string{"type": "overlay", "o": "lowerdir=/run:/usr"}},
			"nfsvol":              {Name: "nfsvol", Driver: "local", Options: map[string]string{"type": "nfs", "o": "addr=10.0.0.1", "device": ":/export/home"}},
		},
		plugins: map[string]Plugin{
			"hubauthz:latest": {ID: "1d", Name: "hubauthz:latest", Entrypoint: []string{"/hubauthz"}, Socket: "hubauthz.sock"},
			"other:latest":    {ID: "2d", Name: "other:latest", Entrypoint: []string{"/bin/other"}, Socket: "other.sock"},
		},
	}
}

func (f *fakeInspector) Container(_ context.Context, name string) (Container, error) {
	if f.err != nil {
		return Container{}, f.err
	}
	if c, ok := f.containers[name]; ok {
		return c, nil
	}
	return Container{}, fmt.Errorf("no such container %q: %w", name, ErrNotFound)
}

func (f *fakeInspector) Volume(_ context.Context, name string) (Volume, error) {
	if f.err != nil {
		return Volume{}, f.err
	}
	if v, ok := f.volumes[name]; ok {
		return v, nil
	}
	return Volume{}, fmt.Errorf("no such volume: %w", ErrNotFound)
}

func (f *fakeInspector) Plugin(_ context.Context, name string) (Plugin, error) {
	if f.err != nil {
		return Plugin{}, f.err
	}
	if p, ok := f.plugins[name]; ok {
		return p, nil
	}
	return Plugin{}, fmt.Errorf("no such plugin: %w", ErrNotFound)
}

// Forget counts how often the rule dropped the container cache.
func (f *fakeInspector) Forget() { f.forgets++ }

type failingResolver struct{}

func (failingResolver) Resolve(string) (string, error) { return "", errors.New("too many links") }

// linkResolver pretends /srv/link is a symlink to /run.
type linkResolver struct{}

func (linkResolver) Resolve(s string) (string, error) {
	if rest, ok := strings.CutPrefix(s, "/srv/link"); ok {
		return "/run" + rest, nil
	}
	return s, nil
}

// TestDecideWithInspections covers the bypass classes that need a lookup
// of stored objects: named volumes, volumes-from, reused containers,
// services, symlinks and management of hubauthz itself.
func TestDecideWithInspections(t *testing.T) {
	members := &fakeMembers{groups: map[string][]string{"docker-privileged": {"alice"}}}
	bob := `"Labels":{"hub.jupyter.org/username":"bob"}`
	tests := []struct {
		name, method, uri, body string
		cfg                     Config
		inspectErr              error
		allow                   bool
		reason                  Reason
		msgHas                  string
	}{
		{name: "named volume binding the socket's directory", body: `{` + bob + `,"HostConfig":{"Binds":["sockvol:/s"]}}`, reason: ReasonNotMember, msgHas: "/run"},
		{name: "named volume mount binding the socket's directory", body: `{` + bob + `,"HostConfig":{"Mounts":[{"Type":"volume","Source":"sockvol","Target":"/s"}]}}`, reason: ReasonNotMember},
		{name: "plain named volume", body: `{` + bob + `,"HostConfig":{"Binds":["jupyterhub-user-bob:/home/jovyan/work"]}}`, allow: true, reason: ReasonNoExposure},
		{name: "new named volume", body: `{` + bob + `,"HostConfig":{"Binds":["brand-new:/data"]}}`, allow: true, reason: ReasonNoExposure},
		{name: "volume inspection fails", body: `{` + bob + `,"HostConfig":{"Binds":["sockvol:/s"]}}`, inspectErr: errors.New("dockerd is restarting"), reason: ReasonInspectFailed, msgHas: "dockerd is restarting"},
		{name: "volumes-from the hub container", body: `{` + bob + `,"HostConfig":{"VolumesFrom":["hub:ro"]}}`, reason: ReasonNotMember},
		{name: "volumes-from a container that borrowed the socket", body: `{` + bob + `,"HostConfig":{"VolumesFrom":["borrower"]}}`, reason: ReasonNotMember},
		{name: "volumes-from a container without the socket", body: `{` + bob + `,"HostConfig":{"VolumesFrom":["plain"]}}`, allow: true, reason: ReasonNoExposure},
		{name: "volumes-from a missing container", body: `{` + bob + `,"HostConfig":{"VolumesFrom":["ghost"]}}`, reason: ReasonInspectFailed, msgHas: "ghost"},
		{name: "start of a stored container with the socket, owner left the group", uri: "/v1.41/containers/jupyter-bob/start", reason: ReasonNotMember, msgHas: "remove the container"},
		{name: "restart of a stored container with the socket, owner left the group", uri: "/v1.41/containers/jupyter-bob/restart?t=10", reason: ReasonNotMember},
		{name: "start of a stored container with the socket, owner in the group", uri: "/v1.41/containers/jupyter-alice/start", allow: true, reason: ReasonMember},
		{name: "start of a stored container without the socket", uri: "/containers/jupyter-bob-plain/start", allow: true, reason: ReasonNoExposure},
		{name: "start when inspection fails", uri: "/v1.41/containers/jupyter-bob/start", inspectErr: errors.New("timeout"), reason: ReasonInspectFailed, msgHas: "not started"},
		{name: "start of an unknown container", uri: "/v1.41/containers/ghost/start", reason: ReasonInspectFailed},
		{name: "service with a socket mount", uri: "/v1.41/services/create", body: `{"Name":"svc","TaskTemplate":{"ContainerSpec":{"Image":"bb",` + bob + `,"Mounts":[{"Type":"bind","Source":"/var/run/docker.sock","Target":"/s"}]}}}`, reason: ReasonNotMember},
		{name: "service owner from service labels", uri: "/v1.41/services/create", body: `{"Name":"svc","Labels":{"hub.jupyter.org/username":"bob"},"TaskTemplate":{"ContainerSpec":{"Image":"bb","Mounts":[{"Type":"bind","Source":"/run","Target":"/s"}]}}}`, reason: ReasonNotMember},
		{name: "service owner from env", uri: "/v1.41/services/svc/update?version=3", body: `{"TaskTemplate":{"ContainerSpec":{"Image":"bb","Env":["JUPYTERHUB_USER=bob"],"Mounts":[{"Type":"volume","Source":"v","Target":"/s","VolumeOptions":{"DriverConfig":{"Options":{"device":"/var/run"}}}}]}}}`, reason: ReasonNotMember},
		{name: "service labels disagree", uri: "/v1.41/services/create", body: `{"Labels":{"hub.jupyter.org/username":"alice"},"TaskTemplate":{"ContainerSpec":{` + bob + `,"Mounts":[{"Type":"bind","Source":"/run","Target":"/s"}]}}}`, reason: ReasonOwnerConflict},
		{name: "service without the socket", uri: "/v1.41/services/create", body: `{"TaskTemplate":{"ContainerSpec":{"Image":"bb",` + bob + `}}}`, allow: true, reason: ReasonNoExposure},
		{name: "service with no body", uri: "/v1.41/services/create", body: ``, reason: ReasonBadBody},
		{name: "symlink to the socket's directory", body: `{` + bob + `,"HostConfig":{"Binds":["/srv/link/docker.sock:/s"]}}`, cfg: Config{Resolver: linkResolver{}}, reason: ReasonNotMember, msgHas: "/srv/link/docker.sock"},
		{name: "symlink that cannot be resolved", body: `{` + bob + `,"HostConfig":{"Binds":["/srv/loop:/s"]}}`, cfg: Config{Resolver: failingResolver{}}, reason: ReasonInspectFailed, msgHas: "too many links"},
		{name: "start with a host config body (API before 1.24)", uri: "/v1.23/containers/jupyter-bob-plain/start", body: `{"Binds":["/var/run/docker.sock:/s"]}`, reason: ReasonNotMember},
		{name: "start with a nested host config body", uri: "/v1.23/containers/jupyter-bob-plain/start", body: `{"HostConfig":{"VolumesFrom":["hub"]}}`, reason: ReasonNotMember},
		{name: "start with an empty JSON body", uri: "/v1.41/containers/jupyter-bob-plain/start", body: `{}`, allow: true, reason: ReasonNoExposure},
		{name: "start with an unreadable body", uri: "/v1.41/containers/jupyter-bob-plain/start", body: `{"Binds":`, reason: ReasonBadBody},
		{name: "PidMode sharing the hub container's namespace", body: `{` + bob + `,"HostConfig":{"PidMode":"container:hub"}}`, reason: ReasonNotMember},
		{name: "PidMode host", body: `{` + bob + `,"HostConfig":{"PidMode":"host"}}`, reason: ReasonNotMember, msgHas: "PidMode host"},
		{name: "PidMode sharing a plain container's namespace", body: `{` + bob + `,"HostConfig":{"PidMode":"container:plain"}}`, allow: true, reason: ReasonNoExposure},
		{name: "start of a stored container sharing the hub's PID namespace", uri: "/v1.41/containers/pid-sharer/start", reason: ReasonNotMember},
		{name: "inline volume of type proc", body: `{` + bob + `,"HostConfig":{"Mounts":[{"Type":"volume","Target":"/hp","VolumeOptions":{"DriverConfig":{"Options":{"type":"proc","device":"/hostproc"}}}}]}}`, reason: ReasonNotMember, msgHas: "type=proc"},
		{name: "stored volume of type proc", body: `{` + bob + `,"HostConfig":{"Binds":["procvol:/hp"]}}`, reason: ReasonNotMember},
		{name: "stored overlay volume over the socket directory", body: `{` + bob + `,"HostConfig":{"Binds":["overlayvol:/o"]}}`, reason: ReasonNotMember},
		{name: "nfs volume", body: `{` + bob + `,"HostConfig":{"Binds":["nfsvol:/home/jovyan"]}}`, allow: true, reason: ReasonNoExposure},
		{name: "inline tmpfs volume", body: `{` + bob + `,"HostConfig":{"Mounts":[{"Type":"volume","Target":"/t","VolumeOptions":{"DriverConfig":{"Options":{"type":"tmpfs","device":"tmpfs"}}}}]}}`, allow: true, reason: ReasonNoExposure},
		{name: "service rollback", uri: "/v1.41/services/svc/update?rollback=previous", body: `{"TaskTemplate":{"ContainerSpec":{"Image":"bb"}}}`, reason: ReasonInspectFailed, msgHas: "rollback"},
		{name: "disable hubauthz", uri: "/v1.41/plugins/hubauthz:latest/disable", reason: ReasonSelfProtection, msgHas: "authorization-plugins"},
		{name: "set hubauthz", uri: "/v1.41/plugins/hubauthz:latest/set", body: `["HUBAUTHZ_PROTECTED_PATHS=/nothing"]`, reason: ReasonSelfProtection},
		{name: "upgrade hubauthz", uri: "/plugins/hubauthz:latest/upgrade?remote=evil", reason: ReasonSelfProtection},
		{name: "remove hubauthz", method: "DELETE", uri: "/v1.41/plugins/hubauthz:latest?force=1", reason: ReasonSelfProtection},
		{name: "disable hubauthz with self-management allowed", uri: "/v1.41/plugins/hubauthz:latest/disable", cfg: Config{AllowSelfManagement: true}, allow: true, reason: ReasonSelfProtection},
		{name: "disable another plugin", uri: "/v1.41/plugins/other:latest/disable", allow: true, reason: ReasonUnguarded},
		{name: "disable an unknown plugin", uri: "/v1.41/plugins/nope/disable", allow: true, reason: ReasonUnguarded},
		{name: "plugin inspection fails", uri: "/v1.41/plugins/hubauthz:latest/disable", inspectErr: errors.New("EOF"), reason: ReasonInspectFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fi := newFakeInspector()
			fi.err = tt.inspectErr
			method, uri := "POST", createURI
			if tt.method != "" {
				method = tt.method
			}
			if tt.uri != "" {
				uri = tt.uri
			}
			d := testAuthorizerWith(t, members, fi, tt.cfg).Decide(context.Background(), Request{Method: method, URI: uri, Body: []byte(tt.body)})
			if tt.cfg.AllowSelfManagement && !d.Audited() {
				t.Errorf("allowed self-management is not audited")
			}
			if d.Allow != tt.allow || d.Reason != tt.reason || !strings.Contains(d.Msg, tt.msgHas) {
				t.Fatalf("Decide = allow %v reason %q msg %q; want allow %v reason %q msg containing %q", d.Allow, d.Reason, d.Msg, tt.allow, tt.reason, tt.msgHas)
			}
		})
	}
}

func TestChangingContainersOrVolumesDropsTheCache(t *testing.T) {
	for _, r := range []Request{
		{Method: "DELETE", URI: "/v1.41/containers/old?force=1"},
		{Method: "POST", URI: "/v1.41/containers/x/rename?name=" + strings.Repeat("ab", 32)},
		{Method: "POST", URI: "/v1.41/containers/prune"},
		{Method: "POST", URI: "/v1.41/containers/create?name=" + strings.Repeat("cd", 32), Body: []byte(`{"Image":"bb"}`)},
		{Method: "POST", URI: "/v1.41/volumes/create", Body: []byte(`{"Name":"v"}`)},
		{Method: "DELETE", URI: "/v1.41/volumes/v"},
		{Method: "POST", URI: "/v1.41/volumes/prune"},
		{Method: "POST", URI: "/v1.41/containers/create", Body: []byte(`{"Image":"bb","HostConfig":{"Mounts":[{"Type":"volume","Source":"new","Target":"/x","VolumeOptions":{"DriverConfig":{"Options":{"type":"tmpfs","device":"tmpfs"}}}}]}}`)},
		// A volume of another driver may be created under a name cached as missing.
		{Method: "POST", URI: "/v1.41/containers/create", Body: []byte(`{"Image":"bb","HostConfig":{"VolumeDriver":"hostpath","Binds":["new:/x"]}}`)},
		{Method: "POST", URI: "/v1.41/containers/create", Body: []byte(`{"Image":"bb","VolumeDriver":"hostpath","Binds":["new:/x"]}`)},
		{Method: "POST", URI: "/v1.41/containers/create", Body: []byte(`{"Image":"bb","HostConfig":{"Mounts":[{"Type":"volume","Source":"new","Target":"/x","VolumeOptions":{"DriverConfig":{"Name":"hostpath"}}}]}}`)},
	} {
		fi := newFakeInspector()
		a := testAuthorizerWith(t, &fakeMembers{}, fi, Config{})
		d := a.Decide(context.Background(), r)
		if !d.Allow || fi.forgets != 1 {
			t.Errorf("%s %s: allow %v, cache dropped %d times; want an allow that drops it once", r.Method, r.URI, d.Allow, fi.forgets)
		}
		// And again once dockerd has carried it out (AuthZRes): a lookup
		// made in between may have seen what the request replaced.
		a.Settled(r)
		if fi.forgets != 2 {
			t.Errorf("%s %s settled: cache dropped %d times in all; want 2", r.Method, r.URI, fi.forgets)
		}
	}
}

func TestSettledRequestsThatChangeNothingKeepTheCache(t *testing.T) {
	for _, r := range []Request{
		{Method: "GET", URI: "/v1.41/containers/json"},
		{Method: "POST", URI: "/v1.41/containers/create?name=jupyter-bob", Body: []byte(`{"Image":"bb","HostConfig":{"Binds":["jupyterhub-user-bob:/home/jovyan/work"]}}`)},
		{Method: "POST", URI: "/v1.41/containers/create", Body: []byte(`{"HostConfig":`)},
		{Method: "POST", URI: "/v1.41/containers/abc/start"},
		{Method: "", URI: ""},
	} {
		fi := newFakeInspector()
		testAuthorizerWith(t, &fakeMembers{}, fi, Config{}).Settled(r)
		if fi.forgets != 0 {
			t.Errorf("%s %s settled: cache dropped %d times; want 0", r.Method, r.URI, fi.forgets)
		}
	}
}
