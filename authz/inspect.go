package authz

import (
	"context"
	"errors"
)

// Inspector looks up objects stored in dockerd. Its calls go through
// dockerd, and so through this plugin, again; they are read-only GETs,
// which the rule allows without further lookups, so they cannot deadlock.
type Inspector interface {
	Container(ctx context.Context, idOrName string) (Container, error)
	Volume(ctx context.Context, name string) (Volume, error)
	Plugin(ctx context.Context, name string) (Plugin, error)
}

// ErrNotFound is returned (wrapped) by an Inspector for an object that does
// not exist.
var ErrNotFound = errors.New("not found")

// Container is what the rule needs of a stored container: its owner
// sources and every way a host path reached it.
type Container struct {
	ID           string
	Name         string
	Image        string
	Labels       map[string]string
	Env          []string
	Binds        []string
	Mounts       []MountSpec
	VolumesFrom  []string
	PidMode      string       // "host", "container:<name>" or empty
	VolumeDriver string       // HostConfig.VolumeDriver; empty means local
	MountPoints  []MountPoint // what dockerd registered at create, inherited mounts included
}

// Forgetter is implemented by an Inspector that caches containers or
// volumes. Forget drops the caches whenever a container or a volume is
// removed, renamed or created, so that a name can never come to mean a
// cached object it no longer is.
type Forgetter interface {
	Forget()
}

// MountSpec is a requested mount (HostConfig.Mounts or a service's
// ContainerSpec.Mounts): a source and, for volumes, the inline driver and
// its options.
type MountSpec struct {
	Type          string
	Source        string
	Driver        string            // VolumeOptions.DriverConfig.Name; empty means local
	DriverOptions map[string]string // VolumeOptions.DriverConfig.Options
}

// MountPoint is a mount as dockerd stored it for a container.
type MountPoint struct {
	Type   string // bind, volume, tmpfs, ...
	Source string // host path for binds
	Name   string // volume name for volumes
	Driver string // volume driver for volumes
}

// Volume is a named volume's driver and options.
type Volume struct {
	Name    string
	Driver  string // empty means local
	Options map[string]string
}

// Plugin is what self-protection needs of a managed plugin.
type Plugin struct {
	ID         string
	Name       string
	Entrypoint []string
	Socket     string
}
