package authz

import (
	"net/url"
	"path"
	"strings"
)

// RouteKind names the Docker API operations that the rule guards.
type RouteKind int

// The guarded routes. RouteOther is everything else and is allowed at once.
const (
	RouteOther RouteKind = iota
	RouteContainerCreate
	RouteContainerStart   // POST /containers/{id}/start
	RouteContainerRestart // POST /containers/{id}/restart
	RouteServiceCreate    // POST /services/create
	RouteServiceUpdate    // POST /services/{id}/update
	RoutePluginManage     // POST /plugins/{name}/{disable,set,upgrade}, DELETE /plugins/{name}
	// RouteObjectChange removes, renames or creates containers or volumes
	// (DELETE /containers/{id}, POST /containers/{id}/rename, /containers/prune,
	// /volumes/create, /volumes/prune, DELETE /volumes/{name}): allowed, but
	// what a name stands for may change, so cached inspections are dropped.
	RouteObjectChange
)

var routeNames = map[RouteKind]string{
	RouteOther:            "other",
	RouteContainerCreate:  "/containers/create",
	RouteContainerStart:   "/containers/{id}/start",
	RouteContainerRestart: "/containers/{id}/restart",
	RouteServiceCreate:    "/services/create",
	RouteServiceUpdate:    "/services/{id}/update",
	RoutePluginManage:     "/plugins/{name}",
	RouteObjectChange:     "container or volume change",
}

// String returns the route pattern as it appears in audit records.
func (k RouteKind) String() string { return routeNames[k] }

// Route is a request line as dockerd routes it: the method, the API version
// prefix (if any) and the percent-decoded, cleaned path without the query.
type Route struct {
	Kind     RouteKind
	Method   string
	Path     string // decoded and cleaned, without the /v<version> prefix; empty for methods never guarded
	Version  string // "1.41" for /v1.41/..., empty when unversioned
	Target   string // the {id} or {name} in the path: container, service or plugin
	Name     string // the ?name= query parameter (container name), for messages only
	Rollback bool   // a service update that rolls back to the previous spec
}

// ParseRoute routes a raw request URI the way dockerd's router does.
// It is deliberately more lenient than dockerd where leniency can only add
// guarded requests: the path is cleaned of "//", "." and "..", a trailing
// slash is dropped, and case is ignored. A URI that cannot be decoded is
// reported with ok == false; callers deny it.
func ParseRoute(method, rawURI string) (r Route, ok bool) {
	if method == "" || rawURI == "" {
		return Route{}, false
	}
	r.Method = strings.ToUpper(method)
	if r.Method != "POST" && r.Method != "DELETE" {
		// Every guarded route is a POST or a DELETE: the rest (GETs above
		// all, hubauthz's own inspections among them) pass untouched.
		return r, true
	}
	// Go's HTTP server, and so dockerd, parses the request target with
	// url.ParseRequestURI and routes on the decoded path: an absolute-form
	// target (http://host/v1.41/containers/create) is routed by its path.
	u, err := url.ParseRequestURI(rawURI)
	if err != nil || u.Opaque != "" {
		return Route{}, false
	}
	p, rawQuery := u.Path, u.RawQuery
	if !plainPath(p) {
		return Route{}, false // no Docker object is named with these; a link alias might be
	}
	trailingSlash := len(p) > 1 && strings.HasSuffix(p, "/")
	p = path.Clean("/" + p)
	if rest, ver, found := cutVersion(p); found {
		p, r.Version = rest, ver
	}
	r.Path = p
	r.Kind, r.Target = match(r.Method, p)
	if r.Kind == RoutePluginManage && r.Method == "DELETE" && trailingSlash {
		// DELETE /plugins/{name:.*} keeps a trailing slash in the name, and
		// the name is what gets inspected.
		r.Target += "/"
	}
	switch r.Kind {
	case RouteContainerCreate:
		if q, err := url.ParseQuery(rawQuery); err == nil {
			r.Name = q.Get("name")
		}
	case RouteServiceUpdate:
		q, err := url.ParseQuery(rawQuery)
		r.Rollback = err != nil || q.Get("rollback") != ""
	}
	return r, true
}

// plainPath reports whether a decoded path is free of '#', spaces and
// control characters. dockerd would route such a path to an object whose
// name the plugin could not look up faithfully (the Docker client trims
// spaces), so those requests are refused instead.
func plainPath(p string) bool {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c == 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// match finds the guarded route for a cleaned, unversioned path.
func match(method, p string) (RouteKind, string) {
	lower := strings.ToLower(p)
	switch method {
	case "POST":
		switch {
		case lower == "/containers/create":
			return RouteContainerCreate, ""
		case lower == "/services/create":
			return RouteServiceCreate, ""
		}
		if id, ok := between(p, "/containers/", "/start"); ok {
			return RouteContainerStart, id
		}
		if id, ok := between(p, "/containers/", "/restart"); ok {
			return RouteContainerRestart, id
		}
		if id, ok := between(p, "/services/", "/update"); ok {
			return RouteServiceUpdate, id
		}
		if _, ok := between(p, "/containers/", "/rename"); ok || lower == "/containers/prune" || lower == "/volumes/create" || lower == "/volumes/prune" {
			return RouteObjectChange, ""
		}
		for _, action := range []string{"/disable", "/set", "/upgrade"} {
			if name, ok := between(p, "/plugins/", action); ok {
				return RoutePluginManage, name
			}
		}
	case "DELETE":
		if name, ok := strings.CutPrefix(p, "/plugins/"); ok && name != "" {
			return RoutePluginManage, name
		}
		if strings.HasPrefix(lower, "/containers/") || strings.HasPrefix(lower, "/volumes/") {
			return RouteObjectChange, ""
		}
	}
	return RouteOther, ""
}

// between returns the middle of p when p is prefix + middle + suffix, with
// a non-empty middle, matching prefix and suffix without regard to case.
// As in dockerd's routes ({name:.*}), the middle may hold slashes: plugin
// names do, and a legacy link name such as web/db finds a container too.
// Only service IDs are a single segment.
func between(p, prefix, suffix string) (string, bool) {
	if len(p) <= len(prefix)+len(suffix) || !strings.EqualFold(p[:len(prefix)], prefix) || !strings.EqualFold(p[len(p)-len(suffix):], suffix) {
		return "", false
	}
	mid := p[len(prefix) : len(p)-len(suffix)]
	if prefix == "/services/" && strings.Contains(mid, "/") {
		return "", false
	}
	return mid, true
}

// cutVersion strips a leading "/v<digits and dots>" segment followed by more
// path, as dockerd's router does with /v{version:[0-9.]+}.
func cutVersion(p string) (rest, version string, found bool) {
	if len(p) < 3 || p[1] != 'v' {
		return p, "", false
	}
	seg, after, more := strings.Cut(p[2:], "/")
	if !more || strings.Trim(seg, "0123456789.") != "" {
		return p, "", false
	}
	return "/" + after, seg, true
}
