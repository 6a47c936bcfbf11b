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
	// HostConfig.VolumeDriver, from every host config the request carries:
	// the driver of the new volumes of Binds, of anonymous volumes and of
	// the image's VOLUMEs
	volumeDrivers []string
	mountPoints   []MountPoint
}

func containerWorkload(c Container) workload {
	w := workload{image: c.Image, labels: []map[string]string{c.Labels}, env: c.Env, binds: c.Binds, mounts: c.Mounts,
		volumesFrom: c.VolumesFrom, pidModes: []string{c.PidMode}, mountPoints: c.MountPoints}
	if c.VolumeDriver != "" {
		w.volumeDrivers = []string{c.VolumeDriver}
	}
	return w
}

// createsVolumes reports whether creating w may create a named volume with
// driver options or of a driver other than local, which cached volume
// inspections would not know.
func (w workload) createsVolumes() bool {
	for _, m := range w.mounts {
		if len(m.DriverOptions) > 0 || !isLocal(m.Driver) {
			return true
		}
	}
	for _, d := range w.volumeDrivers {
		if !isLocal(d) {
			return true
		}
	}
	return false
}

// isLocal reports whether a volume driver name is the local driver: an
// empty name means local.
func isLocal(driver string) bool {
	return driver == "" || driver == LocalVolumeDriver
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
	drivers  map[string]bool // trusted volume drivers
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
		if strings.EqualFold(mp.Type, "volume") {
			if mp.Driver != "" {
				// The driver dockerd recorded; the volume's own is
				// judged again if it still exists.
				if err := f.driver(via+"MountPoints", mp.Driver, nil); err != nil {
					return err
				}
			}
			if mp.Name != "" {
				src = mp.Name
			}
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
	// The driver of the volumes dockerd creates for this container, whether
	// the request names them (a new volume in Binds, an anonymous one) or
	// the image does (VOLUME), which is not looked at: an untrusted driver
	// counts whatever the request's volumes are.
	for _, d := range w.volumeDrivers {
		if d != "" {
			if err := f.driver(via+"VolumeDriver", d, nil); err != nil {
				return err
			}
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
// driver and options. A mount that names neither leaves the driver to the
// existing volume (judged through its source) or to dockerd's default,
// local, for a new one.
func (f *finder) mount(via string, m MountSpec) error {
	if m.Driver != "" || len(m.DriverOptions) > 0 {
		if err := f.driver(via+".VolumeOptions", m.Driver, m.DriverOptions); err != nil {
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
	return f.driver(via+" volume "+name, v.Driver, v.Options)
}

// driver judges a volume driver and its options. A driver that is not
// trusted counts as exposing every protected path: what its volumes are is
// its own business, and a host-path driver mounts whatever directory it is
// told. The local driver's options are judged (an empty name is local); a
// trusted other driver's options are not, since trusting a driver means
// trusting it never to reach host files.
func (f *finder) driver(via, name string, opts map[string]string) error {
	if name == "" {
		name = LocalVolumeDriver
	}
	switch {
	case !f.drivers[name]:
		f.all(via, fmt.Sprintf("untrusted volume driver %q", name))
		return nil
	case name == LocalVolumeDriver:
		return f.volumeOptions(via, opts)
	}
	return nil
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
