package authz

import (
	"context"
	"errors"
	"strings"
)

// selfProtection refuses disabling, reconfiguring, upgrading or removing
// hubauthz itself: dockerd silently drops a disabled authz plugin from its
// chain and then lets everything through. Other plugins are not affected.
func (a *Authorizer) selfProtection(ctx context.Context, d Decision) Decision {
	name := d.Route.Target
	d.Container = ""
	d.Allow, d.Reason = true, ReasonUnguarded
	if a.inspect == nil && a.cfg.AllowSelfManagement {
		return d
	}
	if a.inspect == nil {
		d.Reason = ReasonInspectFailed
		return deny(d, "hubauthz cannot tell whether plugin %q is itself (no Docker API configured), so managing it is refused.", name)
	}
	p, err := a.inspect.Plugin(ctx, name)
	if errors.Is(err, ErrNotFound) {
		return d // dockerd answers 404 too
	}
	if err != nil {
		d.Reason = ReasonInspectFailed
		return deny(d, "hubauthz cannot inspect plugin %q (%v), so managing it is refused.", name, err)
	}
	if !isSelf(p) {
		return d
	}
	d.Reason = ReasonSelfProtection
	if a.cfg.AllowSelfManagement {
		d.Audit = true // allowed, but an admin must be able to see it happened
		return d
	}
	return deny(d, "plugin %q is hubauthz, the guard of the Docker socket, so %s %s is refused; for maintenance take it out of \"authorization-plugins\" in daemon.json and reload dockerd first (see docs/security.md).",
		p.Name, d.Route.Method, d.Route.Path)
}

// isSelf recognises hubauthz by its manifest: its entrypoint is /hubauthz
// and its socket is hubauthz.sock, whatever name it was installed under.
func isSelf(p Plugin) bool {
	if len(p.Entrypoint) > 0 && strings.HasSuffix(p.Entrypoint[0], "/hubauthz") {
		return true
	}
	return p.Socket == "hubauthz.sock"
}
