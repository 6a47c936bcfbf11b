package authz

import (
	"fmt"
	"path"
	"strings"
)

// Exposure is one way a request would put a protected path into a container.
type Exposure struct {
	Via       string // where the source came from: "Binds", "Mounts", "MountPoints", "VolumesFrom c: Binds", ...
	Source    string // the host source exactly as the request wrote it
	Protected string // the protected path that the source is, or is an ancestor of
}

// describe names the exposure for a message: the protected path, and the
// source that reaches it when the two differ.
func (e Exposure) describe() string {
	if e.Source == e.Protected {
		return e.Protected
	}
	return fmt.Sprintf("%s (which reaches %s)", e.Source, e.Protected)
}

// ProtectedPaths is the set of host paths (the Docker socket by default) that
// must not reach a container of a user outside the group.
type ProtectedPaths struct {
	paths    []string   // cleaned, as configured
	spelling [][]string // for each path: every spelling, with /run and /var/run swapped
}

// NewProtectedPaths validates and cleans the configured paths. Each must be
// absolute.
func NewProtectedPaths(paths []string) (ProtectedPaths, error) {
	var pp ProtectedPaths
	for _, p := range paths {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		if !path.IsAbs(p) {
			return ProtectedPaths{}, fmt.Errorf("protected path %q is not absolute", p)
		}
		p = path.Clean(p)
		pp.paths = append(pp.paths, p)
		pp.spelling = append(pp.spelling, spellings(p))
	}
	if len(pp.paths) == 0 {
		return ProtectedPaths{}, fmt.Errorf("no protected paths configured")
	}
	return pp, nil
}

// With returns pp with more paths added (duplicates are skipped).
func (pp ProtectedPaths) With(paths ...string) (ProtectedPaths, error) {
	all := append(append([]string{}, pp.paths...), paths...)
	seen := map[string]bool{}
	var uniq []string
	for _, p := range all {
		if c := path.Clean(strings.TrimSpace(p)); !seen[c] {
			seen[c] = true
			uniq = append(uniq, p)
		}
	}
	return NewProtectedPaths(uniq)
}

// Resolved returns pp where each path is also known by the name its
// symlinks resolve to on the host (a socket under a linked directory).
// A path that cannot be resolved keeps its given spellings.
func (pp ProtectedPaths) Resolved(r Resolver) ProtectedPaths {
	out := ProtectedPaths{paths: pp.paths}
	for i, p := range pp.paths {
		sp := append([]string{}, pp.spelling[i]...)
		if res, err := r.Resolve(p); err == nil && res != p {
			sp = append(sp, spellings(res)...)
		}
		out.spelling = append(out.spelling, sp)
	}
	return out
}

// Paths returns the cleaned protected paths.
func (pp ProtectedPaths) Paths() []string { return pp.paths }

// spellings returns p and, when p lies under /run or /var/run, the same path
// under the other name: on every current distribution /var/run links to /run.
func spellings(p string) []string {
	out := []string{p}
	switch {
	case p == "/run" || strings.HasPrefix(p, "/run/"):
		out = append(out, "/var"+p)
	case p == "/var/run" || strings.HasPrefix(p, "/var/run/"):
		out = append(out, strings.TrimPrefix(p, "/var"))
	}
	return out
}

// Exposes reports which protected path a host source exposes, if any. A
// source exposes P when, once normalized, it is P or an ancestor directory of
// P. Relative sources (named volumes) are not host paths and expose nothing
// here.
func (pp ProtectedPaths) Exposes(source string) (protected string, ok bool) {
	s, all := normalizeSource(source)
	if s == "" {
		return "", false
	}
	for i, p := range pp.paths {
		if all {
			return p, true
		}
		for _, q := range pp.spelling[i] {
			if s == q || s == "/" || strings.HasPrefix(q, s+"/") {
				return p, true
			}
		}
	}
	return "", false
}

// normalizeSource cleans an absolute host source of "//", ".", ".." and
// trailing slashes, and applies the /proc rule: /proc/{self,thread-self,<pid>}/root
// is the host root (runc makes the bind in the host's mount namespace), and
// any other path at or under /proc or /proc/<pid>, cwd included (runc's working
// directory is not known here), exposes everything (all == true). Relative
// sources give "".
func normalizeSource(source string) (clean string, all bool) {
	if !path.IsAbs(source) {
		return "", false
	}
	s := path.Clean(source)
	for {
		if s == "/proc" {
			return s, true
		}
		rest, isProc := strings.CutPrefix(s, "/proc/")
		if !isProc {
			return s, false
		}
		pid, after, _ := strings.Cut(rest, "/")
		if !isProcessDir(pid) {
			return s, false
		}
		link, tail, _ := strings.Cut(after, "/")
		if link != "root" {
			return s, true
		}
		s = "/" + tail
	}
}

// isProcessDir reports whether a /proc entry names a process: self,
// thread-self or a number.
func isProcessDir(name string) bool {
	if name == "self" || name == "thread-self" {
		return true
	}
	if name == "" {
		return false
	}
	return strings.Trim(name, "0123456789") == ""
}
