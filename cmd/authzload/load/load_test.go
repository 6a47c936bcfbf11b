package load

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestTurnOrderIsBalanced: over 2n rounds every target takes every
// position, and follows every other target, equally often.
func TestTurnOrderIsBalanced(t *testing.T) {
	for n := 1; n <= 4; n++ {
		pos := map[[2]int]int{}
		after := map[[2]int]int{}
		for r := 0; r < 2*n; r++ {
			o := turnOrder(n, r)
			for j, i := range o {
				pos[[2]int{i, j}]++
				if j > 0 {
					after[[2]int{o[j-1], i}]++
				}
			}
		}
		for i := 0; i < n; i++ {
			for j := 0; j < n; j++ {
				if pos[[2]int{i, j}] != 2 {
					t.Errorf("n=%d: target %d in position %d %d times, want 2", n, i, j, pos[[2]int{i, j}])
				}
				if i != j && n > 1 && after[[2]int{i, j}] != after[[2]int{j, i}] {
					t.Errorf("n=%d: %d before %d %d times, %d after it %d times", n, i, j, after[[2]int{i, j}], i, after[[2]int{j, i}])
				}
			}
		}
	}
}

func TestQuantile(t *testing.T) {
	s := &Sample{}
	for i := 100; i >= 1; i-- {
		s.Lat = append(s.Lat, time.Duration(i))
	}
	if q := s.Quantile(0.5); q != 50 {
		t.Errorf("p50 = %d, want 50", q)
	}
	if q := s.Quantile(0.99); q != 99 {
		t.Errorf("p99 = %d, want 99", q)
	}
}

// TestKindsAreWhatDockerdSends: the wire payload carries the method, the
// URI and the body in base64, as dockerd's AuthZReq does.
func TestKindsAreWhatDockerdSends(t *testing.T) {
	kinds, err := StandardKinds("../../../authz/testdata", strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	if len(kinds) != 5 {
		t.Fatalf("%d kinds, want 5", len(kinds))
	}
	var w map[string]any
	if err := json.Unmarshal(kinds[0].payload, &w); err != nil {
		t.Fatal(err)
	}
	body, _ := base64.StdEncoding.DecodeString(w["RequestBody"].(string))
	if w["RequestMethod"] != "POST" || !strings.HasPrefix(w["RequestUri"].(string), "/v1.41/containers/create") || string(body) != string(kinds[0].Body) {
		t.Fatalf("payload %v", w)
	}
	diag, err := DiagnosticKinds(kinds)
	if err != nil || len(diag) != 2 {
		t.Fatalf("diagnostic kinds: %v %v", diag, err)
	}
	for _, d := range diag {
		if strings.Contains(string(d.Body), ":/home/jovyan/work") || !strings.HasSuffix(d.Name, "-novol") {
			t.Errorf("%s still binds a named volume: %s", d.Name, d.Body)
		}
	}
	if !strings.Contains(string(diag[1].Body), "/var/run/docker.sock:/var/run/docker.sock") {
		t.Errorf("%s lost its socket bind: %s", diag[1].Name, diag[1].Body)
	}
}

func TestSpawnerBody(t *testing.T) {
	tmpl := []byte(`{"Image":"x","Env":["A=b"],"Labels":{},"HostConfig":{"Binds":["v:/w"],"NetworkMode":"jupyterhub"}}`)
	b, err := SpawnerBody(tmpl, "carol", "/run/docker.sock", "bb:latest")
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Image      string
		Labels     map[string]string
		Env        []string
		HostConfig struct {
			Binds       []string
			NetworkMode string
		}
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Image != "bb:latest" || got.Labels[OwnerLabel] != "carol" || got.Env[0] != "JUPYTERHUB_USER=carol" ||
		len(got.HostConfig.Binds) != 2 || got.HostConfig.Binds[1] != "/run/docker.sock:/var/run/docker.sock:rw" || got.HostConfig.NetworkMode != "none" {
		t.Fatalf("body %s", b)
	}
}
