// Package authz is the rule of hubauthz: given a Docker API request, decide
// whether it may put a protected host path (the Docker socket) into a
// container, which is allowed only when the container's hub user is a member
// of the privileged group. It never sees HTTP; membership comes through the
// Membership interface and stored Docker objects through Inspector.
package authz

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"time"
)

// Membership answers whether a hub user belongs to a group.
type Membership interface {
	IsMember(ctx context.Context, group, user string) (bool, error)
}

// Config is what the rule needs to know.
type Config struct {
	Protected           ProtectedPaths
	OwnerLabels         []string      // label keys naming the owner, in order of precedence
	Group               string        // the privileged hub group
	DenyUnowned         bool          // deny exposure for containers without an owner
	Resolver            Resolver      // follows symlinks in host paths; nil judges the text only
	AllowSelfManagement bool          // allow disabling, reconfiguring or removing hubauthz
	Timeout             time.Duration // bound on deciding one guarded request; 0 means none
	// VolumeDrivers are the volume drivers trusted never to reach host
	// files, by exact name; empty means only "local". A volume of any
	// other driver counts as exposing every protected path. The local
	// driver's options are judged; another trusted driver's are not.
	VolumeDrivers []string
}

// LocalVolumeDriver is dockerd's built-in volume driver, the default of
// Config.VolumeDrivers, and what an empty driver name means.
const LocalVolumeDriver = "local"

// Request is one Docker API request as dockerd hands it to the plugin.
type Request struct {
	Method string // HTTP method
	URI    string // raw request URI, undecoded, with the query
	Body   []byte // the forwarded body; empty when dockerd did not forward it
}

// Authorizer decides Docker API requests.
type Authorizer struct {
	cfg     Config
	members Membership
	inspect Inspector
	drivers map[string]bool // cfg.VolumeDrivers
}

// New returns an Authorizer for cfg that asks m about group membership and
// i about stored containers, volumes and plugins.
func New(cfg Config, m Membership, i Inspector) *Authorizer {
	drivers := map[string]bool{}
	for _, d := range cfg.VolumeDrivers {
		drivers[d] = true
	}
	if len(drivers) == 0 {
		drivers[LocalVolumeDriver] = true
	}
	return &Authorizer{cfg: cfg, members: m, inspect: i, drivers: drivers}
}

// Decide applies the rule to req. It allows unguarded routes without
// decoding anything, and fails closed on everything it cannot read.
func (a *Authorizer) Decide(ctx context.Context, req Request) Decision {
	route, ok := ParseRoute(req.Method, req.URI)
	if !ok {
		return deny(Decision{Route: route, Reason: ReasonBadRequest},
			"hubauthz cannot route the request %s %q, so it is denied.", req.Method, req.URI)
	}
	if route.Kind == RouteOther {
		return Decision{Allow: true, Route: route, Reason: ReasonUnguarded}
	}
	if a.cfg.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.cfg.Timeout)
		defer cancel()
	}
	d := Decision{Route: route, Group: a.cfg.Group, Container: route.Name}
	var (
		w   workload
		err error
	)
	switch route.Kind {
	case RouteObjectChange:
		a.forget()
		return Decision{Allow: true, Route: route, Reason: ReasonUnguarded}
	case RoutePluginManage:
		return a.selfProtection(ctx, d)
	case RouteContainerCreate:
		w, err = decodeCreate(req.Body)
		if createChangesCaches(route, w) {
			a.forget()
		}
	case RouteServiceUpdate:
		if route.Rollback {
			d.Reason = ReasonInspectFailed
			return deny(d, "hubauthz cannot judge a rollback to a service's previous spec, so it is refused; update the service with the spec you want instead.")
		}
		w, err = decodeService(req.Body)
	case RouteServiceCreate:
		w, err = decodeService(req.Body)
	case RouteContainerStart, RouteContainerRestart:
		return a.decideStored(ctx, d, req.Body)
	}
	if err != nil {
		d.Reason = ReasonBadBody
		return deny(d, "hubauthz cannot inspect request body (%v), so the request is denied.", err)
	}
	return a.decideWorkload(ctx, d, w)
}

// decideStored decides the start of a stored container again, with today's
// membership: its mounts were fixed when it was created. API versions before
// 1.24 still take a host config in the start body, which dockerd applies;
// what such a body asks for is judged too.
func (a *Authorizer) decideStored(ctx context.Context, d Decision, body []byte) Decision {
	var extra workload
	if len(bytes.TrimSpace(body)) > 0 {
		var err error
		if extra, err = decodeCreate(body); err != nil {
			d.Reason = ReasonBadBody
			return deny(d, "hubauthz cannot inspect request body (%v), so the request is denied.", err)
		}
	}
	d.Container = d.Route.Target
	if a.inspect == nil {
		d.Reason = ReasonInspectFailed
		return deny(d, "hubauthz cannot inspect container %q (no Docker API configured), so it is not started.", d.Container)
	}
	c, err := a.inspect.Container(ctx, d.Route.Target)
	if err != nil {
		d.Reason = ReasonInspectFailed
		return deny(d, "hubauthz cannot inspect container %q (%v), so it is not started.", d.Container, err)
	}
	if c.Name != "" {
		d.Container = c.Name
	}
	w := containerWorkload(c)
	w.binds = append(w.binds, extra.binds...)
	w.mounts = append(w.mounts, extra.mounts...)
	w.volumesFrom = append(w.volumesFrom, extra.volumesFrom...)
	w.pidModes = append(w.pidModes, extra.pidModes...)
	w.volumeDrivers = append(w.volumeDrivers, extra.volumeDrivers...)
	return a.decideWorkload(ctx, d, w)
}

// forget drops the Inspector's container cache, if it has one.
// Settled tells the Authorizer that dockerd has carried out req (the
// response phase, AuthZRes). The caches forget again after every request
// that may have created, removed or renamed a volume or a container, as
// they did when it was authorized: an inspection made while dockerd was
// carrying it out may have seen the state it replaced. (The inspector also
// keeps no answer from a lookup that a forget overtook.)
func (a *Authorizer) Settled(req Request) {
	route, ok := ParseRoute(req.Method, req.URI)
	if !ok {
		return
	}
	switch route.Kind {
	case RouteObjectChange:
		a.forget()
	case RouteContainerCreate:
		w, _ := decodeCreate(req.Body) // a body that cannot be read created nothing
		if createChangesCaches(route, w) {
			a.forget()
		}
	}
}

// createChangesCaches reports whether a container create may make a cached
// answer wrong: its name is another container's ID, or it may create a
// volume with options or of another driver under a name cached as missing.
func createChangesCaches(route Route, w workload) bool {
	return fullID.MatchString(route.Name) || w.createsVolumes()
}

func (a *Authorizer) forget() {
	if f, ok := a.inspect.(Forgetter); ok {
		f.Forget()
	}
}

// fullID matches a full container ID.
var fullID = regexp.MustCompile(`^[0-9a-f]{64}$`)

// decideWorkload finds the exposures of w and judges them.
func (a *Authorizer) decideWorkload(ctx context.Context, d Decision, w workload) Decision {
	d.Image = w.image
	f := finder{ctx: ctx, pp: a.cfg.Protected, resolver: a.cfg.Resolver, inspect: a.inspect, drivers: a.drivers}
	if err := f.workload(w, ""); err != nil {
		d.Reason = ReasonInspectFailed
		return deny(d, "hubauthz %v, so the request is denied.", err)
	}
	if len(f.out) == 0 {
		d.Allow, d.Reason = true, ReasonNoExposure
		return d
	}
	d.Exposures = f.out
	owner, err := findOwner(w.labels, w.env, a.cfg.OwnerLabels)
	d.User = owner.User
	return a.judge(ctx, d, owner, err)
}

// judge decides a request that exposes a protected path. Each branch is one
// row of the decision table in docs/policy.md.
func (a *Authorizer) judge(ctx context.Context, d Decision, owner Owner, ownerErr error) Decision {
	path := d.Exposures[0].describe()
	switch {
	case ownerErr != nil:
		d.Reason = ReasonOwnerConflict
		return deny(d, "%s is refused: %v.", path, ownerErr)
	case owner.User == "" && a.cfg.DenyUnowned:
		d.Reason = ReasonUnowned
		return deny(d, "%s is refused for a container with no hub owner (no owner label and no %s).", path, ownerEnv)
	case owner.User == "":
		d.Allow, d.Reason = true, ReasonUnowned
		return d
	}
	member, err := a.members.IsMember(ctx, a.cfg.Group, owner.User)
	switch {
	case err != nil:
		d.Reason = ReasonHubError
		return deny(d, "%s is refused for user %q because membership of group %q could not be checked: %v.",
			path, owner.User, a.cfg.Group, err)
	case !member && (d.Route.Kind == RouteContainerStart || d.Route.Kind == RouteContainerRestart):
		d.Reason = ReasonNotMember
		return deny(d, "user %q is not in the JupyterHub group %q, so this stored container, which mounts %s, cannot start; ask a hub admin to add you to %q, or remove the container so that a new server is created without it.",
			owner.User, a.cfg.Group, path, a.cfg.Group)
	case !member:
		d.Reason = ReasonNotMember
		return deny(d, "user %q is not in the JupyterHub group %q, so %s cannot be mounted; ask a hub admin to add you to %q, then restart your server.",
			owner.User, a.cfg.Group, path, a.cfg.Group)
	default:
		d.Allow, d.Reason = true, ReasonMember
		return d
	}
}

func deny(d Decision, format string, args ...any) Decision {
	d.Allow = false
	d.Msg = fmt.Sprintf(format, args...)
	return d
}
