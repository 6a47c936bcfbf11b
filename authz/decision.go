package authz

// Reason says in one word why a decision was made. It is the audit record's
// "reason" field.
type Reason string

// The reasons, one per row of the decision table in docs/policy.md.
const (
	ReasonUnguarded      Reason = "unguarded-route"
	ReasonNoExposure     Reason = "no-exposure"
	ReasonMember         Reason = "member"
	ReasonNotMember      Reason = "not-member"
	ReasonUnowned        Reason = "unowned"
	ReasonOwnerConflict  Reason = "owner-conflict"
	ReasonBadBody        Reason = "unreadable-body"
	ReasonBadRequest     Reason = "unroutable-request"
	ReasonHubError       Reason = "hub-error"
	ReasonInspectFailed  Reason = "inspection-failed"
	ReasonSelfProtection Reason = "self-protection"
)

// Decision is the outcome for one request, with what the audit record needs.
type Decision struct {
	Allow     bool
	Msg       string // for the Docker client; empty on allow
	Reason    Reason
	Route     Route
	User      string // the container's owner, if known
	Group     string
	Container string // the ?name= of a create, if any
	Image     string
	Exposures []Exposure
	Audit     bool // audit this allow although it involves no protected path
}

// Audited reports whether the decision must produce an audit record: every
// deny, and every allow that involves a protected path.
func (d Decision) Audited() bool {
	return !d.Allow || len(d.Exposures) > 0 || d.Audit
}

// Sources returns the host sources of the decision's exposures.
func (d Decision) Sources() []string {
	out := make([]string, 0, len(d.Exposures))
	for _, e := range d.Exposures {
		out = append(out, e.Source)
	}
	return out
}
