package authz

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"
)

// workload is a container to be created, a stored container about to
// start, or a service's task template, reduced to what the rule reads.
type workload struct {
	image       string
	labels      []map[string]string // label sets, in order of precedence
	env         []string
	binds       []string
	mounts      []MountSpec
	volumesFrom []string
	mountPoints []MountPoint
}

func containerWorkload(c Container) workload {
	return workload{image: c.Image, labels: []map[string]string{c.Labels}, env: c.Env, binds: c.Binds, mounts: c.Mounts,
		volumesFrom: c.VolumesFrom, mountPoints: c.MountPoints}
}

// Resolver follows symlinks in a host path; HostRoot is the real one.
type Resolver interface {
	Resolve(source string) (string, error)
}

// finder collects the exposures of a workload, looking up named volumes and
// volumes-from containers through the Inspector as it goes.
type finder struct {
	ctx      context.Context
	pp       ProtectedPaths
	resolver Resolver
	inspect  Inspector
	seen     map[string]bool // containers already visited through VolumesFrom
	volumes  []volumeAnswer  // volumes already inspected for this decision
	out      []Exposure
}

// volumeAnswer is one volume inspection, kept for the rest of a decision:
// a stored container names its volume twice (Binds and MountPoints), and
// each inspection is a Docker API round trip through this plugin again.
type volumeAnswer struct {
	name string
	v    Volume
	err  error
}

// workload adds the exposures of w. The error says what could not be
// checked; the caller denies then.
func (f *finder) workload(w workload, via string) error {
	for _, b := range w.binds {
		src, _, ok := strings.Cut(b, ":")
		if !ok {
			continue // an anonymous volume: no host source
		}
		if err := f.source(via+"Binds", src); err != nil {
			return err
		}
	}
	for _, m := range w.mounts {
		if err := f.mount(via+"Mounts", m); err != nil {
			return err
		}
	}
	for _, mp := range w.mountPoints {
		src := mp.Source
		if strings.EqualFold(mp.Type, "volume") && mp.Name != "" {
			src = mp.Name
		}
		if err := f.source(via+"MountPoints", src); err != nil {
			return err
		}
	}
	for _, vf := range w.volumesFrom {
		name, _, _ := strings.Cut(vf, ":")
		if err := f.container(via+"VolumesFrom "+name+": ", name); err != nil {
			return err
		}
	}
	return nil
}

// mount judges a requested mount: its source, and a device named in its
// inline volume driver options.
func (f *finder) mount(via string, m MountSpec) error {
	if dev := m.DriverOptions["device"]; dev != "" {
		if err := f.host(via+".VolumeOptions", dev); err != nil {
			return err
		}
	}
	if m.Source == "" || strings.EqualFold(m.Type, "tmpfs") || strings.EqualFold(m.Type, "image") {
		return nil
	}
	return f.source(via, m.Source)
}

// source judges a bind source or a volume name.
func (f *finder) source(via, src string) error {
	if path.IsAbs(src) {
		return f.host(via, src)
	}
	if src == "" {
		return nil
	}
	return f.volume(via, src)
}

// host judges a host path, by its text and, through the Resolver, by what
// its symlinks lead to.
func (f *finder) host(via, src string) error {
	for _, e := range f.out {
		if e.Source == src { // the same bind seen again, e.g. in Binds and in MountPoints
			return nil
		}
	}
	if p, ok := f.pp.Exposes(src); ok {
		f.out = append(f.out, Exposure{Via: via, Source: src, Protected: p})
		return nil
	}
	if f.resolver == nil {
		return nil
	}
	resolved, err := f.resolver.Resolve(src)
	if err != nil {
		return fmt.Errorf("cannot resolve host path %q: %w", src, err)
	}
	if p, ok := f.pp.Exposes(resolved); ok {
		f.out = append(f.out, Exposure{Via: via, Source: src, Protected: p})
	}
	return nil
}

// volume judges a named volume by the host device its local-driver
// options bind. A volume that does not exist yet exposes nothing.
func (f *finder) volume(via, name string) error {
	if f.inspect == nil {
		return fmt.Errorf("cannot inspect volume %q: no Docker API configured", name)
	}
	v, err := f.inspectVolume(name)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cannot inspect volume %q: %w", name, err)
	}
	if dev := v.Options["device"]; dev != "" {
		return f.host(via+" volume "+name, dev)
	}
	return nil
}

// inspectVolume inspects a volume once per decision.
func (f *finder) inspectVolume(name string) (Volume, error) {
	for _, a := range f.volumes {
		if a.name == name {
			return a.v, a.err
		}
	}
	v, err := f.inspect.Volume(f.ctx, name)
	f.volumes = append(f.volumes, volumeAnswer{name: name, v: v, err: err})
	return v, err
}

// container adds the exposures of a container named in VolumesFrom: they
// become the new container's.
func (f *finder) container(via, name string) error {
	if f.inspect == nil {
		return fmt.Errorf("cannot inspect container %q: no Docker API configured", name)
	}
	if f.seen[name] {
		return nil
	}
	c, err := f.inspect.Container(f.ctx, name)
	if err != nil {
		return fmt.Errorf("cannot inspect container %q: %w", name, err)
	}
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	f.seen[name], f.seen[c.ID] = true, true
	return f.workload(containerWorkload(c), via)
}
