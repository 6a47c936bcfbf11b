package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hubauthz/hubauthz/hub/hubtest"
)

// DockerSpawner-shaped create bodies, copied from authz/testdata.
const (
	bodySocketBob   = "testdata/dockerspawner-create-socket-bob.json"
	bodySocketAlice = "testdata/dockerspawner-create-socket-alice.json"
	bodyNoSocket    = "testdata/dockerspawner-create.json"
	specSocketBob   = "testdata/service-create-socket-bob.json"
)

// checkOutput is what one `hubauthz check` printed.
type checkOutput struct {
	code   int
	lines  []string
	stderr string
}

// field returns the value of the first "key: value" line, or "".
func (o checkOutput) field(key string) string {
	for _, l := range o.lines {
		if v, ok := strings.CutPrefix(l, key+": "); ok {
			return v
		}
	}
	return ""
}

// checkRun runs `hubauthz check args` with env. It checks what every run
// must satisfy: a decision on the first line exactly when the exit code is
// 0 or 1, and the hub token nowhere.
func checkRun(t *testing.T, env map[string]string, args ...string) checkOutput {
	t.Helper()
	var out, errw bytes.Buffer
	code := run(append([]string{"check"}, args...), envOf(env), &out, &errw)
	t.Logf("hubauthz check %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errw.String())
	o := checkOutput{code: code, lines: strings.Split(strings.TrimRight(out.String(), "\n"), "\n"), stderr: errw.String()}
	if tok := env["JUPYTERHUB_API_TOKEN"]; tok != "" && strings.Contains(out.String()+errw.String(), tok) {
		t.Fatal("the token appears in check's output")
	}
	switch want := map[int]string{0: "allow", 1: "deny"}[code]; {
	case want != "" && o.lines[0] != want:
		t.Fatalf("exit %d but first line %q", code, o.lines[0])
	case want == "" && code == 2 && out.Len() != 0:
		t.Fatalf("exit 2 printed a decision:\n%s", out.String())
	case want == "" && code != 2:
		t.Fatalf("exit %d, want 0, 1 or 2", code)
	}
	return o
}

// wantDecision fails unless o is the decision code (0 allow, 1 deny) with
// reason, and its message (for a deny) holds every part of msg.
func wantDecision(t *testing.T, o checkOutput, code int, reason string, msg ...string) {
	t.Helper()
	if o.code != code || o.field("reason") != reason {
		t.Fatalf("exit %d reason %q, want exit %d reason %q; stderr: %s", o.code, o.field("reason"), code, reason, o.stderr)
	}
	for _, m := range msg {
		if !strings.Contains(o.field("message"), m) {
			t.Errorf("message %q lacks %q", o.field("message"), m)
		}
	}
}

// writeEnvelope writes an AuthZPlugin.AuthZReq as dockerd sends it, with
// body base64-encoded, and returns its path.
func writeEnvelope(t *testing.T, method, uri string, body []byte) string {
	t.Helper()
	req := map[string]any{"User": "", "UserAuthNMethod": "", "RequestMethod": method, "RequestUri": uri,
		"RequestHeaders": map[string]string{"Content-Type": "application/json"}}
	if body != nil {
		req["RequestBody"] = base64.StdEncoding.EncodeToString(body)
	}
	raw, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "authzreq.json", raw)
}

func writeFile(t *testing.T, name string, content []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFixture(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckDryRunCreateBody(t *testing.T) {
	o := checkRun(t, nil, "--not-member", bodySocketBob)
	wantDecision(t, o, 1, "not-member", `user "bob" is not in the JupyterHub group "docker-privileged"`, "/var/run/docker.sock")
	if o.field("user") != "bob" || o.field("group") != "docker-privileged" ||
		o.field("exposures") != "/var/run/docker.sock -> /var/run/docker.sock (via Binds)" ||
		o.field("request") != "POST /v1.41/containers/create" {
		t.Errorf("unexpected fields:\n%s", strings.Join(o.lines, "\n"))
	}
	if !strings.Contains(strings.Join(o.lines, "\n"), `note: named volume "jupyterhub-user-bob" assumed new (check does not contact dockerd)`) {
		t.Error("no note about the home volume")
	}

	o = checkRun(t, nil, bodySocketBob, "--member") // flags may follow FILE
	wantDecision(t, o, 0, "member")
	if o.field("message") != "" || o.field("user") != "bob" {
		t.Errorf("unexpected fields:\n%s", strings.Join(o.lines, "\n"))
	}

	wantDecision(t, checkRun(t, nil, "--not-member", bodyNoSocket), 0, "no-exposure")
	wantDecision(t, checkRun(t, nil, "--not-member", "--uri", "/v1.41/services/create", specSocketBob), 1, "not-member", `"bob"`)
}

func TestCheckEnvelope(t *testing.T) {
	bob := writeEnvelope(t, "POST", "/v1.41/containers/create?name=jupyter-bob", readFixture(t, bodySocketBob))
	wantDecision(t, checkRun(t, nil, "--not-member", bob), 1, "not-member", `user "bob"`)
	wantDecision(t, checkRun(t, nil, "--member", bob), 0, "member")

	list := writeEnvelope(t, "GET", "/v1.41/containers/json?all=1", nil)
	o := checkRun(t, nil, "--not-member", list)
	wantDecision(t, o, 0, "unguarded-route")
	if o.field("request") != "GET /v1.41/containers/json?all=1" {
		t.Errorf("request line %q", o.field("request"))
	}

	start := writeEnvelope(t, "POST", "/v1.41/containers/jupyter-bob/start", nil)
	wantDecision(t, checkRun(t, nil, "--member", start), 1, "inspection-failed", `container "jupyter-bob"`, "check does not contact dockerd")

	noBody := writeEnvelope(t, "POST", "/v1.41/containers/create", nil)
	wantDecision(t, checkRun(t, nil, "--member", noBody), 1, "unreadable-body", "cannot inspect request body")

	if o := checkRun(t, nil, "--member", "--uri", "/v1.41/services/create", bob); o.code != 2 || !strings.Contains(o.stderr, "--uri") {
		t.Errorf("--uri with an AuthZReq: exit %d, stderr %q", o.code, o.stderr)
	}
}

func TestCheckInvalidInput(t *testing.T) {
	for name, in := range map[string]string{
		"truncated":  `{"RequestMethod": "POST", "RequestUri": "/containers/create", "RequestBody": `,
		"bad base64": `{"RequestMethod": "POST", "RequestUri": "/containers/create", "RequestBody": "not base64!"}`,
		"bad type":   `{"RequestMethod": 5, "RequestUri": "/containers/create"}`,
		"empty":      " \n",
	} {
		o := checkRun(t, nil, "--member", writeFile(t, "in.json", []byte(in)))
		if o.code != 2 || o.stderr == "" {
			t.Errorf("%s: exit %d stderr %q, want exit 2 and a reason", name, o.code, o.stderr)
		}
	}
	if o := checkRun(t, nil, "--member", filepath.Join(t.TempDir(), "missing.json")); o.code != 2 || !strings.Contains(o.stderr, "missing.json") {
		t.Errorf("missing file: exit %d stderr %q", o.code, o.stderr)
	}
	// A broken create body is what the plugin would deny, not an input error.
	for _, body := range []string{`{"HostConfig": {"Binds": [`, `["not", "an", "object"]`, `{"Image": "x"} trailing`} {
		o := checkRun(t, nil, "--not-member", writeFile(t, "body.json", []byte(body)))
		wantDecision(t, o, 1, "unreadable-body", "cannot inspect request body")
	}
}

func TestCheckUsageAndConfig(t *testing.T) {
	for _, args := range [][]string{
		{"--member", "--not-member", bodySocketBob},
		{"--member", bodySocketBob, bodyNoSocket},
		{"--member", "--no-such-flag", bodySocketBob},
		{"--member", "--unowned", "sometimes", bodySocketBob},
		{bodySocketBob}, // no hub configured and no dry run
	} {
		if o := checkRun(t, nil, args...); o.code != 2 || o.stderr == "" {
			t.Errorf("%q: exit %d stderr %q, want exit 2", args, o.code, o.stderr)
		}
	}
	if o := checkRun(t, nil, bodySocketBob); !strings.Contains(o.stderr, "JUPYTERHUB_API_URL") || !strings.Contains(o.stderr, "--not-member") {
		t.Errorf("no hint for a missing hub: %q", o.stderr)
	}
	// A dry run needs no hub settings, and ignores a broken token file.
	env := map[string]string{"JUPYTERHUB_API_TOKEN_FILE": "/nonexistent/token"}
	wantDecision(t, checkRun(t, env, "--member", bodySocketBob), 0, "member")
	wantDecision(t, checkRun(t, nil, "--hub-token-file", "/nonexistent/token", "--hub-url", "ftp://x", "--not-member", bodyNoSocket), 0, "no-exposure")

	var out bytes.Buffer
	if code := run([]string{"check", "-h"}, envOf(nil), &out, &out); code != 0 ||
		!strings.Contains(out.String(), "usage: hubauthz check") || !strings.Contains(out.String(), "HUBAUTHZ_PROTECTED_PATHS") {
		t.Errorf("check -h: exit %d\n%s", code, out.String())
	}
}

func TestCheckSettings(t *testing.T) {
	secret := []byte(`{"Image": "x", "Labels": {"hub.jupyter.org/username": "bob"}, "HostConfig": {"Binds": ["/srv:/srv"]}}`)
	body := writeFile(t, "body.json", secret)
	env := map[string]string{"HUBAUTHZ_PROTECTED_PATHS": "/srv/secret"}
	o := checkRun(t, env, "--not-member", body)
	wantDecision(t, o, 1, "not-member", "/srv (which reaches /srv/secret)")
	wantDecision(t, checkRun(t, env, "--not-member", bodySocketBob), 0, "no-exposure")
	// A flag wins over the environment, as for serving.
	wantDecision(t, checkRun(t, env, "--not-member", "--protected-paths", "/var/run/docker.sock", bodySocketBob), 1, "not-member")

	unowned := writeFile(t, "unowned.json", []byte(`{"Image": "x", "HostConfig": {"Binds": ["/run:/run"]}}`))
	wantDecision(t, checkRun(t, nil, "--not-member", unowned), 0, "unowned")
	wantDecision(t, checkRun(t, map[string]string{"HUBAUTHZ_UNOWNED": "deny"}, "--not-member", unowned), 1, "unowned")

	vf := writeFile(t, "vf.json", []byte(`{"Image": "x", "HostConfig": {"VolumesFrom": ["jupyter-alice:ro"]}}`))
	wantDecision(t, checkRun(t, nil, "--member", vf), 1, "inspection-failed", `container "jupyter-alice"`, "check does not contact dockerd")
}

func TestCheckResolvesSymlinksUnderHostRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "srv"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/var/run/docker.sock", filepath.Join(root, "srv", "sock-link")); err != nil {
		t.Fatal(err)
	}
	body := writeFile(t, "body.json", []byte(`{"Image": "x", "Env": ["JUPYTERHUB_USER=bob"], "HostConfig": {"Binds": ["/srv/sock-link:/sock"]}}`))
	// Under the real / there is no such link: the source is judged by its text.
	wantDecision(t, checkRun(t, nil, "--not-member", body), 0, "no-exposure")
	o := checkRun(t, map[string]string{"HUBAUTHZ_HOST_ROOT": root}, "--not-member", body)
	wantDecision(t, o, 1, "not-member", "/srv/sock-link (which reaches /var/run/docker.sock)")
	if o.field("exposures") != "/srv/sock-link -> /var/run/docker.sock (via Binds)" {
		t.Errorf("exposures %q", o.field("exposures"))
	}
}

func TestCheckReadsStdin(t *testing.T) {
	for _, args := range [][]string{{"--not-member"}, {"--not-member", "-"}} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		stdin, body := os.Stdin, readFixture(t, bodySocketBob)
		os.Stdin = r
		go func() {
			w.Write(body)
			w.Close()
		}()
		o := checkRun(t, nil, args...)
		os.Stdin = stdin
		r.Close()
		wantDecision(t, o, 1, "not-member", `user "bob"`)
	}
}

func TestCheckWithHub(t *testing.T) {
	jh := hubtest.Start(t, hubtest.Options{}) // alice is in docker-privileged
	if jh == nil {
		return
	}
	env := map[string]string{"JUPYTERHUB_API_URL": jh.APIURL, "JUPYTERHUB_API_TOKEN": jh.Token}
	wantDecision(t, checkRun(t, env, bodySocketAlice), 0, "member")
	wantDecision(t, checkRun(t, env, bodySocketBob), 1, "not-member", `user "bob"`)
	bob := writeEnvelope(t, "POST", "/containers/create", readFixture(t, bodySocketBob))
	wantDecision(t, checkRun(t, env, bob), 1, "not-member", `user "bob"`)
	// A dry run overrides the hub.
	wantDecision(t, checkRun(t, env, "--member", bodySocketBob), 0, "member")

	// Like the plugin, check creates a missing group again, and says so.
	jh.DeleteGroup(t, hubtest.PrivilegedGroup)
	o := checkRun(t, env, bodySocketAlice)
	wantDecision(t, o, 1, "not-member", `user "alice"`)
	if !strings.Contains(strings.Join(o.lines, "\n"), `note: group "docker-privileged" was missing in the hub`) || !jh.GroupExists(t, hubtest.PrivilegedGroup) {
		t.Error("the group was not recreated, or no note says so")
	}

	env["JUPYTERHUB_API_URL"] = "http://127.0.0.1:1/hub/api"
	wantDecision(t, checkRun(t, env, bodySocketBob), 1, "hub-error", `user "bob"`)
}
