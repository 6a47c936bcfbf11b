package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestEverySettingIsDocumented keeps docs/configuration.md and the
// managed plugin's config.json in step with the settings table.
func TestEverySettingIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile("../../config.json")
	if err != nil {
		t.Fatal(err)
	}
	var manifest struct {
		Env []struct {
			Name     string
			Value    string
			Settable []string
		}
	}
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	env := map[string]bool{}
	defaults := map[string]string{}
	for _, e := range manifest.Env {
		env[e.Name] = true
		defaults[e.Name] = e.Value
	}
	for _, s := range settings {
		row := "| `" + s.env + "` | "
		if !strings.Contains(string(doc), row) {
			t.Errorf("docs/configuration.md has no row for %s", s.env)
		}
		if s.flag != "" && !strings.Contains(string(doc), "`--"+s.flag+"`") {
			t.Errorf("docs/configuration.md does not name the flag --%s", s.flag)
		}
		if !env[s.env] {
			t.Errorf("config.json env lacks %s", s.env)
		}
		// The managed plugin sees the host's root at /host; everything
		// else has the binary's default.
		if want := s.def; s.env != "HUBAUTHZ_HOST_ROOT" && defaults[s.env] != want {
			t.Errorf("config.json %s = %q; the binary's default is %q", s.env, defaults[s.env], want)
		}
	}
	if len(manifest.Env) != len(settings) {
		t.Errorf("config.json has %d env entries for %d settings", len(manifest.Env), len(settings))
	}
}
