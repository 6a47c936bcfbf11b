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
		{"container list", "GET", "/v1.41/containers/json?all=1", RouteOther, "1.41", ""},
		{"create in query only", "POST", "/v1.41/containers/x/start?next=/containers/create", RouteOther, "1.41", ""},
		{"volumes create", "POST", "/v1.41/volumes/create", RouteOther, "1.41", ""},
		{"non-numeric version segment", "POST", "/vx/containers/create", RouteOther, "", ""},
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
	} {
		if _, ok := ParseRoute(tt.method, tt.uri); ok {
			t.Errorf("ParseRoute(%q, %q) accepted a broken request", tt.method, tt.uri)
		}
	}
}
