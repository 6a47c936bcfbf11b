package dockertest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// pluginSeq makes plugin names unique within the test binary; the pid makes
// them unique across test binaries running at the same time.
var pluginSeq atomic.Int32

// denyPlugin is a legacy authz plugin that denies every request whose raw
// URI contains "/containers/create" with the message "test deny", and
// records every URI it is asked about.
type denyPlugin struct {
	name string
	mu   sync.Mutex
	uris []string
}

// startDenyPlugin serves a denyPlugin on /run/docker/plugins/NAME.sock until
// the test ends.
func startDenyPlugin(t *testing.T) *denyPlugin {
	t.Helper()
	p := &denyPlugin{name: fmt.Sprintf("dtdeny%d-%d", os.Getpid(), pluginSeq.Add(1))}
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(pluginDir, p.name+".sock"))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/Plugin.Activate", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]any{"Implements": []string{"authz"}})
	})
	mux.HandleFunc("/AuthZPlugin.AuthZReq", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			RequestMethod string
			RequestURI    string `json:"RequestUri"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.RequestURI == "" {
			reply(w, map[string]any{"Allow": false, "Msg": "unreadable request"})
			return
		}
		p.mu.Lock()
		p.uris = append(p.uris, req.RequestMethod+" "+req.RequestURI)
		p.mu.Unlock()
		if strings.Contains(req.RequestURI, "/containers/create") {
			reply(w, map[string]any{"Allow": false, "Msg": "test deny"})
			return
		}
		reply(w, map[string]any{"Allow": true})
	})
	mux.HandleFunc("/AuthZPlugin.AuthZRes", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]any{"Allow": true})
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	// Registered before Start's cleanup, so it runs after dockerd stopped.
	t.Cleanup(func() { srv.Close() })
	return p
}

// saw reports whether the plugin was asked about method and raw URI.
func (p *denyPlugin) saw(method, uri string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range p.uris {
		if u == method+" "+uri {
			return true
		}
	}
	return false
}

// seen returns the requests the plugin was asked about.
func (p *denyPlugin) seen() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.uris...)
}

// reply writes v as a plugin response.
func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1.2+json")
	json.NewEncoder(w).Encode(v)
}
