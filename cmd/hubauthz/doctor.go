package main

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hubauthz/hubauthz/hub"
	"github.com/moby/moby/client"
)

// localTimeout bounds one call to dockerd or to the plugin socket.
const localTimeout = 5 * time.Second

// Fixes shared by several checks.
const (
	fixReachHub = "start JupyterHub, or set JUPYTERHUB_API_URL (--hub-url) to the hub's own API address (hub_ip:hub_port), for example http://127.0.0.1:8081/hub/api"
	fixSeeHub   = "make the hub reachable first (see the hub line)"
	fixRole     = "give the hubauthz service a role with read:groups and admin:groups (see docs/jupyterhub.md)"
)

// checkResult is the outcome of one check: a one-line message and, for a
// failure, what the admin should do about it.
type checkResult struct {
	ok       bool
	msg, fix string
}

// pass is a passed check saying what was found.
func pass(format string, args ...any) checkResult {
	return checkResult{ok: true, msg: fmt.Sprintf(format, args...)}
}

// fail is a failed check saying what is wrong and how to fix it.
func fail(fix, format string, args ...any) checkResult {
	return checkResult{msg: fmt.Sprintf(format, args...), fix: fix}
}

// doctorEnv is what the checks use: the validated configuration, a hub
// client set up as serving sets it up, and the environment.
type doctorEnv struct {
	cfg    *config
	hub    *http.Client
	getenv func(string) string
}

// doctorChecks are the checks in output order.
var doctorChecks = []struct {
	name string
	run  func(context.Context, *doctorEnv) checkResult
}{
	{"hub", checkHub},
	{"token", checkToken},
	{"group", checkGroup},
	{"docker", checkDocker},
	{"plugin", checkPlugin},
}

// doctor runs every check against the configuration that serving would use
// and prints one line per check. It returns 0 when all pass, 1 otherwise.
// It only reads: the hub gets GET requests, dockerd a ping.
func doctor(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout)
		return 0
	}
	var hc *http.Client
	if err == nil {
		hc, err = newDoctorHubClient(cfg)
	}
	if err != nil {
		printCheck(stdout, "", "configuration", fail("set the variable or flag named above (see docs/configuration.md, or hubauthz doctor -h)", "%v", err))
		// The docker check needs no configuration, so it still runs.
		printCheck(stdout, "", "docker", checkDocker(context.Background(), &doctorEnv{getenv: getenv}))
		fmt.Fprintln(stderr, "hubauthz doctor: the configuration is invalid")
		return 1
	}
	env, failed := &doctorEnv{cfg: cfg, hub: hc, getenv: getenv}, 0
	for _, c := range doctorChecks {
		r := c.run(context.Background(), env)
		if !r.ok {
			failed++
		}
		printCheck(stdout, cfg.HubToken, c.name, r)
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "hubauthz doctor: %d of %d checks failed\n", failed, len(doctorChecks))
		return 1
	}
	return 0
}

// printCheck writes one check's line, masking the token should any text
// ever carry it.
func printCheck(w io.Writer, token, name string, r checkResult) {
	line := fmt.Sprintf("ok   %s: %s", name, r.msg)
	if !r.ok {
		line = fmt.Sprintf("FAIL %s: %s; fix: %s", name, r.msg, r.fix)
	}
	if token != "" {
		line = strings.ReplaceAll(line, token, "[token]")
	}
	fmt.Fprintln(w, line)
}

// newDoctorHubClient returns an HTTP client for the hub configured like the
// serving one: no proxy, the system roots plus HUBAUTHZ_HUB_CA_FILE. It
// first lets hub.New check the URL and the CA file as serving does.
func newDoctorHubClient(cfg *config) (*http.Client, error) {
	if _, err := hub.New(hub.Config{URL: cfg.HubURL, Token: cfg.HubToken, CAFile: cfg.HubCAFile,
		Timeout: cfg.HubTimeout, TTL: cfg.CacheTTL}); err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // never send the token through a proxy
	if cfg.HubCAFile != "" {
		pool, _ := x509.SystemCertPool()
		if pool == nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(cfg.HubCAFile)
		if err != nil || !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("HUBAUTHZ_HUB_CA_FILE: read PEM certificates from %s: %v", cfg.HubCAFile, err)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: tr, Timeout: cfg.HubTimeout}, nil
}

// hubGet sends GET {HubURL}{path} under HUBAUTHZ_HUB_TIMEOUT, with the token
// when auth is set, and decodes a 200 answer into out. Any other status is
// returned with a text naming it and the hub's message; err is set only
// when no usable answer arrived.
func (d *doctorEnv) hubGet(ctx context.Context, path string, auth bool, out any) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.HubTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(d.cfg.HubURL, "/")+path, nil)
	if err != nil {
		return 0, "", fmt.Errorf("build GET %s: %w", path, err)
	}
	req.Header.Set("Accept", "application/json")
	if auth {
		req.Header.Set("Authorization", "token "+d.cfg.HubToken)
	}
	resp, err := d.hub.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("GET %s: %w", path, transportCause(err))
	}
	defer resp.Body.Close()
	body := json.NewDecoder(io.LimitReader(resp.Body, 4<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct{ Message string }
		_ = body.Decode(&e)
		text := fmt.Sprintf("GET %s answered %s", path, resp.Status)
		if e.Message != "" && e.Message != http.StatusText(resp.StatusCode) {
			text += ": " + e.Message
		}
		return resp.StatusCode, text, nil
	}
	if err := body.Decode(out); err != nil {
		return 0, "", fmt.Errorf("GET %s answered 200 but reading its JSON failed: %w", path, transportCause(err))
	}
	return resp.StatusCode, "", nil
}

// transportCause drops the *url.Error wrapper, which repeats the method and
// URL, and names a timeout plainly.
func transportCause(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err) {
		return errors.New("no answer in time")
	}
	return err
}

// checkHub asks the hub for its version, which needs no token.
func checkHub(ctx context.Context, d *doctorEnv) checkResult {
	var v struct{ Version string }
	status, text, err := d.hubGet(ctx, "/", false, &v)
	switch {
	case err != nil:
		return fail(fixReachHub, "cannot reach the hub at %s: %v", d.cfg.HubURL, err)
	case status != http.StatusOK || v.Version == "":
		return fail(fixReachHub, "%s is not a JupyterHub API: %s", d.cfg.HubURL, cmp.Or(text, "GET / names no version"))
	}
	return pass("JupyterHub %s at %s", v.Version, d.cfg.HubURL)
}

// checkToken asks the hub whom the token belongs to and which scopes it
// holds. JupyterHub lists them expanded (admin:groups brings read:groups),
// filtered ones as read:groups!group=NAME. A hub that does not list them
// is probed by reading the group.
func checkToken(ctx context.Context, d *doctorEnv) checkResult {
	var me struct {
		Kind, Name string
		Scopes     *[]string
	}
	status, text, err := d.hubGet(ctx, "/user", true, &me)
	switch {
	case err != nil:
		return fail(fixSeeHub, "cannot ask the hub whom the token belongs to: %v", err)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fail("set JUPYTERHUB_API_TOKEN or JUPYTERHUB_API_TOKEN_FILE to the api_token of the hubauthz service (see docs/jupyterhub.md)",
			"the hub refused the token: %s", text)
	case status != http.StatusOK || me.Scopes == nil: // fall back to reading the group
		if r := checkGroup(ctx, d); !r.ok {
			r.msg = "the hub lists no scopes for the token, and " + r.msg
			return r
		}
		return pass("the token reads group %q (the hub lists no scopes, so admin:groups is not verified)", d.cfg.Group)
	}
	var missing []string
	for _, need := range []string{"read:groups", "admin:groups"} {
		if !slices.Contains(*me.Scopes, need) && !slices.Contains(*me.Scopes, need+"!group="+d.cfg.Group) {
			missing = append(missing, need)
		}
	}
	if len(missing) > 0 {
		return fail(fixRole, "the token of %s %q lacks %s for group %q (it has: %s)", me.Kind, me.Name,
			strings.Join(missing, " and "), d.cfg.Group, strings.Join(*me.Scopes, ", "))
	}
	return pass("the token of %s %q has read:groups and admin:groups for group %q", me.Kind, me.Name, d.cfg.Group)
}

// checkGroup makes sure the group exists. It only reads: creating the group
// is left to hubauthz at start-up, or to the admin.
func checkGroup(ctx context.Context, d *doctorEnv) checkResult {
	var g struct{ Users *[]string } // nil without read:groups
	status, text, err := d.hubGet(ctx, "/groups/"+url.PathEscape(d.cfg.Group), true, &g)
	switch {
	case err != nil:
		return fail(fixSeeHub, "cannot read group %q: %v", d.cfg.Group, err)
	case status == http.StatusNotFound:
		return fail("hubauthz creates it at start-up, or create it: POST /groups/"+url.PathEscape(d.cfg.Group),
			"group %q does not exist in the hub (%s)", d.cfg.Group, text)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fail(fixRole, "cannot read group %q: %s", d.cfg.Group, text)
	case status != http.StatusOK:
		return fail("see the hub's log", "cannot read group %q: %s", d.cfg.Group, text)
	case g.Users == nil:
		return fail(fixRole, "the hub lists no members of group %q (read:groups is missing)", d.cfg.Group)
	}
	return pass("group %q exists with %d member(s)", d.cfg.Group, len(*g.Users))
}

// checkDocker pings dockerd where DOCKER_HOST (--docker-host) points, the
// daemon hubauthz inspects; without a valid configuration, where the
// environment's DOCKER_HOST points (default unix:///var/run/docker.sock).
func checkDocker(ctx context.Context, d *doctorEnv) checkResult {
	const fix = "start dockerd (systemctl start docker), or set DOCKER_HOST (--docker-host) to its socket; run doctor as root"
	host := d.getenv("DOCKER_HOST")
	if d.cfg != nil {
		host = d.cfg.DockerHost
	}
	opts := []client.Opt{client.FromEnv}
	if host != "" {
		opts = append(opts, client.WithHost(host))
	}
	cli, err := client.New(opts...)
	if err != nil {
		return fail(fix, "cannot set up a Docker client: %v", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, localTimeout)
	defer cancel()
	ping, err := cli.Ping(ctx, client.PingOptions{})
	if err != nil && strings.Contains(err.Error(), cli.DaemonHost()) {
		return fail(fix, "dockerd does not answer /_ping: %v", err)
	} else if err != nil {
		return fail(fix, "dockerd at %s does not answer /_ping: %v", cli.DaemonHost(), err)
	}
	return pass("dockerd at %s answers, API version %s", cli.DaemonHost(), ping.APIVersion)
}

// checkPlugin calls Plugin.Activate on HUBAUTHZ_SOCKET, as dockerd does
// before it sends the plugin anything else.
func checkPlugin(ctx context.Context, d *doctorEnv) checkResult {
	const fix = "start hubauthz (for example systemctl start hubauthz), or set HUBAUTHZ_SOCKET (--socket) to the socket it serves"
	sock := d.cfg.Socket
	fi, err := os.Stat(sock)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fail(fix+"; for the managed plugin pass --socket /run/docker/plugins/ID/hubauthz.sock (ID: docker plugin inspect -f {{.Id}} hubauthz)",
			"no socket at %s", sock)
	case err != nil:
		return fail(fix+"; run doctor as root", "cannot look at %s: %v", sock, err)
	case fi.Mode()&fs.ModeSocket == 0:
		return fail(fix, "%s is not a socket", sock)
	}
	implements, err := activatePlugin(ctx, sock)
	if err != nil {
		return fail(fix, "%s does not answer Plugin.Activate (left by a stopped hubauthz?): %v", sock, err)
	}
	if !slices.Contains(implements, "authz") {
		return fail(fix, "the plugin on %s implements %v, not authz", sock, implements)
	}
	return pass("hubauthz answers Plugin.Activate on %s, implements authz", sock)
}

// activatePlugin sends POST /Plugin.Activate over the unix socket and
// returns the plugin types the answer lists.
func activatePlugin(ctx context.Context, sock string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, localTimeout)
	defer cancel()
	tr := &http.Transport{Proxy: nil, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://plugin/Plugin.Activate", nil)
	if err != nil {
		return nil, fmt.Errorf("build the request: %w", err)
	}
	req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, transportCause(err)
	}
	defer resp.Body.Close()
	var m struct{ Implements []string }
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("it answered %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&m); err != nil {
		return nil, fmt.Errorf("decode the answer: %w", err)
	}
	return m.Implements, nil
}
