package main

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/hubauthz/hubauthz/authz"
	"github.com/sirupsen/logrus"
)

type sentRecord struct {
	msg  string
	prio journal.Priority
	vars map[string]string
}

func captureAuditor(mode journalMode) (*auditor, *[]sentRecord, *bytes.Buffer) {
	var buf bytes.Buffer
	var sent []sentRecord
	a := &auditor{log: newLogger(&buf, logrus.InfoLevel), journal: mode,
		send: func(msg string, p journal.Priority, vars map[string]string) error {
			sent = append(sent, sentRecord{msg, p, vars})
			return nil
		}}
	return a, &sent, &buf
}

type noMembers struct{}

func (noMembers) IsMember(context.Context, string, string) (bool, error) { return false, nil }

func TestJournalRecordForDenial(t *testing.T) {
	pp, _ := authz.NewProtectedPaths([]string{"/var/run/docker.sock"})
	az := authz.New(authz.Config{Protected: pp, OwnerLabels: []string{"hub.jupyter.org/username"}, Group: "docker-privileged"}, noMembers{}, nil)
	d := az.Decide(context.Background(), authz.Request{Method: "POST", URI: "/v1.41/containers/create?name=jupyter-bob",
		Body: []byte(`{"Image":"bb","Labels":{"hub.jupyter.org/username":"bob"},"HostConfig":{"Binds":["/run:/r","/var/run/docker.sock:/s"]}}`)})
	a, sent, _ := captureAuditor(journalAuto)
	a.decision(d)
	if len(*sent) != 1 {
		t.Fatalf("%d journal records; want 1", len(*sent))
	}
	r := (*sent)[0]
	want := map[string]string{
		"SYSLOG_IDENTIFIER": "hubauthz", "HUBAUTHZ_DECISION": "deny", "HUBAUTHZ_USER": "bob",
		"HUBAUTHZ_GROUP": "docker-privileged", "HUBAUTHZ_REASON": "not-member", "HUBAUTHZ_CONTAINER": "jupyter-bob",
		"HUBAUTHZ_SOURCE": "/run,/var/run/docker.sock",
	}
	for k, v := range want {
		if r.vars[k] != v {
			t.Errorf("%s = %q; want %q", k, r.vars[k], v)
		}
	}
	if r.prio != journal.PriWarning || r.msg != d.Msg {
		t.Errorf("priority %d message %q; want 4 and the deny message", r.prio, r.msg)
	}
}

func TestJournalOffWritesOnlyStderr(t *testing.T) {
	a, sent, buf := captureAuditor(journalOff)
	a.groupRecreated("docker-privileged")
	if len(*sent) != 0 || !bytes.Contains(buf.Bytes(), []byte(`"decision":"group-recreated"`)) {
		t.Fatalf("journal records %d, stderr %q", len(*sent), buf.String())
	}
}

func TestUnauditedDecisionsWriteNothing(t *testing.T) {
	a, sent, buf := captureAuditor(journalOn)
	a.decision(authz.Decision{Allow: true, Reason: authz.ReasonNoExposure})
	if len(*sent) != 0 || buf.Len() != 0 {
		t.Fatalf("an allow without exposure was recorded: %d %q", len(*sent), buf.String())
	}
}

// TestAuditLineIsLogrusJSON holds the audit line to what logrus's JSON
// formatter wrote for the same record before records bypassed logrus: the
// same keys, values and order, so that docs/audit.md and every jq recipe
// stay true.
func TestAuditLineIsLogrusJSON(t *testing.T) {
	pp, _ := authz.NewProtectedPaths([]string{"/var/run/docker.sock"})
	az := authz.New(authz.Config{Protected: pp, OwnerLabels: []string{"hub.jupyter.org/username"}, Group: "docker-privileged"}, noMembers{}, nil)
	d := az.Decide(context.Background(), authz.Request{Method: "POST", URI: "/v1.41/containers/create?name=jupyter-bob",
		Body: []byte(`{"Image":"bb<&>","Labels":{"hub.jupyter.org/username":"bob"},"HostConfig":{"Binds":["/var/run/docker.sock:/s"]}}`)})
	a, _, buf := captureAuditor(journalOff)
	a.decision(d)
	a.groupRecreated("docker-privileged")

	var want bytes.Buffer
	l := logrus.New()
	l.SetOutput(&want)
	l.SetFormatter(&logrus.JSONFormatter{})
	l.WithFields(logrus.Fields{"audit": true, "decision": "deny", "reason": string(d.Reason), "user": d.User, "group": d.Group,
		"container": d.Container, "image": d.Image, "sources": d.Sources(), "method": d.Route.Method, "route": d.Route.Path,
		"api_version": d.Route.Version}).Warn(d.Msg)
	l.WithFields(logrus.Fields{"audit": true, "decision": "group-recreated", "reason": "group-missing", "group": "docker-privileged"}).
		Warn(`group "docker-privileged" was missing from JupyterHub and has been recreated empty; re-add its members`)

	stamp := regexp.MustCompile(`"time":"[^"]*"`)
	got, exp := stamp.ReplaceAllString(buf.String(), `"time":"T"`), stamp.ReplaceAllString(want.String(), `"time":"T"`)
	if got != exp {
		t.Fatalf("audit lines\n%s\nlogrus wrote\n%s", got, exp)
	}
	if !strings.Contains(buf.String(), `"time":"`+time.Now().Format("2006-01-02T")) {
		t.Errorf("no RFC 3339 time of today in %s", buf.String())
	}
}

// TestJournalWriterKeepsOrderAndFlushes sends a burst of records through
// the journal writer: all of them reach journald, in order, and
// flush (called when hubauthz stops) returns only once they have.
func TestJournalWriterKeepsOrderAndFlushes(t *testing.T) {
	var mu sync.Mutex
	var got []string
	a, err := newAuditor(newLogger(io.Discard, logrus.InfoLevel), journalAuto)
	if err != nil {
		t.Fatal(err)
	}
	a.send = func(msg string, _ journal.Priority, vars map[string]string) error {
		mu.Lock()
		defer mu.Unlock()
		if vars["HUBAUTHZ_GROUP"] != "g" {
			t.Errorf("record %q: group %q", msg, vars["HUBAUTHZ_GROUP"])
		}
		got = append(got, msg)
		return nil
	}
	const n = 500
	for i := 0; i < n; i++ {
		a.record(i%2 == 0, auditRecord{Decision: "deny", Group: "g", Msg: strconv.Itoa(i)})
	}
	a.flush()
	mu.Lock()
	defer mu.Unlock()
	if len(got) != n {
		t.Fatalf("%d of %d records reached the journal after flush", len(got), n)
	}
	for i, m := range got {
		if m != strconv.Itoa(i) {
			t.Fatalf("record %d is %q: out of order", i, m)
		}
	}
}

// TestStuckJournalHoldsUpNoDecision checks that a journald that never
// answers costs a decision nothing: the JSON line is written, the journal
// record is dropped once the queue is full, and flush gives up.
func TestStuckJournalHoldsUpNoDecision(t *testing.T) {
	var out bytes.Buffer
	a, err := newAuditor(newLogger(&out, logrus.InfoLevel), journalAuto)
	if err != nil {
		t.Fatal(err)
	}
	stuck := make(chan struct{})
	defer close(stuck)
	a.send = func(string, journal.Priority, map[string]string) error { <-stuck; return nil }
	done := make(chan struct{})
	go func() {
		for i := 0; i < 3000; i++ {
			a.record(true, auditRecord{Decision: "deny", Msg: "m"})
		}
		a.flush()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("decisions blocked on a stuck journald")
	}
	if n := strings.Count(out.String(), `"audit":true`); n != 3000 {
		t.Errorf("%d JSON audit lines, want 3000", n)
	}
	if !strings.Contains(out.String(), "journald is not keeping up") {
		t.Error("no error line for the records the journal dropped")
	}
}
