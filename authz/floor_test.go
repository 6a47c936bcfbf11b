package authz

import (
	"os"
	"testing"
)

// TestReadBodyDecodesWhatDecideDecodes checks that the benchmarks' floor
// reads the bodies Decide reads, and fails where Decide cannot read them.
func TestReadBodyDecodesWhatDecideDecodes(t *testing.T) {
	create, err := os.ReadFile("testdata/dockerspawner-create.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, method, uri, body string
		ok                      bool
	}{
		{"create", "POST", "/v1.41/containers/create?name=jupyter-bob", string(create), true},
		{"create with a broken body", "POST", "/v1.41/containers/create", `{"HostConfig":`, false},
		{"create with no body", "POST", "/v1.41/containers/create", "", false},
		{"service with a broken body", "POST", "/v1.41/services/create", `{"TaskTemplate":[]}`, false},
		{"start with no body", "POST", "/v1.41/containers/abc/start", "", true},
		{"start with a broken body", "POST", "/v1.41/containers/abc/start", `{"Binds":"x"}`, false},
		{"list", "GET", "/v1.41/containers/json", "", true},
		{"unroutable", "", "", "", false},
	} {
		err := ReadBody(c.method, c.uri, []byte(c.body))
		if (err == nil) != c.ok {
			t.Errorf("%s: ReadBody = %v, want ok %v", c.name, err, c.ok)
		}
	}
}
