package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/hubauthz/hubauthz/authz"
	"github.com/sirupsen/logrus"
)

// auditor writes one record for every deny and every allow that involves a
// protected path: a JSON line on stderr and, when the journal is used, a
// native journald entry. Records never carry the token or the request body.
//
// Records do not go through logrus: a record is a fixed struct, marshalled
// once, where logrus would build, copy and sort a map of fields for every
// record on the request path. The line is the one logrus's JSON formatter
// wrote (the same keys, in the same order) on the logger's own writer.
type auditor struct {
	log     *logrus.Logger
	journal journalMode
	send    func(msg string, p journal.Priority, vars map[string]string) error
	// queue, when set, hands journal records to one writer goroutine, so
	// that a stuck journald never holds up a decision. nil sends inline.
	queue   chan auditRecord
	flushes chan chan struct{} // flush's requests to the writer
}

// auditRecord is one audit record. The JSON keys are in alphabetical
// order, as logrus's JSON formatter wrote them.
type auditRecord struct {
	APIVersion string   `json:"api_version"`
	Audit      bool     `json:"audit"`
	Container  string   `json:"container"`
	Decision   string   `json:"decision"`
	Group      string   `json:"group"`
	Image      string   `json:"image"`
	Level      string   `json:"level"`
	Method     string   `json:"method"`
	Msg        string   `json:"msg"`
	Reason     string   `json:"reason"`
	Route      string   `json:"route"`
	Sources    []string `json:"sources"`
	Time       string   `json:"time"`
	User       string   `json:"user"`
}

// groupRecord is the JSON line of a group-recreated record, which names
// no request.
type groupRecord struct {
	Audit    bool   `json:"audit"`
	Decision string `json:"decision"`
	Group    string `json:"group"`
	Level    string `json:"level"`
	Msg      string `json:"msg"`
	Reason   string `json:"reason"`
	Time     string `json:"time"`
}

const decisionGroupRecreated = "group-recreated"

// line is r as one JSON line.
func (r *auditRecord) line() ([]byte, error) {
	var v any = r
	if r.Decision == decisionGroupRecreated {
		v = groupRecord{Audit: true, Decision: r.Decision, Group: r.Group, Level: r.Level, Msg: r.Msg, Reason: r.Reason, Time: r.Time}
	}
	b, err := json.Marshal(v)
	return append(b, '\n'), err
}

// journalFields maps an audit record onto journald fields:
// SYSLOG_IDENTIFIER=hubauthz and HUBAUTHZ_<FIELD> for each field. A field
// whose value is unknown is present and empty.
func (r *auditRecord) journalFields() map[string]string {
	vars := map[string]string{
		"SYSLOG_IDENTIFIER": "hubauthz",
		"HUBAUTHZ_DECISION": r.Decision,
		"HUBAUTHZ_REASON":   r.Reason,
		"HUBAUTHZ_GROUP":    r.Group,
	}
	if r.Decision == decisionGroupRecreated {
		return vars
	}
	vars["HUBAUTHZ_USER"] = r.User
	vars["HUBAUTHZ_CONTAINER"] = r.Container
	vars["HUBAUTHZ_IMAGE"] = r.Image
	vars["HUBAUTHZ_SOURCE"] = strings.Join(r.Sources, ",")
	vars["HUBAUTHZ_METHOD"] = r.Method
	vars["HUBAUTHZ_ROUTE"] = r.Route
	vars["HUBAUTHZ_API_VERSION"] = r.APIVersion
	return vars
}

// syncWriter serialises the lines of logrus and of the auditor on one
// writer.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// journalMode is HUBAUTHZ_JOURNAL.
type journalMode string

const (
	journalAuto journalMode = "auto" // write when the journal socket is there
	journalOn   journalMode = "on"   // the journal must be there at start-up
	journalOff  journalMode = "off"
)

func newAuditor(log *logrus.Logger, mode journalMode) (*auditor, error) {
	if mode == journalOn && !journal.Enabled() {
		return nil, fmt.Errorf("HUBAUTHZ_JOURNAL=on but the journal socket /run/systemd/journal/socket is not reachable")
	}
	a := &auditor{log: log, journal: mode, send: journal.Send}
	if mode != journalOff {
		a.queue, a.flushes = make(chan auditRecord, 1024), make(chan chan struct{})
		go a.writeJournal()
	}
	return a, nil
}

// writeJournal sends queued records to journald, in order. It alone
// sends, so order holds; flush asks it to send what is queued and waits.
// (Batching records to save wake-ups was measured and dropped: it saved a
// few percent of CPU at 8 clients and doubled p99 at one client.)
func (a *auditor) writeJournal() {
	for {
		select {
		case r := <-a.queue:
			a.sendNow(r)
		case done := <-a.flushes:
			a.drain()
			close(done)
		}
	}
}

// drain sends every record queued now.
func (a *auditor) drain() {
	for {
		select {
		case r := <-a.queue:
			a.sendNow(r)
		default:
			return
		}
	}
}

// flush has the journal writer send every queued record, and waits for it
// up to a second (journald may be stuck). serve calls it on the way out,
// so that a stop does not lose the records still queued.
func (a *auditor) flush() {
	if a.queue == nil {
		return
	}
	done := make(chan struct{})
	timeout := time.After(time.Second)
	select {
	case a.flushes <- done:
	case <-timeout:
		return
	}
	select {
	case <-done:
	case <-timeout:
	}
}

func (a *auditor) sendNow(r auditRecord) {
	prio := journal.PriInfo
	if r.Level == logrus.WarnLevel.String() {
		prio = journal.PriWarning
	}
	if err := a.send(r.Msg, prio, r.journalFields()); err != nil && a.journal == journalOn {
		a.log.WithError(err).Error("could not write the audit record to the journal")
	}
}

func newLogger(w io.Writer, level logrus.Level) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(&syncWriter{w: w})
	l.SetLevel(level)
	l.SetFormatter(&logrus.JSONFormatter{})
	return l
}

// decision records d if it is an audit event. Denials are at warn level.
func (a *auditor) decision(d authz.Decision) {
	if !d.Audited() {
		return
	}
	decision := "allow"
	if !d.Allow {
		decision = "deny"
	}
	sources := d.Sources()
	msg := d.Msg
	switch {
	case msg != "":
	case d.Reason == authz.ReasonSelfProtection:
		msg = fmt.Sprintf("allowed %s %s on hubauthz itself (HUBAUTHZ_ALLOW_SELF_MANAGEMENT=true)", d.Route.Method, d.Route.Path)
	case d.User == "":
		msg = fmt.Sprintf("allowed %s for a container with no hub owner (%s)", strings.Join(sources, ","), d.Reason)
	default:
		msg = fmt.Sprintf("allowed %s for %q (%s)", strings.Join(sources, ","), d.User, d.Reason)
	}
	a.record(!d.Allow, auditRecord{
		Decision:   decision,
		Reason:     string(d.Reason),
		User:       d.User,
		Group:      d.Group,
		Container:  d.Container,
		Image:      d.Image,
		Sources:    sources,
		Method:     d.Route.Method,
		Route:      d.Route.Path,
		APIVersion: d.Route.Version,
		Msg:        msg,
	})
}

// groupRecreated records that the privileged group had vanished from the
// hub and was created again, empty.
func (a *auditor) groupRecreated(group string) {
	a.record(true, auditRecord{Decision: decisionGroupRecreated, Reason: "group-missing", Group: group,
		Msg: fmt.Sprintf("group %q was missing from JupyterHub and has been recreated empty; re-add its members", group)})
}

// record writes one audit record to stderr and to the journal.
func (a *auditor) record(warn bool, r auditRecord) {
	r.Audit, r.Level = true, logrus.InfoLevel.String()
	if warn {
		r.Level = logrus.WarnLevel.String()
	}
	r.Time = time.Now().Format(time.RFC3339)
	if line, err := r.line(); err != nil {
		a.log.WithError(err).Error("could not format an audit record")
	} else if _, err := a.log.Out.Write(line); err != nil {
		fmt.Fprintf(os.Stderr, "hubauthz: could not write an audit record: %v\n", err)
	}
	if a.journal == journalOff {
		return
	}
	if a.queue == nil {
		a.sendNow(r)
		return
	}
	select {
	case a.queue <- r:
	default:
		a.log.Error("journald is not keeping up; an audit record went to stderr only")
	}
}
