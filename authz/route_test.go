package authz

import "testing"

func TestParseRoute(t *testing.T) {
	tests := []struct {
		name, method, uri string
		kind              RouteKind
		version, cname    string
	}{
		{"versioned create", "POST", "/v1.41/containers/create?name=jupyter-bob", RouteContainerCreate, "1.41", "jupyter-bob"},
		{"unversioned create", "POST", "/containers/create", RouteContainerCreate, "", ""},
		{"encoded slash", "POST", "/v1.41/containers%2Fcreate", RouteContainerCreate, "1.41", ""},
		{"encoded letters", "POST", "/v1.41/%63ontainers/%63reate", RouteContainerCreate, "1.41", ""},
		{"double slashes", "POST", "//v1.41//containers//create", RouteContainerCreate, "1.41", ""},
		{"trailing slash", "POST", "/containers/create/", RouteContainerCreate, "", ""},
		{"dot segments", "POST", "/v1.41/x/../containers/./create", RouteContainerCreate, "1.41", ""},
		{"odd version", "POST", "/v1..4/containers/create", RouteContainerCreate, "1..4", ""},
		{"upper case path", "POST", "/v1.41/Containers/Create", RouteContainerCreate, "1.41", ""},
		{"lower case method", "post", "/containers/create", RouteContainerCreate, "", ""},
		{"query with slash", "POST", "/containers/create?name=a/b", RouteContainerCreate, "", "a/b"},
		{"create with GET", "GET", "/containers/create", RouteOther, "", ""},
		{"container list", "GET", "/v1.41/containers/json?all=1", RouteOther, "", ""},
		{"create in query only", "POST", "/v1.41/containers/x/json?next=/containers/create", RouteOther, "1.41", ""},
		{"volumes create", "POST", "/v1.41/volumes/create", RouteObjectChange, "1.41", ""},
		{"non-numeric version segment", "POST", "/vx/containers/create", RouteOther, "", ""},
		{"container start", "POST", "/v1.41/containers/abc123/start", RouteContainerStart, "1.41", ""},
		{"container start, encoded", "POST", "/v1.41/containers/abc123%2Fstart", RouteContainerStart, "1.41", ""},
		{"container restart", "POST", "/containers/jupyter-bob/restart?t=5", RouteContainerRestart, "", ""},
		{"container start by a legacy link name", "POST", "/containers/web/db/start", RouteContainerStart, "", ""},
		{"absolute-form create", "POST", "http://docker/v1.41/containers/create", RouteContainerCreate, "1.41", ""},
		{"absolute-form with another scheme", "POST", "a:/containers/create", RouteContainerCreate, "", ""},
		{"remove a plugin named privileges", "DELETE", "/plugins/privileges", RoutePluginManage, "", ""},
		{"container stop", "POST", "/containers/abc/stop", RouteOther, "", ""},
		{"service create", "POST", "/v1.41/services/create", RouteServiceCreate, "1.41", ""},
		{"service update", "POST", "/v1.41/services/svc/update?version=2", RouteServiceUpdate, "1.41", ""},
		{"plugin disable", "POST", "/v1.41/plugins/hubauthz:latest/disable", RoutePluginManage, "1.41", ""},
		{"plugin disable with registry name", "POST", "/v1.41/plugins/reg:5000/org/hubauthz:1.0/disable", RoutePluginManage, "1.41", ""},
		{"plugin set", "POST", "/plugins/hubauthz/set", RoutePluginManage, "", ""},
		{"plugin upgrade", "POST", "/plugins/hubauthz/upgrade?remote=x", RoutePluginManage, "", ""},
		{"plugin remove", "DELETE", "/v1.41/plugins/hubauthz?force=1", RoutePluginManage, "1.41", ""},
		{"plugin enable", "POST", "/plugins/hubauthz/enable", RouteOther, "", ""},
		{"plugin inspect", "GET", "/plugins/hubauthz/json", RouteOther, "", ""},
		{"container remove", "DELETE", "/v1.41/containers/abc", RouteObjectChange, "1.41", ""},
		{"container rename", "POST", "/v1.41/containers/abc/rename?name=x", RouteObjectChange, "1.41", ""},
		{"container prune", "POST", "/v1.41/containers/prune", RouteObjectChange, "1.41", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ok := ParseRoute(tt.method, tt.uri)
			if !ok {
				t.Fatalf("ParseRoute(%q, %q) failed", tt.method, tt.uri)
			}
			if r.Kind != tt.kind || r.Version != tt.version || r.Name != tt.cname {
				t.Errorf("ParseRoute(%q, %q) = kind %v version %q name %q; want %v %q %q",
					tt.method, tt.uri, r.Kind, r.Version, r.Name, tt.kind, tt.version, tt.cname)
			}
		})
	}
}

func TestParseRouteRefusesBrokenRequests(t *testing.T) {
	for _, tt := range []struct{ method, uri string }{
		{"", "/containers/create"},
		{"POST", ""},
		{"POST", "/containers%ZZ/create"},
		{"POST", "a:b/containers/create"},
		{"POST", "/containers/web/x%23/start"},
		{"POST", "/containers/web/x%20/start"},
		{"POST", "/containers/create#x"},
		{"POST", "/containers/a%00b/start"},
	} {
		if _, ok := ParseRoute(tt.method, tt.uri); ok {
			t.Errorf("ParseRoute(%q, %q) accepted a broken request", tt.method, tt.uri)
		}
	}
}

func TestParseRouteTargets(t *testing.T) {
	for uri, want := range map[string]string{
		"/v1.41/containers/jupyter-bob/start":              "jupyter-bob",
		"/v1.41/containers/jupyter%2Dbob/restart":          "jupyter-bob",
		"/v1.41/services/svc1/update":                      "svc1",
		"/v1.41/plugins/reg:5000/org/hubauthz:1.0/disable": "reg:5000/org/hubauthz:1.0",
		"/v1.41/plugins/hubauthz%3Alatest/set":             "hubauthz:latest",
	} {
		r, ok := ParseRoute("POST", uri)
		if !ok || r.Target != want {
			t.Errorf("ParseRoute(%q).Target = %q; want %q", uri, r.Target, want)
		}
	}
}

// TestPluginRemoveKeepsTrailingSlash: dockerd routes DELETE /plugins/{name:.*}
// with the trailing slash in the name, so the plugin inspected is that name.
func TestPluginRemoveKeepsTrailingSlash(t *testing.T) {
	r, ok := ParseRoute("DELETE", "/v1.41/plugins/hubauthz/")
	if !ok || r.Kind != RoutePluginManage || r.Target != "hubauthz/" {
		t.Fatalf("ParseRoute = %v %q, %v; want the plugin route with target %q", r.Kind, r.Target, ok, "hubauthz/")
	}
}
