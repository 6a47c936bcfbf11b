package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hubauthz/hubauthz/e2e/dockertest"
)

const journalSocket = "/run/systemd/journal/socket"

// startJournald starts a standalone systemd-journald when no journal socket
// is there (CI machines run no systemd), and returns a function that stops
// it again. A journal that is already running is used as it is.
func startJournald() (stop func(), err error) {
	if journalRunning() {
		return func() {}, nil
	}
	bin := "/lib/systemd/systemd-journald"
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("no journal socket and no %s (apt-get install systemd)", bin)
	}
	cmd := exec.Command(bin)
	waited, err := dockertest.StartTied(cmd)
	if err != nil {
		return nil, err
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		<-waited
	}
	for i := 0; i < 100; i++ {
		if journalRunning() {
			return stop, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	stop()
	return nil, fmt.Errorf("systemd-journald did not create %s", journalSocket)
}

// journalRunning reports whether a journald answers on the socket. A
// socket file left by a journald that has stopped does not count.
func journalRunning() bool {
	c, err := net.Dial("unixgram", journalSocket)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// journalRecords returns hubauthz's native journal entries that match all
// of the given FIELD=value filters.
func journalRecords(t *testing.T, filters ...string) []map[string]any {
	t.Helper()
	args := append([]string{"--no-pager", "-o", "json", "-t", "hubauthz"}, filters...)
	out, err := exec.Command("journalctl", args...).Output()
	if err != nil {
		t.Fatalf("journalctl %v: %v", args, err)
	}
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var r map[string]any
		if json.Unmarshal([]byte(line), &r) == nil {
			recs = append(recs, r)
		}
	}
	return recs
}

// testJournalRecord shows that a denial reaches journald natively, with
// the documented fields, readable with journalctl -t hubauthz.
func testJournalRecord(t *testing.T, s *stack) {
	name := "jupyter-bob-" + strings.NewReplacer(":", "-", "/", "-").Replace(s.name)
	s.denied(t, notMember, "create", "--name", name, label("bob"), "-v", "/var/run/docker.sock:/var/run/docker.sock", "bb:latest", "true")
	var recs []map[string]any
	waitFor(t, 10*time.Second, func() string {
		recs = journalRecords(t, "HUBAUTHZ_DECISION=deny", "HUBAUTHZ_CONTAINER="+name)
		if len(recs) == 0 {
			return "no journal record for the denial of " + name
		}
		return ""
	})
	want := map[string]string{
		"SYSLOG_IDENTIFIER": "hubauthz", "PRIORITY": "4", "HUBAUTHZ_DECISION": "deny", "HUBAUTHZ_USER": "bob",
		"HUBAUTHZ_GROUP": group, "HUBAUTHZ_REASON": "not-member", "HUBAUTHZ_CONTAINER": name,
		"HUBAUTHZ_SOURCE": "/var/run/docker.sock",
	}
	for k, v := range want {
		if recs[0][k] != v {
			t.Errorf("journal field %s = %v; want %q", k, recs[0][k], v)
		}
	}
	if msg, _ := recs[0]["MESSAGE"].(string); !strings.Contains(msg, notMember) {
		t.Errorf("journal MESSAGE %q", msg)
	}
}
