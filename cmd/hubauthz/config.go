package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hubauthz/hubauthz/authz"
	"github.com/sirupsen/logrus"
)

// setting is one configuration knob: an environment variable (what
// `docker plugin set` sets) and the flag that overrides it.
type setting struct {
	env, flag, def, help string
}

// settings is the single list of knobs. docs/configuration.md and
// config.json are checked against it by tests.
var settings = []setting{
	{"HUBAUTHZ_SOCKET", "socket", "/run/docker/plugins/hubauthz.sock", "unix socket the plugin serves on"},
	{"HUBAUTHZ_PROTECTED_PATHS", "protected-paths", "/var/run/docker.sock,/run/containerd/containerd.sock", "comma-separated host paths that only group members may mount (the plugin socket directory /run/docker/plugins is always added)"},
	{"HUBAUTHZ_OWNER_LABEL", "owner-label", "hub.jupyter.org/username", "comma-separated container label keys naming the owning hub user, in order of precedence"},
	{"HUBAUTHZ_UNOWNED", "unowned", "allow", "allow or deny exposure for containers with no hub owner"},
	{"HUBAUTHZ_VOLUME_DRIVERS", "volume-drivers", "local", "comma-separated volume drivers trusted never to reach host files, by exact name; a volume of any other driver counts as exposing every protected path (the local driver's options are still judged)"},
	{"HUBAUTHZ_GROUP", "group", "docker-privileged", "JupyterHub group whose members may mount protected paths"},
	{"JUPYTERHUB_API_URL", "hub-url", "", "JupyterHub API URL, e.g. http://127.0.0.1:8081/hub/api (required)"},
	{"JUPYTERHUB_API_TOKEN", "", "", "JupyterHub API token (no flag: command lines are world-readable)"},
	{"JUPYTERHUB_API_TOKEN_FILE", "hub-token-file", "", "file holding the JupyterHub API token"},
	{"HUBAUTHZ_HUB_TIMEOUT", "hub-timeout", "2s", "bound on one hub lookup"},
	{"HUBAUTHZ_HUB_CA_FILE", "hub-ca-file", "", "extra PEM CA certificates for an https hub"},
	{"HUBAUTHZ_CACHE_TTL", "cache-ttl", "30s", "how long group members are cached"},
	{"DOCKER_HOST", "docker-host", "unix:///var/run/docker.sock", "Docker API for the plugin's read-only inspections"},
	{"HUBAUTHZ_DOCKER_TIMEOUT", "docker-timeout", "2s", "bound on one Docker API inspection"},
	{"HUBAUTHZ_HOST_ROOT", "host-root", "/", "where the host's root is visible, to resolve symlinks in bind sources (/host in the managed plugin)"},
	{"HUBAUTHZ_ALLOW_SELF_MANAGEMENT", "allow-self-management", "false", "allow disabling, reconfiguring, upgrading or removing the hubauthz plugin through the API"},
	{"HUBAUTHZ_METRICS_ADDR", "metrics-addr", "", "address for Prometheus /metrics and /healthz, e.g. 127.0.0.1:9323; empty means off"},
	{"HUBAUTHZ_LOG_LEVEL", "log-level", "info", "debug, info, warn or error"},
	{"HUBAUTHZ_JOURNAL", "journal", "auto", "also write audit records natively to journald: auto (when its socket is there), on or off"},
}

// config is the validated configuration.
type config struct {
	Socket      string
	Protected   authz.ProtectedPaths
	OwnerLabels []string
	DenyUnowned bool
	Group       string
	HubURL      string
	HubToken    string
	HubTimeout  time.Duration
	HubCAFile   string
	CacheTTL    time.Duration
	LogLevel    logrus.Level
	Journal     journalMode

	DockerHost          string
	DockerTimeout       time.Duration
	HostRoot            string
	AllowSelfManagement bool
	VolumeDrivers       []string // trusted volume drivers
	MetricsAddr         string
}

// loadConfig reads the settings from the environment, lets flags in args
// override them, and validates the result.
func loadConfig(args []string, getenv func(string) string) (*config, error) {
	fs := flag.NewFlagSet("hubauthz", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported in one line by the caller
	raw := make(map[string]*string, len(settings))
	for _, s := range settings {
		v := s.def
		if e := getenv(s.env); e != "" {
			v = e
		}
		if s.flag == "" {
			raw[s.env] = &v
			continue
		}
		raw[s.env] = fs.String(s.flag, v, s.help+" ($"+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	get := func(env string) string { return strings.TrimSpace(*raw[env]) }
	return validate(get)
}

func validate(get func(string) string) (*config, error) {
	c := &config{Socket: get("HUBAUTHZ_SOCKET"), Group: get("HUBAUTHZ_GROUP"), HubURL: get("JUPYTERHUB_API_URL"), HubCAFile: get("HUBAUTHZ_HUB_CA_FILE")}
	var err error
	if c.Protected, err = authz.NewProtectedPaths(strings.Split(get("HUBAUTHZ_PROTECTED_PATHS"), ",")); err != nil {
		return nil, fmt.Errorf("HUBAUTHZ_PROTECTED_PATHS: %w", err)
	}
	// Whoever can write where dockerd finds authorization plugins can put a
	// socket of their own in hubauthz's place.
	if c.Protected, err = c.Protected.With(pluginSocketDir, filepath.Dir(c.Socket)); err != nil {
		return nil, fmt.Errorf("HUBAUTHZ_SOCKET: %w", err)
	}
	c.OwnerLabels = splitList(get("HUBAUTHZ_OWNER_LABEL"))
	if c.VolumeDrivers, err = volumeDrivers(get("HUBAUTHZ_VOLUME_DRIVERS")); err != nil {
		return nil, err
	}
	switch get("HUBAUTHZ_UNOWNED") {
	case "allow":
	case "deny":
		c.DenyUnowned = true
	default:
		return nil, fmt.Errorf("HUBAUTHZ_UNOWNED must be allow or deny, not %q", get("HUBAUTHZ_UNOWNED"))
	}
	if c.Group == "" {
		return nil, errors.New("HUBAUTHZ_GROUP must not be empty")
	}
	if c.Socket == "" {
		return nil, errors.New("HUBAUTHZ_SOCKET must not be empty")
	}
	if c.HubURL == "" {
		return nil, errors.New("JUPYTERHUB_API_URL is required (for example http://127.0.0.1:8081/hub/api)")
	}
	if c.HubToken, err = loadToken(get("JUPYTERHUB_API_TOKEN"), get("JUPYTERHUB_API_TOKEN_FILE")); err != nil {
		return nil, err
	}
	if c.HubTimeout, err = positiveDuration("HUBAUTHZ_HUB_TIMEOUT", get("HUBAUTHZ_HUB_TIMEOUT")); err != nil {
		return nil, err
	}
	if c.CacheTTL, err = positiveDuration("HUBAUTHZ_CACHE_TTL", get("HUBAUTHZ_CACHE_TTL")); err != nil {
		return nil, err
	}
	if c.LogLevel, err = logrus.ParseLevel(get("HUBAUTHZ_LOG_LEVEL")); err != nil {
		return nil, fmt.Errorf("HUBAUTHZ_LOG_LEVEL must be debug, info, warn or error, not %q", get("HUBAUTHZ_LOG_LEVEL"))
	}
	if err := c.validateDocker(get); err != nil {
		return nil, err
	}
	switch m := journalMode(get("HUBAUTHZ_JOURNAL")); m {
	case journalAuto, journalOn, journalOff:
		c.Journal = m
	default:
		return nil, fmt.Errorf("HUBAUTHZ_JOURNAL must be auto, on or off, not %q", m)
	}
	return c, nil
}

// validateDocker reads the settings of the Docker side: inspections and
// symlink resolution.
func (c *config) validateDocker(get func(string) string) error {
	var err error
	c.DockerHost, c.HostRoot, c.MetricsAddr = get("DOCKER_HOST"), get("HUBAUTHZ_HOST_ROOT"), get("HUBAUTHZ_METRICS_ADDR")
	if c.DockerTimeout, err = positiveDuration("HUBAUTHZ_DOCKER_TIMEOUT", get("HUBAUTHZ_DOCKER_TIMEOUT")); err != nil {
		return err
	}
	if !filepath.IsAbs(c.HostRoot) {
		return fmt.Errorf("HUBAUTHZ_HOST_ROOT must be an absolute directory, not %q", c.HostRoot)
	}
	if c.AllowSelfManagement, err = strconv.ParseBool(get("HUBAUTHZ_ALLOW_SELF_MANAGEMENT")); err != nil {
		return fmt.Errorf("HUBAUTHZ_ALLOW_SELF_MANAGEMENT must be true or false, not %q", get("HUBAUTHZ_ALLOW_SELF_MANAGEMENT"))
	}
	return nil
}

func loadToken(token, file string) (string, error) {
	switch {
	case token != "" && file != "":
		return "", errors.New("set only one of JUPYTERHUB_API_TOKEN and JUPYTERHUB_API_TOKEN_FILE")
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("JUPYTERHUB_API_TOKEN_FILE: %w", err)
		}
		if token = strings.TrimSpace(string(b)); token == "" {
			return "", fmt.Errorf("JUPYTERHUB_API_TOKEN_FILE: %s is empty", file)
		}
	case token == "":
		return "", errors.New("JUPYTERHUB_API_TOKEN or JUPYTERHUB_API_TOKEN_FILE is required")
	}
	return token, nil
}

func positiveDuration(name, v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%s must be a positive duration such as 2s, not %q", name, v)
	}
	return d, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// volumeDrivers reads HUBAUTHZ_VOLUME_DRIVERS. Names match exactly, so an
// empty name is a mistake to report, not an entry to skip, and an empty
// list is refused rather than guessed at: it could mean the default or
// trusting no driver at all.
func volumeDrivers(v string) ([]string, error) {
	if v == "" {
		return nil, errors.New("HUBAUTHZ_VOLUME_DRIVERS must name at least one volume driver (the default is local)")
	}
	var out []string
	for _, d := range strings.Split(v, ",") {
		if d = strings.TrimSpace(d); d == "" {
			return nil, fmt.Errorf("HUBAUTHZ_VOLUME_DRIVERS has an empty driver name in %q", v)
		}
		out = append(out, d)
	}
	return out, nil
}

// pluginSocketDir is where dockerd looks for plugin sockets, legacy and
// managed (/run/docker/plugins/<id>/).
const pluginSocketDir = "/run/docker/plugins"

func (c *config) authzConfig() authz.Config {
	root := authz.NewHostRoot(c.HostRoot)
	return authz.Config{Protected: c.Protected.Resolved(root), OwnerLabels: c.OwnerLabels, Group: c.Group, DenyUnowned: c.DenyUnowned,
		AllowSelfManagement: c.AllowSelfManagement, Resolver: root, VolumeDrivers: c.VolumeDrivers,
		// One decision may inspect, then ask the hub; neither may block dockerd long.
		Timeout: c.HubTimeout + 2*c.DockerTimeout + time.Second}
}
