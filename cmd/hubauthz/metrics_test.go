package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// metricsAddr finds the address the plugin logged for its metrics listener.
func (p *testPlugin) metricsAddr(t *testing.T) string {
	t.Helper()
	re := regexp.MustCompile(`"addr":"([^"]+)"`)
	m := re.FindStringSubmatch(p.log.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", p.log)
	}
	return m[1]
}

func get(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func TestMetricsAndHealthz(t *testing.T) {
	p := startPlugin(t, map[string]string{"HUBAUTHZ_METRICS_ADDR": "127.0.0.1:0"})
	base := "http://" + p.metricsAddr(t)
	if got := get(t, base+"/healthz"); got != "ok\n" {
		t.Fatalf("/healthz = %q", got)
	}
	bob := []byte(`{"Labels":{"hub.jupyter.org/username":"bob"},"HostConfig":{"Binds":["/var/run/docker.sock:/s"]}}`)
	p.authz(t, "POST", "/v1.41/containers/create", "application/json", bob)
	p.authz(t, "POST", "/v1.41/containers/create", "application/json", bob)
	p.authz(t, "POST", "/v1.41/containers/create", "application/json", []byte("not json"))
	p.authz(t, "GET", "/v1.41/containers/json", "", nil)
	p.hub.DeleteGroup(t, "docker-privileged")
	p.flushCache(t)
	p.authz(t, "POST", "/v1.41/containers/create", "application/json", bob)

	text := get(t, base+"/metrics")
	for _, want := range []string{
		`hubauthz_decisions_total{outcome="deny",reason="not-member",route="/containers/create"} 3`,
		`hubauthz_decisions_total{outcome="deny",reason="unreadable-body",route="/containers/create"} 1`,
		`hubauthz_decisions_total{outcome="allow",reason="unguarded-route",route="other"} 1`,
		`hubauthz_request_decode_failures_total 1`,
		`hubauthz_membership_cache_lookups_total{result="hit"} 2`,
		`hubauthz_group_recreations_total 1`,
		`hubauthz_hub_request_duration_seconds_count{op="create-group"} 1`,
		`hubauthz_hub_request_duration_seconds_count{op="get-group"} 2`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(text, "hubauthz_hub_request_errors_total{") {
		t.Error("hub errors counted while the hub answered every request")
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", grepLines(text, "hubauthz_"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
