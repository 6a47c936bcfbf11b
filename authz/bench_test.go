package authz

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/swarm"
)

// The decision core over the request bodies in testdata/, with an
// in-memory membership (a warm cache) and an in-memory inspector (a cached
// inspection, and named volumes answered at once). What remains is the
// rule's own CPU and allocations: routing, decoding, finding exposures and
// the owner. `make bench` runs these with -benchmem; docs/performance.md
// has the numbers.

// benchMembers answers from a map, like hub.Hub with a warm cache.
type benchMembers map[string]bool

func (m benchMembers) IsMember(_ context.Context, _, user string) (bool, error) { return m[user], nil }

// benchInspector answers from maps, like docker.Inspector with the
// container already in its cache and a dockerd that answers at once.
type benchInspector struct {
	containers map[string]Container
	volumes    map[string]Volume
}

func (i benchInspector) Container(_ context.Context, id string) (Container, error) {
	if c, ok := i.containers[id]; ok {
		return c, nil
	}
	return Container{}, fmt.Errorf("no such container %q: %w", id, ErrNotFound)
}

func (i benchInspector) Volume(_ context.Context, name string) (Volume, error) {
	if v, ok := i.volumes[name]; ok {
		return v, nil
	}
	return Volume{}, fmt.Errorf("no such volume %q: %w", name, ErrNotFound)
}

func (i benchInspector) Plugin(_ context.Context, name string) (Plugin, error) {
	return Plugin{}, fmt.Errorf("no such plugin %q: %w", name, ErrNotFound)
}

// benchStoredID is the full ID of the stored container the start case
// starts: alice's DockerSpawner container, as docker.Inspector reports it.
const benchStoredID = "3f1e2d4c5b6a79880123456789abcdef0123456789abcdef0123456789abcdef"

// benchCase is one request kind of the benchmarks.
type benchCase struct {
	name   string
	req    Request
	allow  bool
	reason Reason
}

func benchCases(tb testing.TB) (*Authorizer, []benchCase) {
	tb.Helper()
	body := func(name string) []byte {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	pp, err := NewProtectedPaths([]string{"/var/run/docker.sock"})
	if err != nil {
		tb.Fatal(err)
	}
	insp := benchInspector{
		containers: map[string]Container{benchStoredID: {
			ID: benchStoredID, Name: "/jupyter-alice", Image: "jupyter/base-notebook:latest",
			Labels: map[string]string{"hub.jupyter.org/username": "alice", "org.jupyter.service": "jupyterhub"},
			Env:    []string{"JUPYTERHUB_USER=alice", "JUPYTERHUB_API_URL=http://jupyterhub:8081/hub/api", "PATH=/usr/bin:/bin"},
			Binds:  []string{"jupyterhub-user-alice:/home/jovyan/work:rw"},
			MountPoints: []MountPoint{{Type: "volume", Name: "jupyterhub-user-alice",
				Source: "/var/lib/docker/volumes/jupyterhub-user-alice/_data"}},
		}},
		volumes: map[string]Volume{
			"jupyterhub-user-alice": {Name: "jupyterhub-user-alice", Driver: "local"},
			"jupyterhub-user-bob":   {Name: "jupyterhub-user-bob", Driver: "local"},
		},
	}
	a := New(Config{Protected: pp, OwnerLabels: []string{"hub.jupyter.org/username"}, Group: "docker-privileged"},
		benchMembers{"alice": true}, insp)
	create := func(user, file string) Request {
		return Request{Method: "POST", URI: "/v1.41/containers/create?name=jupyter-" + user, Body: body(file)}
	}
	return a, []benchCase{
		{"create-no-socket", create("bob", "dockerspawner-create.json"), true, ReasonNoExposure},
		{"create-socket-member", create("alice", "dockerspawner-create-socket-alice.json"), true, ReasonMember},
		{"create-socket-nonmember", create("bob", "dockerspawner-create-socket-bob.json"), false, ReasonNotMember},
		{"container-list", Request{Method: "GET", URI: "/v1.41/containers/json?all=1"}, true, ReasonUnguarded},
		{"start-cached", Request{Method: "POST", URI: "/v1.41/containers/" + benchStoredID + "/start"}, true, ReasonNoExposure},
	}
}

// BenchmarkDecide is the decision core, one sub-benchmark per request kind.
func BenchmarkDecide(b *testing.B) {
	a, cases := benchCases(b)
	ctx := context.Background()
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if d := a.Decide(ctx, c.req); d.Allow != c.allow || d.Reason != c.reason {
				b.Fatalf("Decide = allow %v reason %q (%s); want allow %v reason %q", d.Allow, d.Reason, d.Msg, c.allow, c.reason)
			}
			b.ReportAllocs()
			b.SetBytes(int64(len(c.req.Body)))
			cpu := processCPU()
			for b.Loop() {
				a.Decide(ctx, c.req)
			}
			reportCPU(b, cpu)
		})
	}
}

// BenchmarkDecideParallel runs the same kinds from GOMAXPROCS goroutines
// at once, to show contention in the rule (there is no shared mutable
// state in it; the caches live in hub and docker).
func BenchmarkDecideParallel(b *testing.B) {
	a, cases := benchCases(b)
	ctx := context.Background()
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					a.Decide(ctx, c.req)
				}
			})
		})
	}
}

// BenchmarkDecodeCreate isolates the body decode of the largest kind.
func BenchmarkDecodeCreate(b *testing.B) {
	body, err := os.ReadFile("testdata/dockerspawner-create-socket-alice.json")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	cpu := processCPU()
	for b.Loop() {
		if _, err := decodeCreate(body); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, cpu)
}

// processCPU is the CPU time (user and system) the process has used. On a
// shared machine CPU time per operation varies much less than ns/op, which
// counts the time other processes held the CPU too.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per operation since start as cpu-ns/op.
func reportCPU(b *testing.B, start time.Duration) {
	if b.N > 0 {
		b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op")
	}
}

// decodeJSONReference is decodeJSON as it was before the json.Unmarshal
// fast path: FuzzDecodeCreateUnchanged holds the two to the same answers.
func decodeJSONReference(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return errNoBody
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if len(bytes.TrimSpace(body[dec.InputOffset():])) != 0 {
		return errTrailing
	}
	return nil
}

// dockerdCreateBody is what dockerd decodes a container create into (its
// ContainerConfigWrapper, with the deprecated top-level host config of
// 20.10), in moby's whole types: the reference for createBody, which keeps
// only the fields the rule reads.
type dockerdCreateBody struct {
	*container.Config
	InnerHostConfig  *container.HostConfig     `json:"HostConfig,omitempty"`
	Cpuset           string                    `json:",omitempty"`
	NetworkingConfig *network.NetworkingConfig `json:"NetworkingConfig,omitempty"`
	*container.HostConfig
}

// referenceWorkload decodes a create body into dockerd's whole types, the
// way decodeCreate did before it skipped the fields the rule does not read.
func referenceWorkload(body []byte) (workload, error) {
	var b dockerdCreateBody
	if err := decodeJSONReference(body, &b); err != nil {
		return workload{}, err
	}
	var w workload
	if b.Config != nil {
		w.image, w.labels, w.env = b.Image, []map[string]string{b.Labels}, b.Env
	}
	for _, hc := range []*container.HostConfig{b.InnerHostConfig, b.HostConfig} {
		if hc != nil {
			w.binds = append(w.binds, hc.Binds...)
			w.mounts = append(w.mounts, mountSpecs(hc.Mounts)...)
			w.volumesFrom = append(w.volumesFrom, hc.VolumesFrom...)
			if hc.PidMode != "" {
				w.pidModes = append(w.pidModes, string(hc.PidMode))
			}
			if hc.VolumeDriver != "" {
				w.volumeDrivers = append(w.volumeDrivers, hc.VolumeDriver)
			}
		}
	}
	return w, nil
}

// withoutEmptyLabels drops label sets with no labels, which the owner
// lookup skips: the whole types allocate a Config for any Config key, the
// fast decode only for the keys it reads.
func withoutEmptyLabels(w workload) workload {
	var ls []map[string]string
	for _, l := range w.labels {
		if len(l) > 0 {
			ls = append(ls, l)
		}
	}
	w.labels = ls
	return w
}

// FuzzDecodeCreateUnchanged checks that the fast body decode reads every
// body as a decode into dockerd's whole types does. A create body that
// dockerd's types accept gives the same workload; one they refuse may be
// refused or judged (dockerd refuses it too, so nothing is created), but a
// body refused for its syntax, or for being empty or more than one value,
// is refused with the same message. Service
// bodies decode into the whole swarm.ServiceSpec: the same value or the
// same error message as through a json.Decoder.
func FuzzDecodeCreateUnchanged(f *testing.F) {
	for _, name := range []string{"dockerspawner-create.json", "dockerspawner-create-socket-alice.json", "dockerspawner-create-socket-bob.json"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", " \n", "null", "{}", "[]", `"x"`, "Binds=/var/run/docker.sock", `{} {"Binds":["/run:/r"]}`, "{}\v", "{}\u00a0", "{} \n",
		`{"HostConfig":{"Binds":["/var/run/docker.sock:/s"]`, `{"HostConfig":{"Binds":"/var/run/docker.sock:/s"}}`,
		`{"HostConfig":{"Memory":"x","Binds":["/run:/r"]}}`, `{"Labels":{"a":1},"Binds":["/run:/r"]}`,
		`{"labels":{"hub.jupyter.org/username":"bob"},"hostconfig":{"binds":["/var/run/docker.sock:/s"]}}`,
		`{"Labels":{"hub.jupyter.org/username":"bob"},"HostConfig":{"Binds":["/run:/r"]},"HostConfig":{"Binds":[]}}`,
		`{"HostConfig":{"Binds":["/run:/r"]},"HostConfig":{"Memory":1}}`, `{"HostConfig":null,"Binds":["/run:/r"]}`,
		`{"Binds":["/run:/r"],"Mounts":[{"Type":"bind","Source":"/run"}],"VolumesFrom":["hub"]}`,
		`{"BINDS":["/run:/r"],"pidmode":"host","hostCONFIG":{"volumesfrom":["a"],"PIDMODE":"container:b"}}`,
		`{"Mounts":[{"Type":"volume","Source":"v","VolumeOptions":{"DriverConfig":{"Name":"local","Options":{"device":"/run","o":"bind"}}}}]}`,
		`{"Cpuset":"0","NetworkingConfig":{"EndpointsConfig":{"n":{}}},"Binds":["/run:/r"]}`,
		`{"VolumeDriver":"hostpath"}`, `{"HostConfig":{"volumedriver":"a"},"VolumeDriver":"b","Binds":["v:/x"]}`,
		`{"Image":"a","Image":"b","Env":["JUPYTERHUB_USER=x"],"env":["JUPYTERHUB_USER=y"]}`,
		`{"ExposedPorts":{"99999/tcp":{}}}`, `{"HostConfig":{"PortBindings":{"80/tcp":[{"HostIp":"not-an-ip"}]}}}`,
		`{"Cmd":"true","Entrypoint":["sh"],"Healthcheck":{"Interval":"1s"}}`, `{"Cmd":{},"Binds":["/run:/r"]}`,
		`{"TaskTemplate":{"ContainerSpec":{"Image":"bb","Mounts":[{"Type":"bind","Source":"/run","Target":"/s"}]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		ref, refErr := referenceWorkload(body)
		got, err := decodeCreate(body)
		var syntax *json.SyntaxError
		switch {
		case refErr == nil && err != nil:
			t.Fatalf("create %q: error %v, but dockerd's types decode it", body, err)
		case refErr == nil && !reflect.DeepEqual(withoutEmptyLabels(got), withoutEmptyLabels(ref)):
			t.Fatalf("create %q: decoded %+v, dockerd's types %+v", body, got, ref)
		case (errors.As(refErr, &syntax) || errors.Is(refErr, errNoBody) || errors.Is(refErr, errTrailing)) &&
			(err == nil || err.Error() != refErr.Error()):
			t.Fatalf("create %q: error %v, dockerd's types %v", body, err, refErr)
		}
		var refSpec, gotSpec swarm.ServiceSpec
		refErr = decodeJSONReference(body, &refSpec)
		err = decodeJSON(body, &gotSpec)
		if (err == nil) != (refErr == nil) || (err != nil && err.Error() != refErr.Error()) {
			t.Fatalf("service %q: error %v, before %v", body, err, refErr)
		}
		if err == nil && !reflect.DeepEqual(gotSpec, refSpec) {
			t.Fatalf("service %q: decoded %+v, before %+v", body, gotSpec, refSpec)
		}
	})
}
