package authz

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
)

// maxLinks is how many symbolic links one resolution may follow, like the
// kernel's MAXSYMLINKS.
const maxLinks = 40

// ErrLinkLoop is returned, wrapped, when resolving a source follows more than
// 40 symbolic links, as the kernel's ELOOP would be.
var ErrLinkLoop = errors.New("too many levels of symbolic links")

// errNotAbsolute is returned, wrapped, for a source that is not an absolute
// path.
var errNotAbsolute = errors.New("not an absolute path")

// HostRoot resolves host paths through a directory where the host's root is
// visible: "/" for a plugin running on the host, "/host" (a read-only rbind of
// the host's /) inside the managed plugin. Every lookup goes through that
// directory, so links are resolved as the host sees them and never inside the
// plugin's own root filesystem. The zero value reads the filesystem at "/".
type HostRoot struct {
	prefix string // the cleaned directory, "" for "/"
}

// NewHostRoot returns a HostRoot reading the host's filesystem under dir ("/"
// or "/host"). An empty dir means "/". The directory is not checked here: if
// it does not exist, every source is judged by its text.
func NewHostRoot(dir string) HostRoot {
	if dir == "" {
		return HostRoot{}
	}
	dir = filepath.Clean(dir)
	if dir == "/" {
		return HostRoot{}
	}
	return HostRoot{prefix: dir}
}

// Resolve returns the host path that source names once every symlink in it is
// followed, the way the kernel resolves a bind source when runc mounts it on
// the host.
//
// The source must be absolute. It is cleaned first, as dockerd cleans bind
// sources, then walked one component at a time from the host root. A symlink
// with an absolute target continues from the host root, never from the
// plugin's own /; a relative target continues from the link's directory. A
// ".." in a link target goes up from the directory resolved so far and never
// above the root. Following more than 40 links returns ErrLinkLoop.
//
// A source that does not exist yet is judged by its text: from the first
// component that is missing (ENOENT) or whose parent is not a directory
// (ENOTDIR), the remaining components are appended as text, with ".." still
// applied, and no error is returned.
//
// Paths under /proc are never looked up, because its magic links would
// describe the plugin's process rather than runc's; normalizeSource judges
// them by their text. From /proc on the remaining components are appended as
// text, with two exceptions that keep the text rule sound:
//   - /proc/{self,thread-self,<pid>}/root is the host root, as the text rule
//     says: the result keeps that prefix, and the components after it are
//     resolved from the host root again, so /proc/self/root/<link>/docker.sock
//     cannot hide the socket behind a link.
//   - a ".." below /proc, which can only come from a link target and whose
//     effect depends on /proc's own links, gives "/proc", which the text rule
//     treats as exposing everything.
//
// Any other error, such as EACCES or EIO, is returned wrapped with the source.
// The work is bounded by the number of components times 40 links.
func (r HostRoot) Resolve(source string) (string, error) {
	if !path.IsAbs(source) {
		return "", fmt.Errorf("resolve %q: %w", source, errNotAbsolute)
	}
	w := &hostWalk{
		root:   r,
		source: source,
		cur:    "/",
		todo:   strings.Split(path.Clean(source), "/"),
	}
	for len(w.todo) > 0 {
		comp := w.todo[0]
		w.todo = w.todo[1:]
		switch comp {
		case "", ".":
		case "..":
			if strings.HasPrefix(w.cur, "/proc/") {
				return w.result("/proc"), nil
			}
			w.up()
		default:
			if err := w.step(comp); err != nil {
				return "", err
			}
		}
	}
	return w.result(w.cur), nil
}

// hostWalk is the state of one Resolve call.
type hostWalk struct {
	root    HostRoot
	source  string   // the source as given, for errors
	base    string   // "/proc/<pid>/root" once such a host-root link was crossed
	cur     string   // the clean absolute host path reached so far, below base
	missing int      // how many trailing components of cur are text only
	todo    []string // the components still to walk, next first
	links   int      // how many symlinks were followed
}

// result returns the host path p reached below base.
func (w *hostWalk) result(p string) string {
	switch {
	case w.base == "":
		return p
	case p == "/":
		return w.base
	}
	return w.base + p
}

// up applies "..": the parent of the current directory, "/" at the root.
func (w *hostWalk) up() {
	if w.missing > 0 {
		w.missing--
	}
	w.cur = path.Dir(w.cur)
}

// step walks into the component comp of the current directory, following it
// when it is a symlink.
func (w *hostWalk) step(comp string) error {
	next := w.cur + "/" + comp
	if w.cur == "/" {
		next = "/" + comp
	}
	if w.missing > 0 {
		w.cur = next
		w.missing++
		return nil
	}
	if next == "/proc" || strings.HasPrefix(next, "/proc/") {
		w.cur = next
		if isProcRootLink(next) {
			w.base, w.cur = next, "/"
		}
		return nil
	}
	fi, err := os.Lstat(w.root.prefix + next)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		w.cur, w.missing = next, 1
		return nil
	case err != nil:
		return fmt.Errorf("resolve %q: %w", w.source, err)
	case fi.Mode()&fs.ModeSymlink == 0:
		w.cur = next
		return nil
	}
	return w.follow(next)
}

// follow replaces the symlink at host path link by its target: the target's
// components are walked next, from the root when the target is absolute and
// from the link's directory (the current one) otherwise.
func (w *hostWalk) follow(link string) error {
	w.links++
	if w.links > maxLinks {
		return fmt.Errorf("resolve %q: %w", w.source, ErrLinkLoop)
	}
	target, err := os.Readlink(w.root.prefix + link)
	if err != nil {
		return fmt.Errorf("resolve %q: %w", w.source, err)
	}
	if target == "" { // the kernel answers ENOENT
		w.cur, w.missing = link, 1
		return nil
	}
	if path.IsAbs(target) {
		w.cur = "/"
	}
	w.todo = append(strings.Split(target, "/"), w.todo...)
	return nil
}

// isProcRootLink reports whether p is /proc/{self,thread-self,<pid>}/root,
// which the policy treats as the host root.
func isProcRootLink(p string) bool {
	rest, ok := strings.CutPrefix(p, "/proc/")
	if !ok {
		return false
	}
	pid, link, _ := strings.Cut(rest, "/")
	return link == "root" && isProcessDir(pid)
}
