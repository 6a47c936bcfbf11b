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
	pidModes    []string // HostConfig.PidMode, from every host config the request carries
	mountPoints []MountPoint
}

func containerWorkload(c Container) workload {
	return workload{image: c.Image, labels: []map[string]string{c.Labels}, env: c.Env, binds: c.Binds, mounts: c.Mounts,
		volumesFrom: c.VolumesFrom, pidModes: []string{c.PidMode}, mountPoints: c.MountPoints}
}

// createsVolumes reports whether creating w may create a named volume with
// driver options, which cached volume inspections would not know.
func (w workload) createsVolumes() bool {
	for _, m := range w.mounts {
		if len(m.DriverOptions) > 0 {
			return true
		}
	}
	return false
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
	for _, mode := range w.pidModes {
		if err := f.pid(via, mode); err != nil {
			return err
		}
	}
	return nil
}

// pid judges a shared PID namespace: /proc/<pid>/root of a process in it
// reaches that process's mounts. Sharing a container's namespace borrows its
// exposures; sharing the host's reaches every container's.
func (f *finder) pid(via, mode string) error {
	switch name, isContainer := strings.CutPrefix(mode, "container:"); {
	case strings.EqualFold(mode, "host"):
		f.all(via+"PidMode", "PidMode host")
	case isContainer:
		return f.container(via+"PidMode "+name+": ", name)
	}
	return nil
}

// all records an exposure of every protected path: what the request asks for
// reaches them by some other way than a path.
func (f *finder) all(via, what string) {
	for _, e := range f.out {
		if e.Source == what {
			return
		}
	}
	f.out = append(f.out, Exposure{Via: via, Source: what, Protected: f.pp.paths[0]})
}

// mount judges a requested mount: its source, and its inline volume
// driver options.
func (f *finder) mount(via string, m MountSpec) error {
	if err := f.volumeOptions(via+".VolumeOptions", m.DriverOptions); err != nil {
		return err
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
	if !path.IsAbs(src) {
		return nil // not a host path: an NFS export, a tmpfs "device"
	}
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
	return f.volumeOptions(via+" volume "+name, v.Options)
}

// safeVolumeTypes are the local driver's filesystem types that cannot reach
// the host's files: remote shares, memory, and a bind (judged by its device).
var safeVolumeTypes = map[string]bool{"": true, "none": true, "tmpfs": true, "nfs": true, "nfs4": true, "cifs": true, "smb3": true}

// volumeOptions judges local-driver volume options: a device path is a host
// source, and any other filesystem type (proc, overlay with host lowerdirs,
// a host disk) counts as exposing everything.
func (f *finder) volumeOptions(via string, opts map[string]string) error {
	if t := opts["type"]; !safeVolumeTypes[strings.ToLower(t)] {
		f.all(via, "volume type="+t)
	}
	if dev := opts["device"]; dev != "" {
		return f.host(via, dev)
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
