package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hubauthz/hubauthz/authz"
	"github.com/hubauthz/hubauthz/hub"
)

// checkHelp is the help of `hubauthz check`; the settings follow it.
const checkHelp = `usage: hubauthz check [--member | --not-member] [--uri URI] [flags] [FILE | -]

Decides one request as the plugin would, without dockerd, and prints the decision.
FILE (default, or "-": stdin) holds an AuthZPlugin.AuthZReq as dockerd sends it
(RequestMethod, RequestUri, RequestBody in base64), or else a raw create body
for POST /v1.41/containers/create, or for POST URI with --uri URI (such as
/v1.41/services/create for a service spec). A body that is not valid JSON is
judged, not rejected: the plugin would deny it.

  --member, --not-member   dry run: the container's owner counts as a member
                           of the group, or not; the hub settings are ignored
Without either, the hub of the usual settings is asked, and like the plugin,
check creates the group again if the hub no longer has it.

dockerd is never contacted. A named volume is assumed not to exist yet (a note
says so), so an existing volume with a local-driver "device" option is not
seen. A request that needs a stored container (start, restart, VolumesFrom) or
plugin (disable, set, upgrade, remove) is denied: check cannot inspect it.
Symlinks in bind sources are followed under HUBAUTHZ_HOST_ROOT (--host-root).
Other settings apply as for serving, e.g. HUBAUTHZ_PROTECTED_PATHS=/srv/secret.

Output: "allow" or "deny", then reason:, request:, user:, group:, exposures:,
message: (denials) and note: lines.
Exit status: 0 allow, 1 deny, 2 usage, configuration or input error.
`

// errNoDockerd is what check's Inspector answers for containers and plugins.
var errNoDockerd = errors.New("check does not contact dockerd")

// checkOptions are the flags and argument of check that are not settings.
type checkOptions struct {
	member, notMember bool
	uri               string
	uriSet            bool
	file              string   // "" or "-" for stdin
	settingArgs       []string // setting flags given, passed on to loadConfig
}

// checkCommand runs `hubauthz check`: it reads one request, decides it with
// the configured rule and prints the decision. It returns 0 for allow, 1 for
// deny and 2 for a usage, configuration or input error.
func checkCommand(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	opts, err := parseCheckArgs(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, checkHelp+"\n")
		usage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "hubauthz check: %v (see hubauthz check -h)\n", err)
		return 2
	}
	cfg, err := checkConfig(opts, getenv)
	if err != nil {
		fmt.Fprintln(stderr, "hubauthz check: invalid configuration:", err)
		return 2
	}
	req, err := readCheckRequest(opts)
	if err != nil {
		fmt.Fprintln(stderr, "hubauthz check:", err)
		return 2
	}
	notes := &checkNotes{}
	members, err := checkMembership(cfg, opts, notes)
	if err != nil {
		fmt.Fprintln(stderr, "hubauthz check: invalid configuration:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), cfg.HubTimeout+time.Second)
	defer cancel()
	d := authz.New(cfg.authzConfig(), members, &checkInspector{notes: notes}).Decide(ctx, req)
	printCheckDecision(stdout, req, d, notes.list())
	if d.Allow {
		return 0
	}
	return 1
}

// checkMembership returns the assumed answer of a dry run, or else the
// hub of the configuration.
func checkMembership(cfg *config, o checkOptions, notes *checkNotes) (authz.Membership, error) {
	if o.member || o.notMember {
		return &assumedMembership{member: o.member, notes: notes}, nil
	}
	return hub.New(hub.Config{URL: cfg.HubURL, Token: cfg.HubToken, CAFile: cfg.HubCAFile,
		Timeout: cfg.HubTimeout, TTL: cfg.CacheTTL, OnRecreate: func(group string) {
			notes.add("group %q was missing in the hub and has been created again, empty, as the plugin does", group)
		}})
}

// parseCheckArgs parses check's own flags and the setting flags, which may
// come before or after FILE. Setting flags are collected as --name=value
// for loadConfig, so that they are validated exactly as for serving.
func parseCheckArgs(args []string) (checkOptions, error) {
	var o checkOptions
	fs := flag.NewFlagSet("hubauthz check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.BoolVar(&o.member, "member", false, "dry run: the owner is a member")
	fs.BoolVar(&o.notMember, "not-member", false, "dry run: the owner is not a member")
	fs.StringVar(&o.uri, "uri", "/v1.41/containers/create", "URI a raw body is posted to")
	isSetting := map[string]bool{}
	for _, s := range settings {
		if s.flag != "" {
			fs.String(s.flag, s.def, s.help)
			isSetting[s.flag] = true
		}
	}
	var files []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			return o, err
		}
		if fs.NArg() == 0 {
			break
		}
		if n := len(rest) - fs.NArg(); n > 0 && rest[n-1] == "--" {
			files = append(files, fs.Args()...) // after "--" everything is FILE
			break
		}
		files, rest = append(files, fs.Arg(0)), fs.Args()[1:]
	}
	fs.Visit(func(f *flag.Flag) {
		if isSetting[f.Name] {
			o.settingArgs = append(o.settingArgs, "--"+f.Name+"="+f.Value.String())
		}
		o.uriSet = o.uriSet || f.Name == "uri"
	})
	switch {
	case o.member && o.notMember:
		return o, errors.New("--member and --not-member exclude each other")
	case len(files) > 1:
		return o, fmt.Errorf("one FILE at most, not %q", files)
	case len(files) == 1:
		o.file = files[0]
	}
	return o, nil
}

// dryRunPlaceholders stand in for the hub settings in a dry run: the hub is
// never asked, so they only have to pass the usual checks. An empty value
// drops the setting, so that a token file is not read.
var dryRunPlaceholders = map[string]string{"JUPYTERHUB_API_URL": "http://hub.invalid/hub/api",
	"JUPYTERHUB_API_TOKEN": "dry-run", "JUPYTERHUB_API_TOKEN_FILE": ""}

// checkConfig loads the configuration as serving does, from the
// environment and the setting flags, with the hub settings replaced in a
// dry run.
func checkConfig(o checkOptions, getenv func(string) string) (*config, error) {
	dryRun, args := o.member || o.notMember, o.settingArgs
	if dryRun {
		args = nil
		for _, a := range o.settingArgs {
			if !strings.HasPrefix(a, "--hub-url=") && !strings.HasPrefix(a, "--hub-token-file=") {
				args = append(args, a)
			}
		}
		env := getenv
		getenv = func(k string) string {
			if v, ok := dryRunPlaceholders[k]; ok {
				return v
			}
			return env(k)
		}
	}
	cfg, err := loadConfig(args, getenv)
	if err != nil && !dryRun && strings.Contains(err.Error(), "JUPYTERHUB_") {
		err = fmt.Errorf("%w; or pass --member or --not-member for a dry run without the hub", err)
	}
	return cfg, err
}

// readCheckRequest reads the request from FILE, or from stdin for "" and
// "-". Empty input is an error: there is nothing to decide.
func readCheckRequest(o checkOptions) (authz.Request, error) {
	r, name := io.Reader(os.Stdin), "stdin"
	if o.file != "" && o.file != "-" {
		f, err := os.Open(o.file)
		if err != nil {
			return authz.Request{}, err
		}
		defer f.Close()
		r, name = f, o.file
	}
	in, err := io.ReadAll(r)
	if err != nil {
		return authz.Request{}, fmt.Errorf("read %s: %w", name, err)
	}
	if len(bytes.TrimSpace(in)) == 0 {
		return authz.Request{}, fmt.Errorf("%s is empty: give a create body or an AuthZReq", name)
	}
	return parseCheckInput(in, o)
}

// parseCheckInput tells an AuthZReq (a JSON object with a RequestMethod or
// RequestUri key) from a raw body, which is posted to --uri. An AuthZReq
// that cannot be decoded is an error; a raw body is passed on as it is,
// for the rule to judge.
func parseCheckInput(in []byte, o checkOptions) (authz.Request, error) {
	var top map[string]json.RawMessage
	err := json.Unmarshal(in, &top)
	isEnvelope := false
	for k := range top {
		isEnvelope = isEnvelope || strings.EqualFold(k, "RequestMethod") || strings.EqualFold(k, "RequestUri")
	}
	lower := bytes.ToLower(in)
	if err != nil && (bytes.Contains(lower, []byte(`"requestmethod"`)) || bytes.Contains(lower, []byte(`"requesturi"`))) {
		return authz.Request{}, fmt.Errorf("invalid AuthZReq: %v", err)
	}
	if !isEnvelope {
		return authz.Request{Method: http.MethodPost, URI: o.uri, Body: in}, nil
	}
	if o.uriSet {
		return authz.Request{}, errors.New("--uri is for a raw body; an AuthZReq names its own RequestUri")
	}
	var r struct { // what the rule reads of an AuthZReq; keys match case-insensitively
		RequestMethod, RequestURI string
		RequestBody               []byte // base64 in JSON
	}
	if err := json.Unmarshal(in, &r); err != nil {
		return authz.Request{}, fmt.Errorf("invalid AuthZReq: %v", err)
	}
	return authz.Request{Method: r.RequestMethod, URI: r.RequestURI, Body: r.RequestBody}, nil
}

// printCheckDecision writes the decision: "allow" or "deny" on the first
// line, then one "key: value" line per fact.
func printCheckDecision(w io.Writer, req authz.Request, d authz.Decision, notes []string) {
	if d.Allow {
		fmt.Fprintln(w, "allow")
	} else {
		fmt.Fprintln(w, "deny")
	}
	fmt.Fprintln(w, "reason:", d.Reason)
	fmt.Fprintln(w, "request:", req.Method, req.URI)
	if d.User != "" {
		fmt.Fprintln(w, "user:", d.User)
	}
	if len(d.Exposures) > 0 {
		fmt.Fprintln(w, "group:", d.Group)
	}
	for _, e := range d.Exposures {
		fmt.Fprintf(w, "exposures: %s -> %s (via %s)\n", e.Source, e.Protected, e.Via)
	}
	if !d.Allow {
		fmt.Fprintln(w, "message:", d.Msg)
	}
	for _, n := range notes {
		fmt.Fprintln(w, "note:", n)
	}
}

// checkNotes collects the notes printed after the decision, once each. The
// hub may add one from its own goroutine.
type checkNotes struct {
	mu    sync.Mutex
	lines []string
}

func (n *checkNotes) add(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if line := fmt.Sprintf(format, args...); !slices.Contains(n.lines, line) {
		n.lines = append(n.lines, line)
	}
}

func (n *checkNotes) list() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.lines)
}

// assumedMembership answers every lookup with --member or --not-member.
type assumedMembership struct {
	member bool
	notes  *checkNotes
}

// IsMember reports the assumed answer, and notes that it was assumed.
func (m *assumedMembership) IsMember(_ context.Context, group, user string) (bool, error) {
	opt, is := "--not-member", "not a member"
	if m.member {
		opt, is = "--member", "a member"
	}
	m.notes.add("%s: user %q counted as %s of group %q; the hub was not asked", opt, user, is, group)
	return m.member, nil
}

// checkInspector stands in for dockerd. Named volumes are assumed new, so
// that a DockerSpawner home volume does not deny every create; containers
// and plugins cannot be looked up, so requests that need them are denied.
type checkInspector struct {
	notes *checkNotes
}

// Container fails, as does Plugin: check does not contact dockerd.
func (*checkInspector) Container(context.Context, string) (authz.Container, error) {
	return authz.Container{}, errNoDockerd
}

// Volume reports every volume as not found, and notes the assumption.
func (i *checkInspector) Volume(_ context.Context, name string) (authz.Volume, error) {
	i.notes.add("named volume %q assumed new (check does not contact dockerd)", name)
	return authz.Volume{}, fmt.Errorf("volume %q: %w", name, authz.ErrNotFound)
}

// Plugin fails.
func (*checkInspector) Plugin(context.Context, string) (authz.Plugin, error) {
	return authz.Plugin{}, errNoDockerd
}
