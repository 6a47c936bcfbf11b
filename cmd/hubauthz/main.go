// Command hubauthz is a Docker Engine authorization plugin that keeps the
// Docker socket out of the containers of JupyterHub users who are not in the
// privileged hub group.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/hubauthz/hubauthz/authz"
	"github.com/hubauthz/hubauthz/docker"
	"github.com/hubauthz/hubauthz/hub"
	"github.com/sirupsen/logrus"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// command is one subcommand: it returns the exit code.
type command func(args []string, getenv func(string) string, stdout, stderr io.Writer) int

// commands are the subcommands; "serve" is the default.
var commands = map[string]command{
	"serve":  serveCommand,
	"doctor": doctor,
	"check":  checkCommand,
	"version": func(_ []string, _ func(string) string, stdout, _ io.Writer) int {
		fmt.Fprintln(stdout, "hubauthz", version)
		return 0
	},
}

// run is main without the process: it returns the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	name := "serve"
	if len(args) > 0 {
		if _, ok := commands[args[0]]; ok {
			name, args = args[0], args[1:]
		}
	}
	return commands[name](args, getenv, stdout, stderr)
}

// serveCommand runs the plugin until SIGTERM or SIGINT.
// defaultGCPercent is hubauthz's GOGC when the environment sets none. The
// live heap is about 1 MiB, so with Go's default of 100 the collector runs
// at the runtime's 4 MiB minimum goal, every few hundred requests; 200
// halves the collections for a few MiB more resident memory
// (docs/performance.md).
const defaultGCPercent = 200

// tuneGC applies defaultGCPercent unless GOGC is set.
func tuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
}

func serveCommand(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := loadConfig(args, getenv)
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout)
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "hubauthz: invalid configuration:", err)
		return 2
	}
	tuneGC(getenv)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	err = serve(ctx, cfg, stderr, hup)
	var ce configError
	switch {
	case errors.As(err, &ce):
		fmt.Fprintln(stderr, "hubauthz: invalid configuration:", ce.err)
		return 2
	case err != nil:
		fmt.Fprintln(stderr, "hubauthz:", err)
		return 1
	}
	return 0
}

// configError is a setting found wrong while wiring the parts (a hub URL,
// a CA file, DOCKER_HOST, a journal that must be there).
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }

// usage prints the subcommands and every setting with its flag.
func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: hubauthz [serve] [flags] | hubauthz doctor [flags] | hubauthz version")
	fmt.Fprintln(w, "       hubauthz check [--member | --not-member] [--uri URI] [flags] [FILE | -]   (decide one request without dockerd; see hubauthz check -h)")
	fmt.Fprintln(w, "\nSettings (environment variable, flag, default):")
	for _, s := range settings {
		flagName := "(no flag)"
		if s.flag != "" {
			flagName = "--" + s.flag
		}
		fmt.Fprintf(w, "  %-26s %-18s %q\n      %s\n", s.env, flagName, s.def, s.help)
	}
}

// serve runs the plugin until ctx ends. Each value on flush empties the
// membership cache (SIGHUP), so that a revoked user is refused at once.
func serve[T any](ctx context.Context, cfg *config, logw io.Writer, flush <-chan T) error {
	log := newLogger(logw, cfg.LogLevel)
	p, h, closeAll, err := newPlugin(cfg, log)
	if err != nil {
		return configError{err}
	}
	defer closeAll()
	var metricsDone <-chan error
	if cfg.MetricsAddr != "" {
		addr, done, err := p.metrics.serve(ctx, cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		metricsDone = done
		log.WithField("addr", addr.String()).Info("serving /metrics and /healthz")
	}
	l, err := listen(cfg.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Socket)
	done := make(chan error, 1)
	go func() { done <- authorization.NewHandler(p).Serve(l) }()
	log.WithFields(logrus.Fields{"socket": cfg.Socket, "group": cfg.Group, "version": version}).Info("hubauthz serving")
	go ensureGroup(h, cfg, log)
	for {
		select {
		case err := <-done:
			return fmt.Errorf("serve %s: %w", cfg.Socket, err)
		case err := <-metricsDone:
			return fmt.Errorf("metrics listener: %w", err)
		case <-flush:
			h.Flush()
			log.Info("membership cache flushed")
		case <-ctx.Done():
			log.Info("hubauthz stopping")
			l.Close()
			p.audit.flush()
			return nil
		}
	}
}

// newPlugin wires the rule to its hub, its Docker inspector, its audit and
// its metrics. closeAll releases what it opened.
func newPlugin(cfg *config, log *logrus.Logger) (p *plugin, h *hub.Hub, closeAll func(), err error) {
	audit, err := newAuditor(log, cfg.Journal)
	if err != nil {
		return nil, nil, nil, err
	}
	m := newMetrics()
	h, err = hub.New(hub.Config{
		URL: cfg.HubURL, Token: cfg.HubToken, CAFile: cfg.HubCAFile,
		Timeout: cfg.HubTimeout, TTL: cfg.CacheTTL, Observer: m,
		OnRecreate: func(group string) { audit.groupRecreated(group); m.recreations.Inc() },
	})
	if err != nil {
		return nil, nil, nil, err
	}
	inspector, err := docker.New(cfg.DockerHost, cfg.DockerTimeout, 4096, cfg.CacheTTL)
	if err != nil {
		return nil, nil, nil, err
	}
	inspector.Observe = m.inspection
	p = &plugin{az: authz.New(cfg.authzConfig(), h, inspector), audit: audit, metrics: m}
	return p, h, func() { _ = inspector.Close() }, nil
}

// ensureGroup makes sure the group exists at start-up. A hub that is down
// is logged; the next lookup tries again.
func ensureGroup(h *hub.Hub, cfg *config, log *logrus.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), cfg.HubTimeout)
	defer cancel()
	if err := h.EnsureGroup(ctx, cfg.Group); err != nil {
		log.WithError(err).Warn("could not check the group at start-up; will retry on the next lookup")
		return
	}
	log.WithField("group", cfg.Group).Info("group present in JupyterHub")
}

// listen opens the plugin's unix socket, replacing a stale one left by a
// previous run. It refuses to replace anything that is not a socket.
func listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("%s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s is in use by another process", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o660); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
