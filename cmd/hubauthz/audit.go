package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/hubauthz/hubauthz/authz"
	"github.com/sirupsen/logrus"
)

// auditor writes one record for every deny and every allow that involves a
// protected path: a JSON line on stderr and, when the journal is used, a
// native journald entry. Records never carry the token or the request body.
type auditor struct {
	log     *logrus.Logger
	journal journalMode
	send    func(msg string, p journal.Priority, vars map[string]string) error
	// queue, when set, hands journal records to one writer goroutine, so
	// that a stuck journald never holds up a decision. nil sends inline.
	queue chan journalRecord
}

type journalRecord struct {
	msg  string
	prio journal.Priority
	vars map[string]string
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
		a.queue = make(chan journalRecord, 1024)
		go a.writeJournal()
	}
	return a, nil
}

// writeJournal sends queued records to journald, in order.
func (a *auditor) writeJournal() {
	for r := range a.queue {
		a.sendNow(r)
	}
}

func (a *auditor) sendNow(r journalRecord) {
	if err := a.send(r.msg, r.prio, r.vars); err != nil && a.journal == journalOn {
		a.log.WithError(err).Error("could not write the audit record to the journal")
	}
}

func newLogger(w io.Writer, level logrus.Level) *logrus.Logger {
	l := logrus.New()
	l.SetOutput(w)
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
	msg := d.Msg
	switch {
	case msg != "":
	case d.Reason == authz.ReasonSelfProtection:
		msg = fmt.Sprintf("allowed %s %s on hubauthz itself (HUBAUTHZ_ALLOW_SELF_MANAGEMENT=true)", d.Route.Method, d.Route.Path)
	case d.User == "":
		msg = fmt.Sprintf("allowed %s for a container with no hub owner (%s)", strings.Join(d.Sources(), ","), d.Reason)
	default:
		msg = fmt.Sprintf("allowed %s for %q (%s)", strings.Join(d.Sources(), ","), d.User, d.Reason)
	}
	a.record(!d.Allow, msg, logrus.Fields{
		"decision":    decision,
		"reason":      string(d.Reason),
		"user":        d.User,
		"group":       d.Group,
		"container":   d.Container,
		"image":       d.Image,
		"sources":     d.Sources(),
		"method":      d.Route.Method,
		"route":       d.Route.Path,
		"api_version": d.Route.Version,
	})
}

// groupRecreated records that the privileged group had vanished from the
// hub and was created again, empty.
func (a *auditor) groupRecreated(group string) {
	a.record(true, fmt.Sprintf("group %q was missing from JupyterHub and has been recreated empty; re-add its members", group),
		logrus.Fields{"decision": "group-recreated", "reason": "group-missing", "group": group})
}

// record writes one audit record to stderr and to the journal.
func (a *auditor) record(warn bool, msg string, f logrus.Fields) {
	f["audit"] = true
	level, prio := logrus.InfoLevel, journal.PriInfo
	if warn {
		level, prio = logrus.WarnLevel, journal.PriWarning
	}
	a.log.WithFields(f).Log(level, msg)
	if a.journal == journalOff {
		return
	}
	r := journalRecord{msg, prio, journalFields(f)}
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

// journalFields maps an audit record onto journald fields:
// SYSLOG_IDENTIFIER=hubauthz and HUBAUTHZ_<FIELD> for each field.
func journalFields(f logrus.Fields) map[string]string {
	vars := map[string]string{"SYSLOG_IDENTIFIER": "hubauthz"}
	for k, v := range f {
		if k == "audit" {
			continue
		}
		name := "HUBAUTHZ_" + strings.ToUpper(k)
		switch v := v.(type) {
		case []string:
			if k == "sources" {
				name = "HUBAUTHZ_SOURCE"
			}
			vars[name] = strings.Join(v, ",")
		default:
			vars[name] = fmt.Sprint(v)
		}
	}
	return vars
}
