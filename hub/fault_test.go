package hub

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const secret = "s3cr3t-token-value"

func newTestHub(t *testing.T, url string, timeout time.Duration) *Hub {
	t.Helper()
	h, err := New(Config{URL: url, Token: secret, Timeout: timeout, TTL: time.Minute, ErrorBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// groupServer answers GET /groups/docker-privileged like JupyterHub, after
// an optional delay, and counts requests.
func groupServer(t *testing.T, delay time.Duration, status int, body string) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if got := r.Header.Get("Authorization"); got != "token "+secret {
			t.Errorf("Authorization header %q", got)
		}
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func TestHubFaultsDenyQuickly(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	tests := []struct {
		name   string
		delay  time.Duration
		status int
		body   string
		url    string
		errHas string
	}{
		{name: "timeout", delay: 5 * time.Second, status: 200, body: `{"users":["alice"]}`, errHas: "did not answer in time"},
		{name: "5xx", status: 503, body: `{"status":503,"message":"down for maintenance"}`, errHas: "503"},
		{name: "5xx without JSON", status: 502, body: `<html>bad gateway</html>`, errHas: "502"},
		{name: "invalid JSON", status: 200, body: `{"users":[`, errHas: "invalid JSON"},
		{name: "users missing", status: 200, body: `{"kind":"group","name":"docker-privileged"}`, errHas: "read:groups"},
		{name: "forbidden", status: 403, body: `{"status":403,"message":"Action is not authorized with current scopes; requires any of [read:groups]"}`, errHas: "403"},
		{name: "closed port", url: closedURL, errHas: "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			url := tt.url
			if url == "" {
				srv, _ := groupServer(t, tt.delay, tt.status, tt.body)
				url = srv.URL
			}
			h := newTestHub(t, url, 300*time.Millisecond)
			start := time.Now()
			ok, err := h.IsMember(context.Background(), "docker-privileged", "alice")
			elapsed := time.Since(start)
			if ok || err == nil {
				t.Fatalf("IsMember = %v, %v; want a failure", ok, err)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("error %q does not say %q", err, tt.errHas)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error %q leaks the token", err)
			}
			// dockerd waits far longer than this for a plugin; the bound only
			// shows that the hub timeout, not the hub, decides how long we wait.
			if elapsed > 3*time.Second {
				t.Errorf("failure took %v with a 300ms hub timeout", elapsed)
			}
		})
	}
}

func TestConcurrentLookupsMakeOneHubRequest(t *testing.T) {
	srv, n := groupServer(t, 100*time.Millisecond, 200, `{"users":["alice"]}`)
	h := newTestHub(t, srv.URL, 2*time.Second)
	var wg sync.WaitGroup
	var wrong atomic.Int64
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := h.IsMember(context.Background(), "docker-privileged", "alice")
			if !ok || err != nil {
				wrong.Add(1)
			}
		}()
	}
	wg.Wait()
	if got := n.Load(); got != 1 {
		t.Fatalf("200 concurrent lookups made %d hub requests; want 1", got)
	}
	if wrong.Load() != 0 {
		t.Fatalf("%d lookups got a wrong answer", wrong.Load())
	}
}

func TestErrorsAreNotCachedBeyondBackoff(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		if fail.Load() {
			w.WriteHeader(500)
			return
		}
		_, _ = w.Write([]byte(`{"users":["alice"]}`))
	}))
	defer srv.Close()
	h := newTestHub(t, srv.URL, time.Second)
	ctx := context.Background()
	if _, err := h.IsMember(ctx, "docker-privileged", "alice"); err == nil {
		t.Fatal("500 was not an error")
	}
	if _, err := h.IsMember(ctx, "docker-privileged", "alice"); err == nil || n.Load() != 1 {
		t.Fatalf("within the back-off: err %v after %d requests; want the remembered error and 1 request", err, n.Load())
	}
	fail.Store(false)
	time.Sleep(120 * time.Millisecond) // the back-off is 50ms
	ok, err := h.IsMember(ctx, "docker-privileged", "alice")
	if !ok || err != nil {
		t.Fatalf("after the back-off: %v, %v; want a fresh answer", ok, err)
	}
}

func TestCallerDeadlineBoundsTheWait(t *testing.T) {
	srv, _ := groupServer(t, 3*time.Second, 200, `{"users":["alice"]}`)
	h := newTestHub(t, srv.URL, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := h.IsMember(ctx, "docker-privileged", "alice"); err == nil {
		t.Fatal("a lookup outlived its caller's deadline without an error")
	}
}

func TestNewRejectsBadURLs(t *testing.T) {
	for _, u := range []string{"", "127.0.0.1:8081", "ftp://hub/api", "http://user:pw@hub/api"} {
		if _, err := New(Config{URL: u, Token: secret, Timeout: time.Second, TTL: time.Second}); err == nil {
			t.Errorf("New accepted URL %q", u)
		} else if strings.Contains(err.Error(), "pw") {
			t.Errorf("error %q leaks URL credentials", err)
		}
	}
}

// TestFlushDuringALookupIsNotUndone: an answer fetched before a SIGHUP flush
// must not be cached afterwards, or a revoked user keeps access for a TTL.
func TestFlushDuringALookupIsNotUndone(t *testing.T) {
	srv, n := groupServer(t, 300*time.Millisecond, 200, `{"users":["alice"]}`)
	h := newTestHub(t, srv.URL, 2*time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = h.IsMember(context.Background(), "docker-privileged", "alice")
	}()
	time.Sleep(100 * time.Millisecond) // the request is in flight
	h.Flush()
	<-done
	if _, err := h.IsMember(context.Background(), "docker-privileged", "alice"); err != nil {
		t.Fatal(err)
	}
	if got := n.Load(); got != 2 {
		t.Fatalf("%d hub requests; want 2: the answer from before the flush must not be cached", got)
	}
}
