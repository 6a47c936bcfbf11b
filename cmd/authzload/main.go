// Command authzload measures Docker authorization plugins over their unix
// socket, the way dockerd talks to them.
//
//	authzload null -socket PATH [-read-body]
//	    serves an allow-all plugin on PATH with the same transport as
//	    hubauthz (github.com/docker/go-plugins-helpers/authorization): the
//	    floor that any plugin's latency is compared with. With -read-body
//	    it also decodes each request body as hubauthz does
//	    (authz.ReadBody) before allowing it: the floor of any plugin that
//	    reads bodies with encoding/json into moby's types.
//
//	authzload run -socket hubauthz=PATH -socket null=PATH [flags]
//	    posts AuthZPlugin.AuthZReq to each socket on kept-alive connections,
//	    for each request kind at each client count, the targets taking
//	    turns in interleaved rounds, and prints a markdown table of p50, p99,
//	    throughput and the ratios to the baseline target.
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/hubauthz/hubauthz/authz"
	"github.com/hubauthz/hubauthz/cmd/authzload/load"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: authzload null -socket PATH [-read-body] | authzload run -socket [NAME=]PATH ... [flags]")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	var err error
	switch args[0] {
	case "null":
		err = serveNull(ctx, args[1:])
	case "run":
		err = runLoad(ctx, args[1:], stdout)
	default:
		err = fmt.Errorf("unknown mode %q (null or run)", args[0])
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintln(stderr, "authzload:", err)
		return 1
	}
	return 0
}

// nullPlugin allows everything and does nothing else.
type nullPlugin struct{}

func (nullPlugin) AuthZReq(authorization.Request) authorization.Response {
	return authorization.Response{Allow: true}
}

func (nullPlugin) AuthZRes(authorization.Request) authorization.Response {
	return authorization.Response{Allow: true}
}

// readerPlugin allows everything after reading the body as hubauthz reads
// it.
type readerPlugin struct{ nullPlugin }

func (readerPlugin) AuthZReq(r authorization.Request) authorization.Response {
	_ = authz.ReadBody(r.RequestMethod, r.RequestURI, r.RequestBody)
	return authorization.Response{Allow: true}
}

// serveNull serves the null plugin until ctx ends.
func serveNull(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("authzload null", flag.ContinueOnError)
	socket := fs.String("socket", "/run/docker/plugins/authzload-null.sock", "unix socket to serve on")
	readBody := fs.Bool("read-body", false, "decode each request body as hubauthz does before allowing it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*socket), 0o755); err != nil {
		return err
	}
	_ = os.Remove(*socket)
	l, err := net.Listen("unix", *socket)
	if err != nil {
		return err
	}
	defer os.Remove(*socket)
	done := make(chan error, 1)
	var p authorization.Plugin = nullPlugin{}
	if *readBody {
		p = readerPlugin{}
	}
	go func() { done <- authorization.NewHandler(p).Serve(l) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		l.Close()
		return nil
	}
}

// listFlag collects a repeated flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runLoad(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("authzload run", flag.ContinueOnError)
	var sockets listFlag
	fs.Var(&sockets, "socket", "[NAME=]PATH of a plugin socket; repeat for each target (NAME defaults to the file name without .sock)")
	var pids listFlag
	fs.Var(&pids, "pid", "NAME=PID of a target's process, to report its CPU time per request; repeat for each")
	baseline := fs.String("baseline", "", "target the others are compared to (default: the last -socket)")
	testdata := fs.String("testdata", "authz/testdata", "directory with the DockerSpawner create bodies")
	startID := fs.String("start-id", "", "full ID of a stored container, for the start-cached kind (omitted when empty)")
	kindList := fs.String("kinds", "", "comma-separated kinds to run (default: all)")
	diagnostic := fs.Bool("diagnostic", false, "also run the creates without their named volumes (kinds *-novol), which need no Docker API inspection")
	clientList := fs.String("clients", "1,8", "comma-separated client counts")
	phase := fs.Duration("phase", 300*time.Millisecond, "one target's turn in a round")
	rounds := fs.Int("rounds", 0, "rounds per kind and client count (default: the smallest multiple of 2×targets from 16 up)")
	warmup := fs.Duration("warmup", 300*time.Millisecond, "warm-up per target, kind and client count")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(sockets) == 0 {
		return errors.New("no -socket given")
	}
	o := load.Options{Phase: *phase, Rounds: *rounds, Warmup: *warmup}
	for _, s := range sockets {
		name, path, ok := strings.Cut(s, "=")
		if !ok {
			path, name = s, strings.TrimSuffix(filepath.Base(s), ".sock")
		}
		o.Targets = append(o.Targets, load.Target{Name: name, Socket: path})
	}
	for _, p := range pids {
		name, v, _ := strings.Cut(p, "=")
		pid, err := strconv.Atoi(v)
		if err != nil {
			return fmt.Errorf("-pid %q: want NAME=PID", p)
		}
		for i := range o.Targets {
			if o.Targets[i].Name == name {
				o.Targets[i].PID = pid
			}
		}
	}
	o.Baseline = *baseline
	if o.Baseline == "" {
		o.Baseline = o.Targets[len(o.Targets)-1].Name
	}
	for _, c := range strings.Split(*clientList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			return fmt.Errorf("-clients: %q is not a positive number", c)
		}
		o.Clients = append(o.Clients, n)
	}
	kinds, err := load.StandardKinds(*testdata, *startID)
	if err != nil {
		return err
	}
	if *diagnostic {
		extra, err := load.DiagnosticKinds(kinds)
		if err != nil {
			return err
		}
		kinds = append(kinds, extra...)
	}
	for _, k := range kinds {
		if *kindList == "" || strings.Contains(","+*kindList+",", ","+k.Name+",") {
			o.Kinds = append(o.Kinds, k)
		}
	}
	if o.Rounds <= 0 {
		cycle := 2 * len(o.Targets)
		o.Rounds = (16 + cycle - 1) / cycle * cycle
	}
	began := time.Now()
	samples, err := load.Run(ctx, o)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "AuthZPlugin.AuthZReq over unix sockets, keep-alive; %d rounds of %v per target and cell, in rotating order; %v in all.\n\n",
		o.Rounds, o.Phase, time.Since(began).Round(time.Second))
	load.Report(stdout, samples, o.Baseline)
	for _, s := range samples {
		fmt.Fprintf(stdout, "%s x%d on %s: %d requests, %d allowed\n", s.Kind, s.Clients, s.Target, s.Requests, s.Allowed)
	}
	return nil
}
