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
)

// String returns the route as it appears in audit records.
func (k RouteKind) String() string {
	switch k {
	case RouteContainerCreate:
		return "/containers/create"
	default:
		return "other"
	}
}

// Route is a request line as dockerd routes it: the method, the API version
// prefix (if any) and the percent-decoded, cleaned path without the query.
type Route struct {
	Kind    RouteKind
	Method  string
	Path    string // decoded and cleaned, without the /v<version> prefix
	Version string // "1.41" for /v1.41/..., empty when unversioned
	Name    string // the ?name= query parameter (container name), for messages only
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
	rawPath, rawQuery, _ := strings.Cut(rawURI, "?")
	if i := strings.IndexByte(rawPath, '#'); i >= 0 {
		rawPath = rawPath[:i]
	}
	p, err := url.PathUnescape(rawPath)
	if err != nil {
		return Route{}, false
	}
	p = path.Clean("/" + p)
	if rest, ver, found := cutVersion(p); found {
		p, r.Version = rest, ver
	}
	r.Path = p
	if r.Method == "POST" && strings.EqualFold(p, "/containers/create") {
		r.Kind = RouteContainerCreate
		if q, err := url.ParseQuery(rawQuery); err == nil {
			r.Name = q.Get("name")
		}
	}
	return r, true
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
