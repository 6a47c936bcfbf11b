package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/docker/go-plugins-helpers/volume"
	"github.com/hubauthz/hubauthz/e2e/dockertest"
)

// hostPathDriver is a legacy volume driver plugin of the kind hubauthz
// cannot judge by its options: a volume's mountpoint option names any host
// directory, and the container gets that directory.
type hostPathDriver struct {
	mu   sync.Mutex
	vols map[string]string // name -> host directory
}

func (d *hostPathDriver) Create(r *volume.CreateRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir := r.Options["mountpoint"]
	if dir == "" {
		dir = os.TempDir()
	}
	d.vols[r.Name] = dir
	return nil
}

func (d *hostPathDriver) lookup(name string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	dir, ok := d.vols[name]
	if !ok {
		return "", fmt.Errorf("no such volume %q", name)
	}
	return dir, nil
}

func (d *hostPathDriver) List() (*volume.ListResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out volume.ListResponse
	for name, dir := range d.vols {
		out.Volumes = append(out.Volumes, &volume.Volume{Name: name, Mountpoint: dir})
	}
	return &out, nil
}

func (d *hostPathDriver) Get(r *volume.GetRequest) (*volume.GetResponse, error) {
	dir, err := d.lookup(r.Name)
	if err != nil {
		return nil, err
	}
	return &volume.GetResponse{Volume: &volume.Volume{Name: r.Name, Mountpoint: dir}}, nil
}

func (d *hostPathDriver) Remove(r *volume.RemoveRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.vols, r.Name)
	return nil
}

func (d *hostPathDriver) Path(r *volume.PathRequest) (*volume.PathResponse, error) {
	dir, err := d.lookup(r.Name)
	if err != nil {
		return nil, err
	}
	return &volume.PathResponse{Mountpoint: dir}, nil
}

func (d *hostPathDriver) Mount(r *volume.MountRequest) (*volume.MountResponse, error) {
	dir, err := d.lookup(r.Name)
	if err != nil {
		return nil, err
	}
	return &volume.MountResponse{Mountpoint: dir}, nil
}

func (d *hostPathDriver) Unmount(*volume.UnmountRequest) error { return nil }

func (d *hostPathDriver) Capabilities() *volume.CapabilitiesResponse {
	return &volume.CapabilitiesResponse{Capabilities: volume.Capability{Scope: "local"}}
}

// startHostPathDriver serves a hostPathDriver as a legacy plugin on
// /run/docker/plugins/NAME.sock and returns NAME. Start it before the
// stack, so that dockerd is stopped before the plugin goes away.
func startHostPathDriver(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("hostpath-e2e-%d-%d", os.Getpid(), pluginSeq.Add(1))
	socket := "/run/docker/plugins/" + name + ".sock"
	if err := os.MkdirAll("/run/docker/plugins", 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(socket)
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- volume.NewHandler(&hostPathDriver{vols: map[string]string{}}).Serve(l) }()
	t.Cleanup(func() {
		l.Close()
		if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("volume plugin: %v", err)
		}
		_ = os.Remove(socket)
	})
	return name
}

// TestLegacyVolumeDriver proves on a real dockerd that a third-party volume
// driver is a way to the socket (a member's container really gets it), and
// that hubauthz refuses every way a non-member's container could get such
// a volume, until the driver is trusted through HUBAUTHZ_VOLUME_DRIVERS.
func TestLegacyVolumeDriver(t *testing.T) {
	drv := startHostPathDriver(t)
	s := startLegacy(t, nil)
	dir := s.socketDir()
	untrusted := fmt.Sprintf("untrusted volume driver %q", drv)
	s.docker.MustDocker(t, "volume", "create", "--driver", drv, "--opt", "mountpoint="+dir, "hpvol")

	t.Run("the driver really hands over the socket (member)", func(t *testing.T) {
		if out, stderr, err := s.run(t, label("alice"), "-v", "hpvol:/x", dockertest.Image, "test", "-S", "/x/docker.sock"); err != nil {
			t.Fatalf("member with the driver's volume: %v %q %q", err, out, stderr)
		}
		found := false
		for _, rec := range s.audits(t) {
			if rec["decision"] == "allow" && strings.Contains(fmt.Sprint(rec["sources"]), untrusted) {
				found = true
			}
		}
		if !found {
			t.Fatalf("the member's allow is not audited with %q:\n%s", untrusted, s.pluginLog())
		}
	})
	t.Run("existing volume of the driver", func(t *testing.T) {
		s.denied(t, untrusted, "create", label("bob"), "-v", "hpvol:/x", dockertest.Image, "true")
		s.denied(t, untrusted, "create", label("bob"), "--mount", "type=volume,src=hpvol,dst=/x", dockertest.Image, "true")
	})
	t.Run("volume-driver for a new volume", func(t *testing.T) {
		s.denied(t, untrusted, "create", label("bob"), "--volume-driver", drv, "-v", "newhp:/x", dockertest.Image, "true")
		s.denied(t, untrusted, "create", label("bob"), "--volume-driver", drv, "-v", "/x", dockertest.Image, "true")
	})
	t.Run("inline mount with the driver", func(t *testing.T) {
		s.denied(t, untrusted, "create", label("bob"), "--mount",
			"type=volume,src=inlinehp,dst=/x,volume-driver="+drv+",volume-opt=mountpoint="+dir, dockertest.Image, "true")
	})
	t.Run("volumes-from a container with the driver's volume", func(t *testing.T) {
		s.docker.MustDocker(t, "create", "--name", "hpholder", "-v", "hpvol:/x", dockertest.Image, "true") // unowned: allowed
		s.denied(t, untrusted, "create", label("bob"), "--volumes-from", "hpholder", dockertest.Image, "true")
	})
	t.Run("plain volumes still work for a non-member", func(t *testing.T) {
		if out, stderr, err := s.run(t, label("bob"), "-v", "plainvol:/x", dockertest.Image, "echo", "hi"); err != nil || strings.TrimSpace(out) != "hi" {
			t.Fatalf("plain volume for bob: %q %v %s", out, err, stderr)
		}
	})
	s.assertNoSocketContainer(t)
}

// TestLegacyVolumeDriverTrusted: a driver named in HUBAUTHZ_VOLUME_DRIVERS is
// trusted outright, which is why only drivers that never reach host files
// belong there. The local driver's options are still judged.
func TestLegacyVolumeDriverTrusted(t *testing.T) {
	drv := startHostPathDriver(t)
	s := startLegacy(t, map[string]string{"HUBAUTHZ_VOLUME_DRIVERS": "local," + drv})
	s.docker.MustDocker(t, "volume", "create", "--driver", drv, "--opt", "mountpoint="+t.TempDir(), "trustedvol")
	if out, stderr, err := s.run(t, label("bob"), "-v", "trustedvol:/x", dockertest.Image, "echo", "hi"); err != nil || strings.TrimSpace(out) != "hi" {
		t.Fatalf("trusted driver's volume for bob: %q %v %s", out, err, stderr)
	}
	s.denied(t, notMember, "create", label("bob"), "--mount",
		"type=volume,src=inline1,dst=/x,volume-opt=type=none,volume-opt=o=bind,volume-opt=device="+s.socketDir(), dockertest.Image, "true")
}
