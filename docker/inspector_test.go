package docker

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hubauthz/hubauthz/authz"
)

// fakeDockerd answers the volume inspections of the Inspector on a unix
// socket and counts them. The real dockerd is exercised by the e2e suite;
// this only pins the cache's behaviour.
func fakeDockerd(t *testing.T) (host string, lookups *atomic.Int64) {
	t.Helper()
	lookups = &atomic.Int64{}
	return serveDockerd(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			_, _ = w.Write([]byte("OK"))
		case strings.HasSuffix(r.URL.Path, "/volumes/plain"):
			lookups.Add(1)
			_, _ = w.Write([]byte(`{"Name":"plain","Driver":"local","Options":{}}`))
		case strings.HasSuffix(r.URL.Path, "/containers/xdrv/json"):
			lookups.Add(1)
			_, _ = w.Write([]byte(`{"Id":"` + strings.Repeat("ab", 32) + `","Name":"/xdrv","Config":{"Image":"bb"},` +
				`"HostConfig":{"VolumeDriver":"hostpath","Mounts":[{"Type":"volume","Target":"/m","VolumeOptions":{"DriverConfig":{"Name":"otherdrv","Options":{"k":"v"}}}}]},` +
				`"Mounts":[{"Type":"volume","Name":"v1","Driver":"hostpath","Destination":"/d"}]}`))
		case strings.HasSuffix(r.URL.Path, "/volumes/gone"):
			lookups.Add(1)
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"get gone: no such volume"}`))
		default:
			lookups.Add(1)
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"message":"boom"}`))
		}
	}), lookups
}

// serveDockerd serves h as a Docker API on a unix socket for the test and
// returns its DOCKER_HOST.
func serveDockerd(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "d.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return "unix://" + sock
}

func TestVolumeCacheAnswersRepeatsAndForgets(t *testing.T) {
	host, lookups := fakeDockerd(t)
	i, err := New(host, 2*time.Second, 16, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer i.Close()
	ctx := context.Background()
	for n := 0; n < 3; n++ {
		if v, err := i.Volume(ctx, "plain"); err != nil || v.Driver != "local" {
			t.Fatalf("Volume(plain) = %+v, %v", v, err)
		}
		if _, err := i.Volume(ctx, "gone"); !errors.Is(err, authz.ErrNotFound) {
			t.Fatalf("Volume(gone) = %v; want ErrNotFound", err)
		}
	}
	if got := lookups.Load(); got != 2 {
		t.Fatalf("%d lookups for 3 rounds of 2 volumes; want 2 (cached)", got)
	}
	i.Forget()
	_, _ = i.Volume(ctx, "plain")
	if got := lookups.Load(); got != 3 {
		t.Fatalf("%d lookups after Forget; want 3", got)
	}
}

func TestVolumeCacheNeverKeepsErrors(t *testing.T) {
	host, lookups := fakeDockerd(t)
	i, err := New(host, 2*time.Second, 16, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer i.Close()
	for n := 0; n < 2; n++ {
		if _, err := i.Volume(context.Background(), "broken"); err == nil || errors.Is(err, authz.ErrNotFound) {
			t.Fatalf("Volume(broken) = %v; want a non-NotFound error", err)
		}
	}
	if got := lookups.Load(); got != 2 {
		t.Fatalf("%d lookups; want 2: an error must not be cached", got)
	}
}

func TestVolumeCacheExpires(t *testing.T) {
	host, lookups := fakeDockerd(t)
	i, err := New(host, 2*time.Second, 16, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer i.Close()
	_, _ = i.Volume(context.Background(), "plain")
	time.Sleep(120 * time.Millisecond)
	_, _ = i.Volume(context.Background(), "plain")
	if got := lookups.Load(); got != 2 {
		t.Fatalf("%d lookups; want 2 after the TTL", got)
	}
}

// TestContainerCarriesVolumeDrivers: the rule judges the volume drivers of
// a stored container, so the inspection must keep all three places they are
// recorded.
func TestContainerCarriesVolumeDrivers(t *testing.T) {
	host, _ := fakeDockerd(t)
	i, err := New(host, 2*time.Second, 16, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer i.Close()
	c, err := i.Container(context.Background(), "xdrv")
	if err != nil {
		t.Fatal(err)
	}
	if c.VolumeDriver != "hostpath" || len(c.Mounts) != 1 || c.Mounts[0].Driver != "otherdrv" || c.Mounts[0].DriverOptions["k"] != "v" ||
		len(c.MountPoints) != 1 || c.MountPoints[0].Driver != "hostpath" || c.MountPoints[0].Name != "v1" {
		t.Fatalf("Container(xdrv) = %+v; want the volume drivers of HostConfig, Mounts and MountPoints", c)
	}
}

// TestForgetDuringLookupIsNotCached covers a race: a volume lookup in
// flight while a request that creates that volume is authorized (Forget)
// and carried out. Its "missing" answer predates the volume and must not
// be cached, or a later request could mount the new volume unjudged for
// a whole TTL.
func TestForgetDuringLookupIsNotCached(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	var lookups atomic.Int64
	host := serveDockerd(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		w.Header().Set("Content-Type", "application/json")
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			_, _ = w.Write([]byte("OK"))
			return
		}
		if lookups.Add(1) == 1 {
			close(arrived)
			<-release
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"message":"get racy: no such volume"}`))
			return
		}
		_, _ = w.Write([]byte(`{"Name":"racy","Driver":"local","Options":{"type":"none","o":"bind","device":"/var/run"}}`))
	})
	i, err := New(host, 5*time.Second, 16, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer i.Close()

	first := make(chan error, 1)
	go func() { _, err := i.Volume(context.Background(), "racy"); first <- err }()
	<-arrived
	i.Forget() // the volume is being created
	close(release)
	if err := <-first; !errors.Is(err, authz.ErrNotFound) {
		t.Fatalf("first lookup = %v; want ErrNotFound", err)
	}
	v, err := i.Volume(context.Background(), "racy")
	if err != nil || v.Options["device"] != "/var/run" {
		t.Fatalf("after Forget: Volume(racy) = %+v, %v; want the created volume, not the cached miss", v, err)
	}
	if got := lookups.Load(); got != 2 {
		t.Fatalf("%d lookups; want 2", got)
	}
}
