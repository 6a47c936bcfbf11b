package main

import (
	"io"

	"github.com/hubauthz/hubauthz/authz"
	"github.com/sirupsen/logrus"
)

// auditor writes one record for every deny and every allow that involves a
// protected path. Records never carry the token or the request body.
type auditor struct {
	log *logrus.Logger
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
	decision, level := "allow", logrus.InfoLevel
	if !d.Allow {
		decision, level = "deny", logrus.WarnLevel
	}
	f := logrus.Fields{
		"audit":       true,
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
	}
	msg := d.Msg
	if msg == "" {
		msg = "allowed"
	}
	a.log.WithFields(f).Log(level, msg)
}

// groupRecreated records that the privileged group had vanished from the
// hub and was created again, empty.
func (a *auditor) groupRecreated(group string) {
	a.log.WithFields(logrus.Fields{
		"audit":    true,
		"decision": "group-recreated",
		"reason":   "group-missing",
		"group":    group,
	}).Warnf("group %q was missing from JupyterHub and has been recreated empty; re-add its members", group)
}
