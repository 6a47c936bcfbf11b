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
// (ENOTDIR), the remaining components are appended as text and no error is
// returned. A ".." from a link target still applies, and once it leaves the
// missing part the walk follows links again.
//
// Paths under /proc are never looked up, because its magic links would
// describe the plugin's process rather than runc's; normalizeSource judges
// them by their text. From /proc on the remaining components are appended as
// text, with two exceptions that keep the text rule sound:
//   - /proc/{self,thread-self,<pid>}/root is the host root, as the text rule
//     says: the result keeps that prefix, and the components after it are
//     resolved from the host root again, so /proc/self/root/<link>/docker.sock
//     cannot hide the socket behind a link. A ".." right after it stays at
//     the root.
//   - Any other ".." below /proc, which can only come from a link target and
//     whose effect depends on /proc's own links, gives "/proc", which the text
//     rule treats as exposing everything.
//
// Any other error, such as EACCES, EIO or ENAMETOOLONG, is returned wrapped
// with the source. The result is absolute and clean, and resolving it again
// gives it back. The work is linear in the length of the source and of the
// at most 40 link targets.
func (r HostRoot) Resolve(source string) (string, error) {
	if !path.IsAbs(source) {
		return "", fmt.Errorf("resolve %q: %w", source, errNotAbsolute)
	}
	w := &hostWalk{root: r, source: source}
	w.push(path.Clean(source))
	for len(w.todo) > 0 {
		comp := w.todo[len(w.todo)-1]
		w.todo = w.todo[:len(w.todo)-1]
		switch comp {
		case "", ".":
		case "..":
			if len(w.cur) > 1 && w.cur[0] == "proc" {
				w.cur = w.cur[:1]
				return w.result(), nil
			}
			w.up()
		default:
			if err := w.step(comp); err != nil {
				return "", err
			}
		}
	}
	return w.result(), nil
}

// hostWalk is the state of one Resolve call. Paths are kept as lists of
// components so that the work stays linear in the length of the source.
type hostWalk struct {
	root    HostRoot
	source  string   // the source as given, for errors
	base    string   // "/proc/<pid>/root" once such a host-root link was crossed
	cur     []string // the host path reached so far, below base
	missing int      // how many trailing components of cur are text only
	todo    []string // the components still to walk, the next one last
	links   int      // how many symlinks were followed
}

// push puts the components of p in front of those still to walk.
func (w *hostWalk) push(p string) {
	comps := strings.Split(p, "/")
	for i := len(comps) - 1; i >= 0; i-- {
		w.todo = append(w.todo, comps[i])
	}
}

// curPath returns the host path reached so far, "" for the root.
func (w *hostWalk) curPath() string {
	if len(w.cur) == 0 {
		return ""
	}
	return "/" + strings.Join(w.cur, "/")
}

// result returns the path reached: base followed by the current host path.
func (w *hostWalk) result() string {
	p := w.base + w.curPath()
	if p == "" {
		return "/"
	}
	return p
}

// up applies "..": the parent of the current directory, the root at the root.
func (w *hostWalk) up() {
	if len(w.cur) == 0 {
		return
	}
	w.cur = w.cur[:len(w.cur)-1]
	if w.missing > 0 {
		w.missing--
	}
}

// step walks into the component comp of the current directory, following it
// when it is a symlink. Below a missing component and under /proc it only
// appends the text.
func (w *hostWalk) step(comp string) error {
	if w.missing > 0 {
		w.cur = append(w.cur, comp)
		w.missing++
		return nil
	}
	if len(w.cur) == 0 && comp == "proc" || len(w.cur) > 0 && w.cur[0] == "proc" {
		w.cur = append(w.cur, comp)
		if len(w.cur) == 3 && comp == "root" && isProcessDir(w.cur[1]) {
			w.base, w.cur = w.base+"/proc/"+w.cur[1]+"/root", w.cur[:0]
		}
		return nil
	}
	next := w.curPath() + "/" + comp
	fi, err := os.Lstat(w.root.prefix + next)
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
		w.cur, w.missing = append(w.cur, comp), 1
		return nil
	case err != nil:
		return fmt.Errorf("resolve %q: %w", w.source, err)
	case fi.Mode()&fs.ModeSymlink == 0:
		w.cur = append(w.cur, comp)
		return nil
	}
	return w.follow(next, comp)
}

// follow replaces the symlink comp, at host path link, by its target: the
// target's components are walked next, from the root when the target is
// absolute and from the link's directory (the current one) otherwise.
func (w *hostWalk) follow(link, comp string) error {
	w.links++
	if w.links > maxLinks {
		return fmt.Errorf("resolve %q: %w", w.source, ErrLinkLoop)
	}
	target, err := os.Readlink(w.root.prefix + link)
	if err != nil {
		return fmt.Errorf("resolve %q: %w", w.source, err)
	}
	if target == "" { // the kernel answers ENOENT
		w.cur, w.missing = append(w.cur, comp), 1
		return nil
	}
	if path.IsAbs(target) {
		w.cur = w.cur[:0]
	}
	w.push(target)
	return nil
}
