// Package docker looks up stored containers, volumes and plugins in dockerd
// for the rule in package authz. Its calls are read-only GETs; they pass
// through the authorization plugin again, which allows them at once.
package docker

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/hubauthz/hubauthz/authz"
	"github.com/moby/moby/client"
)

// fullID matches a full container ID, the only key that cannot come to
// name another container later.
var fullID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Inspector implements authz.Inspector with the Docker API. Containers are
// cached by full ID: what the rule reads of them (mounts, labels, env) never
// changes. Volumes are cached by name for a TTL, missing ones too. A name
// can be removed and created again, so the rule calls Forget on every request
// that removes, renames or creates containers or volumes; the TTL bounds what
// the plugin cannot see (changes made while it was out of dockerd's chain).
// Plugins are looked up every time.
type Inspector struct {
	// Observe, if set before use, is told about each inspection: its kind
	// ("container", "volume", "plugin"), whether the cache answered, and
	// its error. It must be cheap and safe for concurrent use.
	Observe func(kind string, cached bool, err error)

	cli        *client.Client
	timeout    time.Duration
	containers *lru.Cache[string, authz.Container]
	volumes    *expirable.LRU[string, cachedVolume]
	// gen counts Forget calls. An answer is cached only if no Forget came
	// between the start of its lookup and its end: a lookup in flight
	// when a volume is created may have seen it missing.
	gen atomic.Uint64
}

// cachedVolume is a volume inspection: the volume, or that it does not exist.
type cachedVolume struct {
	vol     authz.Volume
	missing bool
}

// New returns an Inspector for the daemon at host ("unix:///var/run/docker.sock"
// when empty), with a timeout on each call, room for cacheSize containers and
// volumes, and volumes remembered for volumeTTL.
func New(host string, timeout time.Duration, cacheSize int, volumeTTL time.Duration) (*Inspector, error) {
	if host == "" {
		host = client.DefaultDockerHost
	}
	cli, err := client.New(client.WithHost(host)) // negotiates the API version (dockerd 20.10 speaks 1.41)
	if err != nil {
		return nil, fmt.Errorf("docker: client for %s: %w", host, err)
	}
	cache, err := lru.New[string, authz.Container](cacheSize)
	if err != nil {
		return nil, err
	}
	return &Inspector{cli: cli, timeout: timeout, containers: cache,
		volumes: expirable.NewLRU[string, cachedVolume](cacheSize, nil, volumeTTL)}, nil
}

// Forget drops every cached container. The rule calls it when a container
// is removed or renamed, because a name may be set to a removed container's
// ID and would then resolve to another container than the cached one.
func (i *Inspector) Forget() {
	i.gen.Add(1)
	i.containers.Purge()
	i.volumes.Purge()
}

// Close releases the client's connections.
func (i *Inspector) Close() error { return i.cli.Close() }

// Container returns a stored container by ID, ID prefix or name.
func (i *Inspector) Container(ctx context.Context, idOrName string) (authz.Container, error) {
	if c, ok := i.containers.Get(idOrName); ok {
		i.observe("container", true, nil)
		return c, nil
	}
	ctx, cancel := context.WithTimeout(ctx, i.timeout)
	defer cancel()
	res, err := i.cli.ContainerInspect(ctx, idOrName, client.ContainerInspectOptions{})
	if err != nil {
		err = wrap("inspect container", idOrName, err)
		i.observe("container", false, err)
		return authz.Container{}, err
	}
	i.observe("container", false, nil)
	in := res.Container
	c := authz.Container{ID: in.ID, Name: strings.TrimPrefix(in.Name, "/")}
	if in.Config != nil {
		c.Image, c.Labels, c.Env = in.Config.Image, in.Config.Labels, in.Config.Env
	}
	if hc := in.HostConfig; hc != nil {
		c.Binds, c.VolumesFrom, c.PidMode, c.VolumeDriver = hc.Binds, hc.VolumesFrom, string(hc.PidMode), hc.VolumeDriver
		for _, m := range hc.Mounts {
			s := authz.MountSpec{Type: string(m.Type), Source: m.Source}
			if m.VolumeOptions != nil && m.VolumeOptions.DriverConfig != nil {
				s.Driver, s.DriverOptions = m.VolumeOptions.DriverConfig.Name, m.VolumeOptions.DriverConfig.Options
			}
			c.Mounts = append(c.Mounts, s)
		}
	}
	for _, mp := range in.Mounts {
		c.MountPoints = append(c.MountPoints, authz.MountPoint{Type: string(mp.Type), Source: mp.Source, Name: mp.Name, Driver: mp.Driver})
	}
	if fullID.MatchString(c.ID) {
		i.containers.Add(c.ID, c)
	}
	return c, nil
}

// Volume returns a named volume's driver and options.
func (i *Inspector) Volume(ctx context.Context, name string) (authz.Volume, error) {
	if c, ok := i.volumes.Get(name); ok {
		i.observe("volume", true, nil)
		if c.missing {
			return authz.Volume{}, fmt.Errorf("docker: inspect volume %q: %w", name, authz.ErrNotFound)
		}
		return c.vol, nil
	}
	gen := i.gen.Load()
	ctx, cancel := context.WithTimeout(ctx, i.timeout)
	defer cancel()
	res, err := i.cli.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
	if err != nil {
		err = wrap("inspect volume", name, err)
		i.observe("volume", false, err)
		if errors.Is(err, authz.ErrNotFound) {
			i.cacheVolume(gen, name, cachedVolume{missing: true})
		}
		return authz.Volume{}, err
	}
	i.observe("volume", false, nil)
	v := authz.Volume{Name: res.Volume.Name, Driver: res.Volume.Driver, Options: res.Volume.Options}
	i.cacheVolume(gen, name, cachedVolume{vol: v})
	return v, nil
}

// cacheVolume stores a volume answer whose lookup began at generation gen,
// unless a Forget has come since. (A Forget between this check and the Add
// purges after it, so the answer does not survive it either way.)
func (i *Inspector) cacheVolume(gen uint64, name string, c cachedVolume) {
	if i.gen.Load() == gen {
		i.volumes.Add(name, c)
	}
}

// Plugin returns what identifies a managed plugin.
func (i *Inspector) Plugin(ctx context.Context, name string) (authz.Plugin, error) {
	ctx, cancel := context.WithTimeout(ctx, i.timeout)
	defer cancel()
	res, err := i.cli.PluginInspect(ctx, name, client.PluginInspectOptions{})
	if err != nil {
		err = wrap("inspect plugin", name, err)
		i.observe("plugin", false, err)
		return authz.Plugin{}, err
	}
	i.observe("plugin", false, nil)
	p := res.Plugin
	return authz.Plugin{ID: p.ID, Name: p.Name, Entrypoint: p.Config.Entrypoint, Socket: p.Config.Interface.Socket}, nil
}

func (i *Inspector) observe(kind string, cached bool, err error) {
	if i.Observe != nil {
		i.Observe(kind, cached, err)
	}
}

// wrap marks a missing object with authz.ErrNotFound and names timeouts.
func wrap(what, name string, err error) error {
	switch {
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("docker: %s %q: %w", what, name, authz.ErrNotFound)
	case cerrdefs.IsDeadlineExceeded(err) || errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("docker: %s %q: dockerd did not answer in time", what, name)
	default:
		return fmt.Errorf("docker: %s %q: %w", what, name, err)
	}
}
