package main

// BenchmarkPlugin measures the whole request path of hubauthz in one
// process, for profiles (make bench-profile, or go test -bench Plugin
// -cpuprofile/-mutexprofile): the go-plugins-helpers transport, serve()'s
// plugin with audit records and metrics, membership from a real JupyterHub
// (cache warm) and inspections from a fake dockerd that answers at once.
// The same requests go to an allow-all plugin on the same transport, the
// floor. The e2e benchmarks (e2e/bench_test.go) measure the real thing
// across processes; this one is where the CPU goes.

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/hubauthz/hubauthz/cmd/authzload/load"
	"github.com/hubauthz/hubauthz/hub/hubtest"
)

// benchContainerID is the stored container of the start-cached kind.
const benchContainerID = "3f1e2d4c5b6a79880123456789abcdef0123456789abcdef0123456789abcdef"

// fakeDockerd answers the inspections hubauthz makes, at once: alice's
// DockerSpawner container and the users' plain named volumes.
func fakeDockerd(tb testing.TB, socket string) {
	tb.Helper()
	l, err := net.Listen("unix", socket)
	if err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/_ping", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		fmt.Fprint(w, "OK")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Api-Version", "1.41")
		p := r.URL.Path
		switch {
		case strings.HasSuffix(p, "/containers/"+benchContainerID+"/json"):
			json.NewEncoder(w).Encode(map[string]any{
				"Id": benchContainerID, "Name": "/jupyter-alice",
				"Config": map[string]any{"Image": "jupyter/base-notebook:latest",
					"Labels": map[string]string{load.OwnerLabel: "alice"}, "Env": []string{"JUPYTERHUB_USER=alice"}},
				"HostConfig": map[string]any{"Binds": []string{"jupyterhub-user-alice:/home/jovyan/work:rw"}},
				"Mounts": []map[string]string{{"Type": "volume", "Name": "jupyterhub-user-alice",
					"Source": "/var/lib/docker/volumes/jupyterhub-user-alice/_data", "Destination": "/home/jovyan/work"}},
			})
		case strings.Contains(p, "/volumes/jupyterhub-user-"):
			name := p[strings.LastIndex(p, "/")+1:]
			json.NewEncoder(w).Encode(map[string]any{"Name": name, "Driver": "local", "Options": map[string]string{}})
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprintf(w, `{"message":"no such object: %s"}`, p)
		}
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	tb.Cleanup(func() { srv.Close() })
}

type benchNull struct{}

func (benchNull) AuthZReq(authorization.Request) authorization.Response {
	return authorization.Response{Allow: true}
}
func (benchNull) AuthZRes(authorization.Request) authorization.Response {
	return authorization.Response{Allow: true}
}

func BenchmarkPlugin(b *testing.B) {
	jh := hubtest.Start(b, hubtest.Options{})
	dir, err := os.MkdirTemp("", "hzb")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	dockerSock := filepath.Join(dir, "docker.sock")
	fakeDockerd(b, dockerSock)
	env := map[string]string{
		"HUBAUTHZ_SOCKET":      filepath.Join(dir, "hubauthz.sock"),
		"JUPYTERHUB_API_URL":   jh.APIURL,
		"JUPYTERHUB_API_TOKEN": jh.Token,
		"DOCKER_HOST":          "unix://" + dockerSock,
	}
	cfg, err := loadConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		b.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "hubauthz.log"))
	if err != nil {
		b.Fatal(err)
	}
	defer logf.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, logf, make(chan struct{})) }()
	defer func() { cancel(); <-done }()

	nullSock := filepath.Join(dir, "null.sock")
	nl, err := net.Listen("unix", nullSock)
	if err != nil {
		b.Fatal(err)
	}
	go authorization.NewHandler(benchNull{}).Serve(nl)
	defer nl.Close()
	for i := 0; ; i++ {
		if c, err := net.Dial("unix", cfg.Socket); err == nil {
			c.Close()
			break
		}
		if i > 250 {
			b.Fatal("hubauthz did not serve")
		}
		time.Sleep(20 * time.Millisecond)
	}

	kinds, err := load.StandardKinds("../../authz/testdata", benchContainerID)
	if err != nil {
		b.Fatal(err)
	}
	diag, err := load.DiagnosticKinds(kinds)
	if err != nil {
		b.Fatal(err)
	}
	kinds = append(kinds, diag...)
	for _, target := range []struct{ name, socket string }{{"hubauthz", cfg.Socket}, {"null", nullSock}} {
		for i := range kinds {
			k := &kinds[i]
			c := load.NewClient(target.socket, 16)
			// Warm the membership and inspection caches, and check the decision.
			r, err := c.Send(context.Background(), k)
			if err != nil {
				b.Fatal(err)
			}
			if want := target.name == "null" || k.Name != load.CreateSocketNonMember; r.Allow != want {
				b.Fatalf("%s on %s: allow %v (%s), want %v", k.Name, target.name, r.Allow, r.Msg, want)
			}
			b.Run(target.name+"/"+k.Name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.Send(context.Background(), k); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(target.name+"/"+k.Name+"/parallel", func(b *testing.B) {
				b.ReportAllocs()
				b.SetParallelism(4)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, err := c.Send(context.Background(), k); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
			c.Close()
		}
	}
}
