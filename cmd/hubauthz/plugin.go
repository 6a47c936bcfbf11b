package main

import (
	"context"

	"github.com/docker/go-plugins-helpers/authorization"
	"github.com/hubauthz/hubauthz/authz"
)

// plugin adapts the authz rule to the go-plugins-helpers wire types. This
// is where the Docker wire format ends.
type plugin struct {
	az      *authz.Authorizer
	audit   *auditor
	metrics *metrics
}

// AuthZReq decides a request. A panic anywhere below denies it.
func (p *plugin) AuthZReq(r authorization.Request) (res authorization.Response) {
	defer func() {
		if v := recover(); v != nil {
			p.audit.log.WithField("panic", v).Error("hubauthz: internal error while deciding a request")
			res = authorization.Response{Allow: false, Msg: "hubauthz hit an internal error, so the request is denied."}
		}
	}()
	d := p.az.Decide(context.Background(), authz.Request{Method: r.RequestMethod, URI: r.RequestURI, Body: r.RequestBody})
	p.audit.decision(d)
	p.metrics.decision(d)
	return authorization.Response{Allow: d.Allow, Msg: d.Msg}
}

// AuthZRes allows every response: the rule is decided on requests. It
// tells the rule that dockerd has carried the request out, so that the
// inspection caches forget what it may have changed.
func (p *plugin) AuthZRes(r authorization.Request) (res authorization.Response) {
	defer func() {
		if v := recover(); v != nil {
			p.audit.log.WithField("panic", v).Error("hubauthz: internal error after a request")
		}
		res = authorization.Response{Allow: true}
	}()
	p.az.Settled(authz.Request{Method: r.RequestMethod, URI: r.RequestURI, Body: r.RequestBody})
	return authorization.Response{Allow: true}
}
