package e2e

// The end-to-end measurements of docs/performance.md: hubauthz against the
// null plugin over the socket, resident memory after a million requests,
// hub requests under a burst and a steady stream, and docker create through
// a real dockerd with and without the plugin. They run only with
// HUBAUTHZ_BENCH=1 or under -bench (make bench), take a few minutes, and
// assert decisions and counts, never timings: the timings are reported.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hubauthz/hubauthz/cmd/authzload/load"
	"github.com/hubauthz/hubauthz/e2e/dockertest"
	"github.com/hubauthz/hubauthz/hub/hubtest"
)

// benchEnv reads a bench setting from the environment.
func benchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func benchEnabled() bool {
	if os.Getenv("HUBAUTHZ_BENCH") == "1" {
		return true
	}
	f := flag.Lookup("test.bench")
	return f != nil && f.Value.String() != ""
}

// benchUsers are the hub users of the hub-load measurement; the first
// benchMembers of them are in the group.
const (
	benchUsers   = 100
	benchMembers = 20
)

func benchUser(i int) string { return fmt.Sprintf("user%03d", i%benchUsers) }

// countingProxy sits between hubauthz and the real hub and remembers every
// request it forwards.
type countingProxy struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits []hubHit
}

type hubHit struct {
	at     time.Time
	method string
	path   string
}

func startCountingProxy(t *testing.T, hubAPI string) *countingProxy {
	t.Helper()
	u, err := url.Parse(hubAPI)
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host})
	rp.Transport = &http.Transport{Proxy: nil}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.hits = append(p.hits, hubHit{at: time.Now(), method: r.Method, path: r.URL.Path})
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// groupGets returns the times of the GET /groups/{group} requests since from.
func (p *countingProxy) groupGets(from time.Time) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []time.Time
	for _, h := range p.hits {
		if !h.at.Before(from) && h.method == "GET" && strings.HasSuffix(h.path, "/groups/"+group) {
			out = append(out, h.at)
		}
	}
	return out
}

// all returns the number of requests of any kind since from.
func (p *countingProxy) all(from time.Time) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, h := range p.hits {
		if !h.at.Before(from) {
			n++
		}
	}
	return n
}

// benchProc is a plugin process of the bench: hubauthz or a null plugin.
type benchProc struct {
	name    string
	socket  string
	pid     int
	logPath string
}

func startBenchProc(t *testing.T, name, socket string, env []string, bin string, args ...string) *benchProc {
	t.Helper()
	p := &benchProc{name: name, socket: socket, logPath: filepath.Join(t.TempDir(), name+".log")}
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	waited, err := dockertest.StartTied(cmd)
	if err != nil {
		t.Fatal(err)
	}
	p.pid = cmd.Process.Pid
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-waited
		logf.Close()
	})
	for i := 0; ; i++ {
		if c, err := net.Dial("unix", socket); err == nil {
			c.Close()
			return p
		}
		if i > 250 {
			b, _ := os.ReadFile(p.logPath)
			t.Fatalf("%s never served %s; log:\n%s", name, socket, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *benchProc) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// memory returns VmRSS and VmHWM of the process, in KiB.
func (p *benchProc) memory(t *testing.T) (rss, hwm int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "VmRSS:" {
			rss, _ = strconv.Atoi(f[1])
		}
		if len(f) >= 2 && f[0] == "VmHWM:" {
			hwm, _ = strconv.Atoi(f[1])
		}
	}
	return rss, hwm
}

// flush sends SIGHUP to hubauthz and waits until it has emptied its
// membership cache.
func (p *benchProc) flush(t *testing.T) {
	t.Helper()
	before := strings.Count(p.log(), "membership cache flushed")
	if err := syscall.Kill(p.pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() string {
		if strings.Count(p.log(), "membership cache flushed") > before {
			return ""
		}
		return "hubauthz did not log the flush"
	})
}

// node is a private dockerd with its own hubauthz process, which inspects
// that dockerd and can be put into its authorization chain.
type node struct {
	docker  *dockertest.Daemon
	hubauth *benchProc
	name    string // hubauthz's plugin name in dockerd
	api     *http.Client
	plugin  string // the authorization plugin in dockerd's chain: hubauthz's name, a null plugin's, or none
}

// bench is everything the measurements share.
type bench struct {
	hub       *hubtest.Hub
	proxy     *countingProxy
	nodes     []*node // nodes[0] serves every measurement; nodes[1] joins for the dockerd one
	before    *benchProc
	nulls     []*benchProc
	reader    *benchProc // a null plugin that reads each body as hubauthz does (authz.ReadBody)
	chainNull string     // a null plugin's name in /run/docker/plugins, for dockerd's chain
	report    bytes.Buffer
}

func (b *bench) printf(format string, args ...any) { fmt.Fprintf(&b.report, format, args...) }

// buildAuthzload builds cmd/authzload for the null plugins.
func buildAuthzload(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "authzload")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "../cmd/authzload")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build authzload: %v\n%s", err, out)
	}
	return bin
}

// hubauthzEnv is the environment of a hubauthz process that inspects the
// dockerd in dir and protects its socket as well as the default path.
func (b *bench) hubauthzEnv(socket, dir string) []string {
	return []string{
		"HUBAUTHZ_SOCKET=" + socket,
		"HUBAUTHZ_PROTECTED_PATHS=/var/run/docker.sock," + filepath.Join(dir, "docker.sock"),
		"JUPYTERHUB_API_URL=" + b.proxy.srv.URL + "/hub/api",
		"JUPYTERHUB_API_TOKEN=" + b.hub.Token,
		"HUBAUTHZ_CACHE_TTL=30s",
		"DOCKER_HOST=unix://" + filepath.Join(dir, "docker.sock"),
	}
}

// startNode starts a hubauthz process and the dockerd it inspects, with
// the plugin not yet in the dockerd's chain.
func (b *bench) startNode(t *testing.T) *node {
	t.Helper()
	dir, err := os.MkdirTemp("", "dt")
	if err != nil {
		t.Fatal(err)
	}
	n := &node{name: fmt.Sprintf("hubauthz-bench-%d-%d", os.Getpid(), len(b.nodes))}
	socket := "/run/docker/plugins/" + n.name + ".sock"
	bin := binary
	if v := os.Getenv("HUBAUTHZ_BENCH_BINARY"); v != "" {
		bin = v
	}
	n.hubauth = startBenchProc(t, "hubauthz", socket, b.hubauthzEnv(socket, dir), bin)
	n.docker = dockertest.Start(t, dockertest.Options{Dir: dir})
	n.api = &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", n.docker.Socket)
		}, MaxIdleConnsPerHost: 4}}
	t.Cleanup(n.api.CloseIdleConnections)
	b.nodes = append(b.nodes, n)
	return n
}

func startBench(t *testing.T) *bench {
	t.Helper()
	members := []string{"alice"}
	for i := 0; i < benchMembers; i++ {
		members = append(members, benchUser(i))
	}
	b := &bench{hub: hubtest.Start(t, hubtest.Options{Groups: map[string][]string{group: members}})}
	b.proxy = startCountingProxy(t, b.hub.APIURL)
	null := buildAuthzload(t)
	for _, n := range []string{"null", "null2"} {
		s := filepath.Join(t.TempDir(), n+".sock")
		b.nulls = append(b.nulls, startBenchProc(t, n, s, nil, null, "null", "-socket", s))
	}
	s := filepath.Join(t.TempDir(), "reader.sock")
	// The reader collects garbage as hubauthz does (GOGC=200, see
	// cmd/hubauthz/main.go), so that hubauthz ÷ reader is the rule alone.
	b.reader = startBenchProc(t, "reader", s, []string{"GOGC=200"}, null, "null", "-read-body", "-socket", s)
	b.chainNull = fmt.Sprintf("authzload-null-%d", os.Getpid())
	s = "/run/docker/plugins/" + b.chainNull + ".sock"
	startBenchProc(t, "null-in-dockerd", s, nil, null, "null", "-socket", s)
	b.startNode(t)
	if bin := os.Getenv("HUBAUTHZ_BENCH_BEFORE"); bin != "" {
		// The build from before the fixes, against the same hub and dockerd.
		socket := filepath.Join(t.TempDir(), "before.sock")
		b.before = startBenchProc(t, "hubauthz-before", socket, b.hubauthzEnv(socket, b.nodes[0].docker.Dir), bin)
	}
	return b
}

// setPlugin sets dockerd's authorization chain to the plugin named
// (none when empty), with SIGHUP and daemon.json.
func (n *node) setPlugin(t *testing.T, name string) {
	t.Helper()
	if n.plugin == name {
		return
	}
	if name != "" {
		n.docker.Reload(t, map[string]any{"authorization-plugins": []string{name}})
	} else {
		n.docker.Reload(t, nil)
	}
	n.plugin = name
	n.api.CloseIdleConnections()
}

// dockerAPI sends one request to the private dockerd on a kept-alive
// connection and returns the status and body.
func (n *node) dockerAPI(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://docker"+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := n.api.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// create creates a container and returns its ID.
func (n *node) create(t *testing.T, name string, body []byte) string {
	t.Helper()
	status, out := n.dockerAPI(t, "POST", "/v1.41/containers/create?name="+name, body)
	if status != http.StatusCreated {
		t.Fatalf("create %s: %d %s", name, status, out)
	}
	var c struct{ ID string }
	if err := json.Unmarshal(out, &c); err != nil {
		t.Fatal(err)
	}
	return c.ID
}

// volumes creates the named volumes of the users' servers.
func (n *node) volumes(t *testing.T, users ...string) {
	t.Helper()
	for _, u := range users {
		if status, out := n.dockerAPI(t, "POST", "/v1.41/volumes/create", []byte(`{"Name":"jupyterhub-user-`+u+`"}`)); status != http.StatusCreated {
			t.Fatalf("volume for %s: %d %s", u, status, out)
		}
	}
}

func readTemplate(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "authz", "testdata", "dockerspawner-create.json"))
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	load, _ := os.ReadFile("/proc/loadavg")
	return fmt.Sprintf("%d CPUs (%s), %s %s/%s, load average at start %s", runtime.NumCPU(), model,
		runtime.Version(), runtime.GOOS, runtime.GOARCH, strings.Join(strings.Fields(string(load))[:3], " "))
}

// TestBench runs every end-to-end measurement against one JupyterHub, a
// private dockerd with its own hubauthz (a second pair joins for the
// dockerd measurement) and null plugins.
func TestBench(t *testing.T) {
	if !benchEnabled() {
		t.Skip("set HUBAUTHZ_BENCH=1 or run with -bench (make bench)")
	}
	began := time.Now()
	b := startBench(t)
	b.printf("# hubauthz end-to-end measurements\n\n%s, %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), machine())

	// hubauthz is dockerd's plugin while it is measured over its socket,
	// as in production: its inspections pass through it again.
	a := b.nodes[0]
	a.setPlugin(t, a.name)
	a.volumes(t, "alice", "bob")
	body, err := load.SpawnerBody(readTemplate(t), "alice", "", dockertest.Image)
	if err != nil {
		t.Fatal(err)
	}
	storedID := a.create(t, "jupyter-alice", body)

	only := os.Getenv("HUBAUTHZ_BENCH_ONLY") // comma-separated subset, for iterating
	for _, m := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"socket", func(t *testing.T) { b.socket(t, storedID) }},
		{"memory", b.memory},
		{"hub-load", b.hubLoad},
		{"dockerd", b.throughDockerd},
	} {
		if only == "" || slices.Contains(strings.Split(only, ","), m.name) {
			t.Run(m.name, m.f)
		}
	}

	b.printf("All measurements took %v.\n", time.Since(began).Round(time.Second))
	fmt.Print("\n" + b.report.String())
	if out := os.Getenv("HUBAUTHZ_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, b.report.Bytes(), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// socket compares hubauthz with the null plugin (and the null plugin with
// a second null plugin, which shows the noise floor) over the socket.
func (b *bench) socket(t *testing.T, storedID string) {
	kinds, err := load.StandardKinds(filepath.Join("..", "authz", "testdata"), storedID)
	if err != nil {
		t.Fatal(err)
	}
	// Diagnostics: the two most common creates without their named volume,
	// whose inspection (cached since 8e3d328) went through dockerd; what
	// remains is the plugin's own cost.
	diag, err := load.DiagnosticKinds(kinds)
	if err != nil {
		t.Fatal(err)
	}
	kinds = append(kinds, diag...)
	if only := os.Getenv("HUBAUTHZ_BENCH_KINDS"); only != "" {
		kinds = slices.DeleteFunc(kinds, func(k load.Kind) bool { return !slices.Contains(strings.Split(only, ","), k.Name) })
	}
	targets := []load.Target{{Name: "hubauthz", Socket: b.nodes[0].hubauth.socket, PID: b.nodes[0].hubauth.pid},
		{Name: "null", Socket: b.nulls[0].socket, PID: b.nulls[0].pid}, {Name: "null2", Socket: b.nulls[1].socket, PID: b.nulls[1].pid},
		{Name: "reader", Socket: b.reader.socket, PID: b.reader.pid}}
	if b.before != nil {
		targets = append(targets, load.Target{Name: "hubauthz-before", Socket: b.before.socket, PID: b.before.pid})
	}
	o := load.Options{
		Targets:  targets,
		Baseline: "null",
		Kinds:    kinds,
		Clients:  []int{1, 8},
		Warmup:   300 * time.Millisecond,
		Phase:    time.Duration(benchEnv("HUBAUTHZ_BENCH_PHASE_MS", 100)) * time.Millisecond,
		Rounds:   benchEnv("HUBAUTHZ_BENCH_ROUNDS", 0),
	}
	if o.Rounds == 0 {
		cycle := 2 * len(targets)
		o.Rounds = (16 + cycle - 1) / cycle * cycle
	}
	began := time.Now()
	samples, err := load.Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range samples {
		want := s.Requests
		if strings.HasPrefix(s.Target, "hubauthz") && s.Kind == load.CreateSocketNonMember {
			want = 0
		}
		if s.Allowed != want {
			t.Errorf("%s x%d on %s: %d of %d allowed, want %d", s.Kind, s.Clients, s.Target, s.Allowed, s.Requests, want)
		}
	}
	b.printf("## Over the socket\n\nAuthZPlugin.AuthZReq posted over each plugin's unix socket on kept-alive connections "+
		"(one per client), bodies from authz/testdata, membership cache warm. The targets take turns in %d rounds of %v "+
		"per cell, in rotating order (each target in each position equally often), after a %v warm-up each; %v in all. "+
		"null2 is a second null plugin: its ratio to null is the noise floor of this machine. reader is a null plugin that "+
		"decodes each body as hubauthz does (authz.ReadBody) and decides nothing: the floor of any plugin that reads "+
		"bodies with encoding/json into moby's types. hubauthz and reader run with GOGC=200 (hubauthz's default), the "+
		"null plugins with Go's default of 100. CPU µs/req is the plugin "+
		"process's CPU time (all threads, /proc/PID/task/*/schedstat) per request.\n\n", o.Rounds, o.Phase, o.Warmup, time.Since(began).Round(time.Second))
	load.Report(&b.report, samples, "null")
	var ruleOnly []*load.Sample
	for _, s := range samples {
		if s.Target == "hubauthz" || s.Target == "reader" {
			ruleOnly = append(ruleOnly, s)
		}
	}
	b.printf("hubauthz against reader, same run: what the rule costs beyond reading the body:\n\n")
	load.Report(&b.report, ruleOnly, "reader")
	if b.before != nil {
		var pair []*load.Sample
		for _, s := range samples {
			if strings.HasPrefix(s.Target, "hubauthz") {
				pair = append(pair, s)
			}
		}
		b.printf("Before and after the fixes, same run (hubauthz-before is the build without them):\n\n")
		load.Report(&b.report, pair, "hubauthz-before")
	}
	rss, hwm := b.nodes[0].hubauth.memory(t)
	b.printf("hubauthz after the socket runs: VmRSS %.1f MiB, VmHWM %.1f MiB.\n\n", float64(rss)/1024, float64(hwm)/1024)
}

// memory sends a million requests and reads hubauthz's resident memory.
func (b *bench) memory(t *testing.T) {
	n := benchEnv("HUBAUTHZ_BENCH_REQUESTS", 1_000_000)
	kinds, err := load.StandardKinds(filepath.Join("..", "authz", "testdata"), "")
	if err != nil {
		t.Fatal(err)
	}
	// A day of dockerd traffic is mostly reads; creates are one in ten.
	mix := []load.Kind{}
	for i := 0; i < 9; i++ {
		mix = append(mix, kinds[3]) // container-list
	}
	mix = append(mix, kinds[0])
	rss0, _ := b.nodes[0].hubauth.memory(t)
	c := load.NewClient(b.nodes[0].hubauth.socket, 8)
	defer c.Close()
	s, err := load.Drive(context.Background(), c, mix, 8, n)
	if err != nil {
		t.Fatal(err)
	}
	rss, hwm := b.nodes[0].hubauth.memory(t)
	b.printf("## Memory\n\n%d requests (9 container lists to 1 DockerSpawner create without the socket) from 8 clients in %v "+
		"(%.0f req/s). hubauthz's VmRSS before: %.1f MiB; after: %.1f MiB; VmHWM (peak): %.1f MiB.\n\n",
		s.Requests, s.Elapsed.Round(time.Second), s.RPS(), float64(rss0)/1024, float64(rss)/1024, float64(hwm)/1024)
}

// hubLoad counts hub requests under a burst of concurrent creates and a
// steady stream, each starting with an empty membership cache.
func (b *bench) hubLoad(t *testing.T) {
	tmpl := readTemplate(t)
	kind := func(i int, socket bool) (load.Kind, bool) {
		u := benchUser(i)
		sock := ""
		if socket {
			sock = "/var/run/docker.sock"
		}
		body, err := load.SpawnerBody(tmpl, u, sock, "")
		if err != nil {
			t.Fatal(err)
		}
		allow := !socket || i%benchUsers < benchMembers
		return load.NewKind(u, "POST", "/v1.41/containers/create?name=jupyter-"+u, body), allow
	}
	b.printf("## Hub load\n\nhubauthz asks the real JupyterHub through a counting reverse proxy; HUBAUTHZ_CACHE_TTL=30s. "+
		"%d users, %d of them in %s. Each measurement starts with an empty cache (SIGHUP).\n\n", benchUsers, benchMembers, group)

	// The burst: 1,000 creates at once from 100 users; one in ten (the
	// users whose number ends in 0) binds the socket.
	const burst = 1000
	kinds := make([]load.Kind, burst)
	want := make([]bool, burst)
	sockets := 0
	for i := range kinds {
		s := i%10 == 0
		if s {
			sockets++
		}
		kinds[i], want[i] = kind(i, s)
	}
	b.nodes[0].hubauth.flush(t)
	c := load.NewClient(b.nodes[0].hubauth.socket, burst)
	defer c.Close()
	from := time.Now()
	var wg sync.WaitGroup
	start := make(chan struct{})
	lat := make([]time.Duration, burst)
	errs := make([]error, burst)
	got := make([]bool, burst)
	for i := range kinds {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			r, err := c.Send(context.Background(), &kinds[i])
			lat[i], errs[i], got[i] = time.Since(t0), err, r.Allow
		})
	}
	close(start)
	wg.Wait()
	elapsed := time.Since(from)
	for i := range kinds {
		if errs[i] != nil {
			t.Fatalf("burst request %d: %v", i, errs[i])
		}
		if got[i] != want[i] {
			t.Errorf("burst request %d (%s): allow %v, want %v", i, kinds[i].Name, got[i], want[i])
		}
	}
	gets := b.proxy.groupGets(from)
	slices.Sort(lat)
	b.printf("| measurement | requests to hubauthz | with the socket | hub requests (GET /groups/%s) | all hub requests | bound |\n|---|---:|---:|---:|---:|---:|\n", group)
	b.printf("| burst: %d concurrent creates, %d users | %d in %v (p50 %v, max %v) | %d | %d | %d | 1 |\n",
		burst, benchUsers, burst, elapsed.Round(time.Millisecond), lat[burst/2].Round(time.Millisecond), lat[burst-1].Round(time.Millisecond),
		sockets, len(gets), b.proxy.all(from))
	if len(gets) != 1 {
		t.Errorf("burst: %d hub requests for the group, want 1", len(gets))
	}

	// The steady stream: creates at a fixed rate, one in ten with the socket.
	dur := time.Duration(benchEnv("HUBAUTHZ_BENCH_STEADY_S", 60)) * time.Second
	const rate = 50 // requests per second
	b.nodes[0].hubauth.flush(t)
	sc := load.NewClient(b.nodes[0].hubauth.socket, 8)
	defer sc.Close()
	from = time.Now()
	tick := time.NewTicker(time.Second / rate)
	var (
		mu      sync.Mutex
		sent    int
		withSoc int
		bad     []string
	)
	for i := 0; time.Since(from) < dur; i++ {
		<-tick.C
		k, allow := kind(i*7+i/benchUsers, i%10 == 0)
		sent++
		if i%10 == 0 {
			withSoc++
		}
		wg.Go(func() {
			r, err := sc.Send(context.Background(), &k)
			if err != nil || r.Allow != allow {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("%s: allow %v err %v, want %v", k.Name, r.Allow, err, allow))
				mu.Unlock()
			}
		})
	}
	tick.Stop()
	wg.Wait()
	elapsed = time.Since(from)
	for _, s := range bad {
		t.Error("steady stream: " + s)
	}
	gets = b.proxy.groupGets(from)
	var at []string
	for _, g := range gets {
		at = append(at, fmt.Sprintf("%.1fs", g.Sub(from).Seconds()))
	}
	bound := int(elapsed/(30*time.Second)) + 1 // one request per TTL window
	b.printf("| steady: %d creates/s for %v | %d | %d | %d (at %s) | %d | %d |\n\n",
		rate, elapsed.Round(time.Second), sent, withSoc, len(gets), strings.Join(at, ", "), b.proxy.all(from), bound)
	if len(gets) > bound {
		t.Errorf("steady stream: %d hub requests in %v, want at most %d", len(gets), elapsed, bound)
	}
}

// throughDockerd times docker create through two private dockerds, each
// with its own hubauthz. In every round one of them has a plugin in its
// authorization chain (hubauthz, or the null plugin for the floor that any
// plugin costs) and the other none, the roles swapping each round, so that
// a difference between the two daemons cancels out. Creates alternate
// between the daemons one by one, so that the machine's noise falls on both
// alike; each pair gives one with/without difference.
func (b *bench) throughDockerd(t *testing.T) {
	for len(b.nodes) < 2 {
		b.startNode(t)
	}
	nodes := b.nodes[:2]
	for _, n := range nodes {
		n.volumes(t, "alice")
	}
	tmpl := readTemplate(t)
	type kind struct {
		name  string
		per   int // pairs per round
		body  map[*node][]byte
		with  map[string][]time.Duration // by the plugin of the round: "hubauthz" or "null"
		wout  map[string][]time.Duration // the creates without a plugin in those rounds
		diffs map[string][]time.Duration // by plugin: with minus without, per pair
	}
	rounds := benchEnv("HUBAUTHZ_BENCH_DOCKER_ROUNDS", 8)
	per := benchEnv("HUBAUTHZ_BENCH_DOCKER_PAIRS", 16)
	var kinds []*kind
	for _, k := range []struct {
		name          string
		socket, novol bool
		per           int
	}{
		{"create-no-socket", false, false, per},
		{"create-socket-member", true, false, max(1, per/2)},
		{"create-no-socket-novol", false, true, max(1, per/2)},
	} {
		kk := &kind{name: k.name, per: k.per, body: map[*node][]byte{},
			with: map[string][]time.Duration{}, wout: map[string][]time.Duration{}, diffs: map[string][]time.Duration{}}
		for _, n := range nodes {
			sock := ""
			if k.socket {
				sock = n.docker.Socket // protected by this node's hubauthz; alice is a member
			}
			body, err := load.SpawnerBody(tmpl, "alice", sock, dockertest.Image)
			if err != nil {
				t.Fatal(err)
			}
			if k.novol {
				nk, err := load.WithoutNamedVolumes(load.NewKind(k.name, "POST", "", body), k.name)
				if err != nil {
					t.Fatal(err)
				}
				body = nk.Body
			}
			kk.body[n] = body
		}
		kinds = append(kinds, kk)
	}
	mode := func(n *node) string {
		switch n.plugin {
		case "":
			return ""
		case b.chainNull:
			return "null"
		}
		return "hubauthz"
	}
	seq := 0
	create := func(n *node, k *kind) time.Duration {
		seq++
		t0 := time.Now()
		n.create(t, fmt.Sprintf("jupyter-alice-%d", seq), k.body[n])
		d := time.Since(t0)
		if os.Getenv("HUBAUTHZ_BENCH_VERBOSE") != "" {
			t.Logf("%s %s plugin=%q %v", n.name, k.name, n.plugin, d)
		}
		return d
	}
	began := time.Now()
	for r := 0; r < rounds; r++ {
		// Rounds cycle: hubauthz on daemon 0, on daemon 1, null on 0, null on 1.
		with := nodes[r%2]
		plugin := with.name
		if r%4 >= 2 {
			plugin = b.chainNull
		}
		with.setPlugin(t, plugin)
		nodes[1-r%2].setPlugin(t, "")
		for _, n := range nodes { // warm-up: the first request after a reload activates the plugin
			for _, k := range kinds {
				create(n, k)
			}
		}
		for _, k := range kinds {
			for i := 0; i < k.per; i++ {
				first, second := nodes[i%2], nodes[1-i%2]
				d1 := create(first, k)
				d2 := create(second, k)
				if first != with {
					d1, d2 = d2, d1
				}
				m := mode(with)
				k.with[m] = append(k.with[m], d1)
				k.wout[m] = append(k.wout[m], d2)
				k.diffs[m] = append(k.diffs[m], d1-d2)
			}
		}
	}
	// hubauthz really was in the chain: a non-member's socket is refused.
	for _, n := range nodes {
		n.setPlugin(t, n.name)
		body, _ := load.SpawnerBody(tmpl, "bob", n.docker.Socket, dockertest.Image)
		if status, out := n.dockerAPI(t, "POST", "/v1.41/containers/create?name=jupyter-bob", body); status != http.StatusForbidden {
			t.Errorf("bob's socket create with hubauthz in the chain of %s: %d %s", n.name, status, out)
		}
	}
	b.printf("## Through dockerd\n\n`POST /v1.41/containers/create` with a DockerSpawner body for alice (image %s, her named volume "+
		"unless *-novol, vfs storage) on two private dockerds, each with its own hubauthz. In each of %d rounds one daemon has a "+
		"plugin in its authorization chain, hubauthz or the null plugin, and the other none; the daemons swap roles every round "+
		"(SIGHUP and daemon.json). Creates alternate between the daemons one by one and each is timed alone; \"without\" "+
		"is the other daemon in the same rounds. \"pair Δ\" is the median of the per-pair differences, with minus without, "+
		"with a bootstrap 95%% confidence interval. %v in all.\n\n", dockertest.Image, rounds, time.Since(began).Round(time.Second))
	b.printf("| kind | plugin | pairs | with p50 ms | without p50 ms | p50 × | with mean ms | without mean ms | mean × | pair Δ median ms [95%% CI] | pair Δ / without p50 [95%% CI] |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	f := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/1e6) }
	med := func(l []time.Duration) time.Duration { slices.Sort(l); return l[len(l)/2] }
	mean := func(l []time.Duration) time.Duration {
		var s time.Duration
		for _, d := range l {
			s += d
		}
		return s / time.Duration(len(l))
	}
	for _, k := range kinds {
		for _, p := range []string{"hubauthz", "null"} {
			with, without, diffs := k.with[p], k.wout[p], k.diffs[p]
			if len(with) == 0 {
				continue
			}
			lo, hi := medianCI(diffs)
			base := float64(med(without)) / 100
			b.printf("| %s | %s | %d | %s | %s | %.3f | %s | %s | %.3f | %s [%s, %s] | %+.1f%% [%+.1f%%, %+.1f%%] |\n", k.name, p, len(diffs),
				f(med(with)), f(med(without)), float64(med(with))/float64(med(without)),
				f(mean(with)), f(mean(without)), float64(mean(with))/float64(mean(without)),
				f(med(diffs)), f(lo), f(hi), float64(med(diffs))/base, float64(lo)/base, float64(hi)/base)
		}
	}
	b.printf("\n")
}

// medianCI is a 95% percentile-bootstrap confidence interval of the median
// of l (2,000 resamples, fixed seed).
func medianCI(l []time.Duration) (lo, hi time.Duration) {
	r := rand.New(rand.NewPCG(1, 2))
	meds := make([]time.Duration, 2000)
	s := make([]time.Duration, len(l))
	for i := range meds {
		for j := range s {
			s[j] = l[r.IntN(len(l))]
		}
		slices.Sort(s)
		meds[i] = s[len(s)/2]
	}
	slices.Sort(meds)
	return meds[len(meds)*25/1000], meds[len(meds)*975/1000]
}
